"""Every repo write of the PDS: build the signed commit, then persist it and its event in one transaction.

Spec: atproto.com/specs/repository and /sync; checklist §4, §6, §8, §11.

A write whose records reference no blob — nearly all of them — is one job on the database's writer thread:
it reads the head, checks the swaps, builds the commit (steps 2 and 4 below without the re-check) and
persists it inside the write transaction, so it cannot race another write and needs no second thread hop;
concurrent writers share one commit (``Database`` groups the jobs queued meanwhile). A write that references
blobs must move blob files between building and committing, so it takes the longer path:

1. takes the account's ``asyncio.Lock`` (writers of one repo queue up, so rebuilds are rare);
2. on a reader thread, from one database snapshot: reads the head, checks ``swapCommit`` and each write's
   ``swapRecord`` (mismatch → 400 ``InvalidSwap``), checks the blobs the records reference (unknown → 400
   ``BlobNotFound``, stated mime type/size differing from the upload → ``InvalidMimeType``/``InvalidSize``),
   and runs :meth:`atstack.core.repo.Repo.apply_writes` over a block store that reads the database and
   buffers the new blocks — giving the signed commit, ops, new blocks, removed CIDs and the firehose slice;
3. moves newly referenced blob files from ``tmp/`` to their permanent place (idempotent);
4. in ONE write transaction: re-checks that the head is still the commit it built on (otherwise goes back
   to 2), inserts the blocks, updates the records index and the record → blob references, marks the blobs
   permanent, deletes blocks the new state no longer uses (a record CID dropped by one path may still be
   held by another: such blocks stay), deletes blob rows no record references any more, appends the
   ``#commit`` event and moves the head;
5. after the commit: the event is published (by the sequencer, which may also tell relays to crawl) and
   dereferenced blob files are deleted.

:class:`RecentHeads` keeps, for recently written repos, the decoded head commit and the MST nodes that
commit created (one root-to-leaf path per write, the rest as CIDs): the next write to the repo starts from
them instead of reading and decoding the commit and the top of the tree again. An entry is used only when
its commit CID is the head in the database, and the commit CID fixes the whole tree, so it cannot be stale.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from atstack.core.blockstore import MemoryBlockStore, MissingBlock
from atstack.core.cbor import decode_trusted
from atstack.core.cid import CID, CODEC_DAG_CBOR
from atstack.core.commit import Commit, sign_commit
from atstack.core.crypto import PrivateKey
from atstack.core.mst import MST
from atstack.core.mst.node import Node
from atstack.core.repo import CommitData, RecordExists, RecordNotFound, Repo, RepoError
from atstack.core.repo_verify import VerifiedRepo, verify_repo_car
from atstack.core.tid import TIDClock
from atstack.pds.records import UNSET, PreparedWrite, iter_blob_refs
from atstack.pds.sequencer import EventBatch
from atstack.pds.store import accounts, blobs, iso_time
from atstack.pds.store import repo as repo_store
from atstack.pds.store.blobs import BlobRow
from atstack.xrpc.errors import InvalidRequestError, XRPCError

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["DbBlockStore", "RecentHeads", "RepoWriter", "WriteOutcome", "store_new_repo"]

_MAX_ATTEMPTS = 5
# Repos whose head stays in memory. An entry is the commit and one MST path (a few KiB); 2048 of them
# cover the accounts writing at any moment on a single-host PDS for a few MiB.
RECENT_HEADS = 2048
_IMPORT_CLOCK = TIDClock()


class DbBlockStore:
    """A repo's blocks read from one database connection, with new blocks buffered in memory."""

    __slots__ = ("conn", "did", "new")

    def __init__(self, conn: sqlite3.Connection, did: str) -> None:
        self.conn = conn
        self.did = did
        self.new: dict[CID, bytes] = {}

    def get(self, cid: CID) -> bytes | None:
        block = self.new.get(cid)
        if block is not None:
            return block
        return repo_store.get_block(self.conn, self.did, cid)

    def has(self, cid: CID) -> bool:
        return cid in self.new or repo_store.has_block(self.conn, self.did, cid)

    def put_block(self, cid: CID, data: bytes) -> None:
        self.new[cid] = data


def _detach(node: Node, keep: set[CID] | frozenset[CID]) -> Node:
    """A stored copy of ``node`` keeping only the in-memory children in ``keep`` (the rest as CIDs)."""
    subs = tuple(
        (_detach(sub, keep) if sub.cid in keep else sub.cid) if type(sub) is Node else sub  # type: ignore[union-attr]
        for sub in node.subs
    )
    return Node(node.level, node.keys, node.vals, subs, cid=node.cid, data=node.data, stored=True)


