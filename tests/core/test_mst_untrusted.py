"""Untrusted MST input: hand-built malformed nodes must raise MSTError (lazy load and full verification)."""

from __future__ import annotations

from typing import Any

import cbrrr
import pytest

from atstack.core.blockstore import MemoryBlockStore, MissingBlock
from atstack.core.cid import CID, cid_for_cbor, cid_for_raw, parse_cid
from atstack.core.mst import MAX_ENTRIES, MST, MSTError, key_depth, verify_tree, walk_tree
from atstack.core.mst.keys import common_prefix_len
from atstack.core.mst.node import clear_node_cache

pytestmark = pytest.mark.usefixtures("node_backend")  # both node codecs (tests/core/conftest.py)


LEAF = parse_cid("bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454")
# From the interop example keys: the digit after the letter is the key's depth.
A0, B0, C0, D0 = "A0/374913", "B0/601692", "C0/451630", "D0/952776"
B1, C2 = "B1/986427", "C2/014073"


def entry(key: str, prev: str = "", t: CID | None = None, v: CID = LEAF) -> dict[str, Any]:
    p = common_prefix_len(prev.encode(), key.encode())
    return {"k": key.encode()[p:], "p": p, "t": t, "v": v}


def entries(keys: list[str], subtrees: list[CID | None] | None = None) -> list[dict[str, Any]]:
    subtrees = subtrees or [None] * len(keys)
    out = []
    prev = ""
    for key, t in zip(keys, subtrees, strict=True):
        out.append(entry(key, prev, t))
        prev = key
    return out


def put(store: MemoryBlockStore, obj: Any) -> CID:
    return store.put(cbrrr.encode_dag_cbor(obj))


def assert_rejected(store: MemoryBlockStore, root: CID, match: str) -> None:
    with pytest.raises(MSTError, match=match):
        verify_tree(store, root)
    with pytest.raises(MSTError, match=match):
        list(MST.load(store, root).items())


def test_well_formed_hand_built_tree_is_accepted() -> None:
    store = MemoryBlockStore()
    assert key_depth(B1) == 1 and key_depth(A0) == 0
    left = put(store, {"e": entries([A0]), "l": None})
    right = put(store, {"e": entries([C0, D0]), "l": None})
    root = put(store, {"e": [entry(B1, t=right)], "l": left})
    assert verify_tree(store, root) == 4
    assert [k for k, _ in MST.load(store, root).items()] == [A0, B1, C0, D0]
    assert MST.from_items(MemoryBlockStore(), [(k, LEAF) for k in (A0, B1, C0, D0)]).root() == root


def test_unsorted_keys() -> None:
    store = MemoryBlockStore()
    root = put(store, {"e": [entry(B0), entry(A0, B0)], "l": None})
    assert_rejected(store, root, "ascending")


def test_duplicate_key() -> None:
    store = MemoryBlockStore()
    root = put(store, {"e": [entry(A0), {"k": b"", "p": len(A0), "t": None, "v": LEAF}], "l": None})
    assert_rejected(store, root, "duplicate")


def test_key_at_wrong_depth_for_its_node() -> None:
    store = MemoryBlockStore()
    root = put(store, {"e": entries([A0, B1]), "l": None})
    assert_rejected(store, root, "depth")


def test_subtree_that_skips_a_level() -> None:
    store = MemoryBlockStore()
    child = put(store, {"e": entries([A0]), "l": None})  # level 0 under a level-2 root
    root = put(store, {"e": [entry(C2)], "l": child})
    assert_rejected(store, root, "level")


def test_subtree_keys_outside_parent_range() -> None:
    store = MemoryBlockStore()
    child = put(store, {"e": entries([D0]), "l": None})  # D0 > B1 but linked left of B1
    root = put(store, {"e": [entry(B1)], "l": child})
    assert_rejected(store, root, "range")


@pytest.mark.parametrize(
    ("second", "match"),
    [
        ({"k": b"0/601692", "p": 99, "t": None, "v": LEAF}, "out of range"),
        ({"k": b"B0/601692", "p": -1, "t": None, "v": LEAF}, "out of range"),
        # Shares "" with A0 only, but claims a shorter prefix would be fine; claiming less than the real
        # shared prefix is not: A0/374913 vs A0/9 share 3 bytes.
        ({"k": b"0/9", "p": 1, "t": None, "v": LEAF}, "full shared prefix"),
    ],
)
def test_bad_prefix_length(second: dict[str, Any], match: str) -> None:
    store = MemoryBlockStore()
    root = put(store, {"e": [entry(A0), second], "l": None})
    with pytest.raises(MSTError, match=match):
        verify_tree(store, root)


