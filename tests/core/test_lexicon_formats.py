"""String formats as lexicon validation applies them: every syntax vector, and the fast accept paths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import vectors
from atstack.core import syntax
from atstack.core.lexicon import Lexicons, ValidationError
from atstack.core.lexicon.formats import _COMMON_AT_URI, _COMMON_DATETIME, FORMATS, mime_matcher
from atstack.core.lexicon.validate import grapheme_count

# vector file prefix -> lexicon format name
VECTOR_FORMATS = {
    "atidentifier": "at-identifier",
    "aturi": "at-uri",
    "cid": "cid",
    "datetime": "datetime",
    "did": "did",
    "handle": "handle",
    "language": "language",
    "nsid": "nsid",
    "recordkey": "record-key",
    "tid": "tid",
    "uri": "uri",
}


WELL_FORMED_LANGUAGE_DRIFT = {"JA", "jaja"}


def format_record(fmt: str) -> Lexicons:
    record = {"type": "object", "required": ["s"], "properties": {"s": {"type": "string", "format": fmt}}}
    return Lexicons(
        [
            {
                "lexicon": 1,
                "id": "com.example.fmt",
                "defs": {"main": {"type": "record", "key": "any", "record": record}},
            }
        ]
    )


def test_every_format_is_covered_by_vectors() -> None:
    assert set(VECTOR_FORMATS.values()) == set(FORMATS)


@pytest.mark.parametrize("prefix", sorted(VECTOR_FORMATS))
def test_syntax_vectors_through_record_validation(prefix: str) -> None:
    fmt = VECTOR_FORMATS[prefix]
    lexicons = format_record(fmt)
    count = 0
    for case in vectors.vector_lines("syntax", f"{prefix}_syntax_valid.txt"):
        lexicons.validate_record("com.example.fmt", {"$type": "com.example.fmt", "s": case})
        count += 1
    invalid = vectors.vector_lines("syntax", f"{prefix}_syntax_invalid.txt")
    if prefix == "datetime":  # impossible dates must fail lexicon validation too
        invalid += vectors.vector_lines("syntax", "datetime_parse_invalid.txt")
    if prefix == "language":  # checklist §0 drift: well-formed tags, refused only by strict parsing
        invalid = [case for case in invalid if case not in WELL_FORMED_LANGUAGE_DRIFT]
    accepted = []
    for case in invalid:
        try:
            lexicons.validate_record("com.example.fmt", {"$type": "com.example.fmt", "s": case})
        except ValidationError as exc:
            assert str(exc) == f"Record/s must be a valid {fmt}"
            count += 1
            continue
        accepted.append(case)
    assert accepted == []
    assert count > 0


def test_language_is_well_formed_not_strict() -> None:
    lexicons = format_record("language")
    # Checklist §0: JA/jaja are well-formed (the lexicon rule); only strict parsing refuses them.
    for tag in sorted(WELL_FORMED_LANGUAGE_DRIFT):
        lexicons.validate_record("com.example.fmt", {"$type": "com.example.fmt", "s": tag})
        assert not syntax.is_valid_language_strict(tag)


@given(st.from_regex(_COMMON_DATETIME, fullmatch=True))
def test_datetime_fast_path_only_accepts_valid(value: str) -> None:
    assert syntax.is_valid_datetime_strict(value)


@given(st.from_regex(_COMMON_AT_URI, fullmatch=True))
def test_at_uri_fast_path_only_accepts_valid(value: str) -> None:
    assert syntax.is_valid_at_uri(value)


def test_fast_paths_agree_with_full_checks_on_vectors() -> None:
    count = 0
    for kind, full, fmt in (
        ("datetime", syntax.is_valid_datetime_strict, "datetime"),
        ("aturi", syntax.is_valid_at_uri, "at-uri"),
    ):
        for suffix in ("syntax_valid", "syntax_invalid"):
            for case in vectors.vector_lines("syntax", f"{kind}_{suffix}.txt"):
                assert FORMATS[fmt](case) == full(case), case
                count += 1
    assert count > 0


def test_mime_matcher() -> None:
    images = mime_matcher(["image/*", "video/mp4"])
    assert images("image/png") and images("IMAGE/JPEG") and images("video/mp4; codecs=avc1")
    assert not images("video/webm") and not images("imagex/png") and not images("text/plain")
    anything = mime_matcher(["*/*"])
    assert anything("application/x-whatever")
    nothing = mime_matcher([])
    assert not nothing("image/png")


def test_grapheme_count() -> None:
    assert grapheme_count("") == 0
    assert grapheme_count("abc") == 3
    assert grapheme_count("a\r\nb") == 3
    assert grapheme_count("🇩🇪🏳️‍🌈") == 2
    assert grapheme_count("👩\u200d👩\u200d👦\u200d👦") == 1
    assert grapheme_count("e\u0301x") == 2
