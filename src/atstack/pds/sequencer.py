"""The sequencer: turns account and repo changes into ``subscribeRepos`` events, persisted then published.

Spec: atproto.com/specs/event-stream and /sync, checklist §5–§6. Every change that emits an event runs
through :meth:`Sequencer.transact`: the caller's function makes its changes *and* appends its events
(:meth:`append_commit`, :meth:`append_sync`, :meth:`append_identity`, :meth:`append_account`) on the same
connection, inside one write transaction. Only after that transaction has committed are the frames handed
to the :class:`~atstack.xrpc.stream.EventStreamHub`, in seq order; a rolled-back change publishes nothing.

The transaction and the publish step run in a task shielded from the caller, so a client that disconnects
mid-write cannot leave a committed event unpublished (which would stall every later event). The sequencer
is also the hub's :class:`~atstack.xrpc.stream.EventLog` (cursor replay reads ``repo_seq``), and it keeps
that log to a time window: :meth:`Sequencer.trim` (run periodically by :meth:`Sequencer.start_trimming`)
deletes events older than ``PdsConfig.event_retention``; a cursor from before the window then gets the
hub's ``#info OutdatedCursor`` and the whole window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from atstack.core.car import write_car
from atstack.core.cid import CID
from atstack.core.repo import CommitData
from atstack.core.stream import AccountEvent, CommitEvent, IdentityEvent, SyncEvent
from atstack.pds.store import iso_time
from atstack.pds.store import sequencer as seq_store
from atstack.storage.sqlite import Database
from atstack.xrpc.stream import EventStreamHub

__all__ = ["EventBatch", "Sequencer"]

log = logging.getLogger("atstack.pds.sequencer")

T = TypeVar("T")
EventBatch = list[tuple[int, bytes]]
_TRIM_BATCH = 10_000  # events deleted per write transaction: other writes wait for one batch at most


def _forget(task: asyncio.Task[object]) -> None:
    # The caller may have been cancelled while its write went on: mark the outcome as seen.
    if not task.cancelled():
        task.exception()


class Sequencer:
    """Appends events inside write transactions and publishes them after commit (see module docstring)."""

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self.db = db
        self.clock = clock
        self.hub: EventStreamHub | None = None
        self._latest: int | None = None
        self._oldest: int | None = None
        self._pending: dict[int, bytes] = {}
        self._filling = False
        self._tasks: set[asyncio.Task[object]] = set()
        self._trimmer: asyncio.Task[None] | None = None
        self.on_committed: Callable[[], None] | None = None  # e.g. tell relays to crawl us

    async def load(self) -> None:
        def read(conn: sqlite3.Connection) -> tuple[int | None, int | None]:
            return seq_store.latest_seq(conn), seq_store.oldest_seq(conn)

        self._latest, self._oldest = await self.db.read(read)

    async def refresh_oldest(self) -> None:
        """Re-read the lowest retained seq (after events were trimmed or an account's were dropped)."""
        self._oldest = await self.db.read(seq_store.oldest_seq)

    # --- retention ------------------------------------------------------------------------------------

    async def trim(self, retention: float) -> int:
        """Delete the events sequenced more than ``retention`` seconds ago; returns how many went.

        The newest event always stays, so the log keeps its lower bound and a cursor below it gets
        ``#info OutdatedCursor`` from the hub instead of a silent gap. The new lower bound is published
        (:meth:`oldest_seq`) before any row goes: a subscriber arriving mid-trim is told, too.
        """
        cutoff = iso_time(self.clock() - retention)

        def bounds(conn: sqlite3.Connection) -> tuple[int | None, int | None]:
            return seq_store.first_seq_since(conn, cutoff), seq_store.newest_seq(conn)

        keep_from, newest = await self.db.read(bounds)
        if newest is None:
            return 0
        keep_from = newest if keep_from is None else min(keep_from, newest)
        if self._oldest is not None and keep_from <= self._oldest:
            return 0
        self._oldest = keep_from
        removed = 0
        while True:
            batch = await self.db.execute_write(
                lambda conn: seq_store.delete_events_below(conn, keep_from, _TRIM_BATCH)
            )
            removed += batch
            if batch < _TRIM_BATCH:
                break
        await self.refresh_oldest()
        return removed

    def start_trimming(self, retention: float, interval: float) -> None:
        """Run :meth:`trim` now and then every ``interval`` seconds, until :meth:`stop_trimming`."""
        if self._trimmer is None or self._trimmer.done():
            loop = asyncio.get_running_loop()
            self._trimmer = loop.create_task(self._trim_loop(retention, interval), name="event-trim")

    async def stop_trimming(self) -> None:
        task, self._trimmer = self._trimmer, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _trim_loop(self, retention: float, interval: float) -> None:
        while True:
            try:
                removed = await self.trim(retention)
                if removed:
                    log.info(
                        "trimmed %d events older than %g h from the event log", removed, retention / 3600
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event log trim failed")
            await asyncio.sleep(interval)

    # --- EventLog -------------------------------------------------------------------------------------

    def latest_seq(self) -> int | None:
        return self._latest

    def oldest_seq(self) -> int | None:
        return self._oldest

    async def read_after(self, cursor: int, limit: int) -> list[tuple[int, bytes]]:
        return await self.db.read(lambda conn: seq_store.read_after(conn, cursor, limit))

    # --- appending (inside a write transaction) -------------------------------------------------------

    def _now(self) -> str:
        return iso_time(self.clock())

    def append_commit(
        self, conn: sqlite3.Connection, events: EventBatch, did: str, commit: CommitData
    ) -> int:
        now = self._now()

        def build(seq: int) -> bytes:
            return CommitEvent(
                seq=seq,
                repo=did,
                commit=commit.cid,
                rev=commit.rev,
                since=commit.since,
                blocks=commit.car_slice,
                ops=commit.ops,
                time=now,
                prev_data=commit.prev_data,
            ).to_frame()

        return self._append(conn, events, did, "append", now, build)

    def append_sync(
        self,
        conn: sqlite3.Connection,
        events: EventBatch,
        did: str,
        commit_cid: CID,
        commit_block: bytes,
        rev: str,
    ) -> int:
        now = self._now()
        blocks = write_car([commit_cid], [(commit_cid, commit_block)])

        def build(seq: int) -> bytes:
            return SyncEvent(seq=seq, did=did, blocks=blocks, rev=rev, time=now).to_frame()

        return self._append(conn, events, did, "sync", now, build)

    def append_identity(
        self, conn: sqlite3.Connection, events: EventBatch, did: str, handle: str | None
    ) -> int:
        now = self._now()

        def build(seq: int) -> bytes:
            return IdentityEvent(seq=seq, did=did, time=now, handle=handle).to_frame()

        return self._append(conn, events, did, "identity", now, build)

    def append_account(
        self, conn: sqlite3.Connection, events: EventBatch, did: str, active: bool, status: str | None
    ) -> int:
        now = self._now()

        def build(seq: int) -> bytes:
            return AccountEvent(seq=seq, did=did, time=now, active=active, status=status).to_frame()

        return self._append(conn, events, did, "account", now, build)

    @staticmethod
    def _append(
        conn: sqlite3.Connection,
        events: EventBatch,
        did: str,
        kind: str,
        now: str,
        build: Callable[[int], bytes],
    ) -> int:
        seq, frame = seq_store.append_event(conn, did, kind, now, build)
        events.append((seq, frame))
        return seq

    # --- transactions and publishing ------------------------------------------------------------------

    async def transact(self, fn: Callable[[sqlite3.Connection, EventBatch], T]) -> T:
        """Run ``fn(conn, events)`` in a write transaction; publish the events it appended once committed."""
        events: EventBatch = []

        def run(conn: sqlite3.Connection) -> T:
            events.clear()
            return fn(conn, events)

        task = asyncio.ensure_future(self._commit_then_publish(run, events))
        self._tasks.add(task)
        task.add_done_callback(_forget)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)  # type: ignore[return-value]

    async def _commit_then_publish(self, run: Callable[[sqlite3.Connection], T], events: EventBatch) -> T:
        result = await self.db.execute_write(run)
        if events:
            self.committed(list(events))
            if self.on_committed is not None:
                self.on_committed()
        return result

    def committed(self, events: EventBatch) -> None:
        """Publish committed events in seq order (events of concurrent transactions may arrive out of order)."""
        for seq, frame in events:
            if self._latest is None or seq > self._latest:
                self._latest = seq
            if self._oldest is None:
                self._oldest = seq
            self._pending[seq] = frame
        self._flush()

    def _flush(self) -> None:
        hub = self.hub
        if hub is None:
            self._pending.clear()
            return
        pending = self._pending
        nxt = hub.last_published + 1
        while nxt in pending:
            hub.publish(nxt, pending.pop(nxt))
            nxt += 1
        # anything at or below what was published already went out (e.g. through a gap fill)
        for seq in [s for s in pending if s < nxt]:
            del pending[seq]
        if pending and not self._filling:
            # A gap: an event committed but not handed to us (should not happen); read it back from the log.
            self._filling = True
            task = asyncio.ensure_future(self._fill_gap(nxt - 1, min(pending)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fill_gap(self, after: int, upto: int) -> None:
        try:
            await asyncio.sleep(0.05)  # give an in-flight commit the chance to report first
            hub = self.hub
            if hub is None or hub.last_published >= upto - 1:
                return
            rows = await self.read_after(hub.last_published, upto - hub.last_published)
            for seq, frame in rows:
                if hub.last_published < seq < upto:
                    log.warning("publishing event %d from the log (its writer did not report it)", seq)
                    self._pending[seq] = frame
            # Commits happen in seq order, so what the log lacks below ``upto`` was never committed:
            # publish up to ``upto`` across the gap (seqs may have gaps; they must only increase).
            for seq in sorted(s for s in self._pending if s <= upto):
                if seq > hub.last_published:
                    hub.publish(seq, self._pending[seq])
                del self._pending[seq]
        finally:
            self._filling = False
            self._flush()

    def attach(self, hub: EventStreamHub) -> None:
        self.hub = hub

    async def wait_idle(self) -> None:
        """Wait for in-flight transactions (shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
