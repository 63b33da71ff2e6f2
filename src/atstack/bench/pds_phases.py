"""The client side of ``atstack bench pds``: one target's accounts, its load phases and the figures they yield.

:class:`TargetRun` holds one PDS's HTTP client, the accounts made on it and the latencies gathered so far;
the phase functions drive it — :func:`create_accounts`, :func:`write_phase` (``createRecord``),
:func:`read_phase` (``getRecord`` of the records written), :func:`firehose_phase` (``subscribeRepos``
delivery latency, matched by commit CID) — and :func:`finish` turns what was gathered into a
:class:`Result`. The order of phases, the alternation between targets and the printed table are
:mod:`atstack.bench.pds`'s.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from atstack.bench.harness import percentiles
from atstack.bench.pds_stack import Target, read_rss_mib
from atstack.core.stream import CommitEvent, StreamError, decode_event

__all__ = [
    "BenchAccount",
    "BenchError",
    "Result",
    "RssSampler",
    "TargetRun",
    "create_accounts",
    "finish",
    "firehose_phase",
    "read_phase",
    "write_phase",
]

PASSWORD = "bench-password-123"
POST = "app.bsky.feed.post"
_JSON = {"Content-Type": "application/json"}
_CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The workload could not run against a target (the message says why)."""


@dataclass
class Result:
    """The figures measured for one target (latencies in ms)."""

    name: str
    accounts: int = 0
    accounts_per_s: float = 0.0
    writes: int = 0
    writes_per_s: float = 0.0
    write_ms: dict[str, float] = field(default_factory=dict)
    write_errors: int = 0
    write_cpu_ms: float | None = None  # server CPU time per acknowledged write
    write_cpu_share: float | None = None  # server CPU time / wall time during the write phases
    write_load: float = 0.0  # mean 1-minute load average at the end of its write phases
    validation: str | None = None
    reads: int = 0
    reads_per_s: float = 0.0
    read_ms: dict[str, float] = field(default_factory=dict)
    read_errors: int = 0
    events: int = 0
    events_missed: int = 0
    event_ms: dict[str, float] = field(default_factory=dict)  # event arrival − write ack (may be < 0)
    event_from_send_ms: dict[str, float] = field(default_factory=dict)  # event arrival − request sent
    events_before_ack: int = 0
    rss_after_accounts_mib: float | None = None
    rss_by_phase: dict[str, float] = field(default_factory=dict)
    rss_peak_mib: float | None = None
    rss_mib: float | None = None
    first_error: str | None = None


def _cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime


class RssSampler:
    """Samples a process's VmRSS every 50 ms and keeps the highest value seen in each named phase."""

    def __init__(self, pid: int | None, peaks: dict[str, float]) -> None:
        self.pid = pid
        self.peaks = peaks
        self.phase = "start"
        self._task: asyncio.Task[None] | None = None

    async def _loop(self, pid: int) -> None:
        while True:
            rss = read_rss_mib(pid)
            if rss is not None:
                self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), rss[1])
            await asyncio.sleep(0.05)

    def start(self) -> None:
        if self.pid is not None:
            self._task = asyncio.create_task(self._loop(self.pid))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


@dataclass(slots=True)
class BenchAccount:
    did: str
    headers: dict[str, str]


class TargetRun:
    """One target's client, accounts and accumulating figures."""

    def __init__(self, http: aiohttp.ClientSession, target: Target) -> None:
        self.http = http
        self.url = target.url.rstrip("/")
        self.target = target
        self.res = Result(target.name)
        self.rss = RssSampler(target.pid, self.res.rss_by_phase)
        self.accounts: list[BenchAccount] = []
        self.written: list[tuple[str, str]] = []
        self.write_lat: list[float] = []
        self.write_time = 0.0
        self.write_cpu = 0.0
        self.loads: list[float] = []
        self.read_lat: list[float] = []
        self.read_time = 0.0
        self.counter = 0

    async def call(
        self, method: str, nsid: str, body: Any = None, headers: dict[str, str] | None = None, **params: str
    ) -> tuple[int, Any]:
        h = dict(headers or {})
        data = None
        if body is not None:
            data = orjson.dumps(body)
            h.update(_JSON)
        async with self.http.request(
            method, f"{self.url}/xrpc/{nsid}", data=data, headers=h, params=params or None
        ) as resp:
            raw = await resp.read()
            try:
                return resp.status, orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                return resp.status, raw[:200]

    def error(self, what: str) -> None:
        self.res.first_error = self.res.first_error or what


