"""One Jetstream WebSocket subscriber: its filter, its bounded outbox and its writer.

The outbox is a list of ready-to-send WebSocket frames (usually one shared blob per fan-out batch, see
:mod:`.fanout`). The writer swaps the whole list out and hands it to the socket transport in one
``writelines`` call — the coalescing technique of ``atstack.xrpc.stream`` — then waits for the transport to
drain while it is over its high-water mark. The fan-out adds to the outbox without waiting; an outbox over
``max_outbox_bytes`` drops the subscriber (close code 1008, reason "consumer too slow"), so one slow reader
costs bounded memory and never delays anyone else.

Frames are built here, once, and shared: a text frame for JSON subscribers, a binary frame holding one zstd
frame for ``compress=true`` subscribers. The server→client frame header is the short RFC 6455 §5.2 form
(unmasked, FIN, no extensions — permessage-deflate is never negotiated on these connections).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from atstack.jetstream.filters import Filter
from atstack.xrpc.stream import ws_binary_frame, ws_text_frame

__all__ = ["Subscriber", "ws_binary_frame", "ws_text_frame"]

_OPCODE_TEXT = 0x81  # FIN + text


def _payload_of(wire: bytes) -> tuple[bool, bytes]:
    """(is_text, payload) of one frame we built (for the fallback path)."""
    n = wire[1] & 0x7F
    payload = wire[2:] if n < 126 else wire[4:] if n == 126 else wire[10:]
    return wire[0] == _OPCODE_TEXT, payload


class Subscriber:
    """Per-connection state. ``filter`` is replaced (never mutated) by ``options_update``."""

    __slots__ = (
        "closing",
        "compress",
        "drop_reason",
        "dropped",
        "filter",
        "hello",
        "last_time_us",
        "live",
        "protocol",
        "queue",
        "queued_bytes",
        "remote",
        "transport",
        "waiter",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, flt: Filter, compress: bool, remote: str | None) -> None:
        self.ws = ws
        self.filter = flt
        self.compress = compress
        self.remote = remote
        self.queue: list[bytes] = []
        self.queued_bytes = 0
        self.last_time_us = 0  # newest event sent or queued; published events at or below it are skipped
        self.waiter: asyncio.Future[None] | None = None
        self.hello = asyncio.Event()
        self.live = False
        self.dropped = False
        self.drop_reason = ""
        self.closing = False
        writer = getattr(ws, "_writer", None)
        self.transport: Any = getattr(writer, "transport", None)
        self.protocol: Any = getattr(writer, "protocol", None)
        if not (hasattr(self.protocol, "_drain_helper") and hasattr(self.transport, "writelines")):
            self.transport = self.protocol = None  # an aiohttp without these: one send per frame

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter

    async def write(self, frames: list[bytes]) -> None:
        """Write complete wire frames, then wait while the transport is over its high-water mark."""
        transport = self.transport
        if transport is None:
            for blob in frames:
                await self._send_each(blob)
            return
        if transport.is_closing():
            raise ConnectionResetError("subscriber connection closed")
        transport.writelines(frames)
        if self.protocol.writing_paused:
            await self.protocol._drain_helper()

    async def _send_each(self, blob: bytes) -> None:
        pos = 0
        while pos < len(blob):
            n = blob[pos + 1] & 0x7F
            head = 2 if n < 126 else 4 if n == 126 else 10
            size = n if n < 126 else int.from_bytes(blob[pos + 2 : pos + head], "big")
            is_text, payload = _payload_of(blob[pos : pos + head + size])
            if is_text:
                await self.ws.send_str(payload.decode())
            else:
                await self.ws.send_bytes(payload)
            pos += head + size
