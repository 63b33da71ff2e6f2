"""MST against the interop vectors (mst/*, firehose/commit-proof-fixtures.json) and known example trees."""

from __future__ import annotations

import itertools

import pytest

import vectors
from atstack.core.blockstore import MemoryBlockStore
from atstack.core.cid import parse_cid
from atstack.core.mst import EMPTY_ROOT, MST, diff, invert_ops, key_depth, proof_blocks, verify_tree
from atstack.core.mst.keys import common_prefix_len
from atstack.core.repo_op import RepoOp

pytestmark = pytest.mark.usefixtures("node_backend")  # both node codecs (tests/core/conftest.py)


CID1 = parse_cid("bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454")


def test_key_heights() -> None:
    cases = vectors.vector_json("mst", "key_heights.json")
    for case in cases:
        assert key_depth(case["key"]) == case["height"], case
        assert key_depth(case["key"].encode()) == case["height"], case
    assert len(cases) > 0


def test_example_keys_have_the_depth_in_their_name() -> None:
    # Each key is "<letter><depth>/<digits>".
    lines = vectors.vector_lines("mst", "example_keys.txt")
    for key in lines:
        assert key_depth(key) == int(key.split("/")[0][1:]), key
    assert len(lines) > 0


def test_common_prefix() -> None:
    cases = vectors.vector_json("mst", "common_prefix.json")
    for case in cases:
        assert common_prefix_len(case["left"].encode(), case["right"].encode()) == case["len"], case
    assert len(cases) > 0


def test_empty_tree_root() -> None:
    store = MemoryBlockStore()
    tree = MST.empty(store)
    assert tree.root().encode() == "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm"
    assert tree.root() == EMPTY_ROOT
    assert tree.count() == 0
    blocks = tree.new_blocks()
    assert list(blocks) == [EMPTY_ROOT]
    store.update(blocks.items())
    loaded = MST.load(store, EMPTY_ROOT)
    assert loaded.count() == 0 and list(loaded.items()) == []
    assert verify_tree(store, EMPTY_ROOT) == 0
    assert MST.from_items(store, []).root() == EMPTY_ROOT


def _check_commit_proof_case(case: dict) -> None:
    leaf = parse_cid(case["leafValue"])
    store = MemoryBlockStore()
    before = MST.from_items(store, [(k, leaf) for k in case["keys"]])
    assert before.root().encode() == case["rootBeforeCommit"]
    # Insertion order must not matter.
    one_by_one = MST.empty(store)
    for key in reversed(case["keys"]):
        one_by_one = one_by_one.put(key, leaf)
    assert one_by_one.root() == before.root()
    store.update(before.new_blocks().items())

    after = before
    for key in case["adds"]:
        after = after.put(key, leaf)
    for key in case["dels"]:
        after = after.delete(key)
    root_after = after.root()
    assert root_after.encode() == case["rootAfterCommit"]
    store.update(after.new_blocks().items())

    ops = [RepoOp("create", k, leaf) for k in case["adds"]] + [
        RepoOp("delete", k, None, leaf) for k in case["dels"]
    ]
    assert diff(store, before.root(), root_after) == sorted(ops, key=lambda op: op.path)

    proof = proof_blocks(store, root_after, [op.path for op in ops])
    expected = {parse_cid(c) for c in case["blocksInProof"]}
    assert expected <= set(proof), case["comment"]
    for order in itertools.permutations(ops):
        # Only the proof blocks: inversion must not need anything else.
        assert (
            invert_ops(MemoryBlockStore(dict(proof)), root_after, order).encode() == case["rootBeforeCommit"]
        )
    # The vectors' own block list must be enough as well.
    vector_only = MemoryBlockStore({c: store.blocks[c] for c in expected})
    assert invert_ops(vector_only, root_after, ops).encode() == case["rootBeforeCommit"]


def test_commit_proof_fixtures() -> None:
    cases = vectors.vector_json("firehose", "commit-proof-fixtures.json")
    ran = 0
    for case in cases:
        _check_commit_proof_case(case)
        ran += 1
    assert ran == len(cases) > 0