def _post(i: int) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    text = f"bench post {i}: the quick brown fox jumps over the lazy dog"
    return {"$type": POST, "text": text, "createdAt": now}


async def _invite_code(run: TargetRun, uses: int) -> str | None:
    target = run.target
    if target.invite_code:
        return target.invite_code
    status, desc = await run.call("GET", "com.atproto.server.describeServer")
    if status != 200:
        raise BenchError(f"{target.name}: describeServer answered {status}: {desc}")
    if not desc.get("inviteCodeRequired"):
        return None
    if not target.admin_password:
        raise BenchError(f"{target.name} requires invite codes: give its admin password or an invite code")
    token = base64.b64encode(f"admin:{target.admin_password}".encode()).decode()
    status, out = await run.call(
        "POST", "com.atproto.server.createInviteCode", {"useCount": uses}, {"Authorization": f"Basic {token}"}
    )
    if status != 200:
        raise BenchError(f"{target.name}: createInviteCode answered {status}: {out}")
    return str(out["code"])


async def create_accounts(run: TargetRun, n: int, concurrency: int) -> None:
    invite = await _invite_code(run, n)
    tag = secrets.token_hex(3)
    made: list[BenchAccount | None] = [None] * n
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            name = f"b{tag}{i}"
            body: dict[str, Any] = {
                "handle": f"{name}.test",
                "email": f"{name}@example.com",
                "password": PASSWORD,
            }
            if invite:
                body["inviteCode"] = invite
            status, out = await run.call("POST", "com.atproto.server.createAccount", body)
            if status != 200:
                raise BenchError(f"{run.target.name}: createAccount answered {status}: {out}")
            made[i] = BenchAccount(out["did"], {"Authorization": f"Bearer {out['accessJwt']}"})

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, n)))))
    run.res.accounts_per_s = n / (time.perf_counter() - t0)
    run.accounts = [a for a in made if a is not None]
    run.res.accounts = len(run.accounts)


async def _timed_clients(
    clients: int, seconds: float, step: Callable[[int, int], Awaitable[bool]]
) -> tuple[list[float], int, float]:
    """Run ``step(client, i)`` in ``clients`` loops for ``seconds``: latencies (ms), errors, elapsed (s)."""
    lat: list[float] = []
    errors = 0
    perf = time.perf_counter
    deadline = perf() + seconds

    async def loop(c: int) -> None:
        nonlocal errors
        i = 0
        while perf() < deadline:
            t0 = perf()
            if await step(c, i):
                lat.append((perf() - t0) * 1000)
            else:
                errors += 1
            i += 1

    t0 = perf()
    await asyncio.gather(*(loop(c) for c in range(clients)))
    return lat, errors, perf() - t0


async def write_phase(
    run: TargetRun, writers: list[BenchAccount], clients: int, seconds: float, *, count: bool
) -> None:
    async def step(c: int, i: int) -> bool:
        mine = writers[c::clients] or writers
        acct = mine[i % len(mine)]
        run.counter += 1
        body = {"repo": acct.did, "collection": POST, "record": _post(run.counter)}
        status, out = await run.call("POST", "com.atproto.repo.createRecord", body, acct.headers)
        if status != 200:
            run.error(f"createRecord {status}: {out}")
            return False
        run.res.validation = out.get("validationStatus", "absent")
        if count:
            run.written.append((acct.did, out["uri"].rsplit("/", 1)[1]))
        return True

    cpu0 = _cpu_seconds(run.target.pid)
    lat, errors, elapsed = await _timed_clients(clients, seconds, step)
    cpu1 = _cpu_seconds(run.target.pid)
    if count:
        run.write_lat += lat
        run.write_time += elapsed
        run.res.write_errors += errors
        run.loads.append(os.getloadavg()[0])
        if cpu0 is not None and cpu1 is not None:
            run.write_cpu += cpu1 - cpu0


