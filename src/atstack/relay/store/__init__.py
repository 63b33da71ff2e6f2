"""All of the relay's SQL; nothing outside this package writes SQL.

Storage layout: ONE SQLite database, ``<data_dir>/relay.sqlite``, through
:class:`atstack.storage.sqlite.Database` (WAL, one writer thread with group commit, reader threads).

* :mod:`.schema` — migrations;
* :mod:`.hosts` — upstream hosts: status, limits and the persisted upstream cursor (``last_seq``);
* :mod:`.accounts` — per-DID state: hosting host, statuses, the last accepted ``rev``/commit/``data``, and
  record counts per collection (``listReposByCollection``);
* :mod:`.events` — the output log: every re-sequenced frame, keyed by our ``seq``, with its time.

The ingest path writes one transaction per batch (:func:`write_batch`): the batch's new events, the account
rows they changed and the upstream cursors they advanced, together. So after a crash the log, the account
state and the cursors agree: the relay resumes each host right after the last event it persisted.
"""

from __future__ import annotations

import time

from atstack.relay.store.batch import Batch, write_batch
from atstack.relay.store.schema import MIGRATIONS

__all__ = ["MIGRATIONS", "Batch", "iso_time", "write_batch"]


def iso_time(seconds: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.sssZ`` (UTC, milliseconds)."""
    whole = int(seconds)
    millis = round((seconds - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"
