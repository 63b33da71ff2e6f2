"""The sequencer's event log: every ``subscribeRepos`` frame, pre-encoded, keyed by its ``seq``.

``repo_seq.seq`` is ``INTEGER PRIMARY KEY AUTOINCREMENT``: a seq is never reused, even after old events
are trimmed. :func:`append_event` reads the next seq, asks the caller to build the frame for it (the
frame embeds its own seq and time) and inserts the row — inside the caller's transaction, so an event is
committed together with the change it describes, and a rolled-back change leaves no event and no gap.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

__all__ = [
    "append_event",
    "delete_account_events",
    "delete_events_before",
    "latest_seq",
    "oldest_seq",
    "read_after",
]


def _next_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'repo_seq'").fetchone()
    return (row[0] if row is not None else 0) + 1


def append_event(
    conn: sqlite3.Connection, did: str, event_type: str, now: str, build: Callable[[int], bytes]
) -> tuple[int, bytes]:
    """Insert the frame ``build(seq)`` as the next event; returns ``(seq, frame)``."""
    seq = _next_seq(conn)
    frame = build(seq)
    conn.execute(
        "INSERT INTO repo_seq (seq, did, event_type, frame, sequenced_at) VALUES (?, ?, ?, ?, ?)",
        (seq, did, event_type, frame, now),
    )
    return seq, frame


def read_after(conn: sqlite3.Connection, cursor: int, limit: int) -> list[tuple[int, bytes]]:
    return conn.execute(
        "SELECT seq, frame FROM repo_seq WHERE seq > ? ORDER BY seq LIMIT ?", (cursor, limit)
    ).fetchall()


def latest_seq(conn: sqlite3.Connection) -> int | None:
    """The last seq ever assigned (kept by SQLite even when the newest events were trimmed)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'repo_seq'").fetchone()
    return row[0] if row is not None and row[0] else None


def oldest_seq(conn: sqlite3.Connection) -> int | None:
    return conn.execute("SELECT min(seq) FROM repo_seq").fetchone()[0]


def delete_events_before(conn: sqlite3.Connection, sequenced_before: str, limit: int = 10_000) -> int:
    """Trim events older than a timestamp (retention), at most ``limit`` per call."""
    return conn.execute(
        "DELETE FROM repo_seq WHERE seq IN (SELECT seq FROM repo_seq WHERE sequenced_at < ? ORDER BY seq LIMIT ?)",
        (sequenced_before, limit),
    ).rowcount


def delete_account_events(conn: sqlite3.Connection, did: str, keep_seq: int) -> int:
    """Drop an account's events except ``keep_seq`` (its ``#account`` deleted event), as the reference does
    on account deletion: a deleted account's content is not replayed to new subscribers."""
    return conn.execute("DELETE FROM repo_seq WHERE did = ? AND seq != ?", (did, keep_seq)).rowcount
