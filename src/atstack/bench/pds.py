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
import os
from typing import Any

import aiohttp

from atstack.bench.harness import Report
from atstack.bench.pds_phases import (
    BenchError,
    Result,
    TargetRun,
    create_accounts,
    finish,
    firehose_phase,
    read_phase,
    write_phase,
)
from atstack.bench.pds_stack import LocalStack, Target, read_rss_mib

__all__ = ["BenchError", "Result", "Target", "run", "run_async"]


async def _workload(runs: list[TargetRun], opts: dict[str, Any]) -> list[Result]:
    clients, seconds = opts["clients"], opts["seconds"]
    for run in runs:
        run.rss.start()
    try:
        for run in runs:
            run.rss.phase = "accounts"
            await create_accounts(run, opts["accounts"], opts["account_concurrency"])
            pid = run.target.pid
            rss = read_rss_mib(pid) if pid is not None else None
            run.res.rss_after_accounts_mib = rss[1] if rss else None
        for run in runs:
            run.rss.phase = "writes"
            k = opts["write_accounts"]
            await write_phase(
                run, run.accounts[:k] if k > 0 else run.accounts, clients, min(1.0, seconds / 4), count=False
            )
        for r in range(opts["rounds"]):
            for run in runs if r % 2 == 0 else runs[::-1]:
                k = opts["write_accounts"]
                await write_phase(
                    run, run.accounts[:k] if k > 0 else run.accounts, clients, seconds, count=True
                )
        for r in range(opts["rounds"]):
            for run in runs if r % 2 == 0 else runs[::-1]:
                run.rss.phase = "reads"
                await read_phase(run, clients, seconds)
        for run in runs:
            run.rss.phase = "firehose"
            await firehose_phase(run, opts["firehose_rate"], seconds)
    finally:
        for run in runs:
            run.rss.stop()
    return [finish(run) for run in runs]


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
            results = await _workload([TargetRun(http, t) for t in targets], opts)
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
