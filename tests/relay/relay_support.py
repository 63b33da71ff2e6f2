"""Helpers for the relay tests: PLC, PDS and relay apps on loopback ports, a firehose reader, PDS calls.

Everything runs in the test's event loop and talks over real sockets; the relay reaches the PDS and the PLC
directory only over the wire (development mode: ``allow_private_hosts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from atstack.core.lexicon import Lexicons
from atstack.core.stream import Event, decode_event
from atstack.lexicons import bundled_lexicons
from atstack.pds import PdsConfig
from atstack.pds import create_app as create_pds_app
from atstack.plc import PlcConfig
from atstack.plc import create_app as create_plc_app
from atstack.relay import RELAY_CONTEXT, RelayConfig, RelayContext
from atstack.relay import create_app as create_relay_app
from atstack.xrpc.service import start_test_server

ADMIN_PASSWORD = "relay-test-admin"
PASSWORD = "hunter2-correct-horse"
_LEXICONS: list[Lexicons] = []


def lexicons() -> Lexicons:
    if not _LEXICONS:
        _LEXICONS.append(bundled_lexicons())
    return _LEXICONS[0]


async def start_plc(data_dir: Path) -> tuple[str, web.AppRunner]:
    runner, url = await start_test_server(create_plc_app(PlcConfig(data_dir=data_dir)))
    return url.replace("127.0.0.1", "localhost"), runner


@dataclass
class Pds:
    url: str
    runner: web.AppRunner
    http: aiohttp.ClientSession

    @property
    def hostname(self) -> str:
        return self.url.removeprefix("http://")

    async def post(self, nsid: str, body: Any, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.post(f"{self.url}/xrpc/{nsid}", json=body, headers=headers) as resp:
            data = await resp.json(content_type=None)
            assert resp.status == 200, (nsid, resp.status, data)
            return data

    async def create_account(self, name: str) -> dict[str, Any]:
        body = {"handle": f"{name}.test", "email": f"{name}@example.com", "password": PASSWORD}
        return await self.post("com.atproto.server.createAccount", body)

    async def post_record(
        self, account: dict[str, Any], text: str, collection: str = "app.bsky.feed.post"
    ) -> Any:
        record = {"$type": collection, "text": text, "createdAt": "2025-01-01T00:00:00.000Z"}
        body = {"repo": account["did"], "collection": collection, "record": record}
        return await self.post("com.atproto.repo.createRecord", body, account["accessJwt"])

    async def delete_record(self, account: dict[str, Any], uri: str) -> Any:
        _, _, did, collection, rkey = uri.split("/")
        body = {"repo": did, "collection": collection, "rkey": rkey}
        return await self.post("com.atproto.repo.deleteRecord", body, account["accessJwt"])


async def start_pds(data_dir: Path, plc_url: str, http: aiohttp.ClientSession, **overrides: Any) -> Pds:
    options: dict[str, Any] = {
        "data_dir": data_dir,
        "plc_url": plc_url,
        "admin_password": ADMIN_PASSWORD,
        "rate_limits": False,
        "port": 0,
    }
    options.update(overrides)
    config = PdsConfig(**options)
    runner, url = await start_test_server(create_pds_app(config, lexicons=lexicons()))
    config.public_url = url.replace("127.0.0.1", "localhost")
    return Pds(config.public_url, runner, http)


@dataclass
class Relay:
    url: str
    runner: web.AppRunner
    app: web.Application

    @property
    def ctx(self) -> RelayContext:
        return self.app[RELAY_CONTEXT]

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/xrpc/com.atproto.sync.subscribeRepos"

    async def idle(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.ctx.wait_idle(), timeout)

    async def close(self) -> None:
        await self.runner.cleanup()


def relay_config(data_dir: Path, plc_url: str, **overrides: Any) -> RelayConfig:
    options: dict[str, Any] = {
        "data_dir": data_dir,
        "plc_url": plc_url,
        "admin_password": ADMIN_PASSWORD,
        "allow_private_hosts": True,
        "reconnect_min_delay": 0.05,
        "reconnect_max_delay": 0.5,
        "workers": 8,
        "port": 0,
    }
    options.update(overrides)
    return RelayConfig(**options)


async def start_relay(data_dir: Path, plc_url: str, **overrides: Any) -> Relay:
    identity_source = overrides.pop("identity_source", None)
    app = create_relay_app(relay_config(data_dir, plc_url, **overrides), identity_source=identity_source)
    runner, url = await start_test_server(app)
    return Relay(url, runner, app)


@dataclass
class Firehose:
    """Reads a ``subscribeRepos`` stream in the background; ``events`` are (seq or None, decoded event)."""

    url: str
    http: aiohttp.ClientSession
    cursor: int | None = None
    events: list[Event] = field(default_factory=list)
    closed_with: Any = None
    task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> Firehose:
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        url = self.url if self.cursor is None else f"{self.url}?cursor={self.cursor}"
        async with self.http.ws_connect(url, max_msg_size=10_000_000) as ws:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.BINARY:
                    self.events.append(decode_event(msg.data))
                    self._changed.set()
            self.closed_with = ws.close_code
        self._changed.set()

    async def wait_for(self, done: Callable[[list[Event]], bool], timeout: float = 15.0) -> list[Event]:
        deadline = time.monotonic() + timeout
        while not done(self.events):
            left = deadline - time.monotonic()
            if left <= 0:
                summary = [(type(e).__name__, getattr(e, "seq", None)) for e in self.events[-8:]]
                raise AssertionError(f"timed out; got {len(self.events)} events, last: {summary}")
            self._changed.clear()
            if self.task is not None and self.task.done():
                self.task.result()
                if not done(self.events):
                    raise AssertionError(f"stream ended; got {len(self.events)} events")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
        return self.events

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


async def get_json(
    http: aiohttp.ClientSession, url: str, params: dict[str, Any] | None = None
) -> tuple[int, Any]:
    async with http.get(url, params=params) as resp:
        return resp.status, await resp.json(content_type=None)


async def admin_post(
    http: aiohttp.ClientSession, relay: Relay, path: str, body: dict[str, Any]
) -> tuple[int, Any]:
    auth = {"Authorization": aiohttp.encode_basic_auth("admin", ADMIN_PASSWORD)}
    async with http.post(f"{relay.url}/admin/{path}", data=orjson.dumps(body), headers=auth) as resp:
        return resp.status, await resp.json(content_type=None)


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text output (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def metrics_text(http: aiohttp.ClientSession, relay: Relay) -> str:
    async with http.get(f"{relay.url}/metrics") as resp:
        return await resp.text()
