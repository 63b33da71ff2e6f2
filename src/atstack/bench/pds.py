"""``atstack bench pds``: a PDS under write, read and firehose load, optionally side by side with the reference.

Targets (issue 4, §6): at 4 concurrent clients ≥ 3× the reference PDS's createRecord writes/s, p99 < 30 ms,
and server RSS < 150 MB with 1,000 accounts. The workload, the same for every target:

1. ``--accounts`` accounts are created with ``--account-concurrency`` requests in flight (accounts/s);
   an invite code is made through the admin API when the server requires one;
2. ``--clients`` clients, one request in flight each, call ``createRecord`` (an ``app.bsky.feed.post``)
   for ``--seconds``; client *i* writes to accounts *i*, *i + N*, … in turn (all accounts, or the first
   ``--write-accounts``: one per client is the single-writer-per-repo case) → writes/s, p50/p90/p99, and
   the server's CPU time per write when its PID is known (a figure other load on the machine moves less);
3. the same clients call ``getRecord`` on the records just written for ``--seconds`` → reads/s;
4. a ``subscribeRepos`` WebSocket is opened (frames decoded with :func:`atstack.core.stream.decode_event`)
   and one client writes at a steady ``--firehose-rate``; each ``#commit`` is matched to its write by
   commit CID → delivery latency from the write's acknowledgement to the event's arrival (negative when
   the event beats the HTTP response), from the request being sent to the event, and events missed;
5. the server's peak RSS (``VmHWM``), its RSS by phase and now, from ``/proc/<pid>/status``.

With two targets each phase runs on one, then on the other, before the next phase starts, and the write and
read phases run ``--rounds`` times in alternating order (figures pooled): the client shares the machine with
the servers, and whatever else runs there loads both targets alike. The load average is printed.
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

from atstack.bench.harness import Report, percentiles
from atstack.bench.pds_stack import LocalStack, Target, read_rss_mib
from atstack.core.stream import CommitEvent, StreamError, decode_event

__all__ = ["BenchError", "Result", "Target", "run", "run_async"]

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


class _RssSampler:
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
class _Account:
    did: str
    headers: dict[str, str]


class _Run:
    """One target's client, accounts and accumulating figures."""

    def __init__(self, http: aiohttp.ClientSession, target: Target) -> None:
        self.http = http
        self.url = target.url.rstrip("/")
        self.target = target
        self.res = Result(target.name)
        self.rss = _RssSampler(target.pid, self.res.rss_by_phase)
        self.accounts: list[_Account] = []
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


async def _invite_code(run: _Run, uses: int) -> str | None:
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


async def _create_accounts(run: _Run, n: int, concurrency: int) -> None:
    invite = await _invite_code(run, n)
    tag = secrets.token_hex(3)
    made: list[_Account | None] = [None] * n
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
            made[i] = _Account(out["did"], {"Authorization": f"Bearer {out['accessJwt']}"})

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


async def _writes(run: _Run, writers: list[_Account], clients: int, seconds: float, *, count: bool) -> None:
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


async def _reads(run: _Run, clients: int, seconds: float) -> None:
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


async def _firehose(run: _Run, rate: float, seconds: float) -> None:
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


def _finish(run: _Run) -> Result:
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


async def _workload(runs: list[_Run], opts: dict[str, Any]) -> list[Result]:
    clients, seconds = opts["clients"], opts["seconds"]
    for run in runs:
        run.rss.start()
    try:
        for run in runs:
            run.rss.phase = "accounts"
            await _create_accounts(run, opts["accounts"], opts["account_concurrency"])
            pid = run.target.pid
            rss = read_rss_mib(pid) if pid is not None else None
            run.res.rss_after_accounts_mib = rss[1] if rss else None
        for run in runs:
            run.rss.phase = "writes"
            k = opts["write_accounts"]
            await _writes(
                run, run.accounts[:k] if k > 0 else run.accounts, clients, min(1.0, seconds / 4), count=False
            )
        for r in range(opts["rounds"]):
            for run in runs if r % 2 == 0 else runs[::-1]:
                k = opts["write_accounts"]
                await _writes(run, run.accounts[:k] if k > 0 else run.accounts, clients, seconds, count=True)
        for r in range(opts["rounds"]):
            for run in runs if r % 2 == 0 else runs[::-1]:
                run.rss.phase = "reads"
                await _reads(run, clients, seconds)
        for run in runs:
            run.rss.phase = "firehose"
            await _firehose(run, opts["firehose_rate"], seconds)
    finally:
        for run in runs:
            run.rss.stop()
    return [_finish(run) for run in runs]


