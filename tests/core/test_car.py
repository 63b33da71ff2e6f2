"""CAR v1 reading and writing. Every test runs on both block readers (the ``car_backend`` fixture switches
the C fast path of ``read_car_raw`` on and off); a differential property checks the two agree on random valid
and corrupted CARs, down to the wording of each error."""

from __future__ import annotations

import base64
import hashlib
import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vectors
from atstack.core import car as car_module
from atstack.core.blockstore import MemoryBlockStore, MissingBlock
from atstack.core.car import (
    MAX_BLOCK_SIZE,
    MAX_BLOCKS,
    CarError,
    CarFile,
    car_block,
    encode_varint,
    iter_car_blocks,
    read_car,
    read_car_header,
    read_car_raw,
    repo_blocks_in_order,
    write_car,
    write_repo_car,
)
from atstack.core.cbor import encode
from atstack.core.cid import CID, cid_for_cbor, cid_for_raw, parse_cid

try:
    from atstack.core._car_c import read_blocks as _C_READ_BLOCKS
except ImportError:
    _C_READ_BLOCKS = None

pytestmark = pytest.mark.usefixtures("car_backend")


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _fixtures() -> list[dict]:
    return vectors.vector_json("repo", "car-file-fixtures.json", base=vectors.EXTRA)


def test_fixture_parse_and_write_byte_exact() -> None:
    ran = 0
    for fx in _fixtures():
        car = _b64(fx["car"])
        root = parse_cid(fx["root"])
        blocks = [(parse_cid(b["cid"]), _b64(b["bytes"])) for b in fx["blocks"]]
        parsed = read_car(car)
        assert parsed.roots == [root]
        assert list(parsed.blocks.items()) == blocks
        assert write_car([root], blocks) == car
        assert read_car_header(car)[0] == [root]
        assert list(iter_car_blocks(car)) == blocks
        ran += 1
    assert ran > 0


def _sample() -> tuple[list[CID], list[tuple[CID, bytes]]]:
    blocks = []
    for i in range(20):
        data = encode({"i": i, "text": "x" * (i * 13)})
        blocks.append((cid_for_cbor(data), data))
    raw = b"\x00\x01binary blob" * 30
    blocks.append((cid_for_raw(raw), raw))
    blocks.append((cid_for_raw(b""), b""))  # empty raw block is legal
    return [blocks[0][0]], blocks


def test_roundtrip_any_order_duplicates_extras() -> None:
    roots, blocks = _sample()
    shuffled = blocks + blocks[:5]
    random.Random(1).shuffle(shuffled)
    car = write_car(roots, shuffled)
    parsed = read_car(car)
    assert parsed.roots == roots
    assert parsed.blocks == dict(blocks)
    assert len(list(iter_car_blocks(car))) == len(shuffled)
    assert read_car(memoryview(car)).blocks == dict(blocks)


def test_multiple_and_empty_roots() -> None:
    _roots, blocks = _sample()
    two = [blocks[0][0], blocks[1][0]]
    assert read_car(write_car(two, blocks)).roots == two
    assert read_car(write_car([], [])).roots == []


def test_varint_encoding() -> None:
    assert encode_varint(0) == b"\x00"
    assert encode_varint(127) == b"\x7f"
    assert encode_varint(128) == b"\x80\x01"
    assert encode_varint(300) == b"\xac\x02"
    with pytest.raises(ValueError):
        encode_varint(-1)


def _header(obj: object) -> bytes:
    h = encode(obj)
    return encode_varint(len(h)) + h


