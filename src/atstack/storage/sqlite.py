"""SQLite for asyncio services: one writer thread, a few reader threads, WAL, migrations by ``user_version``.

Every write goes through one dedicated thread and connection, so writers never contend for SQLite's lock and
never block the event loop. ``await db.execute_write(fn)`` runs ``fn(conn)`` inside a transaction on that
thread and resumes the caller only after ``COMMIT`` has returned: an awaited write is an acknowledged,
durable write. Writes queued while a commit is in progress are grouped into the next transaction (each in its
own ``SAVEPOINT``, so one failing ``fn`` rolls back only itself and gets its exception); this group commit
amortises the commit's ``fsync`` over every concurrent writer. Reads run on a small pool of reader
connections (``query_only``), each ``fn`` inside one read transaction, so it sees a consistent snapshot;
WAL lets them run while the writer commits. A point lookup can instead run on the calling thread with
:meth:`Database.read_now` (its own ``query_only`` connection per thread), which costs a tenth of a thread hop.

Durability — ``synchronous=FULL`` by default. In WAL mode a commit appends the transaction's pages to the
``-wal`` file with ``write()``; once that returns the bytes are in the operating system's page cache, which
outlives the process, so *both* ``NORMAL`` and ``FULL`` keep every acknowledged write across ``kill -9`` (the
test in ``tests/storage`` kills a writer mid-stream and checks each acknowledged row). They differ on an OS
crash or power loss: ``NORMAL`` syncs the WAL only at checkpoints and may lose the last transactions, ``FULL``
syncs the WAL on every commit and loses none. The services promise "a crash loses no acknowledged write", and
an OS crash is a crash, so ``FULL`` is the default; group commit keeps its cost to one ``fsync`` per batch
rather than per write. Measured here (``tests/storage/bench_sqlite.py``: 2 cores shared with other work,
virtio disk, one awaited ``execute_write`` per 2 KB row): one writer at a time, NORMAL ~5.3k and FULL ~2.7k
acknowledged writes/s; 64 concurrent writers, NORMAL ~16.6k/s and FULL ~12.4k/s. Pass
``synchronous="NORMAL"`` for data that can be rebuilt (caches, a relay's re-fetchable log) when the
throughput matters more.

Checkpoints run on their own thread and connection (``PRAGMA wal_checkpoint(PASSIVE)`` after every
``checkpoint_every`` committed batches, or each second that saw a commit), not inside a commit as SQLite's
automatic checkpoint does: copying a thousand WAL pages back into the database file and syncing it takes
~10–20 ms here, and every write queued behind that commit would wait for it. A passive checkpoint never
blocks the writer or the readers; the WAL restarts from its beginning once a checkpoint has caught up, so it
stays bounded. Pass ``background_checkpoint=False`` for SQLite's own behaviour.

Other settings: ``foreign_keys=ON``, ``busy_timeout`` (another process holding the lock, e.g. a backup),
``STRICT`` tables are encouraged in migrations (column types enforced). ``fn`` callables must not begin or
commit transactions themselves, and should be quick: they hold the only writer.

Migrations: a list whose item *i* upgrades ``user_version`` *i* to *i + 1* — an SQL script (split into
statements with :func:`sqlite3.complete_statement`, so triggers and literals with ``;`` are fine) or a
callable. Each runs in its own transaction together with the ``user_version`` bump, so a failing migration
leaves the database at the previous version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

__all__ = ["Database", "Migration", "split_statements"]

log = logging.getLogger("atstack.storage")

T = TypeVar("T")
Migration = str | Callable[[sqlite3.Connection], None]
Synchronous = Literal["FULL", "NORMAL", "EXTRA"]

_STOP = object()


class _Job:
    __slots__ = ("fn", "future", "loop", "raw")

    def __init__(
        self, fn: Callable[[sqlite3.Connection], Any], loop: asyncio.AbstractEventLoop, raw: bool
    ) -> None:
        self.fn = fn
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.raw = raw  # runs alone and manages its own transaction (migrations)


def _deliver(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in outcomes:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def split_statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (``;`` inside literals and triggers handled)."""
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement at end of script: {buffer.strip()[:80]!r}")
    return statements


