"""``atstack plc`` as a process: health once ready, JSON logs on stderr, clean exit on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import orjson
import pytest
from plc_support import free_port, new_account, spawn_plc, wait_healthy


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_serves_and_exits_cleanly(
    tmp_path: Path, http: aiohttp.ClientSession, sig: signal.Signals
) -> None:
    port = free_port()
    proc = spawn_plc(tmp_path / "data", port)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(http, url, proc)
        async with http.get(f"{url}/xrpc/_health") as resp:
            assert resp.status == 200
            assert "version" in await resp.json()
        acct = new_account()
        async with http.post(f"{url}/{acct.did}", json=acct.genesis) as resp:
            assert resp.status == 200
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    lines = [orjson.loads(line) for line in proc.stderr.read().decode().splitlines() if line.strip()]
    assert any(entry["msg"].startswith("plc listening on") for entry in lines)
    assert all(entry["service"] == "plc" for entry in lines)
    assert (tmp_path / "data" / "plc.sqlite").exists()


async def test_environment_variables(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    port = free_port()
    proc = spawn_plc(
        tmp_path / "data", 0, env={"ATSTACK_PLC_PORT": str(port), "ATSTACK_PLC_HOST": "127.0.0.1"}
    )
    try:
        await wait_healthy(http, f"http://127.0.0.1:{port}", proc)
        proc.terminate()
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