def test_rejects_malformed() -> None:
    roots, blocks = _sample()
    good = write_car(roots, blocks)
    cid0, data0 = blocks[0]
    header = _header({"roots": roots, "version": 1})
    section = car_block(cid0, data0)
    bad_cases = {
        "empty": b"",
        "truncated header": good[:10],
        "truncated block": good[:-3],
        "non-minimal varint": b"\x80\x00" + good[1:],
        "varint too long": b"\xff" * 12,
        "truncated varint": header + b"\x80",
        "wrong version": _header({"roots": roots, "version": 2}),
        "version as string": _header({"roots": roots, "version": "1"}),
        "missing roots": _header({"version": 1}),
        "extra header key": _header({"roots": roots, "version": 1, "x": 1}),
        "roots not cids": _header({"roots": ["bafy"], "version": 1}),
        "header not a map": _header([1]),
        "zero header": b"\x00",
        "header garbage": b"\x05\xff\xff\xff\xff\xff",
        "length overflow": header + encode_varint(len(section) + 50) + section[1:],
        "zero-length section": header + b"\x00",
        "cid mismatch": header + encode_varint(36 + len(data0)) + cid0.cid_bytes + data0[:-1] + b"\x00",
        "cidv0": header + encode_varint(34 + 3) + b"\x12\x20" + b"\x00" * 32 + b"abc",
        "unknown hash fn": header + encode_varint(4 + 32 + 2) + b"\x01\x71\x13\x20" + b"\x00" * 32 + b"ab",
        "cid longer than section": header + encode_varint(10) + cid0.cid_bytes,
        "huge length": header + b"\xff\xff\xff\xff\x0f",
    }
    for name, data in bad_cases.items():
        with pytest.raises(CarError):
            read_car(data)
            pytest.fail(f"accepted: {name}")
    assert len(bad_cases) == 21


def test_non_canonical_header_rejected() -> None:
    roots, _ = _sample()
    # keys in the wrong order: "version" before "roots"
    h = b"\xa2gversion\x01eroots\x81" + b"\xd8\x2a\x58\x25\x00" + roots[0].cid_bytes
    with pytest.raises(CarError):
        read_car(encode_varint(len(h)) + h)


def test_verify_off_skips_hash_check_only() -> None:
    roots, blocks = _sample()
    cid0, data0 = blocks[0]
    header = _header({"roots": roots, "version": 1})
    tampered = header + encode_varint(36 + len(data0)) + cid0.cid_bytes + data0[:-1] + b"\x00"
    with pytest.raises(CarError, match="does not match"):
        read_car(tampered)
    assert read_car(tampered, verify=False).blocks[cid0] != data0
    with pytest.raises(CarError):
        read_car(tampered[:-2], verify=False)


def test_limits() -> None:
    roots, blocks = _sample()
    car = write_car(roots, blocks)
    with pytest.raises(CarError, match="limit"):
        read_car(car, max_size=len(car) - 1)
    with pytest.raises(CarError, match="more than"):
        read_car(car, max_blocks=len(blocks) - 1)
    assert len(read_car(car, max_blocks=len(blocks)).blocks) == len(blocks)
    with pytest.raises(CarError, match="exceeds"):
        read_car(car, max_block_size=100)


def _mst_node(left: CID | None, entries: list[tuple[bytes, CID, CID | None]]) -> bytes:
    return encode({"l": left, "e": [{"p": 0, "k": k, "v": v, "t": t} for k, v, t in entries]})


def test_repo_export_order_and_missing_block() -> None:
    store = MemoryBlockStore()
    recs = [store.put(encode({"$type": "x.y.z", "n": i})) for i in range(5)]
    leaf_a = store.put(_mst_node(None, [(b"a/1", recs[0], None)]))
    leaf_b = store.put(_mst_node(None, [(b"c/1", recs[2], None)]))
    root = store.put(_mst_node(leaf_a, [(b"b/1", recs[1], leaf_b), (b"d/1", recs[3], None)]))
    commit = store.put(encode({"did": "did:example:x", "data": root, "version": 3, "rev": "x", "prev": None}))
    store.put(encode({"unrelated": True}))
    order = [cid for cid, _ in repo_blocks_in_order(store, commit)]
    assert order == [commit, root, leaf_a, recs[0], recs[1], leaf_b, recs[2], recs[3]]
    car = write_repo_car(store, commit)
    parsed = read_car(car)
    assert parsed.roots == [commit]
    assert list(parsed.blocks) == order
    del store.blocks[recs[2]]
    with pytest.raises(MissingBlock):
        write_repo_car(store, commit)


# ---- the bulk reader (read_car / read_car_raw) against the block-by-block one (iter_car_blocks) ----------


def _exact(data: bytes, verify: bool) -> tuple[list[CID], dict[bytes, bytes]]:
    """What the block-by-block reader makes of ``data`` (first copy of a duplicate wins)."""
    blocks: dict[bytes, bytes] = {}
    for cid, block in iter_car_blocks(data, verify=verify):
        blocks.setdefault(cid.cid_bytes, block)
    return read_car_header(data)[0], blocks


