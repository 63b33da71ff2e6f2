"""The atproto data model (core/data_model.py) against the interop vectors and the spec's rules.

Vectors: interop-tests/data-model/ (fixtures: JSON ⇄ DRISL bytes ⇄ CID; valid; invalid). Spec:
atproto.com/specs/data-model, checklist §2.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vectors
from atstack.core.cbor import INT64_MAX, INT64_MIN, decode, decode_json_mode, decode_trusted, encode
from atstack.core.cid import CID, cid_for_cbor, cid_for_raw
from atstack.core.data_model import (
    MAX_CONTAINER_LEN,
    MAX_DEPTH,
    MAX_KEY_BYTES,
    DataModelError,
    data_to_json,
    dump_json,
    encode_record,
    iter_blob_refs,
    json_to_data,
    parse_json,
    record_cid,
    validate_data,
)

RAW_CID = cid_for_raw(b"blob")
CBOR_CID = cid_for_cbor(b"\xa0")


def blob_json(**changes: Any) -> dict[str, Any]:
    blob = {"$type": "blob", "ref": {"$link": RAW_CID.encode()}, "mimeType": "image/png", "size": 123}
    blob.update(changes)
    return {k: v for k, v in blob.items() if v is not None}


def b64decode_unpadded(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


# -- interop vectors ------------------------------------------------------------------------------------------


def test_fixtures_json_to_cbor_to_cid_and_back() -> None:
    cases = vectors.vector_json("data-model", "data-model-fixtures.json")
    for case in cases:
        expected = b64decode_unpadded(case["cbor_base64"])
        data = json_to_data(case["json"], require_object=True)
        encoded, cid = encode_record(data)
        assert encoded == expected
        assert cid.encode() == case["cid"]
        assert record_cid(data) == cid
        # and the reverse: CBOR → data model → JSON
        assert decode(expected) == data
        assert data_to_json(decode(expected)) == case["json"]
        assert decode_json_mode(expected) == case["json"]
        assert orjson.loads(dump_json(data)) == case["json"]
        assert parse_json(orjson.dumps(case["json"]), require_object=True) == data
        validate_data(data, require_object=True)
    assert len(cases) > 0


def test_valid_vectors_are_accepted() -> None:
    cases = vectors.vector_json("data-model", "data-model-valid.json")
    for case in cases:
        data = json_to_data(case["json"], require_object=True)
        validate_data(data, require_object=True)
        encoded, cid = encode_record(data)
        assert decode(encoded) == data
        assert cid == cid_for_cbor(encoded)
    assert len(cases) > 0


def test_integer_valued_float_reads_as_integer() -> None:
    cases = vectors.vector_json("data-model", "data-model-valid.json")
    (case,) = [c for c in cases if c["note"] == "float, but integer-like"]
    assert case["json"]["rcrd"]["a"] == 123.0
    data = json_to_data(case["json"])
    assert data["rcrd"]["a"] == 123 and type(data["rcrd"]["a"]) is int
    assert encode_record(data)[0] == encode({"rcrd": {"$type": "com.example.blah", "a": 123, "b": "blah"}})


# Why each invalid vector must fail (fragment of our error message); a vector we have no reason for fails.
INVALID_REASONS = {
    "top-level not an object": "top-level value must be an object",
    "float": "floats are not allowed",
    "record with $type null": "$type must be a non-empty string",
    "record with $type wrong type": "$type must be a non-empty string",
    "record with empty $type string": "$type must be a non-empty string",
    "blob with string size": "blob 'size'",
    "blob with missing key": "blob 'ref'",
    "bytes with wrong field type": "$bytes must be a string",
    "bytes with extra fields": "$bytes object must have no other keys",
    "link with wrong field type": "$link must be a string",
    "link with bogus CID": "invalid $link CID",
    "link with extra fields": "$link object must have no other keys",
}


def test_invalid_vectors_are_rejected_with_a_reason() -> None:
    cases = vectors.vector_json("data-model", "data-model-invalid.json")
    for case in cases:
        with pytest.raises(DataModelError) as err:
            json_to_data(case["json"], require_object=True)
        assert INVALID_REASONS[case["note"]] in str(err.value), case["note"]
        with pytest.raises(DataModelError):
            parse_json(orjson.dumps(case["json"]), require_object=True)
    assert len(cases) > 0


# -- JSON form → data model -----------------------------------------------------------------------------------


def test_links_and_bytes() -> None:
    value = json_to_data({"l": {"$link": CBOR_CID.encode()}, "b": {"$bytes": "AQID"}, "e": {"$bytes": ""}})
    assert value == {"l": CBOR_CID, "b": b"\x01\x02\x03", "e": b""}
    assert type(value["l"]) is CID
    # padding is optional
    assert json_to_data({"$bytes": "AQ"}) == json_to_data({"$bytes": "AQ=="}) == b"\x01"
    # other well-formed CIDv1 (here sha2-512) are accepted as links
    sha512 = CID(b"\x01\x71\x13\x40" + bytes(64))
    assert json_to_data({"$link": sha512.encode()}) == sha512


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"$bytes": "AQ-_"}, "base64"),  # URL-safe alphabet
        ({"$bytes": "A"}, "base64"),
        ({"$bytes": "AQ= ="}, "base64"),
        ({"$link": CBOR_CID.encode().upper()}, "invalid $link CID"),
        ({"$link": "B" + CBOR_CID.encode()[1:]}, "invalid $link CID"),
        ({"$link": CBOR_CID.encode() + "="}, "invalid $link CID"),
        ({"$link": "QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR"}, "invalid $link CID"),
        ({"$link": "b"}, "invalid $link CID"),
        ({"$link": "b" + "a" * 200}, "invalid $link CID"),
        ({"$link": None}, "$link must be a string"),
        ({"$link": CBOR_CID.encode(), "$type": "x"}, "no other keys"),
        ({"$bytes": "AQ", "$link": CBOR_CID.encode()}, "no other keys"),
    ],
)
def test_malformed_links_and_bytes(value: Any, fragment: str) -> None:
    with pytest.raises(DataModelError, match=fragment.replace("$", r"\$")):
        json_to_data({"x": [value]})


def test_numbers() -> None:
    assert json_to_data([0, -0.0, 1.0, -5.0, INT64_MAX, INT64_MIN, 2.0**53 - 1]) == [
        0,
        0,
        1,
        -5,
        INT64_MAX,
        INT64_MIN,
        2**53 - 1,
    ]
    for bad, fragment in [
        (1.5, "floats are not allowed"),
        (1e-300, "floats are not allowed"),
        (2.0**53 + 2, "cannot be read exactly"),
        (1e300, "cannot be read exactly"),
        (INT64_MAX + 1, "signed 64-bit"),
        (INT64_MIN - 1, "signed 64-bit"),
        (float("nan"), "floats are not allowed"),
        (float("inf"), "floats are not allowed"),
    ]:
        with pytest.raises(DataModelError, match=fragment):
            json_to_data({"n": [bad]})
    # orjson reads integers beyond 64 bits as floats: they are refused, never rounded into range
    with pytest.raises(DataModelError):
        parse_json(b'{"n": -9223372036854775809}')
    with pytest.raises(DataModelError):
        parse_json(b'{"n": 18446744073709551616}')
    with pytest.raises(DataModelError, match="signed 64-bit"):
        parse_json(b'{"n": 9223372036854775808}')


def test_type_field() -> None:
    assert json_to_data({"$type": "app.bsky.feed.post", "x": {"$type": "a#b"}})["x"] == {"$type": "a#b"}
    for bad in [None, 1, "", [], {"a": 1}, True]:
        with pytest.raises(DataModelError, match="non-empty string"):
            json_to_data({"inner": {"$type": bad}})


def test_unknown_dollar_keys_are_kept() -> None:
    value = {"$future": {"$link": CBOR_CID.encode()}, "$other": 1, "a": {"$x": []}}
    assert json_to_data(value) == {"$future": CBOR_CID, "$other": 1, "a": {"$x": []}}


def test_null_missing_and_falsy_values_stay_distinct() -> None:
    value = {"n": None, "f": False, "z": 0, "s": "", "l": [], "o": {}}
    data = json_to_data(value)
    assert data == value
    assert [type(data[k]) for k in "nfzslo"] == [type(None), bool, int, str, list, dict]
    assert data_to_json(decode(encode_record(data)[0])) == value


def test_blobs() -> None:
    value = json_to_data({"img": blob_json()})
    assert value == {"img": {"$type": "blob", "ref": RAW_CID, "mimeType": "image/png", "size": 123}}
    assert json_to_data(blob_json(size=0))["size"] == 0
    assert json_to_data(blob_json(size=7.0))["size"] == 7
    assert json_to_data(blob_json(**{"$extra": {"$link": CBOR_CID.encode()}}))["$extra"] == CBOR_CID
    for changes, fragment in [
        ({"ref": {"$link": CBOR_CID.encode()}}, "raw codec"),
        ({"ref": RAW_CID.encode()}, "'ref'"),
        ({"ref": None}, "'ref'"),
        ({"ref": {"$link": "bogus"}}, "invalid \\$link"),
        ({"mimeType": ""}, "mimeType"),
        ({"mimeType": None}, "mimeType"),
        ({"mimeType": 5}, "mimeType"),
        ({"size": -1}, "size"),
        ({"size": True}, "size"),
        ({"size": None}, "size"),
        ({"size": 1.5}, "floats"),
        ({"alt": "text"}, "unexpected field"),
    ]:
        with pytest.raises(DataModelError, match=fragment):
            json_to_data({"embed": [blob_json(**changes)]})


def test_legacy_blob_is_read_as_is() -> None:
    legacy = {"cid": RAW_CID.encode(), "mimeType": "image/jpeg"}
    assert json_to_data({"avatar": legacy}) == {"avatar": legacy}
    assert list(iter_blob_refs(json_to_data({"avatar": legacy}))) == []


def test_depth_limit() -> None:
    def nest(depth: int, leaf: Any) -> Any:
        for i in range(depth):
            leaf = [leaf] if i % 2 else {"a": leaf}
        return leaf

    assert json_to_data(nest(MAX_DEPTH, 1)) == nest(MAX_DEPTH, 1)
    with pytest.raises(DataModelError, match="nesting"):
        json_to_data(nest(MAX_DEPTH + 1, 1))
    # $link/$bytes objects are CIDs and bytes, not containers: they may sit at depth 33 in JSON form
    assert json_to_data(nest(MAX_DEPTH, {"$link": CBOR_CID.encode()})) == nest(MAX_DEPTH, CBOR_CID)
    assert json_to_data(nest(MAX_DEPTH, {"$bytes": "AQ"})) == nest(MAX_DEPTH, b"\x01")
    with pytest.raises(DataModelError, match="nesting"):
        json_to_data(nest(MAX_DEPTH, blob_json()))  # a blob is a map
    with pytest.raises(DataModelError, match="nesting"):
        validate_data(nest(MAX_DEPTH + 1, 1))
    with pytest.raises(DataModelError, match="nesting"):
        encode_record(nest(MAX_DEPTH + 1, 1))


def test_size_limits() -> None:
    assert len(json_to_data({"a": [0] * MAX_CONTAINER_LEN})["a"]) == MAX_CONTAINER_LEN
    with pytest.raises(DataModelError, match="elements"):
        json_to_data({"a": [0] * (MAX_CONTAINER_LEN + 1)})
    with pytest.raises(DataModelError, match="elements"):
        json_to_data({str(i): 0 for i in range(MAX_CONTAINER_LEN + 1)})
    assert json_to_data({"é" * (MAX_KEY_BYTES // 2): 1})
    for key in ["k" * (MAX_KEY_BYTES + 1), "é" * (MAX_KEY_BYTES // 2) + "k"]:
        with pytest.raises(DataModelError, match="key longer"):
            json_to_data({"a": {key: 1}})
        with pytest.raises(DataModelError, match="key longer"):
            validate_data({"a": {key: 1}})


def test_parse_json() -> None:
    assert parse_json(orjson.dumps({"a": {"$link": CBOR_CID.encode()}}).decode()) == {"a": CBOR_CID}
    assert parse_json(b"[1, 2]") == [1, 2]
    raw = orjson.dumps({"t": "é" * 10})
    assert parse_json(raw, max_size=len(raw)) == {"t": "é" * 10}
    with pytest.raises(DataModelError, match="exceeds limit"):
        parse_json(raw, max_size=len(raw) - 1)
    with pytest.raises(DataModelError, match="exceeds limit"):  # limit counts UTF-8 bytes of a str too
        parse_json(raw.decode(), max_size=len(raw) - 1)
    for bad in [b"{", b"{'a': 1}", b"NaN", b'{"a": Infinity}', b"[1,]", b""]:
        with pytest.raises(DataModelError, match="invalid JSON"):
            parse_json(bad)
    with pytest.raises(DataModelError, match="top-level"):
        parse_json(b"[]", require_object=True)


# -- data model → JSON form, validation, records ---------------------------------------------------------------


def test_data_to_json_and_dump_json() -> None:
    value = {"l": CBOR_CID, "b": b"\xff\x00", "e": b"", "n": [None, True, -1, "é"]}
    expected = {
        "l": {"$link": CBOR_CID.encode()},
        "b": {"$bytes": "/wA"},  # standard alphabet, no padding
        "e": {"$bytes": ""},
        "n": [None, True, -1, "é"],
    }
    assert data_to_json(value) == expected
    assert orjson.loads(dump_json(value)) == expected
    assert json_to_data(expected) == value
    for bad in [
        {"f": 1.0},
        {"i": INT64_MAX + 1},
        {"i": 2**64},
        {1: "non-string key"},
        {"t": (1, 2)},
        {"b": bytearray(b"x")},
        {"$link": "reserved"},
        decode_trusted(b"\x81" * 33 + b"\x01"),
    ]:
        with pytest.raises(DataModelError):
            data_to_json(bad)
        with pytest.raises(DataModelError):
            dump_json(bad)


def test_validate_data() -> None:
    validate_data({"a": [1, "x", None, True, b"", CBOR_CID, RAW_CID], "img": json_to_data(blob_json())})
    for bad, fragment in [
        ({"f": 0.5}, "floats"),
        ({"i": -(2**63) - 1}, "64-bit"),
        ({"t": (1,)}, "not a data-model value"),
        ({"b": bytearray()}, "not a data-model value"),
        ({"s": {1, 2}}, "not a data-model value"),
        ({1: 1}, "keys must be strings"),
        ({"$link": "x"}, "reserved"),
        ({"o": {"$bytes": "AQ"}}, "reserved"),
        ({"$type": ""}, "non-empty"),
        ({"c": CID(b"")}, "invalid CID"),
        ({"c": CID(b"\x01\x71\x12\x20" + bytes(31))}, "invalid CID"),
        ({"img": {"$type": "blob", "ref": RAW_CID.encode(), "mimeType": "a/b", "size": 1}}, "'ref'"),
        ({"img": {"$type": "blob", "ref": CBOR_CID, "mimeType": "a/b", "size": 1}}, "raw codec"),
        ({"img": {"$type": "blob", "ref": RAW_CID, "mimeType": "a/b", "size": -5}}, "size"),
    ]:
        with pytest.raises(DataModelError, match=fragment):
            validate_data(bad)
    with pytest.raises(DataModelError, match="top-level"):
        validate_data([1], require_object=True)


def test_encode_record() -> None:
    record = {"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2024-01-01T00:00:00Z"}
    data, cid = encode_record(record)
    assert data == encode(record)
    assert cid == cid_for_cbor(data) == record_cid(record)
    assert cid.encode().startswith("bafyrei")
    with pytest.raises(DataModelError, match="exceeds limit"):
        encode_record({"t": "x" * 100}, max_size=50)
    with pytest.raises(DataModelError, match="exceeds limit"):
        encode_record({"b": b"\x00" * (1024 * 1024)})
    for bad, fragment in [
        ({"f": 2.5}, "float"),
        ({"cids": [RAW_CID] * 8, "f": 2.5}, "float"),
        ({"i": 2**63}, "64-bit"),
        ({"i": 2**64}, "not a data-model value"),
        ({"t": object()}, "not a data-model value"),
    ]:
        with pytest.raises(DataModelError, match=fragment):
            encode_record(bad)
        with pytest.raises(DataModelError, match=fragment):
            record_cid(bad)


def test_iter_blob_refs() -> None:
    first = json_to_data(blob_json(size=1))
    second = json_to_data(blob_json(size=2))
    third = json_to_data(blob_json(size=3))
    record = {
        "$type": "app.bsky.feed.post",
        "embed": {"images": [{"image": first, "alt": ""}, {"image": second}]},
        "deep": [[{"x": [third]}]],
        "cid": CBOR_CID,
        "text": "blob",
    }
    assert list(iter_blob_refs(record)) == [first, second, third]
    assert [b["size"] for b in iter_blob_refs(record)] == [1, 2, 3]
    assert list(iter_blob_refs({"a": [1, "x", None]})) == []
    assert list(iter_blob_refs(first)) == [first]


# -- hypothesis: round trips through both forms -------------------------------------------------------------

KEYS = st.text(max_size=8).filter(lambda k: not k.startswith("$"))
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.text(max_size=12),
    st.binary(max_size=40),
    st.binary(min_size=32, max_size=32).map(lambda d: CID(b"\x01\x71\x12\x20" + d)),
    st.binary(min_size=32, max_size=32).map(lambda d: CID(b"\x01\x55\x12\x20" + d)),
)
values = st.recursive(
    leaves,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4)),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, values, max_size=6))
def test_json_round_trip(value: dict[str, Any]) -> None:
    validate_data(value, require_object=True)
    json_form = data_to_json(value)
    assert json_to_data(json_form, require_object=True) == value
    assert parse_json(dump_json(value)) == value
    data, cid = encode_record(value)
    assert decode_json_mode(data) == json_form
    assert cid == cid_for_cbor(data)
