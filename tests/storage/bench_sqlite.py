"""Acknowledged-write throughput of :class:`atstack.storage.Database`, synchronous=NORMAL vs FULL.

Each write is one awaited ``execute_write`` inserting a 2 KB row (an acknowledged write). ``writers`` tasks
write concurrently, so group commit can share one commit (one fsync under FULL) between them::

    .venv/bin/python tests/storage/bench_sqlite.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

from atstack.storage import Database


async def bench(path: Path, mode: str, writers: int, seconds: float) -> dict[str, object]:
    db = Database(path, synchronous=mode)  # type: ignore[arg-type]
    await db.migrate(["CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL) STRICT"])
    payload = os.urandom(2048)
    done = 0
    deadline = time.perf_counter() + seconds

    async def writer() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await db.execute_write(lambda c: c.execute("INSERT INTO t (v) VALUES (?)", (payload,)))
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - started
    await db.close()
    return {"synchronous": mode, "writers": writers, "writes_per_s": round(done / elapsed)}


async def main(seconds: float) -> None:
    for mode in ("NORMAL", "FULL"):
        for writers in (1, 8, 64):
            with tempfile.TemporaryDirectory() as tmp:
                print(json.dumps(await bench(Path(tmp) / "b.sqlite", mode, writers, seconds)), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    asyncio.run(main(parser.parse_args().seconds))
