"""Full structural check of an untrusted MST (a repo import, a fetched ``getRepo`` CAR).

Spec: atproto.com/specs/repository ("MST Structure", "Security Considerations"). Every reachable node is
read and checked by :func:`atstack.core.mst.node.parse_node` (not taken from the node cache: this is the check
that earns trust). On top of the per-node rules it checks what only the tree shows: each subtree sits one
level below its parent, its keys fall strictly between the parent's keys around the link, no empty node ends
a branch, and the root is not an empty node pointing down.

The walk is one in-order pass that builds no :class:`~atstack.core.mst.node.Node` objects and returns the
tree's keys and values in key order, so a caller checking a whole repository needs no second pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from atstack.core.blockstore import BlockStore, MissingBlock
from atstack.core.cid import CID
from atstack.core.mst.keys import MSTError
from atstack.core.mst.node import KEY_MAX, KEY_MIN, check_key_syntax, parse_node

__all__ = ["verify_tree", "walk_tree"]

_DAG_PFX = b"\x01\x71\x12\x20"
_sha256 = hashlib.sha256


def verify_tree(store: BlockStore, root: CID) -> int:
    """Check the whole tree at ``root``; returns its number of records. Raises MSTError / MissingBlock."""
    get = store.get
    keys, _vals = walk_tree(lambda raw: get(CID(raw)), root, hashed=False)
    return len(keys)


def walk_tree(
    get: Callable[[bytes], bytes | None], root: CID, *, hashed: bool
) -> tuple[list[bytes], list[CID]]:
    """Check the whole tree at ``root`` and return all its keys and values, in key order.

    ``get`` maps a binary CID to its block (``None`` if absent). With ``hashed`` the caller vouches that
    every block ``get`` returns hashes to its CID (the blocks of a CAR read with ``verify``); otherwise each
    node's hash is checked here. Raises :class:`MSTError` or :class:`MissingBlock`.
    """
    if type(root) is not CID or not root.is_cidv1_dag_cbor_sha256_32():
        raise MSTError("MST root must be a blessed dag-cbor CID")
    out_keys: list[bytes] = []
    out_vals: list[CID] = []
    add_key = out_keys.append
    add_val = out_vals.append
    extend_keys = out_keys.extend
    extend_vals = out_vals.extend
    sha256 = _sha256
    dag_pfx = _DAG_PFX

    def block(cid: CID) -> bytes:
        raw = cid.cid_bytes
        data = get(raw)
        if data is None:
            raise MissingBlock(cid)
        if not hashed and dag_pfx + sha256(data).digest() != raw:
            raise MSTError(f"block does not hash to {cid.encode()}")
        return data

    def visit(cid: CID, level: int | None, lo: bytes, hi: bytes) -> None:
        # parse_node checks links are blessed dag-cbor CIDs, so ``block`` may trust the CID's shape.
        level, keys, vals, subs = parse_node(block(cid), level, check_keys=False)
        n = len(keys)
        if n and (keys[0] <= lo or keys[-1] >= hi):
            raise MSTError(f"MST node {cid.encode()} has keys outside its parent's range")
        if not level:  # a leaf node (parse_node rejects subtrees at level 0)
            extend_keys(keys)
            extend_vals(vals)
            return
        below = level - 1
        sub = subs[0]
        if sub is not None:
            visit(sub, below, lo, keys[0] if n else hi)  # type: ignore[arg-type]
        for i in range(n):
            key = keys[i]
            add_key(key)
            add_val(vals[i])
            sub = subs[i + 1]
            if sub is not None:
                visit(sub, below, key, keys[i + 1] if i + 1 < n else hi)  # type: ignore[arg-type]

    visit(root, None, KEY_MIN, KEY_MAX)  # the root's level is its keys' depth (None: parse_node finds it)
    if out_keys:
        # Key syntax for the whole tree in one regex pass (parse_node was told to leave it to us).
        check_key_syntax(out_keys)
    return out_keys, out_vals
