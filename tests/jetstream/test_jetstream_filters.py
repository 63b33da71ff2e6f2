"""Filter parsing and matching rules of v1 /subscribe (checklist §13)."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from atstack.jetstream.filters import (
    KIND_ACCOUNT,
    KIND_COMMIT,
    KIND_IDENTITY,
    MAX_WANTED_COLLECTIONS,
    MAX_WANTED_DIDS,
    Filter,
    InvalidFilter,
    parse_max_message_size,
    parse_options_update,
    parse_query_filter,
)

ALICE = "did:plc:alicealicealicealicealic"
BOB = "did:plc:bobbobbobbobbobbobbobbobb"


def q(*pairs: tuple[str, str]) -> MultiDict[str]:
    return MultiDict(pairs)


def test_empty_query_matches_everything() -> None:
    f = parse_query_filter(q())
    assert f == Filter()
    assert f.wants(KIND_COMMIT, ALICE, "app.bsky.feed.post", 10**6)


def test_collections_full_and_prefix() -> None:
    f = parse_query_filter(
        q(("wantedCollections", "app.bsky.feed.post"), ("wantedCollections", "app.bsky.graph.*"))
    )
    assert f.collections == frozenset({"app.bsky.feed.post"})
    assert f.prefixes == ("app.bsky.graph.",)
    assert f.wants(KIND_COMMIT, ALICE, "app.bsky.feed.post", 1)
    assert f.wants(KIND_COMMIT, ALICE, "app.bsky.graph.follow", 1)
    assert not f.wants(KIND_COMMIT, ALICE, "app.bsky.feed.like", 1)
    assert not f.wants(KIND_COMMIT, ALICE, "app.bsky.graphx.follow", 1)
    # identity and account events bypass the collection filter
    assert f.wants(KIND_IDENTITY, ALICE, "", 1)
    assert f.wants(KIND_ACCOUNT, ALICE, "", 1)
    # a commit without a collection bypasses it too (the reference's rule)
    assert f.wants(KIND_COMMIT, ALICE, "", 1)


def test_prefix_only_filter_is_not_match_all() -> None:
    f = parse_query_filter(q(("wantedCollections", "app.bsky.*")))
    assert not f.wants_all_collections
    assert f.collections is None
    assert not f.wants(KIND_COMMIT, ALICE, "com.example.note", 1)


def test_dids_apply_to_every_kind() -> None:
    f = parse_query_filter(q(("wantedDids", ALICE), ("wantedCollections", "app.bsky.feed.post")))
    assert f.wants(KIND_IDENTITY, ALICE, "", 1)
    assert not f.wants(KIND_IDENTITY, BOB, "", 1)
    assert not f.wants(KIND_ACCOUNT, BOB, "", 1)
    assert not f.wants(KIND_COMMIT, BOB, "app.bsky.feed.post", 1)


@pytest.mark.parametrize("bad", ["*", "app.bsky.fo*", "not an nsid", "app", "app.bsky", "a.*.b", ""])
def test_invalid_collections_rejected(bad: str) -> None:
    with pytest.raises(InvalidFilter, match="invalid collection"):
        parse_query_filter(q(("wantedCollections", bad)))


@pytest.mark.parametrize("bad", ["alice", "did:plc", "did:PLC:abc", "at://did:plc:abc"])
def test_invalid_dids_rejected(bad: str) -> None:
    with pytest.raises(InvalidFilter, match="invalid DID"):
        parse_query_filter(q(("wantedDids", bad)))


def test_collection_cap_counts_unique_patterns() -> None:
    ok = [("wantedCollections", f"com.example.c{i}") for i in range(MAX_WANTED_COLLECTIONS)]
    assert len(parse_query_filter(q(*ok, *ok)).collections or ()) == MAX_WANTED_COLLECTIONS
    with pytest.raises(InvalidFilter, match="too many wanted collections"):
        parse_query_filter(q(*ok, ("wantedCollections", "com.example.more.*")))


def test_did_cap_counts_unique_dids() -> None:
    dids = [("wantedDids", f"did:plc:{i:024d}") for i in range(MAX_WANTED_DIDS)]
    assert len(parse_query_filter(q(*dids, dids[0])).dids or ()) == MAX_WANTED_DIDS
    with pytest.raises(InvalidFilter, match="too many wanted DIDs"):
        parse_query_filter(q(*dids, ("wantedDids", "did:plc:onemoreonemoreonemoreone")))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, 0),
        ("", 0),
        ("0", 0),
        ("100", 100),
        ("-5", 0),
        ("abc", 0),
        ("1.5", 0),
        (str(2**32), 0),
        (" 7 ", 0),  # Go's strconv.Atoi does not trim: malformed, so no cap
        ("+7", 7),
        ("-0", 0),
    ],
)
def test_max_message_size_query_coercion(raw: str | None, expected: int) -> None:
    assert parse_max_message_size(raw) == expected


def test_max_message_size_applies_to_uncompressed_size() -> None:
    f = parse_query_filter(q(("maxMessageSizeBytes", "100")))
    assert f.wants(KIND_COMMIT, ALICE, "a.b.c", 100)
    assert not f.wants(KIND_COMMIT, ALICE, "a.b.c", 101)


def test_options_update_payloads() -> None:
    assert parse_options_update(None) == Filter()
    assert parse_options_update({}) == Filter()
    f = parse_options_update(
        {"wantedCollections": ["app.bsky.feed.post"], "wantedDids": [ALICE], "maxMessageSizeBytes": -3}
    )
    assert f == Filter(dids=frozenset({ALICE}), collections=frozenset({"app.bsky.feed.post"}))
    assert parse_options_update({"maxMessageSizeBytes": 512}).max_message_size == 512
    for bad_shape in (
        [],
        "x",
        {"wantedDids": "did:plc:x"},
        {"wantedCollections": [1]},
        {"maxMessageSizeBytes": 1.5},
        {"maxMessageSizeBytes": "5"},
        {"maxMessageSizeBytes": True},
    ):
        with pytest.raises(TypeError):
            parse_options_update(bad_shape)
    with pytest.raises(InvalidFilter):
        parse_options_update({"wantedCollections": ["nope"]})
    with pytest.raises(InvalidFilter):
        parse_options_update({"wantedCollections": [f"com.example.c{i}" for i in range(101)]})
