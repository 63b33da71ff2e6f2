"""``bench relay``: a generated stream of validly signed commits replayed into a real relay.

Three processes, so the relay's figures are its own: an upstream host (generates the stream — many DIDs, each
a real signed repo, record sizes spread over ~100 B to ~3 KB — and serves it on ``subscribeRepos``), the relay
(this process, with its SQLite output log in a temporary directory and a static identity directory, so DID
resolution is out of the picture as it is in steady state), and a consumer process (firehose readers).

1. **Ingest**: the upstream's whole log is replayed into the relay as fast as it takes it (new host, cursor
   0). Reported: validated ``#commit`` events/s (wall clock, and per core = events / relay CPU seconds).
2. **Latency**: the upstream publishes live at a fixed rate; one consumer reads the relay's firehose.
   Reported: p50/p99 of the time from the upstream's send to the consumer's receipt (``time.monotonic`` is
   system-wide, so the processes share a clock) — the relay's added latency plus two loopback hops.
3. **Fan-out**: the same with ``consumers`` readers; every reader must get every event, and the rate and
   latency show whether fan-out slows ingest. Reader 0 decodes every frame (timing); the others only count
   the bytes off their sockets (no frame parsing), so that a hundred readers fit beside the relay on a
   two-core machine — a reader is complete when it got as many bytes as reader 0's frames add up to.

Peak RSS is the relay process's. Everything runs on loopback on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import random
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from atstack.bench.harness import Report, k256_verify_rate, percentiles

__all__ = ["run"]

_POST = "app.bsky.feed.post"


@dataclass(frozen=True, slots=True)
class _StaticIdentity:
    did: str
    handle: str | None
    signing_key: str | None
    pds_endpoint: str | None


class _StaticIdentities:
    """An identity source answering from a table (the bench's stand-in for a PLC directory)."""

    def __init__(self, table: dict[str, tuple[str, str]]) -> None:
        self.table = table

    async def resolve(self, did: str, *, refresh: bool = False) -> Any:
        from atstack.core.did_doc import AtprotoIdentity
        from atstack.identity.errors import DidNotFound

        found = self.table.get(did)
        if found is None:
            raise DidNotFound(did)
        key, endpoint = found
        return AtprotoIdentity(did, f"{did.rsplit(':', 1)[1][:10]}.test", key, endpoint)


# --- the upstream process --------------------------------------------------------------------------------


def _generate(dids: int, commits: int, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, bytes]]]:
    """(did, multikey) per account, then ``(commit cid, frame body args)`` per commit, round-robin."""
    from atstack.core.blockstore import MemoryBlockStore
    from atstack.core.cbor import encode as cbor_encode
    from atstack.core.crypto import generate_private_key
    from atstack.core.repo import RecordWrite, Repo
    from atstack.core.stream import CommitEvent
    from atstack.core.tid import TIDClock

    rng = random.Random(seed)
    clock = TIDClock()
    accounts = []
    for i in range(dids):
        key = generate_private_key()
        did = f"did:plc:bench{i:019d}"
        repo, genesis = Repo.create(MemoryBlockStore(), did, key)
        accounts.append((did, key, repo, genesis))
    frames: list[tuple[str, bytes]] = []
    for _did, _key, _repo, genesis in accounts:  # every repo's first commit
        frames.append((genesis.cid.encode(), _commit_frame(CommitEvent, _did, genesis)))
    while len(frames) < commits:
        did, key, repo, _ = accounts[rng.randrange(dids)]
        size = min(3000, int(rng.lognormvariate(5.5, 0.8)))
        record = {
            "$type": _POST,
            "text": "x" * size,
            "createdAt": "2025-01-01T00:00:00.000Z",
            "langs": ["en"],
        }
        data = repo.apply_writes([RecordWrite.create(_POST, clock.next(), cbor_encode(record))], key)
        frames.append((data.cid.encode(), _commit_frame(CommitEvent, did, data)))
    return [(did, key.public_key.multikey()) for did, key, _r, _g in accounts], frames


def _commit_frame(cls: Any, did: str, data: Any) -> bytes:
    # seq 1 here; the upstream re-encodes with its own seq when it publishes
    return cls(
        seq=1, repo=did, commit=data.cid, rev=data.rev, since=data.since, blocks=data.car_slice, ops=data.ops,
        time="2025-01-01T00:00:00.000Z", prev_data=data.prev_data,
    ).to_frame()  # fmt: skip


def _upstream_main(conn: Connection, dids: int, backlog: int, live: int, seed: int) -> None:
    from atstack.xrpc.service import run

    run(_upstream(conn, dids, backlog, live, seed))


