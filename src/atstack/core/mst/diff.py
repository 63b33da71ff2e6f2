"""Record-level difference between two MST versions, skipping subtrees both versions share.

Spec: atproto.com/specs/repository ("Repository Diffs") and /sync (``#repoOp``). Both trees are walked as
key-ordered streams of leaves and not-yet-opened subtrees. Equal subtree CIDs on both heads are skipped
whole; otherwise a subtree is opened only when its keys could interleave with the other head, so the cost
follows the size of the change, not of the repo.
"""

from __future__ import annotations

from atstack.core.blockstore import BlockStore
from atstack.core.cid import CID
from atstack.core.mst.node import KEY_MAX, KEY_MIN, load_node, load_root
from atstack.core.repo_op import RepoOp

__all__ = ["diff"]

# Stream items: a leaf is (key, val); an unopened subtree is (cid, level, lo, hi) with its keys in (lo, hi).
_Item = tuple


def _start(store: BlockStore, root: CID | None) -> list[_Item]:
    if root is None:
        return []
    node = load_root(store, root)
    return [] if node is None else [(root, node.level, KEY_MIN, KEY_MAX)]


def _open(store: BlockStore, stack: list[_Item]) -> None:
    """Replace the subtree on top of ``stack`` by its contents (pushed in reverse, so in order when popped)."""
    cid, level, lo, hi = stack.pop()
    node = load_node(store, cid, level, lo, hi)
    keys = node.keys
    vals = node.vals
    subs = node.subs
    n = len(keys)
    push = stack.append
    for i in range(n, -1, -1):
        s = subs[i]
        if s is not None:
            push((s, level - 1, keys[i - 1] if i else lo, keys[i] if i < n else hi))
        if i:
            push((keys[i - 1], vals[i - 1]))


def diff(store: BlockStore, before: CID | None, after: CID) -> list[RepoOp]:
    """The create/update/delete ops that turn the tree at ``before`` (None: empty) into the one at ``after``.

    Sorted by path. Reads only nodes that differ (plus their direct neighbours) from ``store``.
    """
    a = _start(store, before)
    b = _start(store, after)
    ops: list[RepoOp] = []
    emit = ops.append
    while a and b:
        x = a[-1]
        y = b[-1]
        if len(x) == 2:
            if len(y) == 2:
                kx = x[0]
                ky = y[0]
                if kx == ky:
                    if x[1] != y[1]:
                        emit(RepoOp("update", kx.decode(), y[1], x[1]))
                    a.pop()
                    b.pop()
                elif kx < ky:
                    emit(RepoOp("delete", kx.decode(), None, x[1]))
                    a.pop()
                else:
                    emit(RepoOp("create", ky.decode(), y[1]))
                    b.pop()
            elif x[0] <= y[2]:
                # The leaf sorts before everything in the other side's subtree.
                emit(RepoOp("delete", x[0].decode(), None, x[1]))
                a.pop()
            else:
                _open(store, b)
        elif len(y) == 2:
            if y[0] <= x[2]:
                emit(RepoOp("create", y[0].decode(), y[1]))
                b.pop()
            else:
                _open(store, a)
        elif x[0] == y[0]:
            a.pop()
            b.pop()
        elif x[1] > y[1]:
            _open(store, a)
        elif y[1] > x[1]:
            _open(store, b)
        else:
            _open(store, a)
            _open(store, b)
    while a:
        x = a[-1]
        if len(x) == 2:
            emit(RepoOp("delete", x[0].decode(), None, x[1]))
            a.pop()
        else:
            _open(store, a)
    while b:
        y = b[-1]
        if len(y) == 2:
            emit(RepoOp("create", y[0].decode(), y[1]))
            b.pop()
        else:
            _open(store, b)
    return ops
