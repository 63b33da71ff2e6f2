"""One Jetstream WebSocket subscriber: its filter, its bounded outbox and its writer.

The outbox is a list of ready-to-send WebSocket frames (usually one shared blob per fan-out batch, see
:mod:`.fanout`). The writer task swaps the whole list out and hands it to the connection's
:class:`~atstack.xrpc.stream.FrameWriter` — one ``writelines`` call on the socket transport, then a wait
while the transport is over its high-water mark (the writer shared with ``atstack.xrpc.stream``, which also
holds the per-frame fallback). The fan-out adds to the outbox without waiting; an outbox over
``max_outbox_bytes`` drops the subscriber (close code 1008, reason "consumer too slow"), so one slow reader
costs bounded memory and never delays anyone else.

Frames are built once and shared: a text frame for JSON subscribers, a binary frame holding one zstd frame
for ``compress=true`` subscribers. The server→client frame header is the short RFC 6455 §5.2 form
(unmasked, FIN, no extensions — permessage-deflate is never negotiated on these connections).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from atstack.jetstream.filters import Filter
from atstack.xrpc.stream import FrameWriter, ws_binary_frame, ws_text_frame

__all__ = ["Subscriber", "ws_binary_frame", "ws_text_frame"]


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
        "queue",
        "queued_bytes",
        "remote",
        "waiter",
        "writer",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, flt: Filter, compress: bool, remote: str | None) -> None:
        self.ws = ws
        self.filter = flt
        self.compress = compress
        self.remote = remote
        self.writer = FrameWriter(ws)
        self.queue: list[bytes] = []
        self.queued_bytes = 0
        self.last_time_us = 0  # newest event sent or queued; published events at or below it are skipped
        self.waiter: asyncio.Future[None] | None = None
        self.hello = asyncio.Event()
        self.live = False
        self.dropped = False
        self.drop_reason = ""
        self.closing = False

    @property
    def transport(self) -> Any:
        """The socket transport on the writer's fast path, else None (for closing and last-word writes)."""
        return self.writer.transport

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
        """Write complete wire frames (or blobs of them), then wait while the transport is over its
        high-water mark."""
        await self.writer.write(frames)
