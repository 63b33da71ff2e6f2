"""Fan-out throughput of :class:`EventStreamHub`: frames/s delivered to N local subscribers.

The hub runs in this process (uvloop when installed); the subscribers run in a child process on raw sockets
that only count bytes, so the figure is the server's, not a client's decoding speed. Usage::

    .venv/bin/python tests/xrpc/bench_fanout.py --subscribers 50 --frames 20000 --size 500
    .venv/bin/python tests/xrpc/bench_fanout.py --per-frame     # one ws.send_bytes per frame, for comparison
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

NSID = "com.atproto.sync.subscribeRepos"


async def _client(url: str, subscribers: int, expected_bytes: int) -> None:
    parts = urlsplit(url)

    async def one() -> tuple[int, float]:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port, limit=1 << 20)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await reader.readuntil(b"\r\n\r\n")
        got = 0
        while got < expected_bytes:
            chunk = await reader.read(1 << 18)
            if not chunk:
                break
            got += len(chunk)
        done = time.perf_counter()
        writer.close()
        return got, done

    tasks = [asyncio.create_task(one()) for _ in range(subscribers)]
    results = await asyncio.gather(*tasks)
    print(
        json.dumps({"received": [r[0] for r in results], "done_at": max(r[1] for r in results)}), flush=True
    )


async def run_bench(subscribers: int, frames: int, size: int, coalesce: bool) -> dict[str, float]:
    import aiohttp  # noqa: F401  (imported here so --client mode stays light)

    from atstack.core.stream import encode_message
    from atstack.xrpc import EventStreamHub, MemoryEventLog, XRPCRouter
    from atstack.xrpc.service import start_test_server
    from atstack.xrpc.stream import ws_binary_frame

    log = MemoryEventLog(retain=frames + 10)
    router = XRPCRouter("bench")
    hub = EventStreamHub(
        log, max_outbox_frames=frames + 10, max_outbox_bytes=1 << 34, heartbeat=None, coalesce=coalesce
    )
    hub.mount(router)
    runner, base = await start_test_server(router.create_app())
    payloads = [
        encode_message("#identity", {"seq": seq, "did": "did:plc:bench", "pad": b"x" * size})
        for seq in range(1, frames + 1)
    ]
    expected = sum(len(ws_binary_frame(p)) for p in payloads)
    url = base.replace("http://", "ws://") + f"/xrpc/{NSID}"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        url,
        str(subscribers),
        str(expected),
        stdout=subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        while hub.live_subscriber_count < subscribers:
            await asyncio.sleep(0.01)
    started = time.perf_counter()
    for i, payload in enumerate(payloads, 1):
        log.append(i, payload)
        hub.publish(i, payload)
        if i % 256 == 0:
            await asyncio.sleep(0)  # let the subscriber writers run between bursts
    published = time.perf_counter()
    assert child.stdout is not None
    line = await child.stdout.readline()
    await child.wait()
    result = json.loads(line)
    elapsed = result["done_at"] - started  # perf_counter is system-wide monotonic on Linux
    assert all(r == expected for r in result["received"]), "a subscriber did not receive every byte"
    await runner.cleanup()
    delivered = frames * subscribers
    return {
        "subscribers": subscribers,
        "frames": frames,
        "frame_bytes": len(payloads[0]),
        "coalesce": coalesce,
        "publish_s": round(published - started, 3),
        "elapsed_s": round(elapsed, 3),
        "frames_per_s": round(delivered / elapsed),
        "MB_per_s": round(expected * subscribers / elapsed / 1e6, 1),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        url, n, expected = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        asyncio.run(_client(url, n, expected))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--per-frame", action="store_true", help="ws.send_bytes per frame instead")
    args = parser.parse_args()
    from atstack.xrpc.service import run

    print(json.dumps(run(run_bench(args.subscribers, args.frames, args.size, not args.per_frame))))


if __name__ == "__main__":
    main()
