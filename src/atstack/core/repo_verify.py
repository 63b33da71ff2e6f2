"""Checks of untrusted repository data: a full repo CAR, and a ``#commit`` CAR slice against its ops.

Spec: atproto.com/specs/repository ("Security Considerations": verify completeness of imported CARs) and
/sync ("Sync 1.1" validation: signature, fields, and MST inversion of the ops back to ``prevData``).
Every failure raises :class:`RepoVerifyError` with a one-line reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from atstack.core.blockstore import MemoryBlockStore, MissingBlock
from atstack.core.car import MAX_CAR_SIZE, CarError, CarFile, read_car
from atstack.core.cbor import CBORDecodeError
from atstack.core.cbor import decode as cbor_decode
from atstack.core.cid import CID, CODEC_DAG_CBOR
from atstack.core.commit import Commit, CommitError, decode_commit, verify_commit
from atstack.core.crypto import PublicKey
from atstack.core.mst import MST, MSTError, invert_ops, verify_tree
from atstack.core.repo_op import RepoOp
from atstack.core.syntax import InvalidSyntax, split_repo_path

__all__ = ["MAX_SLICE_SIZE", "RepoVerifyError", "VerifiedRepo", "verify_commit_slice", "verify_repo_car"]

MAX_SLICE_SIZE = 2_000_000  # the #commit blocks cap


class RepoVerifyError(ValueError):
    """Repository data failed verification (one-line reason in the message)."""


@dataclass(slots=True)
class VerifiedRepo:
    did: str
    rev: str
    commit_cid: CID
    data_cid: CID
    commit: Commit
    records: dict[str, int]  # record count per collection
    record_count: int
    blocks: dict[CID, bytes]  # every block of the CAR (for an import)

    def iter_records(self) -> Iterator[tuple[str, CID, bytes]]:
        """``(path, cid, block)`` of every record, in key order."""
        blocks = self.blocks
        for path, cid in MST.load(MemoryBlockStore(blocks), self.data_cid).items():
            yield path, cid, blocks[cid]


def _read(data: bytes | memoryview, max_size: int) -> CarFile:
    try:
        return read_car(data, verify=True, max_size=max_size)
    except CarError as exc:
        raise RepoVerifyError(f"bad CAR: {exc}") from None


def _commit(car: CarFile, did: str | None, public_key: PublicKey | None) -> tuple[CID, Commit]:
    if not car.roots:
        raise RepoVerifyError("CAR has no root")
    commit_cid = car.roots[0]
    block = car.blocks.get(commit_cid)
    if block is None:
        raise RepoVerifyError(f"commit block {commit_cid.encode()} (the CAR root) is missing")
    try:
        commit = decode_commit(block)
    except CommitError as exc:
        raise RepoVerifyError(f"bad commit: {exc}") from None
    if did is not None and commit.did != did:
        raise RepoVerifyError(f"commit is for {commit.did}, expected {did}")
    if public_key is not None and not verify_commit(commit, public_key):
        raise RepoVerifyError(f"commit signature does not verify with {public_key.did_key()}")
    return commit_cid, commit


def verify_repo_car(
    data: bytes | memoryview,
    *,
    did: str | None = None,
    public_key: PublicKey | None = None,
    check_records: bool = True,
    max_size: int = MAX_CAR_SIZE,
) -> VerifiedRepo:
    """Check a full repository export.

    Every block hashes to its CID; the root commit decodes strictly (and is for ``did`` and signed by
    ``public_key`` when given); the MST is well-formed; every record it links to is present with a valid
    repo path and, with ``check_records``, decodes as a DRISL map.
    """
    car = _read(data, max_size)
    commit_cid, commit = _commit(car, did, public_key)
    blocks = car.blocks
    store = MemoryBlockStore(blocks)
    try:
        total = verify_tree(store, commit.data)
        counts: Counter[str] = Counter()
        for path, cid in MST.load(store, commit.data).items():
            block = blocks.get(cid)
            if block is None:
                raise RepoVerifyError(f"record {path} ({cid.encode()}) is missing from the CAR")
            try:
                collection, _rkey = split_repo_path(path)
            except InvalidSyntax as exc:
                raise RepoVerifyError(f"MST key {path[:200]!r} is not a repo path: {exc}") from None
            if check_records and cid.cid_bytes[1] == CODEC_DAG_CBOR:
                try:
                    value = cbor_decode(block)
                except CBORDecodeError as exc:
                    raise RepoVerifyError(f"record {path} is not valid DRISL: {exc}") from None
                if type(value) is not dict:
                    raise RepoVerifyError(f"record {path} is not a map")
            counts[collection] += 1
    except MSTError as exc:
        raise RepoVerifyError(f"bad MST: {exc}") from None
    except MissingBlock as exc:
        raise RepoVerifyError(f"incomplete MST: {exc}") from None
    return VerifiedRepo(
        did=commit.did,
        rev=commit.rev,
        commit_cid=commit_cid,
        data_cid=commit.data,
        commit=commit,
        records=dict(sorted(counts.items())),
        record_count=total,
        blocks=blocks,
    )


def verify_commit_slice(
    car_slice: bytes | memoryview,
    ops: Iterable[RepoOp],
    prev_data: CID | None,
    *,
    did: str,
    public_key: PublicKey,
    max_size: int = MAX_SLICE_SIZE,
) -> Commit:
    """The Sync 1.1 check of a ``#commit``: returns the signed commit, or raises :class:`RepoVerifyError`.

    The root is a commit for ``did`` signed by ``public_key``; the slice's MST nodes prove each op (a created
    or updated path holds the op's cid, a deleted path is absent) and include those records' blocks; and,
    when ``prev_data`` is given, inverting the ops yields it. The caller still compares the event's
    ``repo``/``rev``/``commit`` fields with the returned commit and its CID (``roots[0]``).
    """
    car = _read(car_slice, max_size)
    _cid, commit = _commit(car, did, public_key)
    ops = list(ops)
    store = MemoryBlockStore(car.blocks)
    if not ops:  # an empty commit (rev bump): nothing to prove beyond an unchanged tree
        if prev_data is not None and prev_data != commit.data:
            raise RepoVerifyError("empty commit changes the MST root")
        return commit
    try:
        tree = MST.load(store, commit.data)
        for op in ops:
            current = tree.get(op.path)
            if op.action == "delete":
                if current is not None:
                    raise RepoVerifyError(f"deleted path {op.path} is still in the tree")
                continue
            if current != op.cid:
                raise RepoVerifyError(f"{op.action} {op.path}: tree holds {current and current.encode()}")
            if op.cid not in car.blocks:
                raise RepoVerifyError(f"{op.action} {op.path}: record block is missing from the slice")
        if prev_data is not None:
            before = invert_ops(store, commit.data, ops)
            if before != prev_data:
                raise RepoVerifyError(
                    f"inverting the ops gives {before.encode()}, not prevData {prev_data.encode()}"
                )
    except MSTError as exc:
        raise RepoVerifyError(f"bad MST proof: {exc}") from None
    except MissingBlock as exc:
        raise RepoVerifyError(f"slice lacks a block needed to check the ops: {exc}") from None
    return commit
