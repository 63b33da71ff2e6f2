"""The MST API contract: keys and values accepted, persistence, new blocks, laziness, diff cost."""

from __future__ import annotations

import cbrrr
import pytest

from atstack.core.blockstore import MemoryBlockStore
from atstack.core.cid import CID, cid_for_cbor, parse_cid
from atstack.core.mst import (
    MAX_ENTRIES,
    MAX_KEY_BYTES,
    MST,
    MSTError,
    diff,
    key_depth,
    set_cache_limit,
    verify_tree,
)
from atstack.core.mst.keys import common_prefix_len
from atstack.core.mst.node import Node, clear_node_cache, encode_node

pytestmark = pytest.mark.usefixtures("node_backend")  # both node codecs (tests/core/conftest.py)


LEAF = parse_cid("bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454")
OTHER = cid_for_cbor(cbrrr.encode_dag_cbor({"x": 1}))


class CountingStore(MemoryBlockStore):
    """Counts block reads, to check what is (not) read."""

    __slots__ = ("reads",)

    def __init__(self, blocks: dict[CID, bytes]) -> None:
        super().__init__(blocks)
        self.reads = 0

    def get(self, cid: CID) -> bytes | None:
        self.reads += 1
        return super().get(cid)

    def has(self, cid: CID) -> bool:
        self.reads += 1
        return super().has(cid)


def big_tree(n: int = 2000) -> tuple[MST, list[str]]:
    keys = [f"app.bsky.feed.post/3k{i:011d}" for i in range(n)]
    return MST.from_items(MemoryBlockStore(), [(k, LEAF) for k in keys]), keys


@pytest.mark.parametrize(
    "key",
    [
        "",
        "nocollection",
        "a/b/c",
        "/rkey",
        "coll/",
        "coll/with space",
        "coll/caf\u00e9",
        "c/" + "x" * MAX_KEY_BYTES,
    ],
)
def test_put_rejects_invalid_keys(key: str) -> None:
    tree = MST.empty(MemoryBlockStore())
    with pytest.raises(MSTError):
        tree.put(key, LEAF)
    with pytest.raises(MSTError):
        MST.from_items(MemoryBlockStore(), [(key, LEAF)])


def test_put_accepts_all_allowed_characters() -> None:
    tree = MST.empty(MemoryBlockStore())
    for key in (
        "coll/3jui7kd54zh2y",
        "coll/self",
        "com.example/rkey",
        "coll/~1.2-3_",
        "coll/pre:fix",
        "coll/_",
    ):
        tree = tree.put(key, LEAF)
    assert tree.count() == 6
    assert tree.put("c/" + "x" * (MAX_KEY_BYTES - 2), LEAF).count() == 7


def test_values_must_be_cids() -> None:
    with pytest.raises(MSTError):
        MST.empty(MemoryBlockStore()).put("coll/a", LEAF.encode())  # type: ignore[arg-type]
    with pytest.raises(MSTError):
        MST.from_items(MemoryBlockStore(), [("coll/a", b"x")])  # type: ignore[list-item]


def test_key_depth_accepts_str_and_bytes() -> None:
    assert key_depth("blue") == key_depth(b"blue") == 1


def test_delete_absent_key_raises_key_error() -> None:
    with pytest.raises(KeyError):
        MST.empty(MemoryBlockStore()).delete("coll/a")
    tree, keys = big_tree(50)
    with pytest.raises(KeyError):
        tree.delete("app.bsky.feed.post/zzz")
    assert tree.delete(keys[3]).count() == 49


def test_persistence_and_no_op_put() -> None:
    tree, keys = big_tree(300)
    root = tree.root()
    updated = tree.put(keys[10], OTHER)
    assert updated.get(keys[10]) == OTHER and tree.get(keys[10]) == LEAF
    assert tree.root() == root != updated.root()
    assert tree.put(keys[10], LEAF) is tree
    assert updated.put(keys[10], LEAF).root() == root


def test_bulk_build_last_duplicate_wins() -> None:
    tree = MST.from_items(MemoryBlockStore(), [("coll/a", LEAF), ("coll/a", OTHER)])
    assert tree.count() == 1 and tree.get("coll/a") == OTHER


def test_new_blocks_are_the_changed_path_only() -> None:
    tree, keys = big_tree()
    store = tree.store
    blocks = tree.new_blocks()
    assert len(blocks) > 100 and all(cid_for_cbor(data) == cid for cid, data in blocks.items())
    store.update(blocks.items())  # type: ignore[attr-defined]
    assert tree.new_blocks() == {}
    one = tree.put("app.bsky.feed.post/3k00000000500x", OTHER)
    new = one.new_blocks()
    assert 1 <= len(new) <= 12
    assert not any(store.has(cid) for cid in new)
    store.update(new.items())  # type: ignore[attr-defined]
    assert verify_tree(store, one.root()) == len(keys) + 1


