"""Identifier syntax against every interop vector in ``syntax/`` plus the checklist §0 drift cases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

import vectors
from atstack.core import syntax as sx
from atstack.core.syntax import identifiers
from atstack.core.syntax.aturi import is_valid_repo_path

# vector file prefix -> function-name suffix in atstack.core.syntax
KINDS = {
    "atidentifier": "at_identifier",
    "aturi": "at_uri",
    "cid": "cid",
    "datetime": "datetime",
    "did": "did",
    "handle": "handle",
    "language": "language",
    "nsid": "nsid",
    "recordkey": "record_key",
    "tid": "tid",
    "uri": "uri",
}
STRICT_KINDS = {"datetime", "language"}
PARSE_INVALID_KINDS = ["datetime", "language"]

# Checklist §0 drift vs. the monorepo copy of the vectors: extra valid TIDs, and JA/jaja are well-formed
# language tags that only the strict parse refuses.
EXTRA_VALID = {"tid": ["a222222222222", "j222222222222", "azzzzzzzzzzzz"]}
MOVED_TO_PARSE_INVALID = {"language": {"JA", "jaja"}}


def covered_files() -> set[str]:
    files = {f"{kind}_syntax_valid.txt" for kind in KINDS} | {f"{kind}_syntax_invalid.txt" for kind in KINDS}
    return files | {f"{kind}_parse_invalid.txt" for kind in PARSE_INVALID_KINDS}


def checks(kind: str) -> tuple[Callable[[str], bool], Callable[[str], None]]:
    name = KINDS[kind]
    return getattr(sx, f"is_valid_{name}"), getattr(sx, f"ensure_valid_{name}")


def strict_check(kind: str) -> Callable[[str], None]:
    return getattr(sx, f"ensure_valid_{KINDS[kind]}_strict")


def assert_rejected(ensure: Callable[[str], None], case: str) -> None:
    with pytest.raises(sx.InvalidSyntax) as info:
        ensure(case)
    reason = str(info.value)
    assert reason and "\n" not in reason, f"reason must be one non-empty line for {case!r}: {reason!r}"


def test_every_syntax_vector_file_is_covered() -> None:
    on_disk = {p.name for p in vectors.vector_path("syntax").glob("*.txt")}
    assert on_disk, "no syntax vector files found"
    assert on_disk - covered_files() == set(), "syntax vector files not exercised by these tests"
    assert covered_files() - on_disk == set(), "tests name vector files that do not exist"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_syntax_valid_vectors(kind: str) -> None:
    is_valid, ensure = checks(kind)
    cases = vectors.vector_lines("syntax", f"{kind}_syntax_valid.txt") + EXTRA_VALID.get(kind, [])
    for case in cases:
        assert is_valid(case), f"{kind} should be valid: {case!r}"
        ensure(case)
        if kind in STRICT_KINDS:
            strict_check(kind)(case)
    assert len(cases) > 0


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_syntax_invalid_vectors(kind: str) -> None:
    is_valid, ensure = checks(kind)
    moved = MOVED_TO_PARSE_INVALID.get(kind, set())
    cases = vectors.vector_lines("syntax", f"{kind}_syntax_invalid.txt")
    ran = 0
    for case in cases:
        if case in moved:
            assert is_valid(case), f"drift note: {case!r} is well-formed {kind}"
            assert_rejected(strict_check(kind), case)
        else:
            assert not is_valid(case), f"{kind} should be invalid: {case!r}"
            assert_rejected(ensure, case)
            if kind in STRICT_KINDS:
                assert_rejected(strict_check(kind), case)
        ran += 1
    assert ran > 0
    assert moved <= set(cases), "drift cases are expected to be in the syntax-invalid file"


@pytest.mark.parametrize("kind", PARSE_INVALID_KINDS)
def test_parse_invalid_vectors(kind: str) -> None:
    is_valid, ensure = checks(kind)
    cases = vectors.vector_lines("syntax", f"{kind}_parse_invalid.txt")
    for case in cases:
        assert is_valid(case), f"{kind} parse-invalid case must pass syntax: {case!r}"
        ensure(case)
        assert not getattr(sx, f"is_valid_{KINDS[kind]}_strict")(case)
        assert_rejected(strict_check(kind), case)
    assert len(cases) > 0


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_trailing_newline_and_non_strings_rejected(kind: str) -> None:
    is_valid, ensure = checks(kind)
    sample = vectors.vector_lines("syntax", f"{kind}_syntax_valid.txt")[0]
    for bad in (sample + "\n", "\n" + sample, None, 5, b"x"):
        assert not is_valid(bad)  # type: ignore[arg-type]
        assert_rejected(ensure, bad)  # type: ignore[arg-type]


# ---- handles ------------------------------------------------------------------------------------------------


def test_normalize_handle() -> None:
    assert sx.normalize_handle("XX.LCS.MIT.EDU") == "xx.lcs.mit.edu"
    assert sx.normalize_handle("alice.test") == "alice.test"
    with pytest.raises(sx.InvalidSyntax):
        sx.normalize_handle("john..test")


def test_disallowed_tlds() -> None:
    assert {
        "alt",
        "arpa",
        "example",
        "internal",
        "invalid",
        "local",
        "localhost",
        "onion",
    } == sx.DISALLOWED_TLDS
    for tld in sx.DISALLOWED_TLDS:
        assert sx.is_disallowed_tld(f"name.{tld}")
        assert sx.is_disallowed_tld(f"name.{tld}", dev=True)
    assert sx.is_disallowed_tld("handle.invalid")
    assert sx.is_disallowed_tld("LAPTOP.LOCAL")
    assert sx.is_disallowed_tld("alice.test")
    assert not sx.is_disallowed_tld("alice.test", dev=True)
    assert not sx.is_disallowed_tld("john.bsky.social")
    assert not sx.is_disallowed_tld("onion.example.com")


def test_handle_length_limits() -> None:
    label = "a" * 63
    assert sx.is_valid_handle(f"{label}.{label}.{label}.{'b' * 61}")  # 253
    assert not sx.is_valid_handle(f"{label}.{label}.{label}.{'b' * 62}")  # 254
    assert_rejected(sx.ensure_valid_handle, "bücher.test")


# ---- DIDs ---------------------------------------------------------------------------------------------------


def test_did_method_and_support() -> None:
    assert sx.did_method("did:plc:7iza6de2dwap2sbkpav7c6c6") == "plc"
    assert sx.did_method("did:web:example.com") == "web"
    with pytest.raises(sx.InvalidSyntax):
        sx.did_method("did:Plc:abc")
    assert sx.is_supported_did_method("plc") and sx.is_supported_did_method("web")
    assert sx.is_supported_did_method("did:web:example.com")
    assert not sx.is_supported_did_method("key")
    assert not sx.is_supported_did_method("did:key:zQ3shZc2QzApp2oymGvQbzP8eKheVshBHbU4ZYjeXqwSKEn6N")
    assert not sx.is_supported_did_method("did:plc:")


def test_did_percent_encoding_and_length() -> None:
    assert sx.is_valid_did("did:web:localhost%3A1234")
    assert not sx.is_valid_did("did:web:localhost%3G1234")
    assert not sx.is_valid_did("did:web:localhost%3")
    assert sx.is_valid_did("did:m:" + "v" * 2042)
    assert not sx.is_valid_did("did:m:" + "v" * 2043)


def test_ensure_supported_did() -> None:
    sx.ensure_supported_did("did:plc:7iza6de2dwap2sbkpav7c6c6")
    sx.ensure_supported_did("did:web:example.com")
    sx.ensure_supported_did("did:web:localhost%3A2583", dev=True)
    with pytest.raises(sx.UnsupportedDidMethod):
        sx.ensure_supported_did("did:key:zQ3shZc2QzApp2oymGvQbzP8eKheVshBHbU4ZYjeXqwSKEn6N")
    assert issubclass(sx.UnsupportedDidMethod, sx.InvalidSyntax)
    for bad in (
        "did:plc:7iza6de2dwap2sbkpav7c6c",  # 23 chars
        "did:plc:7IZA6DE2DWAP2SBKPAV7C6C6",
        "did:web:localhost%3A2583",  # port outside dev
        "did:web:example.com%3A443",  # port on a public host
        "did:web:example.com:path",
        "did:web:-example.com",
    ):
        with pytest.raises(sx.InvalidSyntax) as info:
            sx.ensure_supported_did(bad, dev=bad.endswith("%3A443"))
        assert not isinstance(info.value, sx.UnsupportedDidMethod), bad


# ---- NSIDs --------------------------------------------------------------------------------------------------


def test_nsid_glob() -> None:
    for ok in ("*", "app.bsky.*", "app.*", "com.example.foo.*", "app.bsky.feed.post", "a.b.c"):
        assert sx.is_valid_nsid_glob(ok), ok
        sx.ensure_valid_nsid_glob(ok)
    for bad in (
        "",
        "app.bsky.feed*",
        "app.*.post",
        "*.bsky.feed",
        "app..*",
        ".*",
        "1app.bsky.*",
        "app.bsky.**",
        "a.b",
    ):
        assert not sx.is_valid_nsid_glob(bad), bad
        assert_rejected(sx.ensure_valid_nsid_glob, bad)


def test_normalize_nsid() -> None:
    assert sx.normalize_nsid("COM.Example.fooBar") == "com.example.fooBar"


# ---- AT-URIs and repo paths ---------------------------------------------------------------------------------


def test_at_uri_parse_round_trip() -> None:
    cases = vectors.vector_lines("syntax", "aturi_syntax_valid.txt")
    for case in cases:
        uri = sx.parse_at_uri(case)
        assert str(uri) == case
        assert uri.rkey is None or uri.collection is not None
    for case in vectors.vector_lines("syntax", "aturi_syntax_invalid.txt"):
        with pytest.raises(sx.InvalidSyntax):
            sx.parse_at_uri(case)
    assert len(cases) > 0


def test_at_uri_parts_and_normalisation() -> None:
    uri = sx.parse_at_uri("at://Alice.Example.COM/COM.Example.fooBar/SelfKey")
    assert uri == sx.AtUri("Alice.Example.COM", "COM.Example.fooBar", "SelfKey")
    assert not uri.is_did
    assert str(uri.normalized()) == "at://alice.example.com/com.example.fooBar/SelfKey"
    assert sx.parse_at_uri("at://did:plc:asdf123") == sx.AtUri("did:plc:asdf123", None, None)
    did_uri = sx.AtUri("did:plc:ABC", "app.bsky.feed.post")
    assert did_uri.is_did and did_uri.normalized() == did_uri
    assert str(did_uri) == "at://did:plc:ABC/app.bsky.feed.post"


def test_split_repo_path() -> None:
    assert sx.split_repo_path("app.bsky.feed.post/3jzfcijpj2z2a") == ("app.bsky.feed.post", "3jzfcijpj2z2a")
    assert sx.split_repo_path("app.bsky.actor.profile/self") == ("app.bsky.actor.profile", "self")
    assert sx.split_repo_path("com.example.thing/lang:en") == ("com.example.thing", "lang:en")
    for bad in (
        "app.bsky.feed.post",
        "app.bsky.feed.post/",
        "/3jzfcijpj2z2a",
        "app.bsky.feed.post/a/b",
        "app.bsky.feed.post/..",
        "app.bsky.feed.post/a b",
        "A0/374913",
        "app.bsky.feed.post/3jzfcijpj2z2a\n",
    ):
        assert_rejected(sx.split_repo_path, bad)


def test_mst_keys() -> None:
    keys = vectors.vector_lines("mst", "example_keys.txt")
    for key in keys:
        assert sx.is_valid_mst_key(key), key
        sx.ensure_valid_mst_key(key)
    assert len(keys) > 0
    assert sx.is_valid_mst_key("app.bsky.feed.post/3jzfcijpj2z2a")
    for bad in ("", "a", "a/", "/a", "a/b/c", "a/b c", "a/" + "b" * 1023):
        assert not sx.is_valid_mst_key(bad), bad
        assert_rejected(sx.ensure_valid_mst_key, bad)


# ---- datetimes ----------------------------------------------------------------------------------------------


def test_parse_datetime_values() -> None:
    utc = dt.UTC
    assert sx.parse_datetime("1985-04-12T23:20:50.123Z") == dt.datetime(
        1985, 4, 12, 23, 20, 50, 123000, tzinfo=utc
    )
    parsed = sx.parse_datetime("1985-04-12T23:20:50.123-07:00")
    assert parsed.utcoffset() == dt.timedelta(hours=-7)
    assert parsed == dt.datetime(1985, 4, 13, 6, 20, 50, 123000, tzinfo=utc)
    assert sx.parse_datetime("1985-04-12T23:20:50.123+01:45").utcoffset() == dt.timedelta(hours=1, minutes=45)
    # fraction digits beyond microseconds are truncated, not rounded
    assert sx.parse_datetime("1985-04-12T23:20:50.1234567899Z").microsecond == 123456
    assert sx.parse_datetime("1985-04-12T23:20:50Z").microsecond == 0
    assert sx.parse_datetime("1985-04-12T23:20:50.1Z").microsecond == 100000


def test_parse_datetime_over_valid_vectors() -> None:
    ran = 0
    for case in vectors.vector_lines("syntax", "datetime_syntax_valid.txt"):
        if case.startswith("0000-"):
            with pytest.raises(sx.InvalidSyntax, match="year 0000"):
                sx.parse_datetime(case)
        else:
            assert sx.parse_datetime(case).tzinfo is not None
        ran += 1
    assert ran > 0
    for case in vectors.vector_lines("syntax", "datetime_parse_invalid.txt"):
        assert_rejected(sx.parse_datetime, case)


def test_datetime_calendar_and_negative_rules() -> None:
    strict = sx.is_valid_datetime_strict
    assert strict("2024-02-29T00:00:00Z") and strict("2000-02-29T00:00:00Z")
    assert not strict("2023-02-29T00:00:00Z") and not strict("1900-02-29T00:00:00Z")
    assert not strict("1985-04-31T00:00:00Z") and strict("1985-05-31T00:00:00Z")
    assert not strict("1985-04-12T23:59:60Z")
    assert not strict("1985-04-12T23:20:50+24:00") and not strict("1985-04-12T23:20:50+01:60")
    assert strict("0000-01-01T00:00:00-01:00")  # later than year zero in UTC
    assert strict("0000-01-01T01:00:00+01:00")
    assert not strict("0000-01-01T00:59:59.999+01:00")
    assert strict("0000-03-01T00:00:00+23:59")
    assert not sx.is_valid_datetime("1985-04-12T23:20:50." + "1" * 60 + "Z")  # over 64 characters


# ---- language -----------------------------------------------------------------------------------------------


def test_language_strict_details() -> None:
    for ok in (
        "en",
        "i-navajo",
        "x-private",
        "X-fr-CH",
        "zh-hakka",
        "de-CH-1901",
        "sl-rozaj-biske",
        "es-419",
    ):
        sx.ensure_valid_language_strict(ok)
    for bad in ("En", "engl", "de-1901-1901", "en-a-x1-A-x2", "en-u-a1-u-b2"):
        assert sx.is_valid_language(bad), bad
        assert_rejected(sx.ensure_valid_language_strict, bad)


# ---- cid / uri ----------------------------------------------------------------------------------------------


def test_cid_and_uri_edges() -> None:
    assert sx.is_valid_cid("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm")
    assert not sx.is_valid_cid("bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpM")
    assert not sx.is_valid_cid("b" + "a" * 256)
    assert sx.is_valid_uri("https://example.com/" + "é" * 4000)
    assert not sx.is_valid_uri("https://example.com/" + "é" * 4090)  # 8200 bytes of UTF-8
    assert not sx.is_valid_uri("https://example.com/a\tb")
    assert not sx.is_valid_uri("https://example.com/\x00")


def test_split_repo_path_collection_cache_keeps_answers() -> None:
    # The first call checks the NSID and remembers it; later calls must still check each record key.
    for _ in range(3):
        assert sx.split_repo_path("com.example.cached/ok") == ("com.example.cached", "ok")
        assert_rejected(sx.split_repo_path, "com.example.cached/..")
        assert_rejected(sx.split_repo_path, "com.example.cached/" + "a" * 513)
        assert_rejected(sx.split_repo_path, "com.example.cached/a/b")
        assert_rejected(sx.split_repo_path, "com.example.9cached/ok")
    assert sx.split_repo_path("com.example.cached/" + "a" * 512)[1] == "a" * 512
    # many distinct collections: the cache stays bounded and answers stay right
    for i in range(5000):
        assert sx.split_repo_path(f"com.example.c{i}/self") == (f"com.example.c{i}", "self")
    assert_rejected(sx.split_repo_path, "com.example.c1/.")
    assert sx.split_repo_path("com.example.cached/ok") == ("com.example.cached", "ok")


# ---- the hot-path checks: is_valid_did_cached, is_valid_repo_path ------------------------------------------


def test_is_valid_did_cached_agrees_with_is_valid_did() -> None:
    valid = vectors.vector_lines("syntax", "did_syntax_valid.txt")
    invalid = vectors.vector_lines("syntax", "did_syntax_invalid.txt")
    valid.append("did:web:" + "a" * 80 + ".example.com")  # valid, but too long to be remembered
    for _ in range(2):  # the second pass answers from the cache where it can
        for case in valid:
            assert identifiers.is_valid_did_cached(case), case
        for case in invalid:
            assert not identifiers.is_valid_did_cached(case), case
    assert not set(invalid) & identifiers._valid_dids, "an invalid DID was remembered"
    long = {c for c in valid if len(c) > identifiers._VALID_DID_LEN_MAX}
    assert long and not long & identifiers._valid_dids
    assert {c for c in valid if len(c) <= identifiers._VALID_DID_LEN_MAX} <= identifiers._valid_dids
    for bad in (None, 5, b"did:plc:abc", ["did:plc:abc"], "did:plc:abc\n", ""):
        assert not identifiers.is_valid_did_cached(bad)  # type: ignore[arg-type]
    assert len(valid) > 1 and len(invalid) > 0


def test_did_cache_stays_bounded() -> None:
    n = identifiers._VALID_DIDS_MAX + 100
    for i in range(n):
        assert identifiers.is_valid_did_cached(f"did:plc:{i:024x}")
    assert 0 < len(identifiers._valid_dids) <= identifiers._VALID_DIDS_MAX
    assert identifiers.is_valid_did_cached("did:plc:" + "0" * 24)  # dropped or kept, still the same answer
    assert not identifiers.is_valid_did_cached("did:plc:" + "0" * 23 + "%")


def test_is_valid_repo_path_agrees_with_split_repo_path() -> None:
    rkeys_valid = vectors.vector_lines("syntax", "recordkey_syntax_valid.txt")
    rkeys_invalid = vectors.vector_lines("syntax", "recordkey_syntax_invalid.txt")
    cases = [f"app.bsky.feed.post/{k}" for k in rkeys_valid + rkeys_invalid]
    cases += vectors.vector_lines("mst", "example_keys.txt")
    # around the isalnum/isascii shortcut: non-ASCII letters and digits, the length limit, dots
    cases += [
        "app.bsky.feed.post/3jzfcijpj2z2a",
        "app.bsky.feed.post/ключ",
        "app.bsky.feed.post/٣٤",
        "app.bsky.feed.post/ａｂ",
        "app.bsky.feed.post/" + "a" * 512,
        "app.bsky.feed.post/" + "a" * 513,
        "app.bsky.feed.post/" + "a" * 511 + "é",
        "app.bsky.feed.post/.",
        "app.bsky.feed.post/..",
        "app.bsky.feed.post/...",
        "app.bsky.feed.post/a~b:c_d.e-f",
        "app.bsky.feed.post/",
        "app.bsky.feed.post",
        "/self",
        "app.bsky.feed.post/a/b",
        "app..bsky.post/self",
        "app.bsky.9post/self",
        "app.bsky.feed.post/self\n",
    ]
    accepted = 0
    for case in cases:
        try:
            sx.split_repo_path(case)
        except sx.InvalidSyntax:
            assert not is_valid_repo_path(case), case
        else:
            assert is_valid_repo_path(case), case
            accepted += 1
    for k in rkeys_valid + rkeys_invalid:
        assert is_valid_repo_path(f"app.bsky.feed.post/{k}") == (
            "/" not in k and sx.is_valid_record_key(k)
        ), k
    for bad in (None, 5, b"app.bsky.feed.post/self"):
        assert not is_valid_repo_path(bad)  # type: ignore[arg-type]
    assert 0 < accepted < len(cases) and len(rkeys_valid) > 0 and len(rkeys_invalid) > 0
