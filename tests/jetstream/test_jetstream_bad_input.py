"""Bad input on v1 /subscribe: pre-upgrade 400s, invalid/oversized/malformed options_update, unknown
message types, slow subscribers — each handled as the checklist says, and other subscribers unaffected."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from jetstream_support import Jet, Stream, drain_frames, stalled_socket, start_jetstream, wait_until

from atstack.jetstream.convert import JetEvent
from atstack.jetstream.filters import KIND_COMMIT

DID = "did:plc:alicealicealicealicealic"


@pytest.fixture
async def jet(tmp_path: Path) -> AsyncIterator[Jet]:
    server = await start_jetstream(tmp_path / "jetstream", None)
    yield server
    await server.stop()


async def inject(jet: Jet, n: int, size: int = 50, collection: str = "app.bsky.feed.post") -> list[JetEvent]:
    """Store and publish ``n`` synthetic commit events (as the consumer does)."""
    service = jet.service
    events = []
    for _ in range(n):
        t = service.converter.stamp()
        data = orjson.dumps(
            {
                "did": DID,
                "time_us": t,
                "kind": "commit",
                "commit": {"collection": collection, "pad": "x" * size},
            }
        )
        events.append(JetEvent(t, KIND_COMMIT, DID, collection, data))
    await service.store.append(events, None)
    service.fanout.publish(events)
    return events


async def status_of(
    http: aiohttp.ClientSession, url: str, params: object = None, **kw: object
) -> tuple[int, str]:
    try:
        ws = await http.ws_connect(url, params=params, **kw)  # type: ignore[arg-type]
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status, ""
    await ws.close()
    return 101, ""


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"cursor": "abc"}, "invalid cursor"),
        ({"cursor": "-1"}, "invalid cursor"),
        ({"cursor": "1.5"}, "invalid cursor"),
        ({"cursor": str(2**63)}, "out of range"),
        ([("wantedCollections", f"com.example.c{i}") for i in range(101)], "too many wanted collections"),
        ({"wantedCollections": "not-an-nsid"}, "invalid collection"),
        ({"wantedCollections": "*"}, "invalid collection"),
        ({"wantedDids": "alice.test"}, "invalid DID"),
    ],
)
async def test_invalid_query_is_400_with_reason(
    http: aiohttp.ClientSession, jet: Jet, params: object, reason: str
) -> None:
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}  # fmt: skip
    async with http.get(jet.ws.replace("ws://", "http://"), params=params, headers=headers) as resp:
        assert resp.status == 400
        assert reason in await resp.text()
    assert (await status_of(http, jet.ws, params))[0] == 400


async def test_method_upgrade_and_double_compression(http: aiohttp.ClientSession, jet: Jet) -> None:
    base = jet.url + "/subscribe"
    async with http.post(base) as resp:
        assert resp.status == 405
    async with http.get(base) as resp:
        assert resp.status == 426
    # zstd and permessage-deflate together would double-compress: 400
    assert (await status_of(http, jet.ws, {"compress": "true"}, compress=15))[0] == 400
    # permessage-deflate alone is declined, not refused
    ws = await http.ws_connect(jet.ws, compress=15)
    assert ws.compress == 0
    await ws.close()
    # unknown parameters are ignored
    assert (await status_of(http, jet.ws, {"whatever": "1", "compress": "false"}))[0] == 101


async def test_bad_options_update_closes_only_that_connection(http: aiohttp.ClientSession, jet: Jet) -> None:
    bystander = await Stream.open(http, jet.ws)
    cases = [
        (
            {"type": "options_update", "payload": {"wantedCollections": ["bad nsid"]}},
            1008,
            "invalid collection",
        ),
        (
            {"type": "options_update", "payload": {"wantedCollections": [f"a.b.c{i}" for i in range(101)]}},
            1008,
            "too many wanted collections",
        ),
        ({"type": "options_update", "payload": {"wantedDids": ["nope"]}}, 1008, "invalid DID"),
        ({"type": "options_update", "payload": {"wantedDids": "did:plc:x"}}, 1007, "bad options_update"),
        ({"type": "options_update", "payload": []}, 1007, "bad options_update"),
        ("{not json", 1007, "bad message envelope"),
        ([1, 2], 1007, "bad message envelope"),
        ({"type": 5}, 1007, "bad message envelope"),
    ]
    for message, code, reason in cases:
        ws = await http.ws_connect(jet.ws)
        await ws.send_str(message if isinstance(message, str) else orjson.dumps(message).decode())
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type is aiohttp.WSMsgType.CLOSE, message
        assert (msg.data, reason in (msg.extra or "")) == (code, True), (message, msg.extra)
        await ws.close()
    # oversized: more than 10,000,000 bytes → closed as "message too big"
    ws = await http.ws_connect(jet.ws)
    with contextlib.suppress(ConnectionError):  # the server may hang up while the frame is still going out
        await ws.send_str('{"type":"options_update","payload":{"wantedDids":["' + "x" * 10_000_001 + '"]}}')
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1009), msg
    await ws.close()
    await wait_until(lambda: jet.service.fanout.subscriber_count == 1, what="rejected connections gone")
    await inject(jet, 3)
    await bystander.wait_for(3)
    assert len(bystander.events) == 3 and not bystander.closed.is_set()
    await bystander.close()


async def test_unknown_messages_are_ignored(http: aiohttp.ClientSession, jet: Jet) -> None:
    stream = await Stream.open(http, jet.ws)
    await stream.send({"type": "hello_there", "payload": {"x": 1}})
    await stream.send({"payload": {}})
    await stream.send("null")
    await stream.ws.send_bytes(b"\x00binary is ignored")
    await asyncio.sleep(0.1)
    await inject(jet, 2)
    await stream.wait_for(2)
    assert len(stream.events) == 2 and not stream.closed.is_set()
    await stream.close()


async def test_slow_subscriber_is_dropped_and_others_are_not(http: aiohttp.ClientSession, jet: Jet) -> None:
    fanout = jet.service.fanout
    fanout.max_outbox_bytes = 256 * 1024
    fanout.close_timeout = 0.5
    fast = await Stream.open(http, jet.ws)
    # a raw client that completes the handshake and then stops reading
    sock = stalled_socket(jet, "/subscribe")
    await wait_until(lambda: fanout.live_count == 2, what="both live")
    sent = 0
    for _ in range(1000):
        sent += len(await inject(jet, 50, size=2000))
        await asyncio.sleep(0)
        if fanout.live_count == 1:
            break
    assert fanout.live_count == 1, "the slow subscriber was not dropped"
    assert jet.service.metrics.dropped.labels("too_slow")._value.get() == 1
    await fast.wait_for(sent, timeout=30)
    assert len(fast.events) == sent and not fast.closed.is_set()
    # the slow client, once it reads, finds the close frame (1008, with the reason) after the data
    frames = await drain_frames(sock)
    close = [payload for opcode, payload in frames if opcode == 0x8]
    assert close, "no close frame"
    assert struct.unpack("!H", close[0][:2])[0] == 1008
    assert b"consumer too slow" in close[0]
    await fast.close()
