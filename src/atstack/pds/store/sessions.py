"""Refresh tokens (session rotation) and single-use email tokens.

A refresh token's ``id`` is the JWT's ``jti``. Refreshing rotates: the old row gets ``next_id`` and a short
grace expiry (so a client retrying a refresh whose answer was lost gets the same next token), the new row is
inserted. ``app_password_name`` ties a session to the app password it was opened with, so revoking the app
password ends those sessions. Expiry times are Unix seconds.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = [
    "RefreshToken",
    "delete_email_token",
    "delete_expired_refresh_tokens",
    "get_email_token",
    "get_refresh_token",
    "insert_refresh_token",
    "put_email_token",
    "revoke_app_password_tokens",
    "revoke_refresh_token",
    "revoke_refresh_tokens_for",
    "rotate_refresh_token",
]


@dataclass(frozen=True, slots=True)
class RefreshToken:
    id: str
    did: str
    expires_at: int
    app_password_name: str | None
    next_id: str | None


def insert_refresh_token(
    conn: sqlite3.Connection, token_id: str, did: str, expires_at: int, app_password_name: str | None
) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO refresh_token (id, did, expires_at, app_password_name) VALUES (?, ?, ?, ?)",
        (token_id, did, expires_at, app_password_name),
    )


def get_refresh_token(conn: sqlite3.Connection, token_id: str) -> RefreshToken | None:
    row = conn.execute(
        "SELECT id, did, expires_at, app_password_name, next_id FROM refresh_token WHERE id = ?", (token_id,)
    ).fetchone()
    return RefreshToken(*row) if row is not None else None


def rotate_refresh_token(
    conn: sqlite3.Connection, token_id: str, next_id: str, grace_expires_at: int
) -> bool:
    """Point ``token_id`` at its successor; False if it already rotated to a different successor."""
    cur = conn.execute(
        "UPDATE refresh_token SET next_id = ?, expires_at = min(expires_at, ?) "
        "WHERE id = ? AND (next_id IS NULL OR next_id = ?)",
        (next_id, grace_expires_at, token_id, next_id),
    )
    return cur.rowcount > 0


def revoke_refresh_token(conn: sqlite3.Connection, token_id: str) -> bool:
    return conn.execute("DELETE FROM refresh_token WHERE id = ?", (token_id,)).rowcount > 0


def revoke_refresh_tokens_for(conn: sqlite3.Connection, did: str) -> int:
    return conn.execute("DELETE FROM refresh_token WHERE did = ?", (did,)).rowcount


def revoke_app_password_tokens(conn: sqlite3.Connection, did: str, name: str) -> int:
    return conn.execute(
        "DELETE FROM refresh_token WHERE did = ? AND app_password_name = ?", (did, name)
    ).rowcount


def delete_expired_refresh_tokens(conn: sqlite3.Connection, did: str, now: int) -> int:
    return conn.execute("DELETE FROM refresh_token WHERE did = ? AND expires_at <= ?", (did, now)).rowcount


# --- email tokens (account deletion, email confirmation, PLC operations, password reset) ---------------


def put_email_token(conn: sqlite3.Connection, did: str, purpose: str, token: str, requested_at: str) -> None:
    """Store the account's token for ``purpose``, replacing an earlier one."""
    conn.execute(
        "INSERT INTO email_token (did, purpose, token, requested_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (did, purpose) DO UPDATE SET token = excluded.token, requested_at = excluded.requested_at",
        (did, purpose, token, requested_at),
    )


def get_email_token(conn: sqlite3.Connection, did: str, purpose: str) -> tuple[str, str] | None:
    """``(token, requested_at)`` or None."""
    row = conn.execute(
        "SELECT token, requested_at FROM email_token WHERE did = ? AND purpose = ?", (did, purpose)
    ).fetchone()
    return (row[0], row[1]) if row is not None else None


def delete_email_token(conn: sqlite3.Connection, did: str, purpose: str) -> None:
    conn.execute("DELETE FROM email_token WHERE did = ? AND purpose = ?", (did, purpose))
