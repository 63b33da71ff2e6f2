"""Blob files on local disk: content-addressed, per account, written atomically.

Layout under ``<data_dir>/blobs/``: uploads stream into ``tmp/<random key>`` (fsync, then the blob row is
written with that ``temp_key``); when a committed record first references the blob, the file is renamed to
``<account dir>/<cid>``. A rename is atomic and the path depends only on ``(did, cid)``, so repeating a
step after a crash is harmless: :meth:`BlobStore.make_permanent` accepts a file that is already in place.
The account directory is the DID with ``:`` replaced by ``_`` (DIDs hold only ``[A-Za-z0-9._:%-]``).

Methods are synchronous file operations; call them through ``asyncio.to_thread`` from the event loop.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path

from atstack.core.cid import CID

__all__ = ["BlobStore"]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    def ensure_dirs(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)

    def account_dir(self, did: str) -> Path:
        return self.root / did.replace(":", "_")

    def path(self, did: str, cid: CID) -> Path:
        return self.account_dir(did) / cid.encode()

    def temp_path(self, temp_key: str) -> Path:
        return self.tmp / temp_key

    def new_temp_key(self) -> str:
        return secrets.token_hex(16)

    def write_temp(self, temp_key: str, data: bytes) -> None:
        """Write a whole upload durably (for streamed uploads, write chunks to :meth:`temp_path` and fsync)."""
        path = self.temp_path(temp_key)
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def make_permanent(self, did: str, cid: CID, temp_key: str | None) -> None:
        """Move an upload into its permanent place (no-op when it is already there)."""
        final = self.path(did, cid)
        if final.exists():
            if temp_key is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.temp_path(temp_key).unlink()
            return
        if temp_key is None:
            raise FileNotFoundError(f"blob {cid.encode()} of {did} has no file")
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.temp_path(temp_key), final)
        _fsync_dir(final.parent)

    def read(self, did: str, cid: CID) -> bytes:
        return self.path(did, cid).read_bytes()

    def exists(self, did: str, cid: CID) -> bool:
        return self.path(did, cid).exists()

    def delete(self, did: str, cid: CID) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(did, cid).unlink()

    def delete_temp(self, temp_key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.temp_path(temp_key).unlink()

    def delete_account(self, did: str) -> None:
        shutil.rmtree(self.account_dir(did), ignore_errors=True)
