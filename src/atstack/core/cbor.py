"""DRISL (the atproto profile of DAG-CBOR) encoding and strict decoding.

Spec: atproto.com/specs/data-model ("Data Types", "Link and CID Formats", "Security and Privacy
Considerations"), DASL DRISL. ``cbrrr`` does the work in C and already rejects unsorted or duplicate map
keys, non-string keys, non-minimal integers and lengths, indefinite lengths, tags other than 42, tag 42
over anything but a byte string starting with 0x00, ``undefined`` and other simple values, half/single
floats, invalid UTF-8 and trailing bytes.

What it accepts and atproto forbids is checked here: float64 values, integers outside the signed 64-bit
range, nesting deeper than :data:`MAX_DEPTH`, CIDs that are not well-formed CIDv1, and inputs larger than
the caller's size limit. Walking every decoded value in Python costs about as much as the decode itself,
so the raw bytes are screened first and only input that *could* break a rule is walked:

* a float needs a ``0xfb`` header byte; an out-of-range integer needs a ``0x1b``/``0x3b`` header followed
  by an argument byte ``>= 0x80``; nesting deeper than 32 needs more than 32 bytes in ``0x80..0xbf``
  (every array/map header is such a byte). Each screen is a C-speed scan (``memchr``, ``re``,
  ``bytes.translate``).
* The 32 random digest bytes of a CID trip those screens often. Header bytes are never inside a CID, and
  the decoder hands us every CID's bytes, so a screened byte value that occurs in the input no more often
  than in the CIDs' bytes cannot be a header, wherever those CIDs sit.

A screen only ever decides that the exact walk is not needed when no violation is possible, so the checks
are exact; the tests hold adversarial inputs for each screen.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import cbrrr
from cbrrr import _cbrrr

from atstack.core.cid import CID, InvalidCID, check_cid_bytes

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_BLOCK_SIZE",
    "MAX_DEPTH",
    "CBORDecodeError",
    "check_data_model_tree",
    "decode",
    "decode_json_mode",
    "decode_trusted",
    "encode",
    "encode_json_mode",
    "encode_uint",
    "head_len",
    "screen_encoded",
]

MAX_DEPTH = 32
MAX_BLOCK_SIZE = 2 * 1024 * 1024  # records are ≤1 MiB; frames/CAR slices have their own caps
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

try:  # the one-pass C screen (atstack/core/_drisl_screen.c); without it, the Python screens below
    from atstack.core._drisl_screen import screen as _c_screen
except ImportError:  # pragma: no cover - a build without a C compiler
    _c_screen = None

# The C entry point returns (value, bytes consumed); cbrrr's Python wrapper only adds the trailing check.
_decode = _cbrrr.decode_dag_cbor
_encode = cbrrr.encode_dag_cbor

_TAG_BYTE = 0xD8  # first byte of tag 42 (d8 2a): input without it holds no CID
_BLESSED_PREFIXES = frozenset({b"\x01\x71\x12\x20", b"\x01\x55\x12\x20"})  # CIDv1 dag-cbor|raw, sha2-256
_new_object = object.__new__

_FLOAT64_HEAD = 0xFB
_UINT64_HEAD = 0x1B  # unsigned integer with an 8-byte argument
_NEGINT64_HEAD = 0x3B  # negative integer with an 8-byte argument
# A 64-bit head followed by a byte >= 0x80: the only way to write an integer outside int64.
_UINT64_HIGH = re.compile(rb"\x1b[\x80-\xff]").search
_NEGINT64_HIGH = re.compile(rb"\x3b[\x80-\xff]").search
_NOT_CONTAINER_HEAD = bytes(b for b in range(256) if not 0x80 <= b <= 0xBF)


class CBORDecodeError(ValueError):
    """Input is not valid DRISL for atproto (reason in the message)."""


def encode(obj: Any) -> bytes:
    """Canonical DRISL bytes for a data-model value (CIDs as :class:`CID`, bytes as ``bytes``).

    This trusts its input (values we built): use :func:`atstack.core.data_model.encode_record` for values
    that may hold floats, out-of-range integers or deep nesting.
    """
    return _encode(obj)


def head_len(n: int) -> int:
    """Bytes of the minimal CBOR head carrying ``n`` (< 2^32): an integer, or a string/array/map length."""
    return 1 if n < 24 else 2 if n < 256 else 3 if n < 65536 else 5


def encode_uint(n: int) -> bytes:
    """The minimal CBOR encoding of the unsigned integer ``n`` (< 2^64), for code that writes DRISL by hand."""
    if n < 24:
        return bytes((n,))
    if n < 256:
        return bytes((0x18, n))
    if n < 65536:
        return b"\x19" + n.to_bytes(2, "big")
    if n < 1 << 32:
        return b"\x1a" + n.to_bytes(4, "big")
    return b"\x1b" + n.to_bytes(8, "big")


def encode_json_mode(obj: Any) -> bytes:
    """Encode a JSON-form value: ``{"$link": …}`` becomes a CID and ``{"$bytes": …}`` bytes."""
    return _encode(obj, atjson_mode=True)


def decode_trusted(data: bytes) -> Any:
    """Decode bytes we wrote ourselves (from our own block store): no extra atproto checks."""
    return cbrrr.decode_dag_cbor(data)


def decode(data: bytes, *, max_size: int = MAX_BLOCK_SIZE) -> Any:
    """Decode one untrusted DRISL item, enforcing every atproto data-model rule.

    Raises :class:`CBORDecodeError` with the reason on any violation.
    """
    if type(data) is not bytes:
        data = bytes(data)  # memoryview/bytearray: the byte screens need real bytes
    if len(data) > max_size:
        raise CBORDecodeError(f"CBOR input of {len(data)} bytes exceeds limit of {max_size}")
    if _c_screen is None:
        return _decode_python_screens(data)
    return _decode_screened(data, False)


def _decode_python_screens(data: bytes) -> Any:
    """:func:`decode` where the C screen could not be built."""
    if _TAG_BYTE in data:
        return _decode_with_cids(data)
    obj = _decode_whole(data, False)
    # No CID: the screens of _screen() on the whole input, inlined for the most common case.
    if (
        _FLOAT64_HEAD in data
        or (_UINT64_HEAD in data and _UINT64_HIGH(data))
        or (_NEGINT64_HEAD in data and _NEGINT64_HIGH(data))
    ):
        check_data_model_tree(obj)
    elif len(data) > MAX_DEPTH and len(data.translate(None, _NOT_CONTAINER_HEAD)) > MAX_DEPTH:
        _check_depth(obj, False)
    return obj


def decode_json_mode(data: bytes, *, max_size: int = MAX_BLOCK_SIZE) -> Any:
    """Decode untrusted DRISL straight into the JSON form (``$link``/``$bytes``), for JSON output paths.

    Same checks as :func:`decode`; cbrrr also rejects maps with ``$link``/``$bytes`` keys in this mode
    (they would be ambiguous in JSON).
    """
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > max_size:
        raise CBORDecodeError(f"CBOR input of {len(data)} bytes exceeds limit of {max_size}")
    if _c_screen is not None:
        return _decode_screened(data, True)
    if _TAG_BYTE in data:
        # JSON mode hides the CIDs from us: check with the CID-aware decode, then convert (C only).
        _decode_with_cids(data)
        try:
            return _decode(data, CID, True)[0]
        except (ValueError, TypeError) as exc:
            raise CBORDecodeError(str(exc) or type(exc).__name__) from None
    obj = _decode_whole(data, True)  # rejects floats itself
    _screen(obj, data, b"", json_mode=True)
    return obj


def screen_encoded(obj: Any, data: bytes) -> None:
    """Check a value built in Python against the rules cbrrr's encoder does not enforce.

    ``data`` is ``encode(obj)``; the screens of :func:`decode` decide whether ``obj`` must be walked for
    floats, out-of-range integers and deep nesting. Raises :class:`CBORDecodeError`.
    """
    if _c_screen is not None:
        try:
            _c_screen(data)
        except ValueError as exc:
            raise CBORDecodeError(str(exc)) from None
        return
    _screen(obj, data, b"", json_mode=False)


def _decode_whole(data: bytes, json_mode: bool, cid_type: Any = CID) -> Any:
    """cbrrr's decode of exactly one item filling ``data`` (structure and canonical form checked)."""
    try:
        obj, end = _decode(data, cid_type, json_mode)
    except (ValueError, TypeError) as exc:  # CbrrrDecodeError, UnicodeDecodeError
        raise CBORDecodeError(str(exc) or type(exc).__name__) from None
    if end != len(data):
        raise CBORDecodeError(f"{len(data) - end} trailing bytes after the CBOR item")
    return obj


