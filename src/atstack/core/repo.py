"""A signed atproto repository: records in an MST under a chain of v3 commits.

Spec: atproto.com/specs/repository ("Repo Data Structure", "Repository Diffs") and /sync (the ``#commit``
CAR slice and operation inversion). :meth:`Repo.apply_writes` turns a batch of record writes into one signed
commit plus everything a PDS persists and emits for it: the ops, the new blocks, the blocks the new state no
longer references, and the firehose CAR slice (commit; new MST nodes; the extra nodes a relay needs to invert
the ops; new and updated record blocks; never the bodies of deleted records).

Checks of untrusted repos and slices (``getRepo`` CARs, ``#commit`` events) are in
:mod:`atstack.core.repo_verify`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from atstack.core.blockstore import MissingBlock
from atstack.core.car import car_block, car_header, iter_repo_car, write_car
from atstack.core.cid import CID, cid_for_cbor
from atstack.core.commit import Commit, decode_commit, sign_commit
from atstack.core.crypto import PrivateKey
from atstack.core.mst import MST, MSTError, proof_blocks
from atstack.core.mst.node import Node
from atstack.core.repo_diff import Overlay, TrustedNodes, covering_proof, tree_delta
from atstack.core.repo_op import Action, RepoOp
from atstack.core.stream import MAX_COMMIT_BLOCKS_SIZE, MAX_COMMIT_OPS
from atstack.core.syntax import InvalidSyntax, is_valid_tid, split_repo_path
from atstack.core.tid import TIDClock

__all__ = [
    "CommitData",
    "RecordExists",
    "RecordNotFound",
    "RecordWrite",
    "Repo",
    "RepoError",
    "RepoStore",
]

_REV_CLOCK = TIDClock()


class RepoError(ValueError):
    """A write batch cannot be applied (reason in the message)."""


class RecordExists(RepoError):
    """A create targets a path that already holds a record."""


class RecordNotFound(RepoError):
    """An update or delete targets a path that holds no record."""


class RepoStore(Protocol):
    """The block-store interface a :class:`Repo` needs: read, check and add blocks."""

    def get(self, cid: CID) -> bytes | None: ...

    def has(self, cid: CID) -> bool: ...

    def put_block(self, cid: CID, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class RecordWrite:
    """One write of a batch; ``record`` is the DRISL block (create/update), already validated by the caller."""

    action: Action
    collection: str
    rkey: str
    record: bytes | None = None

    @property
    def path(self) -> str:
        return f"{self.collection}/{self.rkey}"

    @classmethod
    def create(cls, collection: str, rkey: str, record: bytes) -> RecordWrite:
        return cls("create", collection, rkey, record)

    @classmethod
    def update(cls, collection: str, rkey: str, record: bytes) -> RecordWrite:
        return cls("update", collection, rkey, record)

    @classmethod
    def delete(cls, collection: str, rkey: str) -> RecordWrite:
        return cls("delete", collection, rkey)


@dataclass(slots=True)
class CommitData:
    """Everything one commit produced: what to persist, what to drop and what to emit.

    ``since``/``prev_data`` are the previous commit's rev and MST root (the ``#commit`` ``since`` and
    ``prevData``). ``removed_cids`` holds the previous commit, the MST nodes the new tree dropped, and the
    previous record blocks of updated/deleted paths; a record CID there may still be used by another path
    holding byte-identical content, so a store that de-duplicates records must check references first.
    """

    cid: CID
    rev: str
    since: str | None
    prev_data: CID | None
    data: CID
    commit: Commit
    commit_block: bytes
    ops: list[RepoOp]
    new_blocks: dict[CID, bytes]
    removed_cids: set[CID] = field(default_factory=set)
    car_slice: bytes = b""


class Repo:
    """One repository at one commit, over a block store holding every block of that commit.

    :meth:`apply_writes` writes the new blocks into the store with ``put_block`` (and lists them again in the
    returned :class:`CommitData` for persistence and the firehose), then moves this object to the new commit.
    Blocks of the old state are never deleted here: ``CommitData.removed_cids`` says which ones the new state
    no longer needs, and the caller decides.
    """

    __slots__ = ("_mst", "commit", "commit_cid", "store")

    def __init__(self, store: RepoStore, commit_cid: CID, commit: Commit, mst: MST) -> None:
        self.store = store
        self.commit_cid = commit_cid
        self.commit = commit
        self._mst = mst

    # ---- construction ----

    @classmethod
    def create(
        cls, store: RepoStore, did: str, key: PrivateKey, *, rev: str | None = None
    ) -> tuple[Repo, CommitData]:
        """A new empty repository and its first signed commit (``since`` and ``prev_data`` are None)."""
        mst = MST.empty(store)
        data = mst.root()
        nodes = mst.new_blocks()
        rev = rev or _REV_CLOCK.next()
        commit, block, cid = sign_commit(did, data, rev, key)
        new_blocks = {cid: block, **nodes}
        car_slice = write_car([cid], new_blocks.items())
        for c, b in new_blocks.items():
            store.put_block(c, b)
        repo = cls(store, cid, commit, MST.load(store, data))
        return repo, CommitData(cid, rev, None, None, data, commit, block, [], new_blocks, set(), car_slice)

    @classmethod
    def load(cls, store: RepoStore, commit_cid: CID) -> Repo:
        """The repository whose current commit is ``commit_cid`` (the commit block must be in the store)."""
        block = store.get(commit_cid)
        if block is None:
            raise MissingBlock(commit_cid)
        commit = decode_commit(block)
        return cls(store, commit_cid, commit, MST.load(store, commit.data))

    # ---- reading ----

    @property
    def did(self) -> str:
        return self.commit.did

    @property
    def rev(self) -> str:
        return self.commit.rev

    @property
    def data(self) -> CID:
        """The MST root CID (the commit's ``data``)."""
        return self.commit.data

    @property
    def mst(self) -> MST:
        return self._mst

    def get_record_cid(self, collection: str, rkey: str) -> CID | None:
        return self._mst.get(f"{collection}/{rkey}")

    def get_record(self, collection: str, rkey: str) -> tuple[CID, bytes] | None:
        """The record's CID and DRISL block, or None when the path is empty."""
        cid = self._mst.get(f"{collection}/{rkey}")
        if cid is None:
            return None
        block = self.store.get(cid)
        if block is None:
            raise MissingBlock(cid)
        return cid, block

    def list_records(
        self, collection: str, *, limit: int | None = None, after: str | None = None, reverse: bool = False
    ) -> list[tuple[str, CID, bytes]]:
        """``(rkey, cid, block)`` of one collection in rkey order (descending with ``reverse``).

        ``after`` is an exclusive cursor: the rkey to continue past, in the chosen direction.
        """
        prefix = collection + "/"
        end = collection + "0"  # "0" is the byte after "/": the first key past the collection
        if not reverse:
            start = prefix + after + "\x00" if after is not None else prefix
            items: Iterable[tuple[str, CID]] = self._mst.items(start, end)
        else:
            # The MST scans forward only, so descending order walks the collection up to the cursor.
            stop = prefix + after if after is not None else end
            items = reversed(list(self._mst.items(prefix, stop)))
        out: list[tuple[str, CID, bytes]] = []
        get = self.store.get
        cut = len(prefix)
        for path, cid in items:
            if limit is not None and len(out) >= limit:
                break
            block = get(cid)
            if block is None:
                raise MissingBlock(cid)
            out.append((path[cut:], cid, block))
        return out

    def records(self) -> Iterator[tuple[str, CID]]:
        """Every ``(path, cid)`` in key order."""
        return self._mst.items()

    def export_car(self) -> bytes:
        """The full repository as a CAR (``com.atproto.sync.getRepo``)."""
        return b"".join(iter_repo_car(self.store, self.commit_cid))

    def record_proof_car(self, collection: str, rkey: str) -> bytes:
        """Commit, MST path and (if present) record: the proof ``com.atproto.sync.getRecord`` returns."""
        path = f"{collection}/{rkey}"
        parts = [car_header([self.commit_cid])]
        commit_block = self.store.get(self.commit_cid)
        if commit_block is None:
            raise MissingBlock(self.commit_cid)
        parts.append(car_block(self.commit_cid, commit_block))
        for cid, block in proof_blocks(self.store, self.data, [path]).items():
            parts.append(car_block(cid, block))
        found = self.get_record(collection, rkey)
        if found is not None:
            parts.append(car_block(*found))
        return b"".join(parts)

    # ---- writing ----

    def next_rev(self) -> str:
        return _REV_CLOCK.next_after(self.rev)

    def apply_writes(self, writes: list[RecordWrite], key: PrivateKey, rev: str | None = None) -> CommitData:
        """Apply a batch as one signed commit; raises :class:`RepoError` (nothing changed) if it cannot apply."""
        if len(writes) > MAX_COMMIT_OPS:
            raise RepoError(f"{len(writes)} writes in one commit; the firehose allows {MAX_COMMIT_OPS}")
        mst = self._mst
        ops: list[RepoOp] = []
        record_blocks: dict[CID, bytes] = {}
        paths: list[str] = []  # in write order, so the slice's block order is reproducible
        seen: set[str] = set()
        for w in writes:
            path = f"{w.collection}/{w.rkey}"
            if path in seen:
                raise RepoError(f"more than one write to {path}")
            seen.add(path)
            paths.append(path)
            try:
                split_repo_path(path)
            except InvalidSyntax as exc:
                raise RepoError(str(exc)) from None
            current = mst.get(path)
            if w.action == "delete":
                if current is None:
                    raise RecordNotFound(f"no record at {path} to delete")
                mst = mst.delete(path)
                ops.append(RepoOp("delete", path, None, current))
                continue
            record = w.record
            if type(record) is not bytes:
                raise RepoError(f"{w.action} of {path} needs the record's DRISL bytes")
            cid = cid_for_cbor(record)
            if w.action == "create":
                if current is not None:
                    raise RecordExists(f"a record already exists at {path}")
                ops.append(RepoOp("create", path, cid))
            elif w.action == "update":
                if current is None:
                    raise RecordNotFound(f"no record at {path} to update")
                ops.append(RepoOp("update", path, cid, current))
            else:
                raise RepoError(f"unknown write action {w.action!r}")
            try:
                mst = mst.put(path, cid)
            except MSTError as exc:  # e.g. a key mined deeper than the MST allows
                raise RepoError(f"cannot store {path}: {exc}") from None
            record_blocks[cid] = record

        if rev is None:
            rev = self.next_rev()
        elif not is_valid_tid(rev) or rev <= self.rev:
            raise RepoError(f"rev {rev!r} must be a TID greater than the current rev {self.rev}")

        data = mst.root()
        decoded = TrustedNodes(Overlay(self.store, mst.new_blocks()))
        # Both trees' root objects: the diff and the proof then follow nodes already in memory (sealed)
        # instead of decoding their blocks again.
        old_top: Node | CID = self.data
        old_node = self._mst.root_node
        if old_node is not None and old_node.cid == old_top:  # sealed, and the tree this commit names
            old_top = old_node
        new_top = mst.root_node or data
        # Relative to the previous tree, not to the store: a node may come back from older history.
        nodes, removed_nodes = tree_delta(decoded, old_top, new_top)
        commit, commit_block, commit_cid = sign_commit(self.did, data, rev, key)
        # With no ops this is just the root node: not required, but it lets a consumer load the tree.
        proof = covering_proof(decoded, new_top, paths)

        slice_blocks: dict[CID, bytes] = {commit_cid: commit_block}
        slice_blocks.update(nodes)
        slice_blocks.update(proof)
        slice_blocks.update(record_blocks)
        car_slice = write_car([commit_cid], slice_blocks.items())
        if len(car_slice) > MAX_COMMIT_BLOCKS_SIZE:
            raise RepoError(
                f"commit of {len(car_slice)} bytes exceeds the firehose limit of {MAX_COMMIT_BLOCKS_SIZE}"
            )

        new_blocks: dict[CID, bytes] = {commit_cid: commit_block}
        new_blocks.update(nodes)
        new_blocks.update(record_blocks)

        removed = {self.commit_cid} | removed_nodes
        for op in ops:
            if op.prev is not None and op.prev not in record_blocks:
                # Only this batch is known here: another path may still hold the same record CID.
                removed.add(op.prev)
        removed -= new_blocks.keys()

        put = self.store.put_block
        for c, b in new_blocks.items():
            put(c, b)
        since = self.rev
        prev_data = self.data
        self.commit_cid = commit_cid
        self.commit = commit
        self._mst = mst
        return CommitData(
            commit_cid, rev, since, prev_data, data, commit, commit_block, ops, new_blocks, removed, car_slice
        )
