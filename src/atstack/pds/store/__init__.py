"""All of the PDS's SQL, one module per concern; nothing outside this package writes SQL.

Storage layout (one decision for the whole service):

* ONE SQLite database, ``<data_dir>/pds.sqlite``, opened through :class:`atstack.storage.sqlite.Database`:
  WAL, ``synchronous=FULL``, a single writer thread with group commit, reader threads on snapshots.
* Per-account tables (``repo_block``, ``record``, ``record_blob``, ``blob``, ``app_password``,
  ``account_pref``, …) are ``WITHOUT ROWID`` tables whose primary key starts with the DID, so each
  account's blocks and records cluster together on disk.
* A repo write and its sequencer event are committed in the SAME transaction (:mod:`.repo` +
  :mod:`.sequencer`): the event is persisted exactly when the commit is, and a crash can never leave one
  without the other. The frame is published to the firehose only after that transaction has committed.
* Blobs are files under ``<data_dir>/blobs/`` (content-addressed paths; uploads land in ``blobs/tmp/``,
  written with fsync and renamed into place) — see :mod:`atstack.pds.blobstore`; their metadata and the
  record → blob references are rows here (:mod:`.blobs`), updated in the record write's transaction.

Every function takes an ``sqlite3.Connection`` and runs inside the caller's transaction (``db.read`` or
``db.execute_write``), so handlers compose several of them atomically. Modules: :mod:`.schema` (migrations),
:mod:`.accounts`, :mod:`.sessions` (refresh tokens, email tokens), :mod:`.app_passwords`, :mod:`.invites`,
:mod:`.repo` (repo root, blocks, records index), :mod:`.blobs` (blob metadata, record → blob refs),
:mod:`.sequencer` (the event log), :mod:`.preferences`, :mod:`.mail` (outbox).
"""

from __future__ import annotations

import time

from atstack.pds.store.schema import MIGRATIONS

__all__ = ["MIGRATIONS", "iso_time"]


def iso_time(seconds: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.sssZ`` (UTC, milliseconds): how every timestamp is stored and emitted."""
    whole = int(seconds)
    millis = round((seconds - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"