def _odd_cid_blocks() -> list[tuple[CID, bytes]]:
    """Blocks whose CIDs are not the blessed 36-byte kind, or whose sections need a 3-byte length."""
    pb = b"\x0a\x03abc"
    sha512 = b"sha2-512 named block"
    big = encode({"text": "y" * 20_000})  # a section over 16 KiB: three length bytes
    return [
        (CID(b"\x01\x70\x12\x20" + hashlib.sha256(pb).digest()), pb),  # sha2-256, dag-pb codec: verifiable
        (CID(b"\x01\x55\x13\x40" + hashlib.sha512(sha512).digest()), sha512),  # sha2-512: only unverified
        (cid_for_cbor(big), big),
    ]


def test_bulk_reader_matches_block_by_block_reader() -> None:
    roots, blocks = _sample()
    pb, sha512, big = _odd_cid_blocks()
    cid0, data0 = blocks[0]
    header = _header({"roots": roots, "version": 1})
    corrupt_middle = header + b"".join(car_block(c, b) for c, b in blocks[:3])
    corrupt_middle += car_block(blocks[3][0], blocks[3][1][:-1] + b"\x00")
    cases = {
        "blessed only": write_car(roots, blocks),
        "duplicates": write_car(roots, blocks + blocks[:3]),
        "three-byte section length": write_car(roots, [*blocks, big]),
        "non-blessed codec in the middle": write_car(roots, [*blocks[:5], pb, *blocks[5:]]),
        "sha2-512 CID": write_car(roots, [*blocks, sha512]),
        "corrupt block in the middle": corrupt_middle + b"".join(car_block(c, b) for c, b in blocks[4:]),
        "duplicate that differs": write_car(roots, blocks) + car_block(cid0, data0[:-1] + b"\x00"),
        "section shorter than a CID": header + encode_varint(10) + cid0.cid_bytes,
        "truncated last block": write_car(roots, blocks)[:-5],
        "truncated section length": header + b"\x80",
        "cidv0": header + encode_varint(34 + 3) + b"\x12\x20" + b"\x00" * 32 + b"abc",
    }
    outcomes = set()
    for name, data in cases.items():
        for verify in (True, False):
            try:
                expected = _exact(data, verify)
            except CarError:
                with pytest.raises(CarError):
                    read_car_raw(data, verify=verify)
                    pytest.fail(f"bulk reader accepted {name} (verify={verify})")
                with pytest.raises(CarError):
                    read_car(data, verify=verify)
                outcomes.add("rejected")
                continue
            assert read_car_raw(data, verify=verify) == expected, name
            parsed = read_car(data, verify=verify)
            assert parsed.roots == expected[0]
            assert [(c.cid_bytes, b) for c, b in parsed.blocks.items()] == list(expected[1].items()), name
            outcomes.add("accepted")
    assert outcomes == {"accepted", "rejected"}
    # The verifiable odd CIDs pass with hashes checked; the sha2-512 one only without.
    assert pb[0].cid_bytes in read_car_raw(cases["non-blessed codec in the middle"])[1]
    assert read_car_raw(cases["three-byte section length"])[1][big[0].cid_bytes] == big[1]
    with pytest.raises(CarError, match="hash function"):
        read_car_raw(cases["sha2-512 CID"])
    assert read_car_raw(cases["sha2-512 CID"], verify=False)[1][sha512[0].cid_bytes] == sha512[1]


def test_bulk_reader_names_the_corrupt_block() -> None:
    roots, blocks = _sample()
    bad_cid, bad_data = blocks[7]
    car = write_car(roots, [*blocks[:7], (bad_cid, bad_data + b"!"), *blocks[8:]])
    with pytest.raises(CarError, match=f"does not match its CID {bad_cid.encode()}"):
        read_car_raw(car)
    # without hash checks the (wrong) bytes are returned as they are
    assert read_car_raw(car, verify=False)[1][bad_cid.cid_bytes] == bad_data + b"!"


def test_bulk_reader_limits() -> None:
    roots, blocks = _sample()
    car = write_car(roots, blocks)
    with pytest.raises(CarError, match="more than"):
        read_car_raw(car, max_blocks=len(blocks) - 1)
    assert len(read_car_raw(car, max_blocks=len(blocks))[1]) == len(blocks)
    big = _odd_cid_blocks()[2]
    with pytest.raises(CarError, match="exceeds"):
        read_car_raw(write_car(roots, [*blocks, big]), max_block_size=len(big[1]) - 1)
    assert big[0].cid_bytes in read_car_raw(write_car(roots, [*blocks, big]), max_block_size=len(big[1]))[1]


