"""The output log: every frame we send on ``subscribeRepos``, keyed by our ``seq``, with its time.

``event.seq`` is the rowid, so the table is clustered by seq: replay is a range scan and retention is a range
delete from the front. ``meta.last_seq`` remembers the highest seq ever assigned, so a seq is never reused
even when every event has been trimmed; ``meta.state_seq`` the last seq whose effects the account tables hold.
"""

from __future__ import annotations

import sqlite3

__all__ = [
    "ROWS_PER_STATEMENT",
    "append_events",
    "delete_through",
    "first_seq_at_or_after",
    "insert_rows",
    "last_assigned_seq",
    "oldest_seq",
    "read_after",
    "read_dids_after",
    "set_state_seq",
    "state_seq",
]


ROWS_PER_STATEMENT = 2_000


def insert_rows(conn: sqlite3.Connection, head: str, width: int, rows: list[tuple], tail: str = "") -> None:
    """``head`` + ``VALUES (?, …), (?, …) …`` + ``tail`` for ``rows`` of ``width`` columns, in chunks: one
    statement step per chunk instead of one per row (see :mod:`atstack.relay.store.batch`)."""
    one = "(" + ",".join("?" * width) + ")"
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        sql = f"{head} VALUES {','.join([one] * len(chunk))} {tail}"
        conn.execute(sql, [value for row in chunk for value in row])


def append_events(conn: sqlite3.Connection, rows: list[tuple[int, int, str, bytes]]) -> None:
    """``(seq, time_us, did, frame)`` rows, ascending seq; also records the highest seq assigned."""
    if not rows:
        return
    insert_rows(conn, "INSERT INTO event (seq, time_us, did, frame)", 4, rows)
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('last_seq', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
        (rows[-1][0],),
    )


def state_seq(conn: sqlite3.Connection) -> int | None:
    """The seq through which the account tables are current (see :mod:`atstack.relay.sequencer`); None
    for a log written before checkpoints existed."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'state_seq'").fetchone()
    return row[0] if row else None


def set_state_seq(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('state_seq', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (seq,),
    )


def read_dids_after(conn: sqlite3.Connection, cursor: int, limit: int) -> list[tuple[int, str, bytes]]:
    return conn.execute(
        "SELECT seq, did, frame FROM event WHERE seq > ? ORDER BY seq LIMIT ?", (cursor, limit)
    ).fetchall()


def last_assigned_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
    newest = conn.execute("SELECT max(seq) FROM event").fetchone()[0]
    return max(row[0] if row else 0, newest or 0)


def oldest_seq(conn: sqlite3.Connection) -> int | None:
    return conn.execute("SELECT min(seq) FROM event").fetchone()[0]


def read_after(conn: sqlite3.Connection, cursor: int, limit: int) -> list[tuple[int, bytes]]:
    return conn.execute(
        "SELECT seq, frame FROM event WHERE seq > ? ORDER BY seq LIMIT ?", (cursor, limit)
    ).fetchall()


def first_seq_at_or_after(conn: sqlite3.Connection, time_us: int) -> int | None:
    """The first seq whose time is ≥ ``time_us``. Times never decrease along seq, so this bisects on seq
    with primary-key probes instead of needing an index on time."""
    lo = conn.execute("SELECT min(seq) FROM event").fetchone()[0]
    hi = conn.execute("SELECT max(seq) FROM event").fetchone()[0]
    if lo is None:
        return None
    probe = "SELECT seq, time_us FROM event WHERE seq >= ? ORDER BY seq LIMIT 1"
    if conn.execute(probe, (hi,)).fetchone()[1] < time_us:
        return None
    # invariant: the answer is in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        seq, at = conn.execute(probe, (mid,)).fetchone()
        if at >= time_us:
            hi = seq
        else:
            lo = seq + 1
    return lo


def delete_through(conn: sqlite3.Connection, seq: int, limit: int) -> int:
    """Delete up to ``limit`` of the oldest events with seq ≤ ``seq``; returns how many went."""
    lo = conn.execute("SELECT min(seq) FROM event").fetchone()[0]
    if lo is None:
        return 0
    upto = min(seq, lo + limit - 1)
    return conn.execute("DELETE FROM event WHERE seq <= ?", (upto,)).rowcount
