"""``atstack bench jetstream``: ingest rate per core, and fan-out to hundreds of subscribers.

Targets (issue "Jetstream"): ingest ≥ 20,000 events/s per core (CBOR ``#commit`` frame → JSON event →
stored); 500 subscribers (a mix of filtered, unfiltered and zstd) at 2,000 events/s — 1M messages/s
delivered — with p99 < 250 ms from upstream event to subscriber, on a 2-core machine.

Ingest runs in this process on one thread: realistic ``#commit`` frames (one op, a post/like/follow record,
the signed-commit block and ~4 KB of MST-node-sized blocks, so the CAR hash check costs what it does on the
network) are decoded, converted and appended to an LMDB store with fsync per batch.

Fan-out runs ``atstack jetstream`` as a child process (so its CPU time and peak RSS are its own), fed by a
synthetic ``subscribeRepos`` server in this process that emits commits at the target rate, each record
carrying its emission time. Subscribers are raw sockets in this process that count bytes (the figure is the
server's, not a client's JSON parsing); a few "probe" subscribers parse every frame and measure latency
from emission to arrival. Delivered events/s and compression come from the server's own metrics.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from atstack.bench.harness import Report, percentiles
from atstack.core import cbor
from atstack.core.car import write_car
from atstack.core.cid import cid_for_cbor
from atstack.core.repo_op import RepoOp
from atstack.core.stream import CommitEvent, decode_event
from atstack.core.tid import TIDClock

__all__ = ["build_commit_frame", "run"]

COLLECTIONS = ("app.bsky.feed.like", "app.bsky.feed.post", "app.bsky.graph.follow", "app.bsky.feed.repost")
WEIGHTS = (55, 20, 15, 10)  # roughly the network's mix


def _did(i: int) -> str:
    return "did:plc:" + base64.b32encode(i.to_bytes(15, "big")).decode().lower()[:24]


def _record(collection: str, i: int, sent: float, rng: random.Random) -> dict[str, Any]:
    subject = {"uri": f"at://{_did(rng.randrange(10**6))}/app.bsky.feed.post/3l3pte3p2e325",
               "cid": cid_for_cbor(b"%d" % i)}  # fmt: skip
    now = "2024-09-09T19:46:02.102Z"
    if collection == "app.bsky.feed.post":
        return {"$type": collection, "text": f"{sent!r} post {i} the quick brown fox 🦊 jumps over the lazy dog",
                "langs": ["en"], "createdAt": now}  # fmt: skip
    if collection == "app.bsky.graph.follow":
        return {
            "$type": collection,
            "subject": _did(rng.randrange(10**6)),
            "createdAt": now,
            "via": repr(sent),
        }
    return {"$type": collection, "subject": subject, "createdAt": now, "via": repr(sent)}


def build_commit_frame(
    seq: int, did: str, collection: str, clock: TIDClock, sent: float, rng: random.Random
) -> bytes:
    """One realistic ``#commit`` frame: a create op, its record, the commit and ~4 KB of MST-sized blocks."""
    record = cbor.encode(_record(collection, seq, sent, rng))
    record_cid = cid_for_cbor(record)
    rev = clock.next()
    fillers = [cbor.encode({"e": [{"k": os.urandom(40), "p": 0, "t": None, "v": record_cid}] * 8, "l": None})
               for _ in range(4)]  # fmt: skip
    commit = cbor.encode({"did": did, "rev": rev, "sig": os.urandom(64), "data": record_cid, "prev": None,
                          "version": 3})  # fmt: skip
    commit_cid = cid_for_cbor(commit)
    blocks = [(commit_cid, commit), *((cid_for_cbor(b), b) for b in fillers), (record_cid, record)]
    event = CommitEvent(
        seq=seq, repo=did, commit=commit_cid, rev=rev, since=None, blocks=write_car([commit_cid], blocks),
        ops=[RepoOp("create", f"{collection}/{clock.next()}", record_cid)],
        time="2024-09-09T19:46:02.102Z",
    )  # fmt: skip
    return event.to_frame()


# --- ingest ------------------------------------------------------------------------------------------