async def _upstream(conn: Connection, dids: int, backlog: int, live: int, seed: int) -> None:
    from atstack.core.stream import decode_frame, encode_message
    from atstack.xrpc.server import XRPCRouter
    from atstack.xrpc.service import start_test_server
    from atstack.xrpc.stream import EventStreamHub, MemoryEventLog

    accounts, frames = _generate(dids, backlog + live, seed)
    log = MemoryEventLog(retain=len(frames) + 10)
    router = XRPCRouter("bench-upstream")
    hub = EventStreamHub(log, max_outbox_frames=1_000_000, max_outbox_bytes=4 << 30)
    hub.mount(router)
    runner, url = await start_test_server(router.create_app())

    def reseq(seq: int, frame: bytes) -> bytes:
        body = decode_frame(frame).body
        body["seq"] = seq
        return encode_message("#commit", body)

    encoded = [(cid, reseq(i, frame)) for i, (cid, frame) in enumerate(frames, 1)]
    for seq, (_cid, frame) in enumerate(encoded[:backlog], 1):
        log.append(seq, frame)
        hub.publish(seq, frame)
    mean = sum(len(f) for _c, f in encoded) / len(encoded)
    conn.send(("ready", url, accounts, mean))
    loop = asyncio.get_running_loop()
    nxt = backlog
    while True:
        cmd = await loop.run_in_executor(None, conn.recv)
        if cmd[0] == "stop":
            break
        _, count, rate = cmd
        sent: dict[str, float] = {}
        start = time.monotonic()
        done = 0
        while done < count:
            due = min(count, int((time.monotonic() - start) * rate) + 1)
            while done < due:
                cid, frame = encoded[nxt]
                nxt += 1
                done += 1
                log.append(nxt, frame)
                sent[cid] = time.monotonic()
                hub.publish(nxt, frame)
            await asyncio.sleep(0.001)
        conn.send(("sent", sent))
    await hub.close_all()
    await runner.cleanup()


# --- the consumer process --------------------------------------------------------------------------------


def _consumers_main(conn: Connection, url: str, n: int) -> None:
    from atstack.xrpc.service import run

    run(_consumers(conn, url, n))


class _CountingReader(asyncio.Protocol):
    """A minimal WebSocket reader: after the upgrade response, count bytes (no frame parsing, no buffering)
    — cheap enough that a hundred of them fit beside the relay on a small machine."""

    def __init__(self, got: list[int], i: int, upgraded: asyncio.Future[bytes]) -> None:
        self.got, self.i, self.upgraded = got, i, upgraded
        self.head = b""

    def data_received(self, data: bytes) -> None:
        if self.upgraded.done():
            self.got[self.i] += len(data)
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end >= 0:
            self.got[self.i] += len(self.head) - end - 4
            self.upgraded.set_result(self.head[:end])

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed before the upgrade"))


async def _raw_reader(url: str, ready: asyncio.Event, got: list[int], i: int) -> None:
    import base64
    import os

    from yarl import URL

    target = URL(url)
    loop = asyncio.get_running_loop()
    upgraded: asyncio.Future[bytes] = loop.create_future()
    transport, _ = await loop.create_connection(
        lambda: _CountingReader(got, i, upgraded), target.host, target.port
    )
    key = base64.b64encode(os.urandom(16)).decode()
    transport.write(
        f"GET {target.raw_path_qs} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await upgraded
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"upgrade refused: {head[:100]!r}")
    ready.set()
    try:
        await asyncio.Future()  # counting happens in data_received until the task is cancelled
    finally:
        transport.close()


async def _consumers(conn: Connection, url: str, n: int) -> None:
    import aiohttp

    from atstack.core.stream import decode_frame

    wire_bytes = [0] * n  # what each reader got off the socket (reader 0: frame payloads + frame headers)
    frames = [0]
    received: dict[str, float] = {}
    target = [0]
    done = asyncio.Event()

    async def timing_reader(session: aiohttp.ClientSession, ready: asyncio.Event) -> None:
        async with session.ws_connect(url, max_msg_size=0, compress=0) as ws:
            ready.set()
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.BINARY:
                    continue
                size = len(msg.data)
                wire_bytes[0] += size + (2 if size < 126 else 4 if size < 65536 else 10)
                frames[0] += 1
                commit = decode_frame(msg.data).body.get("commit")
                if commit is not None:
                    received[commit.encode()] = time.monotonic()
                if target[0] and frames[0] >= target[0]:
                    done.set()

    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        readies = [asyncio.Event() for _ in range(n)]
        tasks = [asyncio.create_task(timing_reader(session, readies[0]))]
        tasks += [asyncio.create_task(_raw_reader(url, readies[i], wire_bytes, i)) for i in range(1, n)]
        await asyncio.gather(*(r.wait() for r in readies))
        conn.send(("ready",))
        target[0] = (await loop.run_in_executor(None, conn.recv))[1]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 120)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(b >= wire_bytes[0] for b in wire_bytes):
            await asyncio.sleep(0.01)
        complete = sum(1 for b in wire_bytes if b >= wire_bytes[0]) if frames[0] >= target[0] else 0
        conn.send(("counts", complete, received))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- the relay (this process) ----------------------------------------------------------------------------


