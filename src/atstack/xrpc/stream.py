"""The event-stream server: cursor replay from a persistent log, then live fan-out over WebSockets.

Spec: atproto.com/specs/event-stream, checklist §5. Written once for every ``subscribeRepos``-style
endpoint (PDS, relay). The service persists each event, then calls :meth:`EventStreamHub.publish` with its
``seq`` and pre-encoded frame; subscribers are served from an :class:`EventLog` it supplies
(:mod:`atstack.xrpc.eventlog`).

Cursor rules (``cursor`` query parameter):

* absent → live events only;
* greater than the latest seq (or than 0 on an empty log) → error frame ``FutureCursor``, then close;
* ``0`` → replay the whole retained window, then live;
* older than the window (``cursor + 1 < oldest seq``) → ``#info {name: "OutdatedCursor"}``, whole window;
* otherwise → replay events with ``seq > cursor`` (the reference PDS's reading: the cursor is the last seq
  the consumer processed), then live.

The switch from replay to live has no gap and no duplicate without buffering live events during replay:
the replay re-reads the log until it has sent everything up to the last *published* seq, and joins the
live set synchronously right after that check, so every later ``publish`` reaches it; a live event it
already replayed (persisted and read before being published) is skipped by seq. A replay that cannot keep
up with the write rate simply keeps reading the log, in bounded batches.

Fan-out encodes once: ``publish`` (one event) and ``publish_batch`` (a committed batch) prepend the
WebSocket frame header to each payload a single time and queue those same ``bytes`` objects for every live
subscriber. Frames reach the socket through a :class:`FrameWriter`: the whole queue in one ``writelines``
call on the socket transport, waiting only while the transport is over its high-water mark — no
per-message ``send_bytes``. Subscribers whose writer task is idle are written to by one callback per
event-loop round rather than by waking each writer task (a hundred wake-ups per batch). A queue over ``max_outbox_frames`` or ``max_outbox_bytes`` drops the
subscriber: it gets ``ConsumerTooSlow`` and is closed, so memory per subscriber stays bounded (queue + one
batch in the transport) and nobody else waits for it. Client frames are ignored (read and discarded so
pings and close handshakes work).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Iterator, Sequence
from typing import Any

from aiohttp import WSCloseCode, web

from atstack.core.stream import MAX_SEQ, encode_error, encode_message
from atstack.xrpc.errors import InvalidRequestError, NotEnoughResourcesError
from atstack.xrpc.eventlog import EventLog, MemoryEventLog
from atstack.xrpc.metrics import XRPCMetrics
from atstack.xrpc.request import XRPCRequest

__all__ = ["EventLog", "EventStreamHub", "FrameWriter", "MemoryEventLog", "ws_binary_frame", "ws_text_frame"]

log = logging.getLogger("atstack.stream")

_OPCODE_BINARY = 0x82  # FIN + binary
_OPCODE_TEXT = 0x81  # FIN + text
_MAX_EMPTY_REPLAY_READS = 200  # x 10 ms: how long a published event may stay unreadable
_REPLAY_WRITE_BYTES = 1 << 20
_PACK_SHORT = struct.Struct("!BBH").pack
_PACK_LONG = struct.Struct("!BBQ").pack


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((opcode, n)) + payload
    if n < 65536:
        return _PACK_SHORT(opcode, 126, n) + payload
    return _PACK_LONG(opcode, 127, n) + payload


def ws_binary_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed server-to-client WebSocket binary frame (RFC 6455 §5.2)."""
    return _ws_frame(_OPCODE_BINARY, payload)


def ws_text_frame(payload: bytes) -> bytes:
    """The same as a text frame; ``payload`` must be UTF-8 (JSON is)."""
    return _ws_frame(_OPCODE_TEXT, payload)


def _frames_in(blob: bytes) -> Iterator[tuple[bool, bytes]]:
    """``(is_text, payload)`` of each frame in a blob of frames built by this module (fallback path)."""
    pos, end = 0, len(blob)
    while pos < end:
        n = blob[pos + 1] & 0x7F
        head = 2 if n < 126 else 4 if n == 126 else 10
        size = n if n < 126 else int.from_bytes(blob[pos + 2 : pos + head], "big")
        yield blob[pos] == _OPCODE_TEXT, blob[pos + head : pos + head + size]
        pos += head + size