def test_first_entry_must_have_prefix_zero() -> None:
    store = MemoryBlockStore()
    root = put(store, {"e": [{"k": b"0/374913", "p": 1, "t": None, "v": LEAF}], "l": None})
    assert_rejected(store, root, "out of range")


def test_empty_root_pointing_down() -> None:
    store = MemoryBlockStore()
    child = put(store, {"e": entries([A0]), "l": None})
    root = put(store, {"e": [], "l": child})
    with pytest.raises(MSTError, match="empty node"):
        verify_tree(store, root)
    with pytest.raises(MSTError, match="empty node"):
        MST.load(store, root)


def test_empty_node_below_the_root() -> None:
    store = MemoryBlockStore()
    empty = put(store, {"e": [], "l": None})
    root = put(store, {"e": [entry(B1)], "l": empty})
    assert_rejected(store, root, "empty MST node")


def test_level_zero_node_with_subtree() -> None:
    store = MemoryBlockStore()
    child = put(store, {"e": entries([A0]), "l": None})
    root = put(store, {"e": entries([B0]), "l": child})
    assert_rejected(store, root, "level 0")


@pytest.mark.parametrize("where", ["l", "t"])
def test_non_dag_cbor_node_link(where: str) -> None:
    store = MemoryBlockStore()
    data = cbrrr.encode_dag_cbor({"e": entries([A0]), "l": None})
    raw_link = cid_for_raw(data)  # right hash, wrong codec
    store.put_block(raw_link, data)
    node: dict[str, Any] = {"e": [entry(B1)], "l": None}
    if where == "l":
        node["l"] = raw_link
    else:
        node["e"][0]["t"] = raw_link
    root = put(store, node)
    assert_rejected(store, root, "blessed dag-cbor")


def test_malformed_leaf_cid() -> None:
    store = MemoryBlockStore()
    root = put(store, {"e": [entry(A0, v=CID(b"\x01\x71\x12\x20short"))], "l": None})
    assert_rejected(store, root, "not a valid CID")


def test_root_cid_must_be_dag_cbor() -> None:
    store = MemoryBlockStore()
    data = cbrrr.encode_dag_cbor({"e": entries([A0]), "l": None})
    raw = cid_for_raw(data)
    store.put_block(raw, data)
    with pytest.raises(MSTError):
        verify_tree(store, raw)
    with pytest.raises(MSTError):
        MST.load(store, raw)


@pytest.mark.parametrize(
    ("node", "match"),
    [
        ({"e": [{"k": b"A0/374913", "p": 0.0, "t": None, "v": LEAF}], "l": None}, "wrong types"),
        ({"e": [{"k": "A0/374913", "p": 0, "t": None, "v": LEAF}], "l": None}, "wrong types"),
        ({"e": [{"k": b"A0/374913", "p": 0, "t": None, "v": LEAF, "x": 1}], "l": None}, "exactly the fields"),
        ({"e": [{"k": b"A0/374913", "p": 0, "v": LEAF}], "l": None}, "exactly the fields"),
        ({"e": [{"k": b"A0/374913", "p": 0, "t": None, "v": LEAF}]}, "exactly the fields"),
        ({"e": [], "l": None, "z": 1.5}, "exactly the fields"),
        ({"e": {}, "l": None}, "array"),
        ({"e": [[b"A0/374913", 0, None, LEAF]], "l": None}, "exactly the fields"),
        ({"e": [{"k": b"A0/374913", "p": False, "t": None, "v": LEAF}], "l": None}, "wrong types"),
        ({"e": [{"k": b"A0/374913", "p": 0, "t": None, "v": b"\x01"}], "l": None}, "wrong types"),
        ({"e": [], "l": 5}, "blessed dag-cbor"),
        ([], "map"),
    ],
)
def test_wrong_shapes_and_types(node: Any, match: str) -> None:
    store = MemoryBlockStore()
    root = put(store, node)
    with pytest.raises(MSTError, match=match):
        verify_tree(store, root)
    with pytest.raises(MSTError, match=match):
        list(MST.load(store, root).items())


def test_invalid_key_characters() -> None:
    store = MemoryBlockStore()
    for bad in (b"A0 374913", b"nocollection", b"a/b/c", b"/x", b"x/", "caf\u00e9/1".encode()):
        root = put(store, {"e": [{"k": bad, "p": 0, "t": None, "v": LEAF}], "l": None})
        with pytest.raises(MSTError, match="invalid MST key"):
            verify_tree(store, root)


