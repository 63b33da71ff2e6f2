"""Covering proofs for changed keys, and operation inversion (checking a commit against ``prevData``).

Spec: atproto.com/specs/sync (Sync 1.1: a ``#commit`` carries the nodes needed to invert its ops) and
/repository ("Repository Diffs"). The proof of a key is its search path from the root: that proves presence
or absence, and is everything re-inserting the key (undoing a delete) touches, since the insert splits
exactly the subtrees on that path. Undoing a create removes the key, which merges the two subtrees beside it
along their facing edges, so a present key's proof adds the right spine of its left subtree and the left
spine of its right subtree.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from atstack.core.blockstore import BlockStore, MissingBlock
from atstack.core.cid import CID
from atstack.core.mst.keys import MSTError
from atstack.core.mst.node import KEY_MAX, KEY_MIN, Sub, load_node, load_root
from atstack.core.mst.tree import MST
from atstack.core.repo_op import RepoOp

__all__ = ["invert_ops", "proof_blocks"]


def proof_blocks(store: BlockStore, root: CID, keys: Iterable[str]) -> dict[CID, bytes]:
    """Every node block needed to prove presence/absence of each key and to invert ops on those keys."""
    out: dict[CID, bytes] = {}

    def add(cid: CID) -> None:
        if cid not in out:
            data = store.get(cid)
            if data is None:
                raise MissingBlock(cid)
            out[cid] = data

    def spine(sub: Sub, level: int, lo: bytes, hi: bytes, rightmost: bool) -> None:
        while sub is not None:
            node = load_node(store, sub, level, lo, hi)
            add(sub)  # type: ignore[arg-type]
            if rightmost:
                if node.keys:
                    lo = node.keys[-1]
                sub = node.subs[-1]
            else:
                if node.keys:
                    hi = node.keys[0]
                sub = node.subs[0]
            level -= 1

    add(root)
    top = load_root(store, root)
    if top is None:
        return out
    for key in keys:
        raw = key.encode()
        node = top
        lo, hi = KEY_MIN, KEY_MAX
        while True:
            nkeys = node.keys
            subs = node.subs
            n = len(nkeys)
            i = bisect_left(nkeys, raw)
            level = node.level - 1
            if i < n and nkeys[i] == raw:
                spine(subs[i], level, nkeys[i - 1] if i else lo, raw, True)
                spine(subs[i + 1], level, raw, nkeys[i + 1] if i + 1 < n else hi, False)
                break
            sub = subs[i]
            if sub is None:
                break
            if i:
                lo = nkeys[i - 1]
            if i < n:
                hi = nkeys[i]
            node = load_node(store, sub, level, lo, hi)
            add(sub)  # type: ignore[arg-type]
    return out


def invert_ops(store: BlockStore, root_after: CID, ops: Iterable[RepoOp]) -> CID:
    """Undo ``ops`` on the tree at ``root_after`` using only blocks in ``store``; returns the root before.

    Each op is checked against the tree it claims to have produced (a create/update's ``cid`` must be the
    current value, a deleted key must be absent); a mismatch or a repeated path raises :class:`MSTError`,
    a block the proof lacks raises :class:`MissingBlock`.
    """
    tree = MST.load(store, root_after)
    seen: set[str] = set()
    for op in ops:
        path = op.path
        if path in seen:
            raise MSTError(f"path {path!r} appears in more than one op")
        seen.add(path)
        current = tree.get(path)
        if op.action == "delete":
            if current is not None:
                raise MSTError(f"deleted path {path!r} is still in the tree")
            if op.prev is None:
                raise MSTError(f"delete of {path!r} has no prev")
            tree = tree.put(path, op.prev)
        elif op.action == "create":
            if current is None or current != op.cid:
                raise MSTError(f"created path {path!r} does not hold the op's cid")
            tree = tree.delete(path)
        elif op.action == "update":
            if current is None or current != op.cid:
                raise MSTError(f"updated path {path!r} does not hold the op's cid")
            if op.prev is None:
                raise MSTError(f"update of {path!r} has no prev")
            tree = tree.put(path, op.prev)
        else:
            raise MSTError(f"unknown op action {op.action!r}")
    return tree.root()