def _print_result(report: Report, res: Result, clients: int) -> None:
    print(f"  [{res.name}]", flush=True)
    report.add("accounts created", res.accounts_per_s, "accounts/s", f"{res.accounts} accounts")
    note = f"{res.writes} writes, validationStatus {res.validation}, load {res.write_load:.2f}"
    if res.write_errors:
        note += f", {res.write_errors} errors"
    report.add(f"createRecord, {clients} clients", res.writes_per_s, "writes/s", note)
    for p, v in res.write_ms.items():
        report.add(f"  createRecord latency {p}", v, "ms")
    if res.write_cpu_ms is not None and res.write_cpu_share is not None:
        note = f"server busy {res.write_cpu_share * 100:.0f}% of a core"
        report.add("  server CPU time per write", res.write_cpu_ms, "ms", note)
    note = f"{res.reads} reads" + (f", {res.read_errors} errors" if res.read_errors else "")
    report.add(f"getRecord, {clients} clients", res.reads_per_s, "reads/s", note)
    for p, v in res.read_ms.items():
        if p != "p90":
            report.add(f"  getRecord latency {p}", v, "ms")
    note = f"{res.events} events, {res.events_before_ack} before the ack"
    if res.events_missed:
        note += f", {res.events_missed} MISSED"
    for p, v in res.event_ms.items():
        if p != "p90":
            report.add(f"firehose event − write ack {p}", v, "ms", note)
    for p, v in res.event_from_send_ms.items():
        if p != "p90":
            report.add(f"firehose write sent → event {p}", v, "ms")
    if res.rss_peak_mib is not None:
        if res.rss_after_accounts_mib is not None:
            report.add("server RSS after creating the accounts", res.rss_after_accounts_mib, "MiB")
        phases = ", ".join(f"{k} {v:.0f}" for k, v in res.rss_by_phase.items())
        note = f"now {res.rss_mib:.0f}; by phase {phases}"
        report.add("server peak RSS (VmHWM)", res.rss_peak_mib, "MiB", note)
    else:
        print("  server RSS and CPU: unknown (give the server's PID)", flush=True)
    if res.first_error:
        print(f"  first error: {res.first_error}", flush=True)


def _print_ratios(report: Report, ours: Result, ref: Result, clients: int) -> None:
    print(f"  [{ours.name} / {ref.name}]", flush=True)

    def ratio(name: str, a: float | None, b: float | None) -> None:
        if a and b:
            report.add(name, a / b, "×")

    ratio(f"writes/s at {clients} clients, ours/ref (target ≥ 3)", ours.writes_per_s, ref.writes_per_s)
    ratio("createRecord p99, ours/ref", ours.write_ms.get("p99"), ref.write_ms.get("p99"))
    ratio("server CPU time per write, ours/ref", ours.write_cpu_ms, ref.write_cpu_ms)
    ratio("reads/s, ours/ref", ours.reads_per_s, ref.reads_per_s)
    ratio(
        "firehose sent → event p50, ours/ref",
        ours.event_from_send_ms.get("p50"),
        ref.event_from_send_ms.get("p50"),
    )
    ratio("accounts/s, ours/ref", ours.accounts_per_s, ref.accounts_per_s)
    ratio("peak RSS, ours/ref", ours.rss_peak_mib, ref.rss_peak_mib)


async def run_async(
    url: str | None = None,
    *,
    ref: Target | None = None,
    admin_password: str | None = None,
    invite_code: str | None = None,
    server_pid: int | None = None,
    clients: int = 4,
    seconds: float = 10.0,
    accounts: int = 1000,
    account_concurrency: int = 8,
    firehose_rate: float = 20.0,
    write_accounts: int = 0,
    rounds: int = 1,
) -> list[Result]:
    """Measure our PDS (at ``url``, else a local stack) and ``ref`` if given; prints the table."""
    report = Report("atstack bench pds")
    report.header()
    la = os.getloadavg()
    print(
        f"  workload: {accounts} accounts, {clients} clients, {rounds} × {seconds:g} s of writes and of reads, "
        f"writes to {write_accounts or accounts} of the accounts, firehose at {firehose_rate:g} writes/s; "
        f"load average before: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}",
        flush=True,
    )
    opts = {
        "clients": clients,
        "seconds": seconds,
        "accounts": accounts,
        "account_concurrency": account_concurrency,
        "firehose_rate": firehose_rate,
        "write_accounts": write_accounts,
        "rounds": max(1, rounds),
    }
    connector = aiohttp.TCPConnector(limit=max(64, clients * 2 + account_concurrency))
    async with aiohttp.ClientSession(connector=connector) as http:
        stack = LocalStack(admin_password) if url is None else None
        try:
            if stack is not None:
                await stack.__aenter__()
                target = stack.target()
            else:
                assert url is not None
                target = Target("atstack", url, admin_password, invite_code, server_pid)
            targets = [target] if ref is None else [target, ref]
            for t in targets:
                where = "local stack at " if stack is not None and t is target else ""
                print(f"  {t.name}: {where}{t.url}" + (f" (pid {t.pid})" if t.pid else ""), flush=True)
            results = await _workload([_Run(http, t) for t in targets], opts)
        finally:
            if stack is not None:
                await stack.__aexit__()
    for res in results:
        _print_result(report, res, clients)
    if len(results) == 2:
        _print_ratios(report, results[0], results[1], clients)
    la = os.getloadavg()
    print(f"  load average after: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}", flush=True)
    return results


def run(**kwargs: Any) -> list[Result]:
    return asyncio.run(run_async(**kwargs))
