"""v1 ``options_update`` and query edges against the reference's behaviour (checklist §13,
``internal/subscribe/handler.go`` and ``filter.go`` of Bluesky's Jetstream):

* an absent ``payload`` is a malformed message (1007), a ``null`` one clears the filter;
* ``maxMessageSizeBytes`` in ``options_update`` caps later events; negative or wider than 32 bits means no
  cap (the connection stays); beyond int64 it is malformed (1007);
* the close reason of a refused filter fits a close frame and stays valid UTF-8 whatever the client sent;
* an oversized message is counted, and the other subscribers never notice any of it;
* the query is validated before the upgrade headers (a plain GET with a bad filter gets the 400 reason);
  10,000 DIDs fit on the query string, 10,001 are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jetstream_support import Jet, Stream, wait_until
from jetstream_synthetic import ALICE, BOB, Feed, start_fed

NOTE = "com.example.note"


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[tuple[Jet, Feed]]:
    jet, feed = await start_fed(tmp_path / "jetstream")
    yield jet, feed
    await jet.stop()


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int, str]:
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert msg.type is aiohttp.WSMsgType.CLOSE, msg
    return msg.data, msg.extra


async def applied(jet: Jet, stream: Stream, message: Any, check: Any) -> None:
    await stream.send(message)
    await wait_until(lambda: check(jet.service.fanout.subscribers[0].filter), what="filter applied")


async def test_payload_absent_is_malformed_null_clears(
    http: aiohttp.ClientSession, fed: tuple[Jet, Feed]
) -> None:
    jet, feed = fed
    bystander = await Stream.open(http, jet.ws, [("wantedDids", BOB)])
    ws = await http.ws_connect(jet.ws)
    await ws.send_str('{"type":"options_update"}')
    code, reason = await closed_with(ws)
    assert code == 1007 and "options_update" in reason
    await ws.close()
    await wait_until(lambda: jet.service.fanout.subscriber_count == 1, what="closed")

    stream = await Stream.open(http, jet.ws, [("wantedDids", ALICE)])
    await wait_until(lambda: jet.service.fanout.subscriber_count == 2, what="connected")
    sub = next(s for s in jet.service.fanout.subscribers if s.filter.dids == frozenset({ALICE}))
    await stream.send('{"type":"options_update","payload":null}')
    await wait_until(lambda: sub.filter.dids is None, what="filter cleared")
    rows = await feed.publish(feed.commit(ALICE, NOTE), feed.commit(BOB, NOTE))
    await stream.wait_for(2)
    await bystander.wait_for(1)
    assert [e["time_us"] for e in stream.events] == [r.time_us for r in rows]
    assert [e["did"] for e in bystander.events] == [BOB] and not bystander.closed.is_set()
    await stream.close()
    await bystander.close()


async def test_max_message_size_in_options_update(http: aiohttp.ClientSession, fed: tuple[Jet, Feed]) -> None:
    jet, feed = fed
    stream = await Stream.open(
        http, jet.ws, {"compress": "true"}
    )  # the cap is on the JSON, compressed or not
    await wait_until(lambda: jet.service.fanout.live_count == 1, what="live")
    sub = jet.service.fanout.subscribers[0]
    small, big = feed.commit(ALICE, NOTE, "s"), feed.commit(ALICE, NOTE, "b", pad=600)
    await applied(jet, stream, {"type": "options_update", "payload": {"maxMessageSizeBytes": 500}},
                  lambda f: f.max_message_size == 500)  # fmt: skip
    rows = await feed.publish(big, small)
    assert len(rows[0].data) > 500 >= len(rows[1].data)
    assert len(jet.service.fanout.compress(rows[0].data)) < 500  # it would fit compressed: still skipped
    await stream.wait_for(1)
    for size in (-1, 2**32, 2**63 - 1):  # all mean "no cap", and the connection stays
        await applied(jet, stream, {"type": "options_update", "payload": {"maxMessageSizeBytes": 500}},
                      lambda f: f.max_message_size == 500)  # fmt: skip
        await applied(jet, stream, {"type": "options_update", "payload": {"maxMessageSizeBytes": size}},
                      lambda f: f.max_message_size == 0)  # fmt: skip
    rows += await feed.publish(feed.commit(ALICE, NOTE, "b2", pad=600))
    await stream.wait_for(2)
    assert [e["time_us"] for e in stream.events] == [rows[1].time_us, rows[2].time_us]
    assert sub.filter.max_message_size == 0 and not stream.closed.is_set()
    await stream.send({"type": "options_update", "payload": {"maxMessageSizeBytes": 2**63}})
    await stream.closed.wait()
    assert stream.ws.close_code == 1007
    await stream.close()


async def test_close_reason_is_cut_on_a_character_boundary(
    http: aiohttp.ClientSession, fed: tuple[Jet, Feed]
) -> None:
    jet, _ = fed
    ws = await http.ws_connect(jet.ws)
    bad = "é" * 150 + ".*"  # not an NSID; its echo alone is 300 bytes of two-byte characters
    await ws.send_json({"type": "options_update", "payload": {"wantedCollections": [bad]}})
    code, reason = await closed_with(ws)  # the client decodes the reason strictly: a cut character fails
    assert code == 1008
    assert reason.startswith("invalid collection: éé") and reason.endswith("...")
    assert len(reason.encode()) <= 123
    await ws.close()


async def test_oversized_message_is_counted_and_others_unaffected(
    http: aiohttp.ClientSession, fed: tuple[Jet, Feed]
) -> None:
    jet, feed = fed
    bystander = await Stream.open(http, jet.ws)
    ws = await http.ws_connect(jet.ws)
    await wait_until(lambda: jet.service.fanout.live_count == 2, what="live")
    with contextlib.suppress(ConnectionError):
        await ws.send_str('{"type":"hello","payload":"' + "x" * 10_000_000 + '"}')
    code, _ = await closed_with(ws)
    assert code == 1009
    await ws.close()
    counter = jet.service.metrics.options_updates.labels("oversize")
    await wait_until(lambda: counter._value.get() == 1, what="counted")
    # exactly at the limit is accepted (and, being an unknown type, ignored)
    ok = await Stream.open(http, jet.ws)
    filler = "x" * (10_000_000 - len('{"type":"hello","payload":""}'))
    await ok.send('{"type":"hello","payload":"' + filler + '"}')
    rows = await feed.publish(feed.commit(ALICE, NOTE))
    await ok.wait_for(1)
    await bystander.wait_for(1)
    assert [e["time_us"] for e in bystander.events] == [rows[0].time_us] == [ok.events[0]["time_us"]]
    assert not ok.closed.is_set() and not bystander.closed.is_set()
    await ok.close()
    await bystander.close()


async def test_query_is_validated_before_the_upgrade(
    http: aiohttp.ClientSession, fed: tuple[Jet, Feed]
) -> None:
    jet, _ = fed
    url = jet.ws.replace("ws://", "http://")
    async with http.get(url, params={"wantedCollections": "nope"}) as resp:
        assert resp.status == 400
        assert "invalid collection: nope" in await resp.text()
    async with http.get(url, params={"compress": "true"}, headers={"Sec-WebSocket-Extensions": "permessage-deflate"}) as resp:  # fmt: skip
        assert resp.status == 400
    async with http.get(url, params={"wantedCollections": NOTE}) as resp:
        assert resp.status == 426


async def test_ten_thousand_dids_fit_on_the_query_string(
    http: aiohttp.ClientSession, fed: tuple[Jet, Feed]
) -> None:
    jet, feed = fed
    dids = [f"did:plc:{i:024d}" for i in range(9_999)] + [ALICE]
    stream = await Stream.open(http, jet.ws, [("wantedDids", d) for d in dids + dids[:50]])  # dups are free
    await wait_until(lambda: jet.service.fanout.live_count == 1, what="live")
    rows = await feed.publish(feed.commit(BOB, NOTE), feed.commit(ALICE, NOTE))
    await stream.wait_for(1)
    assert [e["time_us"] for e in stream.events] == [rows[1].time_us]
    await stream.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await http.ws_connect(jet.ws, params=[("wantedDids", d) for d in [*dids, BOB]])
    assert info.value.status == 400
    async with http.get(jet.ws.replace("ws://", "http://"), params=[("wantedDids", d) for d in [*dids, BOB]]) as resp:  # fmt: skip
        assert "too many wanted DIDs" in await resp.text()
