"""did:plc operations: building, signing, hashing, and validating them against a DID's log.

Spec: did:plc method specification v0.3.0 (web.plc.directory/spec/v0.1/did-plc; repo did-method-plc).

* Operation types: ``plc_operation`` (create or update: ``rotationKeys``, ``verificationMethods``,
  ``alsoKnownAs``, ``services``, ``prev``, ``sig``), ``plc_tombstone`` (``prev``, ``sig``) and the legacy genesis
  ``create`` (``signingKey``, ``recoveryKey``, ``handle``, ``service``, ``prev: null``, ``sig``), which is read and
  verified but never written or accepted as a new submission. Objects have exactly these fields.
* ``sig`` = base64url, no padding, zero trailing bits, of the 64-byte low-S signature over the DRISL encoding
  of the operation *without* the ``sig`` key. ``prev`` is the base32 CID string (not a CBOR link) of the DRISL
  encoding of the previous signed operation, or null for a genesis operation.
* DID = ``did:plc:`` + first 24 chars of lowercase base32(SHA-256(DRISL(signed genesis operation))).
* Every operation after the genesis must be signed by a rotation key of the operation it points to (the
  genesis by one of its own). Keys are listed by descending authority: within 72 hours of an operation, a key
  listed *before* the key that signed it may sign a new operation forking from the same ``prev``; the
  operations from the fork point on are then *nullified* (recovery). An operation may not follow a tombstone.
* Limits on new submissions (:func:`check_op_limits`): DRISL size ≤ 7500 bytes, 1–5 distinct rotation keys
  (k256/p256 did:keys), ≤ 10 verification methods (any syntactically valid did:key); plus the reference
  directory's anti-abuse caps on ``alsoKnownAs``, ``services`` and name lengths. Logs already accepted by a
  directory are replayed without these limits (real logs contain e.g. empty or repeated rotation keys).

:mod:`.operation` holds single operations (shape, encoding, signing, building, state); :mod:`.log` validates
sequences of them.
"""

from atstack.core.plc_op.log import (
    RECOVERY_WINDOW,
    HistoryEntry,
    validate_new_op,
    verify_audit_log,
    verify_op_chain,
)
from atstack.core.plc_op.operation import (
    MAX_OP_BYTES,
    GenesisHashMismatch,
    InvalidOperation,
    LateRecovery,
    MisorderedOperation,
    OpSignatureError,
    check_op_limits,
    check_op_shape,
    create_genesis_op,
    create_tombstone_op,
    create_update_op,
    did_for_genesis,
    normalize_op,
    op_cid,
    op_to_data,
    op_to_did_doc,
    sign_op,
    verify_op_signature,
)

__all__ = [
    "MAX_OP_BYTES",
    "RECOVERY_WINDOW",
    "GenesisHashMismatch",
    "HistoryEntry",
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
    "sign_op",
    "validate_new_op",
    "verify_audit_log",
    "verify_op_chain",
    "verify_op_signature",
]
