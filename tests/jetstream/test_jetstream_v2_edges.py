"""v2 ``network.bsky.jetstream.subscribeEvents`` edges, per its lexicon and the reference's
``filterv2.go``/``cursor.go``/``handler.go``:

* the lexicon's ``maxLength`` caps count raw repeated values (kinds ≤ 4, collections ≤ 100, dids ≤ 10,000);
  ``maxMessageSizeBytes`` is one unsigned 32-bit integer (empty, repeated or signed → 400) and caps the
  whole uncompressed frame; ``cursor`` reads as Go's ``ParseInt``;
* a timestamp cursor older than the retention window is clamped and announced first with ``#info
  OutdatedCursor`` naming the seq resumed from; a seq cursor with nothing trimmed replays without a notice;
  a future cursor is live; replay → live under concurrent publishing has no gap and no duplicate;
* ``#sync`` is delivered on v2 (never on v1); a commit without a collection passes collection filters;
* a subscriber that stops reading gets the ``ConsumerTooSlow`` error frame, then the close;
* events and bytes sent on v2 are counted in ``/metrics``; only the exact ``xrpc.v1.json`` is echoed.
"""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from jetstream_support import (
    V2_NSID,
    Jet,
    Stream,
    drain_frames,
    stalled_socket,
    wait_until,
)
from jetstream_support import (
    connect_v2 as connect,
)
from jetstream_synthetic import ALICE, BOB, Feed, MovableClock, start_fed

from atstack.jetstream.compression import V1_DICTIONARY_ID
from atstack.jetstream.v2 import encode_v2

NSID = V2_NSID
NOTE = "com.example.note"


async def refused(http: aiohttp.ClientSession, jet: Jet, params: Any) -> tuple[int, dict[str, Any]]:
    url = jet.url + f"/xrpc/{NSID}"
    async with http.get(url, params=params, headers={"Upgrade": "websocket"}) as resp:
        return resp.status, await resp.json()


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[tuple[Jet, Feed]]:
    jet, feed = await start_fed(tmp_path / "jetstream")
    yield jet, feed
    await jet.stop()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([("kinds", "commit")] * 5, "too many kinds"),
        ([("collections", NOTE)] * 101, "too many collections"),
        ([("dids", ALICE)] * 10_001, "too many dids"),
        ({"maxMessageSizeBytes": ""}, "maxMessageSizeBytes"),
        ([("maxMessageSizeBytes", "5"), ("maxMessageSizeBytes", "6")], "maxMessageSizeBytes"),
        ({"maxMessageSizeBytes": "+5"}, "maxMessageSizeBytes"),
        ({"maxMessageSizeBytes": str(2**32)}, "maxMessageSizeBytes"),
        ({"cursor": "-1"}, "negative"),
        ({"zstdDictionary": "0"}, "zstdDictionary"),
    ],
)
async def test_pre_upgrade_400s(
    http: aiohttp.ClientSession, fed: tuple[Jet, Feed], params: Any, message: str
) -> None:
    status, body = await refused(http, fed[0], params)
    assert status == 400 and body["error"] == "InvalidRequest"
    assert message in body["message"]


async def test_accepted_forms(http: aiohttp.ClientSession, fed: tuple[Jet, Feed]) -> None:
    jet, feed = fed
    rows = await feed.publish(feed.commit(ALICE, NOTE))
    ok = [
        [("kinds", "commit"), ("kinds", "identity"), ("kinds", "account"), ("kinds", "sync")],
        [("collections", f"com.example.c{i}") for i in range(100)],
        [("dids", ALICE)] * 10_000,
        {"cursor": "+0"},
        {"maxMessageSizeBytes": "0"},
    ]
    for params in ok:
        s = await connect(http, jet, params)  # a refusal would raise WSServerHandshakeError
        await s.close()
    s = await connect(http, jet, {"cursor": "+0"})
    await s.wait_seq(rows[0].time_us)
    await s.close()


