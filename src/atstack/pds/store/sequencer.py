"""The sequencer's event log: every ``subscribeRepos`` frame, pre-encoded, keyed by its ``seq``.

``repo_seq.seq`` is ``INTEGER PRIMARY KEY AUTOINCREMENT``: a seq is never reused, even after old events
are trimmed. :func:`append_event` reads the next seq, asks the caller to build the frame for it (the
frame embeds its own seq and time) and inserts the row — inside the caller's transaction, so an event is
committed together with the change it describes, and a rolled-back change leaves no event and no gap.
Retention trims the oldest events by time (:func:`first_seq_since`, :func:`delete_events_below`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

__all__ = [
    "append_event",
    "delete_account_events",
    "delete_events_below",
    "first_seq_since",
    "latest_seq",
    "newest_seq",
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


def first_seq_since(conn: sqlite3.Connection, sequenced_at: str) -> int | None:
    """The lowest seq sequenced at or after ``sequenced_at`` (None: every event is older).

    Walks the log in seq order from its start and stops at the first recent event, so the cost is the
    number of older events: the ones a retention trim is about to delete.
    """
    row = conn.execute(
        "SELECT seq FROM repo_seq WHERE sequenced_at >= ? ORDER BY seq LIMIT 1", (sequenced_at,)
    ).fetchone()
    return row[0] if row is not None else None


def newest_seq(conn: sqlite3.Connection) -> int | None:
    """The highest seq still in the log (None when it is empty)."""
    return conn.execute("SELECT max(seq) FROM repo_seq").fetchone()[0]


def delete_events_below(conn: sqlite3.Connection, seq: int, limit: int = 10_000) -> int:
    """Delete up to ``limit`` of the oldest events with a seq below ``seq`` (retention); returns how many."""
    return conn.execute(
        "DELETE FROM repo_seq WHERE seq IN (SELECT seq FROM repo_seq WHERE seq < ? ORDER BY seq LIMIT ?)",
        (seq, limit),
    ).rowcount


def delete_account_events(conn: sqlite3.Connection, did: str, keep_seq: int) -> int:
    """Drop an account's events except ``keep_seq`` (its ``#account`` deleted event), as the reference does
    on account deletion: a deleted account's content is not replayed to new subscribers."""
    return conn.execute("DELETE FROM repo_seq WHERE did = ? AND seq != ?", (did, keep_seq)).rowcount
