"""Single did:plc operations: shape, DRISL encoding and CID, signatures, DID derivation, state, building.

Spec: did:plc method specification v0.3.0 ("Operation Serialization, Signing, and Validation", "DID
Creation"). Overview and the log rules in :mod:`atstack.core.plc_op`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from atstack.core.cbor import encode as cbor_encode
from atstack.core.cid import CID, InvalidCID, cid_for_cbor, parse_cid
from atstack.core.crypto import (
    DID_KEY_PREFIX,
    InvalidKey,
    InvalidSignature,
    PrivateKey,
    PublicKey,
    parse_did_key,
    verify_signature,
)
from atstack.core.did_doc import ATPROTO_PDS_TYPE, render_did_doc

__all__ = [
    "MAX_OP_BYTES",
    "GenesisHashMismatch",
    "InvalidOperation",
    "LateRecovery",
    "MisorderedOperation",
    "OpSignatureError",
    "check_op_limits",
    "check_op_shape",
    "create_genesis_op",
    "create_tombstone_op",
    "create_update_op",
    "did_for_genesis",
    "normalize_op",
    "op_cid",
    "op_to_data",
    "op_to_did_doc",
    "rotation_keys_of",
    "sign_op",
    "signer_index",
    "verify_op_signature",
]

MAX_OP_BYTES = 7500
MIN_ROTATION_KEYS = 1
MAX_ROTATION_KEYS = 5
MAX_VERIFICATION_METHODS = 10
# anti-abuse caps of the reference directory (packages/server/src/constraints.ts), not in the spec text
MAX_AKA_ENTRIES = 10
MAX_AKA_LENGTH = 258  # "at://" + a 253-char handle
MAX_SERVICE_ENTRIES = 10
MAX_SERVICE_TYPE_LENGTH = 256
MAX_SERVICE_ENDPOINT_LENGTH = 512
MAX_ID_LENGTH = 32
MAX_DID_KEY_LENGTH = 256

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_B58_CHARS = re.compile(r"[1-9A-HJ-NP-Za-km-z]+")
_FIELDS = {
    "plc_operation": frozenset(
        ("type", "rotationKeys", "verificationMethods", "alsoKnownAs", "services", "prev")
    ),
    "plc_tombstone": frozenset(("type", "prev")),
    "create": frozenset(("type", "signingKey", "recoveryKey", "handle", "service", "prev")),
}


class InvalidOperation(ValueError):
    """An operation is malformed or may not be applied to this DID's log (reason in the message)."""


class OpSignatureError(InvalidOperation, InvalidSignature):
    """No allowed rotation key produced the operation's signature (or ``sig`` is not canonical)."""


class MisorderedOperation(InvalidOperation):
    """``prev`` does not point where it must (unknown, nullified, tombstoned, or wrong for a genesis)."""


class LateRecovery(InvalidOperation):
    """A fork would nullify an operation older than the 72-hour recovery window."""


class GenesisHashMismatch(InvalidOperation):
    """The genesis operation does not hash to the DID."""


# ---------------------------------------------------------------------------------------------------------------
# shape, encoding, hashing


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def check_op_shape(op: object, *, signed: bool = True) -> str:
    """Check the exact field set and field types of an operation; return its ``type``."""
    if not isinstance(op, dict):
        raise InvalidOperation("operation must be a JSON object")
    op_type = op.get("type")
    fields = _FIELDS.get(op_type) if isinstance(op_type, str) else None
    if fields is None:
        raise InvalidOperation(f"unknown operation type {op_type!r}")
    expected = fields | {"sig"} if signed else fields
    if op.keys() != expected:
        missing, extra = sorted(expected - op.keys()), sorted(op.keys() - expected)
        raise InvalidOperation(f"{op_type} fields wrong (missing {missing}, unexpected {extra})")
    if signed and not isinstance(op["sig"], str):
        raise InvalidOperation("sig must be a string")
    prev = op["prev"]
    if prev is not None:
        if op_type == "create":
            raise InvalidOperation("legacy create operation must have prev null")
        try:
            parse_cid(prev)
        except InvalidCID as exc:
            raise InvalidOperation(f"prev is not a CID string: {exc}") from None
    elif op_type == "plc_tombstone":
        raise InvalidOperation("tombstone must have a prev")
    if op_type == "plc_operation":
        vms, services = op["verificationMethods"], op["services"]
        if not _is_str_list(op["rotationKeys"]) or not _is_str_list(op["alsoKnownAs"]):
            raise InvalidOperation("rotationKeys and alsoKnownAs must be arrays of strings")
        if not isinstance(vms, dict) or not all(isinstance(v, str) for v in vms.values()):
            raise InvalidOperation("verificationMethods must map names to did:key strings")
        if not isinstance(services, dict):
            raise InvalidOperation("services must be an object")
        for svc in services.values():
            if (
                not isinstance(svc, dict)
                or svc.keys() != {"type", "endpoint"}
                or not all(isinstance(v, str) for v in svc.values())
            ):
                raise InvalidOperation("each service must be exactly {type: string, endpoint: string}")
    elif op_type == "create" and not all(
        isinstance(op[k], str) for k in ("signingKey", "recoveryKey", "handle", "service")
    ):
        raise InvalidOperation("legacy create fields must be strings")
    return op_type


