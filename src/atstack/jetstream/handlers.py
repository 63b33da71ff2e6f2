"""HTTP side of the v1 ``/subscribe`` endpoint, and the status page.

Spec: checklist §13; behaviour anchored on the reference's ``internal/subscribe/handler.go``:

* before the upgrade: non-GET → 405; an invalid filter or cursor → 400 with the reason as plain text (v1
  predates XRPC error bodies), checked before the upgrade headers as the reference does, so a plain
  ``curl`` sees the reason too; ``compress=true``/``Socket-Encoding: zstd`` together with a
  ``permessage-deflate`` offer → 400 (the two would double-compress); then no ``Upgrade: websocket`` →
  426. permessage-deflate alone is declined (RFC 7692 lets a server decline; the client proceeds
  uncompressed) — every subscriber then gets the same pre-built frames;
* ``cursor`` is an integer as Go's ``strconv.ParseInt`` reads it (optional sign), not negative (unix µs; a
  value in the future means live; older than the retention window — or than the oldest retained event —
  starts silently at the oldest retained event; replay is inclusive, ``time_us >= cursor``); else → 400;
* after the upgrade, client text messages are ``{"type", "payload"}``: ``options_update`` replaces the
  filter (invalid filter → close 1008 with the reason, cut to the 123 bytes a close frame holds on a UTF-8
  boundary; a payload of the wrong JSON shape, a missing payload, or a message that is not a JSON object →
  close 1007); other ``type`` values are ignored, as are binary messages; a message over 10,000,000 bytes
  closes the connection (1009, done by aiohttp's ``max_msg_size``).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import time
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from atstack.jetstream.fanout import Fanout
from atstack.jetstream.filters import (
    MAX_SUBSCRIBER_MESSAGE_BYTES,
    InvalidFilter,
    parse_options_update,
    parse_query_filter,
)
from atstack.jetstream.metrics import JetstreamMetrics
from atstack.jetstream.subscriber import Subscriber

__all__ = ["SubscribeEndpoint", "close_reason", "parse_cursor"]

log = logging.getLogger("atstack.jetstream")

_INT64_MAX = 2**63 - 1
_CLOSE_REASON_MAX = 123  # RFC 6455 §5.5: a close frame's payload is ≤ 125 bytes, 2 of them the code


def parse_cursor(raw: str | None) -> int | None:
    """The ``cursor`` parameter: absent/empty → ``None`` (live); else a non-negative int64 ("+5" and "-0"
    are accepted, as Go's ``strconv.ParseInt`` accepts them)."""
    if raw is None or raw == "":
        return None
    text = raw[1:] if raw[:1] in ("+", "-") else raw
    if not (text.isascii() and text.isdigit()):
        raise InvalidFilter(f"invalid cursor: {raw[:100]!r}")
    value = int(text)
    if value > _INT64_MAX:
        raise InvalidFilter(f"invalid cursor: {raw[:100]!r} is out of range")
    if raw[0] == "-" and value:
        raise InvalidFilter(f"invalid cursor: negative value {raw[:100]}")
    return value


def close_reason(text: str) -> str:
    """``text`` cut to fit a close frame (≤ 123 bytes of UTF-8), on a character boundary, "..." marking a
    cut: reasons echo client input, and a reason cut mid-character is invalid UTF-8 the peer may reject."""
    raw = text.encode()
    if len(raw) <= _CLOSE_REASON_MAX:
        return text
    return raw[: _CLOSE_REASON_MAX - 3].decode(errors="ignore") + "..."


def _text_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers=headers)


