"""Strict DRISL decoding (core/cbor.py): every malformed input is rejected, valid input round-trips.

Spec: atproto.com/specs/data-model, DASL DRISL; checklist §2. The hand-written cases cover each rule; the
adversarial cases target the byte screens that decide whether a decoded value must be walked; the
hypothesis properties check exactness (decode rejects exactly the values that break a rule) and
canonical round trips.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import cbrrr
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import atstack.core.cbor as cbor_module
from atstack.core.cbor import (
    INT64_MAX,
    INT64_MIN,
    MAX_BLOCK_SIZE,
    MAX_DEPTH,
    CBORDecodeError,
    check_data_model_tree,
    decode,
    decode_json_mode,
    decode_trusted,
    encode,
    encode_json_mode,
)
from atstack.core.cid import CID, cid_for_cbor, cid_for_raw

_C_SCREEN = cbor_module._c_screen


@pytest.fixture(scope="module", params=["c-screen", "python-screens"], autouse=True)
def screen_backend(request: pytest.FixtureRequest) -> Any:
    """Every test runs against both implementations of the data-model screen: the C one-pass check and
    the Python byte screens it replaces where the extension could not be built."""
    if request.param == "c-screen" and _C_SCREEN is None:
        pytest.fail("the C extension atstack.core._drisl_screen was not built")
    cbor_module._c_screen = _C_SCREEN if request.param == "c-screen" else None
    yield request.param
    cbor_module._c_screen = _C_SCREEN


CID_A = cid_for_cbor(b"a")
CID_TOKEN_A = b"\xd8\x2a\x58\x25\x00" + CID_A.cid_bytes  # tag 42, bytes(37), 0x00 + CID


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def nested_arrays(depth: int, leaf: bytes = b"\x01") -> bytes:
    """``depth`` nested one-element arrays around ``leaf``."""
    return b"\x81" * depth + leaf


def nested_maps(depth: int, leaf: bytes = b"\x01") -> bytes:
    """``depth`` nested maps ``{"a": …}`` around ``leaf``."""
    return b"\xa1\x61\x61" * depth + leaf


# (id, input, fragment expected in the error message or None when cbrrr words it)
MALFORMED: list[tuple[str, bytes, str | None]] = [
    # map keys
    ("unsorted keys", h("a2 6162 01 6161 02"), None),
    ("keys bytewise but not length-first", h("a2 626161 01 6162 02"), None),
    ("duplicate keys", h("a2 6161 01 6161 02"), None),
    ("int key", h("a1 01 02"), None),
    ("bytes key", h("a1 4161 02"), None),
    ("array key", h("a1 80 02"), None),
    ("null key", h("a1 f6 02"), None),
    # integers in a longer form than needed, every width
    ("uint 5 in 1-byte form", h("18 05"), None),
    ("uint 5 in 2-byte form", h("19 0005"), None),
    ("uint 5 in 4-byte form", h("1a 00000005"), None),
    ("uint 5 in 8-byte form", h("1b 0000000000000005"), None),
    ("uint 255 in 2-byte form", h("19 00ff"), None),
    ("uint 65535 in 4-byte form", h("1a 0000ffff"), None),
    ("uint 2^32-1 in 8-byte form", h("1b 00000000ffffffff"), None),
    ("nint -6 in 1-byte form", h("38 05"), None),
    ("nint in 2-byte form", h("39 00ff"), None),
    ("nint in 4-byte form", h("3a 0000ffff"), None),
    ("nint in 8-byte form", h("3b 00000000ffffffff"), None),
    # lengths in a longer form than needed
    ("text length 1 in 1-byte form", h("78 01 61"), None),
    ("text length 1 in 2-byte form", h("79 0001 61"), None),
    ("text length 1 in 4-byte form", h("7a 00000001 61"), None),
    ("text length 1 in 8-byte form", h("7b 0000000000000001 61"), None),
    ("bytes length 1 in 1-byte form", h("58 01 00"), None),
    ("bytes length 1 in 2-byte form", h("59 0001 00"), None),
    ("array length 1 in 1-byte form", h("98 01 01"), None),
    ("array length 1 in 2-byte form", h("99 0001 01"), None),
    ("map length 1 in 1-byte form", h("b8 01 6161 01"), None),
    ("map length 1 in 4-byte form", h("ba 00000001 6161 01"), None),
    ("tag 42 in 2-byte form", h("d9 002a 4100"), None),
    # indefinite lengths and stray breaks
    ("indefinite text", h("7f 6161 ff"), None),
    ("indefinite bytes", h("5f 4100 ff"), None),
    ("indefinite array", h("9f 01 ff"), None),
    ("indefinite map", h("bf 6161 01 ff"), None),
    ("lone break", h("ff"), None),
    ("reserved additional info 28", h("1c"), None),
    ("reserved additional info 31 on uint", h("1f"), None),
    # tags
    ("tag 0 (date text)", h("c0 6161"), None),
    ("tag 1 (epoch)", h("c1 01"), None),
    ("tag 2 (bignum)", h("c2 4101"), None),
    ("tag 24", h("d8 18 4100"), None),
    ("tag 43", h("d8 2b 4100"), None),
    ("tag 42 over text", h("d8 2a 6161"), None),
    ("tag 42 over int", h("d8 2a 01"), None),
    ("tag 42 over array", h("d8 2a 80"), None),
    ("tag 42 over empty bytes", h("d8 2a 40"), None),
    ("tag 42 without 0x00 prefix", b"\xd8\x2a\x58\x25\x01" + CID_A.cid_bytes, None),
    ("tag 42 with only the prefix", h("d8 2a 41 00"), "invalid CID"),
    ("tag 42 with CIDv0", b"\xd8\x2a\x58\x23\x00" + b"\x12\x20" + bytes(32), "invalid CID"),
    ("tag 42 with short digest", b"\xd8\x2a\x58\x24\x00" + CID_A.cid_bytes[:-1], "invalid CID"),
    ("tag 42 with long digest", b"\xd8\x2a\x58\x26\x00" + CID_A.cid_bytes + b"\x00", "invalid CID"),
    (
        "tag 42 with CID over 100 bytes",
        b"\xd8\x2a\x58\x6b\x00" + h("01 71 13 66") + bytes(102),
        "invalid CID",
    ),
    # floats, any width, any value
    ("float16 1.0", h("f9 3c00"), None),
    ("float16 NaN", h("f9 7e00"), None),
    ("float32 1.0", h("fa 3f800000"), None),
    ("float32 inf", h("fa 7f800000"), None),
    ("float64 1.0", h("fb 3ff0000000000000"), "float"),
    ("float64 0.0", h("fb 0000000000000000"), "float"),
    ("float64 -0.0", h("fb 8000000000000000"), "float"),
    ("float64 NaN", h("fb 7ff8000000000000"), None),
    ("float64 inf", h("fb 7ff0000000000000"), None),
    ("float64 -inf", h("fb fff0000000000000"), None),
    ("float64 in a map", h("a1 6161 fb 4000000000000000"), "float"),
    ("float64 in an array", h("83 01 02 fb 4000000000000000"), "float"),
    ("float64 beside a CID", b"\xa2\x61a" + CID_TOKEN_A + b"\x61b\xfb" + bytes(8), "float"),
    # simple values
    ("undefined", h("f7"), None),
    ("simple value 0", h("e0"), None),
    ("simple value 16", h("f0"), None),
    ("simple value 32 (one-byte form)", h("f8 20"), None),
    ("simple value 255", h("f8 ff"), None),
    ("false in one-byte form", h("f8 14"), None),
    # structure
    ("empty input", b"", None),
    ("trailing byte", h("01 00"), "trailing"),
    ("two maps", h("a0 a0"), "trailing"),
    ("trailing bytes after a CID", CID_TOKEN_A + b"\x00", "trailing"),
    ("truncated uint", h("19 01"), None),
    ("truncated uint64", h("1b 0000"), None),
    ("truncated text", h("62 61"), None),
    ("truncated bytes", h("42 00"), None),
    ("truncated array", h("82 01"), None),
    ("truncated map", h("a1 6161"), None),
    ("truncated CID", CID_TOKEN_A[:-1], None),
    ("array length beyond the input", h("9b 00000000ffffffff 01"), None),
    # text must be valid UTF-8
    ("invalid UTF-8 byte", h("61 ff"), None),
    ("truncated UTF-8 sequence", h("62 c3 28"), None),
    ("UTF-8 surrogate", h("63 eda080"), None),
    ("overlong UTF-8", h("62 c0af"), None),
    ("invalid UTF-8 in a key", h("a1 61ff 01"), None),
    # integers must fit in a signed 64-bit integer
    ("uint 2^63", h("1b 8000000000000000"), "64-bit"),
    ("uint 2^64-1", h("1b ffffffffffffffff"), "64-bit"),
    ("nint -2^63-1", h("3b 8000000000000000"), "64-bit"),
    ("nint -2^64", h("3b ffffffffffffffff"), "64-bit"),
    ("uint 2^63 in a map", h("a1 6161 1b 8000000000000000"), "64-bit"),
    ("nint -2^64 beside a CID", b"\x82" + CID_TOKEN_A + h("3b ffffffffffffffff"), "64-bit"),
    # nesting
    ("33 nested arrays", nested_arrays(33), "nesting"),
    ("33 nested maps", nested_maps(33), "nesting"),
    ("33 nested, mixed", b"\x81\xa1\x61\x61" * 16 + b"\x80", "nesting"),
    ("33 nested, empty innermost map", nested_arrays(32, b"\xa0"), "nesting"),
    ("33 nested with a CID leaf", nested_arrays(33, CID_TOKEN_A), "nesting"),
]


@pytest.mark.parametrize(("data", "fragment"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_input_is_rejected(data: bytes, fragment: str | None) -> None:
    with pytest.raises(CBORDecodeError) as err:
        decode(data)
    assert str(err.value)
    if fragment is not None:
        assert fragment in str(err.value)


@pytest.mark.parametrize("data", [c[1] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_json_mode_rejects_the_same_inputs(data: bytes) -> None:
    with pytest.raises(CBORDecodeError):
        decode_json_mode(data)


def test_malformed_list_is_not_empty() -> None:
    assert len(MALFORMED) > 80


VALID: list[tuple[str, bytes, Any]] = [
    ("int64 max", h("1b 7fffffffffffffff"), INT64_MAX),
    ("int64 min", h("3b 7fffffffffffffff"), INT64_MIN),
    ("uint 2^32", h("1b 0000000100000000"), 2**32),
    ("32 nested arrays", nested_arrays(32), None),
    ("32 nested maps", nested_maps(32), None),
    ("32 nested, empty innermost map", nested_arrays(31, b"\xa0"), None),
    ("32 nested arrays with a CID leaf", nested_arrays(32, CID_TOKEN_A), None),
    ("false, true, null", h("83 f4 f5 f6"), [False, True, None]),
    ("empty text, bytes, array, map", h("84 60 40 80 a0"), ["", b"", [], {}]),
    ("keys length-first", h("a2 6162 01 626161 02"), {"b": 1, "aa": 2}),
    ("CID", CID_TOKEN_A, CID_A),
    ("raw-codec CID", b"\xd8\x2a\x58\x25\x00" + cid_for_raw(b"x").cid_bytes, cid_for_raw(b"x")),
    # other well-formed CIDv1 are allowed in records (checklist §4: preserve whatever CID was used)
    (
        "CIDv1 sha2-512",
        b"\xd8\x2a\x58\x45\x00" + h("01 71 13 40") + bytes(64),
        CID(h("01 71 13 40") + bytes(64)),
    ),
    (
        "CIDv1 dag-pb",
        b"\xd8\x2a\x58\x25\x00" + h("01 70 12 20") + bytes(32),
        CID(h("01 70 12 20") + bytes(32)),
    ),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_input_is_accepted(data: bytes, expected: Any) -> None:
    value = decode(data)
    if expected is not None:
        assert value == expected
        assert type(value) is type(expected)
    assert encode(value) == data
    assert encode_json_mode(decode_json_mode(data)) == data


def test_size_limit() -> None:
    data = encode("x" * 100)
    assert decode(data, max_size=len(data)) == "x" * 100
    with pytest.raises(CBORDecodeError, match="exceeds limit"):
        decode(data, max_size=len(data) - 1)
    with pytest.raises(CBORDecodeError, match="exceeds limit"):
        decode_json_mode(data, max_size=len(data) - 1)
    big = encode(b"\x00" * MAX_BLOCK_SIZE)
    with pytest.raises(CBORDecodeError, match="exceeds limit"):
        decode(big)
    assert decode(big, max_size=len(big)) == b"\x00" * MAX_BLOCK_SIZE


def test_memoryview_and_bytearray_input() -> None:
    data = encode({"a": [1, CID_A, b"\xfb"]})
    assert decode(memoryview(data)) == decode(bytearray(data)) == {"a": [1, CID_A, b"\xfb"]}
    with pytest.raises(CBORDecodeError, match="float"):
        decode(memoryview(h("fb 3ff0000000000000")))


def test_decoded_cids_are_plain_cid_objects() -> None:
    value = decode(encode({"l": CID_A, "e": [cid_for_raw(b"1")]}))
    assert type(value["l"]) is CID
    assert value["l"] == CID_A and hash(value["l"]) == hash(CID_A)
    assert value["l"].encode() == CID_A.encode()


def test_json_mode_output() -> None:
    value = {"a": CID_A, "b": b"\x01\x02", "c": [1, "x", None]}
    data = encode(value)
    assert decode_json_mode(data) == {
        "a": {"$link": CID_A.encode()},
        "b": {"$bytes": "AQI"},
        "c": [1, "x", None],
    }
    with pytest.raises(CBORDecodeError):  # reserved keys would be ambiguous in JSON
        decode_json_mode(encode({"$link": "x"}))
    assert decode(encode({"$link": "x"})) == {"$link": "x"}


def test_check_data_model_tree() -> None:
    check_data_model_tree({"a": [1, "x", None, b"", CID_A, INT64_MIN, INT64_MAX]})
    check_data_model_tree(5)
    for bad, fragment in [
        ({"a": [1.5]}, "float"),
        (2.0, "float"),
        ([INT64_MAX + 1], "64-bit"),
        (INT64_MIN - 1, "64-bit"),
        (decode_trusted(nested_arrays(33)), "nesting"),
    ]:
        with pytest.raises(CBORDecodeError, match=fragment):
            check_data_model_tree(bad)


# -- adversarial inputs for the byte screens -----------------------------------------------------------------


def cid_with_digest(digest: bytes, codec: bytes = b"\x71") -> CID:
    return CID(b"\x01" + codec + b"\x12\x20" + digest)


SCREEN_BYTES = bytes([0xFB, 0x1B, 0x3B, 0x80, 0xFF, 0xBF, 0xA1]) * 4 + bytes(4)  # 32 bytes


def test_cids_full_of_screened_bytes_are_accepted() -> None:
    cids = [cid_with_digest(SCREEN_BYTES[i:] + SCREEN_BYTES[:i]) for i in range(40)]
    value = {"e": [{"k": b"x", "p": 0, "t": None, "v": c} for c in cids], "l": cids[0]}
    data = encode(value)
    assert data.count(0xFB) > 40 and len(data.translate(None, bytes(range(0x80)))) > 200
    assert decode(data) == value
    assert decode_json_mode(data) == cbrrr.decode_dag_cbor(data, atjson_mode=True)


def test_violations_hidden_among_cids_are_found() -> None:
    cids = [cid_with_digest(SCREEN_BYTES) for _ in range(5)]
    for bad, fragment in [
        ({"c": cids, "f": 1.5}, "float"),
        ({"c": cids, "i": INT64_MAX + 1}, "64-bit"),
        ({"c": cids, "i": INT64_MIN - 1}, "64-bit"),
        ({"c": cids, "d": decode_trusted(nested_arrays(32))}, "nesting"),
    ]:
        with pytest.raises(CBORDecodeError, match=fragment):
            decode(cbrrr.encode_dag_cbor(bad))


def test_a_fake_cid_head_inside_bytes_hides_nothing() -> None:
    # A byte string ending in what looks like the head of a CID token, followed by a real float: the 36
    # "CID bytes" after the fake head would swallow the float header.
    fake = b"\xd8\x2a\x58\x25\x00\x01\x71\x12\x20"
    data = cbrrr.encode_dag_cbor([fake, 1.5, CID_A, CID_A])
    with pytest.raises(CBORDecodeError, match="float"):
        decode(data)
    data = cbrrr.encode_dag_cbor([fake, INT64_MAX + 1, CID_A])
    with pytest.raises(CBORDecodeError, match="64-bit"):
        decode(data)


def test_int64_heads_inside_strings_are_not_integers() -> None:
    # 0x3b is the length byte of a 59-character string (every base32 CID string) and ';' in text; 0x1b
    # the length of a 27-character string. Followed by a high byte, they make the screen walk the value.
    value = {
        "cid": CID_A.encode(),
        "t": ";é;" * 20,
        "u": "é" * 13 + "x",  # 27 bytes: length byte 0x1b, then 0xc3
        "v": "\x1b\x80",
        "w": [59, 27, -60, -28],
    }
    data = encode(value)
    assert b"\x3b\xc3" in data and b"\x1b\xc3" in data
    assert decode(data) == value
    with pytest.raises(CBORDecodeError, match="64-bit"):
        decode(cbrrr.encode_dag_cbor({**value, "z": -(2**64)}))


def test_depth_screen_with_multibyte_text() -> None:
    text = "日本語のテキスト" * 30  # hundreds of bytes in 0x80..0xbf
    ok = {"text": text, "deep": decode_trusted(nested_arrays(31))}
    assert decode(encode(ok)) == ok
    bad = {"text": text, "deep": decode_trusted(nested_arrays(32))}
    with pytest.raises(CBORDecodeError, match="nesting"):
        decode(cbrrr.encode_dag_cbor(bad))
    with pytest.raises(CBORDecodeError, match="nesting"):
        decode_json_mode(cbrrr.encode_dag_cbor(bad))


def test_depth_in_json_mode_does_not_count_links_and_bytes() -> None:
    # A CID and a byte string inside 32 arrays: in JSON form they are objects at depth 33, but they are
    # not containers. The 0x80 bytes make the depth screen walk the value.
    data = b"\x81" * 31 + b"\x82" + CID_TOKEN_A + b"\x58\x28" + b"\x80" * 40
    assert decode(data) == decode_trusted(data)
    inner = decode_json_mode(data)
    for _ in range(31):
        inner = inner[0]
    assert inner == [{"$link": CID_A.encode()}, {"$bytes": "gICA" * 13 + "gA"}]
    data = b"\x81" * 32 + b"\x58\x28" + b"\x80" * 40  # no CID: JSON mode screens and walks itself
    inner = decode_json_mode(data)
    for _ in range(32):
        inner = inner[0]
    assert inner == {"$bytes": "gICA" * 13 + "gA"}


# -- hypothesis: exactness and canonical round trips ---------------------------------------------------------

leaf_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.integers(min_value=-(2**8), max_value=2**8),
    st.text(max_size=12),
    st.binary(max_size=40),
    st.binary(min_size=32, max_size=32).map(cid_with_digest),
    st.binary(min_size=32, max_size=32).map(lambda d: cid_with_digest(d, b"\x55")),
)


KEYS = st.text(max_size=8).filter(lambda k: k not in ("$link", "$bytes"))  # reserved in JSON mode


def data_model_values(depth: int = 1) -> st.SearchStrategy[Any]:
    """Values whose containers nest at most ``MAX_DEPTH`` deep (``depth`` is the next container's)."""
    if depth > MAX_DEPTH:
        return leaf_values
    children = st.deferred(lambda: data_model_values(depth + 1))
    return st.one_of(
        leaf_values,
        st.lists(children, max_size=4),
        st.dictionaries(KEYS, children, max_size=4),
    )


@st.composite
def deep_values(draw: st.DrawFn) -> Any:
    """A chain of exactly ``MAX_DEPTH`` containers with random siblings and leaves."""
    value = draw(leaf_values)
    for _ in range(MAX_DEPTH):
        if draw(st.booleans()):
            value = [*draw(st.lists(leaf_values, max_size=2)), value]
        else:
            value = {**draw(st.dictionaries(st.text(max_size=3), leaf_values, max_size=2)), "~~~~": value}
    return value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(data_model_values(), deep_values()))
