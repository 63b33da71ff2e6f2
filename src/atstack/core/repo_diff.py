"""What one commit changed in the MST: nodes added and dropped, and the covering proof of its ops.

Spec: atproto.com/specs/repository ("Repository Diffs") and /sync (a ``#commit`` slice carries the nodes a
relay needs to invert the ops). These run on every write of a PDS over blocks of our own store, so nodes are
decoded without the strict checks :mod:`atstack.core.mst` applies to untrusted input, each at most once per
commit; the proof follows the same rule as :func:`atstack.core.mst.proof_blocks` (search path of each key,
plus, for a present key, the facing spines of the subtrees beside it) and tests check the two agree.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

import cbrrr

from atstack.core.blockstore import BlockStore, MissingBlock
from atstack.core.cid import CID
from atstack.core.mst import key_depth
from atstack.core.mst.node import Node, Sub, cached_node

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


Decoded = tuple[bytes, Sequence[bytes], Sequence[Sub]]  # block, full keys, subtree slots (l, then each t)


def _cid(sub: Node | CID) -> CID:
    return sub if type(sub) is CID else sub.cid  # type: ignore[union-attr,return-value]


class TrustedNodes:
    """Memoised decoding of MST node blocks we wrote ourselves.

    Nodes are named by CID or given as sealed :class:`Node` objects (the in-memory trees of the previous and
    the new commit): those, and nodes the MST already holds decoded in its node cache, are used as they are,
    so a commit decodes only the few nodes no tree object holds.
    """

    __slots__ = ("get_block", "memo")

    def __init__(self, store: BlockStore) -> None:
        self.get_block = store.get
        self.memo: dict[CID, Decoded] = {}

    def __call__(self, sub: CID | Node) -> Decoded:
        if type(sub) is Node:
            return sub.data, sub.keys, sub.subs  # type: ignore[return-value]
        hit = self.memo.get(sub)  # type: ignore[arg-type]
        if hit is not None:
            return hit
        node = cached_node(sub)  # type: ignore[arg-type]
        if node is not None and node.data is not None:
            hit = self.memo[sub] = (node.data, node.keys, node.subs)  # type: ignore[index]
            return hit
        block = self.get_block(sub)  # type: ignore[arg-type]
        if block is None:
            raise MissingBlock(sub)  # type: ignore[arg-type]
        decoded = _decode(block)
        keys: list[bytes] = []
        subs: list[Sub] = [decoded["l"]]
        prev = b""
        for e in decoded["e"]:
            p = e["p"]
            prev = prev[:p] + e["k"] if p else e["k"]
            keys.append(prev)
            subs.append(e["t"])
        hit = self.memo[sub] = (block, keys, subs)  # type: ignore[index]
        return hit


def tree_delta(
    nodes: TrustedNodes, old_root: CID | Node, new_root: CID | Node
) -> tuple[dict[CID, bytes], set[CID]]:
    """MST nodes only the new tree has (with their blocks), and nodes only the old tree has.

    Both trees are walked level by level from the top, never entering a node both hold: a shared node sits at
    the same level in both trees, and if either parent were shared both would be (a shared subtree is
    identical), so at each level a shared node has been reached from both sides or from neither. The roots
    may be given as sealed :class:`Node` objects; the walk then follows their in-memory subtrees.
    """
    added: dict[CID, bytes] = {}
    removed: set[CID] = set()
    old_cid = _cid(old_root)
    new_cid = _cid(new_root)
    if old_cid == new_cid:
        return added, removed
    levels: list[int] = []
    for root in (old_root, new_root):
        keys = nodes(root)[1]
        # an empty root is the empty tree; otherwise the level is any key's depth
        levels.append(key_depth(keys[0]) if keys else 0)
    # Per level: binary CID -> the node as reached (Node object or CID); bytes keys hash in C.
    old_level: dict[bytes, Node | CID] = {old_cid.cid_bytes: old_root}
    new_level: dict[bytes, Node | CID] = {new_cid.cid_bytes: new_root}
    for level in range(max(levels), -1, -1):
        old_here = old_level if levels[0] == level else {}
        new_here = new_level if levels[1] == level else {}
        old_below: dict[bytes, Node | CID] = {}
        new_below: dict[bytes, Node | CID] = {}
        for raw, node in old_here.items():
            if raw not in new_here:
                removed.add(_cid(node))
                for sub in nodes(node)[2]:
                    if sub is not None:
                        old_below[(sub if type(sub) is CID else sub.cid).cid_bytes] = sub  # type: ignore[union-attr]
        for raw, node in new_here.items():
            if raw not in old_here:
                block, _keys, subs = nodes(node)
                added[_cid(node)] = block
                for sub in subs:
                    if sub is not None:
                        new_below[(sub if type(sub) is CID else sub.cid).cid_bytes] = sub  # type: ignore[union-attr]
        if levels[0] == level:
            old_level, levels[0] = old_below, level - 1
        if levels[1] == level:
            new_level, levels[1] = new_below, level - 1
    return added, removed


def covering_proof(nodes: TrustedNodes, root: CID | Node, paths: Iterable[str]) -> dict[CID, bytes]:
    """Node blocks proving each path's presence or absence under ``root`` and enough to invert ops on them."""
    block, top_keys, top_subs = nodes(root)
    out: dict[CID, bytes] = {_cid(root): block}
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
                        out[_cid(sub)] = b
                        sub = s[-1] if rightmost else s[0]
                break
            sub = subs[i]
            if sub is None:
                break
            b, keys, subs = nodes(sub)
            out[_cid(sub)] = b
    return out
