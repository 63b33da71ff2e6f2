"""The persistent Merkle Search Tree of a repository: lookups, edits, range scans, root CID, new blocks.

Spec: atproto.com/specs/repository ("MST Structure"). Every edit returns a new :class:`MST` sharing all
unchanged subtrees with the old one; nodes are read lazily from the block store and checked as they are
read (see :mod:`atstack.core.mst.node`). CIDs of new nodes are computed once, on :meth:`MST.root`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from atstack.core.blockstore import BlockStore
from atstack.core.cid import CID, cid_for_cbor
from atstack.core.mst.build import build_tree
from atstack.core.mst.edit import chain, insert, remove, split
from atstack.core.mst.keys import MAX_KEY_DEPTH, MSTError, check_key, key_depth
from atstack.core.mst.node import KEY_MAX, KEY_MIN, Node, Sub, encode_node, load_node, load_root, seal

__all__ = ["EMPTY_NODE", "EMPTY_ROOT", "MST"]

EMPTY_NODE = encode_node(Node(0, (), (), (None,)))
EMPTY_ROOT = cid_for_cbor(EMPTY_NODE)  # bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm


class MST:
    """An immutable view of one MST version over a block store."""

    __slots__ = ("_root", "store")

    def __init__(self, store: BlockStore, root: Node | None) -> None:
        self.store = store
        self._root = root

    @classmethod
    def empty(cls, store: BlockStore) -> MST:
        return cls(store, None)

    @classmethod
    def load(cls, store: BlockStore, root: CID) -> MST:
        """The tree at ``root``; only the root node is read now, the rest as it is needed."""
        return cls(store, load_root(store, root))

    @classmethod
    def from_items(cls, store: BlockStore, items: Iterable[tuple[str, CID]]) -> MST:
        """Bulk build from key → CID pairs (the blocks are in :meth:`new_blocks`, not written to ``store``)."""
        return cls(store, build_tree(items))

    def __repr__(self) -> str:
        return f"MST(root={self.root().encode()})"

    # ---- reading ----

    def get(self, key: str) -> CID | None:
        node = self._root
        if node is None:
            return None
        raw = key.encode()
        depth = key_depth(raw)
        store = self.store
        lo, hi = KEY_MIN, KEY_MAX
        while True:
            keys = node.keys
            i = bisect_left(keys, raw)
            if i < len(keys) and keys[i] == raw:
                return node.vals[i]
            # A key lives exactly at its own depth: nothing to find below that level.
            if node.level <= depth:
                return None
            sub = node.subs[i]
            if sub is None:
                return None
            if i:
                lo = keys[i - 1]
            if i < len(keys):
                hi = keys[i]
            node = load_node(store, sub, node.level - 1, lo, hi)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def items(self, start: str | None = None, end: str | None = None) -> Iterator[tuple[str, CID]]:
        """Entries in bytewise key order with ``start`` ≤ key < ``end``."""
        lo = start.encode() if start is not None else KEY_MIN
        hi = end.encode() if end is not None else KEY_MAX
        for key, val in self._scan(lo, hi):
            yield key.decode(), val

    def prefix(self, prefix: str) -> Iterator[tuple[str, CID]]:
        """Entries whose key starts with ``prefix`` (e.g. ``"app.bsky.feed.post/"``)."""
        lo = prefix.encode()
        # Keys are ASCII, so every key with the prefix sorts below prefix + 0xff.
        for key, val in self._scan(lo, lo + b"\xff"):
            yield key.decode(), val

    def _scan(self, lo: bytes, hi: bytes) -> Iterator[tuple[bytes, CID]]:
        if self._root is None or lo >= hi:
            return
        store = self.store
        # Work stack of ("node slot", level, lower bound, upper bound) or (key, val) leaves, popped in order.
        stack: list[tuple] = [(self._root, self._root.level, KEY_MIN, KEY_MAX)]
        pop = stack.pop
        push = stack.extend
        while stack:
            item = pop()
            if len(item) == 2:
                yield item  # type: ignore[misc]
                continue
            sub, level, blo, bhi = item
            node = load_node(store, sub, level, blo, bhi)
            keys = node.keys
            vals = node.vals
            n = len(keys)
            a = bisect_left(keys, lo)  # first entry ≥ lo; subtree a may hold keys ≥ lo
            b = bisect_left(keys, hi)  # entries before b are < hi; subtree b may hold keys < hi
            if level == 0:
                if a < b:
                    push(reversed(list(zip(keys[a:b], vals[a:b], strict=True))))
                continue
            subs = node.subs
            work: list[tuple] = []
            for i in range(a, b + 1):
                s = subs[i]
                if s is not None:
                    work.append((s, level - 1, keys[i - 1] if i else blo, keys[i] if i < n else bhi))
                if i < b:
                    work.append((keys[i], vals[i]))
            work.reverse()
            push(work)

    def count(self) -> int:
        """Number of records (reads every node once; memoised per node)."""
        return 0 if self._root is None else self._count(self._root, self._root.level, KEY_MIN, KEY_MAX)

    def _count(self, sub: Sub, level: int, lo: bytes, hi: bytes) -> int:
        node = load_node(self.store, sub, level, lo, hi)
        if node.count >= 0:
            return node.count
        keys = node.keys
        n = len(keys)
        total = n
        if level:
            for i, s in enumerate(node.subs):
                if s is not None:
                    total += self._count(s, level - 1, keys[i - 1] if i else lo, keys[i] if i < n else hi)
        node.count = total
        return total

    # ---- editing ----

    def put(self, key: str, value: CID) -> MST:
        """Insert or update ``key``; returns the new tree (``self`` if the value is unchanged)."""
        raw = check_key(key)
        if type(value) is not CID:
            raise MSTError(f"MST value for {key[:80]!r} must be a CID")
        depth = key_depth(raw)
        if depth > MAX_KEY_DEPTH:
            raise MSTError(f"MST key depth {depth} exceeds the limit of {MAX_KEY_DEPTH}")
        root = self._root
        if root is None:
            new: Sub = chain(depth, raw, value, depth)
        elif depth > root.level:
            # The key becomes the new top: cut the old tree around it and lift both halves to depth - 1.
            left, right = split(self.store, root, root.level, KEY_MIN, KEY_MAX, raw)
            for lvl in range(root.level + 1, depth):
                left = Node(lvl, (), (), (left,)) if left is not None else None
                right = Node(lvl, (), (), (right,)) if right is not None else None
            new = Node(depth, (raw,), (value,), (left, right))
        else:
            new = insert(self.store, root, root.level, KEY_MIN, KEY_MAX, raw, value, depth)
            if new is root:
                return self
        return MST(self.store, new)  # type: ignore[arg-type]

    def delete(self, key: str) -> MST:
        """Remove ``key``; raises KeyError if it is absent."""
        root = self._root
        if root is None:
            raise KeyError(key)
        raw = key.encode()
        depth = key_depth(raw)
        if depth > root.level:
            raise KeyError(key)
        new = remove(self.store, root, root.level, KEY_MIN, KEY_MAX, raw, depth)
        # The top must not be an empty node that only points down.
        while new is not None and not new.keys:  # type: ignore[union-attr]
            node: Node = new  # type: ignore[assignment]
            new = load_node(self.store, node.subs[0], node.level - 1, KEY_MIN, KEY_MAX)
        return MST(self.store, new)  # type: ignore[arg-type]

    # ---- serialising ----

    def root(self) -> CID:
        """The root CID (the commit's ``data``); encodes nodes created since the last call."""
        root = self._root
        if root is None:
            return EMPTY_ROOT
        cid = root.cid
        return cid if cid is not None else seal(root)

    @property
    def root_node(self) -> Node | None:
        """The root node object (None for the empty tree); sealed, with its CID and block, after :meth:`root`."""
        return self._root

    def new_blocks(self) -> dict[CID, bytes]:
        """Blocks of nodes this tree created (by edits or a bulk build) that ``store`` does not hold yet.

        A node found in the store is assumed to have its whole subtree there too, so after a commit's blocks
        are written only the edited paths are visited.
        """
        root = self._root
        store = self.store
        if root is None:
            return {} if store.has(EMPTY_ROOT) else {EMPTY_ROOT: EMPTY_NODE}
        self.root()
        out: dict[CID, bytes] = {}
        stack = [root]
        while stack:
            node = stack.pop()
            if node.stored or store.has(node.cid):  # type: ignore[arg-type]
                continue
            out[node.cid] = node.data  # type: ignore[index]
            for s in node.subs:
                if s is not None and type(s) is Node:
                    stack.append(s)
        return out
