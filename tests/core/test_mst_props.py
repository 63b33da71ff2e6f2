"""Property tests: the MST is a pure function of its map, and diff / proofs / inversion agree with it."""

from __future__ import annotations

import random

import cbrrr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vectors
from atstack.core.blockstore import MemoryBlockStore
from atstack.core.cid import CID, cid_for_cbor
from atstack.core.mst import MST, diff, invert_ops, proof_blocks, verify_tree
from atstack.core.repo_op import RepoOp

pytestmark = pytest.mark.usefixtures("node_backend")  # both node codecs (tests/core/conftest.py)


# Keys of depth 0-5 from the vectors, so small maps still make multi-level trees, plus keys sharing long
# prefixes to exercise prefix compression.
POOL = vectors.vector_lines("mst", "example_keys.txt")[:60] + [
    f"app.bsky.feed.post/{s}" for s in ("3k", "3ka", "3kab", "3kb", "3kb~", "3kb-1", "a:b", "z")
]
VALUES = [cid_for_cbor(cbrrr.encode_dag_cbor({"n": i})) for i in range(4)]

keys_st = st.sampled_from(POOL)
maps_st = st.dictionaries(keys_st, st.sampled_from(VALUES), max_size=40)
# (key, value or None for delete)
edits_st = st.lists(st.tuples(keys_st, st.one_of(st.none(), st.sampled_from(VALUES))), max_size=60)


def _apply(tree: MST, model: dict[str, CID], edits: list[tuple[str, CID | None]]) -> MST:
    for key, value in edits:
        if value is None:
            if key in model:
                del model[key]
                tree = tree.delete(key)
            else:
                try:
                    tree.delete(key)
                except KeyError:
                    pass
                else:
                    raise AssertionError("delete of an absent key did not raise")
        else:
            model[key] = value
            tree = tree.put(key, value)
    return tree


def _commit(store: MemoryBlockStore, tree: MST) -> CID:
    root = tree.root()
    store.update(tree.new_blocks().items())
    return root


@settings(max_examples=150, deadline=None)
@given(start=maps_st, edits=edits_st)
def test_edits_match_bulk_build(start: dict[str, CID], edits: list[tuple[str, CID | None]]) -> None:
    store = MemoryBlockStore()
    model = dict(start)
    tree = MST.from_items(store, start.items())
    old_root = _commit(store, tree)
    edited = _apply(tree, model, edits)
    expected = MST.from_items(MemoryBlockStore(), model.items())
    assert edited.root() == expected.root()
    assert list(edited.items()) == sorted(model.items(), key=lambda kv: kv[0].encode())
    assert edited.count() == len(model)
    for key in POOL:
        assert edited.get(key) == model.get(key)
    # Persistence: the old version is untouched.
    assert tree.root() == old_root
    assert dict(tree.items()) == start
    # The same edits on a lazily loaded copy give the same tree, and new_blocks completes the store.
    lazy = _apply(MST.load(store, old_root), dict(start), edits)
    new_root = _commit(store, lazy)
    assert new_root == expected.root()
    assert verify_tree(store, new_root) == len(model)
    assert list(MST.load(store, new_root).items()) == list(edited.items())


small_edits_st = st.lists(
    st.tuples(keys_st, st.one_of(st.none(), st.sampled_from(VALUES))), min_size=1, max_size=3
)


@settings(max_examples=300, deadline=None)
@given(a=maps_st, edits=small_edits_st, seed=st.integers(0, 2**32))
def test_small_commit_inversion(a: dict[str, CID], edits: list[tuple[str, CID | None]], seed: int) -> None:
    # Like a firehose commit: few ops, so the proof is a small part of the tree.
    b = dict(a)
    for key, value in edits:
        if value is None:
            b.pop(key, None)
        else:
            b[key] = value
    _check_diff_proof_and_inversion(a, b, seed)


@settings(max_examples=150, deadline=None)
@given(a=maps_st, b=maps_st, seed=st.integers(0, 2**32))
def test_diff_proof_and_inversion(a: dict[str, CID], b: dict[str, CID], seed: int) -> None:
    _check_diff_proof_and_inversion(a, b, seed)