def _decode_screened(data: bytes, json_mode: bool) -> Any:
    """cbrrr decodes (and checks structure), then one C pass checks the rest of the data-model rules."""
    obj = _decode_whole(data, json_mode)
    try:
        _c_screen(data)  # type: ignore[misc]
    except ValueError as exc:
        raise CBORDecodeError(str(exc)) from None
    return obj


def check_data_model_tree(obj: Any) -> None:
    """Walk a decoded value: no floats, integers within int64, nesting ≤ MAX_DEPTH."""
    t = type(obj)
    if t is dict:
        _check_values(obj.values(), 1)
    elif t is list:
        _check_values(obj, 1)
    else:
        _check_values((obj,), 0)


# -- CIDs and byte screens -----------------------------------------------------------------------------------


def _decode_with_cids(data: bytes) -> Any:
    raws: list[bytes] = []
    obj = _decode_whole(data, False, _cid_collector(raws.append))
    for raw in raws:
        if len(raw) != 36 or raw[:4] not in _BLESSED_PREFIXES:
            try:
                check_cid_bytes(raw)  # other well-formed CIDv1 (codec, hash) are allowed in records
            except InvalidCID as exc:
                raise CBORDecodeError(f"invalid CID in tag 42: {exc}") from None
    _screen(obj, data, b"\x00".join(raws), json_mode=False)
    return obj


