"""Checks of untrusted repository data: a full repo CAR, and a ``#commit`` CAR slice against its ops.

Spec: atproto.com/specs/repository ("Security Considerations": verify completeness of imported CARs) and
/sync ("Sync 1.1" validation: signature, fields, and MST inversion of the ops back to ``prevData``).
Every failure raises :class:`RepoVerifyError` with a one-line reason.
"""

from __future__ import annotations

import gc
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter

from atstack.core.blockstore import HashedBlocks, MissingBlock
from atstack.core.car import MAX_CAR_SIZE, CarError, read_car_raw
from atstack.core.cbor import CBORDecodeError
from atstack.core.cbor import decode as cbor_decode
from atstack.core.cid import CID, CODEC_DAG_CBOR
from atstack.core.commit import Commit, CommitError, decode_commit, verify_commit
from atstack.core.crypto import PublicKey
from atstack.core.mst import MST, MSTError, invert_ops, walk_tree
from atstack.core.repo_op import RepoOp
from atstack.core.syntax import InvalidSyntax, is_valid_nsid, split_repo_path

__all__ = [
    "MAX_RECORD_SIZE",
    "MAX_SLICE_SIZE",
    "RepoVerifyError",
    "VerifiedRepo",
    "verify_commit_slice",
    "verify_repo_car",
]

MAX_SLICE_SIZE = 2_000_000  # the #commit blocks cap
MAX_RECORD_SIZE = 1 << 20  # a record's CBOR in a #commit (the data-validation guide's 1 MiB)
_CID_BYTES = attrgetter("cid_bytes")


class RepoVerifyError(ValueError):
    """Repository data failed verification (one-line reason in the message)."""


@dataclass(slots=True)
class VerifiedRepo:
    """A repository CAR that passed :func:`verify_repo_car`, with what the check already worked out."""

    did: str
    rev: str
    commit_cid: CID
    data_cid: CID
    commit: Commit
    records: dict[str, int]  # record count per collection
    record_count: int
    raw_blocks: dict[bytes, bytes] = field(repr=False)  # every block of the CAR, by binary CID
    keys: list[bytes] = field(repr=False)  # every record path (MST key), in key order
    cids: list[CID] = field(repr=False)  # the record CID of each key
    _blocks: dict[CID, bytes] | None = field(default=None, repr=False)

    @property
    def blocks(self) -> dict[CID, bytes]:
        """Every block of the CAR (for an import), by :class:`CID`; built on first use."""
        if self._blocks is None:
            raw = self.raw_blocks
            self._blocks = dict(zip(map(CID, raw), raw.values(), strict=True))
        return self._blocks

    def iter_records(self) -> Iterator[tuple[str, CID, bytes]]:
        """``(path, cid, block)`` of every record, in key order."""
        raw = self.raw_blocks
        for key, cid in zip(self.keys, self.cids, strict=True):
            yield key.decode(), cid, raw[cid.cid_bytes]


def _commit(
    roots: list[CID], lookup: Callable[[CID], bytes | None], did: str | None, public_key: PublicKey | None
) -> tuple[CID, Commit]:
    if not roots:
        raise RepoVerifyError("CAR has no root")
    commit_cid = roots[0]
    block = lookup(commit_cid)
    if block is None:
        raise RepoVerifyError(f"commit block {commit_cid.encode()} (the CAR root) is missing")
    try:
        commit = decode_commit(block)
    except CommitError as exc:
        raise RepoVerifyError(f"bad commit: {exc}") from None
    if did is not None and commit.did != did:
        raise RepoVerifyError(f"commit is for {commit.did}, expected {did}")
    if public_key is not None and not verify_commit(commit, public_key, block):
        raise RepoVerifyError(f"commit signature does not verify with {public_key.did_key()}")
    return commit_cid, commit


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic collector: reading a repo makes a few hundred thousand long-lived objects and no
    reference cycles, and the full-heap scans they would trigger cost about a sixth of the time."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def verify_repo_car(
    data: bytes | memoryview,
    *,
    did: str | None = None,
    public_key: PublicKey | None = None,
    check_records: bool = True,
    max_size: int = MAX_CAR_SIZE,
) -> VerifiedRepo:
    """Check a full repository export.

    What the spec asks of a repository, and all a relay checks: every block hashes to its CID; the root
    commit decodes strictly (and is for ``did`` and signed by ``public_key`` when given); the MST is
    well-formed in every rule (strict node encoding, key order and depth, prefix compression, links, no
    stray empty nodes); and every record it links to is present under a valid repo path.

    ``check_records`` (on by default) also decodes every dag-cbor record strictly and requires a DRISL map.
    That is not part of a repository's validity (relays never decode records) but is what makes the records
    safe to store, index and serve, which a PDS import and ``atstack repo`` do with this result. A caller
    that only needs the repository check passes ``check_records=False`` (about half the time).
    """
    with _gc_paused():
        return _verify_repo_car(data, did, public_key, check_records, max_size)


