"""The atproto data model: JSON form ⇄ data-model values, validation, record encoding, blob references.

Spec: atproto.com/specs/data-model ("Data Types", "blob Type", "JSON Representation", "Link and CID
Formats"), checklist §2. Data-model values are ``None``, ``bool``, ``int`` (signed 64-bit), ``str``,
``bytes``, :class:`CID`, ``list`` and ``dict`` with ``str`` keys; there are no floats. In the JSON form a
CID is ``{"$link": "<base32 CID>"}`` and bytes are ``{"$bytes": "<base64>"}``; DRISL (``core.cbor``) is the
binary form that gets hashed and signed.

Rules checked beyond the types (spec and interop vectors): an object with ``$link`` or ``$bytes`` has
that single key; ``$type``, where present, is a non-empty string; an object with ``$type: "blob"`` is a
blob (``ref`` a raw-codec CID, ``mimeType`` a non-empty string, ``size`` an integer; the spec asks for a
positive size, reading also accepts 0); other ``$`` keys are kept as they are. Integer-valued JSON numbers such as
``123.0`` read as integers (within ±2^53, where a double still holds the exact value). The recommended
limits apply: nesting ≤ 32, ≤ 131,072 elements per container, keys ≤ 8,192 UTF-8 bytes, CIDs ≤ 100 bytes.
Legacy blobs (``{"cid": "<string>", "mimeType": …}``) are ordinary objects here: read as they are, never
written by us, and not reported by :func:`iter_blob_refs` (they can only be recognised with a Lexicon).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterator
from typing import Any, Final

import orjson
from cbrrr import _cbrrr

from atstack.core.cbor import INT64_MAX, INT64_MIN, MAX_DEPTH, CBORDecodeError, encode, screen_encoded
from atstack.core.cid import CID, CODEC_RAW, InvalidCID, check_cid_bytes, cid_for_cbor, parse_cid

__all__ = [
    "MAX_CID_BYTES",
    "MAX_CONTAINER_LEN",
    "MAX_DEPTH",
    "MAX_KEY_BYTES",
    "MAX_RECORD_CBOR_SIZE",
    "MAX_RECORD_JSON_SIZE",
    "DataModelError",
    "data_to_json",
    "dump_json",
    "encode_record",
    "iter_blob_refs",
    "json_to_data",
    "parse_json",
    "record_cid",
    "validate_data",
]

MAX_RECORD_CBOR_SIZE: Final = 1024 * 1024
MAX_RECORD_JSON_SIZE: Final = 2 * 1024 * 1024
MAX_CONTAINER_LEN: Final = 128 * 1024
MAX_KEY_BYTES: Final = 8192
MAX_CID_BYTES: Final = 100
MAX_SAFE_INTEGER: Final = 2**53 - 1

_decode_cbor = _cbrrr.decode_dag_cbor  # (value, bytes consumed); our own output needs no further checks
_encode_cbor = _cbrrr.encode_dag_cbor  # (value, CID type, JSON mode)
_SHORT_KEY = MAX_KEY_BYTES // 4  # a key of at most this many characters has at most MAX_KEY_BYTES bytes
_MAX_LINK_CHARS = 1 + (MAX_CID_BYTES * 8 + 4) // 5
_MISSING: Any = object()
_BLOB_KEYS = frozenset({"$type", "ref", "mimeType", "size"})
_RAW_SHA256_PREFIX = b"\x01\x55\x12\x20"  # CIDv1, raw codec, sha2-256, 32-byte digest
_BLESSED_PREFIXES = frozenset({b"\x01\x71\x12\x20", _RAW_SHA256_PREFIX})


class DataModelError(ValueError):
    """A value is not valid atproto data (reason in the message)."""


# -- JSON form -> data model -----------------------------------------------------------------------------


def json_to_data(obj: Any, *, require_object: bool = False) -> Any:
    """Convert parsed JSON to data-model values (``$link`` → :class:`CID`, ``$bytes`` → ``bytes``).

    ``require_object``: the value must be a JSON object (a record, an XRPC body). Raises
    :class:`DataModelError`.
    """
    if require_object and type(obj) is not dict:
        raise DataModelError(f"top-level value must be an object, not {_kind(obj)}")
    return _from_json(obj, 0)


def parse_json(
    raw: bytes | str, *, max_size: int = MAX_RECORD_JSON_SIZE, require_object: bool = False
) -> Any:
    """Parse JSON text (orjson) into data-model values; ``max_size`` bounds the encoded size in bytes."""
    size = len(raw.encode()) if isinstance(raw, str) and not raw.isascii() else len(raw)
    if size > max_size:
        raise DataModelError(f"JSON input of {size} bytes exceeds limit of {max_size}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DataModelError(f"invalid JSON: {exc}") from None
    return json_to_data(obj, require_object=require_object)


def _from_json(v: Any, depth: int) -> Any:
    """``v`` sits in a container at ``depth`` (0 for the top); a container value would be at depth + 1."""
    t = type(v)
    if t is str or t is bool or v is None:
        return v
    if t is int:
        if INT64_MIN <= v <= INT64_MAX:
            return v
        raise DataModelError(f"integer {v} outside the signed 64-bit range")
    if t is dict:
        return _object_from_json(v, depth)
    if t is list:
        if depth >= MAX_DEPTH or len(v) > MAX_CONTAINER_LEN:
            _check_container(v, depth)
        depth += 1
        # Strings are most values: skip the call for them.
        return [item if type(item) is str else _from_json(item, depth) for item in v]
    if t is float:
        return _float_from_json(v)
    raise DataModelError(f"not a JSON value: {t.__name__}")


def _object_from_json(v: dict[Any, Any], depth: int) -> Any:
    if "$link" in v:
        return _link_from_json(v)
    if "$bytes" in v:
        return _bytes_from_json(v)
    if depth >= MAX_DEPTH or len(v) > MAX_CONTAINER_LEN:
        _check_container(v, depth)
    type_ = v.get("$type", _MISSING)
    if type_ is not _MISSING:
        _check_type_field(type_)
        if type_ == "blob":
            return _blob_from_json(v, depth)
    depth += 1
    out = {}
    for key, item in v.items():
        if type(key) is not str or len(key) > _SHORT_KEY:
            _check_key(key)
        t = type(item)
        if t is str:  # most values: no call
            out[key] = item
        elif t is dict:
            out[key] = _object_from_json(item, depth)
        else:
            out[key] = _from_json(item, depth)
    return out


def _float_from_json(v: float) -> int:
    if not math.isfinite(v) or not v.is_integer():
        raise DataModelError(f"floats are not allowed in the atproto data model (got {v!r})")
    if abs(v) > MAX_SAFE_INTEGER:
        raise DataModelError(f"integer-valued number {v!r} is beyond ±2^53 and cannot be read exactly")
    return int(v)


def _link_from_json(v: dict[str, Any]) -> CID:
    if len(v) != 1:
        raise DataModelError("a $link object must have no other keys")
    text = v["$link"]
    if type(text) is not str:
        raise DataModelError(f"$link must be a string, not {_kind(text)}")
    return _parse_link(text)


def _parse_link(text: str) -> CID:
    """A ``$link`` string: lowercase base32 (``b…``) of a well-formed CIDv1 of at most 100 bytes."""
    # base64.b32decode is pure Python; cbrrr's JSON-mode encoder decodes base32 in C (strictly: no padding,
    # no stray bits), so the CID goes through a one-item CBOR round trip instead.
    if text[:1] == "b" and len(text) <= _MAX_LINK_CHARS and text.lower() == text:  # islower() is slower
        try:
            cid = _decode_cbor(_encode_cbor({"$link": text}, CID, True), CID, False)[0]
        except ValueError:
            pass  # not base32: parse_cid below says why
        else:
            raw = cid.cid_bytes
            if len(raw) == 36 and raw[:4] in _BLESSED_PREFIXES:
                return cid
    try:
        return parse_cid(text)
    except InvalidCID as exc:
        raise DataModelError(f"invalid $link CID {text[:120]!r}: {exc}") from None


def _bytes_from_json(v: dict[str, Any]) -> bytes:
    if len(v) != 1:
        raise DataModelError("a $bytes object must have no other keys")
    text = v["$bytes"]
    if type(text) is not str:
        raise DataModelError(f"$bytes must be a string, not {_kind(text)}")
    try:
        # RFC 4648 §4 alphabet only (validate=True); the padding is optional, so add what is missing.
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DataModelError(f"$bytes is not valid base64: {exc}") from None


def _blob_from_json(v: dict[str, Any], depth: int) -> dict[str, Any]:
    ref = v.get("ref")
    if type(ref) is not dict or "$link" not in ref:
        raise DataModelError("blob 'ref' must be a $link object")
    out = v.copy()
    out["ref"] = _link_from_json(ref)
    if type(out.get("size")) is float:
        out["size"] = _float_from_json(out["size"])
    _check_blob(out)
    if len(out) != len(_BLOB_KEYS):
        for key in out.keys() - _BLOB_KEYS:  # unknown "$" keys (_check_blob refused the others)
            out[key] = _from_json(out[key], depth + 1)
    return out


# -- data model -> JSON form --------------------------------------------------------------------------------


def data_to_json(obj: Any) -> Any:
    """The JSON form of data-model values: CID → ``{"$link"}``, bytes → ``{"$bytes"}`` (base64, no padding).

    Rejects (:class:`DataModelError`) what has no JSON form: unsupported types, floats, out-of-range
    integers, deep nesting, non-string keys and ``$link``/``$bytes`` keys. CIDs and the ``$type``/blob
    rules are not checked here (see :func:`validate_data`).
    """
    data = _encode_checked(obj)
    try:
        return _decode_cbor(data, CID, True)[0]  # C: CIDs to base32, bytes to unpadded base64
    except (ValueError, TypeError) as exc:  # a map with a "$link"/"$bytes" key
        raise DataModelError(str(exc)) from None


def dump_json(obj: Any) -> bytes:
    """JSON bytes for data-model values (see :func:`data_to_json`)."""
    return orjson.dumps(data_to_json(obj))


# -- validation and records ---------------------------------------------------------------------------------


def validate_data(obj: Any, *, require_object: bool = False) -> None:
    """Check data-model values built in Python against every data-model rule; raises :class:`DataModelError`."""
    if require_object and type(obj) is not dict:
        raise DataModelError(f"top-level value must be an object, not {_kind(obj)}")
    _validate(obj, 0)


def encode_record(obj: Any, *, max_size: int = MAX_RECORD_CBOR_SIZE) -> tuple[bytes, CID]:
    """DRISL bytes and dag-cbor CID of a data-model value (a record, usually).

    Checks what would make the encoding invalid DRISL (types, floats, integer range, nesting, size); the
    ``$type``/blob rules are :func:`validate_data`'s job.
    """
    data = _encode_checked(obj)
    if len(data) > max_size:
        raise DataModelError(f"encoded record of {len(data)} bytes exceeds limit of {max_size}")
    return data, cid_for_cbor(data)


def record_cid(obj: Any) -> CID:
    """The dag-cbor CID of a data-model value (see :func:`encode_record`)."""
    return cid_for_cbor(_encode_checked(obj))


def iter_blob_refs(obj: Any) -> Iterator[dict[str, Any]]:
    """Every blob object (``$type: "blob"``) inside data-model values, depth first, in document order."""
    t = type(obj)
    if t is dict:
        if obj.get("$type") == "blob":
            yield obj
            return
        for v in obj.values():
            if type(v) is dict or type(v) is list:
                yield from iter_blob_refs(v)
    elif t is list:
        for v in obj:
            if type(v) is dict or type(v) is list:
                yield from iter_blob_refs(v)


def _encode_checked(obj: Any) -> bytes:
    try:
        data = encode(obj)
    except (TypeError, ValueError, OverflowError) as exc:  # unsupported type, non-str key, int beyond ±2^64
        raise DataModelError(f"not a data-model value: {exc}") from None
    try:
        screen_encoded(obj, data)
    except CBORDecodeError as exc:
        raise DataModelError(str(exc)) from None
    return data


def _validate(v: Any, depth: int) -> None:
    t = type(v)
    if t is str or t is bool or t is bytes or v is None:
        return
    if t is int:
        if not INT64_MIN <= v <= INT64_MAX:
            raise DataModelError(f"integer {v} outside the signed 64-bit range")
    elif t is CID:
        _check_cid(v)
    elif t is dict:
        _check_container(v, depth)
        if "$link" in v or "$bytes" in v:
            raise DataModelError("$link and $bytes are reserved keys (they mark CIDs and bytes in JSON)")
        type_ = v.get("$type", _MISSING)
        if type_ is not _MISSING:
            _check_type_field(type_)
            if type_ == "blob":
                _check_blob(v)
        for key, item in v.items():
            if type(key) is not str or len(key) > _SHORT_KEY:
                _check_key(key)
            _validate(item, depth + 1)
    elif t is list:
        _check_container(v, depth)
        for item in v:
            _validate(item, depth + 1)
    elif t is float:
        raise DataModelError(f"floats are not allowed in the atproto data model (got {v!r})")
    else:
        raise DataModelError(f"not a data-model value: {t.__name__}")


# -- shared rules -------------------------------------------------------------------------------------------


def _check_container(v: dict[str, Any] | list[Any], depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise DataModelError(f"nesting deeper than {MAX_DEPTH}")
    if len(v) > MAX_CONTAINER_LEN:
        raise DataModelError(f"container with {len(v)} elements exceeds limit of {MAX_CONTAINER_LEN}")


def _check_key(key: Any) -> None:
    if type(key) is not str:
        raise DataModelError(f"object keys must be strings, not {_kind(key)}")
    if len(key) > _SHORT_KEY and len(key.encode()) > MAX_KEY_BYTES:
        raise DataModelError(f"object key longer than {MAX_KEY_BYTES} bytes")


def _check_type_field(type_: Any) -> None:
    if type(type_) is not str or not type_:
        raise DataModelError("$type must be a non-empty string")


def _check_cid(cid: CID) -> None:
    raw = cid.cid_bytes
    if type(raw) is not bytes:
        raise DataModelError("CID bytes must be bytes")
    if len(raw) != 36 or raw[:4] not in _BLESSED_PREFIXES:
        try:
            check_cid_bytes(raw)
        except InvalidCID as exc:
            raise DataModelError(f"invalid CID: {exc}") from None


def _check_blob(v: dict[str, Any]) -> None:
    """A blob object (``$type: "blob"``) in data-model form."""
    ref = v.get("ref")
    if type(ref) is not CID:
        raise DataModelError("blob 'ref' must be a CID link")
    raw = ref.cid_bytes
    if len(raw) != 36 or raw[:4] != _RAW_SHA256_PREFIX:
        _check_cid(ref)
        if raw[1] != CODEC_RAW:  # a CIDv1 whose codec varint is the single byte 0x55
            raise DataModelError("blob 'ref' must be a CID with the raw codec")
    mime_type = v.get("mimeType")
    if type(mime_type) is not str or not mime_type:
        raise DataModelError("blob 'mimeType' must be a non-empty string")
    size = v.get("size")
    if type(size) is not int or not 0 <= size <= INT64_MAX:
        raise DataModelError("blob 'size' must be an integer >= 0")
    if len(v) != len(_BLOB_KEYS):  # the four required keys are there: anything else is extra
        for key in v.keys() - _BLOB_KEYS:
            if type(key) is not str or not key.startswith("$"):
                raise DataModelError(f"unexpected field {key!r} in blob")


def _kind(v: Any) -> str:
    return "null" if v is None else type(v).__name__