class RecentHeads:
    """The heads of recently written repos, decoded (see the module docstring); safe across threads."""

    def __init__(self, size: int = RECENT_HEADS) -> None:
        self.size = size
        self._heads: OrderedDict[str, tuple[CID, Commit, Node | None]] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, store: DbBlockStore, head: CID) -> Repo:
        """The repo at ``head`` over ``store``: from memory when ``head`` is the one remembered."""
        with self._lock:
            entry = self._heads.get(store.did)
        if entry is None or entry[0] != head:
            return Repo.load(store, head)
        return Repo(store, head, entry[1], MST(store, entry[2]))

    def remember(self, did: str, commit: CommitData, tree: MST) -> None:
        """Keep the repo's new head: ``tree`` is its MST, sealed (``commit.new_blocks`` holds its new nodes)."""
        root = tree.root_node
        entry = (
            commit.cid,
            commit.commit,
            _detach(root, commit.new_blocks.keys()) if root is not None else None,
        )
        with self._lock:
            self._heads[did] = entry
            self._heads.move_to_end(did)
            while len(self._heads) > self.size:
                self._heads.popitem(last=False)

    def forget(self, did: str) -> None:
        with self._lock:
            self._heads.pop(did, None)

    def __len__(self) -> int:
        return len(self._heads)


class _HeadMoved(Exception):
    """The repo head changed between building a commit and persisting it: build again."""


@dataclass(slots=True)
class _Built:
    base: CID
    commit: CommitData
    blob_rows: dict[CID, BlobRow]
    tree: MST


@dataclass(slots=True)
class WriteOutcome:
    """The commit a write produced (None when nothing changed) and the prepared writes, in order."""

    commit: CommitData | None
    writes: list[PreparedWrite]
    deleted_blob_files: list[CID] = field(default_factory=list)


def _swap_error(message: str) -> XRPCError:
    return InvalidRequestError(message, "InvalidSwap")


def _check_record_swaps(conn: sqlite3.Connection, did: str, writes: list[PreparedWrite]) -> None:
    for w in writes:
        if w.swap is UNSET:
            continue
        found = repo_store.get_record(conn, did, w.collection, w.rkey)
        current = found[0] if found is not None else None
        if w.swap != current:
            raise _swap_error(f"Record was at {current.encode() if current is not None else 'null'}")


def _check_blobs(conn: sqlite3.Connection, did: str, writes: list[PreparedWrite]) -> dict[CID, BlobRow]:
    rows: dict[CID, BlobRow] = {}
    for w in writes:
        for ref in w.blobs:
            row = rows.get(ref.cid) or blobs.get_blob(conn, did, ref.cid)
            if row is None or row.takedown_ref is not None:
                raise InvalidRequestError(f"Could not find blob: {ref.cid.encode()}", "BlobNotFound")
            if row.temp_key is not None:
                if ref.mime_type != row.mime_type:
                    raise InvalidRequestError(
                        "Referenced Mimetype does not match stored blob. "
                        f"Expected: {row.mime_type}, Got: {ref.mime_type}",
                        "InvalidMimeType",
                    )
                if ref.size != row.size:
                    raise InvalidRequestError(
                        f"Referenced Size does not match stored blob. Expected: {row.size}, Got: {ref.size}",
                        "InvalidSize",
                    )
            rows[ref.cid] = row
    return rows


def store_new_repo(conn: sqlite3.Connection, did: str, commit: CommitData, now: str) -> None:
    """Persist a repo's first commit (account creation)."""
    repo_store.put_blocks(conn, did, commit.rev, commit.new_blocks.items())
    repo_store.set_root(conn, did, commit.cid, commit.rev, now)


