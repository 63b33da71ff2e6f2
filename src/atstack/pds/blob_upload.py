"""Receiving one ``uploadBlob`` body: streamed to a temporary file, hashed, sized, its type sniffed.

Spec: atproto.com/specs/blob and the blob lifecycle guide; checklist §11:

* the body is never held in memory: chunks go to ``blobs/tmp/<temp key>`` as they arrive and into a
  SHA-256 at the same time; the CID is CIDv1, raw codec (0x55), sha2-256 — the only blessed blob CID;
* the route's limit (``PdsConfig.blob_upload_limit``) is enforced by the XRPC layer: a declared
  ``Content-Length`` over it is refused before reading (413 ``PayloadTooLarge``), and a chunked body is cut
  off with the same error once it exceeds it;
* a body whose length differs from its ``Content-Length`` is refused (400) — unless the body came with a
  ``Content-Encoding``, whose length is that of the encoded form (aiohttp hands us the decoded bytes);
* the returned MIME type is sniffed from the first bytes for common media formats (as the reference PDS
  does with ``file-type``); the ``Content-Type`` header is the fallback;
* on any failure (limit, mismatch, client gone) the temporary file is removed: a refused upload leaves
  nothing behind. The file is fsynced before its row is written, so a row never names a lost file.

Writes to the temporary file happen on the event loop: each is a copy into the page cache of at most one
network chunk, and the body is bounded by the upload limit; the fsync, the only slow step, runs in a
thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from atstack.core.cid import CID
from atstack.xrpc.errors import InvalidRequestError
from atstack.xrpc.request import XRPCRequest, content_length, normalize_mime

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["FALLBACK_MIME", "ReceivedBlob", "receive_blob", "sniff_mime"]

FALLBACK_MIME = "application/octet-stream"
_SNIFF_BYTES = 64
_WRITE_BATCH = 256 * 1024
# CIDv1, raw codec, sha2-256, 32-byte digest: core.cid.cid_for_raw, from a digest computed incrementally
_RAW_CID_PREFIX = b"\x01\x55\x12\x20"

# ISO base media brands → type (the ``ftyp`` box at offset 4)
_FTYP_BRANDS = {
    b"avif": "image/avif",
    b"avis": "image/avif",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"heim": "image/heic",
    b"heis": "image/heic",
    b"mif1": "image/heif",
    b"msf1": "image/heif",
    b"qt  ": "video/quicktime",
    b"M4V ": "video/x-m4v",
    b"M4A ": "audio/x-m4a",
    b"3gp4": "video/3gpp",
    b"3gp5": "video/3gpp",
    b"3g2a": "video/3gpp2",
}


@dataclass(frozen=True, slots=True)
class ReceivedBlob:
    """An upload safely on disk under ``blobs/tmp/<temp_key>``."""

    temp_key: str
    cid: CID
    size: int
    mime_type: str


def sniff_mime(head: bytes) -> str | None:
    """The media type the first bytes of a file announce, for common image, video and document formats."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/vnd.avi"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head.startswith(b"BM") and len(head) >= 14 and head[6:10] == b"\x00\x00\x00\x00":
        return "image/bmp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return _FTYP_BRANDS.get(brand, "video/mp4")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in head else "video/x-matroska"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/x-flac"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    return None


def _is_encoded(req: XRPCRequest) -> bool:
    encoding = req.headers.get("Content-Encoding", "").strip().lower()
    return encoding not in ("", "identity")


def _sync_and_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def receive_blob(ctx: PdsContext, req: XRPCRequest) -> ReceivedBlob:
    """Stream the request body into a new temporary blob file (see the module docstring)."""
    declared = content_length(req.request)
    key = ctx.blobs.new_temp_key()
    path = ctx.blobs.temp_path(key)
    hasher = hashlib.sha256()
    head = bytearray()
    size = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    done = False
    try:
        pending: list[bytes] = []
        pending_size = 0
        async for chunk in req.iter_body():
            hasher.update(chunk)
            size += len(chunk)
            if len(head) < _SNIFF_BYTES:
                head += chunk[: _SNIFF_BYTES - len(head)]
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= _WRITE_BATCH:
                _write_all(fd, b"".join(pending))
                pending, pending_size = [], 0
        if pending:
            _write_all(fd, b"".join(pending))
        if declared is not None and not _is_encoded(req) and size != declared:
            raise InvalidRequestError(
                f"Body length ({size} bytes) does not match the Content-Length header ({declared})"
            )
        owned, fd = fd, -1
        await asyncio.to_thread(_sync_and_close, owned)
        done = True
    finally:
        if fd >= 0:
            os.close(fd)
        if not done:
            path.unlink(missing_ok=True)
    mime = sniff_mime(bytes(head)) or normalize_mime(req.headers.get("Content-Type")) or FALLBACK_MIME
    return ReceivedBlob(key, CID(_RAW_CID_PREFIX + hasher.digest()), size, mime)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