def test_round_trip(value: Any) -> None:
    data = encode(value)
    decoded = decode(data)
    assert decoded == value
    assert encode(decoded) == data
    json_form = decode_json_mode(data)
    assert encode_json_mode(json_form) == data


# Values that may break the rules: floats, integers up to ±2^64, nesting up to 40.
any_leaf = st.one_of(
    leaf_values,
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**64), max_value=2**64 - 1),
    st.sampled_from([INT64_MAX, INT64_MAX + 1, INT64_MIN, INT64_MIN - 1, -(2**64), 2**64 - 1]),
)


@st.composite
def maybe_invalid_values(draw: st.DrawFn) -> Any:
    depth = draw(st.integers(min_value=0, max_value=40))
    value = draw(any_leaf)
    for _ in range(depth):
        siblings = draw(st.lists(any_leaf, max_size=2))
        value = (
            [*siblings, value]
            if draw(st.booleans())
            else {"k": value, **{str(i): s for i, s in enumerate(siblings)}}
        )
    return value


def breaks_a_rule(value: Any, depth: int = 0) -> bool:
    if type(value) is float:
        return True
    if type(value) is int:
        return not INT64_MIN <= value <= INT64_MAX
    if type(value) in (list, dict):
        items = value.values() if type(value) is dict else value
        return depth + 1 > MAX_DEPTH or any(breaks_a_rule(v, depth + 1) for v in items)
    return False


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(maybe_invalid_values())
def test_decode_rejects_exactly_the_invalid_values(value: Any) -> None:
    data = cbrrr.encode_dag_cbor(value)  # DAG-CBOR allows floats and 64-bit unsigned integers
    if breaks_a_rule(value):
        with pytest.raises(CBORDecodeError):
            decode(data)
        with pytest.raises(CBORDecodeError):
            decode_json_mode(data)
    else:
        assert decode(data) == value
        assert decode_json_mode(data) == cbrrr.decode_dag_cbor(data, atjson_mode=True)


