"""The C fast path for MST nodes (atstack.core.mst._node_c) against the Python parser and encoder it backs.

The C parser may decline anything (return None) but must never accept what the Python parser rejects, and
where both accept the results must be identical; the C encoder must write exactly the Python encoder's bytes.
The interop vectors and every malformed-node test run on both backends in test_mst_vectors.py /
test_mst_untrusted.py; here: SHA-256, differential tests on random and mutated nodes, and coverage of the
fast path itself.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import cbrrr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vectors
from atstack.core import cbor
from atstack.core.blockstore import MemoryBlockStore
from atstack.core.cid import CID, cid_for_cbor, cid_for_raw
from atstack.core.mst import MST, key_depth, walk_tree
from atstack.core.mst import keys as keys_module
from atstack.core.mst import node as node_module
from atstack.core.mst.keys import MSTError, common_prefix_len
from atstack.core.mst.node import Node, _encode_node_py, _parse_node_py

_C_PARSE: Any = node_module._c_parse
_C_ENCODE: Any = node_module._c_encode
try:
    from atstack.core.mst import _node_c
except ImportError:
    _node_c = None


@pytest.fixture(autouse=True)
def _built() -> None:
    """CI builds the extension: every test here fails (rather than skips) without it."""
    if _node_c is None or _C_PARSE is None or _C_ENCODE is None:
        pytest.fail("the C extension atstack.core.mst._node_c was not built")


# ---- fixtures: keys of a few depths, links of usual and unusual shapes ----

_FAMILIES = (
    "app.bsky.feed.post/3k",
    "a/",
    "com.example.x_y~z:w-v/rk.",
    "A0/",
    "coll/" + "x" * 30,  # shared prefixes of 24+ bytes
    "coll/" + "y" * 300,  # and of 256+ bytes
    "c/" + "z" * 1000,  # keys near MAX_KEY_BYTES
)


def _keys_of_depth(depth: int, n: int) -> list[bytes]:
    out: list[bytes] = []
    i = 0
    while len(out) < n:
        key = f"{_FAMILIES[i % len(_FAMILIES)]}{i // len(_FAMILIES)}".encode()
        if len(key) <= keys_module.MAX_KEY_BYTES and key_depth(key) == depth:
            out.append(key)
        i += 1
    return out


POOLS = {depth: _keys_of_depth(depth, 40) for depth in (0, 1, 2)}
DAG = [cid_for_cbor(bytes([i])) for i in range(4)]
RAW = [cid_for_raw(bytes([i])) for i in range(2)]
# Valid record links the fast path leaves to Python: other multihashes and lengths.
UNUSUAL_OK = [CID(b"\x01\x71\x13\x40" + bytes(64)), CID(b"\x01\x71\x12\x10" + bytes(16))]
# Links Python rejects: truncated, CIDv0-like, wrong codec for a node link, empty, over-long.
BAD = [
    CID(b"\x01\x71\x12\x20short"),
    CID(b"\x12\x20" + bytes(32)),
    CID(b""),
    CID(b"\x01\x71\x12\x7f" + bytes(127)),
]


def _node_bytes(keys: list[bytes], vals: list[CID], subs: list[Any]) -> bytes:
    """The canonical block, written by cbrrr (independent of both encoders under test)."""
    entries = []
    prev = b""
    for key, val, t in zip(keys, vals, subs[1:], strict=True):
        p = common_prefix_len(prev, key)
        entries.append({"k": key[p:], "p": p, "t": t, "v": val})
        prev = key
    return cbrrr.encode_dag_cbor({"e": entries, "l": subs[0]})


def _outcome(data: bytes, level: int | None) -> Any:
    try:
        return _parse_node_py(data, level, True)
    except MSTError as exc:
        return exc


def _check(data: bytes, level: int | None) -> tuple[Any, Any]:
    """C declines or agrees with Python; the public parse_node (C first) gives Python's answer exactly."""
    py = _outcome(data, level)
    c = _C_PARSE(data, level, CID)
    if c is not None:
        assert not isinstance(py, MSTError), (data, level, py)
        assert c == py
        assert all(type(v) is CID for v in c[2]) and all(s is None or type(s) is CID for s in c[3])
    if isinstance(py, MSTError):
        with pytest.raises(MSTError) as info:
            node_module.parse_node(data, level)
        assert str(info.value) == str(py)
    else:
        assert node_module.parse_node(data, level) == py
    return py, c


# ---- the extension itself ----