class RepoWriter:
    """The write path of every repo on this PDS (see the module docstring)."""

    def __init__(self, ctx: PdsContext) -> None:
        self.ctx = ctx
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.heads = RecentHeads()

    def lock(self, did: str) -> asyncio.Lock:
        lock = self._locks.get(did)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[did] = lock
        return lock

    # --- building (reader thread) ---------------------------------------------------------------------

    def _build(
        self,
        conn: sqlite3.Connection,
        did: str,
        key: PrivateKey,
        writes: list[PreparedWrite],
        swap_commit: CID | None,
    ) -> _Built:
        head = repo_store.get_root(conn, did)
        if head is None:
            raise InvalidRequestError(f"No repo root found for {did}", "RepoNotFound")
        base = head[0]
        if swap_commit is not None and swap_commit != base:
            raise _swap_error(f"Commit was at {base.encode()}")
        _check_record_swaps(conn, did, writes)
        blob_rows = _check_blobs(conn, did, writes)
        store = DbBlockStore(conn, did)
        try:
            repo = self.heads.load(store, base)
            commit = repo.apply_writes([w.to_record_write() for w in writes], key)
        except RecordExists as exc:
            raise InvalidRequestError(str(exc)) from None
        except RecordNotFound as exc:
            raise InvalidRequestError(str(exc)) from None
        except RepoError as exc:
            raise InvalidRequestError(str(exc)) from None
        except MissingBlock as exc:
            raise XRPCError(500, message=f"repo of {did} is missing a block: {exc}") from None
        return _Built(base, commit, blob_rows, repo.mst)

    # --- persisting (writer thread) -------------------------------------------------------------------

    def _persist(
        self,
        conn: sqlite3.Connection,
        events: EventBatch,
        did: str,
        built: _Built,
        writes: list[PreparedWrite],
        *,
        check_head: bool = True,
    ) -> list[CID]:
        if check_head:  # built from another snapshot: the head must not have moved since
            head = repo_store.get_root(conn, did)
            if head is None or head[0] != built.base:
                raise _HeadMoved()
        commit = built.commit
        now = iso_time(self.ctx.clock())
        repo_store.put_blocks(conn, did, commit.rev, commit.new_blocks.items())
        upserts = [(w.collection, w.rkey, w.cid) for w in writes if w.cid is not None]
        if upserts:
            repo_store.put_records(conn, did, commit.rev, now, upserts)  # type: ignore[arg-type]
        deletes = [(w.collection, w.rkey) for w in writes if w.action == "delete"]
        if deletes:
            repo_store.delete_records(conn, did, deletes)
        dropped: set[CID] = set()
        for w in writes:
            if w.action == "create" and not w.blobs:
                continue  # the path was empty, so it has no references to replace (deletes clear them)
            dropped.update(blobs.set_record_blobs(conn, did, w.path, (b.cid for b in w.blobs)))
        for cid, row in built.blob_rows.items():
            if row.temp_key is not None:
                blobs.make_permanent(conn, did, cid)
        removed = commit.removed_cids
        if removed:
            still_used = repo_store.record_cids_in_use(conn, did, removed)
            repo_store.delete_blocks(conn, did, removed - still_used)
        gone = blobs.unreferenced(conn, did, dropped) if dropped else []
        if gone:
            blobs.delete_blob_rows(conn, did, gone)
        repo_store.set_root(conn, did, commit.cid, commit.rev, now)
        self.ctx.sequencer.append_commit(conn, events, did, commit)
        # Remembered before COMMIT: if that fails, the database head is not this commit and the entry is
        # never used.
        self.heads.remember(did, commit, built.tree)
        return gone

    def _build_and_persist(
        self,
        conn: sqlite3.Connection,
        events: EventBatch,
        did: str,
        key: PrivateKey,
        writes: list[PreparedWrite],
        swap_commit: CID | None,
    ) -> tuple[CommitData, list[CID]]:
        built = self._build(conn, did, key, writes, swap_commit)
        return built.commit, self._persist(conn, events, did, built, writes, check_head=False)

    # --- the write ------------------------------------------------------------------------------------

    async def apply(
        self, did: str, key: PrivateKey, writes: list[PreparedWrite], *, swap_commit: CID | None = None
    ) -> WriteOutcome:
        """Commit ``writes`` to ``did``'s repo (raises 400s for swaps, missing blobs, bad writes)."""
        ctx = self.ctx
        async with self.lock(did):
            if not any(w.blobs for w in writes):
                # No blob files to move: build and persist in one job on the writer thread.
                commit, gone = await ctx.sequencer.transact(
                    lambda conn, events: self._build_and_persist(conn, events, did, key, writes, swap_commit)
                )
                if gone:
                    await asyncio.to_thread(_delete_blob_files, ctx, did, gone)
                return WriteOutcome(commit, writes, gone)
            for _attempt in range(_MAX_ATTEMPTS):
                built = await ctx.db.read(lambda conn: self._build(conn, did, key, writes, swap_commit))
                temp = [
                    (cid, row.temp_key) for cid, row in built.blob_rows.items() if row.temp_key is not None
                ]
                if temp:
                    await asyncio.to_thread(_make_files_permanent, ctx, did, temp)
                try:
                    gone = await ctx.sequencer.transact(
                        lambda conn, events, built=built: self._persist(conn, events, did, built, writes)
                    )
                except _HeadMoved:
                    continue
                if gone:
                    await asyncio.to_thread(_delete_blob_files, ctx, did, gone)
                return WriteOutcome(built.commit, writes, gone)
        raise XRPCError(503, message=f"repo of {did} kept changing during the write; try again")

    # --- import (migration) ---------------------------------------------------------------------------

    async def import_car(self, did: str, key: PrivateKey, car: bytes, *, active: bool) -> CommitData:
        """Replace ``did``'s repo with the records of a verified CAR, re-signed with our key.

        The CAR must be a complete repo of ``did`` (:func:`~atstack.core.repo_verify.verify_repo_car`). Its
        records become the repo under a new commit signed by ``key``, with a rev above both the imported
        one and ours. Blobs the records reference are tracked as references (``listMissingBlobs`` shows
        the ones not uploaded yet). An active account gets a ``#sync`` event; an inactive one gets its
        events on activation.
        """
        ctx = self.ctx
        async with self.lock(did):
            verified = await asyncio.to_thread(verify_repo_car, car, did=did)
            current = await ctx.db.read(lambda conn: repo_store.get_root(conn, did))
            floor = max(verified.rev, current[1] if current is not None else "")
            built = await asyncio.to_thread(_rebuild, verified, did, key, floor)
            now = iso_time(ctx.clock())

            def write(conn: sqlite3.Connection, events: EventBatch) -> None:
                repo_store.delete_repo(conn, did)
                repo_store.put_blocks(conn, did, built.rev, built.new_blocks.items())
                repo_store.put_records(conn, did, built.rev, now, built_records)
                for path, cids in blob_refs:
                    blobs.set_record_blobs(conn, did, path, cids)
                repo_store.set_root(conn, did, built.cid, built.rev, now)
                if active:
                    ctx.sequencer.append_sync(conn, events, did, built.cid, built.commit_block, built.rev)

            built_records, blob_refs = _index_rows(verified)
            await ctx.sequencer.transact(write)
            return built

    async def signing_key(self, did: str) -> PrivateKey:
        account = await self.ctx.db.read(lambda conn: accounts.get_account(conn, did))
        if account is None:
            raise InvalidRequestError(f"Could not find repo: {did}", "RepoNotFound")
        return account.signing_key


