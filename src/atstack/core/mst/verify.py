"""Full structural check of an untrusted MST (a repo import, a fetched ``getRepo`` CAR).

Spec: atproto.com/specs/repository ("MST Structure", "Security Considerations"). Every reachable node is
read from the store and decoded strictly by :func:`atstack.core.mst.node.decode_node` (not taken from the
node cache: this is the check that earns trust). On top of the per-node rules it checks what only the tree
shows: each subtree sits one level below its parent, its keys fall strictly between the parent's keys around
the link, no empty node ends a branch, and the root is not an empty node pointing down.
"""

from __future__ import annotations

from atstack.core.blockstore import BlockStore, MissingBlock
from atstack.core.cid import CID
from atstack.core.mst.keys import MSTError
from atstack.core.mst.node import KEY_MAX, KEY_MIN, Node, decode_node

__all__ = ["verify_tree"]


def verify_tree(store: BlockStore, root: CID) -> int:
    """Check the whole tree at ``root``; returns its number of records. Raises MSTError / MissingBlock."""
    if type(root) is not CID or not root.is_cidv1_dag_cbor_sha256_32():
        raise MSTError("MST root must be a blessed dag-cbor CID")
    get = store.get
    data = get(root)
    if data is None:
        raise MissingBlock(root)
    top = decode_node(root, data, None)
    count = 0
    stack: list[tuple[Node, bytes, bytes]] = [(top, KEY_MIN, KEY_MAX)]
    pop = stack.pop
    push = stack.append
    while stack:
        node, lo, hi = pop()
        keys = node.keys
        n = len(keys)
        if n and (keys[0] <= lo or keys[-1] >= hi):
            raise MSTError(f"MST node {node.cid.encode()} has keys outside its parent's range")  # type: ignore[union-attr]
        count += n
        level = node.level
        if not level:
            continue
        below = level - 1
        for i, sub in enumerate(node.subs):
            if sub is None:
                continue
            data = get(sub)
            if data is None:
                raise MissingBlock(sub)
            push((decode_node(sub, data, below), keys[i - 1] if i else lo, keys[i] if i < n else hi))
    return count
