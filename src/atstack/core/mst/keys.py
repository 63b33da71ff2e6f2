"""MST keys: validity, depth and the shared-prefix length used by node compression.

Spec: atproto.com/specs/repository ("Repo Data Structure", "MST Structure"). A key is the UTF-8 of a repo path
``<collection>/<rkey>``; its depth is the number of leading zero bits of SHA-256(key) divided by two (fanout 4).
The character rule is the MST's own, looser than a repo path (the interop vectors use keys like ``A0/374913``):
two non-empty segments of ``[A-Za-z0-9_~.:-]``, at most 1024 bytes. It matches
:func:`atstack.core.syntax.is_valid_mst_key`; ``:`` is allowed because record keys allow it.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "MAX_ENTRIES",
    "MAX_KEY_BYTES",
    "MAX_KEY_DEPTH",
    "MSTError",
    "check_key",
    "common_prefix_len",
    "key_depth",
]

MAX_KEY_BYTES = 1024
# Anti key-mining caps (spec "Security Considerations"). With random keys a run of n same-level keys has
# probability (3/4)^n, so 512 entries in one node never happens by chance (~1e-64) but bounds what a mined
# repo can make us decode and re-encode. A key of depth 32 needs ~2^64 hashes to find.
MAX_ENTRIES = 512
MAX_KEY_DEPTH = 32

_sha256 = hashlib.sha256
_from_bytes = int.from_bytes
_key_match = re.compile(rb"[A-Za-z0-9_~.:-]+/[A-Za-z0-9_~.:-]+").fullmatch


class MSTError(ValueError):
    """A malformed or untrusted MST node, an invalid key, or an ordering/depth violation."""


def key_depth(key: str | bytes) -> int:
    """Leading zero bits of SHA-256(key), halved and floored (the key's layer in the tree)."""
    if type(key) is str:
        key = key.encode()
    return (256 - _from_bytes(_sha256(key).digest()).bit_length()) >> 1


def check_key(key: str) -> bytes:
    """Validate an MST key given as text and return its bytes; raises :class:`MSTError`."""
    if type(key) is not str:
        raise MSTError(f"MST key must be a string, not {type(key).__name__}")
    raw = key.encode()
    if len(raw) > MAX_KEY_BYTES or _key_match(raw) is None:
        raise MSTError(f"invalid MST key {key[:80]!r}")
    return raw


def common_prefix_len(a: bytes, b: bytes) -> int:
    """Number of leading bytes ``a`` and ``b`` share (one big-integer XOR instead of a byte loop)."""
    n = min(len(a), len(b))
    x = _from_bytes(a[:n]) ^ _from_bytes(b[:n])
    return n - ((x.bit_length() + 7) >> 3)
