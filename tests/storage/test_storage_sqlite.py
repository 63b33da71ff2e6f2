"""The SQLite wrapper: transactions on the writer thread, group commit, reads, migrations, kill -9 durability."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from atstack.storage import Database, split_statements

SCHEMA = [
    """
    CREATE TABLE account (did TEXT PRIMARY KEY, handle TEXT NOT NULL UNIQUE) STRICT;
    CREATE TABLE record (
        did TEXT NOT NULL REFERENCES account(did),
        rkey TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (did, rkey)
    ) STRICT;
    """,
    """
    CREATE TABLE log (id INTEGER PRIMARY KEY, note TEXT NOT NULL) STRICT;
    CREATE TRIGGER record_log AFTER INSERT ON record BEGIN
        INSERT INTO log (note) VALUES ('inserted; ' || NEW.rkey);
    END;
    """,
]


@pytest.fixture
async def db(tmp_path: Path):
    database = Database(tmp_path / "test.sqlite")
    assert await database.migrate(SCHEMA) == 2
    yield database
    await database.close()


def test_split_statements_handles_literals_and_triggers() -> None:
    statements = split_statements(SCHEMA[1] + "\nINSERT INTO log (note) VALUES ('a;b');")
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    assert statements[2] == "INSERT INTO log (note) VALUES ('a;b');"
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("CREATE TABLE x (a INT); SELECT 'unterminated")


async def test_settings_of_writer_and_reader(db: Database) -> None:
    assert await db.execute_write(lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert await db.execute_write(lambda c: c.execute("PRAGMA synchronous").fetchone()[0]) == 2  # FULL
    assert await db.execute_write(lambda c: c.execute("PRAGMA foreign_keys").fetchone()[0]) == 1
    assert await db.fetchone("PRAGMA query_only") == (1,)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await db.read(lambda c: c.execute("INSERT INTO log (note) VALUES ('x')"))


async def test_writes_commit_before_the_caller_resumes(db: Database, tmp_path: Path) -> None:
    await db.execute("INSERT INTO account VALUES (?, ?)", ("did:plc:a", "a.test"))
    # a connection that is not ours sees the row as soon as the await returned
    other = sqlite3.connect(tmp_path / "test.sqlite")
    assert other.execute("SELECT handle FROM account").fetchall() == [("a.test",)]
    other.close()
    assert await db.fetchall("SELECT did FROM account") == [("did:plc:a",)]


async def test_failed_write_rolls_back_only_itself(db: Database) -> None:
    await db.execute("INSERT INTO account VALUES ('did:plc:a', 'a.test')")

    def insert(n: int):
        def fn(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO record VALUES ('did:plc:a', ?, x'00')", (f"r{n}",))
            if n % 3 == 0:
                raise ValueError(f"job {n} fails after writing")
            return n

        return fn

    # queued together, these share transactions; each failure must undo only its own row
    results = await asyncio.gather(
        *(db.execute_write(insert(n)) for n in range(1, 31)), return_exceptions=True
    )
    for n, result in enumerate(results, 1):
        if n % 3 == 0:
            assert isinstance(result, ValueError) and str(result) == f"job {n} fails after writing"
        else:
            assert result == n
    rows = await db.fetchall("SELECT rkey FROM record ORDER BY rkey")
    assert sorted(r for (r,) in rows) == sorted(f"r{n}" for n in range(1, 31) if n % 3)
    # the trigger from migration 2 fired once per surviving row, with the ';' in its literal intact
    assert await db.fetchone("SELECT count(*), min(note) FROM log") == (20, "inserted; r1")


async def test_constraints_and_foreign_keys_raise(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        await db.execute("INSERT INTO record VALUES ('did:plc:nobody', 'r', x'00')")
    with pytest.raises(sqlite3.IntegrityError, match="cannot store"):
        await db.execute("INSERT INTO account VALUES (x'00', 'h')")  # STRICT: a BLOB in a TEXT column
    assert await db.fetchall("SELECT * FROM record") == []


async def test_reads_are_consistent_snapshots_and_run_beside_writes(db: Database) -> None:
    await db.executemany(
        "INSERT INTO account VALUES (?, ?)", [(f"did:plc:{i}", f"u{i}.test") for i in range(100)]
    )
    gate = threading.Event()

    def slow_read(conn: sqlite3.Connection) -> tuple[int, int]:
        first = conn.execute("SELECT count(*) FROM account").fetchone()[0]
        gate.wait(5)
        second = conn.execute("SELECT count(*) FROM account").fetchone()[0]
        return first, second

    reader = asyncio.create_task(db.read(slow_read))
    await asyncio.sleep(0.05)
    await db.execute("INSERT INTO account VALUES ('did:plc:new', 'new.test')")  # not blocked by the reader
    gate.set()
    assert await reader == (100, 100), "one read sees one snapshot"
    assert await db.fetchone("SELECT count(*) FROM account") == (101,)


async def test_read_now_runs_on_the_calling_thread_and_sees_committed_writes(db: Database) -> None:
    await db.execute("INSERT INTO account VALUES ('did:plc:a', 'a.test')")
    seen: list[str] = []

    def lookup(conn: sqlite3.Connection) -> tuple[str, ...] | None:
        seen.append(threading.current_thread().name)
        return conn.execute("SELECT handle FROM account WHERE did = ?", ("did:plc:a",)).fetchone()

    assert db.read_now(lookup) == ("a.test",)
    assert seen == [threading.current_thread().name]
    await db.execute("UPDATE account SET handle = 'b.test' WHERE did = 'did:plc:a'")
    assert db.read_now(lookup) == ("b.test",), "each call is a fresh snapshot"
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        db.read_now(lambda c: c.execute("INSERT INTO log (note) VALUES ('x')"))
    assert db.read_now(lambda c: c.in_transaction) is True
    assert db.read_now(lookup) == ("b.test",), "a failed read leaves no transaction open"
    await db.close()
    with pytest.raises(RuntimeError, match="closed"):
        db.read_now(lookup)


async def test_migrations_are_versioned_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    async with Database(path) as db:
        assert await db.migrate(SCHEMA[:1]) == 1
        assert await db.user_version() == 1
        broken = [*SCHEMA, "CREATE TABLE ok_table (a INTEGER) STRICT; CREATE TABLE broken (;"]
        with pytest.raises(sqlite3.OperationalError):
            await db.migrate(broken)
        assert await db.user_version() == 2, "steps before the broken one stay applied"
        tables = {name for (name,) in await db.fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "ok_table" not in tables, "the broken step rolled back entirely"

        def python_step(conn: sqlite3.Connection) -> None:
            conn.execute("ALTER TABLE account ADD COLUMN created TEXT")

        assert await db.migrate([*SCHEMA, python_step]) == 3
    async with Database(path) as db:
        assert await db.migrate([*SCHEMA, python_step]) == 3, "re-running is a no-op"
        with pytest.raises(RuntimeError, match="newer than this code"):
            await db.migrate(SCHEMA)


async def test_close_finishes_queued_writes(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    db = Database(path)
    await db.migrate(["CREATE TABLE t (n INTEGER) STRICT"])
    pending = [asyncio.ensure_future(db.execute("INSERT INTO t VALUES (?)", (i,))) for i in range(200)]
    await asyncio.sleep(0)
    await db.close()
    await asyncio.gather(*pending)
    with pytest.raises(RuntimeError, match="closed"):
        await db.execute("INSERT INTO t VALUES (1)")
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (200,)
    conn.close()


@pytest.mark.parametrize("background", [True, False])
async def test_checkpoints_run_off_the_commit_path(tmp_path: Path, background: bool) -> None:
    path = tmp_path / "wal.sqlite"
    db = Database(path, background_checkpoint=background, checkpoint_every=2)
    try:
        await db.migrate(["CREATE TABLE t (n INTEGER, pad BLOB) STRICT"])
        autocheckpoint = await db.execute_write(
            lambda c: c.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        assert autocheckpoint == (0 if background else 1000)
        for i in range(40):  # ~200 KB: far below SQLite's own 1000-page trigger
            await db.execute("INSERT INTO t VALUES (?, ?)", (i, os.urandom(5000)))
        deadline = asyncio.get_running_loop().time() + 5
        while path.stat().st_size < 150_000 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        if background:
            assert path.stat().st_size >= 150_000, "the checkpoint thread copied the WAL into the database"
        else:
            assert path.stat().st_size < 150_000, "without it, the pages wait in the WAL for SQLite's trigger"
        assert await db.fetchone("SELECT count(*) FROM t") == (40,)
    finally:
        await db.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*), sum(n) FROM t").fetchone() == (40, sum(range(40)))
    conn.close()


def test_rejects_memory_databases_and_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Database(":memory:")
    with pytest.raises(ValueError):
        Database(tmp_path / "x.sqlite", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(sqlite3.OperationalError):
        Database(tmp_path / "missing-dir" / "x.sqlite")


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from atstack.storage import Database

    async def main(path, mode):
        db = Database(path, synchronous=mode)
        await db.migrate(["CREATE TABLE acked (writer INTEGER, n INTEGER, pad BLOB, PRIMARY KEY (writer, n)) STRICT"])
        print("ready", flush=True)

        async def writer(w):
            n = 0
            while True:
                await db.execute("INSERT INTO acked VALUES (?, ?, randomblob(500))", (w, n))
                print(w, n, flush=True)  # printed only after the commit returned: an acknowledged write
                n += 1

        await asyncio.gather(*(writer(w) for w in range(8)))

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


@pytest.mark.parametrize("mode", ["FULL", "NORMAL"])
async def test_acknowledged_writes_survive_sigkill(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "kill.sqlite"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(path), mode, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    acked: set[tuple[int, int]] = set()
    try:
        assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"ready"
        while len(acked) < 2000:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            w, n = line.split()
            acked.add((int(w), int(n)))
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: eight writers have commits in flight
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        # Acknowledged before the kill, still in the pipe. The kill may land mid-print: the text after the
        # last newline is a torn line, whose write is not counted.
        for line in (await proc.stdout.read()).split(b"\n")[:-1]:
            if line.strip():
                w, n = line.split()
                acked.add((int(w), int(n)))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = set(conn.execute("SELECT writer, n FROM acked"))
    finally:
        conn.close()
    missing = acked - stored
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {sorted(missing)[:5]}"
    assert len(acked) >= 2000
    # every writer's rows form a prefix: nothing after a lost write either
    for w in range(8):
        ns = sorted(n for writer, n in stored if writer == w)
        assert ns == list(range(len(ns)))