def _rebuild(verified: VerifiedRepo, did: str, key: PrivateKey, floor: str) -> CommitData:
    items = [(path, cid) for path, cid, _block in verified.iter_records()]
    mst = MST.from_items(MemoryBlockStore(), items)
    data = mst.root()
    blocks: dict[CID, bytes] = dict(mst.new_blocks())
    for _path, cid, block in verified.iter_records():
        blocks[cid] = block
    rev = _IMPORT_CLOCK.next_after(floor)
    commit, commit_block, commit_cid = sign_commit(did, data, rev, key)
    blocks[commit_cid] = commit_block
    return CommitData(commit_cid, rev, None, None, data, commit, commit_block, [], blocks)


def _index_rows(verified: VerifiedRepo) -> tuple[list[tuple[str, str, CID]], list[tuple[str, list[CID]]]]:
    records: list[tuple[str, str, CID]] = []
    refs: list[tuple[str, list[CID]]] = []
    for path, cid, block in verified.iter_records():
        collection, rkey = path.split("/", 1)
        records.append((collection, rkey, cid))
        if cid.cid_bytes[1] != CODEC_DAG_CBOR:
            continue
        value = decode_trusted(block)
        cids = [b["ref"] for b in iter_blob_refs(value) if type(b.get("ref")) is CID]
        if cids:
            refs.append((path, cids))
    return records, refs


def _make_files_permanent(ctx: PdsContext, did: str, temp: list[tuple[CID, str | None]]) -> None:
    for cid, temp_key in temp:
        try:
            ctx.blobs.make_permanent(did, cid, temp_key)
        except FileNotFoundError:
            raise InvalidRequestError(f"Could not find blob: {cid.encode()}", "BlobNotFound") from None


def _delete_blob_files(ctx: PdsContext, did: str, cids: list[CID]) -> None:
    for cid in cids:
        ctx.blobs.delete(did, cid)
