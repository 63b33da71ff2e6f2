"""One ingest batch, written in a single transaction: new events, changed accounts, advanced cursors.

Rows go in as multi-row ``INSERT … VALUES (…), (…), …`` statements of up to :data:`ROWS_PER_STATEMENT`
rows rather than ``executemany``: the sqlite3 module releases the GIL around every statement step, and a
writer thread that has to win the GIL back once per row from a busy event loop waits up to the
interpreter's switch interval each time — measured, that made a 700-event batch take 240 ms instead of a
few.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from atstack.relay.store import accounts, events, hosts

__all__ = ["Batch", "write_batch"]


@dataclass(slots=True)
class Batch:
    events: list[tuple[int, int, str, bytes]] = field(default_factory=list)  # (seq, time_us, did, frame)
    accounts: list[tuple] = field(default_factory=list)  # full account rows
    collection_deltas: dict[tuple[str, str], int] = field(default_factory=dict)
    collection_replacements: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    cursors: list[tuple[int, int]] = field(default_factory=list)  # (host_id, upstream seq)
    state_seq: int | None = None  # a checkpoint: the account tables now reflect every event up to this seq

    def __bool__(self) -> bool:
        return bool(
            self.events
            or self.accounts
            or self.collection_deltas
            or self.collection_replacements
            or self.cursors
            or self.state_seq is not None
        )


def write_batch(conn: sqlite3.Connection, batch: Batch) -> None:
    events.append_events(conn, batch.events)
    accounts.upsert_accounts(conn, batch.accounts)
    # replacements (resyncs) first: the deltas in the same batch come from commits accepted after them
    for did, counts in batch.collection_replacements:
        accounts.replace_collections(conn, did, counts)
    accounts.apply_collection_deltas(conn, batch.collection_deltas)
    hosts.set_cursors(conn, batch.cursors)
    if batch.state_seq is not None:
        events.set_state_seq(conn, batch.state_seq)