async def test_max_message_size_caps_the_whole_frame(
    http: aiohttp.ClientSession, fed: tuple[Jet, Feed]
) -> None:
    jet, feed = fed
    rows = await feed.publish(feed.commit(ALICE, NOTE, "a", pad=200), feed.commit(ALICE, NOTE, "b", pad=600))
    small, big = (len(encode_v2(r)) for r in rows)
    assert len(rows[1].data) < big  # the v1 JSON is smaller than the frame: the cap is on the frame
    barriers: list[int] = []  # small identity frames every cap below lets through, published after ``rows``
    for cap, expected in ((big, [r.time_us for r in rows]), (big - 1, [rows[0].time_us]), (small - 1, [])):
        s = await connect(http, jet, {"cursor": str(rows[0].time_us), "maxMessageSizeBytes": str(cap)})
        barrier = await feed.publish(feed.identity(ALICE))
        assert len(encode_v2(barrier[0])) < small - 1
        barriers.append(barrier[0].time_us)
        await s.wait_seq(barriers[-1])
        assert s.seqs() == expected + barriers, cap
        await s.close()


async def test_timestamp_cursor_older_than_the_window_is_announced(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    clock = MovableClock()
    jet, feed = await start_fed(tmp_path / "j", clock=clock, retention_hours=1.0)
    try:
        old = await feed.publish(feed.commit(ALICE, NOTE, "old"))
        clock.advance(50 * 60 * 1_000_000)
        kept = await feed.publish(feed.commit(ALICE, NOTE, "kept"))
        clock.advance(20 * 60 * 1_000_000)  # "old" is 70 minutes old now, "kept" 20: nothing trimmed yet
        assert jet.service.store.floor == 0
        s = await connect(http, jet, {"cursor": str(old[0].time_us), "zstdDictionary": str(V1_DICTIONARY_ID)})
        await s.wait_seq(kept[0].time_us)
        info = s.frames[0]["payload"]
        assert info["$type"] == f"{NSID}#info" and info["name"] == "OutdatedCursor"
        assert info["message"].endswith(f"starting at seq {kept[0].time_us}")
        assert s.seqs() == [kept[0].time_us]
        await s.close()
        # a seq cursor (< 1e15) with nothing trimmed: replay from the oldest stored, no notice, no gap
        s = await connect(http, jet, {"cursor": "5"})
        await s.wait_seq(kept[0].time_us)
        assert s.seqs() == [old[0].time_us, kept[0].time_us]
        assert all(f["payload"]["$type"] != f"{NSID}#info" for f in s.frames)
        await s.close()
        # once trimmed, the same seq cursor is refused: the events it asks for are gone
        await jet.service.trim()
        status, body = await refused(http, jet, {"cursor": "5"})
        assert status == 400 and body["error"] == "CursorTooOld"
        # a future cursor is live
        s = await connect(http, jet, {"cursor": str(clock() + 10**9)})
        await wait_until(lambda: jet.service.v2.live_count == 1, what="live")
        new = await feed.publish(feed.commit(BOB, NOTE, "new"))
        await s.wait_seq(new[0].time_us)
        assert s.seqs() == [new[0].time_us] and len(s.frames) == 1
        await s.close()
    finally:
        await jet.stop()


async def test_replay_to_live_under_concurrent_publishing(
    http: aiohttp.ClientSession, fed: tuple[Jet, Feed]
) -> None:
    jet, feed = fed
    jet.service.fanout.replay_batch = 6
    stored = await feed.history(NOTE, 30, 4)
    published = list(stored)
    stop = asyncio.Event()
    task = asyncio.create_task(feed.keep_publishing(NOTE, feed.sync, published, stop, 20))
    cursors = [stored[0].time_us, stored[45].time_us]
    subs = [await connect(http, jet, {"cursor": str(c)}) for c in cursors]
    subs.append(await connect(http, jet, {"cursor": str(cursors[1]), "kinds": "sync"}))
    await wait_until(lambda: jet.service.v2.live_count == len(subs), what="all live")
    stop.set()
    await task
    for s, cursor, kinds in zip(subs, [*cursors, cursors[1]], ["all", "all", "sync"], strict=True):
        expected = [e.time_us for e in published if e.time_us >= cursor and (kinds == "all" or e.kind == 3)]
        await s.wait_seq(expected[-1])
        assert s.seqs() == expected
        await s.close()


async def test_sync_on_v2_never_on_v1_and_empty_collection_passes(
    http: aiohttp.ClientSession, fed: tuple[Jet, Feed]
) -> None:
    jet, feed = fed
    v1 = await Stream.open(http, jet.ws, {"wantedCollections": NOTE})
    v2 = await connect(http, jet, {"collections": NOTE})
    await wait_until(lambda: jet.service.fanout.live_count == 1 and jet.service.v2.live_count == 1)
    rows = await feed.publish(
        feed.sync(ALICE),
        feed.commit(ALICE, ""),
        feed.commit(ALICE, "com.example.other"),
        feed.commit(ALICE, NOTE),
    )
    assert rows[1].collection == ""
    await v2.wait_seq(rows[-1].time_us)
    await v1.wait_for(2)
    assert v2.seqs() == [rows[0].time_us, rows[1].time_us, rows[3].time_us]
    assert v2.frames[0]["payload"]["$type"] == f"{NSID}#sync"
    assert v2.frames[0]["payload"]["sync"]["blocks"] == {
        "$bytes": base64.b64encode(b"\x00\x01").decode().rstrip("=")
    }
    assert [e["time_us"] for e in v1.events] == [rows[1].time_us, rows[3].time_us]
    await v1.close()
    await v2.close()


async def test_metrics_count_v2_and_subprotocol_is_exact(
    http: aiohttp.ClientSession, fed: tuple[Jet, Feed]
) -> None:
    jet, feed = fed
    text = await connect(http, jet, protocols=("XRPC.V1.JSON",))  # case differs: not echoed, same framing
    packed = await connect(http, jet, {"zstdDictionary": str(V1_DICTIONARY_ID)}, protocols=("xrpc.v1.json",))
    assert text.ws.protocol is None and packed.ws.protocol == "xrpc.v1.json"
    await wait_until(lambda: jet.service.v2.live_count == 2, what="live")
    rows = await feed.publish(feed.commit(ALICE, NOTE), feed.identity(ALICE))
    for s in (text, packed):
        await s.wait_seq(rows[-1].time_us)
    assert text.raw == packed.raw  # the compressed frames decode to exactly the text frames
    metrics = jet.service.metrics
    assert metrics.events_out.labels("json")._value.get() == 2
    assert metrics.events_out.labels("zstd")._value.get() == 2
    wire = sum(len(r) + (2 if len(r) < 126 else 4) for r in text.raw)  # payload + frame header
    assert metrics.bytes_out.labels("json")._value.get() == wire
    assert metrics.bytes_uncompressed._value.get() == sum(len(r) for r in packed.raw)
    packed_bytes = metrics.bytes_out.labels("zstd")._value.get()
    assert packed_bytes > 0 and packed_bytes < wire
    assert metrics.subscribers.labels("subscribeEvents")._value.get() == 2
    for s in (text, packed):
        await s.close()


async def test_slow_v2_subscriber_gets_consumer_too_slow(
    http: aiohttp.ClientSession, fed: tuple[Jet, Feed]
) -> None:
    jet, feed = fed
    jet.service.fanout.max_outbox_bytes = 128 * 1024
    jet.service.fanout.close_timeout = 0.5
    fast = await connect(http, jet)
    sock = stalled_socket(jet, f"/xrpc/{NSID}")
    await wait_until(lambda: jet.service.v2.live_count == 2, what="both live")
    last = 0
    for _ in range(2000):
        rows = await feed.publish(*(feed.commit(ALICE, NOTE, pad=2000) for _ in range(20)))
        last = rows[-1].time_us
        await asyncio.sleep(0)
        if jet.service.v2.live_count == 1:
            break
    assert jet.service.v2.live_count == 1, "the slow subscriber was not dropped"
    await fast.wait_seq(last)
    assert not fast.closed.is_set()
    frames = await drain_frames(sock)
    texts = [orjson.loads(p) for op, p in frames if op == 0x1]
    errors = [t for t in texts if t["$type"] == "error"]
    assert errors and errors[-1]["error"] == "ConsumerTooSlow"
    assert texts[-1] is errors[-1]  # the error frame is the last data frame
    closes = [p for op, p in frames if op == 0x8]
    assert closes and struct.unpack("!H", closes[0][:2])[0] == 1008
    await fast.close()
