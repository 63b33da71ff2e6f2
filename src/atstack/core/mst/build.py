"""Bulk construction of an MST from a whole key → CID map, bottom-up, one pass per level.

Spec: atproto.com/specs/repository ("MST Structure"): the tree is a pure function of the map. Sorted keys
with depth ≥ L, cut at every key of depth > L, give exactly the level-L nodes in order; the subtrees between
their keys are the level-(L-1) nodes made by the previous pass. Work is ~4/3·n list steps (fanout 4), and
each node is encoded as soon as its children have CIDs.
"""

from __future__ import annotations

import gc
import hashlib
import re
from collections.abc import Iterable

from atstack.core.cid import CID
from atstack.core.mst.keys import MAX_ENTRIES, MAX_KEY_BYTES, MAX_KEY_DEPTH, MSTError, _key_match
from atstack.core.mst.node import Node, Sub, seal

__all__ = ["build_tree", "key_depths"]

_sha256 = hashlib.sha256
_from_bytes = int.from_bytes
_keys_match = re.compile(
    r"(?:[A-Za-z0-9_~.:-]+/[A-Za-z0-9_~.:-]+\n)*[A-Za-z0-9_~.:-]+/[A-Za-z0-9_~.:-]+"
).fullmatch
# Depth from the first hash byte when it is non-zero (the common case); 0 marks "look further".
_DEPTH_BY_FIRST_BYTE = bytes([0] + [(8 - b.bit_length()) >> 1 for b in range(1, 256)])


def key_depths(keys: list[bytes]) -> list[int]:
    """Depth of every key; most keys need only the first digest byte."""
    table = _DEPTH_BY_FIRST_BYTE
    firsts = [h.digest()[0] for h in map(_sha256, keys)]
    depths = [table[b] for b in firsts]
    if 0 in firsts:
        for i, b in enumerate(firsts):
            if b == 0:
                depths[i] = (256 - _from_bytes(_sha256(keys[i]).digest()).bit_length()) >> 1
    return depths


def build_tree(items: Iterable[tuple[str, CID]]) -> Node | None:
    """Build (and encode) the tree of ``items``; later duplicates of a key win. ``None`` for no items."""
    # Building makes tens of thousands of long-lived objects and no reference cycles: pausing the cyclic
    # collector saves the repeated full-heap scans it would otherwise run (about a third of the time).
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return _build(items)
    finally:
        if paused:
            gc.enable()


def _build(items: Iterable[tuple[str, CID]]) -> Node | None:
    mapping = dict(items)
    if not mapping:
        return None
    # Checks run over whole lists (C loops); the slow per-item search only finds the culprit to name it.
    if not all(type(k) is str for k in mapping):
        raise MSTError("MST keys must be strings")
    texts = sorted(mapping)
    joined = "\n".join(texts)
    # A key holding the separator would pass the regex as two keys: the newline count rules that out.
    if (
        max(map(len, texts)) > MAX_KEY_BYTES
        or joined.count("\n") != len(texts) - 1
        or _keys_match(joined) is None
    ):
        bad = next(k for k in texts if len(k) > MAX_KEY_BYTES or _key_match(k.encode()) is None)
        raise MSTError(f"invalid MST key {bad[:80]!r}")
    keys = [k.encode() for k in texts]  # ASCII, so text order is byte order
    vals = list(map(mapping.__getitem__, texts))
    if not set(map(type, vals)) <= {CID}:
        bad = next(k for k, v in zip(texts, vals, strict=True) if type(v) is not CID)
        raise MSTError(f"MST value for {bad[:80]!r} must be a CID")
    depths = key_depths(keys)
    top = max(depths)
    if top > MAX_KEY_DEPTH:
        raise MSTError(f"MST key depth {top} exceeds the limit of {MAX_KEY_DEPTH}")

    gaps: list[Sub] = [None] * (len(keys) + 1)
    for level in range(top + 1):
        # Positions (in the current key list) of keys that belong above this level and so cut it.
        cuts = [i for i, d in enumerate(depths) if d > level]
        next_gaps: list[Sub] = []
        start = 0
        for end in [*cuts, len(keys)]:
            if end - start > MAX_ENTRIES:
                raise MSTError(f"an MST node would hold {end - start} entries (limit {MAX_ENTRIES})")
            subs = tuple(gaps[start : end + 1])
            if end == start and subs[0] is None:
                next_gaps.append(None)
            else:
                node = Node(level, tuple(keys[start:end]), tuple(vals[start:end]), subs)
                seal(node)
                next_gaps.append(node)
            start = end + 1
        gaps = next_gaps
        keys = [keys[i] for i in cuts]
        vals = [vals[i] for i in cuts]
        depths = [depths[i] for i in cuts]
    root = gaps[0]
    assert type(root) is Node
    return root