def test_extension_constants_match_the_python_limits() -> None:
    assert _node_c.MAX_ENTRIES == keys_module.MAX_ENTRIES
    assert _node_c.MAX_KEY_BYTES == keys_module.MAX_KEY_BYTES
    assert _node_c.MAX_KEY_DEPTH == keys_module.MAX_KEY_DEPTH
    assert _node_c.MAX_BLOCK_SIZE == cbor.MAX_BLOCK_SIZE


@pytest.mark.parametrize("portable", [False, True])
def test_sha256_matches_hashlib(portable: bool) -> None:
    rng = random.Random(256)
    lengths = [*range(301), 511, 512, 4096, 100_000]
    for n in lengths:
        data = rng.randbytes(n)
        assert _node_c.sha256(data, portable) == hashlib.sha256(data).digest(), n
        assert _node_c.sha256(b"\xff" * n, portable) == hashlib.sha256(b"\xff" * n).digest(), n
    assert _node_c.SHA_X86 in (0, 1) and len(lengths) == 305


def test_sha256_round_constants_are_the_cube_roots_of_the_primes() -> None:
    # FIPS 180-4 §4.2.2: a wrong constant would show as a hashlib mismatch above; this pins the first and
    # last, computed here from their definition.
    primes = [p for p in range(2, 320) if all(p % d for d in range(2, p))][:64]

    def frac_cbrt(p: int) -> int:
        lo, hi = 0, 1 << 44
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if mid**3 <= p << 96 else (lo, mid - 1)
        return lo & 0xFFFFFFFF

    assert (frac_cbrt(primes[0]), frac_cbrt(primes[63])) == (0x428A2F98, 0xC67178F2)
    assert _node_c.sha256(b"abc") == bytes.fromhex(
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_key_depth_vectors_through_the_fast_path() -> None:
    # A one-key root node takes its level from the key's depth: levels 0-3 test the digest's first byte,
    # higher ones the full leading-zero count.
    cases = [(c["key"], c["height"]) for c in vectors.vector_json("mst", "key_heights.json")]
    cases += [(k, int(k.split("/")[0][1:])) for k in vectors.vector_lines("mst", "example_keys.txt")]
    ran = 0
    for key, height in cases:
        if keys_module._key_match(key.encode()) is None:
            continue  # keys outside the MST key syntax are not node content (key_depth covers them)
        data = _node_bytes([key.encode()], [DAG[0]], [None, None])
        py, c = _check(data, None)
        assert c is not None and c[0] == height == py[0], key
        ran += 1
    assert ran >= 150 and any(h >= 4 for _, h in cases)


def test_every_node_of_a_real_tree_takes_the_fast_path() -> None:
    keys = [f"app.bsky.feed.post/3k{i:011d}" for i in range(3000)]
    tree = MST.from_items(MemoryBlockStore(), [(k, cid_for_cbor(k.encode())) for k in keys])
    blocks = tree.new_blocks()
    levels = set()
    for data in blocks.values():
        c = _C_PARSE(data, None, CID)
        if c is None:  # an empty intermediate node has its level from its position only
            assert cbrrr.decode_dag_cbor(data)["e"] == []
            continue
        assert c == _parse_node_py(data, None, True)
        assert _C_ENCODE(c[1], c[2], c[3], CID) == data
        levels.add(c[0])
    assert len(blocks) > 50 and levels >= {0, 1, 2}
    assert walk_tree({c.cid_bytes: b for c, b in blocks.items()}.get, tree.root(), hashed=True)[0] == [
        k.encode() for k in keys
    ]


def test_fast_path_declines_valid_but_unusual_nodes() -> None:
    key = POOLS[0][0]
    for val in UNUSUAL_OK:
        data = _node_bytes([key], [val], [None, None])
        assert _C_PARSE(data, 0, CID) is None
        assert node_module.parse_node(data, 0)[2] == (val,)
    # a level passed as something other than None or an int >= 0 is left to Python as well
    data = _node_bytes([key], [DAG[0]], [None, None])
    assert _C_PARSE(data, 0, CID) is not None
    for level in (-1, True, 10**30):
        assert _C_PARSE(data, level, CID) is None
    assert _C_PARSE(bytearray(data), 0, CID) is None


@pytest.mark.parametrize("level", [None, 0, 1, 5])
def test_empty_node_rules(level: int | None) -> None:
    for left in (None, DAG[1], RAW[0]):
        _check(_node_bytes([], [], [left]), level)


def test_edges_of_the_layout() -> None:
    keys = sorted(POOLS[0])[:3]
    good = _node_bytes(keys, [DAG[0]] * 3, [None] * 4)
    assert _check(good, 0)[1] is not None
    for data in (
        good + b"\x00",  # trailing byte
        good[:-1],
        b"",
        b"\xa2",
        good.replace(b"\xf6", b"\xf7", 1),  # undefined for null
        good.replace(b"\xd8\x2a\x58\x25\x00", b"\xd8\x2a\x58\x25\x01", 1),  # multibase byte
        good.replace(b"\xa4", b"\xa5", 1),
    ):
        assert _check(data, 0)[1] is None
    # a key exactly MAX_KEY_BYTES long is fine, one byte more is not (and is Python's to reject)
    for extra, ok in ((0, True), (1, False)):
        key = next(
            k
            for k in (f"c/{i}".encode().ljust(keys_module.MAX_KEY_BYTES + extra, b"x") for i in range(999))
            if key_depth(k) == 0
        )
        py, c = _check(_node_bytes([key], [DAG[0]], [None, None]), 0)
        assert (c is not None) == ok == (not isinstance(py, MSTError))


def test_key_syntax() -> None:
    bad = [
        b"a/b/c",
        b"a//b",
        b"/ab",
        b"ab/",
        b"ab",
        b"a b/c",
        b"a/b\n",
        b"a/\x00b",
        "caf\u00e9/1".encode(),
        b"a/b*",
    ]
    good = [b"a/b", b"A-Z_a~z.0:9/x", b"1/2", b"app.bsky.feed.post/3k:~_-."]
    for key in bad + good:
        # a one-key root node is at its key's depth, so only the key syntax decides
        py, c = _check(_node_bytes([key], [DAG[0]], [None, None]), None)
        assert (c is not None) == (key in good) == (not isinstance(py, MSTError)), key


def test_heads_must_be_minimal() -> None:
    key = sorted(POOLS[0])[0]
    good = _node_bytes([key], [DAG[0]], [None, None])
    assert _check(good, 0)[1] is not None
    k_head = bytes([0x40 + len(key)])
    assert good.count(b"\x81\xa4ak" + k_head) == 1 and good.count(b"ap\x00at") == 1
    for data in (
        good.replace(b"\x81\xa4", b"\x98\x01\xa4"),  # entry count
        good.replace(b"\x81\xa4", b"\x99\x00\x01\xa4"),
        good.replace(b"ak" + k_head, b"ak\x58" + bytes([len(key)])),  # key length
        good.replace(b"ak" + k_head, b"ak\x59\x00" + bytes([len(key)])),
        good.replace(b"ap\x00at", b"ap\x18\x00at"),  # prefix length
        good.replace(b"ap\x00at", b"ap\x19\x00\x00at"),
    ):
        py, c = _check(data, 0)
        assert c is None and isinstance(py, MSTError), data


# ---- differential tests ----

link_st = st.sampled_from(DAG)
val_st = st.sampled_from(DAG + RAW + UNUSUAL_OK)


@st.composite
def valid_nodes(draw: st.DrawFn) -> tuple[int, bytes, bool]:
    """(level, block, usual): usual when every link is 36 bytes, so the fast path must take it."""
    level = draw(st.sampled_from([0, 0, 1, 2]))
    keys = sorted(draw(st.sets(st.sampled_from(POOLS[level]), min_size=0 if level else 1, max_size=10)))
    vals = [draw(val_st) for _ in keys]
    if level:
        subs = [draw(st.none() | link_st) for _ in range(len(keys) + 1)]
        if not keys:
            subs[0] = draw(link_st)
    else:
        subs = [None] * (len(keys) + 1)
    usual = not any(v in UNUSUAL_OK for v in vals)
    return level, _node_bytes(keys, vals, subs), usual


@settings(max_examples=300, deadline=None)
@given(node=valid_nodes())
def test_valid_nodes_agree(node: tuple[int, bytes, bool]) -> None:
    level, data, usual = node
    py, c = _check(data, level)
    assert not isinstance(py, MSTError)
    if usual:
        assert c is not None
    root_py, root_c = _check(data, None)
    if py[1]:  # as a root, the level comes from the keys
        assert root_py == py and (root_c is not None) == usual
    for other in (level + 1, max(level - 1, 0), 33):
        _check(data, other)


mutation_st = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "delete", "insert", "truncate"]),
        st.integers(min_value=0, max_value=10**6),
        st.integers(min_value=0, max_value=255),
    ),
    min_size=1,
    max_size=4,
)