class FrameWriter:
    """Writes complete server-to-client frames (from :func:`ws_binary_frame` / :func:`ws_text_frame`, one per
    ``bytes`` or several joined in one) to one WebSocket connection — shared by every stream server here.

    Why aiohttp internals: a fan-out hands the same pre-built frames to every subscriber, and aiohttp's public
    ``send_bytes``/``send_str`` build, write and await each message separately — a write call and a task
    switch per frame per subscriber. The fast path hands a whole batch to the connection's socket transport
    in one ``writelines`` call and, only while the transport is over its high-water mark, waits on the
    protocol's flow-control future (``protocol._drain_helper()``, as aiohttp's own writer does). Transport
    and protocol are reached through ``ws._writer``, which aiohttp does not document; if an aiohttp release
    hides any of them (or ``coalesce=False``), every frame goes through ``send_bytes``/``send_str`` instead:
    slower, the same bytes on the wire. Everything about aiohttp's internals lives in this class.
    """

    __slots__ = ("protocol", "transport", "ws")

    def __init__(self, ws: web.WebSocketResponse, *, coalesce: bool = True) -> None:
        self.ws = ws
        writer = getattr(ws, "_writer", None)
        self.transport: Any = getattr(writer, "transport", None)
        self.protocol: Any = getattr(writer, "protocol", None)
        fast = (
            hasattr(self.protocol, "_drain_helper")
            and hasattr(self.protocol, "writing_paused")
            and hasattr(self.transport, "writelines")
        )
        if not (fast and coalesce):
            self.transport = self.protocol = None

    def ready(self) -> bool:
        """:meth:`write_now` may be used: fast path, connection open, transport under its high-water mark."""
        transport = self.transport
        return transport is not None and not self.protocol.writing_paused and not transport.is_closing()

    def write_now(self, frames: Sequence[bytes]) -> None:
        """Hand frames to the transport without waiting; only when :meth:`ready` (the caller bounds the batch)."""
        self.transport.writelines(frames)

    async def write(self, frames: Sequence[bytes]) -> None:
        """Write frames, then wait while the transport is over its high-water mark."""
        transport = self.transport
        if transport is None:
            await self._send_each(frames)
            return
        if transport.is_closing():
            raise ConnectionResetError("subscriber connection closed")
        transport.writelines(frames)
        if self.protocol.writing_paused:
            await self.protocol._drain_helper()

    async def write_final(self, frame: bytes) -> None:
        """A last frame before closing (an error), written even while the transport is paused: a consumer that
        is too slow still gets told why. Never raises for a connection that is already gone."""
        transport = self.transport
        if transport is None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send_each((frame,))
        elif not transport.is_closing():
            transport.write(frame)

    def abort_if_stuck(self, delay: float) -> None:
        """After a close: unsent bytes mean the close waits for a peer that may have stopped reading, so the
        connection is aborted after ``delay`` seconds unless it has closed by then."""
        transport = self.transport
        if transport is not None and transport.get_write_buffer_size() > 0:
            asyncio.get_running_loop().call_later(delay, transport.abort)

    async def _send_each(self, blobs: Sequence[bytes]) -> None:
        ws = self.ws
        for blob in blobs:
            for is_text, payload in _frames_in(blob):
                if is_text:
                    await ws.send_str(payload.decode())
                else:
                    await ws.send_bytes(payload)


class _Subscriber:
    __slots__ = (
        "closing",
        "dropped",
        "last_seq",
        "queue",
        "queued_bytes",
        "remote",
        "waiter",
        "writer",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, remote: str | None, coalesce: bool = True) -> None:
        self.ws = ws
        self.remote = remote
        self.writer = FrameWriter(ws, coalesce=coalesce)
        self.queue: list[bytes] = []
        self.queued_bytes = 0
        self.last_seq = 0  # highest seq sent or queued; live events at or below it are duplicates
        self.waiter: asyncio.Future[None] | None = None  # set while the writer task waits for frames
        self.dropped = False
        self.closing = False

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def write(self, frames: list[bytes]) -> None:
        await self.writer.write(frames)