def _unsigned(op: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in op.items() if k != "sig"}


def op_cid(op: Mapping[str, Any]) -> CID:
    """CID (dag-cbor, sha2-256) of the signed operation: what the next operation's ``prev`` names."""
    return cid_for_cbor(cbor_encode(op))


def did_for_genesis(op: Mapping[str, Any]) -> str:
    """The DID a signed genesis operation creates."""
    if op.get("prev") is not None or "sig" not in op:
        raise InvalidOperation("a DID derives only from a signed genesis operation (prev null)")
    digest = hashlib.sha256(cbor_encode(op)).digest()
    return "did:plc:" + base64.b32encode(digest).decode("ascii").lower()[:24]


def _encode_sig(sig: bytes) -> str:
    return base64.urlsafe_b64encode(sig).rstrip(b"=").decode("ascii")


def _decode_sig(sig: object) -> bytes:
    # Only the canonical encoding is accepted: a different spelling of the same bytes would change the CID.
    if not isinstance(sig, str) or not _B64URL.fullmatch(sig) or len(sig) % 4 == 1:
        raise OpSignatureError("sig must be unpadded base64url")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    if _encode_sig(raw) != sig:
        raise OpSignatureError("sig has non-zero base64url padding bits")
    return raw


# ---------------------------------------------------------------------------------------------------------------
# signing and verifying


def sign_op(unsigned: Mapping[str, Any], key: PrivateKey) -> dict[str, Any]:
    """Sign an unsigned operation with a rotation key; returns the operation with ``sig`` added."""
    if "sig" in unsigned:
        raise InvalidOperation("operation is already signed; pass it without 'sig'")
    op = dict(unsigned)
    check_op_shape(op, signed=False)
    op["sig"] = _encode_sig(key.sign(cbor_encode(op)))
    return op


def signer_index(op: Mapping[str, Any], rotation_keys: Sequence[str]) -> int:
    """Index of the first key in ``rotation_keys`` that verifies ``op``'s signature."""
    sig = _decode_sig(op.get("sig"))
    data = cbor_encode(_unsigned(op))
    for i, did_key in enumerate(rotation_keys):
        try:
            if verify_signature(did_key, data, sig):
                return i
        except InvalidKey:
            continue  # an unusable key in an old log cannot have signed anything
    raise OpSignatureError("operation is not signed by any allowed rotation key")


def verify_op_signature(op: Mapping[str, Any], rotation_keys: Sequence[str]) -> str:
    """The ``did:key`` (from ``rotation_keys``) that signed ``op``; raises :class:`OpSignatureError`."""
    return rotation_keys[signer_index(op, rotation_keys)]


# ---------------------------------------------------------------------------------------------------------------
# state of a DID after an operation


def _at_uri(handle: str) -> str:
    if handle.startswith("at://"):
        return handle
    return "at://" + handle.replace("http://", "").replace("https://", "")


def _http_url(url: str) -> str:
    return url if url.startswith(("http://", "https://")) else "https://" + url