def _verify_repo_car(
    data: bytes | memoryview,
    did: str | None,
    public_key: PublicKey | None,
    check_records: bool,
    max_size: int,
) -> VerifiedRepo:
    try:
        roots, blocks = read_car_raw(data, verify=True, max_size=max_size)
    except CarError as exc:
        raise RepoVerifyError(f"bad CAR: {exc}") from None
    commit_cid, commit = _commit(roots, lambda cid: blocks.get(cid.cid_bytes), did, public_key)
    try:
        # ``hashed``: read_car_raw checked every block against its CID.
        keys, cids = walk_tree(blocks.get, commit.data, hashed=True)
    except MSTError as exc:
        raise RepoVerifyError(f"bad MST: {exc}") from None
    except MissingBlock as exc:
        raise RepoVerifyError(f"incomplete MST: {exc}") from None
    try:
        records = list(map(blocks.__getitem__, map(_CID_BYTES, cids)))
    except KeyError:
        path, cid = next((k, c) for k, c in zip(keys, cids, strict=True) if c.cid_bytes not in blocks)
        raise RepoVerifyError(f"record {path.decode()} ({cid.encode()}) is missing from the CAR") from None
    counts = _check_repo_paths(keys)
    if check_records:
        _check_records(keys, cids, records)
    return VerifiedRepo(
        did=commit.did,
        rev=commit.rev,
        commit_cid=commit_cid,
        data_cid=commit.data,
        commit=commit,
        records=counts,
        record_count=len(keys),
        raw_blocks=blocks,
        keys=keys,
        cids=cids,
    )


# Given the MST key rule walk_tree enforced (one "/" between two non-empty runs of [A-Za-z0-9_~.:-], the
# record-key alphabet), a key is a repo path exactly when its collection is an NSID and its record key is
# neither "." nor ".." nor longer than 512: this finds the record keys that break the last two rules.
_BAD_RKEY = re.compile(rb"/(?:\.\.?(?:\n|\Z)|[^\n]{513})").search


def _check_repo_paths(keys: list[bytes]) -> dict[str, int]:
    """Every key is a repo path (as :func:`split_repo_path` rules); returns record counts per collection.

    Keys are sorted, so each collection is one run, found by bisection: the NSID is checked once per
    collection and the record keys by one regex pass; :func:`split_repo_path` names any culprit.
    """
    counts: dict[str, int] = {}
    bad: bytes | None = None
    n = len(keys)
    i = 0
    while i < n:
        key = keys[i]
        collection = key[: key.index(b"/")]
        # Keys of this collection start with "<collection>/" and so sort below "<collection>0".
        j = bisect_left(keys, collection + b"0", i)
        name = collection.decode()
        if bad is None and not is_valid_nsid(name):
            bad = key
        counts[name] = j - i
        i = j
    if bad is None and keys:
        hit = _BAD_RKEY(b"\n".join(keys))
        if hit is not None:
            bad = next(k for k in keys if _BAD_RKEY(k) is not None)
    if bad is not None:
        path = bad.decode()
        try:
            split_repo_path(path)
        except InvalidSyntax as exc:
            raise RepoVerifyError(f"MST key {path[:200]!r} is not a repo path: {exc}") from None
        raise AssertionError(f"repo path check disagrees with split_repo_path on {path[:200]!r}")
    return dict(sorted(counts.items()))


def _check_records(keys: list[bytes], cids: list[CID], records: list[bytes]) -> None:
    """Every dag-cbor record decodes strictly as a DRISL map (raw-codec leaves are not DRISL)."""
    decode = cbor_decode
    for key, cid, block in zip(keys, cids, records, strict=True):
        if cid.cid_bytes[1] != CODEC_DAG_CBOR:
            continue
        try:
            value = decode(block)
        except CBORDecodeError as exc:
            raise RepoVerifyError(f"record {key.decode()} is not valid DRISL: {exc}") from None
        if type(value) is not dict:
            raise RepoVerifyError(f"record {key.decode()} is not a map")


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
    or updated path holds the op's cid, a deleted path is absent) and include those records' blocks, each
    at most :data:`MAX_RECORD_SIZE` and (dag-cbor ones) a strict DRISL map — not lexicon-checked; and,
    when ``prev_data`` is given, inverting the ops yields it. The caller still compares the event's
    ``repo``/``rev``/``commit`` fields with the returned commit and its CID (``roots[0]``).
    """
    try:
        roots, blocks = read_car_raw(car_slice, verify=True, max_size=max_size)
    except CarError as exc:
        raise RepoVerifyError(f"bad CAR: {exc}") from None
    _cid, commit = _commit(roots, lambda cid: blocks.get(cid.cid_bytes), did, public_key)
    ops = list(ops)
    if not ops:  # an empty commit (rev bump): nothing to prove beyond an unchanged tree
        if prev_data is not None and prev_data != commit.data:
            raise RepoVerifyError("empty commit changes the MST root")
        return commit
    written = [op for op in ops if op.cid is not None]
    records = []
    for op in written:
        block = blocks.get(op.cid.cid_bytes)  # type: ignore[union-attr]
        if block is None:
            raise RepoVerifyError(f"{op.action} {op.path}: record block is missing from the slice")
        if len(block) > MAX_RECORD_SIZE:
            raise RepoVerifyError(
                f"record {op.path} of {len(block):,} bytes is over the {MAX_RECORD_SIZE:,} cap"
            )
        records.append(block)
    _check_records([op.path.encode() for op in written], [op.cid for op in written], records)  # type: ignore[misc]
    store = HashedBlocks(blocks)
    try:
        if prev_data is not None:
            # Inversion checks each op against the tree it claims to have produced on the way.
            before = invert_ops(store, commit.data, ops)
            if before != prev_data:
                raise RepoVerifyError(
                    f"inverting the ops gives {before.encode()}, not prevData {prev_data.encode()}"
                )
            return commit
        tree = MST.load(store, commit.data)
        for op in ops:
            current = tree.get(op.path)
            if op.action == "delete":
                if current is not None:
                    raise RepoVerifyError(f"deleted path {op.path} is still in the tree")
            elif current != op.cid:
                raise RepoVerifyError(f"{op.action} {op.path}: tree holds {current and current.encode()}")
    except MSTError as exc:
        raise RepoVerifyError(f"bad MST proof: {exc}") from None
    except MissingBlock as exc:
        raise RepoVerifyError(f"slice lacks a block needed to check the ops: {exc}") from None
    return commit