def _mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, pos, byte in mutations:
        i = pos % (len(buf) + 1)
        if op == "flip" and i < len(buf):
            buf[i] ^= 1 << (byte & 7)
        elif op == "set" and i < len(buf):
            buf[i] = byte
        elif op == "delete":
            del buf[i : i + 1 + byte % 3]
        elif op == "insert":
            buf[i:i] = bytes([byte])
        else:
            del buf[i:]
    return bytes(buf)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node=valid_nodes(), mutations=mutation_st, level_delta=st.sampled_from([None, 0, 1]))
def test_mutated_nodes_agree(
    node: tuple[int, bytes, bool], mutations: list[tuple[str, int, int]], level_delta: int | None
) -> None:
    level, data, _ = node
    _check(_mutate(data, mutations), None if level_delta is None else level + level_delta)


key_bytes_st = st.one_of(
    st.sampled_from(POOLS[0] + POOLS[1]),
    st.binary(max_size=12),
    st.text(alphabet="ab/:~-._\n\x00é", max_size=12).map(str.encode),
)


@st.composite
def shaped_nodes(draw: st.DrawFn) -> bytes:
    """Nodes of the right outline whose fields break (or keep) the rules: order, prefixes, keys, links."""
    entries = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        key = draw(key_bytes_st)
        p = draw(st.integers(min_value=0, max_value=len(key) + 2) | st.sampled_from([0, -1, 2**40]))
        entry = {
            "k": key[min(max(p, 0), len(key)) :],
            "p": p,
            "t": draw(st.none() | link_st | st.sampled_from(RAW + BAD)),
            "v": draw(val_st | st.sampled_from(BAD)),
        }
        entries.append(entry)
    left = draw(st.none() | link_st | st.sampled_from(RAW + BAD))
    return cbrrr.encode_dag_cbor({"e": entries, "l": left})


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=shaped_nodes(), level=st.sampled_from([None, 0, 1, 2]))
def test_rule_breaking_nodes_agree(data: bytes, level: int | None) -> None:
    _check(data, level)


