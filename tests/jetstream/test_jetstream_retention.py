"""Retention of the event store (checklist §13: default 36 h; older cursors start at the oldest retained
event): the service trims on start and on its timer, counts what it trimmed, keeps the floor across a
restart, and the store file stops growing once the window is full (trimmed pages are reused)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from jetstream_support import Stream, wait_until
from jetstream_synthetic import ALICE, HOUR_US, MovableClock, start_fed

from atstack.jetstream import JetstreamConfig
from atstack.jetstream.convert import JetEvent
from atstack.jetstream.store import EventStore

NOTE = "com.example.note"


def test_default_retention_is_36_hours(tmp_path: Path) -> None:
    config = JetstreamConfig(data_dir=tmp_path)
    assert config.retention_hours == 36.0
    assert config.retention_us == 36 * HOUR_US


async def test_trim_on_timer_and_on_start_keeps_the_floor(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    clock = MovableClock()
    jet, feed = await start_fed(tmp_path / "j", clock=clock, retention_hours=1.0, trim_interval=0.01)
    try:
        first = await feed.publish(*(feed.commit(ALICE, NOTE, f"a{i}") for i in range(5)))
        clock.advance(HOUR_US // 2)
        second = await feed.publish(*(feed.commit(ALICE, NOTE, f"b{i}") for i in range(3)))
        assert jet.service.store.count_sync() == 8
        clock.advance(HOUR_US // 2 + 1_000_000)  # the first batch is now out of the window
        await wait_until(lambda: jet.service.store.count_sync() == 3, what="the retention job")
        metrics = jet.service.metrics
        assert metrics.trimmed._value.get() == 5
        assert metrics.oldest._value.get() == second[0].time_us
        assert jet.service.store.floor > first[-1].time_us
        async with http.get(jet.url + "/status") as resp:
            status = await resp.json()
        assert status["events_stored"] == 3 and status["oldest_time_us"] == second[0].time_us
        replay = await Stream.open(http, jet.ws, {"cursor": "0"})
        await replay.wait_for(3)
        assert [e["time_us"] for e in replay.events] == [r.time_us for r in second]
        await replay.close()
    finally:
        await jet.stop()
    # restarted two hours later: the start trims everything, and the floor survived the restart
    clock.advance(2 * HOUR_US)
    jet, feed = await start_fed(tmp_path / "j", clock=clock, retention_hours=1.0)
    try:
        assert jet.service.store.count_sync() == 0
        assert jet.service.store.floor >= second[-1].time_us
        url = jet.url + "/xrpc/network.bsky.jetstream.subscribeEvents"
        async with http.get(url, params={"cursor": "1"}, headers={"Upgrade": "websocket"}) as resp:
            assert resp.status == 400 and (await resp.json())["error"] == "CursorTooOld"
        replay = await Stream.open(http, jet.ws, {"cursor": "0"})
        await wait_until(lambda: jet.service.fanout.live_count == 1, what="live")
        new = await feed.publish(feed.commit(ALICE, NOTE, "after restart"))
        assert new[0].time_us > second[-1].time_us  # time_us keeps increasing across the restart
        await replay.wait_for(1)
        assert [e["time_us"] for e in replay.events] == [new[0].time_us]
        await replay.close()
    finally:
        await jet.stop()


async def test_store_stops_growing_once_the_window_is_full(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "s", map_size=1 << 30, sync=False)
    await store.open()
    try:
        t, sizes = 1, []
        for cycle in range(6):
            batch = [JetEvent(t + i, 0, ALICE, NOTE, b"x" * 600) for i in range(10_000)]
            t += len(batch)
            for i in range(0, len(batch), 500):
                await store.append(batch[i : i + 500], cycle)
            assert await store.trim_before(t - 2_000) == (10_000 if cycle else 8_000)
            assert store.count_sync() == 2_000
            sizes.append(store.disk_bytes())
        # the first cycles size the file; after that, trimmed pages are reused rather than appended
        assert sizes[-1] <= sizes[1] * 1.05, sizes
        assert sizes[-1] < 6 * 10_000 * 600 / 2
    finally:
        await store.close()