@pytest.mark.parametrize("root", [cid_for_cbor(b"\xa0"), cid_for_raw(b"blob")])
def test_canonical_one_root_header_shortcut_agrees_with_decoding(root: CID) -> None:
    car = write_car([root], [(root, b"\xa0")])
    header = encode({"roots": [root], "version": 1})
    assert car[1 : 1 + len(header)] == header  # the shape the shortcut recognises
    assert read_car_header(car) == ([root], 1 + len(header))
    # one byte off in the tail (version 2) or the root's prefix is not waved through
    bad_version = car[:58] + b"\x02" + car[59:]
    with pytest.raises(CarError, match="version"):
        read_car_header(bad_version)
    odd_prefix = car[:14] + b"\x01\x72" + car[16:]  # codec 0x72: still a CID, decoded the long way
    assert read_car_header(odd_prefix)[0][0].cid_bytes[:2] == b"\x01\x72"


# ---- the C fast path (atstack.core._car_c) against the Python code it backs ---------------------------------


def _c_read_blocks() -> Any:
    if _C_READ_BLOCKS is None:
        pytest.fail("the C extension atstack.core._car_c was not built")
    return _C_READ_BLOCKS


def _read_with(data: bytes, use_c: bool, **kw: Any) -> tuple[Any, ...]:
    """``read_car_raw`` and ``read_car`` with the C path on or off: what they return (blocks in order) or the
    exception they raise."""
    saved = car_module._c_read_blocks
    car_module._c_read_blocks = _c_read_blocks() if use_c else None
    try:
        roots, blocks = read_car_raw(data, **kw)
        parsed: CarFile = read_car(data, **kw)
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))
    finally:
        car_module._c_read_blocks = saved
    return ("read", roots, list(blocks.items()), parsed.roots, list(parsed.blocks.items()))


def _fast_args(car: bytes) -> tuple[bytes, int]:
    return car, read_car_header(car)[1]


def test_c_reader_takes_the_common_shape() -> None:
    read_blocks = _c_read_blocks()
    roots, blocks = _sample()
    car, pos = _fast_args(write_car(roots, blocks))
    for verify in (True, False):
        got = read_blocks(car, pos, MAX_BLOCKS, MAX_BLOCK_SIZE, verify)
        assert list(got.items()) == [(c.cid_bytes, b) for c, b in blocks]
    assert read_blocks(car, len(car), 0, 0, True) == {}  # no sections at all
    # exactly at the caps (ints past 64 bits are no cap at all)
    biggest = max(len(b) for _, b in blocks)
    assert len(read_blocks(car, pos, len(blocks), biggest, True)) == len(blocks)
    assert len(read_blocks(car, pos, 1 << 70, 1 << 80, True)) == len(blocks)
    # duplicates: the first copy and its place in the order stay
    cid0, data0 = blocks[0]
    dup, pos = _fast_args(write_car(roots, [*blocks, (cid0, data0)]))
    assert list(read_blocks(dup, pos, MAX_BLOCKS, MAX_BLOCK_SIZE, True)) == [c.cid_bytes for c, _ in blocks]
    odd, pos = _fast_args(write_car(roots, [*blocks, (cid0, data0 + b"!")]))
    assert read_blocks(odd, pos, MAX_BLOCKS, MAX_BLOCK_SIZE, False)[cid0.cid_bytes] == data0
    # large enough to hash with the GIL released, and a three-byte section length
    big = [(cid_for_raw(bytes([i]) * 40_000), bytes([i]) * 40_000) for i in range(4)]
    car, pos = _fast_args(write_car(roots, big))
    assert list(read_blocks(car, pos, MAX_BLOCKS, MAX_BLOCK_SIZE, True).items()) == [
        (c.cid_bytes, b) for c, b in big
    ]
    corrupt = car[:-1] + b"\x00"
    assert read_blocks(corrupt, pos, MAX_BLOCKS, MAX_BLOCK_SIZE, True) is None
    assert read_blocks(corrupt, pos, MAX_BLOCKS, MAX_BLOCK_SIZE, False)[big[-1][0].cid_bytes][-1] == 0


