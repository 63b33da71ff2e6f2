"""The blob garbage collector: a background task removing uploads nobody referenced and stray files.

Spec: atproto.com/specs/blob ("Blob Lifecycle"), checklist §11. Blobs whose last reference goes away are
deleted by the record write itself (:mod:`atstack.pds.repo_writer`: row in the commit's transaction, file
right after); this task cleans up everything else:

1. **referenced uploads** — a temporary row some record references (an upload made before the repo import
   that names it, or one interrupted before its promotion) is made permanent;
2. **expired uploads** — temporary blob rows (uploaded, never referenced by a committed record) older than
   ``temp_ttl`` (default 6 h; never less than 1 h): row and file deleted. Each account is handled under
   its repo write lock, and the row is deleted only if it is still the same temporary upload, so a record
   write in flight can never lose the blob it references;
3. **orphaned temporary files** — files under ``blobs/tmp/`` without a row, older than ``temp_ttl`` by
   their modification time (uploads cut off by a crash, or superseded by a re-upload);
4. **orphaned permanent files** (a full sweep at start and then daily) — files under an account's
   directory without a blob row (a crash between a commit and its file deletion), and directories of
   accounts that no longer exist.

Row times use the service clock (``PdsConfig.clock``); file times are compared with the wall clock, as
the file system sets them. Directory walks and deletions run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from atstack.core.cid import CID, InvalidCID, parse_cid
from atstack.pds.store import blob_maintenance, blobs, iso_time
from atstack.pds.store.blobs import BlobRow

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = [
    "DEFAULT_GC_INTERVAL",
    "DEFAULT_TEMP_TTL",
    "MIN_TEMP_TTL",
    "BlobGC",
    "GCReport",
    "blob_gc",
    "start_blob_gc",
]

log = logging.getLogger("atstack.pds.blob_gc")

MIN_TEMP_TTL = 3600.0
DEFAULT_TEMP_TTL = 6 * 3600.0
DEFAULT_GC_INTERVAL = 600.0
FILE_SWEEP_INTERVAL = 86400.0
_BATCH = 500
_EXTRAS_KEY = "blob_gc"


@dataclass(slots=True)
class GCReport:
    """What one pass removed (or kept)."""

    expired_uploads: int = 0
    made_permanent: int = 0
    orphan_temp_files: int = 0
    orphan_blob_files: int = 0
    orphan_account_dirs: int = 0


class BlobGC:
    """Runs :meth:`run_once` every ``interval`` seconds once started (see the module docstring)."""

    def __init__(
        self, ctx: PdsContext, *, temp_ttl: float = DEFAULT_TEMP_TTL, interval: float = DEFAULT_GC_INTERVAL
    ) -> None:
        self.ctx = ctx
        self.temp_ttl = max(float(temp_ttl), MIN_TEMP_TTL)
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._last_file_sweep: float | None = None
        self._lock = asyncio.Lock()

    # --- lifecycle ------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the background loop (idempotent; needs the started service)."""
        if self.running or not self.ctx.started:
            return
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="blob-gc")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                now = time.monotonic()
                sweep = self._last_file_sweep is None or now - self._last_file_sweep >= FILE_SWEEP_INTERVAL
                report = await self.run_once(sweep_files=sweep)
                if sweep:
                    self._last_file_sweep = now
                if any((report.expired_uploads, report.orphan_temp_files, report.orphan_blob_files)):
                    log.info("blob gc: %s", report)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("blob gc pass failed")
            await asyncio.sleep(self.interval)

    # --- one pass -------------------------------------------------------------------------------------

    async def run_once(self, *, sweep_files: bool = False) -> GCReport:
        """One collection pass; ``sweep_files`` adds the walk over every account's blob directory."""
        async with self._lock:
            report = GCReport()
            await self._promote_referenced(report)
            await self._expire_uploads(report)
            await self._orphan_temp_files(report)
            if sweep_files:
                await self._orphan_blob_files(report)
            return report

    async def _expire_uploads(self, report: GCReport) -> None:
        ctx = self.ctx
        before = iso_time(ctx.clock() - self.temp_ttl)
        while True:
            rows = await ctx.db.read(lambda conn: blobs.old_temp_blobs(conn, before, _BATCH))
            if not rows:
                return
            by_did: dict[str, list[BlobRow]] = defaultdict(list)
            for row in rows:
                by_did[row.did].append(row)
            progressed = 0
            for did, did_rows in by_did.items():
                progressed += await self._expire_account_uploads(did, did_rows, report)
            if len(rows) < _BATCH or progressed == 0:
                return

    async def _expire_account_uploads(self, did: str, rows: list[BlobRow], report: GCReport) -> int:
        ctx = self.ctx
        async with ctx.repo.lock(did):
            # 1. rows still unreferenced are deleted; referenced ones are made permanent below
            def delete_unreferenced(conn: sqlite3.Connection) -> tuple[list[BlobRow], list[BlobRow]]:
                deleted: list[BlobRow] = []
                keep: list[BlobRow] = []
                for row in rows:
                    assert row.temp_key is not None
                    if blob_maintenance.is_referenced(conn, did, row.cid):
                        keep.append(row)
                    elif blob_maintenance.delete_temp_blob(conn, did, row.cid, row.temp_key):
                        deleted.append(row)
                return deleted, keep

            deleted, referenced = await ctx.db.execute_write(delete_unreferenced)
            await asyncio.to_thread(_delete_upload_files, ctx, deleted)
            report.expired_uploads += len(deleted)
            await self._promote_locked(did, referenced, report)
            return len(deleted) + len(referenced)

    async def _promote_referenced(self, report: GCReport) -> None:
        """Temporary rows a record references (an upload that came before the repo import naming it, or
        an upload interrupted between its row and its promotion) become permanent without waiting."""
        ctx = self.ctx
        rows = await ctx.db.read(lambda conn: blob_maintenance.referenced_temp_blobs(conn, _BATCH))
        by_did: dict[str, list[BlobRow]] = defaultdict(list)
        for row in rows:
            by_did[row.did].append(row)
        for did, did_rows in by_did.items():
            cids = [r.cid for r in did_rows]
            async with ctx.repo.lock(did):
                current = await ctx.db.read(lambda conn, did=did, cids=cids: blobs.get_blobs(conn, did, cids))
                still = [
                    r for r in did_rows if (c := current.get(r.cid)) is not None and c.temp_key == r.temp_key
                ]
                await self._promote_locked(did, still, report)

    async def _promote_locked(self, did: str, rows: list[BlobRow], report: GCReport) -> None:
        """Move referenced uploads' files into place, then mark their rows permanent (repo lock held)."""
        if not rows:
            return
        ctx = self.ctx
        placed = await asyncio.to_thread(_place_files, ctx, rows)
        if placed:

            def mark(conn: sqlite3.Connection) -> None:
                for row in placed:
                    blobs.make_permanent(conn, did, row.cid)

            await ctx.db.execute_write(mark)
        missing = [row for row in rows if row not in placed]
        if missing:
            # no file anywhere: the row promises a blob we do not have; listMissingBlobs will ask for it
            def forget(conn: sqlite3.Connection) -> None:
                for row in missing:
                    blob_maintenance.delete_temp_blob(conn, did, row.cid, row.temp_key or "")

            await ctx.db.execute_write(forget)
        report.made_permanent += len(placed)

    async def _orphan_temp_files(self, report: GCReport) -> None:
        ctx = self.ctx
        cutoff = time.time() - self.temp_ttl
        candidates = await asyncio.to_thread(_old_files, ctx.blobs.tmp, cutoff)
        if not candidates:
            return
        known = await ctx.db.read(blob_maintenance.temp_keys)
        orphans = [p for p in candidates if p.name not in known]
        await asyncio.to_thread(_unlink_all, orphans)
        report.orphan_temp_files += len(orphans)

    async def _orphan_blob_files(self, report: GCReport) -> None:
        ctx = self.ctx
        dids = await ctx.db.read(blob_maintenance.account_dids)
        by_dir = {ctx.blobs.account_dir(did).name: did for did in dids}
        dirs = await asyncio.to_thread(_account_dirs, ctx.blobs.root, ctx.blobs.tmp)
        for path in dirs:
            did = by_dir.get(path.name)
            if did is None:
                await asyncio.to_thread(shutil.rmtree, path, True)
                report.orphan_account_dirs += 1
                continue
            report.orphan_blob_files += await self._sweep_account_dir(did, path)

    async def _sweep_account_dir(self, did: str, path: Path) -> int:
        ctx = self.ctx
        async with ctx.repo.lock(did):
            names = await asyncio.to_thread(_file_names, path)
            if not names:
                return 0
            known = await ctx.db.read(lambda conn: blob_maintenance.blob_cids(conn, did))
            strays: list[Path] = []
            for name in names:
                try:
                    cid: CID | None = parse_cid(name)
                except (InvalidCID, ValueError):
                    cid = None
                if cid is None or cid not in known:
                    strays.append(path / name)
            await asyncio.to_thread(_unlink_all, strays)
            return len(strays)


