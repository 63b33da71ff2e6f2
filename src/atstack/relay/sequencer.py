"""The output log: accepted events get our own ``seq``, are persisted in batches, then published.

Spec: atproto.com/specs/event-stream ("Sequence Numbers": persisted before they are sent), checklist §5.
Workers call :meth:`Sequencer.emit` (synchronously, on the event loop): the event gets the next seq, is
encoded once, and waits in the pending batch together with the account rows, collection counts and upstream
cursors that changed with it. One flusher task writes the whole pending batch in one transaction
(:func:`atstack.relay.store.write_batch`) and, once it has committed, hands the frames to the
:class:`~atstack.xrpc.stream.EventStreamHub` in seq order (``publish_batch``). While a write is in flight
the next batch fills up, so the batch size follows the load: one event per transaction when idle, thousands
under a burst. Batches are also started at most every ``flush_interval`` (5 ms): at 2,000 events/s the
flusher otherwise committed every ~1.5 ms, 3–5 events at a time, and each batch costs a transaction (WAL
pages for every account row it touches), a hand-off to the writer thread and one socket write per firehose
subscriber, whatever its size. An event arriving after a quiet spell is still written at once.

Repo heads and record counts are *checkpointed*, not written with every event: a commit changes its account's
``rev``/``commit``/``data`` and a few per-collection counts, and writing those rows with each batch cost more
than the events themselves (random B-tree pages in the WAL, then again at WAL checkpoint: measured, ingest
+10–20 % per core without them). They are marked with :meth:`defer_account` / :meth:`count_ops` and go out
together every ``checkpoint_interval`` (5 s), in a batch that takes every emitted event and records
``meta.state_seq``, the last seq whose effects the account tables hold. After a crash, :meth:`replay_state`
hands the caller the logged events after ``state_seq`` to roll the heads and counts forward. Every batch takes
all emitted events (the ingest queue bounds them), so a row written at once — a new account, a status change —
never runs ahead of the events on disk. A resync's record counts force a checkpoint at the next batch.

The sequencer is also the hub's :class:`~atstack.xrpc.stream.EventLog`; ``latest_seq`` is the highest
*committed* seq, so a replay never reads past what is on disk. Retention: :meth:`trim` deletes, from the
front, the events older than the window (range deletes in bounded chunks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Protocol

from atstack.core.repo_op import RepoOp
from atstack.core.stream import AccountEvent, CommitEvent, IdentityEvent, SyncEvent
from atstack.relay.metrics import RelayMetrics
from atstack.relay.store import Batch, write_batch
from atstack.relay.store import events as event_store
from atstack.storage.sqlite import Database
from atstack.xrpc.stream import EventStreamHub

__all__ = ["Gate", "Sequencer"]

log = logging.getLogger("atstack.relay.sequencer")

OutEvent = CommitEvent | SyncEvent | IdentityEvent | AccountEvent


class _Row(Protocol):
    did: str

    def row(self) -> tuple: ...


class Gate:
    """Wakes everyone waiting for room (back-pressure between the ingest queue and the flusher)."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    async def wait(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        await future

    def open(self) -> None:
        if not self._waiters:
            return
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)


