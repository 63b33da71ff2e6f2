"""Helpers for the Jetstream tests: an in-process Jetstream fed by a real PDS, and a v1 WebSocket client."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiohttp
import orjson
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pds"))

from pds_support import Account, Pds, post_record

from atstack.jetstream import JETSTREAM, JetstreamConfig, JetstreamService, create_app
from atstack.jetstream.compression import decompressor
from atstack.xrpc.service import start_test_server

__all__ = [
    "Account",
    "Jet",
    "Pds",
    "Stream",
    "drain_frames",
    "post_record",
    "stalled_socket",
    "start_jetstream",
    "wait_until",
]


@dataclass
class Jet:
    url: str
    runner: web.AppRunner
    app: web.Application

    @property
    def service(self) -> JetstreamService:
        return self.app[JETSTREAM]

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://") + "/subscribe"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_jetstream(data_dir: Path, upstream: str | None, **overrides: Any) -> Jet:
    options: dict[str, Any] = {
        "data_dir": data_dir,
        "upstream": upstream,
        "port": 0,
        "flush_interval": 0.005,
        "trim_interval": 3600,
        "heartbeat": None,
        "store_sync": False,
        "store_map_size": 1 << 30,
    }
    options.update(overrides)
    app = create_app(JetstreamConfig(**options))
    runner, url = await start_test_server(app)
    return Jet(url, runner, app)


async def wait_until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Stream:
    """A v1 subscriber collecting every message (JSON text, or zstd binary decoded and kept raw too)."""

    ws: aiohttp.ClientWebSocketResponse
    events: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    compressed: list[bytes] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, http: aiohttp.ClientSession, url: str, params: Any = None, headers: Any = None, **kw: Any
    ) -> Self:
        ws = await http.ws_connect(url, params=params, headers=headers, max_msg_size=0, **kw)
        stream = cls(ws)
        stream.task = asyncio.create_task(stream._read())
        return stream

    async def _read(self) -> None:
        dctx = decompressor()
        try:
            async for msg in self.ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    data = msg.data.encode()
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    self.compressed.append(msg.data)
                    data = dctx.decompress(msg.data)
                else:
                    continue
                self.raw.append(data)
                self.events.append(orjson.loads(data))
        finally:
            self.closed.set()

    async def send(self, message: Any) -> None:
        await self.ws.send_str(message if isinstance(message, str) else orjson.dumps(message).decode())

    async def wait_for(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        await wait_until(lambda: len(self.events) >= n or self.closed.is_set(), timeout, f"{n} events")
        return self.events

    async def close(self) -> None:
        await self.ws.close()
        if self.task is not None:
            await self.task

    def commits(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == "commit"]


V2_NSID = "network.bsky.jetstream.subscribeEvents"


class V2Stream(Stream):
    """A v2 subscriber: the same reader, whose messages are ``{"$type", "payload"}`` frames."""

    @property
    def frames(self) -> list[dict[str, Any]]:
        return self.events

    def payloads(self, kind: str | None = None) -> list[dict[str, Any]]:
        out = [f["payload"] for f in self.frames if f["$type"] == "message"]
        return [p for p in out if kind is None or p["$type"] == f"{V2_NSID}#{kind}"]

    def seqs(self) -> list[int]:
        return [f["payload"]["seq"] for f in self.frames if "seq" in f.get("payload", {})]

    async def wait_seq(self, seq: int) -> None:
        await wait_until(lambda: seq in self.seqs() or self.closed.is_set(), what=f"seq {seq}")


async def connect_v2(http: aiohttp.ClientSession, jet: Jet, params: Any = None, **kw: Any) -> V2Stream:
    return await V2Stream.open(http, jet.url.replace("http://", "ws://") + f"/xrpc/{V2_NSID}", params, **kw)


async def write_posts(pds: Pds, account: Account, n: int, prefix: str = "post") -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        r = await pds.create_record(account, post_record(f"{prefix} {i}"))
        assert r.status == 200, r.body
        out.append(r.body)
    return out


def stalled_socket(jet: Jet, path: str) -> socket.socket:
    """A raw client that completes the WebSocket handshake on ``path`` and then reads nothing."""
    host, port = jet.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return sock


async def drain_frames(sock: socket.socket) -> list[tuple[int, bytes]]:
    """Read ``sock`` (from :func:`stalled_socket`) to its end and return its complete frames after the HTTP
    response, as (opcode, payload); the socket is closed."""
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    chunks = []
    while True:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 10)
        except (TimeoutError, ConnectionError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    sock.close()
    raw = b"".join(chunks)
    data = raw[raw.index(b"\r\n\r\n") + 4 :]
    frames, pos = [], 0
    while pos + 2 <= len(data):
        opcode, n, head = data[pos] & 0x0F, data[pos + 1] & 0x7F, 2
        if n == 126:
            n, head = struct.unpack_from("!H", data, pos + 2)[0], 4
        elif n == 127:
            n, head = struct.unpack_from("!Q", data, pos + 2)[0], 10
        if pos + head + n > len(data):
            break
        frames.append((opcode, data[pos + head : pos + head + n]))
        pos += head + n
    return frames