def test_load_is_lazy() -> None:
    tree, keys = big_tree()
    blocks = tree.new_blocks()
    clear_node_cache()
    store = CountingStore(dict(blocks))
    loaded = MST.load(store, tree.root())
    assert store.reads == 1
    assert loaded.get(keys[1234]) == LEAF
    assert store.reads < 15
    assert loaded.count() == len(keys)


def test_diff_reads_only_changed_paths() -> None:
    tree, keys = big_tree(5000)
    store = tree.store
    store.update(tree.new_blocks().items())  # type: ignore[attr-defined]
    after = tree.put(keys[700], OTHER).delete(keys[1500])
    store.update(after.new_blocks().items())  # type: ignore[attr-defined]
    clear_node_cache()
    counting = CountingStore(dict(store.blocks))  # type: ignore[attr-defined]
    ops = diff(counting, tree.root(), after.root())
    assert [(op.action, op.path) for op in ops] == [("update", keys[700]), ("delete", keys[1500])]
    assert counting.reads < 80 < len(counting.blocks) // 10, counting.reads


def test_small_node_cache_still_correct() -> None:
    tree, keys = big_tree(500)
    store = tree.store
    store.update(tree.new_blocks().items())  # type: ignore[attr-defined]
    try:
        set_cache_limit(4)
        loaded = MST.load(store, tree.root())
        assert [k for k, _ in loaded.items()] == keys
        set_cache_limit(0)
        assert MST.load(store, tree.root()).put(keys[0], OTHER).count() == 500
    finally:
        set_cache_limit(65536)


def test_path_copy_when_a_record_cid_equals_a_subtree_cid() -> None:
    # Path copies are encoded by swapping one child CID in the old block; a record value equal to that
    # CID must not be swapped too.
    tree, keys = big_tree(400)
    tree.root()
    root = tree._root
    assert root is not None and root.level >= 1
    child = root.subs[1]
    child_cid = child if type(child) is CID else child.cid  # type: ignore[union-attr]
    assert child_cid is not None
    tricky = tree.put(root.keys[0].decode(), child_cid)
    tricky.root()
    # An edit below that child: the root is path-copied from a block holding child_cid twice.
    below = next(
        k for k in keys if root.keys[0] < k.encode() < (root.keys[1] if len(root.keys) > 1 else b"\xff")
    )
    edited = tricky.put(below, OTHER)
    model = {k: LEAF for k in keys} | {root.keys[0].decode(): child_cid, below: OTHER}
    assert edited.root() == MST.from_items(MemoryBlockStore(), model.items()).root()
    assert edited.get(root.keys[0].decode()) == child_cid


def test_bulk_build_rejects_non_string_keys() -> None:
    with pytest.raises(MSTError):
        MST.from_items(MemoryBlockStore(), [(b"coll/a", LEAF), ("coll/b", LEAF)])  # type: ignore[list-item]


def _reference_encoding(node: Node) -> bytes:
    entries = []
    prev = b""
    for key, val, t in zip(node.keys, node.vals, node.subs[1:], strict=True):
        p = common_prefix_len(prev, key)
        entries.append({"k": key[p:], "p": p, "t": t, "v": val})
        prev = key
    return cbrrr.encode_dag_cbor({"e": entries, "l": node.subs[0]})


def test_hand_written_encoding_matches_cbrrr() -> None:
    # Sizes that cross every CBOR length boundary: suffixes of 0-23, 24-255 and 256+ bytes, prefix lengths
    # of 24+ and 256+, more than MAX_ENTRIES entries (a merge can make such a node), other CID lengths.
    long_leaf = CID(b"\x01\x71\x13\x40" + bytes(64))  # sha2-512 multihash
    keys = sorted(
        {f"c/{'x' * n}{i}".encode() for n in (0, 5, 30, 300, 700) for i in range(3)}
        | {f"coll/k{i:05d}".encode() for i in range(MAX_ENTRIES + 3)}
    )
    vals = tuple(long_leaf if i % 7 == 0 else LEAF for i in range(len(keys)))
    subs = tuple(OTHER if i % 3 == 0 else None for i in range(len(keys) + 1))
    for node in (
        Node(1, tuple(keys), vals, subs),
        Node(0, tuple(keys[:3]), vals[:3], (None,) * 4),
        Node(0, (), (), (None,)),
        Node(2, (), (), (OTHER,)),
    ):
        assert encode_node(node) == _reference_encoding(node)