def test_random_sorted_leaf_nodes_agree() -> None:
    # Sorted runs of real-looking keys with every prefix length: the fast path must take and match them all.
    rng = random.Random(7)
    ran = 0
    for _ in range(300):
        keys = sorted(set(rng.sample(POOLS[0], rng.randint(1, 12))))
        vals = [rng.choice(DAG + RAW) for _ in keys]
        _, c = _check(_node_bytes(keys, vals, [None] * (len(keys) + 1)), 0)
        assert c is not None and c[1] == tuple(keys)
        ran += 1
    assert ran == 300


# ---- the encoder ----

sub_st = st.one_of(
    st.none(),
    st.sampled_from(DAG + UNUSUAL_OK + [CID(bytes(20)), CID(bytes(300))]),
    st.sampled_from(DAG).map(lambda cid: Node(0, (), (), (None,), cid)),
)


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(st.binary(max_size=40) | st.sampled_from(POOLS[0] + POOLS[1]), max_size=12),
    data=st.data(),
)
def test_encoder_matches_python(keys: list[bytes], data: st.DataObject) -> None:
    vals = tuple(data.draw(val_st | st.sampled_from([CID(bytes(20)), CID(bytes(300))])) for _ in keys)
    subs = tuple(data.draw(sub_st) for _ in range(len(keys) + 1))
    node = Node(1, tuple(keys), vals, subs)
    c = _C_ENCODE(node.keys, node.vals, node.subs, CID)
    assert c is not None  # bytes keys of any order and CIDs of any length up to 64 KiB are all written
    assert c == _encode_node_py(node) == node_module.encode_node(node)


def test_encoder_declines_what_python_does_not_write() -> None:
    key = POOLS[0][0]
    long_key = b"c/" + b"x" * keys_module.MAX_KEY_BYTES  # past the Python encoder's tables
    unsealed = Node(0, (), (), (None,))  # a subtree without a CID yet
    for keys, vals, subs in (
        ((long_key,), (DAG[0],), (None, None)),
        ((key,), (DAG[0],), (unsealed, None)),
        ((key,), (b"not a cid",), (None, None)),
        (("text",), (DAG[0],), (None, None)),
        ((key,), (DAG[0],), (None,)),  # one slot short
    ):
        assert _C_ENCODE(keys, vals, subs, CID) is None
        node = Node(0, keys, vals, subs)  # type: ignore[arg-type]
        try:
            expected: Any = _encode_node_py(node)
        except Exception as exc:
            expected = type(exc)
        try:
            got: Any = node_module.encode_node(node)
        except Exception as exc:
            got = type(exc)
        assert got == expected
    assert _C_ENCODE([key], (DAG[0],), (None, None), CID) is None  # lists are not the node's tuples
