"""Event-stream framing: a frame is two concatenated DRISL items, a header and a body map.

Spec: atproto.com/specs/event-stream ("Framing"). The header is ``{"op": 1, "t": "#commit"}`` for messages and
``{"op": -1}`` for errors; the body is a map without ``$type``. :func:`decode_frame` splits and strictly
decodes one frame (the typed messages are :mod:`atstack.core.stream`'s); the canonical headers of the known
message types are recognised by their bytes, so the usual frame's header needs no decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cbrrr import _cbrrr  # type: ignore[attr-defined]  # the only entry point that reports item length

from atstack.core.cbor import CBORDecodeError, check_data_model_tree
from atstack.core.cbor import decode as cbor_decode
from atstack.core.cbor import encode as cbor_encode
from atstack.core.cid import CID

__all__ = [
    "COMMIT_HEADER",
    "MAX_FRAME_SIZE",
    "OP_ERROR",
    "OP_MESSAGE",
    "Frame",
    "StreamError",
    "decode_frame",
    "encode_error",
    "encode_message",
]

OP_MESSAGE = 1
OP_ERROR = -1
MAX_FRAME_SIZE = 5_000_000


class StreamError(ValueError):
    """A frame is malformed or a known message type breaks its lexicon (reason in the message)."""


@dataclass(slots=True)
class Frame:
    op: int
    t: str | None
    body: dict[str, Any]


# --- framing ---------------------------------------------------------------------------------------------


def _header_bytes(t: str) -> bytes:
    return cbor_encode({"op": OP_MESSAGE, "t": t})


_HEADER_CACHE: dict[str, bytes] = {}
_ERROR_HEADER = cbor_encode({"op": OP_ERROR})


def encode_message(t: str, body: dict[str, Any]) -> bytes:
    """A message frame; ``t`` is the short def name with its ``#`` (e.g. ``"#commit"``)."""
    header = _HEADER_CACHE.get(t)
    if header is None:
        if not isinstance(t, str) or not t:
            raise StreamError("message type must be a non-empty string")
        header = _HEADER_CACHE.setdefault(t, _header_bytes(t))
    return header + cbor_encode(body)


def encode_error(error: str, message: str | None = None) -> bytes:
    """An error frame; the sender closes the stream right after it."""
    body: dict[str, Any] = {"error": error}
    if message is not None:
        body["message"] = message
    return _ERROR_HEADER + cbor_encode(body)


# The canonical header of each known message type. A frame that starts with one of these byte strings has
# exactly that header (each is one complete CBOR item), so it needs no decoding or data-model walk. Such a
# header is {"t": <text of n < 24 bytes>, "op": 1}: n + 8 bytes, of which byte 3 is the text head 0x60 + n;
# a prefix cut at that length can only equal one of them if the frame starts with it.
_MESSAGE_HEADERS: dict[bytes, str] = {
    _header_bytes(t): t for t in ("#commit", "#sync", "#identity", "#account", "#info")
}
_MESSAGE_HEADER_START = b"\xa2at"
COMMIT_HEADER = _header_bytes("#commit")  # most frames: checked first (and spliced by core.resequence)
_COMMIT_HEADER_LEN = len(COMMIT_HEADER)


def decode_frame(data: bytes | memoryview, *, max_size: int = MAX_FRAME_SIZE) -> Frame:
    """Split and strictly decode one frame: exactly a header map and a body map, nothing after."""
    if len(data) > max_size:
        raise StreamError(f"frame of {len(data)} bytes exceeds limit of {max_size}")
    if type(data) is not bytes:
        data = bytes(data)
    header: Any = None
    if data.startswith(COMMIT_HEADER):
        t: str | None = "#commit"
        header_len = _COMMIT_HEADER_LEN
    else:
        header_len = data[3] - 0x58 if data.startswith(_MESSAGE_HEADER_START) and len(data) > 3 else 0
        t = _MESSAGE_HEADERS.get(data[:header_len])
    if t is None:
        try:
            header, header_len = _cbrrr.decode_dag_cbor(data, CID, False)
            check_data_model_tree(header)
        except (ValueError, TypeError, RecursionError) as exc:
            raise StreamError(f"invalid frame header: {exc}") from None
    if header_len >= len(data):
        raise StreamError("frame has no body")
    try:
        body = cbor_decode(data[header_len:], max_size=max_size)
    except CBORDecodeError as exc:  # includes trailing bytes after the body
        raise StreamError(f"invalid frame body: {exc}") from None
    op = OP_MESSAGE if t is not None else _header_op(header)
    if type(body) is not dict:
        raise StreamError("frame body is not a map")
    if t is None and op != OP_ERROR:
        t = header.get("t")
    return Frame(op, t, body)


def _header_op(header: Any) -> int:
    """The op of a decoded header, after checking its shape."""
    if type(header) is not dict:
        raise StreamError("frame header is not a map")
    op = header.get("op")
    if type(op) is not int:
        raise StreamError("frame header needs an integer op")
    t = header.get("t")
    if op == OP_MESSAGE and type(t) is not str:
        raise StreamError("message frame header needs a string t")
    if t is not None and type(t) is not str:
        raise StreamError("frame header t must be a string")
    return op
