"""What one commit changed in the MST: nodes added and dropped, and the covering proof of its ops.

Spec: atproto.com/specs/repository ("Repository Diffs") and /sync (a ``#commit`` slice carries the nodes a
relay needs to invert the ops). These run on every write of a PDS over blocks of our own store, so nodes are
decoded without the strict checks :mod:`atstack.core.mst` applies to untrusted input, each at most once per
commit; the proof follows the same rule as :func:`atstack.core.mst.proof_blocks` (search path of each key,
plus, for a present key, the facing spines of the subtrees beside it) and tests check the two agree.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

import cbrrr

from atstack.core.blockstore import BlockStore, MissingBlock
from atstack.core.cid import CID
from atstack.core.mst import key_depth

__all__ = ["Overlay", "TrustedNodes", "covering_proof", "tree_delta"]

_decode = cbrrr.decode_dag_cbor


class Overlay:
    """Read view of a store plus blocks not written to it yet."""

    __slots__ = ("base", "extra")

    def __init__(self, base: BlockStore, extra: dict[CID, bytes]) -> None:
        self.base = base
        self.extra = extra

    def get(self, cid: CID) -> bytes | None:
        block = self.extra.get(cid)
        return block if block is not None else self.base.get(cid)

    def has(self, cid: CID) -> bool:
        return cid in self.extra or self.base.has(cid)


Decoded = tuple[bytes, list[bytes], list[CID | None]]  # block, full keys, subtree links (l, then each t)


class TrustedNodes:
    """Memoised decoding of MST node blocks we wrote ourselves."""

    __slots__ = ("get_block", "memo")

    def __init__(self, store: BlockStore) -> None:
        self.get_block = store.get
        self.memo: dict[CID, Decoded] = {}

    def __call__(self, cid: CID) -> Decoded:
        hit = self.memo.get(cid)
        if hit is not None:
            return hit
        block = self.get_block(cid)
        if block is None:
            raise MissingBlock(cid)
        node = _decode(block)
        keys: list[bytes] = []
        subs: list[CID | None] = [node["l"]]
        prev = b""
        for e in node["e"]:
            p = e["p"]
            prev = prev[:p] + e["k"] if p else e["k"]
            keys.append(prev)
            subs.append(e["t"])
        hit = self.memo[cid] = (block, keys, subs)
        return hit


def tree_delta(nodes: TrustedNodes, old_root: CID, new_root: CID) -> tuple[dict[CID, bytes], set[CID]]:
    """MST nodes only the new tree has (with their blocks), and nodes only the old tree has.

    Both trees are walked level by level from the top, never entering a node both hold: a shared node sits at
    the same level in both trees, and if either parent were shared both would be (a shared subtree is
    identical), so at each level a shared node has been reached from both sides or from neither.
    """
    added: dict[CID, bytes] = {}
    removed: set[CID] = set()
    if old_root == new_root:
        return added, removed
    levels: list[int] = []
    for root in (old_root, new_root):
        keys = nodes(root)[1]
        # an empty root is the empty tree; otherwise the level is any key's depth
        levels.append(key_depth(keys[0]) if keys else 0)
    old_level: dict[CID, None] = {old_root: None}
    new_level: dict[CID, None] = {new_root: None}
    for level in range(max(levels), -1, -1):
        old_here = old_level if levels[0] == level else {}
        new_here = new_level if levels[1] == level else {}
        old_below: dict[CID, None] = {}
        new_below: dict[CID, None] = {}
        for cid in old_here:
            if cid not in new_here:
                removed.add(cid)
                for sub in nodes(cid)[2]:
                    if sub is not None:
                        old_below[sub] = None
        for cid in new_here:
            if cid not in old_here:
                block, _keys, subs = nodes(cid)
                added[cid] = block
                for sub in subs:
                    if sub is not None:
                        new_below[sub] = None
        if levels[0] == level:
            old_level, levels[0] = old_below, level - 1
        if levels[1] == level:
            new_level, levels[1] = new_below, level - 1
    return added, removed


def covering_proof(nodes: TrustedNodes, root: CID, paths: Iterable[str]) -> dict[CID, bytes]:
    """Node blocks proving each path's presence or absence under ``root`` and enough to invert ops on them."""
    block, top_keys, top_subs = nodes(root)
    out: dict[CID, bytes] = {root: block}
    for path in paths:
        raw = path.encode()
        keys, subs = top_keys, top_subs
        while True:
            i = bisect_left(keys, raw)
            if i < len(keys) and keys[i] == raw:
                # undoing a create merges the subtrees on either side along their facing edges
                for sub, rightmost in ((subs[i], True), (subs[i + 1], False)):
                    while sub is not None:
                        b, _k, s = nodes(sub)
                        out[sub] = b
                        sub = s[-1] if rightmost else s[0]
                break
            sub = subs[i]
            if sub is None:
                break
            b, keys, subs = nodes(sub)
            out[sub] = b
    return out
