"""What an XRPC handler receives and may return, and how request parts are read.

Spec: atproto.com/specs/xrpc ("Lexicon HTTP Endpoints"), checklist §8. Query parameters come from the
query string (a repeated name is an array); a procedure's body is read according to the method's input
encoding: JSON is parsed (it must be an object), other encodings are handed over as bytes, or as a
stream for large uploads (``uploadBlob``, ``importRepo``). Limits are enforced while reading, so a body
sent without ``Content-Length`` (chunked, or compressed and inflated by aiohttp) cannot exceed them either.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from atstack.core.cid import CID
from atstack.core.data_model import DataModelError, json_to_data
from atstack.xrpc.errors import InvalidRequestError, PayloadTooLargeError

__all__ = [
    "JSON_ENCODING",
    "XRPCRequest",
    "XRPCResponse",
    "encoding_accepted",
    "json_bytes",
    "json_to_data_model",
    "query_params",
]

JSON_ENCODING = "application/json"
_NOT_CONVERTED: Any = object()


@dataclass(slots=True)
class XRPCResponse:
    """A non-JSON (or pre-encoded) answer: bytes, or an async iterable of chunks streamed as they come."""

    body: bytes | AsyncIterable[bytes] = b""
    content_type: str = JSON_ENCODING
    headers: Mapping[str, str] = field(default_factory=dict)
    status: int = 200


class XRPCRequest:
    """One call: parsed ``params``, the ``body`` per the route's input, and an ``auth`` slot.

    ``body`` is a ``dict`` for JSON input (JSON form: ``{"$link"}``, ``{"$bytes"}``; :meth:`data_model`
    gives the data-model form), ``bytes`` for other encodings, and ``None`` for no input or a streamed
    input (then read it with :meth:`iter_body`). ``response_headers`` are added to the answer,
    error or not (the rate limiter puts its headers there).
    """

    __slots__ = (
        "_body_limit",
        "_consumed",
        "_data",
        "auth",
        "body",
        "encoding",
        "headers",
        "ip",
        "nsid",
        "params",
        "request",
        "response_headers",
    )

    def __init__(self, request: web.Request, nsid: str, ip: str | None, body_limit: int | None) -> None:
        self.request = request
        self.nsid = nsid
        self.ip = ip
        self.headers: CIMultiDictProxy[str] = request.headers
        self.params: dict[str, Any] = {}
        self.body: Any = None
        self.encoding: str | None = None
        self.auth: Any = None
        self.response_headers: dict[str, str] = {}
        self._body_limit = body_limit
        self._consumed = False
        self._data: Any = _NOT_CONVERTED

    def data_model(self) -> Any:
        """The JSON body in data-model form (CIDs, bytes; floats refused with 400), computed once."""
        if self._data is _NOT_CONVERTED:
            self._data = json_to_data_model(self.body)
        return self._data

    async def iter_body(self) -> AsyncIterator[bytes]:
        """Yield the raw body in chunks, raising 413 once more than the route's limit has arrived."""
        if self._consumed:
            raise RuntimeError("request body already read")
        self._consumed = True
        limit = self._body_limit
        received = 0
        async for chunk in self.request.content.iter_any():
            received += len(chunk)
            if limit is not None and received > limit:
                raise PayloadTooLargeError(f"request body exceeds {limit} bytes")
            yield chunk

    async def read_body(self) -> bytes:
        """The whole body as bytes, within the route's limit."""
        chunks = [chunk async for chunk in self.iter_body()]
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def query_params(request: web.Request) -> dict[str, str | list[str]]:
    """Query string as a dict: one value → ``str``, a repeated name → ``list`` in order."""
    params: dict[str, str | list[str]] = {}
    for key, value in request.query.items():
        previous = params.get(key)
        if previous is None:
            params[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            params[key] = [previous, value]
    return params


def normalize_mime(value: str | None) -> str | None:
    """``"Application/JSON; charset=utf-8"`` → ``"application/json"``; empty → ``None``."""
    if not value:
        return None
    mime = value.split(";", 1)[0].strip().lower()
    return mime or None


def encoding_accepted(accepted: str, mime: str) -> bool:
    """Does a lexicon encoding (``"application/json"``, ``"*/*"``, ``"image/*"``, comma lists) take ``mime``?"""
    for option in accepted.split(","):
        option = option.strip().lower()
        if option in ("*/*", "*", mime):
            return True
        if option.endswith("/*") and mime.startswith(option[:-1]):
            return True
    return False


def content_length(request: web.Request) -> int | None:
    raw = request.headers.get("Content-Length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequestError("invalid Content-Length header") from None


def has_body(request: web.Request) -> bool:
    length = content_length(request)
    if length is not None:
        return length > 0
    return "Transfer-Encoding" in request.headers


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"Invalid JSON body: {exc.msg}") from None
    if not isinstance(value, dict):
        raise InvalidRequestError("JSON body must be an object")
    return value


def _json_default(value: Any) -> Any:
    # Handlers may return data-model values; this is the atproto JSON form of the two that JSON lacks.
    if isinstance(value, CID):
        return {"$link": value.encode()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).rstrip(b"=").decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_bytes(value: Any) -> bytes:
    """orjson encoding with CIDs as ``{"$link"}`` and bytes as ``{"$bytes"}``."""
    return orjson.dumps(value, default=_json_default)


def json_to_data_model(value: Any) -> Any:
    """The data-model form of a parsed JSON value; raises 400 if it cannot be one (floats, bad links)."""
    try:
        return json_to_data(value)
    except DataModelError as exc:
        raise InvalidRequestError(f"Input is not valid atproto data: {exc}") from None
