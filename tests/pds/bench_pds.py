"""createRecord throughput and latency against ``atstack pds`` run as its own process.

    .venv/bin/python tests/pds/bench_pds.py [--records 400] [--clients 4]

Starts a PLC directory (in this process) and ``atstack pds`` (a child process, as a user runs it), creates
one account per client, then measures sequential writes (one client) and concurrent writes (``--clients``
clients, each on its own account, one request in flight per client). Set ``ATSTACK_BENCH_PDS_URL`` (and
``ATSTACK_BENCH_PDS_PLC`` is not needed) to measure an already running PDS instead — e.g. the reference PDS
from ``shared/refpds`` — with the same client code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ for vectors
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pds_support import free_port, spawn_pds, start_plc, wait_healthy

PASSWORD = "bench-password-123"


async def create_account(
    http: aiohttp.ClientSession, url: str, name: str, invite: str | None
) -> tuple[str, str]:
    body = {"handle": f"{name}.test", "email": f"{name}@example.com", "password": PASSWORD}
    if invite:
        body["inviteCode"] = invite
    async with http.post(f"{url}/xrpc/com.atproto.server.createAccount", json=body) as resp:
        out = await resp.json(content_type=None)
        assert resp.status == 200, out
        return out["did"], out["accessJwt"]


async def writer(
    http: aiohttp.ClientSession, url: str, did: str, token: str, n: int, lat: list[float]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    for i in range(n):
        body = {
            "repo": did,
            "collection": "app.bsky.feed.post",
            "record": {
                "$type": "app.bsky.feed.post",
                "text": f"post {i}",
                "createdAt": "2025-01-01T00:00:00.000Z",
            },
        }
        t0 = time.perf_counter()
        async with http.post(f"{url}/xrpc/com.atproto.repo.createRecord", json=body, headers=headers) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        lat.append(time.perf_counter() - t0)


def report(label: str, lat: list[float], elapsed: float) -> None:
    lat_ms = sorted(x * 1000 for x in lat)
    p = lambda q: lat_ms[min(len(lat_ms) - 1, int(q * len(lat_ms)))]  # noqa: E731
    print(
        f"{label:<14} {len(lat):5d} writes  {len(lat) / elapsed:7.1f} writes/s  "
        f"p50 {p(0.50):6.1f} ms  p90 {p(0.90):6.1f} ms  p99 {p(0.99):6.1f} ms  mean {statistics.fmean(lat_ms):6.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    external = os.environ.get("ATSTACK_BENCH_PDS_URL")
    invite = os.environ.get("ATSTACK_BENCH_INVITE")
    with tempfile.TemporaryDirectory() as tmp:
        plc_runner = proc = None
        async with aiohttp.ClientSession() as http:
            try:
                if external:
                    url = external.rstrip("/")
                else:
                    plc_url, plc_runner = await start_plc(Path(tmp) / "plc")
                    port = free_port()
                    url = f"http://127.0.0.1:{port}"
                    proc = spawn_pds(Path(tmp) / "pds", port, plc_url.replace("127.0.0.1", "localhost"))
                    await wait_healthy(http, url, proc)
                tag = secrets.token_hex(3)
                accounts = [
                    await create_account(http, url, f"b{tag}{i}", invite) for i in range(args.clients)
                ]
                # warm up
                await writer(http, url, *accounts[0], 20, [])
                lat: list[float] = []
                t0 = time.perf_counter()
                await writer(http, url, *accounts[0], args.records, lat)
                report("sequential", lat, time.perf_counter() - t0)
                lat = []
                per = args.records // args.clients
                t0 = time.perf_counter()
                await asyncio.gather(*(writer(http, url, did, tok, per, lat) for did, tok in accounts))
                report(f"{args.clients} clients", lat, time.perf_counter() - t0)
            finally:
                if proc is not None:
                    proc.terminate()
                    proc.wait(10)
                if plc_runner is not None:
                    await plc_runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