def _check_diff_proof_and_inversion(a: dict[str, CID], b: dict[str, CID], seed: int) -> None:
    store = MemoryBlockStore()
    ta = MST.from_items(store, a.items())
    ra = _commit(store, ta)
    tb = MST.from_items(store, b.items())
    rb = _commit(store, tb)

    ops = diff(store, ra, rb)
    expected: list[RepoOp] = []
    for key in sorted(a.keys() | b.keys()):
        if key not in a:
            expected.append(RepoOp("create", key, b[key]))
        elif key not in b:
            expected.append(RepoOp("delete", key, None, a[key]))
        elif a[key] != b[key]:
            expected.append(RepoOp("update", key, b[key], a[key]))
    assert ops == expected
    assert diff(store, None, rb) == [RepoOp("create", k, v) for k, v in sorted(b.items())]

    # Applying the diff to a gives b.
    tree = MST.load(store, ra)
    for op in ops:
        tree = tree.delete(op.path) if op.action == "delete" else tree.put(op.path, op.cid)  # type: ignore[arg-type]
    assert tree.root() == rb

    # Inverting it with only the proof blocks, in any order, gives a back.
    proof = proof_blocks(store, rb, [op.path for op in ops])
    shuffled = list(ops)
    random.Random(seed).shuffle(shuffled)
    assert invert_ops(MemoryBlockStore(dict(proof)), rb, shuffled) == ra


@settings(max_examples=100, deadline=None)
@given(m=maps_st, lo=keys_st, hi=keys_st)
def test_ranges_and_prefix(m: dict[str, CID], lo: str, hi: str) -> None:
    tree = MST.from_items(MemoryBlockStore(), m.items())
    ordered = sorted(m.items(), key=lambda kv: kv[0].encode())
    assert list(tree.items(lo, hi)) == [kv for kv in ordered if lo.encode() <= kv[0].encode() < hi.encode()]
    assert list(tree.items(start=lo)) == [kv for kv in ordered if kv[0] >= lo]
    assert list(tree.items(end=hi)) == [kv for kv in ordered if kv[0] < hi]
    for prefix in ("app.bsky.feed.post/", "app.bsky.feed.post/3kb", lo.split("/")[0] + "/", "A"):
        assert list(tree.prefix(prefix)) == [kv for kv in ordered if kv[0].startswith(prefix)]


@settings(max_examples=60, deadline=None)
@given(m=maps_st)
def test_node_encoding_is_canonical_drisl(m: dict[str, CID]) -> None:
    tree = MST.from_items(MemoryBlockStore(), m.items())
    blocks = tree.new_blocks()
    assert blocks
    for cid, data in blocks.items():
        assert cid == cid_for_cbor(data)
        # cbrrr's strict decoder accepts it and its encoder writes the same bytes.
        assert cbrrr.encode_dag_cbor(cbrrr.decode_dag_cbor(data)) == data


def test_random_tid_tree_round_trip() -> None:
    # A larger tree with realistic keys: bulk build = one-by-one, diff/invert of a multi-op commit.
    rng = random.Random(7)
    alphabet = "234567abcdefghijklmnopqrstuvwxyz"
    keys = sorted(
        {
            f"app.bsky.feed.{rng.choice(['post', 'like'])}/3k"
            + "".join(rng.choice(alphabet) for _ in range(11))
            for _ in range(3000)
        }
    )
    store = MemoryBlockStore()
    bulk = MST.from_items(store, [(k, VALUES[0]) for k in keys])
    shuffled = list(keys)
    rng.shuffle(shuffled)
    tree = MST.empty(store)
    for key in shuffled:
        tree = tree.put(key, VALUES[0])
    assert tree.root() == bulk.root()
    r0 = _commit(store, bulk)
    assert verify_tree(store, r0) == len(keys)

    after = bulk
    for key in keys[::97]:
        after = after.delete(key)
    for key in keys[5::89]:
        after = after.put(key, VALUES[1])
    after = after.put("app.bsky.feed.post/3zzzzzzzzzzzz", VALUES[2])
    r1 = _commit(store, after)
    ops = diff(store, r0, r1)
    assert len(ops) == len(keys[::97]) + len(keys[5::89]) + 1
    proof = proof_blocks(store, r1, [op.path for op in ops])
    assert len(proof) < len(store) // 4
    rng.shuffle(ops)
    assert invert_ops(MemoryBlockStore(dict(proof)), r1, ops) == r0