# Known maps from the reference implementation's MST interop tests (leaf value CID1 everywhere).
KNOWN_TREES = [
    (["com.example.record/3jqfcqzm3fo2j"], "bafyreibj4lsc3aqnrvphp5xmrnfoorvru4wynt6lwidqbm2623a6tatzdu"),
    (["com.example.record/3jqfcqzm3fx2j"], "bafyreih7wfei65pxzhauoibu3ls7jgmkju4bspy4t2ha2qdjnzqvoy33ai"),
    (
        [f"com.example.record/3jqfcqzm{s}2j" for s in ("3fp", "3fr", "3fs", "3ft", "4fc")],
        "bafyreicmahysq4n6wfuxo522m6dpiy7z7qzym3dzs756t5n7nfdgccwq7m",
    ),
]


def test_known_trees() -> None:
    ran = 0
    for keys, root in KNOWN_TREES:
        store = MemoryBlockStore()
        assert MST.from_items(store, [(k, CID1) for k in keys]).root().encode() == root
        tree = MST.empty(store)
        for key in keys:
            tree = tree.put(key, CID1)
        assert tree.root().encode() == root
        ran += 1
    assert ran > 0


def _add_all(tree: MST, suffixes: str) -> MST:
    for s in suffixes.split():
        tree = tree.put(f"com.example.record/3jqfcqzm{s}2j", CID1)
    return tree


def test_trims_top_of_tree_on_delete() -> None:
    tree = _add_all(MST.empty(MemoryBlockStore()), "3fn 3fo 3fp 3fs 3ft 3fu")
    assert tree.count() == 6
    assert tree.root().encode() == "bafyreifnqrwbk6ffmyaz5qtujqrzf5qmxf7cbxvgzktl4e3gabuxbtatv4"
    tree = tree.delete("com.example.record/3jqfcqzm3fs2j")
    assert tree.count() == 5
    assert tree.root().encode() == "bafyreie4kjuxbwkhzg2i5dljaswcroeih4dgiqq6pazcmunwt2byd725vi"


def test_insertion_that_splits_two_layers_down() -> None:
    l1 = _add_all(MST.empty(MemoryBlockStore()), "3fo 3fp 3fr 3fs 3ft 3fz 4fc 4fd 4ff 4fg 4fh")
    assert l1.count() == 11
    assert l1.root().encode() == "bafyreiettyludka6fpgp33stwxfuwhkzlur6chs4d2v4nkmq2j3ogpdjem"
    l2 = l1.put("com.example.record/3jqfcqzm3fx2j", CID1)
    assert l2.count() == 12
    assert l2.root().encode() == "bafyreid2x5eqs4w4qxvc5jiwda4cien3gw2q6cshofxwnvv7iucrmfohpm"
    assert l2.delete("com.example.record/3jqfcqzm3fx2j").root() == l1.root()


def test_new_layers_two_higher_than_existing() -> None:
    l0 = _add_all(MST.empty(MemoryBlockStore()), "3ft 3fz")
    assert l0.root().encode() == "bafyreidfcktqnfmykz2ps3dbul35pepleq7kvv526g47xahuz3rqtptmky"
    l2 = l0.put("com.example.record/3jqfcqzm3fx2j", CID1)
    assert l2.root().encode() == "bafyreiavxaxdz7o7rbvr3zg2liox2yww46t7g6hkehx4i4h3lwudly7dhy"
    assert l2.delete("com.example.record/3jqfcqzm3fx2j").root() == l0.root()
    l2b = l2.put("com.example.record/3jqfcqzm4fd2j", CID1)
    assert l2b.root().encode() == "bafyreig4jv3vuajbsybhyvb7gggvpwh2zszwfyttjrj6qwvcsp24h6popu"
    assert l2b.delete("com.example.record/3jqfcqzm4fd2j").root() == l2.root()
