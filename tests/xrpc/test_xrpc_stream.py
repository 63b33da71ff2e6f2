"""Event-stream server (checklist §5) over real WebSockets: cursors, replay→live cutover, slow consumers."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from wsraw import RawWebSocket

from atstack.core.stream import decode_frame, encode_message
from atstack.xrpc import EventStreamHub, MemoryEventLog, XRPCMetrics, XRPCRouter
from atstack.xrpc.stream import _frames_in, ws_binary_frame, ws_text_frame

NSID = "com.atproto.sync.subscribeRepos"
WS_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


class SlowLog(MemoryEventLog):
    """A log whose reads take real time, so publishing happens while a replay is in progress."""

    async def read_after(self, cursor: int, limit: int) -> list[tuple[int, bytes]]:
        await asyncio.sleep(0.002)
        return await super().read_after(cursor, limit)


def frame_for(seq: int, pad: int = 0) -> bytes:
    body: dict[str, Any] = {"seq": seq, "did": "did:plc:test", "time": "2024-01-01T00:00:00.000Z"}
    if pad:
        body["pad"] = b"\x00" * pad
    return encode_message("#identity", body)


class Stream:
    """A hub on a real server plus the persist-then-publish step a service performs."""

    def __init__(self, hub: EventStreamHub, log: MemoryEventLog, base: str) -> None:
        self.hub, self.log, self.base = hub, log, base
        self.seq = log.latest_seq() or 0

    def emit(self, pad: int = 0) -> int:
        self.seq += 1
        frame = frame_for(self.seq, pad)
        self.log.append(self.seq, frame)
        self.hub.publish(self.seq, frame)
        return self.seq

    @property
    def url(self) -> str:
        return self.base.replace("http://", "ws://") + f"/xrpc/{NSID}"


MakeStream = Callable[..., Awaitable[Stream]]


@pytest.fixture
async def make_stream(serve) -> MakeStream:
    async def make(log: MemoryEventLog | None = None, prefill: int = 0, **hub_kwargs: Any) -> Stream:
        log = log if log is not None else MemoryEventLog()
        for seq in range(1, prefill + 1):
            log.append(seq, frame_for(seq))
        metrics = XRPCMetrics("test")
        router = XRPCRouter("test", metrics=metrics)
        hub = EventStreamHub(log, metrics=metrics, **hub_kwargs)
        hub.mount(router)
        base = await serve(router.create_app())
        return Stream(hub, log, base)

    return make


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def collect(ws: aiohttp.ClientWebSocketResponse, last_seq: int, timeout: float = 30.0) -> list[Any]:
    """Decode frames until one with ``seq == last_seq`` (or the stream closes); returns seqs/info/errors."""
    out: list[Any] = []
    async with asyncio.timeout(timeout):
        async for msg in ws:
            assert msg.type is aiohttp.WSMsgType.BINARY
            frame = decode_frame(msg.data)
            if frame.op == -1:
                out.append(("error", frame.body["error"]))
            elif frame.t == "#info":
                out.append(("info", frame.body["name"]))
            else:
                out.append(frame.body["seq"])
                if frame.body["seq"] == last_seq:
                    break
    return out


async def test_live_delivery_to_several_subscribers(make_stream, http) -> None:
    stream = await make_stream(prefill=20)
    clients = [await http.ws_connect(stream.url) for _ in range(4)]
    await until(lambda: stream.hub.live_subscriber_count == 4)
    first = stream.seq + 1
    for _ in range(300):
        stream.emit()
    for ws in clients:
        assert await collect(ws, stream.seq) == list(range(first, stream.seq + 1))
    for ws in clients:
        await ws.close()
    await until(lambda: stream.hub.subscriber_count == 0)


async def test_replay_then_live_with_concurrent_publishing_has_no_gap_or_duplicate(make_stream, http) -> None:
    log = SlowLog()
    stream = await make_stream(log=log, prefill=3000, replay_batch=40)
    ws = await http.ws_connect(f"{stream.url}?cursor=1000")

    during_replay = 0

    async def publisher() -> None:
        # persist, yield (another task may read the log now), then publish — the race the hub must survive
        nonlocal during_replay
        for i in range(1500):
            if stream.hub.live_subscriber_count == 0:
                during_replay += 1
            stream.seq += 1
            frame = frame_for(stream.seq)
            log.append(stream.seq, frame)
            if i % 3 == 0:
                await asyncio.sleep(0)
            stream.hub.publish(stream.seq, frame)
            if i % 7 == 0:
                await asyncio.sleep(0.0005)

    task = asyncio.create_task(publisher())
    received = await collect(ws, 4500)
    await task
    assert during_replay > 100, "the test must publish while the subscriber is still replaying"
    assert received == list(range(1001, 4501))
    # and it is live now
    stream.emit()
    assert await collect(ws, 4501) == [4501]
    await ws.close()


async def test_several_replaying_subscribers_with_publishing(make_stream, http) -> None:
    stream = await make_stream(log=SlowLog(), prefill=500, replay_batch=25)
    cursors = [0, 1, 250, 499, 500]
    sockets = [await http.ws_connect(f"{stream.url}?cursor={c}") for c in cursors]
    for _ in range(400):
        stream.emit()
        await asyncio.sleep(0)
    for cursor, ws in zip(cursors, sockets, strict=True):
        assert await collect(ws, 900) == list(range(cursor + 1, 901)), cursor
        await ws.close()


async def test_publish_batch_reaches_live_and_replaying_subscribers_without_gap_or_duplicate(
    make_stream, http
) -> None:
    log = SlowLog()
    stream = await make_stream(log=log, prefill=600, replay_batch=30)
    live = await http.ws_connect(stream.url)
    await until(lambda: stream.hub.live_subscriber_count == 1)
    cursors = [0, 300, 599]
    sockets = [await http.ws_connect(f"{stream.url}?cursor={c}") for c in cursors]
    live_counts = []
    for i in range(200):
        # persist a batch, let replays read part of it, then publish it whole (what a sequencer does)
        batch = []
        for _ in range(1 + i % 9):
            stream.seq += 1
            frame = frame_for(stream.seq)
            log.append(stream.seq, frame)
            batch.append((stream.seq, frame))
            if i % 4 == 0:
                await asyncio.sleep(0.001)
        live_counts.append(stream.hub.live_subscriber_count)
        stream.hub.publish_batch(batch)
        await asyncio.sleep(0)
    # the replays must finish while batches are being published
    assert live_counts[0] == 1 and live_counts[-1] == 4, live_counts
    assert await collect(live, stream.seq) == list(range(601, stream.seq + 1))
    for cursor, ws in zip(cursors, sockets, strict=True):
        assert await collect(ws, stream.seq) == list(range(cursor + 1, stream.seq + 1)), cursor
    for ws in [live, *sockets]:
        await ws.close()
    async with http.get(f"{stream.base}/metrics") as r:
        text = await r.text()
    # frames written straight from the publishing round count as sent, like those of the writer tasks
    sent = next(line for line in text.splitlines() if line.startswith("stream_frames_sent_total{"))
    assert float(sent.rsplit(" ", 1)[1]) >= (stream.seq - 600) + sum(stream.seq - c for c in cursors)


def test_publish_batch_checks_the_order_before_changing_anything() -> None:
    hub = EventStreamHub(MemoryEventLog())
    hub.publish_batch([(1, frame_for(1)), (3, frame_for(3))])
    assert hub.last_published == 3
    for bad in ([(4, frame_for(4)), (4, frame_for(4))], [(5, frame_for(5)), (2, frame_for(2))]):
        with pytest.raises(ValueError, match="out of order"):
            hub.publish_batch(bad)
        assert hub.last_published == 3
    hub.publish_batch([])
    hub.publish(4, frame_for(4))
    assert hub.last_published == 4


async def test_no_cursor_is_live_only(make_stream, http) -> None:
    stream = await make_stream(prefill=50)
    ws = await http.ws_connect(stream.url)
    await until(lambda: stream.hub.live_subscriber_count == 1)
    stream.emit()
    assert await collect(ws, 51) == [51]
    await ws.close()


async def test_future_cursor_is_an_error_frame_then_close(make_stream, http) -> None:
    stream = await make_stream(prefill=10)
    ws = await http.ws_connect(f"{stream.url}?cursor=11")
    msg = await ws.receive(timeout=5)
    frame = decode_frame(msg.data)
    assert (frame.op, frame.body) == (-1, {"error": "FutureCursor", "message": "Cursor in the future."})
    closing = await ws.receive(timeout=5)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    # an empty log: any positive cursor is in the future, 0 is not
    empty = await make_stream()
    ws = await http.ws_connect(f"{empty.url}?cursor=1")
    assert decode_frame((await ws.receive(timeout=5)).data).body["error"] == "FutureCursor"
    ws0 = await http.ws_connect(f"{empty.url}?cursor=0")
    await until(lambda: empty.hub.live_subscriber_count == 1)
    empty.emit()
    assert await collect(ws0, 1) == [1]


async def test_outdated_cursor_gets_info_then_whole_window(make_stream, http) -> None:
    stream = await make_stream(prefill=150)
    stream.log.trim_before(51)
    ws = await http.ws_connect(f"{stream.url}?cursor=10")
    received = await collect(ws, 150)
    assert received == [("info", "OutdatedCursor"), *range(51, 151)]
    stream.emit()
    assert await collect(ws, 151) == [151]
    # cursor just below the window loses nothing: no info
    ws2 = await http.ws_connect(f"{stream.url}?cursor=50")
    assert await collect(ws2, 151) == list(range(51, 152))


async def test_cursor_zero_replays_whole_window(make_stream, http) -> None:
    stream = await make_stream(prefill=150)
    stream.log.trim_before(101)
    ws = await http.ws_connect(f"{stream.url}?cursor=0")
    assert await collect(ws, 150) == list(range(101, 151))


async def test_cursor_at_latest_replays_nothing_then_live(make_stream, http) -> None:
    stream = await make_stream(prefill=30)
    ws = await http.ws_connect(f"{stream.url}?cursor=30")
    await until(lambda: stream.hub.live_subscriber_count == 1)
    stream.emit()
    assert await collect(ws, 31) == [31]


async def test_client_frames_are_ignored(make_stream, http) -> None:
    stream = await make_stream(prefill=5)
    ws = await http.ws_connect(f"{stream.url}?cursor=0")
    await ws.send_str("hello")
    await ws.send_bytes(b"\xa1\x61x\x01")
    assert await collect(ws, 5) == [1, 2, 3, 4, 5]
    await until(lambda: stream.hub.live_subscriber_count == 1)
    stream.emit()
    assert await collect(ws, 6) == [6]


async def test_slow_subscriber_is_dropped_while_fast_one_gets_everything(make_stream, http) -> None:
    stream = await make_stream(max_outbox_frames=50, max_outbox_bytes=256 * 1024, close_timeout=2.0)
    fast = await http.ws_connect(stream.url)
    slow = await RawWebSocket.connect(stream.url, rcvbuf=4096)
    assert slow.status == 101
    await until(lambda: stream.hub.live_subscriber_count == 2)
    fast_seqs: list[int] = []

    async def read_fast() -> None:
        async for msg in fast:
            fast_seqs.append(decode_frame(msg.data).body["seq"])

    reader = asyncio.create_task(read_fast())
    # publish 8 KB frames in bursts, letting the fast reader keep up, until the slow one is dropped
    for _ in range(400):
        for _ in range(20):
            stream.emit(pad=8000)
        await until(lambda: len(fast_seqs) == stream.seq)
        if stream.hub.live_subscriber_count == 1:
            break
    assert stream.hub.live_subscriber_count == 1, "the stalled subscriber was never dropped"
    for _ in range(3):  # the fast one keeps streaming afterwards
        for _ in range(20):
            stream.emit(pad=8000)
        await until(lambda: len(fast_seqs) == stream.seq)
    assert fast_seqs == list(range(1, stream.seq + 1))

    # the slow consumer, reading at last, finds a gap-free prefix, ConsumerTooSlow, then a 1008 close
    frames = await slow.read_all_frames()
    data = [decode_frame(f.payload) for f in frames if f.opcode == 0x2]
    seqs = [f.body["seq"] for f in data if f.op == 1]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) < stream.seq
    assert data[-1].op == -1 and data[-1].body["error"] == "ConsumerTooSlow"
    close = [f for f in frames if f.opcode == 0x8]
    assert close and struct.unpack("!H", close[0].payload[:2])[0] == 1008
    slow.close()
    await until(lambda: stream.hub.subscriber_count == 1)

    async with http.get(f"{stream.base}/metrics") as r:
        text = await r.text()
    assert f'stream_consumers_dropped_total{{nsid="{NSID}",reason="too_slow"}} 1.0' in text
    assert f'stream_subscribers{{nsid="{NSID}"}} 1.0' in text
    assert "stream_frames_sent_total" in text
    await fast.close()
    await reader


async def test_pre_upgrade_errors_are_json(make_stream, http) -> None:
    stream = await make_stream(prefill=3)
    url = f"{stream.base}/xrpc/{NSID}"
    async with http.post(url, data=b"") as r:
        assert r.status == 405
        assert r.headers["Allow"] == "GET"
        assert orjson.loads(await r.read())["error"] == "InvalidRequest"
    async with http.get(url) as r:
        assert r.status == 426
        body = orjson.loads(await r.read())
        assert body["error"] == "InvalidRequest" and "Upgrade" in body["message"]
    for bad in ("abc", "-1", "1.5", "9007199254740992"):
        async with http.get(f"{url}?cursor={bad}", headers=WS_HEADERS) as r:
            assert r.status == 400, bad
            assert orjson.loads(await r.read())["error"] == "InvalidRequest"
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await http.ws_connect(f"{stream.url}?cursor=x")
    assert info.value.status == 400
    assert stream.hub.subscriber_count == 0


async def test_shutdown_closes_subscribers_going_away(serve, http) -> None:
    from atstack.xrpc.service import start_test_server

    log = MemoryEventLog()
    router = XRPCRouter("test")
    hub = EventStreamHub(log)
    hub.mount(router)
    runner, base = await start_test_server(router.create_app())
    ws = await http.ws_connect(base.replace("http", "ws") + f"/xrpc/{NSID}")
    await until(lambda: hub.live_subscriber_count == 1)
    cleanup = asyncio.create_task(runner.cleanup())  # the client keeps reading, as real ones do
    msg = await ws.receive(timeout=5)
    await cleanup
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
    assert hub.subscriber_count == 0


def test_publish_must_be_in_seq_order() -> None:
    log = MemoryEventLog()
    hub = EventStreamHub(log)
    hub.publish(5, frame_for(5))
    with pytest.raises(ValueError, match="out of order"):
        hub.publish(5, frame_for(5))
    with pytest.raises(ValueError, match="out of order"):
        hub.publish(4, frame_for(4))


def test_ws_frame_header_lengths() -> None:
    for size, header_len in ((0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (300_000, 10)):
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        wire = ws_binary_frame(payload)
        assert len(wire) == size + header_len
        assert wire[0] == 0x82
        assert list(_frames_in(wire)) == [(False, payload)]
        text = ws_text_frame(payload)
        assert text[0] == 0x81 and text[1:] == wire[1:]
        # the fallback path splits a blob of several frames back into its messages
        assert list(_frames_in(wire + text + wire)) == [(False, payload), (True, payload), (False, payload)]


async def test_memory_event_log_window() -> None:
    log = MemoryEventLog(retain=10)
    for seq in range(1, 26):
        log.append(seq * 2, b"x")
    assert (log.oldest_seq(), log.latest_seq()) == (32, 50)
    assert [s for s, _ in await log.read_after(0, 100)] == list(range(32, 51, 2))
    assert [s for s, _ in await log.read_after(40, 2)] == [42, 44]
    with pytest.raises(ValueError):
        log.append(50, b"x")


@pytest.mark.parametrize("coalesce", [True, False])
async def test_replay_of_large_frames_on_both_write_paths(make_stream, http, coalesce: bool) -> None:
    stream = await make_stream(coalesce=coalesce, replay_batch=7)
    for _ in range(20):
        stream.emit(pad=300_000)
    ws = await http.ws_connect(f"{stream.url}?cursor=0", max_msg_size=1 << 20)
    assert await collect(ws, 20) == list(range(1, 21))
    await until(lambda: stream.hub.live_subscriber_count == 1)
    stream.emit(pad=70_000)
    assert await collect(ws, 21) == [21]


def test_replay_and_live_on_uvloop() -> None:
    """The production loop: same cutover guarantees under uvloop's transports."""
    import uvloop

    from atstack.xrpc.service import run, start_test_server

    async def scenario() -> list[int]:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        log = SlowLog()
        for seq in range(1, 1001):
            log.append(seq, frame_for(seq))
        router = XRPCRouter("test")
        hub = EventStreamHub(log, replay_batch=30)
        hub.mount(router)
        runner, base = await start_test_server(router.create_app())
        stream = Stream(hub, log, base)
        try:
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(f"{stream.url}?cursor=100")
                for _ in range(500):
                    stream.emit()
                    await asyncio.sleep(0)
                return await collect(ws, 1500)
        finally:
            await runner.cleanup()

    assert run(scenario()) == list(range(101, 1501))
