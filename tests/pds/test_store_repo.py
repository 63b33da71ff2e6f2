"""The records index of :mod:`atstack.pds.store.repo` on a bare SQLite connection with the PDS schema:
which CIDs records still use is asked in one statement per chunk of CIDs, not one per CID."""

from __future__ import annotations

import math
import sqlite3

from atstack.core.cid import cid_for_raw
from atstack.pds.store import MIGRATIONS
from atstack.pds.store import repo as repo_store

ALICE = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"
BOB = "did:plc:bbbbbbbbbbbbbbbbbbbbbbbb"


def test_record_cids_in_use_asks_per_chunk() -> None:
    conn = sqlite3.connect(":memory:")
    for migration in MIGRATIONS:
        conn.executescript(migration)
    cids = [cid_for_raw(i.to_bytes(4, "big")) for i in range(1200)]
    now = "2025-01-01T00:00:00.000Z"
    # alice's records use every third CID (one of them under two paths); bob's use others
    repo_store.put_records(conn, ALICE, "3l", now, [("c.x", f"r{i}", cids[i]) for i in range(0, 1200, 3)])
    repo_store.put_records(conn, ALICE, "3l", now, [("c.y", "dup", cids[0])])
    repo_store.put_records(conn, BOB, "3l", now, [("c.x", f"r{i}", cids[i]) for i in range(1, 1200, 3)])
    asked = cids + cids[:10]  # duplicates are asked once
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    used = repo_store.record_cids_in_use(conn, ALICE, asked)
    conn.set_trace_callback(None)
    assert used == set(cids[0::3]) and len(used) == 400
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 3, "one query per chunk of CIDs, not one per CID"
    assert math.ceil(len(cids) / repo_store._IN_CHUNK) == 3
    assert repo_store.record_cids_in_use(conn, BOB, cids[:2]) == {cids[1]}
    assert repo_store.record_cids_in_use(conn, ALICE, []) == set()
