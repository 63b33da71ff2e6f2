"""Preparing record writes: ``$type``, record keys, lexicon validation modes, DRISL encoding, blob refs.

Spec: atproto.com/specs/repository, /record-key, /lexicon ("Validation Options"), /blob; checklist §2, §8,
§11. Behaviour anchored on the reference PDS's ``repo/prepare``:

* the record is an object; a missing ``$type`` is set to the collection, a different one is refused
  ("Invalid $type: expected …, got …");
* a given record key must be valid syntax (``.``, ``..``, ``/``, path tricks are refused); a create without
  one gets a fresh TID;
* ``validate: false`` skips the lexicon (``validationStatus`` omitted) but the data model is still checked
  (blob objects well-formed; floats never reach here — the JSON body conversion refuses them);
  ``validate: true`` refuses a collection without a known record lexicon ("Unknown lexicon type");
  unset validates when the lexicon is known (``valid``) and reports ``unknown`` otherwise. When validated,
  the record key must also match the lexicon's key type (``tid``, ``nsid``, ``literal:self``, ``any``);
* legacy blob refs (``{cid, mimeType}``) may not be written;
* the DRISL encoding may not exceed :data:`MAX_RECORD_BYTES` (the firehose's per-record cap).

Every failure raises ``InvalidRequestError`` (400 ``InvalidRequest``) with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from atstack.core.cid import CID, CODEC_RAW
from atstack.core.data_model import DataModelError, encode_record, validate_data
from atstack.core.lexicon import LexiconError, Lexicons, ValidationError
from atstack.core.repo import RecordWrite
from atstack.core.repo_op import Action
from atstack.core.syntax import is_valid_nsid, is_valid_record_key
from atstack.core.tid import next_tid
from atstack.pds.store.blobs import BlobRef
from atstack.xrpc.errors import InvalidRequestError

__all__ = [
    "MAX_RECORD_BYTES",
    "UNSET",
    "PreparedWrite",
    "iter_blob_refs",
    "prepare_delete",
    "prepare_record",
]

# A #commit may carry record blocks of at most 1,000,000 bytes (checklist §6), under the 1 MiB guide limit.
MAX_RECORD_BYTES = 1_000_000


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # "no swap check requested" (``None`` means "must currently be absent")


@dataclass(slots=True)
class PreparedWrite:
    """One validated write. ``swap`` is :data:`UNSET`, ``None`` (path must be empty) or the expected CID."""

    action: Action
    collection: str
    rkey: str
    record: bytes | None = None
    cid: CID | None = None
    blobs: tuple[BlobRef, ...] = ()
    validation_status: str | None = None
    swap: Any = UNSET

    @property
    def path(self) -> str:
        return f"{self.collection}/{self.rkey}"

    def uri(self, did: str) -> str:
        return f"at://{did}/{self.collection}/{self.rkey}"

    def to_record_write(self) -> RecordWrite:
        return RecordWrite(self.action, self.collection, self.rkey, self.record)


def _check_collection(collection: Any) -> str:
    if not isinstance(collection, str) or not is_valid_nsid(collection):
        raise InvalidRequestError(f"Invalid collection: {str(collection)[:300]}")
    return collection


def _check_rkey(rkey: Any) -> str:
    if not isinstance(rkey, str) or not is_valid_record_key(rkey):
        raise InvalidRequestError(f"Invalid record key: {str(rkey)[:600]}")
    return rkey


def iter_blob_refs(value: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """Every blob object inside a data-model value, legacy ``{cid, mimeType}`` ones included (which
    :func:`atstack.core.data_model.iter_blob_refs` leaves out: a write must be able to refuse them)."""
    if depth > 64:
        return
    if type(value) is dict:
        if value.get("$type") == "blob" or (
            "$type" not in value
            and isinstance(value.get("cid"), str)
            and isinstance(value.get("mimeType"), str)
        ):
            yield value
            return
        for item in value.values():
            if type(item) in (dict, list):
                yield from iter_blob_refs(item, depth + 1)
    elif type(value) is list:
        for item in value:
            if type(item) in (dict, list):
                yield from iter_blob_refs(item, depth + 1)


def _blob_refs(record: dict[str, Any]) -> tuple[BlobRef, ...]:
    refs: dict[CID, BlobRef] = {}
    for blob in iter_blob_refs(record):
        if "$type" not in blob:
            raise InvalidRequestError(f"Legacy blobs are not allowed ({blob.get('cid')})")
        ref = blob.get("ref")
        if type(ref) is not CID or ref.cid_bytes[1] != CODEC_RAW:
            raise InvalidRequestError("Invalid blob: 'ref' must be a link to a raw (0x55) CID")
        refs[ref] = BlobRef(ref, blob["mimeType"], blob["size"])
    return tuple(refs.values())


def _validate(
    lexicons: Lexicons, collection: str, rkey: str, record: dict[str, Any], validate: bool | None
) -> str | None:
    if validate is False:
        return None
    try:
        lexicons.record_key_type(collection)
    except LexiconError:
        if validate is True:
            raise InvalidRequestError(f"Unknown lexicon type: {collection}") from None
        return "unknown"
    try:
        lexicons.validate_record_key(collection, rkey)
    except ValidationError as exc:
        raise InvalidRequestError(f"Invalid record key for {collection}: {exc.reason}") from None
    try:
        lexicons.validate_record(collection, record)
    except ValidationError as exc:
        raise InvalidRequestError(f"Invalid {collection} record: {exc}") from None
    return "valid"


def prepare_record(
    lexicons: Lexicons,
    action: Action,
    collection: Any,
    rkey: Any,
    record: Any,
    validate: bool | None,
    swap: Any = UNSET,
) -> PreparedWrite:
    """A create or update (``rkey`` None on a create: a new TID). ``record`` is in data-model form."""
    collection = _check_collection(collection)
    if rkey is None:
        if action != "create":
            raise InvalidRequestError("A record key is required")
        rkey = next_tid()
    rkey = _check_rkey(rkey)
    if type(record) is not dict:
        raise InvalidRequestError("Record must be an object")
    record_type = record.get("$type")
    if record_type is None:
        record = {**record, "$type": collection}
    elif record_type != collection:
        raise InvalidRequestError(f"Invalid $type: expected {collection}, got {record_type}")
    try:
        validate_data(record)
    except DataModelError as exc:
        raise InvalidRequestError(f"Invalid record: {exc}") from None
    status = _validate(lexicons, collection, rkey, record, validate)
    blobs = _blob_refs(record)
    try:
        block, cid = encode_record(record, max_size=MAX_RECORD_BYTES)
    except DataModelError as exc:
        raise InvalidRequestError(f"Record is too large or not encodable: {exc}") from None
    return PreparedWrite(action, collection, rkey, block, cid, blobs, status, swap)


def prepare_delete(collection: Any, rkey: Any, swap: Any = UNSET) -> PreparedWrite:
    return PreparedWrite("delete", _check_collection(collection), _check_rkey(rkey), swap=swap)