async def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def _latency_ms(sent: dict[str, float], received: dict[str, float]) -> dict[str, float]:
    samples = [(received[cid] - at) * 1000 for cid, at in sent.items() if cid in received]
    if not samples:
        return {"p50": float("nan"), "p99": float("nan"), "n": 0}
    return {**percentiles(samples, (50, 99)), "n": len(samples)}


async def _bench(
    report: Report, dids: int, events: int, rate: float, seconds: float, consumers: int, seed: int
) -> None:
    from atstack.relay import RELAY_CONTEXT, RelayConfig, create_app
    from atstack.xrpc.service import start_test_server

    ctx_mp = mp.get_context("spawn")
    live = int(rate * seconds)
    up_conn, up_child = ctx_mp.Pipe()
    upstream = ctx_mp.Process(
        target=_upstream_main, args=(up_child, dids, events, 2 * live, seed), daemon=True
    )
    upstream.start()
    loop = asyncio.get_running_loop()
    print(f"  generating {events + 2 * live:,} signed commits over {dids:,} repos…", flush=True)
    _, up_url, accounts, mean_frame = await loop.run_in_executor(None, up_conn.recv)
    hostname = up_url.removeprefix("http://").replace("127.0.0.1", "localhost")
    identities = _StaticIdentities({did: (key, f"http://{hostname}") for did, key in accounts})
    tmp = Path(tempfile.mkdtemp(prefix="atstack-bench-relay-"))
    processes: list[Any] = [upstream]
    try:
        config = RelayConfig(
            data_dir=tmp, allow_private_hosts=True, trusted_hosts=(hostname,), port=0,
            max_pending_events=20_000,
        )  # fmt: skip
        app = create_app(config, identity_source=identities)
        runner, relay_url = await start_test_server(app)
        ctx = app[RELAY_CONTEXT]
        try:
            # 1. ingest: the whole backlog, as fast as the relay takes it
            speed_before = k256_verify_rate()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await ctx.slurper.request_crawl(hostname, admin=True, check=False)
            await _wait(lambda: ctx.hub.last_published >= events, 600, "the backlog")
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            accepted = ctx.hub.last_published
            report.add("stream", events, "events", f"{dids:,} repos, mean frame {mean_frame:,.0f} B")
            report.add("ingest: validated #commit (wall clock)", accepted / wall, "events/s")
            report.add(
                "ingest: validated #commit per relay core", accepted / cpu, "events/s", f"{cpu:.1f} s CPU"
            )
            speed = (speed_before + k256_verify_rate()) / 2
            report.add(
                "host speed: k256 verify, around the ingest", speed, "ops/s", "DESIGN.md assumes 28k/s"
            )

            ws_url = relay_url.replace("http://", "ws://") + "/xrpc/com.atproto.sync.subscribeRepos"
            for phase, n in (("1 consumer", 1), (f"{consumers} consumers", consumers)):
                c_conn, c_child = ctx_mp.Pipe()
                proc = ctx_mp.Process(target=_consumers_main, args=(c_child, ws_url, n), daemon=True)
                proc.start()
                processes.append(proc)
                await loop.run_in_executor(None, c_conn.recv)
                await _wait(lambda n=n: ctx.hub.live_subscriber_count >= n, 30, "consumers")
                start_seq = ctx.hub.last_published
                c_conn.send(("expect", live))
                cpu0, wall0 = time.process_time(), time.perf_counter()
                up_conn.send(("live", live, rate))
                _, sent = await loop.run_in_executor(None, up_conn.recv)
                await _wait(lambda s=start_seq: ctx.hub.last_published >= s + live, 120, "live events")
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
                _, complete, received = await loop.run_in_executor(None, c_conn.recv)
                lat = _latency_ms(sent, received)
                report.add(f"live {rate:,.0f}/s, {phase}: ingested", live / wall, "events/s",
                           f"relay CPU {100 * cpu / wall:.0f}% of a core")  # fmt: skip
                report.add(f"live, {phase}: added latency p50", lat["p50"], "ms", "upstream send → consumer")
                report.add(f"live, {phase}: added latency p99", lat["p99"], "ms", f"{lat['n']:,} samples")
                report.add(f"live, {phase}: consumers with every event", complete, f"of {n}")
                proc.join(10)
            report.add("relay peak RSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "MiB")
            dropped = ctx.metrics.events_dropped
            total_drops = sum(
                s.value for m in dropped.collect() for s in m.samples if s.name.endswith("_total")
            )
            report.add("events dropped by validation", total_drops, "events", "must be 0")
        finally:
            await runner.cleanup()
    finally:
        up_conn.send(("stop",))
        for proc in processes:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def run(
    *,
    dids: int = 1000,
    events: int = 20_000,
    rate: float = 2000.0,
    seconds: float = 5.0,
    consumers: int = 100,
    seed: int = 1,
) -> Report:
    """Run the relay benchmark and print its report (see the module docstring for the phases)."""
    from atstack.xrpc.service import run as run_loop

    report = Report("atstack bench relay")
    report.header()
    run_loop(_bench(report, dids, events, rate, seconds, consumers, seed))
    return report


if __name__ == "__main__":
    run()
