"""The upstream consumer: one ``subscribeRepos`` stream in, Jetstream events stored and fanned out.

Spec: checklist §5–§6 (the upstream stream), §13. Resumes from the upstream cursor persisted with the
events (see :mod:`.store`): the cursor is the last upstream ``seq`` processed, as the reference PDS reads
it. Reconnects with capped exponential backoff after any failure. An upstream ``FutureCursor`` (the
upstream lost its history, e.g. a fresh dev PDS) restarts from the live tip with a warning.

Frames that fail to decode, or known messages that break their lexicon, are skipped and counted rather
than treated as fatal: reconnecting would fetch the same frame again forever.

Pipeline: the reader converts each frame as it arrives (encode-once JSON, stamped ``time_us``) and appends
the events to a pending batch; a flusher commits the pending batch and its cursor to the store in one
transaction, then publishes it to the fan-out. Flushes are at most every ``flush_interval`` seconds, so at
a high event rate a batch holds many events (one fsync, one outbox append per subscriber) while at a low
rate an event waits at most that long. The reader pauses while ``max_pending`` events wait for the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import datetime

from yarl import URL

from atstack.core.stream import ErrorFrame, InfoEvent, StreamError, UnknownEvent, decode_event
from atstack.jetstream.convert import Converter, JetEvent
from atstack.jetstream.fanout import Fanout
from atstack.jetstream.filters import KIND_NAMES
from atstack.jetstream.metrics import JetstreamMetrics
from atstack.jetstream.store import EventStore
from atstack.xrpc.client import XRPCClient

__all__ = ["UpstreamConsumer", "subscribe_repos_url"]

log = logging.getLogger("atstack.jetstream.consumer")

SUBSCRIBE_REPOS = "com.atproto.sync.subscribeRepos"


def subscribe_repos_url(upstream: str) -> str:
    """``ws://host:port`` (or ``http…``) → the full ``subscribeRepos`` URL; a full URL is kept."""
    url = URL(upstream)
    if url.scheme in ("http", "https"):
        url = url.with_scheme("ws" if url.scheme == "http" else "wss")
    if url.scheme not in ("ws", "wss"):
        raise ValueError(f"upstream must be a ws://, wss://, http:// or https:// URL, not {upstream!r}")
    if url.path in ("", "/"):
        url = url.with_path(f"/xrpc/{SUBSCRIBE_REPOS}")
    return str(url.with_query(None))


class UpstreamConsumer:
    def __init__(
        self,
        upstream: str,
        store: EventStore,
        fanout: Fanout,
        converter: Converter,
        metrics: JetstreamMetrics | None = None,
        *,
        flush_interval: float = 0.02,
        max_pending: int = 20_000,
        max_backoff: float = 30.0,
    ) -> None:
        self.url = subscribe_repos_url(upstream)
        self.store = store
        self.fanout = fanout
        self.converter = converter
        self.metrics = metrics
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.max_backoff = max_backoff
        self.cursor: int | None = store.upstream_cursor
        self.connected = False
        self.last_upstream_time: str | None = None
        self._pending: list[JetEvent] = []
        self._pending_cursor: int | None = None
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._flush_lock = asyncio.Lock()
        if metrics is not None:
            self._in = [metrics.events_in.labels(name) for name in KIND_NAMES]

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._flusher(), name="jetstream-flusher"),
            asyncio.create_task(self._reader(), name="jetstream-upstream"),
        ]

    async def stop(self) -> None:
        """Stop reading, store what is pending, stop the flusher."""
        self._stopping = True
        reader, flusher = self._tasks or (None, None)
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        if flusher is not None:
            with contextlib.suppress(Exception):
                await self.flush()
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await flusher
        self._tasks = []

    # reading ----------------------------------------------------------------------------------------

    async def _reader(self) -> None:
        backoff = 0.25
        async with XRPCClient(self.url) as client:
            while not self._stopping:
                try:
                    received = await self._read(client)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    received = False
                    log.warning("upstream stream failed: %s", exc, extra={"upstream": self.url})
                finally:
                    self.connected = False
                    if self.metrics is not None:
                        self.metrics.upstream_connected.set(0)
                if received:
                    backoff = 0.25
                delay = backoff * (0.5 + random.random())
                backoff = min(backoff * 2, self.max_backoff)
                await asyncio.sleep(delay)

    async def _read(self, client: XRPCClient) -> bool:
        """One connection; returns whether any frame arrived (to reset the backoff)."""
        await self._drained.wait()  # resume strictly after what is stored
        cursor = self.cursor
        received = False
        log.info("connecting upstream", extra={"upstream": self.url, "cursor": cursor})
        async for frame in client.subscribe(self.url, cursor):
            if not received:
                received = True
                self.connected = True
                if self.metrics is not None:
                    self.metrics.upstream_connected.set(1)
            if self.metrics is not None:
                self.metrics.upstream_frames.inc()
            try:
                event = decode_event(frame)
            except StreamError as exc:
                self._skip("malformed", str(exc))
                continue
            if type(event) is ErrorFrame:
                if event.error == "FutureCursor":
                    log.warning(
                        "upstream says our cursor %s is in its future; restarting at its live tip", cursor
                    )
                    await self.flush()
                    self.cursor = None
                else:
                    log.warning("upstream error frame: %s %s", event.error, event.message)
                return received
            if type(event) is InfoEvent:
                log.info("upstream info: %s %s", event.name, event.message or "")
                continue
            if type(event) is UnknownEvent:
                continue
            seq = event.seq  # type: ignore[union-attr]
            if self.cursor is not None and seq <= self.cursor:
                self._skip("duplicate", f"seq {seq} at or below cursor {self.cursor}")
                continue
            rows = self.converter.convert(event)
            self.cursor = seq
            self._pending.extend(rows)
            self._pending_cursor = seq
            self.last_upstream_time = event.time  # type: ignore[union-attr]
            self._drained.clear()
            self._wake.set()
            if len(self._pending) >= self.max_pending:
                await self._drained.wait()
        return received

    def _skip(self, reason: str, detail: str) -> None:
        if self.metrics is not None:
            self.metrics.upstream_skipped.labels(reason).inc()
        log.debug("skipped upstream frame: %s", detail)

    # storing and publishing -------------------------------------------------------------------------

    async def _flusher(self) -> None:
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            await self._wake.wait()
            delay = last + self.flush_interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            last = loop.time()
            await self.flush()

    async def flush(self) -> None:
        """Store and publish whatever is pending (one transaction)."""
        async with self._flush_lock:
            await self._flush()

    async def _flush(self) -> None:
        self._wake.clear()
        events, cursor = self._pending, self._pending_cursor
        if not events and cursor is None:
            self._drained.set()
            return
        self._pending, self._pending_cursor = [], None
        await self.store.append(events, cursor)
        self.fanout.publish(events)
        if not self._pending:
            self._drained.set()
        if self.metrics is not None:
            counts = [0, 0, 0, 0]
            for e in events:
                counts[e.kind] += 1
            for kind, n in enumerate(counts):
                if n:
                    self._in[kind].inc(n)
            if cursor is not None:
                self.metrics.upstream_seq.set(cursor)
            if events:
                self.metrics.latest.set(events[-1].time_us)
            if self.last_upstream_time:
                with contextlib.suppress(ValueError):
                    then = datetime.fromisoformat(self.last_upstream_time).timestamp()
                    self.metrics.upstream_lag.set(max(0.0, self.converter.clock() / 1e6 - then))
