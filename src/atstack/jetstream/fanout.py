"""Fan-out of stored events to every subscriber: replay from the store, then live, encode-once, bounded.

Subscribers with equal filters and wire format form one *group*. :meth:`Fanout.publish` takes a batch of
events that are already stored and, for each group, selects the matching events through per-batch indexes
(events by DID, by collection, the non-commit ones) rather than testing every event against every
subscriber; builds each selected event's WebSocket frame once per batch (text JSON, or a binary frame with
one zstd frame — compressed once, shared by all zstd subscribers); joins the group's frames into one blob;
and appends that same ``bytes`` object to each member's outbox. Per subscriber the work is one append per
batch, whatever the batch size, and the writer hands the blob to the socket in one call.

Cursor replay → live without gap or duplicate (the technique of ``atstack.xrpc.stream``): the replay
re-reads the store until it has sent everything up to the last *published* ``time_us``, then joins its
group synchronously (no await between the check and the join), so every later ``publish`` reaches it; an
event it already replayed (stored and read before being published) is skipped by ``time_us``.

``requireHello`` subscribers start neither replay nor live delivery before their first valid
``options_update``. A subscriber whose outbox exceeds ``max_outbox_bytes`` is dropped: its outbox is
discarded and it is closed with code 1008 and the reason "consumer too slow".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from aiohttp import WSCloseCode

from atstack.jetstream.compression import compressor
from atstack.jetstream.convert import JetEvent, now_us
from atstack.jetstream.filters import KIND_COMMIT, KIND_SYNC, Filter
from atstack.jetstream.metrics import JetstreamMetrics
from atstack.jetstream.store import EventStore
from atstack.jetstream.subscriber import Subscriber, ws_binary_frame, ws_text_frame

__all__ = ["Fanout"]

log = logging.getLogger("atstack.jetstream.fanout")

_REPLAY_WRITE_BYTES = 1 << 20
_CLOSE_REASON_MAX = 123  # RFC 6455 §5.5: control frame payload ≤ 125 bytes, 2 of them the code

GroupKey = tuple[Filter, bool]


class _Batch:
    """One published batch with lazily built indexes and frames (each event framed at most once)."""

    __slots__ = ("by_col", "by_did", "compressed", "events", "indexed", "noncommit", "selected", "text", "v1")

    def __init__(self, events: Sequence[JetEvent]) -> None:
        self.events = events
        n = len(events)
        self.text: list[bytes | None] = [None] * n
        self.compressed: list[bytes | None] = [None] * n
        self.indexed = False
        self.v1: list[int] = []
        self.by_did: dict[str, list[int]] = {}
        self.by_col: dict[str, list[int]] = {}
        self.noncommit: list[int] = []
        self.selected: dict[Filter, list[int]] = {}

    def _index(self) -> None:
        by_did, by_col, v1, noncommit = self.by_did, self.by_col, self.v1, self.noncommit
        for i, e in enumerate(self.events):
            kind = e.kind
            if kind == KIND_SYNC:
                continue  # never on the v1 wire
            v1.append(i)
            lst = by_did.get(e.did)
            if lst is None:
                by_did[e.did] = [i]
            else:
                lst.append(i)
            if kind == KIND_COMMIT:
                lst = by_col.get(e.collection)
                if lst is None:
                    by_col[e.collection] = [i]
                else:
                    lst.append(i)
            else:
                noncommit.append(i)
        self.indexed = True

    def select(self, flt: Filter) -> list[int]:
        cached = self.selected.get(flt)
        if cached is not None:
            return cached
        if not self.indexed:
            self._index()
        events = self.events
        if flt.dids is None and flt.wants_all_collections:
            out = self.v1
        elif flt.dids is not None:
            out = []
            dids, by_did = flt.dids, self.by_did
            if len(dids) <= len(by_did):
                for did in dids:
                    lst = by_did.get(did)
                    if lst is not None:
                        out.extend(lst)
            else:
                for did, lst in by_did.items():
                    if did in dids:
                        out.extend(lst)
            if not flt.wants_all_collections:
                match = flt.collection_matches
                out = [i for i in out if events[i].kind != KIND_COMMIT or match(events[i].collection)]
            out.sort()
        else:
            out = list(self.noncommit)
            full, by_col = flt.collections, self.by_col
            if full:
                if len(full) <= len(by_col):
                    for col in full:
                        lst = by_col.get(col)
                        if lst is not None:
                            out.extend(lst)
                else:
                    for col, lst in by_col.items():
                        if col in full:
                            out.extend(lst)
            for col, lst in by_col.items():
                if not col or ((full is None or col not in full) and col.startswith(flt.prefixes)):
                    out.extend(lst)
            out.sort()
        if flt.max_message_size:
            cap = flt.max_message_size
            out = [i for i in out if len(events[i].data) <= cap]
        self.selected[flt] = out
        return out

    def blob(self, idx: Sequence[int], compress: bool, compress_one: Callable[[bytes], bytes]) -> bytes:
        events = self.events
        if compress:
            frames = self.compressed
            for i in idx:
                if frames[i] is None:
                    frames[i] = ws_binary_frame(compress_one(events[i].data))
        else:
            frames = self.text
            for i in idx:
                if frames[i] is None:
                    frames[i] = ws_text_frame(events[i].data)
        return b"".join([frames[i] for i in idx])  # type: ignore[misc]


class Fanout:
    """Live groups, replay and per-subscriber writers for the v1 ``/subscribe`` endpoint."""

    def __init__(
        self,
        store: EventStore,
        metrics: JetstreamMetrics | None = None,
        *,
        max_outbox_bytes: int = 32 * 1024 * 1024,
        replay_batch: int = 1000,
        close_timeout: float = 5.0,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.max_outbox_bytes = max_outbox_bytes
        self.replay_batch = replay_batch
        self.close_timeout = close_timeout
        self.last_published = 0
        self.closed = False
        self._groups: dict[GroupKey, dict[Subscriber, None]] = {}
        self._all: set[Subscriber] = set()
        self._zstd = compressor()
        # Other wires (v2) fed by the same publications, after ``last_published`` has moved.
        self.listeners: list[Callable[[Sequence[JetEvent]], None]] = []
        if metrics is not None:
            self._sent = (metrics.events_out.labels("json"), metrics.events_out.labels("zstd"))
            self._bytes = (metrics.bytes_out.labels("json"), metrics.bytes_out.labels("zstd"))
            self._dropped = metrics.dropped.labels("too_slow")
            self._gauge = metrics.subscribers.labels("subscribe")

    @property
    def subscriber_count(self) -> int:
        return len(self._all)

    @property
    def subscribers(self) -> list[Subscriber]:
        return list(self._all)

    @property
    def live_count(self) -> int:
        return sum(len(members) for members in self._groups.values())

    def compress(self, data: bytes) -> bytes:
        return self._zstd.compress(data)

    # membership -----------------------------------------------------------------------------------

    def attach(self, sub: Subscriber) -> None:
        self._all.add(sub)
        if self.metrics is not None:
            self._gauge.inc()

    def detach(self, sub: Subscriber) -> None:
        self._leave(sub)
        if sub in self._all:
            self._all.discard(sub)
            if self.metrics is not None:
                self._gauge.dec()

    def set_filter(self, sub: Subscriber, flt: Filter) -> None:
        """``options_update``: the new filter applies from the next published batch (or replay read)."""
        if sub.live:
            self._leave(sub)
            sub.filter = flt
            self._join(sub)
        else:
            sub.filter = flt

    def _join(self, sub: Subscriber) -> None:
        key = (sub.filter, sub.compress)
        members = self._groups.get(key)
        if members is None:
            members = self._groups[key] = {}
        members[sub] = None
        sub.live = True

    def _leave(self, sub: Subscriber) -> None:
        if not sub.live:
            return
        sub.live = False
        key = (sub.filter, sub.compress)
        members = self._groups.get(key)
        if members is not None:
            members.pop(sub, None)
            if not members:
                del self._groups[key]

    # publishing -----------------------------------------------------------------------------------

    def publish(self, events: Sequence[JetEvent]) -> None:
        """Fan a stored batch (ascending ``time_us``) out to every live subscriber."""
        if not events:
            return
        first, last = events[0].time_us, events[-1].time_us
        if first <= self.last_published:
            raise ValueError(f"publish out of order: {first} after {self.last_published}")
        self.last_published = last
        for listener in self.listeners:
            listener(events)
        if not self._groups:
            return
        batch = _Batch(events)
        cap = self.max_outbox_bytes
        compress_one = self._zstd.compress
        overflow: list[Subscriber] = []
        for (flt, compress), members in self._groups.items():
            idx = batch.select(flt)
            if not idx:
                continue
            blob = batch.blob(idx, compress, compress_one)
            size = len(blob)
            for sub in members:
                data = blob
                if sub.last_time_us >= first:  # just joined from a replay that read part of this batch
                    if sub.last_time_us >= last:
                        continue
                    after = sub.last_time_us
                    data = batch.blob([i for i in idx if events[i].time_us > after], compress, compress_one)
                    if not data:
                        sub.last_time_us = last
                        continue
                sub.last_time_us = last
                sub.queue.append(data)
                sub.queued_bytes += len(data)
                if sub.queued_bytes > cap:
                    overflow.append(sub)
                elif sub.waiter is not None:
                    sub.wake()
            if self.metrics is not None:
                self._sent[compress].inc(len(idx) * len(members))
                self._bytes[compress].inc(size * len(members))
                if compress:
                    self.metrics.bytes_uncompressed.inc(sum(len(events[i].data) for i in idx) * len(members))
        for sub in overflow:
            self._drop(sub, f"consumer too slow: outbox over {cap} bytes")

    def _drop(self, sub: Subscriber, reason: str) -> None:
        self._leave(sub)
        sub.queue = []
        sub.queued_bytes = 0
        sub.dropped = True
        sub.drop_reason = reason
        if self.metrics is not None:
            self._dropped.inc()
        log.info("dropping slow subscriber", extra={"remote": sub.remote, "reason": reason})
        sub.wake()

    # serving --------------------------------------------------------------------------------------

    def frame(self, event: JetEvent, compress: bool) -> bytes:
        if compress:
            return ws_binary_frame(self._zstd.compress(event.data))
        return ws_text_frame(event.data)

    async def run(self, sub: Subscriber, cursor: int | None, require_hello: bool) -> None:
        """The subscriber's writer task: (hello,) replay or live, then the outbox pump."""
        try:
            if require_hello:
                await sub.hello.wait()  # set by the first valid options_update, or by closing
                if sub.closing:
                    return
            if cursor is None or cursor > self.clock():
                sub.last_time_us = self.last_published
                self._join(sub)
            elif not await self._replay(sub, cursor):
                return
            await self._pump(sub)
        except (ConnectionError, RuntimeError):
            pass  # the peer went away mid-write
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("jetstream subscriber failed")
        finally:
            self._leave(sub)
            if not sub.ws.closed:
                await self.close(sub, WSCloseCode.GOING_AWAY if sub.closing else WSCloseCode.INTERNAL_ERROR)

    async def _replay(self, sub: Subscriber, start: int) -> bool:
        """Send stored events with ``time_us >= start``, then join the live group. False if closed."""
        pos = max(start, 0)
        batch = self.replay_batch
        while True:
            rows = await self.store.read_from(pos, batch)
            if sub.closing or sub.dropped:
                return False
            if rows:
                pos = rows[-1].time_us + 1
                flt, compress = sub.filter, sub.compress
                wants = flt.wants
                frames = [
                    self.frame(e, compress)
                    for e in rows
                    if e.kind != KIND_SYNC and wants(e.kind, e.did, e.collection, len(e.data))
                ]
                begin = size = 0
                for end, wire in enumerate(frames, 1):
                    size += len(wire)
                    if size >= _REPLAY_WRITE_BYTES or end == len(frames):
                        await sub.write(frames[begin:end])
                        begin, size = end, 0
                if self.metrics is not None and frames:
                    self._sent[compress].inc(len(frames))
                    self._bytes[compress].inc(sum(map(len, frames)))
                if sub.closing:
                    return False
            # No await between this check and joining: everything published so far is below ``pos``.
            if (len(rows) < batch and pos - 1 >= self.last_published) or not rows:
                sub.last_time_us = max(pos - 1, 0)
                self._join(sub)
                return True

    async def _pump(self, sub: Subscriber) -> None:
        while True:
            if sub.dropped:
                await self.close(sub, WSCloseCode.POLICY_VIOLATION, sub.drop_reason)
                return
            if sub.closing:
                return
            frames = sub.queue
            if not frames:
                await sub.wait()
                continue
            sub.queue = []
            sub.queued_bytes = 0
            await sub.write(frames)

    async def close(self, sub: Subscriber, code: int, reason: str = "") -> None:
        """Close the socket without waiting for a peer that stopped reading."""
        self._leave(sub)
        message = reason.encode()[:_CLOSE_REASON_MAX]
        with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(sub.ws.close(code=code, message=message, drain=False), self.close_timeout)

    async def close_all(self) -> None:
        """Shutdown: close every subscriber with "going away"."""
        self.closed = True
        subs = list(self._all)
        for sub in subs:
            sub.closing = True
            sub.hello.set()
            sub.wake()
        await asyncio.gather(
            *(
                self.close(sub, WSCloseCode.GOING_AWAY, "server shutting down")
                for sub in subs
                if not sub.ws.closed
            ),
            return_exceptions=True,
        )