def bench_ingest(report: Report, events: int) -> None:
    from atstack.jetstream.convert import Converter
    from atstack.jetstream.store import EventStore

    rng = random.Random(1)
    clock = TIDClock(clock_id=3)
    dids = [_did(i) for i in range(1000)]
    frames = [
        build_commit_frame(i + 1, rng.choice(dids), rng.choices(COLLECTIONS, WEIGHTS)[0], clock, 0.0, rng)
        for i in range(events)
    ]
    avg = sum(map(len, frames)) / len(frames)
    conv = Converter()
    t0, c0 = time.perf_counter(), time.process_time()
    converted = [conv.convert(decode_event(f)) for f in frames]
    conv_cpu = time.process_time() - c0
    report.add(
        "decode + convert (frame → JSON event)", events / conv_cpu, "events/s/core", f"{avg:,.0f} B frames"
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = EventStore(Path(tmp) / "s", map_size=1 << 32, sync=True)
        store.open_sync()
        conv = Converter()
        batch: list[Any] = []
        t0, c0 = time.perf_counter(), time.process_time()
        for i, frame in enumerate(frames, 1):
            batch.extend(conv.convert(decode_event(frame)))
            if len(batch) >= 500:
                store.append_sync(batch, i)
                batch = []
        store.append_sync(batch, len(frames))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        size = store.disk_bytes()
        if store._env is not None:
            store._env.close()
    report.add("ingest: decode + convert + store (fsync/500)", events / cpu, "events/s/core",
               f"{events / wall:,.0f}/s wall; target ≥ 20,000")  # fmt: skip
    report.add("store size per event", size / events, "bytes")
    del converted


# --- fan-out -----------------------------------------------------------------------------------------


class _Upstream:
    """A synthetic subscribeRepos server emitting ``rate`` commits per second to whoever connects."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.seq = 0
        self.running = True
        self.emitted = 0
        self.rng = random.Random(2)
        self.clock = TIDClock(clock_id=4)
        self.dids = [_did(i) for i in range(5000)]

    async def handler(self, request: Any) -> Any:
        from aiohttp import web

        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        tick = 0.01
        per_tick = self.rate * tick
        due = 0.0
        next_at = time.perf_counter()
        while self.running and not ws.closed:
            due += per_tick
            n = int(due)
            due -= n
            for _ in range(n):
                self.seq += 1
                col = self.rng.choices(COLLECTIONS, WEIGHTS)[0]
                frame = build_commit_frame(
                    self.seq, self.rng.choice(self.dids), col, self.clock, time.time(), self.rng
                )
                await ws.send_bytes(frame)
                self.emitted += 1
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        return ws


class _Counter(asyncio.Protocol):
    """A subscriber that only counts bytes; ``probe`` ones also parse frames and record latency."""

    def __init__(self, key: str, path: str, probe: bool, latencies: list[float], window: list[bool]) -> None:
        self.request = (f"GET {path} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()  # fmt: skip
        self.probe = probe
        self.latencies = latencies
        self.window = window
        self.bytes = 0
        self.upgraded = False
        self.buf = b""
        self.closed = False

    def connection_made(self, transport: Any) -> None:
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            self.upgraded = True
            data, self.buf = self.buf[end + 4 :], b""
        self.bytes += len(data)
        if self.probe:
            self._parse(data)

    def _parse(self, data: bytes) -> None:
        buf = self.buf + data
        pos, now = 0, time.time()
        while len(buf) - pos >= 2:
            n = buf[pos + 1] & 0x7F
            head = 2 if n < 126 else 4 if n == 126 else 10
            if len(buf) - pos < head:
                break
            if n >= 126:
                n = int.from_bytes(buf[pos + 2 : pos + head], "big")
            if len(buf) - pos < head + n:
                break
            if buf[pos] == 0x81 and self.window[0]:
                payload = buf[pos + head : pos + head + n]
                at = payload.find(b'"via":"')
                sent = float(payload[at + 7 : payload.index(b'"', at + 7)]) if at >= 0 else None
                if sent is None:
                    at = payload.find(b'"text":"')
                    sent = float(payload[at + 8 : payload.index(b" ", at + 8)]) if at >= 0 else None
                if sent:
                    self.latencies.append((now - sent) * 1000)
            pos += head + n
        self.buf = buf[pos:]

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _metrics(url: str) -> dict[str, float]:
    import urllib.request

    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def _clients(port: int, paths: list[str], probes: int) -> None:
    """Child-process side: open the subscribers, then answer ``start``/``stop`` lines on stdin."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    window = [False]
    counters: list[_Counter] = []
    for i, path in enumerate(paths):
        key = base64.b64encode(os.urandom(16)).decode()
        _, proto = await loop.create_connection(
            lambda p=path, pr=i < probes, k=key: _Counter(k, p, pr, latencies, window), "127.0.0.1", port
        )
        counters.append(proto)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(orjson.dumps({"connected": len(counters)}).decode(), flush=True)
    b0 = 0
    while line := (await reader.readline()).strip():
        if line == b"start":
            latencies.clear()
            window[0] = True
            b0 = sum(c.bytes for c in counters)
            print("{}", flush=True)
        elif line == b"stop":
            window[0] = False
            lat = percentiles(latencies, (50, 90, 99)) if latencies else {"p50": 0, "p90": 0, "p99": 0}
            out = {"bytes": sum(c.bytes for c in counters) - b0, "closed": sum(c.closed for c in counters),
                   "latency": lat, "samples": len(latencies)}  # fmt: skip
            print(orjson.dumps(out).decode(), flush=True)
            return


async def bench_fanout(report: Report, subscribers: int, rate: int, seconds: float, mix: str = "mix") -> None:
    """Jetstream in one child process, subscribers in another, the synthetic upstream in this one."""
    from aiohttp import web

    from atstack.xrpc.service import start_test_server

    upstream = _Upstream(rate)
    app = web.Application()
    app.router.add_get("/xrpc/com.atproto.sync.subscribeRepos", upstream.handler)
    runner, up_url = await start_test_server(app)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    tmp = tempfile.mkdtemp(prefix="jetbench-")
    log = open(Path(tmp) / "jetstream.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-c", "from atstack.cli.jetstream import jetstream; jetstream()", "--data-dir",
         f"{tmp}/data", "--port", str(port), "--upstream", up_url, "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    clients: asyncio.subprocess.Process | None = None
    try:
        for _ in range(300):
            try:
                _metrics(url)
                break
            except OSError:
                await asyncio.sleep(0.1)
        rng = random.Random(3)
        wanted_dids = "&".join(f"wantedDids={d}" for d in rng.sample(upstream.dids, 100))
        if mix == "unfiltered":
            paths = ["/subscribe"] * subscribers
        else:  # half unfiltered JSON, a fifth zstd, a fifth one collection, the rest 100 DIDs
            paths = ["/subscribe"] * (subscribers // 2) + ["/subscribe?compress=true"] * (subscribers // 5)
            paths += ["/subscribe?wantedCollections=app.bsky.feed.post"] * (subscribers // 5)
            paths += [f"/subscribe?{wanted_dids}"] * (subscribers - len(paths))
        clients = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "atstack.bench.jetstream", "--clients", str(port), "4",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert clients.stdin is not None and clients.stdout is not None
        clients.stdin.write(orjson.dumps(paths) + b"\n")
        await clients.stdin.drain()
        await clients.stdout.readline()  # connected
        for _ in range(100):  # wait for the upstream connection
            if upstream.emitted:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)  # warm up
        clients.stdin.write(b"start\n")
        await clients.stdin.drain()
        await clients.stdout.readline()
        m0, cpu0, t0, e0 = _metrics(url), _proc_cpu(proc.pid), time.perf_counter(), upstream.emitted
        await asyncio.sleep(seconds)
        m1, cpu1, t1, e1 = _metrics(url), _proc_cpu(proc.pid), time.perf_counter(), upstream.emitted
        clients.stdin.write(b"stop\n")
        await clients.stdin.drain()
        result = orjson.loads(await clients.stdout.readline())
        elapsed = t1 - t0

        def delta(name: str) -> float:
            return m1.get(name, 0.0) - m0.get(name, 0.0)

        sent = delta('jetstream_events_sent_total{encoding="json"}') + delta(
            'jetstream_events_sent_total{encoding="zstd"}'
        )
        zstd_bytes = delta('jetstream_bytes_sent_total{encoding="zstd"}')
        raw_bytes = delta("jetstream_bytes_sent_uncompressed_total")
        report.add("upstream events emitted", (e1 - e0) / elapsed, "events/s", f"target {rate:,}")
        report.add(
            "events ingested by jetstream",
            delta('jetstream_events_ingested_total{kind="commit"}') / elapsed,
            "events/s",
        )
        report.add(f"delivered to {subscribers} subscribers ({mix})", sent / elapsed, "events/s",
                   f"{result['bytes'] / elapsed / 1e6:,.1f} MB/s received")  # fmt: skip
        lat = result["latency"]
        report.add("latency upstream → subscriber", lat["p50"], "ms p50",
                   f"p90 {lat['p90']:.1f} ms, p99 {lat['p99']:.1f} ms ({result['samples']:,} samples)")  # fmt: skip
        report.add("jetstream server CPU", (cpu1 - cpu0) / elapsed * 100, "% of a core")
        report.add("jetstream server peak RSS", _proc_hwm_mib(proc.pid), "MiB")
        if zstd_bytes:
            report.add("zstd compression ratio (v1 dictionary)", raw_bytes / zstd_bytes, "×")
        dropped = m1.get('jetstream_subscribers_dropped_total{reason="too_slow"}', 0.0)
        report.add("subscribers dropped as too slow", dropped, "", f"{result['closed']} closed")
    finally:
        upstream.running = False
        if clients is not None and clients.returncode is None:
            clients.kill()
            await clients.wait()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        await runner.cleanup()


def run(
    ingest_events: int = 20_000, subscribers: int = 500, rate: int = 2_000, seconds: float = 10.0
) -> Report:
    report = Report("atstack bench jetstream")
    report.header()
    print("  ingest (one thread)")
    bench_ingest(report, ingest_events)
    from atstack.xrpc.service import run as run_loop

    for mix in ("mix", "unfiltered"):
        print(f"  fan-out ({subscribers} subscribers, {mix}, at {rate:,} events/s for {seconds:g} s)")
        run_loop(bench_fanout(report, subscribers, rate, seconds, mix))
    return report


if __name__ == "__main__":
    if sys.argv[1:2] == ["--clients"]:
        from atstack.xrpc.service import run as run_loop

        paths = orjson.loads(sys.stdin.buffer.readline())
        run_loop(_clients(int(sys.argv[2]), paths, int(sys.argv[3])))
    else:
        run(subscribers=int(sys.argv[1]) if len(sys.argv) > 1 else 500)
