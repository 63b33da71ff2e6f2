"""Sync 1.1 checks of one ``#commit`` or ``#sync`` against the repo state the relay holds for its DID.

Spec: atproto.com/specs/sync ("Sync 1.1": commit validation, MST inversion), /repository ("Commit Objects"),
checklist §6–§7. These functions do no I/O: the caller (:mod:`atstack.relay.ingest`) has already resolved
the DID's key, checked which host it lives on and whether the account is active, and decides what to do
with the outcome — drop with a reason (:class:`Drop`), refresh the identity once and retry
(:class:`BadSignature`), or resync the repo (``chain_ok`` false).

Every reason is a short ``snake_case`` word: it is the ``reason`` label of the drop counter in the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from atstack.core.car import CarError, read_car, read_car_header
from atstack.core.cid import CID
from atstack.core.commit import Commit, CommitError, decode_commit, verify_commit
from atstack.core.crypto import PublicKey
from atstack.core.repo_verify import RepoVerifyError, verify_commit_slice
from atstack.core.stream import MAX_SYNC_BLOCKS_SIZE, CommitEvent, SyncEvent
from atstack.core.tid import MAX_CLOCK_ID, MAX_TIMESTAMP_US, tid_from_parts, tid_to_timestamp_us

__all__ = [
    "BadSignature",
    "Drop",
    "RepoState",
    "Verified",
    "check_rev_time",
    "verify_commit_event",
    "verify_sync_event",
]


class Drop(Exception):
    """The event is not passed on; ``reason`` is the metrics label, the message the detail for the log."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class BadSignature(Drop):
    """The commit is not signed by the key we hold for the DID (the caller refreshes it once and retries)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("bad_signature", detail)


@dataclass(slots=True)
class RepoState:
    """What the relay remembers of a repo: its last accepted commit (all None before the first one)."""

    rev: str | None = None
    commit_cid: CID | None = None
    data_cid: CID | None = None


@dataclass(slots=True)
class Verified:
    """An accepted commit: the signed object, its CID, and whether it extends the chain we know."""

    commit: Commit
    cid: CID
    chain_ok: bool


_horizon: list[Any] = [None, None, ""]  # whole second of ``now``, tolerance, the latest TID allowed then


def check_rev_time(rev: str, now: float, tolerance: float) -> None:
    """A rev whose TID timestamp is more than ``tolerance`` seconds ahead of ``now`` is refused.

    Valid TIDs sort like their timestamps, so this is one string comparison against the latest TID allowed,
    worked out once per second of ``now`` (rounded up: a rev is never refused early).
    """
    second = int(now)
    if _horizon[0] != second or _horizon[1] != tolerance:
        limit_us = int((second + 1 + tolerance) * 1_000_000)
        _horizon[:] = [second, tolerance, tid_from_parts(min(limit_us, MAX_TIMESTAMP_US), MAX_CLOCK_ID)]
    if rev > _horizon[2]:
        ahead = tid_to_timestamp_us(rev) / 1e6 - now
        if ahead > tolerance:
            raise Drop("future_rev", f"rev {rev} is {ahead:.0f} s in the future")


def _classify(exc: RepoVerifyError) -> Drop:
    text = str(exc)
    if text.startswith("commit signature does not verify"):
        return BadSignature(text)
    if text.startswith("commit is for"):
        return Drop("field_mismatch", text)
    if text.startswith(("bad CAR", "CAR has no root", "commit block", "bad commit")):
        return Drop("bad_commit", text)
    if text.startswith("record "):
        return Drop("bad_record", text)
    return Drop("invalid_proof", text)


def verify_commit_event(
    evt: CommitEvent,
    key: PublicKey,
    prev: RepoState | None,
    now: float,
    *,
    future_tolerance: float = 300.0,
    lenient: bool = False,
) -> Verified:
    """Check one ``#commit``; raises :class:`Drop` (or :class:`BadSignature`) when it must not be passed on.

    Always checks: ``tooBig``/``rebase`` unset; ``rev`` greater than the last accepted rev and not more than
    ``future_tolerance`` ahead of ``now``; the CAR slice's root is the event's ``commit`` and is a v3 commit
    for ``repo`` with the event's ``rev``, signed by ``key``; every op is proven by the slice's MST nodes
    (created/updated paths hold the op's CID and its record block is present, deleted paths are absent);
    inverting the ops on the new tree yields ``prevData``; the chain: ``since`` equals the last accepted rev
    and ``prevData`` the last accepted ``data`` (a mismatch is not a drop: ``chain_ok`` is false and the
    caller resyncs).

    Only in strict mode (``lenient`` false, the default): ``prevData`` must be present unless ``since`` is
    null (a repo's first commit); without it the ops cannot be inverted, so a lenient relay only checks
    their inclusion.

    Also: every created/updated record is at most 1 MiB and, as dag-cbor, a strict DRISL map (``bad_record``).

    Does not check: identity, host and account status (the caller's job, before this); records against
    their lexicons (relays never lexicon-validate); upstream ``seq`` order; ``blobs`` (deprecated, always
    empty); the event ``time``.
    """
    if evt.too_big or evt.rebase:
        raise Drop("deprecated_flag", "tooBig or rebase is set")
    if prev is not None and prev.rev is not None and evt.rev <= prev.rev:
        raise Drop("stale_rev", f"rev {evt.rev} is not after {prev.rev}")
    check_rev_time(evt.rev, now, future_tolerance)
    if evt.prev_data is None and evt.since is not None and not lenient:
        raise Drop("missing_prev_data", "no prevData: the ops cannot be inverted")
    if not evt.blocks:
        raise Drop("bad_commit", "empty blocks")
    try:
        roots, _ = read_car_header(evt.blocks)  # the usual one-root header is matched without decoding
    except CarError as exc:
        raise Drop("bad_commit", f"bad CAR: {exc}") from None
    if not roots or roots[0] != evt.commit:
        raise Drop("field_mismatch", "the slice's root is not the event's commit")
    try:
        commit = verify_commit_slice(evt.blocks, evt.ops, evt.prev_data, did=evt.repo, public_key=key)
    except RepoVerifyError as exc:
        raise _classify(exc) from None
    if commit.rev != evt.rev:
        raise Drop("field_mismatch", f"event rev {evt.rev} but the signed commit says {commit.rev}")
    chain_ok = True
    if prev is not None and prev.rev is not None:
        data_moved = (
            evt.prev_data is not None and prev.data_cid is not None and evt.prev_data != prev.data_cid
        )
        chain_ok = evt.since == prev.rev and not data_moved
    return Verified(commit, evt.commit, chain_ok)


def verify_sync_event(
    evt: SyncEvent, key: PublicKey, prev: RepoState | None, now: float, *, future_tolerance: float = 300.0
) -> Verified:
    """Check one ``#sync``; raises :class:`Drop` (or :class:`BadSignature`).

    Always checks: ``blocks`` is a CAR (hashes verified) of at most 10,000 bytes whose root block is a v3
    commit for ``did`` with the event's ``rev``, signed by ``key``; ``rev`` greater than the last accepted rev
    and not in the future. ``chain_ok`` is false when the commit differs from the last one we accepted — the
    repo moved without us seeing how, so the caller resyncs its derived state.

    Does not check: identity, host and account status (the caller's job); the MST under the commit (a
    ``#sync`` carries only the commit block); the event ``time``.
    """
    if prev is not None and prev.rev is not None and evt.rev <= prev.rev:
        raise Drop("stale_rev", f"rev {evt.rev} is not after {prev.rev}")
    check_rev_time(evt.rev, now, future_tolerance)
    try:
        car = read_car(evt.blocks, verify=True, max_size=MAX_SYNC_BLOCKS_SIZE)
    except CarError as exc:
        raise Drop("bad_commit", f"bad CAR: {exc}") from None
    if not car.roots or car.roots[0] not in car.blocks:
        raise Drop("bad_commit", "the CAR's root commit block is missing")
    cid = car.roots[0]
    try:
        commit = decode_commit(car.blocks[cid])
    except CommitError as exc:
        raise Drop("bad_commit", str(exc)) from None
    if commit.did != evt.did:
        raise Drop("field_mismatch", f"commit is for {commit.did}, event for {evt.did}")
    if commit.rev != evt.rev:
        raise Drop("field_mismatch", f"event rev {evt.rev} but the signed commit says {commit.rev}")
    if not verify_commit(commit, key):
        raise BadSignature(f"commit signature does not verify with {key.did_key()}")
    chain_ok = prev is None or prev.commit_cid is None or prev.commit_cid == cid
    return Verified(commit, cid, chain_ok)
