"""A small async XRPC client, for services calling each other over the wire.

Spec: atproto.com/specs/xrpc, atproto.com/specs/event-stream. One aiohttp ``ClientSession`` per client
(connection pooling, keep-alive). Query parameters follow the XRPC encoding: arrays as repeated names,
booleans as ``true``/``false``. A non-2xx answer raises :class:`XRPCClientError` with the server's
``error`` name and ``message`` (the generic name for the status when the body is not XRPC-shaped);
network failures and timeouts raise it too, with status 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from atstack.core.stream import MAX_FRAME_SIZE
from atstack.xrpc.errors import XRPCError, generic_error_name

__all__ = ["XRPCClient", "XRPCClientError", "XRPCResult", "encode_params"]

JSON = "application/json"
_NETWORK_STATUS = 0


class XRPCClientError(Exception):
    """A failed call: ``status`` (0 for network errors/timeouts), the XRPC ``error`` name and ``message``."""

    def __init__(
        self, status: int, error: str, message: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {message}" if message else f"{status} {error}")
        self.status = status
        self.error = error
        self.message = message
        self.headers = dict(headers) if headers else {}

    def as_upstream_error(self) -> XRPCError:
        """What a service should answer its own caller: 4xx passed through, the rest 502/504."""
        if 400 <= self.status < 500:
            return XRPCError(self.status, self.error, self.message)
        if self.error == "Timeout" or self.status == 504:
            return XRPCError(504, "UpstreamTimeout", self.message)
        return XRPCError(502, "UpstreamFailure", self.message)


@dataclass(slots=True)
class XRPCResult:
    """A successful answer: parsed JSON (``data``), or raw bytes for other encodings."""

    status: int
    headers: CIMultiDictProxy[str]
    content_type: str | None
    data: Any


def encode_params(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """XRPC query-string pairs: lists repeat the name, booleans are ``true``/``false``, ``None`` is left out."""
    pairs: list[tuple[str, str]] = []
    if not params:
        return pairs
    for key, value in params.items():
        values = value if isinstance(value, list | tuple) else (value,)
        for item in values:
            if item is None:
                continue
            if isinstance(item, bool):
                pairs.append((key, "true" if item else "false"))
            else:
                pairs.append((key, str(item)))
    return pairs


class XRPCClient:
    """Calls one service (``base_url`` like ``http://127.0.0.1:2583``); use ``async with`` or :meth:`close`."""

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = URL(base_url.rstrip("/"))
        self._own_session = session is None
        self._session = session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
        self.headers = dict(headers) if headers else {}

    async def __aenter__(self) -> XRPCClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session:
            await self._session.close()

    def url(self, nsid: str) -> URL:
        return self.base_url / "xrpc" / nsid

    async def query(
        self, nsid: str, params: Mapping[str, Any] | None = None, *, headers: Mapping[str, str] | None = None
    ) -> Any:
        """GET a query; returns parsed JSON (or bytes for other encodings, ``None`` for an empty body)."""
        return (await self.call("GET", nsid, params, headers=headers)).data

    async def procedure(
        self,
        nsid: str,
        body: Mapping[str, Any] | bytes | AsyncIterable[bytes] | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """POST a procedure with a JSON object, bytes (``content_type`` required) or a chunk stream."""
        return (
            await self.call("POST", nsid, params, body=body, content_type=content_type, headers=headers)
        ).data

    async def call(
        self,
        method: str,
        nsid: str,
        params: Mapping[str, Any] | None = None,
        *,
        body: Mapping[str, Any] | bytes | AsyncIterable[bytes] | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> XRPCResult:
        all_headers = {**self.headers, **(headers or {})}
        data: Any = None
        if body is not None:
            if isinstance(body, Mapping):
                data = orjson.dumps(body)
                content_type = content_type or JSON
            else:
                if content_type is None:
                    raise ValueError("content_type is required for a non-JSON body")
                data = body
            all_headers["Content-Type"] = content_type
        try:
            async with self._session.request(
                method, self.url(nsid), params=encode_params(params), data=data, headers=all_headers
            ) as response:
                raw = await response.read()
                mime = response.content_type if response.headers.get("Content-Type") else None
                if response.status >= 400 or response.status < 200:
                    raise _error_from_response(response.status, mime, raw, response.headers)
                parsed: Any
                if not raw:
                    parsed = None
                elif mime == JSON:
                    try:
                        parsed = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        raise XRPCClientError(response.status, "InvalidResponse", "malformed JSON") from None
                else:
                    parsed = raw
                return XRPCResult(response.status, response.headers, mime, parsed)
        except TimeoutError:
            raise XRPCClientError(_NETWORK_STATUS, "Timeout", f"{method} {nsid} timed out") from None
        except aiohttp.ClientError as exc:
            raise XRPCClientError(_NETWORK_STATUS, "NetworkError", f"{method} {nsid}: {exc}") from None

    async def subscribe(
        self,
        target: str,
        cursor: int | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        max_frame_size: int = MAX_FRAME_SIZE + 1024,
    ) -> AsyncIterator[bytes]:
        """Raw binary frames from an event stream, until the server closes it.

        ``target`` is an NSID on this client's base URL or a full ``ws://``/``wss://`` URL. A refusal
        before the upgrade raises :class:`XRPCClientError` with the HTTP status; decode frames with
        ``atstack.core.stream.decode_frame``.
        """
        if "://" in target:
            url = URL(target)
        else:
            url = self.url(target)
            url = url.with_scheme("wss" if url.scheme == "https" else "ws")
        query = encode_params({**(params or {}), "cursor": cursor})
        if query:
            url = url.with_query(query)
        try:
            ws = await self._session.ws_connect(
                url, max_msg_size=max_frame_size, autoping=True, compress=0, timeout=aiohttp.ClientWSTimeout()
            )
        except aiohttp.WSServerHandshakeError as exc:
            name, _ = generic_error_name(exc.status)
            raise XRPCClientError(exc.status, name, exc.message) from None
        except TimeoutError:
            raise XRPCClientError(_NETWORK_STATUS, "Timeout", f"connecting to {url} timed out") from None
        except aiohttp.ClientError as exc:
            raise XRPCClientError(_NETWORK_STATUS, "NetworkError", f"{url}: {exc}") from None
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.BINARY:
                    yield message.data
                elif message.type is aiohttp.WSMsgType.ERROR:
                    raise XRPCClientError(_NETWORK_STATUS, "NetworkError", f"{url}: {ws.exception()}")
                # text frames are not part of the protocol: ignored
        finally:
            await asyncio.shield(ws.close())


def _error_from_response(
    status: int, mime: str | None, raw: bytes, headers: Mapping[str, str]
) -> XRPCClientError:
    name, default_message = generic_error_name(status if status >= 400 else 500)
    message: str | None = default_message
    if mime == JSON and raw:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            if isinstance(body.get("error"), str):
                name = body["error"]
            if isinstance(body.get("message"), str):
                message = body["message"]
    return XRPCClientError(status, name, message, headers)
