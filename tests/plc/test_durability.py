"""``kill -9`` loses no acknowledged operation: every 200 answered before the kill is there after restart."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
from plc_support import free_port, new_account, spawn_plc, wait_healthy

from atstack.core.plc_op import create_tombstone_op, create_update_op, op_cid


async def test_sigkill_keeps_acknowledged_operations(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn_plc(data_dir, port)
    acknowledged: dict[str, list[str]] = {}
    try:
        await wait_healthy(http, url, proc)
        for i in range(15):
            acct = new_account(f"k{i}.test")
            ops = [acct.genesis]
            for j in range(i % 4):
                ops.append(create_update_op(ops[-1], acct.rotation[0], handle=f"k{i}-{j}.test"))
            if i == 7:
                ops.append(create_tombstone_op(ops[-1], acct.rotation[1]))
            for op in ops:
                async with http.post(f"{url}/{acct.did}", json=op) as resp:
                    assert resp.status == 200
                acknowledged.setdefault(acct.did, []).append(op_cid(op).encode())
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn_plc(data_dir, port)
    try:
        await wait_healthy(http, url, proc)
        total = 0
        for did, cids in acknowledged.items():
            async with http.get(f"{url}/{did}/log/audit") as resp:
                assert resp.status == 200
                audit = await resp.json()
            assert [e["cid"] for e in audit] == cids
            total += len(cids)
        async with http.get(f"{url}/export") as resp:
            assert len((await resp.text()).split("\n")) == total
        assert total == 15 + sum(i % 4 for i in range(15)) + 1
    finally:
        proc.terminate()
        proc.wait(timeout=20)