def test_c_reader_leaves_everything_else_to_python() -> None:
    read_blocks = _c_read_blocks()
    roots, blocks = _sample()
    pb, sha512, big = _odd_cid_blocks()
    cid0, data0 = blocks[0]
    good, pos = _fast_args(write_car(roots, blocks))
    section = car_block(cid0, data0)
    head = good[:pos]
    not_fast = {
        "wrong digest": write_car(roots, [*blocks[:3], (cid0, data0 + b"!")]),
        "non-blessed codec": write_car(roots, [*blocks, pb]),
        "sha2-512": write_car(roots, [*blocks, sha512]),
        "cidv0": head + encode_varint(34 + 3) + b"\x12\x20" + b"\x00" * 32 + b"abc",
        "non-minimal length": head + bytes((section[0] | 0x80, 0)) + section[1:],
        "truncated section": good[:-1],
        "truncated length": head + b"\x80",
        "trailing byte": good + b"\x00",
        "zero-length section": head + b"\x00",
        "section shorter than a CID": head + encode_varint(10) + cid0.cid_bytes[:10],
        "ten-byte length": head + b"\xff" * 9 + b"\x01",
    }
    for name, car in not_fast.items():
        assert read_blocks(car, pos, MAX_BLOCKS, MAX_BLOCK_SIZE, True) is None, name
    assert read_blocks(good, pos, len(blocks) - 1, MAX_BLOCK_SIZE, True) is None  # too many blocks
    biggest = max(len(b) for _, b in blocks)
    assert read_blocks(good, pos, MAX_BLOCKS, biggest - 1, True) is None  # a block over the cap
    assert read_blocks(write_car(roots, [big]), pos, MAX_BLOCKS, len(big[1]) - 1, True) is None
    # arguments it was not made for
    for args in (
        (bytearray(good), pos, MAX_BLOCKS, MAX_BLOCK_SIZE, True),
        (good, -1, MAX_BLOCKS, MAX_BLOCK_SIZE, True),
        (good, len(good) + 1, MAX_BLOCKS, MAX_BLOCK_SIZE, True),
        (good, pos, -1, MAX_BLOCK_SIZE, True),
        (good, pos, MAX_BLOCKS, -1, True),
        (good, pos, 1.5, MAX_BLOCK_SIZE, True),
        (good, pos - 1, MAX_BLOCKS, MAX_BLOCK_SIZE, True),
    ):
        assert read_blocks(*args) is None, args[1:]
    with pytest.raises(TypeError):
        read_blocks(good, pos)


def _digest_flip(cid: bytes, at: int) -> bytes:
    """One bit of the digest flipped (of whatever a CID damaged by an earlier fault has left)."""
    if len(cid) <= 4:
        return cid + b"\x01"
    i = 4 + at % (len(cid) - 4)
    return cid[:i] + bytes((cid[i] ^ 1,)) + cid[i + 1 :]


_ODD_PREFIXES = (
    b"\x01\x70\x12\x20",  # dag-pb sha2-256: a CID the exact reader verifies
    b"\x12\x20",  # CIDv0
    b"\x01\x71\x12\x1f",  # a 31-byte "sha2-256" digest
    b"\x01\x71\x13\x20",  # sha2-512 named, 32-byte digest
    b"\x00\x71\x12\x20",
    b"\x01\x71\x12\x21",
    b"\x01\x71\x92\x20",  # a hash-function varint that runs on
)
_BODIES = st.one_of(
    st.binary(max_size=140),
    st.integers(16_300, 16_400).map(lambda n: b"\x5a" * n),  # around the three-byte section length
)
_SECTION_FAULTS = ("non-minimal", "length off", "digest", "body", "prefix", "short", "zero", "huge length")


