"""``atstack jetstream`` killed with SIGKILL mid-stream and restarted: cursor replay has no gap, no duplicate.

The Jetstream runs as a child process exactly as a user starts it; the PDS it consumes runs in the test's
event loop. Writes continue while Jetstream is down. A subscriber that resumes from the last ``time_us``
it saw (the cursor is inclusive, so that one event comes again first) must then see every later write
exactly once, in order; and a replay of the whole store must hold every write exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
from jetstream_support import Pds, Stream, post_record, wait_until
from pds_support import free_port


def spawn(data_dir: Path, port: int, upstream: str, log: Path) -> subprocess.Popen[bytes]:
    args = [
        sys.executable, "-c", "from atstack.cli.jetstream import jetstream; jetstream()",
        "--data-dir", str(data_dir), "--port", str(port), "--upstream", upstream,
    ]  # fmt: skip
    with open(log, "ab") as sink:
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=sink, env=dict(os.environ))


async def healthy(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            async with http.get(f"{url}/xrpc/_health") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("jetstream did not become healthy:\n" + log.read_text())


async def test_kill_9_then_cursor_replay(tmp_path: Path, http: aiohttp.ClientSession, pds: Pds) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ws_url = f"ws://127.0.0.1:{port}/subscribe"
    log = tmp_path / "jetstream.log"
    proc = spawn(tmp_path / "jet", port, pds.url, log)
    try:
        await healthy(http, url, proc, log)
        first = await Stream.open(http, ws_url, {"wantedCollections": "app.bsky.feed.post"})
        alice = await pds.create_account("alice")
        written: list[str] = []

        async def write(n: int, label: str) -> None:
            for i in range(n):
                r = await pds.create_record(alice, post_record(f"{label} {i}"))
                assert r.status == 200, r.body
                written.append(r.body["cid"])

        await write(5, "before")
        await wait_until(lambda: len(first.commits()) >= 3, what="first events")
        writer = asyncio.create_task(write(20, "around the kill"))
        await wait_until(lambda: len(written) >= 10, what="writes in flight")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        await writer
        await first.closed.wait()
        seen = first.commits()
        assert seen, "nothing arrived before the kill"
        assert [e["commit"]["cid"] for e in seen] == written[: len(seen)]

        proc = spawn(tmp_path / "jet", port, pds.url, log)
        await healthy(http, url, proc, log)
        await write(5, "after restart")
        resumed = await Stream.open(
            http, ws_url, {"wantedCollections": "app.bsky.feed.post", "cursor": str(seen[-1]["time_us"])}
        )
        await wait_until(lambda: len(resumed.commits()) >= len(written) - len(seen) + 1, what="resumed")
        again = resumed.commits()
        assert again[0] == seen[-1]  # inclusive cursor: the last event seen comes first, unchanged
        combined = seen + again[1:]
        assert [e["commit"]["cid"] for e in combined] == written
        times = [e["time_us"] for e in combined]
        assert times == sorted(set(times))

        full = await Stream.open(http, ws_url, {"cursor": "0", "wantedCollections": "app.bsky.feed.post"})
        await wait_until(lambda: len(full.commits()) >= len(written), what="full replay")
        await asyncio.sleep(0.2)
        assert [e["commit"]["cid"] for e in full.commits()] == written
        for stream in (resumed, full):
            await stream.close()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
