"""`atstack syntax check KIND VALUE` through the real command group."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from atstack.cli import main

VALID = {
    "handle": "alice.bsky.social",
    "did": "did:plc:7iza6de2dwap2sbkpav7c6c6",
    "nsid": "app.bsky.feed.post",
    "nsid-glob": "app.bsky.*",
    "tid": "3jzfcijpj2z2a",
    "rkey": "self",
    "at-uri": "at://did:plc:asdf123/com.atproto.feed.post/record",
    "at-identifier": "did:web:example.com",
    "datetime": "1985-04-12T23:20:50.123Z",
    "language": "pt-BR",
    "uri": "https://example.com/path?q=1",
    "cid": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
}
INVALID = {
    "handle": "john..test",
    "did": "DID:method:val",
    "nsid": "com.example",
    "nsid-glob": "app.*.post",
    "tid": "3jzfcijpj2z21",
    "rkey": "..",
    "at-uri": "at://did:plc:asdf123/",
    "at-identifier": "@handle",
    "datetime": "1985-13-12T23:20:50.123Z",  # syntax-valid, strictly invalid: the CLI checks strictly
    "language": "de-DE-1901-1901",
    "uri": "example.com",
    "cid": "QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR",
}


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["syntax", "check", *args])


def assert_no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


def test_kinds_are_complete() -> None:
    assert set(VALID) == set(INVALID)
    assert len(VALID) == 12


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid(kind: str) -> None:
    result = run(kind, VALID[kind])
    assert_no_traceback(result)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == f"valid {kind}"
    assert result.stderr == ""


@pytest.mark.parametrize("kind", sorted(INVALID))
def test_invalid(kind: str) -> None:
    result = run(kind, INVALID[kind])
    assert_no_traceback(result)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"invalid {kind}: ") and len(lines[0]) > len(kind) + 10


def test_tid_prints_timestamp() -> None:
    result = run("tid", "3jzfcijpj2z2a")
    assert result.exit_code == 0
    assert "timestamp: 2023-06-30T15:03:01.887007Z (1688137381887007 µs since epoch)" in result.stdout
    assert "clock id: 6" in result.stdout


def test_at_uri_prints_parts() -> None:
    result = run("at-uri", "at://alice.test/app.bsky.feed.post/3jzfcijpj2z2a")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1:] == [
        "authority: alice.test",
        "collection: app.bsky.feed.post",
        "rkey: 3jzfcijpj2z2a",
    ]
    result = run("at-uri", "at://alice.test")
    assert result.stdout.splitlines()[1:] == ["authority: alice.test", "collection: -", "rkey: -"]


def test_notes_for_non_syntax_restrictions() -> None:
    result = run("handle", "laptop.local")
    assert result.exit_code == 0 and "note: TLD .local" in result.stdout
    result = run("did", "did:key:zQ3shZc2QzApp2oymGvQbzP8eKheVshBHbU4ZYjeXqwSKEn6N")
    assert result.exit_code == 0 and "not supported" in result.stdout


def test_unknown_kind_is_usage_error() -> None:
    result = run("email", "a@b.c")
    assert_no_traceback(result)
    assert result.exit_code == 2
    assert "Usage:" in result.output


def test_missing_value_is_usage_error() -> None:
    result = run("handle")
    assert_no_traceback(result)
    assert result.exit_code == 2


def test_values_starting_with_dash() -> None:
    for args in (("handle", "-thing.com"), ("handle", "--", "-thing.com")):
        result = run(*args)
        assert_no_traceback(result)
        assert result.exit_code == 1
        assert result.stderr.startswith("invalid handle: ")


def test_whitespace_and_non_ascii_values() -> None:
    for value in (" alice.test", "alice.test\n", "bücher.test", "alice\x00.test"):
        result = run("handle", value)
        assert_no_traceback(result)
        assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