def test_too_many_entries() -> None:
    keys = sorted(k for k in (f"coll/k{i:05d}" for i in range(2 * MAX_ENTRIES)) if key_depth(k) == 0)
    keys = keys[: MAX_ENTRIES + 1]
    store = MemoryBlockStore()
    root = put(store, {"e": entries(keys), "l": None})
    assert_rejected(store, root, "entries")
    ok = put(store, {"e": entries(keys[:MAX_ENTRIES]), "l": None})
    assert verify_tree(store, ok) == MAX_ENTRIES


def test_non_canonical_cbor() -> None:
    store = MemoryBlockStore()
    good = cbrrr.encode_dag_cbor({"e": [], "l": None})
    assert good == b"\xa2ae\x80al\xf6"
    swapped = b"\xa2al\xf6ae\x80"  # map keys out of canonical order
    cid = store.put(swapped)
    with pytest.raises(MSTError, match="DRISL"):
        verify_tree(store, cid)
    with pytest.raises(MSTError, match="DRISL"):
        MST.load(store, cid)


def test_block_that_does_not_match_its_cid() -> None:
    store = MemoryBlockStore()
    real = cbrrr.encode_dag_cbor({"e": entries([A0]), "l": None})
    fake = cbrrr.encode_dag_cbor({"e": entries([B0]), "l": None})
    cid = cid_for_cbor(real)
    store.put_block(cid, fake)
    with pytest.raises(MSTError, match="hash"):
        verify_tree(store, cid)
    # Lazy loading checks the hash when it decodes; a node already checked and cached under that CID is
    # used as is (its content is what the CID names).
    clear_node_cache()
    with pytest.raises(MSTError, match="hash"):
        MST.load(store, cid)


def test_missing_blocks() -> None:
    store = MemoryBlockStore()
    tree = MST.from_items(store, [(k, LEAF) for k in (A0, B1, C0, D0)])
    root = tree.root()
    with pytest.raises(MissingBlock):
        MST.load(store, root)
    with pytest.raises(MissingBlock):
        verify_tree(store, root)
    # Root only: the tree opens, reading below it fails; the node cache must not hide the gap.
    blocks = tree.new_blocks()
    full = MemoryBlockStore(dict(blocks))
    assert verify_tree(full, root) == 4 and len(list(MST.load(full, root).items())) == 4
    partial = MemoryBlockStore({root: blocks[root]})
    lazy = MST.load(partial, root)
    assert lazy.get(B1) == LEAF
    with pytest.raises(MissingBlock):
        lazy.get(A0)
    with pytest.raises(MissingBlock):
        list(lazy.items())


def test_key_holding_a_newline_is_invalid() -> None:
    # Key syntax is checked with one regex over newline-joined keys: a key holding a newline must not pass
    # as two valid keys. Both halves are valid MST keys; the whole is not.
    key = next(k for k in (f"a.b.c/x{i}\na.b.c/y" for i in range(200)) if key_depth(k) == 0)
    store = MemoryBlockStore()
    root = put(store, {"e": [{"k": key.encode(), "p": 0, "t": None, "v": LEAF}], "l": None})
    assert_rejected(store, root, "invalid MST key")
    with pytest.raises(MSTError, match="invalid MST key"):
        MST.from_items(MemoryBlockStore(), [(key, LEAF)])
    with pytest.raises(MSTError, match="invalid MST key"):
        MST.from_items(MemoryBlockStore(), [(A0, LEAF), (key, LEAF)])


def test_walk_tree_returns_items_in_order() -> None:
    keys = [f"com.example.thing/k{i:04d}" for i in range(600)]
    tree = MST.from_items(MemoryBlockStore(), [(k, cid_for_cbor(k.encode())) for k in keys])
    blocks = {c.cid_bytes: b for c, b in tree.new_blocks().items()}
    root = tree.root()
    walked_keys, walked_vals = walk_tree(blocks.get, root, hashed=True)
    assert [k.decode() for k in walked_keys] == keys
    assert walked_vals == [cid_for_cbor(k.encode()) for k in keys]
    assert walk_tree(blocks.get, root, hashed=False) == (walked_keys, walked_vals)
    # without ``hashed`` a node block that does not match its CID is caught
    some_node = next(c for c in blocks if c != root.cid_bytes)
    blocks[some_node] = blocks[root.cid_bytes]
    with pytest.raises(MSTError, match="hash"):
        walk_tree(blocks.get, root, hashed=False)
    del blocks[some_node]
    with pytest.raises(MissingBlock):
        walk_tree(blocks.get, root, hashed=True)