class Sequencer:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], float],
        metrics: RelayMetrics,
        *,
        max_batch: int = 5_000,
        flush_interval: float = 0.005,
        checkpoint_interval: float = 5.0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.metrics = metrics
        self.max_batch = max_batch
        self.flush_interval = flush_interval
        self.checkpoint_interval = checkpoint_interval
        self._last_flush = 0.0  # perf_counter when the last batch was taken
        self._last_checkpoint = time.perf_counter()
        self._state_seq = 0  # the account tables hold the effects of every event up to this seq
        self.hub: EventStreamHub | None = None
        self.gate = Gate()  # opened after every flush
        self._next = 1
        self._latest: int | None = None
        self._oldest: int | None = None
        self._events: list[tuple[int, int, str, bytes]] = []
        self._received: list[float] = []  # perf_counter at receipt, for the added-latency histogram
        self._accounts: dict[str, _Row] = {}  # written with the next batch
        self._deferred: dict[str, _Row] = {}  # written with the next checkpoint
        self._inflight: tuple[dict[str, _Row], dict[tuple[str, str], int], list] = ({}, {}, [])
        self._checkpoint_due = False
        self._deltas: dict[tuple[str, str], int] = {}
        self._replacements: list[tuple[str, dict[str, int]]] = []
        self._cursors: dict[int, int] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.write_failures = 0

    async def load(self) -> None:
        def read(conn) -> tuple[int, int | None, int | None]:  # type: ignore[no-untyped-def]
            return (
                event_store.last_assigned_seq(conn),
                event_store.oldest_seq(conn),
                event_store.state_seq(conn),
            )

        last, oldest, state = await self.db.read(read)
        self._next = last + 1
        self._latest = last or None
        self._oldest = oldest
        if state is None:  # a new log (or one from before checkpoints, whose rows were all current)
            state = last
            await self.db.execute_write(lambda conn: event_store.set_state_seq(conn, last))
        self._state_seq = state

    async def replay_state(self, apply: Callable[[int, str, bytes], None], *, chunk: int = 5_000) -> int:
        """Hand ``apply(seq, did, frame)`` every logged event after the last checkpoint, oldest first (the
        caller re-applies their effects on repo heads and record counts), then make the next batch a
        checkpoint. Returns how many events were replayed."""
        after, replayed = self._state_seq, 0
        while True:
            rows = await self.db.read(lambda conn, a=after: event_store.read_dids_after(conn, a, chunk))
            for seq, did, frame in rows:
                apply(seq, did, frame)
            replayed += len(rows)
            if len(rows) < chunk:
                break
            after = rows[-1][0]
            if replayed % 100_000 < chunk:
                log.info("replaying the event log into repo state", extra={"replayed": replayed})
        if replayed:
            self._checkpoint_due = True
            self._kick()
        return replayed

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay-sequencer")

    async def close(self) -> None:
        """Flush what is pending, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- EventLog ------------------------------------------------------------------------------------

    def latest_seq(self) -> int | None:
        return self._latest

    def oldest_seq(self) -> int | None:
        return self._oldest

    async def read_after(self, cursor: int, limit: int) -> list[tuple[int, bytes]]:
        while True:
            rows = await self.db.read(lambda conn: event_store.read_after(conn, cursor, limit))
            latest = self._latest or 0
            if rows and rows[-1][0] > latest:
                # never hand out an event whose batch is committed but not yet published
                return [r for r in rows if r[0] <= latest]
            if len(rows) == limit or (rows[-1][0] if rows else cursor) >= latest:
                return rows
            # The read's snapshot predates a batch that was published while it ran: the hub would take the
            # short answer as "caught up" and go live past those events, so read again.

    # --- appending (synchronous, on the event loop) ------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Events emitted but not yet written."""
        return len(self._events)

    def emit(self, did: str, event: OutEvent, received: float | None = None) -> int:
        """Give ``event`` the next seq, encode it and queue it for the next batch; returns the seq."""
        seq = self._next
        self._next = seq + 1
        event.seq = seq
        self._events.append((seq, int(self.clock() * 1e6), did, event.to_frame()))
        self._received.append(received if received is not None else time.perf_counter())
        self._kick()
        return seq

    def save_account(self, account: _Row) -> None:
        """Write ``account``'s row with the next batch (new accounts, status changes: rare, kept exact)."""
        self._accounts[account.did] = account
        self._kick()

    def defer_account(self, account: _Row) -> None:
        """Write ``account``'s row with the next checkpoint (a new repo head: replayable from the log)."""
        self._deferred[account.did] = account

    def count_ops(self, did: str, ops: Iterable[RepoOp]) -> None:
        """A commit's record-count changes, for the next checkpoint: +1 per create, -1 per delete."""
        deltas = self._deltas
        for op in ops:
            if op.action != "update":
                key = (op.path.partition("/")[0], did)
                deltas[key] = deltas.get(key, 0) + (1 if op.action == "create" else -1)

    def pending_records(self, collection: str) -> dict[str, int]:
        """Record-count changes in ``collection`` not yet in the table, by DID (readers merge them in)."""
        out: dict[str, int] = {}
        for deltas in (self._inflight[1], self._deltas):
            for (coll, did), n in deltas.items():
                if coll == collection:
                    out[did] = out.get(did, 0) + n
        return out

    def replace_records(self, did: str, counts: dict[str, int]) -> None:
        # counts from a whole-repo fetch already include every earlier pending delta of this repo
        for key in [k for k in self._deltas if k[1] == did]:
            del self._deltas[key]
        self._replacements.append((did, dict(counts)))
        self._checkpoint_due = True  # a resync's counts are not in the log: they cannot wait for a replay
        self._kick()

    def set_cursor(self, host_id: int, seq: int) -> None:
        self._cursors[host_id] = seq
        self._kick()

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def wait_flushed(self) -> None:
        """Until everything emitted so far is written and published (tests, shutdown)."""
        while not self._idle.is_set():
            await self._idle.wait()

    # --- the flusher ---------------------------------------------------------------------------------

    def _holding_state(self) -> bool:
        """Whether heads or record counts wait for the next checkpoint."""
        return bool(self._deferred or self._deltas or self._replacements)

    def _swap(self) -> tuple[Batch, list[float]]:
        # Every emitted event goes (the ingest queue's bound covers this backlog): the rows below reflect all
        # of them, and a row must never be on disk ahead of its events.
        events, received = self._events, self._received
        self._events, self._received = [], []
        now = time.perf_counter()
        holding = self._holding_state()
        # with nothing held back the tables are current, so any batch may record that
        checkpoint = (
            self._checkpoint_due
            or self._closing
            or (holding and now - self._last_checkpoint >= self.checkpoint_interval)
            or (not holding and self._state_seq < self._next - 1)
        )
        accounts = self._accounts
        if checkpoint:
            accounts = {**self._deferred, **accounts}
        batch = Batch(
            events=events,
            accounts=[a.row() for a in accounts.values()],
            cursors=list(self._cursors.items()),
        )
        self._accounts, self._cursors = {}, {}
        if checkpoint:
            batch.collection_deltas, batch.collection_replacements = self._deltas, self._replacements
            batch.state_seq = self._next - 1
            self._inflight = (self._deferred, self._deltas, self._replacements)
            self._deferred, self._deltas, self._replacements = {}, {}, []
            self._checkpoint_due = False
            self._last_checkpoint = now
        return batch, received

    async def _run(self) -> None:
        while True:
            holding = self._holding_state()
            if not (self._events or self._accounts or self._cursors or self._checkpoint_due):
                if self._closing and holding:
                    self._checkpoint_due = (
                        True  # the last batch writes the heads: no replay on the next start
                    )
                    continue
                self._idle.set()
                if self._closing:
                    return
                self._wake.clear()
                # gone quiet holding heads not yet written: checkpoint them when the interval is up
                due = self._last_checkpoint + self.checkpoint_interval - time.perf_counter()
                try:
                    await asyncio.wait_for(self._wake.wait(), max(due, 0.0) if holding else None)
                except TimeoutError:
                    self._checkpoint_due = True
                continue
            # Under load, take a batch at most every flush_interval: each batch costs a transaction, a hand-off
            # to the writer thread and a socket write per firehose subscriber, whatever its size.
            wait = self._last_flush + self.flush_interval - time.perf_counter()
            if wait > 0 and not self._closing and len(self._events) < self.max_batch:
                await asyncio.sleep(wait)
            batch, received = self._swap()
            started = self._last_flush = time.perf_counter()
            self._idle.clear()
            try:
                await self.db.execute_write(partial(write_batch, batch=batch))
            except asyncio.CancelledError:
                raise
            except Exception:
                # The events are lost (their seqs become a gap, which the protocol allows); the upstream
                # cursors were not advanced either, so nothing is lost for good once the host is replayed.
                self.write_failures += 1
                log.exception("writing a batch of %d events failed", len(batch.events))
                if batch.state_seq is not None:
                    self._retry_checkpoint()
                self.gate.open()
                continue
            if batch.state_seq is not None:
                self._state_seq = batch.state_seq
                self._inflight = ({}, {}, [])
            self.metrics.flush_seconds.observe(time.perf_counter() - started)
            self.metrics.flush_events.observe(len(batch.events))
            if batch.events:
                self._publish(batch.events, received)
            self.gate.open()

    def _retry_checkpoint(self) -> None:
        """A checkpoint's write failed: its heads and counts go back into the pending state, in front of what
        arrived since, and the next batch tries again."""
        deferred, deltas, replacements = self._inflight
        self._deferred = {**deferred, **self._deferred}
        replaced = {did for did, _counts in self._replacements}  # newer counts that already include these
        deltas = {key: n for key, n in deltas.items() if key[1] not in replaced}
        for key, n in self._deltas.items():
            deltas[key] = deltas.get(key, 0) + n
        self._deltas = deltas
        self._replacements = replacements + self._replacements
        self._checkpoint_due = True

    def _publish(self, events: list[tuple[int, int, str, bytes]], received: list[float]) -> None:
        self._latest = events[-1][0]
        if self._oldest is None:
            self._oldest = events[0][0]
        if self.hub is not None:
            self.hub.publish_batch([(seq, frame) for seq, _t, _did, frame in events])
        now = time.perf_counter()
        observe = self.metrics.added_latency.observe
        for at in received:
            observe(now - at)
        self.metrics.events_out.inc(len(events))

    # --- retention -----------------------------------------------------------------------------------

    async def trim(self, retention_seconds: float, *, chunk: int = 10_000) -> int:
        """Delete events older than the retention window; returns how many were deleted."""
        cutoff_us = int((self.clock() - retention_seconds) * 1e6)
        keep_from = await self.db.read(lambda conn: event_store.first_seq_at_or_after(conn, cutoff_us))
        if keep_from is None:
            latest = self._latest
            if latest is None:
                return 0
            keep_from = latest + 1  # everything is older than the window
        keep_from = min(keep_from, self._state_seq + 1)  # a crash would replay those into the repo heads
        deleted = 0
        while True:
            n = await self.db.execute_write(
                lambda conn: event_store.delete_through(conn, keep_from - 1, chunk)
            )
            deleted += n
            if n < chunk:
                break
        self._oldest = await self.db.read(event_store.oldest_seq)
        return deleted
