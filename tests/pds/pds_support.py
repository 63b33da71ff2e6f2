"""Helpers for the PDS tests: a real PLC directory and PDS on loopback ports, a movable clock, a raw client."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

import vectors
from atstack.core.lexicon import Lexicons, load_lexicon_dir
from atstack.pds import PDS_CONTEXT, PdsConfig, PdsContext, create_app
from atstack.plc import PlcConfig
from atstack.plc import create_app as create_plc_app
from atstack.xrpc.service import start_test_server

ADMIN_PASSWORD = "test-admin-password"
PASSWORD = "hunter2-correct-horse"
_LEXICONS: list[Lexicons] = []


def lexicons() -> Lexicons:
    """The shared vectors' lexicons, loaded once per test process."""
    if not _LEXICONS:
        _LEXICONS.append(load_lexicon_dir(vectors.LEXICONS))
    return _LEXICONS[0]


@dataclass
class Clock:
    """The PDS's "now" in Unix seconds: real time plus an offset tests can move."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Response:
    status: int
    body: Any
    headers: Any
    raw: bytes

    @property
    def error(self) -> str | None:
        return self.body.get("error") if isinstance(self.body, dict) else None


@dataclass
class Account:
    did: str
    handle: str
    email: str
    password: str
    access: str
    refresh: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


@dataclass
class Pds:
    url: str
    http: aiohttp.ClientSession
    app: web.Application
    clock: Clock
    runner: web.AppRunner
    plc_url: str
    created: list[Account] = field(default_factory=list)

    @property
    def ctx(self) -> PdsContext:
        return self.app[PDS_CONTEXT]

    async def get(self, nsid: str, params: Any = None, headers: dict[str, str] | None = None) -> Response:
        async with self.http.get(f"{self.url}/xrpc/{nsid}", params=params, headers=headers) as resp:
            return await _response(resp)

    async def post(
        self,
        nsid: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> Response:
        h = dict(headers or {})
        if body is not None:
            data = orjson.dumps(body)
            content_type = "application/json"
        if content_type:
            h["Content-Type"] = content_type
        async with self.http.post(f"{self.url}/xrpc/{nsid}", data=data, headers=h) as resp:
            return await _response(resp)

    async def create_account(self, name: str, **extra: Any) -> Account:
        handle = f"{name}.test"
        email = f"{name}@example.com"
        body = {"handle": handle, "email": email, "password": PASSWORD, **extra}
        r = await self.post("com.atproto.server.createAccount", body)
        assert r.status == 200, r.body
        account = Account(r.body["did"], handle, email, PASSWORD, r.body["accessJwt"], r.body["refreshJwt"])
        self.created.append(account)
        return account

    async def create_record(self, account: Account, record: dict[str, Any], **extra: Any) -> Response:
        body = {"repo": account.did, "collection": record["$type"], "record": record, **extra}
        return await self.post("com.atproto.repo.createRecord", body, account.auth)

    def ws_url(self, cursor: int | None = None) -> str:
        url = self.url.replace("http://", "ws://") + "/xrpc/com.atproto.sync.subscribeRepos"
        return url if cursor is None else f"{url}?cursor={cursor}"


async def _response(resp: aiohttp.ClientResponse) -> Response:
    raw = await resp.read()
    body: Any = raw
    if resp.content_type == "application/json" and raw:
        body = orjson.loads(raw)
    return Response(resp.status, body, resp.headers, raw)


async def start_plc(data_dir: Path) -> tuple[str, web.AppRunner]:
    runner, url = await start_test_server(create_plc_app(PlcConfig(data_dir=data_dir)))
    return url, runner


def pds_config(data_dir: Path, plc_url: str, clock: Clock, **overrides: Any) -> PdsConfig:
    options: dict[str, Any] = {
        "data_dir": data_dir,
        "plc_url": plc_url,
        "admin_password": ADMIN_PASSWORD,
        "clock": clock,
        "rate_limits": False,
        "port": 0,
    }
    options.update(overrides)
    return PdsConfig(**options)


async def start_pds(
    data_dir: Path, plc_url: str, http: aiohttp.ClientSession, clock: Clock | None = None, **overrides: Any
) -> Pds:
    clock = clock or Clock()
    config = pds_config(data_dir, plc_url, clock, **overrides)
    app = create_app(config, lexicons=lexicons())
    runner, url = await start_test_server(app)
    # the public URL (DID documents, service endpoint) is only known once the port is
    config.public_url = url.replace("127.0.0.1", "localhost")
    return Pds(url, http, app, clock, runner, plc_url)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn_pds(data_dir: Path, port: int, plc_url: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """``atstack pds`` as a child process; its JSON log lines go to ``log`` (a file: a pipe nobody reads
    would fill up and stall the server)."""
    # the command is loaded directly, so this works whether or not it is registered on the main group yet
    args = [
        sys.executable, "-c", "from atstack.cli.pds import pds; pds()",
        "--data-dir", str(data_dir),
        "--port", str(port),
        "--plc-url", plc_url,
        "--lexicon-dir", str(vectors.LEXICONS),
        "--no-rate-limits",
    ]  # fmt: skip
    env = {**os.environ, "ATSTACK_ADMIN_PASSWORD": ADMIN_PASSWORD}
    log = log or data_dir.parent / f"{data_dir.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as sink:
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=sink, env=env)


async def wait_healthy(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"atstack pds exited with {proc.returncode} (see its log file)")
        try:
            async with http.get(f"{url}/xrpc/_health") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("atstack pds did not become healthy within 30 s")


def post_record(text: str = "hello") -> dict[str, Any]:
    return {"$type": "app.bsky.feed.post", "text": text, "createdAt": "2025-01-01T00:00:00.000Z"}
