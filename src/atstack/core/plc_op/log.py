"""Validating a did:plc log: linear chains, full audit logs, and a directory's acceptance of a new operation.

Spec: did:plc method specification v0.3.0 ("Key Rotation & Account Recovery", "Audit Logs"). The recovery
rule as the reference directory applies it: ``prev`` must name an operation of the valid (non-nullified)
chain that is not a tombstone; timestamps increase; a new operation forking before the head must be signed by
a rotation key of ``prev`` listed before the key that signed the first operation it displaces, at most 72
hours after that operation was accepted; the displaced operations become nullified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from atstack.core.plc_op.operation import (
    GenesisHashMismatch,
    InvalidOperation,
    LateRecovery,
    MisorderedOperation,
    check_op_limits,
    check_op_shape,
    did_for_genesis,
    op_cid,
    op_to_data,
    rotation_keys_of,
    signer_index,
)

__all__ = ["RECOVERY_WINDOW", "HistoryEntry", "validate_new_op", "verify_audit_log", "verify_op_chain"]

RECOVERY_WINDOW = timedelta(hours=72)


class HistoryEntry(NamedTuple):
    """One operation of a DID's audit log as a directory stores it."""

    op: dict[str, Any]
    created_at: datetime
    nullified: bool


def _check_genesis(did: str, op: Mapping[str, Any], *, allow_legacy: bool) -> None:
    op_type = check_op_shape(op)
    if op_type == "plc_tombstone" or op["prev"] is not None:
        raise MisorderedOperation("the first operation of a DID must be a genesis operation (prev null)")
    if op_type == "create" and not allow_legacy:
        raise InvalidOperation("legacy 'create' operations are no longer accepted")
    signer_index(op, rotation_keys_of(op))
    derived = did_for_genesis(op)
    if derived != did:
        raise GenesisHashMismatch(f"genesis operation hashes to {derived}, not {did}")


def verify_op_chain(did: str, ops: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Validate a linear log (no nullified operations) and return the DID's final ``/data`` state.

    Checks: the genesis derives ``did`` and is signed by one of its own rotation keys; each later operation
    is a ``plc_operation`` or ``plc_tombstone`` whose ``prev`` is the CID of the one before and which is
    signed by a rotation key of the one before; a tombstone can only be last (then None is returned).
    """
    if not ops:
        raise InvalidOperation("empty operation log")
    _check_genesis(did, ops[0], allow_legacy=True)
    prev = ops[0]
    for op in ops[1:]:
        op_type = check_op_shape(op)
        if op_type == "create":
            raise MisorderedOperation("a legacy 'create' can only be a genesis operation")
        if prev["type"] == "plc_tombstone":
            raise MisorderedOperation("operation follows a tombstone")
        if op["prev"] != op_cid(prev).encode():
            raise MisorderedOperation("prev is not the CID of the previous operation")
        signer_index(op, rotation_keys_of(prev))
        prev = op
    return op_to_data(did, prev)


class _Active(NamedTuple):
    index: int  # position in the full history
    op: Mapping[str, Any]
    cid: str
    created_at: datetime


def _next_op_nullifies(
    did: str, active: Sequence[_Active], new_op: Mapping[str, Any], now: datetime, *, new_submission: bool
) -> list[int]:
    """Validate ``new_op`` against the active (non-nullified) chain; return history indexes it nullifies."""
    if new_submission:
        op_type = check_op_shape(new_op)
        if op_type == "create":
            raise InvalidOperation("legacy 'create' operations are no longer accepted")
        check_op_limits(new_op)
    else:
        op_type = check_op_shape(new_op)
    if not active:
        _check_genesis(did, new_op, allow_legacy=not new_submission)
        return []
    if op_type == "create" or new_op["prev"] is None:
        raise MisorderedOperation("the DID already exists; a new operation needs a prev")
    at = next((i for i, a in enumerate(active) if a.cid == new_op["prev"]), None)
    if at is None:
        raise MisorderedOperation("prev is not an operation in this DID's valid history")
    prev, head = active[at], active[-1]
    if prev.op["type"] == "plc_tombstone":
        raise MisorderedOperation("operation follows a tombstone")
    if now <= head.created_at:
        raise MisorderedOperation("operation timestamps must increase")
    allowed = rotation_keys_of(prev.op)
    if at == len(active) - 1:
        signer_index(new_op, allowed)
        return []
    # A fork: only a key of higher authority than the one that signed the first displaced operation may
    # rewrite history, and only within the recovery window of that operation.
    first_displaced = active[at + 1]
    disputed = signer_index(first_displaced.op, allowed)
    signer_index(new_op, allowed[:disputed])
    if now - first_displaced.created_at > RECOVERY_WINDOW:
        raise LateRecovery("operations older than 72 hours cannot be nullified")
    return [a.index for a in active[at + 1 :]]


def _active_chain(history: Iterable[tuple[Mapping[str, Any], datetime, bool]]) -> list[_Active]:
    return [
        _Active(i, op, op_cid(op).encode(), created_at)
        for i, (op, created_at, nullified) in enumerate(history)
        if not nullified
    ]


def validate_new_op(
    did: str,
    history: Sequence[tuple[Mapping[str, Any], datetime, bool]],
    new_op: Mapping[str, Any],
    now: datetime,
) -> list[int]:
    """Decide whether a directory may accept ``new_op`` for ``did`` at time ``now``.

    ``history`` is the DID's audit log in order, as ``(op, created_at, nullified)``. Returns the indexes in
    ``history`` of the operations that accepting ``new_op`` nullifies (empty for a plain update); raises an
    :class:`InvalidOperation` subclass otherwise. Applies :func:`check_op_limits` and refuses legacy creates.
    All datetimes must be timezone-aware. CIDs of ``history`` are recomputed on each call (logs are short).
    """
    return _next_op_nullifies(did, _active_chain(history), new_op, now, new_submission=True)


def verify_audit_log(
    did: str, entries: Sequence[tuple[Mapping[str, Any], datetime, bool]]
) -> dict[str, Any] | None:
    """Replay a full audit log (nullified operations included) and return the final ``/data`` state.

    Each entry must have been acceptable when it arrived (recovery rules, timestamps, signatures; no
    submission limits), and each ``nullified`` flag must equal what the replay computes.
    """
    if not entries:
        raise InvalidOperation("empty audit log")
    nullified = [False] * len(entries)
    active: list[_Active] = []
    for i, (op, created_at, _flag) in enumerate(entries):
        for j in _next_op_nullifies(did, active, op, created_at, new_submission=False):
            nullified[j] = True
        active = [a for a in active if not nullified[a.index]]
        active.append(_Active(i, op, op_cid(op).encode(), created_at))
    for i, (_op, _created_at, flag) in enumerate(entries):
        if bool(flag) != nullified[i]:
            raise InvalidOperation(f"audit log entry {i}: nullified={flag} but replay says {nullified[i]}")
    return op_to_data(did, active[-1].op)
