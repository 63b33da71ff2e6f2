"""The PDS database schema: migrations applied in order by ``Database.migrate`` (item *i* → version *i+1*).

Add a new migration at the end to change the schema; never edit one that has shipped. Per-account tables
are ``WITHOUT ROWID`` with the DID first in the primary key, so one account's rows sit together in the
B-tree (a repo export or an account deletion is one range). CIDs are stored as their binary form (36 bytes
for a blessed CID); times as RFC 3339 strings (``YYYY-MM-DDTHH:MM:SS.sssZ``), which sort as text.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

_V1 = """
CREATE TABLE account (
    did TEXT PRIMARY KEY,
    handle TEXT UNIQUE,
    email TEXT UNIQUE COLLATE NOCASE,
    email_confirmed_at TEXT,
    password_scrypt TEXT,
    created_at TEXT NOT NULL,
    status TEXT,
    takedown_ref TEXT,
    deactivated_at TEXT,
    delete_after TEXT,
    invites_disabled INTEGER NOT NULL DEFAULT 0,
    signing_key BLOB NOT NULL,
    signing_curve TEXT NOT NULL DEFAULT 'k256',
    rotation_key BLOB
) STRICT, WITHOUT ROWID;

CREATE TABLE repo_root (
    did TEXT PRIMARY KEY,
    cid BLOB NOT NULL,
    rev TEXT NOT NULL,
    indexed_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE repo_block (
    did TEXT NOT NULL,
    cid BLOB NOT NULL,
    rev TEXT NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (did, cid)
) STRICT, WITHOUT ROWID;
CREATE INDEX repo_block_rev ON repo_block (did, rev);

CREATE TABLE record (
    did TEXT NOT NULL,
    collection TEXT NOT NULL,
    rkey TEXT NOT NULL,
    cid BLOB NOT NULL,
    rev TEXT NOT NULL,
    indexed_at TEXT NOT NULL,
    takedown_ref TEXT,
    PRIMARY KEY (did, collection, rkey)
) STRICT, WITHOUT ROWID;
CREATE INDEX record_cid ON record (did, cid);
CREATE INDEX record_collection ON record (collection, did);

CREATE TABLE record_blob (
    did TEXT NOT NULL,
    blob_cid BLOB NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (did, blob_cid, path)
) STRICT, WITHOUT ROWID;
CREATE INDEX record_blob_path ON record_blob (did, path);

CREATE TABLE blob (
    did TEXT NOT NULL,
    cid BLOB NOT NULL,
    mime_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    temp_key TEXT,
    created_at TEXT NOT NULL,
    takedown_ref TEXT,
    PRIMARY KEY (did, cid)
) STRICT, WITHOUT ROWID;
CREATE INDEX blob_temp ON blob (created_at) WHERE temp_key IS NOT NULL;

CREATE TABLE refresh_token (
    id TEXT PRIMARY KEY,
    did TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    app_password_name TEXT,
    next_id TEXT
) STRICT, WITHOUT ROWID;
CREATE INDEX refresh_token_did ON refresh_token (did);

CREATE TABLE app_password (
    did TEXT NOT NULL,
    name TEXT NOT NULL,
    password_scrypt TEXT NOT NULL,
    created_at TEXT NOT NULL,
    privileged INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (did, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE invite_code (
    code TEXT PRIMARY KEY,
    available_uses INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    for_account TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX invite_code_for_account ON invite_code (for_account);

CREATE TABLE invite_code_use (
    code TEXT NOT NULL,
    used_by TEXT NOT NULL,
    used_at TEXT NOT NULL,
    PRIMARY KEY (code, used_by)
) STRICT, WITHOUT ROWID;

CREATE TABLE email_token (
    did TEXT NOT NULL,
    purpose TEXT NOT NULL,
    token TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    PRIMARY KEY (did, purpose)
) STRICT, WITHOUT ROWID;

CREATE TABLE mail_outbox (
    id INTEGER PRIMARY KEY,
    did TEXT,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT
) STRICT;

CREATE TABLE account_pref (
    did TEXT NOT NULL,
    name TEXT NOT NULL,
    value_json TEXT NOT NULL,
    PRIMARY KEY (did, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE repo_seq (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    did TEXT NOT NULL,
    event_type TEXT NOT NULL,
    frame BLOB NOT NULL,
    sequenced_at TEXT NOT NULL
) STRICT;
CREATE INDEX repo_seq_did ON repo_seq (did, seq);
"""

MIGRATIONS: list[str] = [_V1]