@st.composite
def _car_cases(draw: st.DrawFn) -> tuple[bytes, dict[str, Any]]:
    """A CAR of blessed-CID blocks, often damaged: sections, limits, duplicates, truncation, extra bytes."""
    sections: list[list[bytes]] = []  # [length bytes (b"" for minimal), CID, block]
    for body in draw(st.lists(_BODIES, max_size=10)):
        prefix = draw(st.sampled_from(car_module._FAST_PREFIXES))
        sections.append([b"", prefix + hashlib.sha256(body).digest(), body])
    if sections and draw(st.booleans()):  # a duplicate, the same bytes or not
        copy = list(draw(st.sampled_from(sections)))
        if draw(st.booleans()):
            copy[2] += b"!"
        sections.insert(draw(st.integers(0, len(sections))), copy)
    for fault in draw(st.lists(st.sampled_from(_SECTION_FAULTS), max_size=3)) if sections else ():
        s = sections[draw(st.integers(0, len(sections) - 1))]
        n = len(s[1]) + len(s[2])
        if fault == "non-minimal":
            v = encode_varint(n)
            s[0] = v[:-1] + bytes((v[-1] | 0x80, 0))
        elif fault == "length off":
            s[0] = encode_varint(max(0, n + draw(st.sampled_from((-37, -2, -1, 1, 2)))))
        elif fault == "digest":
            s[1] = _digest_flip(s[1], draw(st.integers(0, 31)))
        elif fault == "body":
            s[2] = s[2][:-1] + b"?" if s[2] else b"?"
        elif fault == "prefix":
            s[1] = (
                draw(st.one_of(st.sampled_from(_ODD_PREFIXES), st.binary(min_size=1, max_size=5))) + s[1][4:]
            )
        elif fault == "short":
            s[1], s[2] = s[1][: draw(st.integers(0, 35))], b""
        elif fault == "zero":
            s[0], s[1], s[2] = b"\x00", b"", b""
        else:
            s[0] = draw(st.sampled_from((b"\xff" * 8 + b"\x7f", b"\xff" * 9 + b"\x01", b"\x80" * 9)))
    body = b"".join((s[0] or encode_varint(len(s[1]) + len(s[2]))) + s[1] + s[2] for s in sections)
    head = _header({"roots": [cid_for_cbor(b"\xa0")] * draw(st.integers(0, 2)), "version": 1})
    data = head + body
    tail = draw(st.sampled_from(("none", "none", "truncate", "trailing", "flip")))
    if tail == "truncate" and body:
        data = data[: draw(st.integers(len(head), len(data) - 1))]
    elif tail == "trailing":
        data += draw(st.binary(min_size=1, max_size=6))
    elif tail == "flip" and body:
        i = draw(st.integers(len(head), len(data) - 1))
        data = data[:i] + bytes((data[i] ^ draw(st.integers(1, 255)),)) + data[i + 1 :]
    biggest = max((len(s[2]) for s in sections), default=0)
    kw = {
        "verify": draw(st.booleans()),
        # mostly the defaults: a tight cap would reject most damaged CARs before their damage is reached
        "max_blocks": draw(st.sampled_from((MAX_BLOCKS,) * 5 + (len(sections), len(sections) - 1, 0))),
        "max_block_size": draw(st.sampled_from((MAX_BLOCK_SIZE,) * 4 + (biggest, biggest - 1, 16_000, 0))),
    }
    return data, kw


def test_c_path_differential() -> None:
    """Random valid and damaged CARs: the same blocks, or the same exception and message, either way."""
    read_blocks = _c_read_blocks()
    seen: Counter[str] = Counter()

    @settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_car_cases())
    def check(case: tuple[bytes, dict[str, Any]]) -> None:
        data, kw = case
        with_c = _read_with(data, True, **kw)
        assert with_c == _read_with(data, False, **kw)
        pos = read_car_header(data)[1]  # the header is always well-formed here
        fast = read_blocks(data, pos, kw["max_blocks"], kw["max_block_size"], kw["verify"])
        if fast is not None:  # what it takes, Python reads the same way
            assert ("read", list(fast.items())) == (with_c[0], with_c[2])
        seen["fast" if fast is not None else with_c[0]] += 1

    check()
    assert seen["fast"] > 0 and seen["read"] > 0 and seen["raised"] > 0, seen


def test_interop_fixtures_take_the_c_path() -> None:
    read_blocks = _c_read_blocks()
    ran = 0
    for fx in _fixtures():
        car = _b64(fx["car"])
        got = read_blocks(car, read_car_header(car)[1], MAX_BLOCKS, MAX_BLOCK_SIZE, True)
        assert list(got.items()) == [(parse_cid(b["cid"]).cid_bytes, _b64(b["bytes"])) for b in fx["blocks"]]
        ran += 1
    assert ran > 0