@settings(max_examples=300, deadline=None)
@given(data_model_values(), st.data())
def test_decode_accepts_only_canonical_bytes(value: Any, data: st.DataObject) -> None:
    """Mutate one byte of a valid encoding: either it is rejected or it is the canonical encoding of what
    it decodes to (DRISL has exactly one encoding per value)."""
    encoded = bytearray(encode(value))
    index = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    encoded[index] = data.draw(st.integers(min_value=0, max_value=255))
    mutated = bytes(encoded)
    try:
        decoded = decode(mutated)
    except CBORDecodeError:
        return
    assert encode(decoded) == mutated


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_decode_canonically_or_fail(data: bytes) -> None:
    try:
        decoded = decode(data)
    except CBORDecodeError:
        return
    assert encode(decoded) == data


def test_float_bytes_round_trip_as_bytes() -> None:
    # A byte string holding a float64 header and payload is just bytes.
    value = {"b": b"\xfb" + struct.pack(">d", 1.5), "h": hashlib.sha256(b"").digest()}
    assert decode(encode(value)) == value


def test_hand_written_uint_heads_match_the_encoder() -> None:
    from atstack.core.cbor import encode, encode_uint, head_len

    for n in (0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1):
        assert encode_uint(n) == encode(n)
        if n < 2**32:
            assert head_len(n) == len(encode(n))
        if n < 70_000:  # the same head carries a length
            assert head_len(n) == len(encode(b"x" * n)) - n
