"""The relay database schema: migrations applied in order by ``Database.migrate`` (item *i* → version *i+1*).

Add a migration at the end to change the schema; never edit one that has shipped. CIDs are stored in binary
form; times as Unix microseconds (events) or RFC 3339 strings (hosts, accounts).
"""

from __future__ import annotations

__all__ = ["MIGRATIONS"]

_V1 = """
CREATE TABLE host (
    id INTEGER PRIMARY KEY,
    hostname TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'active',
    last_seq INTEGER,
    account_limit INTEGER,
    events_per_second REAL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE account (
    did TEXT PRIMARY KEY,
    host_id INTEGER,
    status TEXT,
    upstream_status TEXT,
    rev TEXT,
    commit_cid BLOB,
    data_cid BLOB,
    desynchronized INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX account_host ON account (host_id);

CREATE TABLE repo_collection (
    collection TEXT NOT NULL,
    did TEXT NOT NULL,
    records INTEGER NOT NULL,
    PRIMARY KEY (collection, did)
) STRICT, WITHOUT ROWID;
CREATE INDEX repo_collection_did ON repo_collection (did);

CREATE TABLE event (
    seq INTEGER PRIMARY KEY,
    time_us INTEGER NOT NULL,
    did TEXT NOT NULL,
    frame BLOB NOT NULL
) STRICT;

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
"""

MIGRATIONS: list[str] = [_V1]
