"""Helpers for the blob, admin, identity, preference and email tests: firehose replay, admin auth, images."""

from __future__ import annotations

import asyncio
import base64
import secrets
import struct
import zlib
from typing import Any

import aiohttp
from pds_support import ADMIN_PASSWORD, Account, Pds

from atstack.core.stream import Event, decode_event

ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}


async def latest_seq(pds: Pds) -> int:
    return pds.ctx.sequencer.latest_seq() or 0


async def replay(pds: Pds, after: int, *, quiet: float = 0.3, timeout: float = 10) -> list[Event]:
    """Every event with a seq above ``after``, read over a real WebSocket until the stream goes quiet."""
    events: list[Event] = []
    deadline = asyncio.get_running_loop().time() + timeout
    async with pds.http.ws_connect(pds.ws_url(cursor=after)) as ws:
        while asyncio.get_running_loop().time() < deadline:
            try:
                msg = await ws.receive(timeout=quiet)
            except TimeoutError:
                break
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            events.append(decode_event(msg.data))
    return events


def png(width: int = 8, height: int = 8) -> bytes:
    """A small random RGB PNG (a real one: sniffing must recognise it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + secrets.token_bytes(width * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def upload(pds: Pds, account: Account, data: bytes, content_type: str = "image/png") -> Any:
    """``uploadBlob``; returns the blob object (JSON form)."""
    r = await pds.post(
        "com.atproto.repo.uploadBlob", data=data, content_type=content_type, headers=account.auth
    )
    assert r.status == 200, r.body
    return r.body["blob"]


def blob_json(blob: dict[str, Any]) -> dict[str, Any]:
    return {"$type": "blob", "ref": blob["ref"], "mimeType": blob["mimeType"], "size": blob["size"]}


async def outbox(pds: Pds) -> list[Any]:
    from atstack.pds.store import mail

    return await pds.ctx.db.read(lambda c: mail.unsent_mail(c))
