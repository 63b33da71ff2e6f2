"""The mail outbox: messages the PDS would send (account deletion tokens, confirmations, …).

Mail delivery is outside the PDS process: an operator's mailer (or a test) reads unsent rows and marks them
sent. Writing the message in the same transaction as the token it carries means a token is never issued
without its message, and vice versa.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = ["Mail", "enqueue_mail", "mark_sent", "unsent_mail"]


@dataclass(frozen=True, slots=True)
class Mail:
    id: int
    did: str | None
    recipient: str
    subject: str
    body: str
    created_at: str


def enqueue_mail(
    conn: sqlite3.Connection, did: str | None, recipient: str, subject: str, body: str, now: str
) -> int:
    cur = conn.execute(
        "INSERT INTO mail_outbox (did, recipient, subject, body, created_at) VALUES (?, ?, ?, ?, ?)",
        (did, recipient, subject, body, now),
    )
    return int(cur.lastrowid or 0)


def unsent_mail(conn: sqlite3.Connection, limit: int = 100) -> list[Mail]:
    rows = conn.execute(
        "SELECT id, did, recipient, subject, body, created_at FROM mail_outbox WHERE sent_at IS NULL "
        "ORDER BY id LIMIT ?",
        (limit,),
    )
    return [Mail(*r) for r in rows]


def mark_sent(conn: sqlite3.Connection, mail_id: int, now: str) -> None:
    conn.execute("UPDATE mail_outbox SET sent_at = ? WHERE id = ?", (now, mail_id))
