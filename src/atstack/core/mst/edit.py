"""Path-copying edits of an MST: insert, remove, and the split/merge of subtrees they need.

Spec: atproto.com/specs/repository ("MST Structure"). Each function takes a subtree slot ``sub`` at ``level``
covering the open key range (lo, hi) and returns the new slot; only nodes on the edited path are rebuilt
(new :class:`Node` objects without CID), every other subtree is shared. The shape rules the results keep:
no empty node at the bottom of a branch (an empty node becomes ``None``), empty intermediate nodes kept so
links never skip a level; the caller trims empty nodes off the top.

A node rebuilt only because one child changed records the node it copies (``base``) so sealing can patch
that block; only an already-encoded base is recorded, so unsealed edits never chain old versions together.
"""

from __future__ import annotations

from bisect import bisect_left

from atstack.core.blockstore import BlockStore
from atstack.core.cid import CID
from atstack.core.mst.keys import MAX_ENTRIES, MSTError
from atstack.core.mst.node import Node, Sub, load_node

__all__ = ["chain", "insert", "merge", "remove", "split"]


def _mk(level: int, keys: tuple[bytes, ...], vals: tuple[CID, ...], subs: tuple[Sub, ...]) -> Node | None:
    if not keys and subs[0] is None:
        return None
    return Node(level, keys, vals, subs)


def chain(level: int, key: bytes, val: CID, depth: int) -> Node:
    """A new subtree at ``level`` holding only ``key`` (at ``depth`` ≤ level) under empty intermediates."""
    node = Node(depth, (key,), (val,), (None, None))
    for lvl in range(depth + 1, level + 1):
        node = Node(lvl, (), (), (node,))
    return node


def split(store: BlockStore, sub: Sub, level: int, lo: bytes, hi: bytes, key: bytes) -> tuple[Sub, Sub]:
    """Cut a subtree (which does not contain ``key``) into the parts before and after ``key``."""
    if sub is None:
        return None, None
    node = load_node(store, sub, level, lo, hi)
    keys = node.keys
    subs = node.subs
    i = bisect_left(keys, key)
    n = len(keys)
    if i == 0 and subs[0] is None:
        return None, sub
    if i == n and subs[n] is None:
        return sub, None
    left, right = split(store, subs[i], level - 1, keys[i - 1] if i else lo, keys[i] if i < n else hi, key)
    vals = node.vals
    return (
        _mk(level, keys[:i], vals[:i], (*subs[:i], left)),
        _mk(level, keys[i:], vals[i:], (right, *subs[i + 1 :])),
    )


def merge(store: BlockStore, a: Sub, b: Sub, level: int, lo: bytes, mid: bytes, hi: bytes) -> Sub:
    """Join two adjacent subtrees at ``level``: ``a`` in (lo, mid), ``b`` in (mid, hi)."""
    if a is None:
        return b
    if b is None:
        return a
    na = load_node(store, a, level, lo, mid)
    nb = load_node(store, b, level, mid, hi)
    inner = merge(
        store,
        na.subs[-1],
        nb.subs[0],
        level - 1,
        na.keys[-1] if na.keys else lo,
        mid,
        nb.keys[0] if nb.keys else hi,
    )
    return Node(level, na.keys + nb.keys, na.vals + nb.vals, (*na.subs[:-1], inner, *nb.subs[1:]))


def insert(
    store: BlockStore, sub: Sub, level: int, lo: bytes, hi: bytes, key: bytes, val: CID, depth: int
) -> Sub:
    """Put ``key`` (of ``depth`` ≤ level) into a subtree; returns ``sub`` itself when nothing changes."""
    if sub is None:
        return chain(level, key, val, depth)
    node = load_node(store, sub, level, lo, hi)
    keys = node.keys
    subs = node.subs
    n = len(keys)
    i = bisect_left(keys, key)
    if depth == level:
        vals = node.vals
        if i < n and keys[i] == key:
            if vals[i] == val:
                return sub
            return Node(level, keys, (*vals[:i], val, *vals[i + 1 :]), subs)
        if n >= MAX_ENTRIES:
            raise MSTError(f"an MST node would hold more than {MAX_ENTRIES} entries")
        left, right = split(
            store, subs[i], level - 1, keys[i - 1] if i else lo, keys[i] if i < n else hi, key
        )
        return Node(
            level,
            (*keys[:i], key, *keys[i:]),
            (*vals[:i], val, *vals[i:]),
            (*subs[:i], left, right, *subs[i + 1 :]),
        )
    child = subs[i]
    new = insert(store, child, level - 1, keys[i - 1] if i else lo, keys[i] if i < n else hi, key, val, depth)
    if new is child:
        return sub
    return Node(
        level,
        keys,
        node.vals,
        (*subs[:i], new, *subs[i + 1 :]),
        base=node if node.data is not None else None,
        slot=i,
    )


def remove(store: BlockStore, sub: Sub, level: int, lo: bytes, hi: bytes, key: bytes, depth: int) -> Sub:
    """Delete ``key`` (of ``depth`` ≤ level) from a subtree; raises KeyError when it is absent."""
    if sub is None:
        raise KeyError(key.decode())
    node = load_node(store, sub, level, lo, hi)
    keys = node.keys
    subs = node.subs
    vals = node.vals
    n = len(keys)
    i = bisect_left(keys, key)
    if depth == level:
        if i == n or keys[i] != key:
            raise KeyError(key.decode())
        joined = merge(
            store,
            subs[i],
            subs[i + 1],
            level - 1,
            keys[i - 1] if i else lo,
            key,
            keys[i + 1] if i + 1 < n else hi,
        )
        return _mk(
            level,
            (*keys[:i], *keys[i + 1 :]),
            (*vals[:i], *vals[i + 1 :]),
            (*subs[:i], joined, *subs[i + 2 :]),
        )
    new = remove(store, subs[i], level - 1, keys[i - 1] if i else lo, keys[i] if i < n else hi, key, depth)
    if new is None:
        return _mk(level, keys, vals, (*subs[:i], None, *subs[i + 1 :]))
    return Node(
        level,
        keys,
        vals,
        (*subs[:i], new, *subs[i + 1 :]),
        base=node if node.data is not None else None,
        slot=i,
    )