class EventStreamHub:
    """Serves one subscription NSID from an :class:`EventLog` plus live :meth:`publish` calls.

    ``publish``/``publish_batch`` must be called on the event loop, in seq order, after the events are
    persisted (so that a replay reading the log can find them).
    """

    def __init__(
        self,
        log: EventLog,
        *,
        nsid: str = "com.atproto.sync.subscribeRepos",
        metrics: XRPCMetrics | None = None,
        max_outbox_frames: int = 10_000,
        max_outbox_bytes: int = 32 * 1024 * 1024,
        replay_batch: int = 500,
        max_subscribers: int | None = None,
        close_timeout: float = 5.0,
        heartbeat: float | None = 30.0,
        coalesce: bool = True,
    ) -> None:
        self.log = log
        self.nsid = nsid
        self.max_outbox_frames = max_outbox_frames
        self.max_outbox_bytes = max_outbox_bytes
        self.replay_batch = replay_batch
        self.max_subscribers = max_subscribers
        self.close_timeout = close_timeout
        self.heartbeat = heartbeat
        self.coalesce = coalesce  # False: one ws.send_bytes per frame (slower; kept for comparison)
        self._live: dict[_Subscriber, None] = {}  # insertion-ordered set
        self._all: set[_Subscriber] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle_fed: dict[_Subscriber, None] = {}  # idle writers given frames this round
        self._write_scheduled = False
        self._last_published = log.latest_seq() or 0
        self._closed = False
        self._gauge = metrics.stream_subscribers.labels(nsid) if metrics else None
        self._sent = metrics.stream_frames_sent.labels(nsid) if metrics else None
        self._dropped = metrics.stream_consumers_dropped.labels(nsid, "too_slow") if metrics else None

    @property
    def subscriber_count(self) -> int:
        return len(self._all)

    @property
    def live_subscriber_count(self) -> int:
        """Subscribers past their replay, receiving published events."""
        return len(self._live)

    @property
    def last_published(self) -> int:
        return self._last_published

    def mount(self, router: Any) -> None:
        """Register :meth:`serve` for this hub's NSID on an ``XRPCRouter`` and close streams at shutdown."""
        router.subscription(self.nsid)(self.serve)
        router.add_shutdown_hook(self.close_all)

    # publishing -----------------------------------------------------------------------------------

    def publish(self, seq: int, frame: bytes) -> None:
        """Fan a persisted event out to every live subscriber (frame header built once, shared bytes)."""
        self.publish_batch(((seq, frame),))

    def publish_batch(self, events: Sequence[tuple[int, bytes]]) -> None:
        """:meth:`publish` for persisted ``(seq, frame)`` events in ascending seq order, in one pass."""
        if not events:
            return
        last_published = self._last_published
        for seq, _frame in events:
            if seq <= last_published:
                raise ValueError(f"publish out of order: seq {seq} after {last_published}")
            last_published = seq
        self._last_published = last_published
        if not self._live:
            return
        first = events[0][0]
        wires = [ws_binary_frame(frame) for _seq, frame in events]
        size = sum(map(len, wires))
        max_frames, max_bytes = self.max_outbox_frames, self.max_outbox_bytes
        overflowed: list[_Subscriber] | None = None
        idle_fed = self._idle_fed
        for sub in self._live:
            mine, mine_size = wires, size
            if sub.last_seq >= first:  # joined from a replay that has already sent part of this batch
                if sub.last_seq >= last_published:
                    continue
                skip = next(i for i, (seq, _f) in enumerate(events) if seq > sub.last_seq)
                mine = wires[skip:]
                mine_size = sum(map(len, mine))
            sub.last_seq = last_published
            queue = sub.queue
            queue.extend(mine)
            sub.queued_bytes += mine_size
            if len(queue) > max_frames or sub.queued_bytes > max_bytes:
                if overflowed is None:
                    overflowed = []
                overflowed.append(sub)
            elif sub.waiter is not None:
                idle_fed[sub] = None
        if overflowed:
            for sub in overflowed:
                self._drop(sub)
        if idle_fed and not self._write_scheduled:
            self._write_scheduled = True
            asyncio.get_running_loop().call_soon(self._write_idle)

    def _write_idle(self) -> None:
        """Hand the frames queued this round to the sockets of subscribers whose writer task is idle (one
        callback instead of a task wake-up per subscriber); the others' writer tasks are woken to do it."""
        self._write_scheduled = False
        subs, self._idle_fed = self._idle_fed, {}
        written = 0
        for sub in subs:
            frames = sub.queue
            if not frames or sub.waiter is None or sub.dropped or sub.closing:
                continue  # already taken by its writer task, or about to be closed
            if not sub.writer.ready():
                sub.wake()  # paused or fallback path: the writer task waits for the drain
                continue
            sub.queue = []
            sub.queued_bytes = 0
            try:
                sub.writer.write_now(frames)
            except (ConnectionError, RuntimeError):
                sub.wake()  # the writer task finds the connection closed and cleans up
                continue
            written += len(frames)
        if written and self._sent is not None:
            self._sent.inc(written)

    def _drop(self, sub: _Subscriber) -> None:
        self._live.pop(sub, None)
        sub.queue = []
        sub.queued_bytes = 0
        sub.dropped = True
        if self._dropped is not None:
            self._dropped.inc()
        log.info("dropping slow subscriber", extra={"nsid": self.nsid, "remote": sub.remote})
        sub.wake()

    # serving --------------------------------------------------------------------------------------

    @staticmethod
    def parse_cursor(params: dict[str, Any]) -> int | None:
        raw = params.get("cursor")
        if raw is None:
            return None
        if isinstance(raw, list):
            raise InvalidRequestError("cursor must be given once")
        if isinstance(raw, bool):
            raise InvalidRequestError("cursor must be an integer")
        if isinstance(raw, int):
            value = raw
        elif isinstance(raw, str) and raw.isascii() and raw.isdigit():
            value = int(raw)
        else:
            raise InvalidRequestError("cursor must be a non-negative integer")
        if not 0 <= value < MAX_SEQ:
            raise InvalidRequestError("cursor must be a non-negative integer below 2^53")
        return value

    async def serve(self, req: XRPCRequest) -> web.WebSocketResponse:
        """Subscription handler: validate, upgrade, replay and stream until either side closes."""
        cursor = self.parse_cursor(req.params)
        if self._closed:
            raise NotEnoughResourcesError("event stream is shutting down")
        if self.max_subscribers is not None and len(self._all) >= self.max_subscribers:
            raise NotEnoughResourcesError("too many subscribers")
        ws = web.WebSocketResponse(
            compress=False, max_msg_size=64 * 1024, timeout=self.close_timeout, heartbeat=self.heartbeat
        )
        await ws.prepare(req.request)
        sub = _Subscriber(ws, req.ip, self.coalesce)
        self._all.add(sub)
        if self._gauge is not None:
            self._gauge.inc()
        task = asyncio.create_task(self._run(sub, cursor))
        self._tasks.add(task)
        try:
            async for _ignored in ws:
                pass  # servers ignore client frames; reading keeps ping/close handling alive
        finally:
            sub.closing = True
            sub.wake()
            self._live.pop(sub, None)
            if not task.done():
                # give the writer the grace period to finish a close it started, then stop it
                await asyncio.wait({task}, timeout=self.close_timeout)
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            self._tasks.discard(task)
            self._all.discard(sub)
            if self._gauge is not None:
                self._gauge.dec()
            sub.writer.abort_if_stuck(self.close_timeout)
        return ws

    async def _run(self, sub: _Subscriber, cursor: int | None) -> None:
        try:
            if cursor is None:
                self._go_live(sub, self._last_published)
            else:
                latest = self.log.latest_seq()
                if cursor > max(latest or 0, self._last_published):
                    await self._close_with_error(sub, "FutureCursor", "Cursor in the future.")
                    return
                oldest = self.log.oldest_seq()
                if cursor > 0 and oldest is not None and cursor + 1 < oldest:
                    info = encode_message(
                        "#info",
                        {
                            "name": "OutdatedCursor",
                            "message": "Requested cursor exceeded limit. Possibly missing events",
                        },
                    )
                    await sub.write([ws_binary_frame(info)])
                if not await self._replay(sub, cursor):
                    return
            await self._pump(sub)
        except (ConnectionError, RuntimeError):
            pass  # the peer went away mid-write
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("event stream subscriber failed", extra={"nsid": self.nsid})
        finally:
            self._live.pop(sub, None)
            if not sub.ws.closed:
                await self._close(
                    sub, WSCloseCode.INTERNAL_ERROR if not sub.closing else WSCloseCode.GOING_AWAY
                )

    def _go_live(self, sub: _Subscriber, last_seq: int) -> None:
        sub.last_seq = last_seq
        self._live[sub] = None

    async def _replay(self, sub: _Subscriber, cursor: int) -> bool:
        """Send everything after ``cursor`` from the log, then join the live set. False if closed meanwhile."""
        last = cursor
        batch = self.replay_batch
        empty_reads = 0
        while True:
            rows = await self.log.read_after(last, batch)
            if sub.closing or sub.ws.closed:
                return False
            if rows:
                frames = [ws_binary_frame(frame) for seq, frame in rows if seq > last]
                last = rows[-1][0]
                # hand the transport at most ~1 MiB before waiting for it to drain, whatever the frame sizes
                start = size = 0
                for end, wire in enumerate(frames, 1):
                    size += len(wire)
                    if size >= _REPLAY_WRITE_BYTES or end == len(frames):
                        await sub.write(frames[start:end])
                        start, size = end, 0
                if self._sent is not None:
                    self._sent.inc(len(frames))
                if sub.closing:
                    return False
            # No await between this check and joining the live set: every event published so far has
            # seq <= last (already sent), and every later publish reaches this subscriber's queue.
            if len(rows) < batch and last >= self._last_published:
                self._go_live(sub, last)
                return True
            if not rows:
                # Published but not yet readable (a reader's snapshot can trail the writer's commit by a
                # moment): read again rather than go live past events this subscriber has not had.
                empty_reads += 1
                if empty_reads <= _MAX_EMPTY_REPLAY_READS:
                    await asyncio.sleep(0.01)
                    continue
                log.warning(
                    "event log returned nothing after %d but %d was published; going live",
                    last,
                    self._last_published,
                )
                self._go_live(sub, last)
                return True
            empty_reads = 0

    async def _pump(self, sub: _Subscriber) -> None:
        loop = asyncio.get_running_loop()
        sent = self._sent
        while True:
            if sub.dropped:
                await self._close_with_error(sub, "ConsumerTooSlow", "Stream consumer too slow")
                return
            if sub.closing:
                return
            frames = sub.queue
            if not frames:
                sub.waiter = loop.create_future()
                await sub.waiter
                continue
            sub.queue = []
            sub.queued_bytes = 0
            await sub.write(frames)
            if sent is not None:
                sent.inc(len(frames))

    async def _close_with_error(self, sub: _Subscriber, error: str, message: str) -> None:
        """Error frame, then close (policy violation), as the reference does after an error frame."""
        self._live.pop(sub, None)
        await sub.writer.write_final(ws_binary_frame(encode_error(error, message)))
        await self._close(sub, WSCloseCode.POLICY_VIOLATION, error.encode())

    async def _close(self, sub: _Subscriber, code: int, message: bytes = b"") -> None:
        # drain=False: a consumer that stopped reading would otherwise hold us here forever
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(sub.ws.close(code=code, message=message, drain=False), self.close_timeout)

    async def close_all(self) -> None:
        """Shutdown: stop accepting, close every subscriber (going away) and wait for their writers."""
        self._closed = True
        for sub in list(self._all):
            sub.closing = True
            sub.wake()
            if not sub.ws.closed:
                with contextlib.suppress(Exception):
                    await self._close(sub, WSCloseCode.GOING_AWAY)
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=self.close_timeout)
