"""XRPC validation: query-parameter decoding, request/response bodies and subscription messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from multidict import MultiDict

import vectors
from atstack.core.cid import cid_for_cbor, cid_for_raw
from atstack.core.lexicon import LexiconError, Lexicons, ValidationError, load_lexicon_dir

LIST_RECORDS = "com.atproto.repo.listRecords"
DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
CID = cid_for_cbor(b"\xa0")


@pytest.fixture(scope="module")
def lexicons() -> Lexicons:
    lx = load_lexicon_dir(vectors.LEXICONS)
    catalog = load_lexicon_dir(vectors.vector_path("lexicon", "catalog"))
    jetstream = load_lexicon_dir(vectors.vector_path("jetstream", "lexicons", base=vectors.ATPROTO))
    for source in (catalog, jetstream):
        for nsid in source:
            lx.add(source.get(nsid))
    return lx


def fails(fn: Callable[..., Any], *args: Any) -> str:
    with pytest.raises(ValidationError) as info:
        fn(*args)
    return str(info.value)


def param_error(lexicons: Lexicons, nsid: str, params: Mapping[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        lexicons.validate_params(nsid, params)
    return str(info.value)


def test_method_types(lexicons: Lexicons) -> None:
    assert lexicons.method_type(LIST_RECORDS) == "query"
    assert lexicons.method_type("com.atproto.repo.createRecord") == "procedure"
    assert lexicons.method_type("com.atproto.sync.subscribeRepos") == "subscription"
    assert lexicons.method_type("network.bsky.jetstream.subscribeEvents") == "subscription"
    assert lexicons.method_type("app.bsky.feed.post") is None
    assert lexicons.method_type("com.atproto.repo.strongRef") is None
    assert lexicons.method_type("com.example.not.loaded") is None
    with pytest.raises(LexiconError):
        lexicons.validate_params("app.bsky.feed.post", {})
    with pytest.raises(LexiconError):
        lexicons.validate_params("com.example.not.loaded", {})


def test_list_records_params(lexicons: Lexicons) -> None:
    base = {"repo": "alice.test", "collection": "app.bsky.feed.post"}
    assert lexicons.validate_params(LIST_RECORDS, {**base, "limit": "50"}) == {**base, "limit": 50}
    # Defaults are filled in; a single-element list (one occurrence) is a plain value.
    assert lexicons.validate_params(LIST_RECORDS, base) == {**base, "limit": 50}
    assert lexicons.validate_params(LIST_RECORDS, {**base, "limit": ["7"], "reverse": "true"}) == {
        **base,
        "limit": 7,
        "reverse": True,
    }
    assert (
        lexicons.validate_params(LIST_RECORDS, {**base, "reverse": "false", "cursor": "abc"})["reverse"]
        is False
    )
    assert (
        param_error(lexicons, LIST_RECORDS, {**base, "limit": "0"}) == "Params/limit can not be less than 1"
    )
    assert (
        param_error(lexicons, LIST_RECORDS, {**base, "limit": "101"})
        == "Params/limit can not be greater than 100"
    )
    for bad in ("abc", "5.0", "1e2", " 5", "", "٣", "1_0", "99999999999999999999999"):
        assert param_error(lexicons, LIST_RECORDS, {**base, "limit": bad}).startswith("Params/limit "), bad
    for bad in ("True", "1", "yes", ""):
        assert param_error(lexicons, LIST_RECORDS, {**base, "reverse": bad}).startswith(
            "Params/reverse must be a boolean"
        )
    assert "only once" in param_error(lexicons, LIST_RECORDS, {**base, "limit": ["10", "20"]})
    assert (
        param_error(lexicons, LIST_RECORDS, {"repo": "alice.test"})
        == 'Params must have the property "collection"'
    )
    assert param_error(lexicons, LIST_RECORDS, {**base, "repo": "not a handle"}) == (
        "Params/repo must be a valid at-identifier"
    )
    assert (
        param_error(lexicons, LIST_RECORDS, {**base, "collection": "post"})
        == "Params/collection must be a valid nsid"
    )


def test_unknown_params_are_ignored(lexicons: Lexicons) -> None:
    base = {"repo": DID, "collection": "app.bsky.feed.post"}
    out = lexicons.validate_params(LIST_RECORDS, {**base, "unexpected": "x", "another": ["1", "2"]})
    assert out == {**base, "limit": 50}
    # A method without parameters accepts (and drops) anything.
    assert lexicons.validate_params("com.atproto.server.describeServer", {"x": "1"}) == {}


def test_array_params(lexicons: Lexicons) -> None:
    nsid = "app.bsky.actor.getProfiles"
    assert lexicons.validate_params(nsid, {"actors": ["alice.test", DID]}) == {"actors": ["alice.test", DID]}
    assert lexicons.validate_params(nsid, {"actors": "alice.test"}) == {"actors": ["alice.test"]}
    assert param_error(lexicons, nsid, {"actors": ["alice.test", "bad handle"]}) == (
        "Params/actors/1 must be a valid at-identifier"
    )
    assert (
        param_error(lexicons, nsid, {"actors": ["a.test"] * 26})
        == "Params/actors must not have more than 25 elements"
    )
    assert param_error(lexicons, nsid, {"actors": []}) == 'Params must have the property "actors"'
    # Repeated integer and string-enum parameters (catalog and Jetstream lexicons).
    out = lexicons.validate_params(
        "example.lexicon.query", {"stringField": "s", "array": ["1", "-2"], "integer": "3"}
    )
    assert out == {"stringField": "s", "array": [1, -2], "integer": 3}
    assert param_error(lexicons, "example.lexicon.query", {"stringField": "s", "array": ["1", "x"]}) == (
        "Params/array/1 must be an integer"
    )
    subscribe = "network.bsky.jetstream.subscribeEvents"
    assert lexicons.validate_params(subscribe, {"kinds": ["commit", "identity"], "cursor": "17"}) == {
        "kinds": ["commit", "identity"],
        "cursor": 17,
        "maxMessageSizeBytes": 0,
    }
    assert "must be one of" in param_error(lexicons, subscribe, {"kinds": ["commits"]})
    assert "can not be less than 1" in param_error(lexicons, subscribe, {"zstdDictionary": "0"})


def test_params_from_a_multidict(lexicons: Lexicons) -> None:
    query = MultiDict([("actors", "alice.test"), ("actors", DID), ("ignored", "1")])
    assert lexicons.validate_params("app.bsky.actor.getProfiles", query) == {"actors": ["alice.test", DID]}
    query = MultiDict([("repo", DID), ("collection", "app.bsky.feed.post"), ("limit", "5"), ("limit", "6")])
    assert "only once" in param_error(lexicons, LIST_RECORDS, query)
    query = MultiDict([("repo", DID), ("collection", "app.bsky.feed.post"), ("reverse", "true")])
    assert lexicons.validate_params(LIST_RECORDS, query) == {
        "repo": DID,
        "collection": "app.bsky.feed.post",
        "limit": 50,
        "reverse": True,
    }


def test_procedure_input(lexicons: Lexicons) -> None:
    nsid = "com.atproto.repo.createRecord"
    assert lexicons.input_encoding(nsid) == "application/json"
    body = {
        "repo": DID,
        "collection": "app.bsky.feed.post",
        "record": {"$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2024-01-01T00:00:00Z"},
        "validate": True,
    }
    lexicons.validate_input(nsid, body)
    assert (
        fails(lexicons.validate_input, nsid, {k: v for k, v in body.items() if k != "record"})
        == 'Input must have the property "record"'
    )
    assert (
        fails(lexicons.validate_input, nsid, {**body, "record": "text"}) == "Input/record must be an object"
    )
    assert (
        fails(lexicons.validate_input, nsid, {**body, "validate": "true"})
        == "Input/validate must be a boolean"
    )
    assert fails(lexicons.validate_input, nsid, [body]) == "Input must be an object"
    # Non-JSON input without a schema: any body.
    assert lexicons.input_encoding("com.atproto.repo.uploadBlob") == "*/*"
    lexicons.validate_input("com.atproto.repo.uploadBlob", b"\x89PNG")
    # A query takes no body at all.
    assert lexicons.input_encoding(LIST_RECORDS) is None
    lexicons.validate_input(LIST_RECORDS, None)
    assert fails(lexicons.validate_input, LIST_RECORDS, {}).startswith("Input must be empty")
    # Input referencing another lexicon's definition.
    lexicons.validate_input("example.lexicon.procedure", {"preferences": []})
    assert (
        fails(lexicons.validate_input, "example.lexicon.procedure", {"preferences": {}})
        == "Input/preferences must be an array"
    )


def test_query_output(lexicons: Lexicons) -> None:
    assert lexicons.output_encoding(LIST_RECORDS) == "application/json"
    record = {
        "uri": f"at://{DID}/app.bsky.feed.post/3k2la3b5mrc2y",
        "cid": str(CID.encode()),
        "value": {"a": 1},
    }
    lexicons.validate_output(LIST_RECORDS, {"records": [record], "cursor": "3k2la3b5mrc2y"})
    lexicons.validate_output(LIST_RECORDS, {"records": []})
    assert (
        fails(lexicons.validate_output, LIST_RECORDS, {"records": [{**record, "value": 3}]})
        == "Output/records/0/value must be an object"
    )
    assert (
        fails(lexicons.validate_output, LIST_RECORDS, {"cursor": "x"})
        == 'Output must have the property "records"'
    )
    blob = {"$type": "blob", "ref": cid_for_raw(b"x"), "mimeType": "image/png", "size": 1}
    lexicons.validate_output("com.atproto.repo.uploadBlob", {"blob": blob})
    assert fails(
        lexicons.validate_output, "com.atproto.repo.uploadBlob", {"blob": {**blob, "ref": "bafk"}}
    ).startswith("Output/blob must be a blob")
    # A method with no declared output must produce no body.
    lexicons.validate_output("com.atproto.server.deleteSession", None)
    with pytest.raises(ValidationError):
        lexicons.validate_output("com.atproto.server.deleteSession", {"ok": True})


def commit_event() -> dict[str, Any]:
    return {
        "seq": 12,
        "rebase": False,
        "tooBig": False,
        "repo": DID,
        "commit": CID,
        "rev": "3k2la3b5mrc2y",
        "since": None,
        "blocks": b"\x00",
        "ops": [{"action": "create", "path": "app.bsky.feed.post/3k2la3b5mrc2y", "cid": CID}],
        "blobs": [],
        "prevData": CID,
        "time": "2024-01-01T00:00:00.000Z",
    }


def test_subscription_messages(lexicons: Lexicons) -> None:
    nsid = "com.atproto.sync.subscribeRepos"
    lexicons.validate_message(nsid, commit_event(), "#commit")
    lexicons.validate_message(nsid, {**commit_event(), "$type": "com.atproto.sync.subscribeRepos#commit"})
    identity = {"seq": 13, "did": DID, "time": "2024-01-01T00:00:00Z", "handle": "alice.test"}
    lexicons.validate_message(nsid, identity, "#identity")
    lexicons.validate_message(nsid, {"name": "OutdatedCursor"}, "#info")
    assert (
        fails(lexicons.validate_message, nsid, {**commit_event(), "seq": "12"}, "#commit")
        == "Message/seq must be an integer"
    )
    event = commit_event()
    event["ops"][0]["cid"] = str(CID.encode())
    assert fails(lexicons.validate_message, nsid, event, "#commit") == "Message/ops/0/cid must be a CID link"
    delete = commit_event()
    delete["ops"] = [
        {"action": "delete", "path": "app.bsky.feed.post/3k2la3b5mrc2y", "cid": None, "prev": CID}
    ]
    lexicons.validate_message(nsid, delete, "#commit")
    assert (
        fails(lexicons.validate_message, nsid, {"seq": 1, "time": "2024-01-01T00:00:00Z"}, "#identity")
        == 'Message must have the property "did"'
    )
    # Unknown message types are allowed (clients ignore them), but must be data-model objects.
    lexicons.validate_message(nsid, {"anything": 1}, "#futureKind")
    assert "float" in fails(lexicons.validate_message, nsid, {"anything": 1.5}, "#futureKind")
    assert "no $type" in fails(lexicons.validate_message, nsid, identity)
    with pytest.raises(LexiconError):
        lexicons.validate_message(LIST_RECORDS, identity, "#identity")


def test_catalog_subscription(lexicons: Lexicons) -> None:
    nsid = "example.lexicon.subscription"
    assert lexicons.validate_params(nsid, {"cursor": "5"}) == {"cursor": 5}
    lexicons.validate_message(nsid, {"seq": 1, "yo": True}, "#yo")
    assert (
        fails(lexicons.validate_message, nsid, {"seq": 1, "yo": "yes"}, "#yo")
        == "Message/yo must be a boolean"
    )
