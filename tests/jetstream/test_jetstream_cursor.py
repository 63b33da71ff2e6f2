"""v1 ``cursor`` and ``requireHello`` edges (checklist §13): older than the retention window → the oldest
retained event, even before the retention job has trimmed; a future cursor → live; the forms Go's
``strconv.ParseInt`` accepts; replay → live under concurrent publishing without gap or duplicate;
``requireHello`` holds back live delivery too, and only the exact string "true" asks for it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from jetstream_support import Stream, wait_until
from jetstream_synthetic import ALICE, BOB, MovableClock, start_fed

NOTE = "com.example.note"


async def test_cursor_older_than_retention_starts_at_oldest_retained(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    clock = MovableClock()
    jet, feed = await start_fed(tmp_path / "j", clock=clock, retention_hours=1.0)
    try:
        times = []
        for step in (0, 10, 40, 20):  # minutes between events: at 0, 10, 50 and 70
            clock.advance(step * 60 * 1_000_000)
            times += [r.time_us for r in await feed.publish(feed.commit(ALICE, NOTE, f"+{step}"))]
        clock.advance(10 * 60 * 1_000_000)  # now = first + 80 min: the window starts at first + 20 min
        assert jet.service.store.count_sync() == 4  # nothing trimmed yet: the clock decides, not the store
        cases = {
            "0": times[2:],
            "1": times[2:],
            str(times[0]): times[2:],
            str(times[1] + 1): times[2:],
            str(times[2]): times[2:],
            str(times[2] + 1): times[3:],
        }
        streams = {cursor: await Stream.open(http, jet.ws, {"cursor": cursor}) for cursor in cases}
        await wait_until(lambda: jet.service.fanout.live_count == len(cases), what="replays done")
        live = [r.time_us for r in await feed.publish(feed.commit(BOB, NOTE, "live"))]
        for cursor, expected in cases.items():
            stream = streams[cursor]
            await stream.wait_for(len(expected) + 1)
            assert [e["time_us"] for e in stream.events] == expected + live, cursor
            await stream.close()
        # after the retention job ran, the same: and the store really shrank
        assert await jet.service.trim() == 2
        late = await Stream.open(http, jet.ws, {"cursor": "0"})
        await late.wait_for(3)
        assert [e["time_us"] for e in late.events] == times[2:] + live
        await late.close()
    finally:
        await jet.stop()


async def test_future_cursor_is_live_only(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    clock = MovableClock()
    jet, feed = await start_fed(tmp_path / "j", clock=clock)
    try:
        await feed.publish(feed.commit(ALICE, NOTE, "old"))
        stream = await Stream.open(http, jet.ws, {"cursor": str(clock() + 60_000_000)})
        await wait_until(lambda: jet.service.fanout.live_count == 1, what="live")
        new = await feed.publish(feed.commit(ALICE, NOTE, "new"))
        await stream.wait_for(1)
        assert [e["time_us"] for e in stream.events] == [new[0].time_us]
        await stream.close()
    finally:
        await jet.stop()


@pytest.mark.parametrize(
    ("raw", "ok"), [("+0", True), ("-0", True), ("007", True), ("-1", False), ("", True)]
)
async def test_cursor_forms(tmp_path: Path, http: aiohttp.ClientSession, raw: str, ok: bool) -> None:
    jet, feed = await start_fed(tmp_path / "j")
    try:
        rows = await feed.publish(feed.commit(ALICE, NOTE, "stored"))
        if not ok:
            url = jet.ws.replace("ws://", "http://")
            async with http.get(url, params={"cursor": raw}) as resp:
                assert resp.status == 400
                assert "invalid cursor" in await resp.text()
            return
        stream = await Stream.open(http, jet.ws, {"cursor": raw})
        await wait_until(lambda: jet.service.fanout.live_count == 1, what="live")
        if raw:  # a cursor of zero replays everything retained; an empty one means live
            await stream.wait_for(1)
            assert [e["time_us"] for e in stream.events] == [rows[0].time_us]
        else:
            live = await feed.publish(feed.commit(ALICE, NOTE, "live"))
            await stream.wait_for(1)
            assert [e["time_us"] for e in stream.events] == [live[0].time_us]
        await stream.close()
    finally:
        await jet.stop()


async def test_replay_to_live_under_concurrent_publishing(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    jet, feed = await start_fed(tmp_path / "j")
    try:
        jet.service.fanout.replay_batch = 7
        stored = await feed.history(NOTE, 40, 5)
        published = list(stored)
        stop = asyncio.Event()
        task = asyncio.create_task(feed.keep_publishing(NOTE, feed.identity, published, stop, 30))
        cursors = [stored[0].time_us, stored[57].time_us, stored[-1].time_us]
        streams = [await Stream.open(http, jet.ws, {"cursor": str(c)}) for c in cursors]
        for zstd_cursor in cursors:
            streams.append(await Stream.open(http, jet.ws, {"cursor": str(zstd_cursor), "compress": "true"}))
        await wait_until(lambda: jet.service.fanout.live_count == len(streams), what="all live")
        stop.set()
        await task
        last = published[-1].time_us
        for stream, cursor in zip(streams, cursors * 2, strict=True):
            expected = [e.time_us for e in published if e.time_us >= cursor]
            await stream.wait_for(len(expected))
            got = [e["time_us"] for e in stream.events]
            assert got == expected, (cursor, len(got), len(expected))
            assert got[-1] == last
            await stream.close()
    finally:
        await jet.stop()


async def test_require_hello_holds_back_live_delivery(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    jet, feed = await start_fed(tmp_path / "j")
    try:
        waiting = await Stream.open(http, jet.ws, {"requireHello": "true"})
        not_exact = await Stream.open(http, jet.ws, {"requireHello": "True"})  # only "true" asks for it
        await wait_until(lambda: jet.service.fanout.subscriber_count == 2, what="both connected")
        await wait_until(lambda: jet.service.fanout.live_count == 1, what="the not-exact one live")
        before = await feed.publish(feed.commit(ALICE, NOTE, "before hello"))
        await not_exact.wait_for(1)
        assert [e["time_us"] for e in not_exact.events] == [before[0].time_us]
        assert waiting.events == []
        await waiting.send({"type": "options_update", "payload": {"wantedDids": [ALICE]}})
        await wait_until(lambda: jet.service.fanout.live_count == 2, what="hello received")
        await feed.publish(feed.commit(BOB, NOTE, "filtered out by the hello's filter"))
        after = await feed.publish(feed.commit(ALICE, NOTE, "after hello"))
        await waiting.wait_for(1)
        await not_exact.wait_for(3)
        # live from the hello on: what was published while waiting is not delivered
        assert [e["time_us"] for e in waiting.events] == [after[0].time_us]
        for s in (waiting, not_exact):
            await s.close()
    finally:
        await jet.stop()


async def test_require_hello_rejects_a_bad_first_options_update(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    jet, feed = await start_fed(tmp_path / "j")
    try:
        await feed.publish(feed.commit(ALICE, NOTE, "stored"))
        ws = await http.ws_connect(jet.ws, params={"requireHello": "true", "cursor": "0"})
        await ws.send_str('{"type":"options_update","payload":{"wantedDids":["not a did"]}}')
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1008)  # nothing before the close
        assert "invalid DID" in msg.extra
        await ws.close()
        await wait_until(lambda: jet.service.fanout.subscriber_count == 0, what="gone")
    finally:
        await jet.stop()