def normalize_op(op: Mapping[str, Any]) -> dict[str, Any]:
    """The ``plc_operation`` equivalent of a legacy ``create`` (others are returned as they are).

    The legacy signing key doubles as the second rotation key, after the recovery key.
    """
    if op.get("type") != "create":
        return dict(op)
    out = {
        "type": "plc_operation",
        "rotationKeys": [op["recoveryKey"], op["signingKey"]],
        "verificationMethods": {"atproto": op["signingKey"]},
        "alsoKnownAs": [_at_uri(op["handle"])],
        "services": {"atproto_pds": {"type": ATPROTO_PDS_TYPE, "endpoint": _http_url(op["service"])}},
        "prev": None,
    }
    if "sig" in op:
        out["sig"] = op["sig"]
    return out


def rotation_keys_of(op: Mapping[str, Any]) -> list[str]:
    """The keys allowed to sign the operation that follows ``op`` (none after a tombstone)."""
    if op["type"] == "plc_tombstone":
        return []
    return normalize_op(op)["rotationKeys"]


def op_to_data(did: str, op: Mapping[str, Any]) -> dict[str, Any] | None:
    """The DID's state after ``op`` in the ``/data`` shape; None after a tombstone."""
    if op.get("type") == "plc_tombstone":
        return None
    n = normalize_op(op)
    return {
        "did": did,
        "verificationMethods": n["verificationMethods"],
        "rotationKeys": n["rotationKeys"],
        "alsoKnownAs": n["alsoKnownAs"],
        "services": n["services"],
    }


def op_to_did_doc(did: str, op: Mapping[str, Any]) -> dict[str, Any] | None:
    """The DID document after ``op`` as plc.directory renders it; None after a tombstone."""
    data = op_to_data(did, op)
    if data is None:
        return None
    return render_did_doc(did, data["alsoKnownAs"], data["verificationMethods"], data["services"])


# ---------------------------------------------------------------------------------------------------------------
# limits on new submissions


def _is_did_key_syntax(value: str) -> bool:
    # did:plc takes any key type for verification methods, so only the did:key + base58btc form is checked
    return value.startswith(DID_KEY_PREFIX + "z") and bool(
        _B58_CHARS.fullmatch(value[len(DID_KEY_PREFIX) + 1 :])
    )


def check_op_limits(op: Mapping[str, Any]) -> None:
    """Enforce the size and content limits for a *new* operation (see the module docstring)."""
    size = len(cbor_encode(op))
    if size > MAX_OP_BYTES:
        raise InvalidOperation(f"operation is {size} bytes in DRISL, limit {MAX_OP_BYTES}")
    if op["type"] != "plc_operation":
        return
    keys = op["rotationKeys"]
    if not MIN_ROTATION_KEYS <= len(keys) <= MAX_ROTATION_KEYS:
        raise InvalidOperation(f"need {MIN_ROTATION_KEYS}-{MAX_ROTATION_KEYS} rotation keys, got {len(keys)}")
    if len(set(keys)) != len(keys):
        raise InvalidOperation("rotation keys must not repeat")
    for k in keys:
        try:
            parse_did_key(k)
        except InvalidKey as exc:
            raise InvalidOperation(f"rotation key {k!r} is not a k256/p256 did:key: {exc}") from None
    vms = op["verificationMethods"]
    if len(vms) > MAX_VERIFICATION_METHODS:
        raise InvalidOperation(f"more than {MAX_VERIFICATION_METHODS} verification methods")
    for name, key in vms.items():
        if len(name) > MAX_ID_LENGTH or len(key) > MAX_DID_KEY_LENGTH or not _is_did_key_syntax(key):
            raise InvalidOperation(f"verification method {name!r} has a bad name or did:key")
    aka = op["alsoKnownAs"]
    if len(aka) > MAX_AKA_ENTRIES or any(len(a) > MAX_AKA_LENGTH for a in aka) or len(set(aka)) != len(aka):
        raise InvalidOperation(f"alsoKnownAs: at most {MAX_AKA_ENTRIES} distinct entries of {MAX_AKA_LENGTH}")
    services = op["services"]
    if len(services) > MAX_SERVICE_ENTRIES:
        raise InvalidOperation(f"more than {MAX_SERVICE_ENTRIES} services")
    for name, svc in services.items():
        if (
            len(name) > MAX_ID_LENGTH
            or len(svc["type"]) > MAX_SERVICE_TYPE_LENGTH
            or len(svc["endpoint"]) > MAX_SERVICE_ENDPOINT_LENGTH
        ):
            raise InvalidOperation(f"service {name[:40]!r}: name, type or endpoint too long")