async def read_phase(run: TargetRun, clients: int, seconds: float) -> None:
    if not run.written:
        return
    order = run.written[:]
    random.Random(7).shuffle(order)

    async def step(c: int, i: int) -> bool:
        did, rkey = order[(i * clients + c) % len(order)]
        status, out = await run.call(
            "GET", "com.atproto.repo.getRecord", repo=did, collection=POST, rkey=rkey
        )
        if status != 200:
            run.error(f"getRecord {status}: {out}")
            return False
        return True

    lat, errors, elapsed = await _timed_clients(clients, seconds, step)
    run.read_lat += lat
    run.read_time += elapsed
    run.res.read_errors += errors


async def firehose_phase(run: TargetRun, rate: float, seconds: float) -> None:
    res = run.res
    ws_url = run.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    arrived: dict[str, float] = {}
    acked: dict[str, tuple[float, float]] = {}  # commit CID → (request sent, response received)
    decode_errors = 0
    async with run.http.ws_connect(f"{ws_url}/xrpc/com.atproto.sync.subscribeRepos", max_msg_size=0) as ws:

        async def reader() -> None:
            nonlocal decode_errors
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    continue
                t = time.perf_counter()
                try:
                    event = decode_event(msg.data)
                except StreamError:
                    decode_errors += 1
                    continue
                if isinstance(event, CommitEvent):
                    arrived[event.commit.encode()] = t

        task = asyncio.create_task(reader())
        await asyncio.sleep(0.2)  # let the subscription go live before the first write
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < seconds:
            acct = run.accounts[i % len(run.accounts)]
            body = {"repo": acct.did, "collection": POST, "record": _post(i)}
            sent = time.perf_counter()
            status, out = await run.call("POST", "com.atproto.repo.createRecord", body, acct.headers)
            if status == 200:
                acked[out["commit"]["cid"]] = (sent, time.perf_counter())
            i += 1
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        deadline = time.perf_counter() + 3
        while time.perf_counter() < deadline and not all(c in arrived for c in acked):
            await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    matched = [(arrived[c], sent, ack) for c, (sent, ack) in acked.items() if c in arrived]
    res.events = len(matched)
    res.events_missed = len(acked) - len(matched)
    res.events_before_ack = sum(1 for t, _s, ack in matched if t < ack)
    if matched:
        res.event_ms = percentiles([(t - ack) * 1000 for t, _s, ack in matched])
        res.event_from_send_ms = percentiles([(t - sent) * 1000 for t, sent, _a in matched])
    if decode_errors:
        run.error(f"{decode_errors} firehose frames failed to decode")


def finish(run: TargetRun) -> Result:
    res = run.res
    res.writes = len(run.write_lat)
    res.writes_per_s = res.writes / run.write_time if run.write_time else 0.0
    res.write_ms = percentiles(run.write_lat) if run.write_lat else {}
    res.write_load = sum(run.loads) / len(run.loads) if run.loads else 0.0
    if run.target.pid is not None and res.writes and run.write_time:
        res.write_cpu_ms = run.write_cpu / res.writes * 1000
        res.write_cpu_share = run.write_cpu / run.write_time
    res.reads = len(run.read_lat)
    res.reads_per_s = res.reads / run.read_time if run.read_time else 0.0
    res.read_ms = percentiles(run.read_lat) if run.read_lat else {}
    if run.target.pid is not None:
        rss = read_rss_mib(run.target.pid)
        if rss is not None:
            res.rss_peak_mib, res.rss_mib = rss
    return res
