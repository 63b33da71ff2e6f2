"""The relay's live path: CPU turns bounded per event-loop round, turn hand-over, coalesced output batches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from atstack.core.stream import IdentityEvent
from atstack.relay.metrics import RelayMetrics
from atstack.relay.scheduler import PartitionedQueue
from atstack.relay.sequencer import Sequencer
from atstack.relay.store import MIGRATIONS
from atstack.storage.sqlite import Database
from atstack.xrpc.metrics import XRPCMetrics

T = TypeVar("T")
DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def test_one_time_slice_of_handlers_per_loop_round() -> None:
    """However many workers are awake, the loop gets a round after each slice (the readers, the flusher and
    the firehose writers run in it): counted in handler calls between two runs of a task that yields."""
    handled = 0

    async def handler(item: tuple[str, int]) -> None:
        nonlocal handled
        _spin(0.001)
        handled += 1

    queue: PartitionedQueue[tuple[str, int]] = PartitionedQueue(
        handler, workers=16, max_pending=10_000, time_slice=0.003
    )
    queue.start()
    try:
        # workers wake up one per new key while the turn is free: submit from many keys, with yields
        for i in range(300):
            await queue.submit(f"k{i % 60}", (f"k{i % 60}", i))
            if i % 20 == 0:
                await asyncio.sleep(0)
        per_round: list[int] = []
        before = handled
        while handled < 300:
            await asyncio.sleep(0)
            per_round.append(handled - before)
            before = handled
        await asyncio.wait_for(queue.wait_idle(), 10)
        assert handled == 300 and sum(per_round) > 0
        # a 3 ms slice of 1 ms handlers is 4 of them at most (the check follows each handler); with the turn
        # released for the yield, each of the awake workers ran a slice in the same round (dozens)
        assert max(per_round) <= 5, per_round
    finally:
        await queue.close()


async def test_a_worker_back_from_io_gets_the_turn_at_the_next_slice_end() -> None:
    handled: list[str] = []
    release = asyncio.Event()

    async def handler(item: tuple[str, int]) -> None:
        if item[0] == "slow":
            async with queue.io():
                await release.wait()
        else:
            _spin(0.001)
        handled.append(item[0])

    queue: PartitionedQueue[tuple[str, int]] = PartitionedQueue(
        handler, workers=4, max_pending=10_000, time_slice=0.003
    )
    queue.start()
    try:
        await queue.submit("slow", ("slow", 0))
        await asyncio.sleep(0.01)  # a worker is now waiting inside io()
        for i in range(400):
            await queue.submit(f"k{i % 40}", (f"k{i % 40}", i))
        while len(handled) < 20:
            await asyncio.sleep(0.001)
        release.set()
        at_release = len(handled)
        await asyncio.wait_for(queue.wait_idle(), 20)
        # it queues for the turn behind the other awake workers (FIFO), each handing over at its slice end
        # (≤ 4 handlers of 1 ms in a 3 ms slice): a few slices, not the whole backlog of 400
        assert handled.index("slow") - at_release <= 4 * 6
        assert len(handled) == 401
    finally:
        await queue.close()


async def test_turn_hand_over_survives_cancelled_waiters() -> None:
    queue: PartitionedQueue[int] = PartitionedQueue(_unused_handler, workers=1, max_pending=10)
    order: list[str] = []

    async def waiter(name: str) -> None:
        await queue._acquire()
        order.append(name)
        queue._release()

    await queue._acquire()  # this test holds the turn
    cancelled = asyncio.create_task(waiter("cancelled"))
    handed = asyncio.create_task(waiter("handed"))
    last = asyncio.create_task(waiter("last"))
    await asyncio.sleep(0)  # all three wait for the turn, in this order
    assert len(queue._turn_waiters) == 3
    cancelled.cancel()  # cancelled while waiting: skipped by the hand-over
    queue._release()  # hands the turn to "handed"...
    assert queue._holder is handed
    handed.cancel()  # ...which is cancelled before it runs, so it passes the turn on
    await asyncio.wait_for(last, 2)
    assert order == ["last"]
    assert cancelled.cancelled() and handed.cancelled()
    assert queue._holder is None and not queue._turn_waiters
    await queue._acquire()  # free again: taken at once
    assert queue._holder is asyncio.current_task()
    queue._release()


async def _unused_handler(item: int) -> None:
    raise AssertionError("no items are submitted")


class CountingDatabase(Database):
    """The real database, counting write transactions requested (one per sequencer batch)."""

    writes = 0

    async def execute_write(self, fn: Callable[..., T]) -> T:
        self.writes += 1
        return await super().execute_write(fn)


def _event(i: int) -> IdentityEvent:
    return IdentityEvent(seq=0, did=DID, time="2025-01-01T00:00:00.000Z", handle=f"h{i}.test")


async def test_sequencer_batches_at_most_once_per_interval_but_flushes_an_idle_event_at_once(
    tmp_path: Path,
) -> None:
    db = CountingDatabase(tmp_path / "relay.sqlite", synchronous="NORMAL")
    await db.migrate(MIGRATIONS)
    seqr = Sequencer(db, time.time, RelayMetrics(XRPCMetrics("t")), flush_interval=0.2)
    try:
        await seqr.load()
        seqr.start()
        started = time.perf_counter()
        seqr.emit(DID, _event(0))
        await seqr.wait_flushed()
        assert time.perf_counter() - started < 0.1  # nothing written lately: no coalescing delay
        writes_before = db.writes
        started = time.perf_counter()
        for i in range(1, 151):  # a steady stream: one event every ~2 ms for ~0.3 s
            seqr.emit(DID, _event(i))
            await asyncio.sleep(0.002)
        await seqr.wait_flushed()
        elapsed = time.perf_counter() - started
        batches = db.writes - writes_before
        assert seqr.latest_seq() == 151
        assert [s for s, _ in await seqr.read_after(0, 1000)] == list(range(1, 152))
        assert batches <= elapsed / 0.2 + 2, (batches, elapsed)
        await asyncio.sleep(0.25)
        started = time.perf_counter()
        seqr.emit(DID, _event(152))
        await seqr.wait_flushed()
        assert time.perf_counter() - started < 0.1
    finally:
        await seqr.close()
        await db.close()
