"""Rolling repo heads and record counts forward from the output log after an unclean stop.

Commits' new heads (``rev``, commit and data CIDs) and record-count deltas are written only at the
sequencer's checkpoints (see :mod:`atstack.relay.sequencer`); the events accepted after the last checkpoint
are on disk in the output log, so on start each ``#commit`` and ``#sync`` logged after ``meta.state_seq`` is
read back — our own, already validated frames — and its effects applied again: the head moves forward when the
logged ``rev`` is newer than the row's (a row written at once, e.g. for a status change, may be newer), and
every commit's create/delete ops count again (counts are only ever written at checkpoints).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from atstack.core.car import read_car_raw
from atstack.core.cid import CID
from atstack.core.commit import decode_commit
from atstack.core.repo_op import RepoOp
from atstack.core.stream import CommitEvent, SyncEvent, decode_event
from atstack.relay.sequencer import Sequencer
from atstack.relay.state import Account
from atstack.relay.store import accounts as account_store
from atstack.storage.sqlite import Database

__all__ = ["roll_forward"]

log = logging.getLogger("atstack.relay.replay")


@dataclass(slots=True)
class _Head:
    rev: str
    commit: CID
    data: CID
    ops: list[RepoOp]  # a #commit's (whose record counts change), none for a #sync


def _head_of(frame: bytes) -> tuple[str, _Head] | None:
    """The DID and the new head (with the ops to count) a logged frame carries; None for other types."""
    evt = decode_event(frame)
    if type(evt) is not CommitEvent and type(evt) is not SyncEvent:
        return None
    roots, blocks = read_car_raw(evt.blocks, verify=False)
    did, commit_cid = (evt.repo, evt.commit) if type(evt) is CommitEvent else (evt.did, roots[0])
    commit = decode_commit(blocks[commit_cid.cid_bytes])
    return did, _Head(evt.rev, commit_cid, commit.data, evt.ops if type(evt) is CommitEvent else [])


async def roll_forward(db: Database, sequencer: Sequencer, accounts: dict[str, Account]) -> int:
    """Apply the events logged after the last checkpoint to ``accounts`` (loading rows it lacks) and queue
    them for the next batch, which :meth:`Sequencer.replay_state` makes a checkpoint. Returns the count."""
    heads: list[tuple[str, _Head]] = []

    def collect(seq: int, did: str, frame: bytes) -> None:
        try:
            found = _head_of(frame)
        except (KeyError, IndexError, ValueError) as exc:  # our own log: a bug, not an attack
            log.error("unreadable logged event", extra={"seq": seq, "error": str(exc)})
            return
        if found is not None:
            heads.append(found)

    replayed = await sequencer.replay_state(collect)
    missing = sorted({did for did, _ in heads if did not in accounts})
    if missing:
        rows = await db.read(lambda conn: account_store.get_accounts(conn, missing))
        for row in rows:
            accounts.setdefault(row.did, Account.from_row(row))
    for did, head in heads:
        acc = accounts.get(did)
        if acc is None:
            continue  # its row went with the event's batch, so this is a log without its account tables
        if acc.rev is None or head.rev > acc.rev:
            acc.rev, acc.commit_cid, acc.data_cid = head.rev, head.commit, head.data
            sequencer.defer_account(acc)
        sequencer.count_ops(did, head.ops)
    if replayed:
        log.info(
            "repo state rolled forward from the event log", extra={"events": replayed, "heads": len(heads)}
        )
    return replayed
