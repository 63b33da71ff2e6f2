"""DRISL (the atproto profile of DAG-CBOR) encoding and strict decoding.

Spec: atproto.com/specs/data-model ("Data Representation"), DASL DRISL. ``cbrrr`` does the work in C and
already rejects unsorted or duplicate map keys, non-string keys, non-minimal integers and lengths, indefinite
lengths, tags other than 42, ``undefined`` and other simple values, half/single floats and trailing bytes.

What it accepts and atproto forbids is checked here: float64 values, integers outside the signed 64-bit
range, nesting deeper than :data:`MAX_DEPTH`, and inputs larger than the caller's size limit. Those checks
would cost a full Python walk of every decoded value, so we first scan the raw bytes (one C-speed
``bytes.translate``): a float needs a ``0xfb`` byte, a 64-bit integer a ``0x1b``/``0x3b`` byte and depth > 32
needs more than 32 container headers. Only input that could break a rule is walked.
"""

from __future__ import annotations

from typing import Any

import cbrrr

from atstack.core.cid import CID

__all__ = [
    "MAX_BLOCK_SIZE",
    "MAX_DEPTH",
    "CBORDecodeError",
    "decode",
    "decode_json_mode",
    "decode_trusted",
    "encode",
    "encode_json_mode",
]

MAX_DEPTH = 32
MAX_BLOCK_SIZE = 2 * 1024 * 1024  # records are ≤1 MiB; frames/CAR slices have their own caps
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Bytes that *might* start a float64 (0xfb), a 64-bit int (0x1b, 0x3b), or an array/map header (0x80-0xbf).
_CONTAINER_BYTES = bytes(range(0x80, 0xC0))
_SUSPECT_BYTES = _CONTAINER_BYTES + b"\x1b\x3b\xfb"
_DROP_NON_SUSPECT = bytes(b for b in range(256) if b not in _SUSPECT_BYTES)


class CBORDecodeError(ValueError):
    """Input is not valid DRISL for atproto (reason in the message)."""


def encode(obj: Any) -> bytes:
    """Canonical DRISL bytes for a data-model value (CIDs as :class:`CID`, bytes as ``bytes``)."""
    return cbrrr.encode_dag_cbor(obj)


def encode_json_mode(obj: Any) -> bytes:
    """Encode a JSON-form value: ``{"$link": …}`` becomes a CID and ``{"$bytes": …}`` bytes."""
    return cbrrr.encode_dag_cbor(obj, atjson_mode=True)


def decode_trusted(data: bytes) -> Any:
    """Decode bytes we wrote ourselves (from our own block store): no extra atproto checks."""
    return cbrrr.decode_dag_cbor(data)


def decode(data: bytes, *, max_size: int = MAX_BLOCK_SIZE) -> Any:
    """Decode one untrusted DRISL item, enforcing every atproto data-model rule.

    Raises :class:`CBORDecodeError` with the reason on any violation.
    """
    if len(data) > max_size:
        raise CBORDecodeError(f"CBOR input of {len(data)} bytes exceeds limit of {max_size}")
    try:
        obj = cbrrr.decode_dag_cbor(data)
    except (
        ValueError,
        TypeError,
        RecursionError,
    ) as exc:  # CbrrrDecodeError and UnicodeDecodeError are ValueErrors
        raise CBORDecodeError(str(exc) or type(exc).__name__) from None
    suspects = data.translate(None, _DROP_NON_SUSPECT)
    if suspects and (len(suspects) > MAX_DEPTH or suspects.translate(None, _CONTAINER_BYTES)):
        check_data_model_tree(obj)
    return obj


def decode_json_mode(data: bytes, *, max_size: int = MAX_BLOCK_SIZE) -> Any:
    """Decode untrusted DRISL straight into the JSON form (``$link``/``$bytes``), for JSON output paths.

    cbrrr rejects floats itself in this mode; integer range and depth are checked as in :func:`decode`.
    """
    if len(data) > max_size:
        raise CBORDecodeError(f"CBOR input of {len(data)} bytes exceeds limit of {max_size}")
    try:
        obj = cbrrr.decode_dag_cbor(data, atjson_mode=True)
    except (ValueError, TypeError, RecursionError) as exc:
        raise CBORDecodeError(str(exc) or type(exc).__name__) from None
    suspects = data.translate(None, _DROP_NON_SUSPECT)
    if suspects and (len(suspects) > MAX_DEPTH or suspects.translate(None, _CONTAINER_BYTES)):
        check_data_model_tree(obj)
    return obj


def check_data_model_tree(obj: Any) -> None:
    """Walk a decoded value: no floats, integers within int64, nesting ≤ MAX_DEPTH."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        value, depth = pop()
        t = type(value)
        if t is dict:
            if depth > MAX_DEPTH:
                raise CBORDecodeError(f"nesting deeper than {MAX_DEPTH}")
            for v in value.values():
                push((v, depth + 1))
        elif t is list:
            if depth > MAX_DEPTH:
                raise CBORDecodeError(f"nesting deeper than {MAX_DEPTH}")
            for v in value:
                push((v, depth + 1))
        elif t is float:
            raise CBORDecodeError("floats are not allowed in the atproto data model")
        elif t is int and not INT64_MIN <= value <= INT64_MAX:
            raise CBORDecodeError("integer outside the signed 64-bit range")


def is_cid(value: Any) -> bool:
    return type(value) is CID