# ---------------------------------------------------------------------------------------------------------------
# building operations


def _did_key_of(key: str | PublicKey | PrivateKey) -> str:
    return key if isinstance(key, str) else key.did_key()


def create_genesis_op(
    signing_key: PrivateKey,
    rotation_keys: Sequence[str | PublicKey | PrivateKey],
    verification_methods: Mapping[str, str],
    also_known_as: Sequence[str],
    services: Mapping[str, Mapping[str, str]],
) -> dict[str, Any]:
    """A signed genesis ``plc_operation``; ``signing_key`` (a rotation key, listed in ``rotation_keys``) signs.

    Use :func:`did_for_genesis` on the result for the DID.
    """
    keys = [_did_key_of(k) for k in rotation_keys]
    if signing_key.did_key() not in keys:
        raise InvalidOperation("the genesis operation must be signed by one of its own rotation keys")
    unsigned = {
        "type": "plc_operation",
        "rotationKeys": keys,
        "verificationMethods": dict(verification_methods),
        "alsoKnownAs": list(also_known_as),
        "services": {name: dict(svc) for name, svc in services.items()},
        "prev": None,
    }
    op = sign_op(unsigned, signing_key)
    check_op_limits(op)
    return op


_CHANGE_FIELDS = {
    "rotation_keys": "rotationKeys",
    "verification_methods": "verificationMethods",
    "also_known_as": "alsoKnownAs",
    "services": "services",
}


def create_update_op(prev_op: Mapping[str, Any], rotation_key: PrivateKey, **changes: Any) -> dict[str, Any]:
    """A signed update following ``prev_op``: its state with ``changes`` applied.

    ``changes``: any of ``rotation_keys``, ``verification_methods``, ``also_known_as``, ``services`` (whole
    values), or the atproto shorthands ``handle`` (replaces the first ``at://`` alias), ``pds_endpoint``
    (the ``atproto_pds`` service) and ``atproto_key`` (the ``atproto`` verification method, did:key or key).
    ``rotation_key`` must be one of ``prev_op``'s rotation keys.
    """
    if prev_op.get("type") == "plc_tombstone":
        raise MisorderedOperation("a tombstoned DID cannot be updated")
    if rotation_key.did_key() not in rotation_keys_of(prev_op):
        raise InvalidOperation("rotation_key is not a rotation key of the previous operation")
    state = _unsigned(normalize_op(prev_op))
    state["prev"] = op_cid(prev_op).encode()
    for name, value in changes.items():
        if name in _CHANGE_FIELDS:
            if name == "rotation_keys":
                value = [_did_key_of(k) for k in value]
            state[_CHANGE_FIELDS[name]] = value
        elif name == "handle":
            aka = list(state["alsoKnownAs"])
            at = next((i for i, a in enumerate(aka) if a.startswith("at://")), None)
            if at is None:
                aka.insert(0, _at_uri(value))
            else:
                aka[at] = _at_uri(value)
            state["alsoKnownAs"] = aka
        elif name == "pds_endpoint":
            state["services"] = {
                **state["services"],
                "atproto_pds": {"type": ATPROTO_PDS_TYPE, "endpoint": _http_url(value)},
            }
        elif name == "atproto_key":
            key = value if isinstance(value, str) else value.did_key()
            if not key.startswith(DID_KEY_PREFIX):
                key = DID_KEY_PREFIX + key  # a bare multikey
            state["verificationMethods"] = {**state["verificationMethods"], "atproto": key}
        else:
            raise TypeError(f"create_update_op() got an unexpected change {name!r}")
    op = sign_op(state, rotation_key)
    check_op_limits(op)
    return op


def create_tombstone_op(prev_op: Mapping[str, Any], rotation_key: PrivateKey) -> dict[str, Any]:
    """A signed tombstone ending the DID after ``prev_op``."""
    if prev_op.get("type") == "plc_tombstone":
        raise MisorderedOperation("the DID is already tombstoned")
    if rotation_key.did_key() not in rotation_keys_of(prev_op):
        raise InvalidOperation("rotation_key is not a rotation key of the previous operation")
    return sign_op({"type": "plc_tombstone", "prev": op_cid(prev_op).encode()}, rotation_key)
