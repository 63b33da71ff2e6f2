"""A bare WebSocket client on a raw socket, for subscribers that must *not* read (slow consumers).

aiohttp's client reads the socket on its own; this one only reads when told, and shrinks its receive buffer
so the server's side fills up quickly.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(slots=True)
class WireFrame:
    opcode: int
    payload: bytes


class RawWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int) -> None:
        self.reader = reader
        self.writer = writer
        self.status = status

    @classmethod
    async def connect(cls, url: str, *, rcvbuf: int = 4096) -> RawWebSocket:
        parts = urlsplit(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (parts.hostname, parts.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=rcvbuf)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return cls(reader, writer, status)

    async def read_all_frames(self, timeout: float = 30.0) -> list[WireFrame]:
        """Read until the server closes the connection; parse every frame received."""
        chunks: list[bytes] = []
        async with asyncio.timeout(timeout):
            while True:
                chunk = await self.reader.read(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        return parse_frames(b"".join(chunks))

    def close(self) -> None:
        self.writer.close()


def parse_frames(data: bytes) -> list[WireFrame]:
    """Unmasked server frames (RFC 6455 §5.2); a truncated tail is ignored."""
    frames: list[WireFrame] = []
    pos = 0
    while pos + 2 <= len(data):
        opcode = data[pos] & 0x0F
        n = data[pos + 1] & 0x7F
        pos += 2
        if n == 126:
            if pos + 2 > len(data):
                break
            (n,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif n == 127:
            if pos + 8 > len(data):
                break
            (n,) = struct.unpack_from("!Q", data, pos)
            pos += 8
        if pos + n > len(data):
            break
        frames.append(WireFrame(opcode, data[pos : pos + n]))
        pos += n
    return frames