def _cid_collector(keep: Callable[[bytes], None]) -> Callable[[bytes], CID]:
    """A ``cid_ctor`` for cbrrr that also hands every CID's bytes to ``keep``."""

    def make_cid(raw: bytes) -> CID:
        keep(raw)
        # The object CID(raw) builds, without running its Python __init__ (one frame less per CID).
        cid = _new_object(CID)
        cid.cid_bytes = raw
        return cid

    return make_cid


def _screen(obj: Any, data: bytes, cids: bytes, *, json_mode: bool) -> None:
    """Walk ``obj`` unless the bytes of ``data`` rule out every violation the walk would find.

    ``cids`` holds the bytes of every CID in ``data``, 0x00-separated (the separator is no screened
    value). A header byte is never part of a CID, so a byte value that occurs in ``data`` no more often
    than in ``cids`` is never a header.
    """
    walk = _check_json_tree if json_mode else check_data_model_tree
    if (
        (not json_mode and _outside_cids(_FLOAT64_HEAD, data, cids))
        or (_outside_cids(_UINT64_HEAD, data, cids) and _UINT64_HIGH(data))
        or (_outside_cids(_NEGINT64_HEAD, data, cids) and _NEGINT64_HIGH(data))
    ):
        walk(obj)
    elif len(data) > MAX_DEPTH:
        heads = len(data.translate(None, _NOT_CONTAINER_HEAD))
        if heads > MAX_DEPTH and (
            not cids or heads - len(cids.translate(None, _NOT_CONTAINER_HEAD)) > MAX_DEPTH
        ):
            _check_depth(obj, json_mode)


def _outside_cids(byte: int, data: bytes, cids: bytes) -> bool:
    """Does ``byte`` occur in ``data`` anywhere but inside the CIDs' bytes?"""
    return byte in data and (not cids or data.count(byte) != cids.count(byte))


# -- exact walks ---------------------------------------------------------------------------------------------


def _check_values(values: Any, depth: int) -> None:
    """Check the children of a container at ``depth``; recursion is bounded by MAX_DEPTH."""
    for v in values:
        t = type(v)
        if t is dict:
            if depth >= MAX_DEPTH:
                raise CBORDecodeError(f"nesting deeper than {MAX_DEPTH}")
            _check_values(v.values(), depth + 1)
        elif t is list:
            if depth >= MAX_DEPTH:
                raise CBORDecodeError(f"nesting deeper than {MAX_DEPTH}")
            _check_values(v, depth + 1)
        elif t is int:
            if not INT64_MIN <= v <= INT64_MAX:
                raise CBORDecodeError("integer outside the signed 64-bit range")
        elif t is float:
            raise CBORDecodeError("floats are not allowed in the atproto data model")


def _check_depth(obj: Any, json_mode: bool) -> None:
    t = type(obj)
    if t is dict:
        _check_container_depth(obj.values(), 1, json_mode)
    elif t is list:
        _check_container_depth(obj, 1, json_mode)


def _check_container_depth(values: Any, depth: int, json_mode: bool) -> None:
    for v in values:
        t = type(v)
        if t is dict:
            if json_mode and len(v) == 1 and ("$link" in v or "$bytes" in v):
                continue  # a CID or byte string in JSON form, not a map
            if depth >= MAX_DEPTH:
                raise CBORDecodeError(f"nesting deeper than {MAX_DEPTH}")
            _check_container_depth(v.values(), depth + 1, json_mode)
        elif t is list:
            if depth >= MAX_DEPTH:
                raise CBORDecodeError(f"nesting deeper than {MAX_DEPTH}")
            _check_container_depth(v, depth + 1, json_mode)


def _check_json_tree(obj: Any) -> None:
    """:func:`check_data_model_tree` for JSON-form values (no floats there; ``$link``/``$bytes`` are leaves)."""
    _check_depth(obj, True)
    stack = [obj]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is dict:
            stack.extend(v.values())
        elif t is list:
            stack.extend(v)
        elif t is int and not INT64_MIN <= v <= INT64_MAX:
            raise CBORDecodeError("integer outside the signed 64-bit range")
