"""The Merkle Search Tree (MST) of atproto repositories.

Spec: atproto.com/specs/repository ("MST Structure", "Repository Diffs", "Security Considerations") and
/sync (operation inversion). Modules: ``keys`` (key rule, depth), ``node`` (node block format, strict decode,
cache), ``build`` (bulk build), ``edit`` (path-copying insert/remove), ``tree`` (the persistent :class:`MST`),
``diff``, ``proof`` (covering proofs, :func:`invert_ops`), ``verify`` (full check of an untrusted tree).
"""

from atstack.core.mst.diff import diff
from atstack.core.mst.keys import MAX_ENTRIES, MAX_KEY_BYTES, MAX_KEY_DEPTH, MSTError, key_depth
from atstack.core.mst.node import set_cache_limit
from atstack.core.mst.proof import invert_ops, proof_blocks
from atstack.core.mst.tree import EMPTY_ROOT, MST
from atstack.core.mst.verify import verify_tree, walk_tree

__all__ = [
    "EMPTY_ROOT",
    "MAX_ENTRIES",
    "MAX_KEY_BYTES",
    "MAX_KEY_DEPTH",
    "MST",
    "MSTError",
    "diff",
    "invert_ops",
    "key_depth",
    "proof_blocks",
    "set_cache_limit",
    "verify_tree",
    "walk_tree",
]