# --- file helpers (worker thread) ---------------------------------------------------------------------


def _delete_upload_files(ctx: PdsContext, rows: list[BlobRow]) -> None:
    for row in rows:
        if row.temp_key is not None:
            ctx.blobs.delete_temp(row.temp_key)
        # a record write that failed after moving the file into place leaves it there: no row now owns it
        ctx.blobs.delete(row.did, row.cid)


def _place_files(ctx: PdsContext, rows: list[BlobRow]) -> list[BlobRow]:
    placed: list[BlobRow] = []
    for row in rows:
        try:
            ctx.blobs.make_permanent(row.did, row.cid, row.temp_key)
        except FileNotFoundError:
            continue
        placed.append(row)
    return placed


def _old_files(directory: Path, cutoff: float) -> list[Path]:
    out: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return out
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                out.append(Path(entry.path))
        except FileNotFoundError:
            continue
    return out


def _account_dirs(root: Path, tmp: Path) -> list[Path]:
    try:
        return [
            Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False) and e.name != tmp.name
        ]
    except FileNotFoundError:
        return []


def _file_names(directory: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(directory) if e.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


# --- access from handler modules ----------------------------------------------------------------------


def blob_gc(ctx: PdsContext) -> BlobGC:
    """The service's collector (created on first use; settings from ``PdsConfig`` when it has them)."""
    gc = ctx.extras.get(_EXTRAS_KEY)
    if gc is None:
        config = ctx.config
        gc = BlobGC(
            ctx,
            temp_ttl=config.blob_temp_ttl,
            interval=config.blob_gc_interval,
        )
        ctx.extras[_EXTRAS_KEY] = gc
    return gc  # type: ignore[no-any-return]


def start_blob_gc(ctx: PdsContext) -> BlobGC:
    """Start the collector's background loop (call once the service has started)."""
    gc = blob_gc(ctx)
    gc.start()
    return gc