class Database:
    """An SQLite database file shared by one writer thread and ``readers`` reader threads."""

    def __init__(
        self,
        path: str | Path,
        *,
        readers: int = 2,
        synchronous: Synchronous = "FULL",
        busy_timeout_ms: int = 5000,
        max_batch: int = 256,
        background_checkpoint: bool = True,
        checkpoint_every: int = 64,
    ) -> None:
        if str(path) == ":memory:" or str(path).startswith("file::memory:"):
            raise ValueError("Database needs a file: separate connections cannot share a :memory: database")
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        if readers < 1:
            raise ValueError("at least one reader connection is needed")
        self.path = Path(path)
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._local = threading.local()
        self.background_checkpoint = background_checkpoint
        self.checkpoint_every = max(1, checkpoint_every)
        self._uncheckpointed = 0  # batches committed since the last checkpoint (approximate: no lock)
        self._checkpoint_wanted = threading.Event()
        self._checkpointer: threading.Thread | None = None
        startup: dict[str, BaseException | None] = {"error": None}
        ready = threading.Event()
        self._writer = threading.Thread(
            target=self._writer_main,
            args=(ready, startup),
            name=f"sqlite-writer:{self.path.name}",
            daemon=True,
        )
        self._writer.start()
        ready.wait()
        if startup["error"] is not None:
            self._writer.join()
            raise startup["error"]
        if background_checkpoint:
            self._checkpointer = threading.Thread(
                target=self._checkpointer_main, name=f"sqlite-checkpoint:{self.path.name}", daemon=True
            )
            self._checkpointer.start()
        self._read_pool = ThreadPoolExecutor(
            max_workers=readers, thread_name_prefix=f"sqlite-reader:{self.path.name}"
        )

    # connections ----------------------------------------------------------------------------------

    def _connect(self, *, writer: bool) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves instead of the module's implicit ones
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        if writer:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                conn.close()
                raise sqlite3.OperationalError(f"could not enable WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            if self.background_checkpoint:
                conn.execute("PRAGMA wal_autocheckpoint = 0")
        else:
            conn.execute("PRAGMA query_only = ON")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(writer=False)
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    # the checkpoint thread ------------------------------------------------------------------------

    def _checkpointer_main(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            log.exception(
                "could not open the checkpoint connection; the WAL will only be checkpointed on close"
            )
            return
        try:
            while not self._closed:
                self._checkpoint_wanted.wait(1.0)
                self._checkpoint_wanted.clear()
                if self._uncheckpointed == 0:
                    continue
                self._uncheckpointed = 0
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:
                    log.warning("checkpoint of %s failed: %s", self.path.name, exc)
        finally:
            conn.close()

    # the writer thread ----------------------------------------------------------------------------

    def _writer_main(self, ready: threading.Event, startup: dict[str, BaseException | None]) -> None:
        try:
            conn = self._connect(writer=True)
        except BaseException as exc:
            startup["error"] = exc
            ready.set()
            return
        ready.set()
        get = self._queue.get
        get_nowait = self._queue.get_nowait
        stopping = False
        try:
            while not stopping:
                item = get()
                if item is _STOP:
                    break
                batch: list[_Job] = [item]
                # group everything already queued (up to max_batch) into one transaction
                while len(batch) < self.max_batch and not batch[-1].raw:
                    try:
                        nxt = get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stopping = True
                        break
                    if nxt.raw:
                        self._run_batch(conn, batch)
                        batch = [nxt]
                        break
                    batch.append(nxt)
                if batch[0].raw:
                    self._run_raw(conn, batch[0])
                else:
                    self._run_batch(conn, batch)
        finally:
            conn.close()

    def _run_raw(self, conn: sqlite3.Connection, job: _Job) -> None:
        try:
            result, error = job.fn(conn), None
        except BaseException as exc:
            result, error = None, exc
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        self._resolve([job], [(result, error)])

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            if len(batch) == 1:
                try:
                    outcomes.append((batch[0].fn(conn), None))
                except Exception as exc:
                    conn.execute("ROLLBACK")
                    self._resolve(batch, [(None, exc)])
                    return
            else:
                for job in batch:
                    conn.execute("SAVEPOINT job")
                    try:
                        outcomes.append((job.fn(conn), None))
                    except Exception as exc:
                        conn.execute("ROLLBACK TO job")
                        outcomes.append((None, exc))
                    conn.execute("RELEASE job")
            conn.execute("COMMIT")
            self._uncheckpointed += 1
            if self._uncheckpointed >= self.checkpoint_every:
                self._checkpoint_wanted.set()
        except Exception as exc:
            # BEGIN or COMMIT failed (disk full, I/O error, lock timeout): nothing in the batch was written
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rollback after a failed commit also failed")
            log.error("write transaction failed: %s", exc)
            self._resolve(batch, [(None, exc)] * len(batch))
            return
        self._resolve(batch, outcomes)

    @staticmethod
    def _resolve(batch: list[_Job], outcomes: list[tuple[Any, BaseException | None]]) -> None:
        # one wake-up per event loop for the whole batch, not one per job
        by_loop: dict[
            asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]
        ] = {}
        for job, (result, error) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job.future, result, error))
        for loop, items in by_loop.items():
            # RuntimeError: the event loop is gone, so nobody is waiting any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_deliver, items)

    # public API -----------------------------------------------------------------------------------

    async def execute_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a write transaction; returns once it is committed (or raises its error).

        If the awaiting task is cancelled the write still happens; only the result is dropped.
        """
        if self._closed:
            raise RuntimeError("database is closed")
        job = _Job(fn, asyncio.get_running_loop(), raw=False)
        self._queue.put(job)
        return await job.future

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a reader connection inside one read transaction (a consistent snapshot)."""
        if self._closed:
            raise RuntimeError("database is closed")
        return await asyncio.get_running_loop().run_in_executor(self._read_pool, self._run_read, fn)

    def read_now(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` right here, on the calling thread's own reader connection, in one read transaction.

        For point lookups on hot rows (an account by DID, a record by key): such a query takes ~10 µs, while
        handing it to a reader thread and back costs ~100–150 µs of CPU (measured here, ``atstack bench
        pds``) and a GIL hand-off each way. WAL readers never wait for the writer, so the only way this
        blocks the event loop is a cold page read from disk; anything that scans belongs in :meth:`read`.
        """
        if self._closed:
            raise RuntimeError("database is closed")
        return self._run_read(fn)

    def _run_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            if conn.in_transaction:  # ending a read transaction: ROLLBACK and COMMIT are the same here
                conn.execute("ROLLBACK")

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """One write statement; returns the number of rows changed."""
        return await self.execute_write(lambda conn: conn.execute(sql, params).rowcount)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        return await self.execute_write(lambda conn: conn.executemany(sql, rows).rowcount)

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> tuple[Any, ...] | None:
        return await self.read(lambda conn: conn.execute(sql, params).fetchone())

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        return await self.read(lambda conn: conn.execute(sql, params).fetchall())

    async def user_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def migrate(self, migrations: Sequence[Migration]) -> int:
        """Apply the migrations above the current ``user_version``; returns the final version."""

        def run(conn: sqlite3.Connection) -> int:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(migrations):
                raise RuntimeError(
                    f"{self.path} is at schema version {version}, newer than this code knows ({len(migrations)})"
                )
            for index in range(version, len(migrations)):
                step = migrations[index]
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if callable(step):
                        step(conn)
                    else:
                        for statement in split_statements(step):
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {index + 1}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                log.info("migrated %s to schema version %d", self.path.name, index + 1)
            return len(migrations)

        if self._closed:
            raise RuntimeError("database is closed")
        job = _Job(run, asyncio.get_running_loop(), raw=True)
        self._queue.put(job)
        return await job.future

    async def close(self) -> None:
        """Finish queued writes, then close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        loop = asyncio.get_running_loop()
        if self._checkpointer is not None:
            self._checkpoint_wanted.set()  # wakes it to see _closed; the writer's close checkpoints the rest
            await loop.run_in_executor(None, self._checkpointer.join)
        await loop.run_in_executor(None, self._writer.join)
        await loop.run_in_executor(None, self._read_pool.shutdown, True)
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