class SubscribeEndpoint:
    """``GET /subscribe`` (WebSocket) for one :class:`Fanout`."""

    def __init__(
        self,
        fanout: Fanout,
        metrics: JetstreamMetrics | None = None,
        *,
        heartbeat: float | None = 30.0,
        max_subscribers: int = 10_000,
        retention_us: int | None = None,
    ) -> None:
        self.fanout = fanout
        self.metrics = metrics
        self.heartbeat = heartbeat
        self.max_subscribers = max_subscribers
        self.retention_us = retention_us
        self._tasks: set[asyncio.Task[None]] = set()

    async def subscribe(self, request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            return _text_error(405, "method not allowed; use GET", {"Allow": "GET"})
        query = request.query
        try:
            flt = parse_query_filter(query)
            cursor = parse_cursor(query.get("cursor"))
        except InvalidFilter as exc:
            return _text_error(400, f"invalid subscriber options: {exc}")
        compress = query.get("compress") == "true" or "zstd" in request.headers.get("Socket-Encoding", "")
        if compress and "permessage-deflate" in request.headers.get("Sec-WebSocket-Extensions", ""):
            return _text_error(
                400,
                "choose one compression scheme: custom zstd (compress=true / Socket-Encoding: zstd) "
                "or permessage-deflate, not both",
            )
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return _text_error(426, "this is a WebSocket endpoint (Upgrade: websocket required)")
        if cursor is not None and self.retention_us is not None:
            # The window is the clock's, not the store's: events not yet trimmed are still out of it.
            cursor = max(cursor, self.fanout.clock() - self.retention_us)
        require_hello = query.get("requireHello") == "true"
        if self.fanout.closed:
            return _text_error(503, "server shutting down")
        if self.fanout.subscriber_count >= self.max_subscribers:
            return _text_error(503, "too many subscribers")
        ws = web.WebSocketResponse(
            compress=False,
            max_msg_size=MAX_SUBSCRIBER_MESSAGE_BYTES + 1,  # aiohttp refuses a message *at* the limit
            heartbeat=self.heartbeat,
            timeout=self.fanout.close_timeout,
        )
        await ws.prepare(request)
        sub = Subscriber(ws, flt, compress, request.remote)
        self.fanout.attach(sub)
        task = asyncio.create_task(self.fanout.run(sub, cursor, require_hello))
        self._tasks.add(task)
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    if not await self._client_message(sub, message.data):
                        break
                elif (
                    message.type is WSMsgType.ERROR
                    and getattr(message.data, "code", None) == WSCloseCode.MESSAGE_TOO_BIG
                ):
                    self._count_update("oversize")
        finally:
            sub.closing = True
            sub.hello.set()
            sub.wake()
            self.fanout.detach(sub)
            if not task.done():
                await asyncio.wait({task}, timeout=self.fanout.close_timeout)
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            self._tasks.discard(task)
            transport = sub.transport
            if transport is not None and transport.get_write_buffer_size() > 0:
                # closing waits for the buffer to flush, which a peer that stopped reading never allows
                asyncio.get_running_loop().call_later(self.fanout.close_timeout, transport.abort)
        return ws

    async def _client_message(self, sub: Subscriber, data: str) -> bool:
        """Apply one subscriber-sourced message; False when the connection was closed because of it."""
        try:
            envelope: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            envelope = ...
        if envelope is None:
            envelope = {}  # the reference decodes JSON null into an empty envelope
        kind = envelope.get("type") if isinstance(envelope, dict) else ...
        if kind is None:
            kind = ""
        if not isinstance(kind, str):
            return await self._reject(sub, "bad_envelope", WSCloseCode.INVALID_TEXT, "bad message envelope")
        if kind != "options_update":
            log.info("ignoring unknown subscriber message type", extra={"type": kind[:100]})
            return True
        if "payload" not in envelope:
            # the reference decodes the absent payload (empty input), which is a JSON error; null is not
            return await self._reject(
                sub, "bad_payload", WSCloseCode.INVALID_TEXT, "bad options_update: no payload"
            )
        try:
            flt = parse_options_update(envelope["payload"])
        except TypeError as exc:
            return await self._reject(
                sub, "bad_payload", WSCloseCode.INVALID_TEXT, f"bad options_update: {exc}"
            )
        except InvalidFilter as exc:
            return await self._reject(sub, "invalid", WSCloseCode.POLICY_VIOLATION, str(exc))
        self.fanout.set_filter(sub, flt)
        sub.hello.set()
        self._count_update("ok")
        return True

    def _count_update(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.options_updates.labels(result).inc()

    async def _reject(self, sub: Subscriber, result: str, code: int, reason: str) -> bool:
        self._count_update(result)
        sub.closing = True
        sub.hello.set()
        sub.wake()
        await self.fanout.close(sub, code, close_reason(reason))
        return False


def status_page(info: dict[str, Any]) -> web.Response:
    """A small HTML page with the figures of ``info`` (also served as JSON at ``/status``)."""
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in info.items()
    )
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>atstack jetstream</title>"
        "<style>body{font-family:sans-serif;margin:2em}th{text-align:left;padding-right:1em}</style>"
        f"</head><body><h1>atstack jetstream</h1><table>{rows}</table>"
        "<p>WebSocket: <code>/subscribe</code> (Jetstream v1). Metrics: <a href='/metrics'>/metrics</a>. "
        "JSON: <a href='/status'>/status</a>.</p></body></html>"
    )
    return web.Response(text=body, content_type="text/html")


def format_time_us(value: int | None) -> str:
    if not value:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(value / 1e6)) + f".{value % 1_000_000:06d}Z"
