"""Helpers for the PLC tests: a movable clock, a client for a running directory, accounts with keys."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from atstack.core.crypto import PrivateKey, generate_private_key
from atstack.core.plc_op import create_genesis_op, did_for_genesis
from atstack.plc import PlcConfig, create_app
from atstack.xrpc.service import start_test_server


@dataclass
class Clock:
    """The directory's notion of "now": a real input of the service, moved by tests."""

    now: datetime = field(default_factory=lambda: datetime(2025, 1, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Plc:
    url: str
    clock: Clock
    http: aiohttp.ClientSession
    app: web.Application

    async def post(self, did: str, op: Any) -> tuple[int, Any]:
        body = op if isinstance(op, bytes) else aiohttp.payload.JsonPayload(op)
        async with self.http.post(f"{self.url}/{did}", data=body) as resp:
            raw = await resp.read()
            return resp.status, (await resp.json(content_type=None)) if raw else None

    async def get(self, path: str) -> tuple[int, Any, str]:
        async with self.http.get(f"{self.url}{path}") as resp:
            raw = await resp.read()
            content_type = resp.headers.get("Content-Type", "")
            if "json" in content_type and "jsonlines" not in content_type and raw:
                return resp.status, await resp.json(content_type=None), content_type
            return resp.status, raw.decode(), content_type

    async def audit(self, did: str) -> Any:
        status, body, _ = await self.get(f"/{did}/log/audit")
        assert status == 200, body
        return body


@dataclass
class Account:
    """A DID's keys: two rotation keys (index 0 has the higher authority) and an atproto signing key."""

    rotation: list[PrivateKey]
    signing: PrivateKey
    genesis: dict[str, Any]
    did: str


def new_account(handle: str = "alice.test", pds: str = "https://pds.example.com") -> Account:
    rotation = [generate_private_key("k256"), generate_private_key("p256")]
    signing = generate_private_key("k256")
    genesis = create_genesis_op(
        rotation[0],
        rotation,
        {"atproto": signing.did_key()},
        [f"at://{handle}"],
        {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": pds}},
    )
    return Account(rotation, signing, genesis, did_for_genesis(genesis))


async def start_plc(data_dir: Path, clock: Clock, http: aiohttp.ClientSession) -> tuple[Plc, web.AppRunner]:
    app = create_app(PlcConfig(data_dir=data_dir, clock=clock))
    runner, url = await start_test_server(app)
    return Plc(url, clock, http, app), runner


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn_plc(data_dir: Path, port: int, *, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``atstack plc`` as a child process (stderr captured for the log lines)."""
    args = [sys.executable, "-m", "atstack", "plc", "--data-dir", str(data_dir)]
    if port:
        args += ["--port", str(port)]
    return subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )


async def wait_healthy(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        assert proc.poll() is None, (
            f"atstack plc exited early: {proc.stderr.read().decode() if proc.stderr else ''}"
        )
        try:
            async with http.get(f"{url}/xrpc/_health") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("atstack plc did not become healthy within 30 s")
