"""MST nodes: the in-memory node, its DRISL form, strict decoding of untrusted blocks and the node cache.

Spec: atproto.com/specs/repository ("MST Structure"). A node block is ``{"l": cid|null, "e": [{"p": int,
"k": bytes, "v": cid, "t": cid|null}, …]}``; ``l`` and ``t`` are always written (as null when absent) because
the root CIDs of every implementation depend on it, and each ``k`` holds only the bytes after the ``p`` bytes
the key shares with the previous entry of the same node (the first entry has ``p`` = 0).

In memory a node keeps full keys and one ``subs`` tuple of ``len(keys) + 1`` subtree slots: ``subs[0]`` is
``l`` and ``subs[i + 1]`` is the ``t`` of entry ``i``. A slot is ``None``, the :class:`CID` of a node still in
the block store, or a :class:`Node` object (created by us, or already read). Nodes are never changed after
construction apart from the memo fields (``cid``, ``data``, ``count``, and ``base`` which sealing clears).
Blocks are written by hand in canonical DRISL (a node is a few fixed-shape entries); a path-copied node is
encoded by swapping the one changed child CID in its predecessor's block.

Blocks read from a store are untrusted: :func:`decode_node` checks the block hashes to its CID, decodes it
strictly, checks the type of every field (so floats, extra fields or missing ``l``/``t`` are rejected), that
the keys are valid, strictly ascending, maximally prefix-compressed and all of the node's depth, and that
links to nodes are blessed dag-cbor CIDs. Nodes that passed are cached by CID (bounded), since a relay sees
the same upper nodes of a repo in every commit. :func:`parse_node` is the same check without the hash and
without building a :class:`Node`, for the full-tree walk of :mod:`atstack.core.mst.verify`.

Both directions have a compiled fast path (the optional extension ``_node_c``, built from ``_node_c.c``) for
the one canonical layout with 36-byte links; it hands anything else back to the Python code here, which
stays the reference: same results, same errors.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from operator import itemgetter

from cbrrr import _cbrrr

from atstack.core.blockstore import BlockStore, MissingBlock
from atstack.core.cbor import MAX_BLOCK_SIZE, encode_uint
from atstack.core.cid import CID, InvalidCID, check_cid_bytes
from atstack.core.mst.keys import MAX_ENTRIES, MAX_KEY_BYTES, MAX_KEY_DEPTH, MSTError, _key_match

__all__ = [
    "KEY_MAX",
    "KEY_MIN",
    "Node",
    "NodeParts",
    "Sub",
    "cached_node",
    "check_key_syntax",
    "clear_node_cache",
    "decode_node",
    "encode_node",
    "load_node",
    "load_root",
    "parse_node",
    "seal",
    "set_cache_limit",
]

# Open key bounds: every valid key sorts after b"" and before b"\xff" (keys are ASCII).
KEY_MIN = b""
KEY_MAX = b"\xff"

_DAG_PFX = b"\x01\x71\x12\x20"
_RAW_PFX = b"\x01\x55\x12\x20"
_sha256 = hashlib.sha256
_from_bytes = int.from_bytes
_decode_raw = _cbrrr.decode_dag_cbor  # returns (value, bytes used): no Python wrapper frame per node
_get_el = itemgetter("e", "l")
_get_kptv = itemgetter("k", "p", "t", "v")


@dataclass(slots=True, eq=False, repr=False)
class Node:
    level: int
    keys: tuple[bytes, ...]
    vals: tuple[CID, ...]
    subs: tuple[Sub, ...]
    cid: CID | None = None
    data: bytes | None = None  # the block, once encoded (or as read)
    stored: bool = False  # read from a block store, so nothing to write
    count: int = -1  # memo of the number of leaves below (inclusive)
    # A path copy that differs from ``base`` only in subtree slot ``slot``: encoded by patching the
    # base's block instead of re-encoding every entry. Cleared on sealing so old versions are not kept.
    base: Node | None = None
    slot: int = 0

    def __repr__(self) -> str:
        return f"Node(level={self.level}, keys={len(self.keys)}, cid={self.cid and self.cid.encode()})"


Sub = Node | CID | None
NodeParts = tuple[int, tuple[bytes, ...], tuple[CID, ...], tuple[Sub, ...]]

try:  # the compiled fast path (atstack/core/mst/_node_c.c); without it, the Python code below does it all
    from atstack.core.mst._node_c import encode_node as _c_encode
    from atstack.core.mst._node_c import parse_node as _c_parse
except ImportError:
    _c_encode = None
    _c_parse = None


def _bytes_header(n: int) -> bytes:
    return bytes((0x40 + n,)) if n < 24 else bytes((0x58, n)) if n < 256 else b"\x59" + n.to_bytes(2, "big")


def _array_header(n: int) -> bytes:
    if n < 24:
        return bytes((0x80 + n,))
    if n < 256:
        return bytes((0x98, n))
    return b"\x99" + n.to_bytes(2, "big") if n < 65536 else b"\x9a" + n.to_bytes(4, "big")


# DRISL written by hand (cbrrr would need a dict per entry and sorts their keys each time). Map keys in
# canonical order: "e" < "l" in the node, "k" < "p" < "t" < "v" in an entry.
_BYTES_HEADER = [_bytes_header(n) for n in range(MAX_KEY_BYTES + 1)]
_P_FIELD = [b"ap" + encode_uint(n) + b"at" for n in range(MAX_KEY_BYTES + 1)]  # "p": n, then the "t" key
_NODE_HEAD = [b"\xa2ae" + _array_header(n) for n in range(MAX_ENTRIES + 1)]
_CID_HEAD_36 = b"\xd8\x2a\x58\x25\x00"  # tag 42, 37-byte string, multibase identity prefix
_NULL = b"\xf6"


def _cid_cbor(cid: CID) -> bytes:
    raw = cid.cid_bytes
    if len(raw) == 36:
        return _CID_HEAD_36 + raw
    return b"\xd8\x2a" + _bytes_header(len(raw) + 1) + b"\x00" + raw


def encode_node(node: Node) -> bytes:
    """DRISL bytes of a node whose Node-typed subtrees already have their CID."""
    if _c_encode is not None:
        # None for anything unusual (over-long keys, odd types): the Python encoder writes or raises.
        data = _c_encode(node.keys, node.vals, node.subs, CID)
        if data is not None:
            return data
    return _encode_node_py(node)


def _encode_node_py(node: Node) -> bytes:
    keys = node.keys
    subs = node.subs
    vals = node.vals
    # Deletes merge nodes, so our own trees may exceed the entry cap we enforce on input.
    parts = [_NODE_HEAD[len(keys)] if len(keys) <= MAX_ENTRIES else b"\xa2ae" + _array_header(len(keys))]
    extend = parts.extend
    bytes_header = _BYTES_HEADER
    p_field = _P_FIELD
    cid_cbor = _cid_cbor
    from_bytes = _from_bytes
    # Encoded "t" of every entry; leaf-level nodes (most of them) have no subtrees at all.
    if any(subs):
        trees = [
            _NULL if t is None else cid_cbor(t if type(t) is CID else t.cid)  # type: ignore[union-attr,arg-type]
            for t in subs[1:]
        ]
    else:
        trees = [_NULL] * len(keys)
    prev = b""
    for key, val, t in zip(keys, vals, trees, strict=True):
        n = min(len(prev), len(key))
        x = from_bytes(prev[:n]) ^ from_bytes(key[:n])
        p = n - ((x.bit_length() + 7) >> 3)
        suffix = key[p:] if p else key
        extend((b"\xa4ak", bytes_header[len(suffix)], suffix, p_field[p], t, b"av", cid_cbor(val)))
        prev = key
    left = subs[0]
    if left is None:
        parts.append(b"al\xf6")
    else:
        parts.append(b"al" + cid_cbor(left if type(left) is CID else left.cid))  # type: ignore[union-attr,arg-type]
    return b"".join(parts)


def seal(node: Node) -> CID:
    """Encode ``node`` and every unencoded node below it (post-order) and return its CID."""
    for sub in node.subs:
        if sub is not None and type(sub) is Node and sub.cid is None:
            seal(sub)
    data = None
    base = node.base
    if base is not None:
        node.base = None
        base_data = base.data
        old = base.subs[node.slot]
        new = node.subs[node.slot]
        if base_data is not None and old is not None and new is not None:
            # Node links are all 36-byte CIDs, so the new block is the old one with one CID swapped,
            # provided that CID occurs once (a record could, in theory, carry the same CID).
            old_cbor = _cid_cbor(old if type(old) is CID else old.cid)  # type: ignore[union-attr,arg-type]
            if base_data.count(old_cbor) == 1:
                data = base_data.replace(old_cbor, _cid_cbor(new if type(new) is CID else new.cid))  # type: ignore[union-attr,arg-type]
    if data is None:
        data = encode_node(node)
    node.data = data
    cid = node.cid = CID(_DAG_PFX + _sha256(data).digest())
    return cid


_keys_match = re.compile(
    rb"(?:[A-Za-z0-9_~.:-]+/[A-Za-z0-9_~.:-]+\n)*[A-Za-z0-9_~.:-]+/[A-Za-z0-9_~.:-]+"
).fullmatch

# Non-zero first digest byte ranges of keys at depth 0..3 (two leading zero bits per level).
_FIRST_BYTE_RANGE = ((64, 256), (16, 64), (4, 16), (1, 4))


def _check_leaf_cid(raw: bytes) -> None:
    # Record links keep whatever CID the author used (spec "CID Formats"), but must be well-formed.
    if len(raw) == 36 and raw[:4] == _RAW_PFX:
        return
    try:
        check_cid_bytes(raw)
    except InvalidCID as exc:
        raise MSTError(f"MST entry value is not a valid CID: {exc}") from None


def _is_node_link(cid: object) -> bool:
    if type(cid) is not CID:
        return False
    raw = cid.cid_bytes  # type: ignore[attr-defined]
    return len(raw) == 36 and raw[:4] == _DAG_PFX


def decode_node(cid: CID, data: bytes, level: int | None, *, hashed: bool = False) -> Node:
    """Strictly decode an untrusted node block expected at ``level`` (``None``: the root, level from keys).

    Raises :class:`MSTError` for anything that is not a canonical, well-formed MST node. With ``hashed`` the
    caller vouches that ``data`` hashes to ``cid`` (it came from a verified CAR); the CID's shape is still
    checked.
    """
    if len(data) > MAX_BLOCK_SIZE:
        raise MSTError(f"MST node block of {len(data)} bytes is too large")
    if hashed:
        if not _is_node_link(cid):
            raise MSTError(f"MST link {cid.encode()} is not a blessed dag-cbor CID")
    elif _DAG_PFX + _sha256(data).digest() != cid.cid_bytes:
        raise MSTError(f"block does not hash to {cid.encode()} (or the CID is not a blessed dag-cbor CID)")
    level, keys, vals, subs = parse_node(data, level)
    return Node(level, tuple(keys), tuple(vals), tuple(subs), cid, data, True)


def parse_node(data: bytes, level: int | None, *, check_keys: bool = True) -> NodeParts:
    """Decode and check a node block (not its hash): ``(level, keys, vals, subs)`` with full keys.

    Every rule of :func:`decode_node` except the hash, which the caller checks or already checked. With
    ``check_keys=False`` the caller takes over the key syntax rule (one regex over many nodes' keys, see
    :func:`check_key_syntax`); keys must then not be trusted until it ran.
    """
    if _c_parse is not None:
        # The C parser accepts only the canonical layout with 36-byte links and runs every check below
        # (key syntax included); it returns None for anything else, and this Python code then decides.
        parts = _c_parse(data, level, CID)
        if parts is not None:
            return parts  # type: ignore[no-any-return]
    return _parse_node_py(data, level, check_keys)


def _parse_node_py(data: bytes, level: int | None, check_keys: bool) -> NodeParts:
    if len(data) > MAX_BLOCK_SIZE:
        raise MSTError(f"MST node block of {len(data)} bytes is too large")
    try:
        obj, end = _decode_raw(data, CID, False)
    except (ValueError, TypeError, RecursionError) as exc:
        raise MSTError(f"MST node is not valid DRISL: {exc}") from None
    if end != len(data):
        raise MSTError(f"MST node is not valid DRISL: {len(data) - end} trailing bytes")
    if type(obj) is not dict or len(obj) != 2:
        raise MSTError("MST node must be a map with exactly the fields 'e' and 'l'")
    try:
        entries, left = _get_el(obj)
    except KeyError:
        raise MSTError("MST node must be a map with exactly the fields 'e' and 'l'") from None
    if type(entries) is not list:
        raise MSTError("MST node 'e' must be an array")
    if len(entries) > MAX_ENTRIES:
        raise MSTError(f"MST node has {len(entries)} entries (limit {MAX_ENTRIES})")
    if left is not None and not _is_node_link(left):
        raise MSTError("MST node 'l' must be null or a blessed dag-cbor CID")
    if level is None and entries:
        # The root's level is the depth of its keys; take it from the first key (checked again below).
        first = entries[0]
        k = first.get("k") if type(first) is dict else None
        if type(k) is bytes:
            level = (256 - _from_bytes(_sha256(k).digest()).bit_length()) >> 1
    # Depth test on the first digest byte for levels 0-3 (nearly every node); else the full count.
    lo_byte, hi_byte = _FIRST_BYTE_RANGE[level] if level is not None and level < 4 else (0, 0)
    keys: list[bytes] = []
    vals: list[CID] = []
    subs: list[Sub] = [left]
    add_key = keys.append
    add_val = vals.append
    add_sub = subs.append
    get_kptv = _get_kptv
    prev = b""
    lp = 0
    sha256 = _sha256
    dag_pfx = _DAG_PFX
    for e in entries:
        if type(e) is not dict or len(e) != 4:
            raise MSTError("MST entry must be a map with exactly the fields 'k', 'p', 't', 'v'")
        try:
            k, p, t, v = get_kptv(e)
        except KeyError:
            raise MSTError("MST entry must be a map with exactly the fields 'k', 'p', 't', 'v'") from None
        if type(p) is not int or type(k) is not bytes or type(v) is not CID:
            raise MSTError("MST entry fields have wrong types (p: int, k: bytes, v: cid)")
        if t is not None and (type(t) is not CID or t.cid_bytes[:4] != dag_pfx or len(t.cid_bytes) != 36):
            raise MSTError("MST entry 't' must be null or a blessed dag-cbor CID")
        raw = v.cid_bytes
        if raw[:4] != dag_pfx or len(raw) != 36:
            _check_leaf_cid(raw)
        # Ordering and maximal prefix compression in O(1): with p shared bytes, the next byte of the new
        # key must differ from (and sort after) the previous key's byte at p.
        if p == lp:
            if not k:
                raise MSTError("MST keys are not strictly ascending (duplicate key)")
            key = prev + k if p else k
        elif 0 <= p < lp:
            if not k:
                raise MSTError("MST keys are not strictly ascending")
            c = k[0]
            pc = prev[p]
            if c <= pc:
                if c == pc:
                    raise MSTError("MST entry prefix length is not the full shared prefix")
                raise MSTError("MST keys are not strictly ascending")
            key = prev[:p] + k
        else:
            raise MSTError(f"MST entry prefix length {p} is out of range")
        if not lo_byte <= sha256(key).digest()[0] < hi_byte:
            depth = (256 - _from_bytes(sha256(key).digest()).bit_length()) >> 1
            if depth != level:
                raise MSTError(f"MST key {key[:80]!r} of depth {depth} found in a node of level {level}")
        add_key(key)
        add_val(v)
        add_sub(t)
        prev = key
        lp = len(key)
    if check_keys and keys:
        check_key_syntax(keys)
    if not keys:
        if level is None:
            if left is not None:
                raise MSTError("MST root is an empty node that only points to a subtree")
            level = 0
        elif left is None:
            raise MSTError("empty MST node below the root")
    if level > MAX_KEY_DEPTH:  # type: ignore[operator]
        raise MSTError(f"MST level {level} exceeds the limit of {MAX_KEY_DEPTH}")
    if level == 0 and any(subs):
        raise MSTError("MST node at level 0 links to a subtree")
    return level, tuple(keys), tuple(vals), tuple(subs)  # type: ignore[return-value]


def check_key_syntax(keys: list[bytes]) -> None:
    """Every key is a valid MST key: one regex pass over all of them, newline-separated.

    The separator count is checked too: a key holding a newline would otherwise pass as two valid keys.
    """
    joined = b"\n".join(keys)
    if (
        max(map(len, keys)) > MAX_KEY_BYTES
        or joined.count(b"\n") != len(keys) - 1
        or _keys_match(joined) is None
    ):
        bad = next(k for k in keys if len(k) > MAX_KEY_BYTES or _key_match(k) is None)
        raise MSTError(f"invalid MST key {bad[:80]!r}")


# ---- cache of checked nodes, shared by all trees (a CID names one content, checked on first read) ----

_cache: OrderedDict[bytes, Node] = OrderedDict()  # by binary CID: bytes hash in C, CID objects in Python
_cache_limit = 65536


def set_cache_limit(limit: int) -> None:
    """Bound the number of decoded nodes kept across trees (0 disables the cache)."""
    global _cache_limit
    _cache_limit = limit
    _cache.clear()


def clear_node_cache() -> None:
    _cache.clear()


def cached_node(cid: CID) -> Node | None:
    """The checked node of ``cid`` if the cache holds it (for readers of blocks they know are present)."""
    return _cache.get(cid.cid_bytes)


def _remember(cid: bytes, node: Node) -> None:
    if len(_cache) >= _cache_limit:
        if _cache_limit <= 0:
            return
        # One eviction per insert, oldest first: dropping half the cache at once cost a relay ~100 ms of
        # main-thread time every few seconds (its p99 latency). OrderedDict pops its front in O(1), where a
        # dict's front deletes leave dummies that make later front lookups O(n).
        _cache.popitem(last=False)
    _cache[cid] = node


def _read(store: BlockStore, cid: CID, level: int | None) -> Node:
    hashed = getattr(store, "hashed", False)
    if not getattr(store, "cache_nodes", True):  # a transient slice (HashedBlocks): decoded, not kept
        data = store.get(cid)
        if data is None:
            raise MissingBlock(cid)
        return decode_node(cid, data, level, hashed=hashed)
    raw = cid.cid_bytes
    node = _cache.get(raw)
    if node is not None and (level is None or node.level == level):
        if not store.has(cid):
            raise MissingBlock(cid)
        return node
    data = store.get(cid)
    if data is None:
        raise MissingBlock(cid)
    if node is not None and node.keys:
        raise MSTError(f"MST node {cid.encode()} of level {node.level} found where level {level} belongs")
    # An empty intermediate node's level comes from its position, so it is decoded per level.
    node = decode_node(cid, data, level, hashed=hashed)
    _remember(raw, node)
    return node


def load_node(store: BlockStore, sub: Sub, level: int, lo: bytes, hi: bytes) -> Node:
    """The node in slot ``sub`` (not None) of a parent, expected at ``level`` with keys strictly in (lo, hi)."""
    if type(sub) is Node:
        return sub
    if level < 0:
        raise MSTError("MST node at level 0 links to a subtree")
    node = _read(store, sub, level)  # type: ignore[arg-type]
    keys = node.keys
    if keys:
        if keys[0] <= lo or keys[-1] >= hi:
            raise MSTError(f"MST node {sub.encode()} has keys outside its parent's range")  # type: ignore[union-attr]
    elif node.subs[0] is None:
        raise MSTError("empty MST node below the root")
    return node


def load_root(store: BlockStore, cid: CID) -> Node | None:
    """The root node at ``cid`` (None for the empty tree)."""
    if not _is_node_link(cid):
        raise MSTError("MST root must be a blessed dag-cbor CID")
    node = _read(store, cid, None)
    if not node.keys:
        if node.subs[0] is not None:
            raise MSTError("MST root is an empty node that only points to a subtree")
        return None
    return node
