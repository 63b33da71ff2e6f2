"""Accounts: identity, credentials, keys and hosting status of each hosted DID.

Status (checklist §10): ``status`` NULL means active; otherwise ``deactivated``, ``takendown`` or
``suspended`` (inactive). A deleted account has no row at all (its ``#account`` event says ``deleted``).
The account's repo signing key and, for did:plc accounts, the PDS-held rotation key are stored as raw
32-byte secrets (encryption at rest is out of scope; the database file is the PDS's secret store).
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass
from typing import Any

from atstack.core.crypto import PrivateKey

__all__ = [
    "INACTIVE_STATUSES",
    "Account",
    "delete_account_rows",
    "get_account",
    "get_by_email",
    "get_by_handle",
    "get_by_identifier",
    "insert_account",
    "list_accounts_after",
    "set_email",
    "set_handle",
    "set_password",
    "set_status",
    "set_takedown",
]

INACTIVE_STATUSES = frozenset(("deactivated", "takendown", "suspended", "deleted"))

_COLUMNS = (
    "did, handle, email, email_confirmed_at, password_scrypt, created_at, status, takedown_ref, "
    "deactivated_at, delete_after, invites_disabled, signing_key, signing_curve, rotation_key"
)


@dataclass(frozen=True, slots=True)
class Account:
    did: str
    handle: str | None
    email: str | None
    email_confirmed_at: str | None
    password_scrypt: str | None
    created_at: str
    status: str | None
    takedown_ref: str | None
    deactivated_at: str | None
    delete_after: str | None
    invites_disabled: bool
    signing_key_bytes: bytes
    signing_curve: str
    rotation_key_bytes: bytes | None

    @property
    def active(self) -> bool:
        return self.status is None

    @property
    def signing_key(self) -> PrivateKey:
        return _private_key(self.signing_curve, self.signing_key_bytes)

    @property
    def rotation_key(self) -> PrivateKey | None:
        if self.rotation_key_bytes is None:
            return None
        return _private_key("k256", self.rotation_key_bytes)


@functools.lru_cache(maxsize=4096)
def _private_key(curve: str, secret: bytes) -> PrivateKey:
    # Parsing derives the public point (~0.3 ms); a repo write needs the key every time.
    return PrivateKey(curve, secret)  # type: ignore[arg-type]


def _account(row: tuple[Any, ...] | None) -> Account | None:
    if row is None:
        return None
    return Account(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], bool(row[10]),
        row[11], row[12], row[13],
    )  # fmt: skip


def insert_account(
    conn: sqlite3.Connection,
    *,
    did: str,
    handle: str | None,
    email: str | None,
    password_scrypt: str | None,
    created_at: str,
    signing_key: PrivateKey,
    rotation_key: PrivateKey | None,
    status: str | None = None,
    deactivated_at: str | None = None,
) -> None:
    """Insert a new account; raises ``sqlite3.IntegrityError`` if the DID, handle or email is taken."""
    conn.execute(
        f"INSERT INTO account ({_COLUMNS}) VALUES (?, ?, ?, NULL, ?, ?, ?, NULL, ?, NULL, 0, ?, ?, ?)",
        (
            did,
            handle,
            email,
            password_scrypt,
            created_at,
            status,
            deactivated_at,
            signing_key.to_bytes(),
            signing_key.curve,
            rotation_key.to_bytes() if rotation_key is not None else None,
        ),
    )


def get_account(conn: sqlite3.Connection, did: str) -> Account | None:
    return _account(conn.execute(f"SELECT {_COLUMNS} FROM account WHERE did = ?", (did,)).fetchone())


def get_by_handle(conn: sqlite3.Connection, handle: str) -> Account | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM account WHERE handle = ?", (handle.lower(),)).fetchone()
    return _account(row)


def get_by_email(conn: sqlite3.Connection, email: str) -> Account | None:
    return _account(conn.execute(f"SELECT {_COLUMNS} FROM account WHERE email = ?", (email,)).fetchone())


def get_by_identifier(conn: sqlite3.Connection, identifier: str) -> Account | None:
    """A login identifier: a DID, an email address or a handle."""
    if identifier.startswith("did:"):
        return get_account(conn, identifier)
    if "@" in identifier:
        return get_by_email(conn, identifier)
    return get_by_handle(conn, identifier)


def set_status(
    conn: sqlite3.Connection,
    did: str,
    status: str | None,
    *,
    deactivated_at: str | None = None,
    delete_after: str | None = None,
) -> bool:
    cur = conn.execute(
        "UPDATE account SET status = ?, deactivated_at = ?, delete_after = ? WHERE did = ?",
        (status, deactivated_at, delete_after, did),
    )
    return cur.rowcount > 0


def set_takedown(conn: sqlite3.Connection, did: str, takedown_ref: str | None) -> bool:
    """Take down (``takedown_ref`` set) or restore an account; status follows.

    A takedown leaves ``deactivated_at`` alone, so restoring one puts the account back where it was:
    ``deactivated`` if its owner (or the admin) had deactivated it, else active.
    """
    cur = conn.execute(
        "UPDATE account SET takedown_ref = ?1, status = CASE WHEN ?1 IS NOT NULL THEN 'takendown' "
        "WHEN deactivated_at IS NOT NULL THEN 'deactivated' ELSE NULL END WHERE did = ?2",
        (takedown_ref, did),
    )
    return cur.rowcount > 0


def set_handle(conn: sqlite3.Connection, did: str, handle: str | None) -> bool:
    cur = conn.execute("UPDATE account SET handle = ? WHERE did = ?", (handle, did))
    return cur.rowcount > 0


def set_email(conn: sqlite3.Connection, did: str, email: str | None, confirmed_at: str | None = None) -> bool:
    cur = conn.execute(
        "UPDATE account SET email = ?, email_confirmed_at = ? WHERE did = ?", (email, confirmed_at, did)
    )
    return cur.rowcount > 0


def set_password(conn: sqlite3.Connection, did: str, password_scrypt: str) -> bool:
    cur = conn.execute("UPDATE account SET password_scrypt = ? WHERE did = ?", (password_scrypt, did))
    return cur.rowcount > 0


def list_accounts_after(
    conn: sqlite3.Connection, cursor: str | None, limit: int
) -> list[tuple[Account, bytes | None, str | None]]:
    """Accounts in DID order after ``cursor`` with their repo head ``(commit cid bytes, rev)``."""
    rows = conn.execute(
        f"SELECT {', '.join('a.' + c.strip() for c in _COLUMNS.split(','))}, r.cid, r.rev "
        "FROM account a LEFT JOIN repo_root r ON r.did = a.did WHERE a.did > ? ORDER BY a.did LIMIT ?",
        (cursor or "", limit),
    ).fetchall()
    out: list[tuple[Account, bytes | None, str | None]] = []
    for row in rows:
        account = _account(row[:14])
        assert account is not None
        out.append((account, row[14], row[15]))
    return out


# every per-account table; the sequencer's events stay (they are the public history)
_ACCOUNT_TABLES = (
    "repo_root",
    "repo_block",
    "record",
    "record_blob",
    "blob",
    "refresh_token",
    "app_password",
    "email_token",
    "account_pref",
)


def delete_account_rows(conn: sqlite3.Connection, did: str) -> None:
    """Remove the account and everything stored for it (blob files are the caller's to delete)."""
    for table in _ACCOUNT_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE did = ?", (did,))
    conn.execute("DELETE FROM invite_code_use WHERE used_by = ?", (did,))
    conn.execute("UPDATE invite_code SET disabled = 1 WHERE for_account = ?", (did,))
    conn.execute("DELETE FROM account WHERE did = ?", (did,))
