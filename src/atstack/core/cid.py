"""Content identifiers (CIDs) as the AT Protocol uses them.

Spec: atproto.com/specs/data-model ("Link and CID Formats"). The *blessed* CIDs are CIDv1 with sha2-256 and
either the dag-cbor codec (0x71: records, commits, MST nodes) or raw (0x55: blobs); their binary form is
``01 <codec> 12 20 <32-byte digest>`` and their string form is ``b`` + lowercase base32 without padding.

We reuse ``cbrrr.CID`` as the in-memory type so decoded CBOR needs no conversion; this module adds the
constructors and checks the protocol needs.
"""

from __future__ import annotations

import base64
import hashlib

from cbrrr import CID

__all__ = [
    "CID",
    "CODEC_DAG_CBOR",
    "CODEC_RAW",
    "InvalidCID",
    "cid_for_cbor",
    "cid_for_raw",
    "is_blessed",
    "parse_cid",
]

CODEC_DAG_CBOR = 0x71
CODEC_RAW = 0x55
_DAG_CBOR_PREFIX = b"\x01\x71\x12\x20"
_RAW_PREFIX = b"\x01\x55\x12\x20"
_sha256 = hashlib.sha256


class InvalidCID(ValueError):
    """A CID string or binary form is malformed or not of a kind we accept."""


def cid_for_cbor(data: bytes) -> CID:
    """The CIDv1 dag-cbor sha2-256 of a DRISL-encoded block."""
    return CID(_DAG_CBOR_PREFIX + _sha256(data).digest())


def cid_for_raw(data: bytes) -> CID:
    """The CIDv1 raw sha2-256 of a blob."""
    return CID(_RAW_PREFIX + _sha256(data).digest())


def is_blessed(cid: CID, codec: int | None = None) -> bool:
    """True for CIDv1 + sha2-256 with the dag-cbor or raw codec (or exactly ``codec`` when given)."""
    b = cid.cid_bytes
    if len(b) != 36 or b[0] != 1 or b[2:4] != b"\x12\x20":
        return False
    return b[1] == codec if codec is not None else b[1] in (CODEC_DAG_CBOR, CODEC_RAW)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 63, 7):
        if pos >= len(buf):
            raise InvalidCID("truncated varint in CID")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if shift and not byte:
                raise InvalidCID("varint in CID not minimally encoded")
            return value, pos
    raise InvalidCID("varint in CID too long")


def check_cid_bytes(raw: bytes) -> None:
    """Structural check of a binary CIDv1: version 1, codec, multihash type and a digest of the stated length."""
    if len(raw) > 100:
        raise InvalidCID("CID longer than 100 bytes")
    version, pos = _read_varint(raw, 0)
    if version != 1:
        raise InvalidCID(f"unsupported CID version {version}")
    _codec, pos = _read_varint(raw, pos)
    _hash_type, pos = _read_varint(raw, pos)
    length, pos = _read_varint(raw, pos)
    if len(raw) - pos != length:
        raise InvalidCID("CID digest length does not match its multihash header")


def parse_cid(text: str) -> CID:
    """Parse a base32 (``b…``) CIDv1 string, the only string form atproto writes."""
    if not isinstance(text, str) or not text.startswith("b") or len(text) > 200:
        raise InvalidCID("CID must be a base32 multibase string starting with 'b'")
    body = text[1:]
    if body != body.lower() or "=" in body:
        raise InvalidCID("CID base32 must be lowercase without padding")
    try:
        raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    except (ValueError, base64.binascii.Error) as exc:
        raise InvalidCID(f"CID is not valid base32: {exc}") from None
    check_cid_bytes(raw)
    return CID(raw)
