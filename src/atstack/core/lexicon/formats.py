"""Lexicon string formats and blob MIME patterns.

Spec: atproto.com/specs/lexicon ("String Formats", ``blob``). Each ``format`` maps to the syntax check of the
identifier it names; the checks live in :mod:`atstack.core.syntax` so lexicon validation and the rest of the
stack agree on one definition. As the spec asks, the most permissive syntax applies (any DID method passes the
``did`` format; unsupported methods are an application error, not a lexicon one). ``datetime`` uses the strict
check (the spec's invalid examples include impossible fields like minute 99); ``language`` only needs to be
well-formed, so a tag such as ``JA`` passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from atstack.core.syntax import (
    is_valid_at_identifier,
    is_valid_at_uri,
    is_valid_cid,
    is_valid_datetime_strict,
    is_valid_did,
    is_valid_handle,
    is_valid_language,
    is_valid_nsid,
    is_valid_record_key,
    is_valid_tid,
    is_valid_uri,
)

__all__ = ["FORMATS", "is_valid_mime_pattern", "mime_matcher"]

# Fast accept paths for the two costly formats, which every post carries. Each pattern matches only a strict
# subset of the valid strings (the everyday shapes), so a miss just falls through to the full check.
#   datetime: UTC `Z`, day ≤ 28 (valid in every month), fields in range: no calendar or offset arithmetic left.
_COMMON_DATETIME = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,20})?Z"
)
#   at-uri: did:plc authority, short all-lowercase NSID labels, record key without dots.
_COMMON_AT_URI = re.compile(
    r"at://did:plc:[a-z2-7]{24}(?:/[a-z][a-z0-9]{0,19}(?:\.[a-z][a-z0-9]{0,19}){1,4}\.[a-zA-Z][a-zA-Z0-9]{0,62}"
    r"(?:/[A-Za-z0-9_~:-]{1,256})?)?"
)


def _is_valid_datetime(s: str) -> bool:
    return _COMMON_DATETIME.fullmatch(s) is not None or is_valid_datetime_strict(s)


def _is_valid_at_uri(s: str) -> bool:
    return _COMMON_AT_URI.fullmatch(s) is not None or is_valid_at_uri(s)


FORMATS: dict[str, Callable[[str], bool]] = {
    "at-identifier": is_valid_at_identifier,
    "at-uri": _is_valid_at_uri,
    "cid": is_valid_cid,
    "datetime": _is_valid_datetime,
    "did": is_valid_did,
    "handle": is_valid_handle,
    "nsid": is_valid_nsid,
    "tid": is_valid_tid,
    "record-key": is_valid_record_key,
    "uri": is_valid_uri,
    "language": is_valid_language,
}

# RFC 6838 restricted-name characters; the subtype may be a whole-subtype glob (`image/*`), and `*/*` means
# anything. Partial globs (`text/ht*`) and a bare `*` are not supported by the spec.
_TOKEN = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MIME_PATTERN = re.compile(rf"\*/\*|{_TOKEN}/(?:\*|{_TOKEN})")


def is_valid_mime_pattern(pattern: str) -> bool:
    return isinstance(pattern, str) and _MIME_PATTERN.fullmatch(pattern) is not None


def mime_matcher(accept: Iterable[str]) -> Callable[[str], bool]:
    """A predicate telling whether a blob's ``mimeType`` matches any of the ``accept`` patterns.

    MIME types are case-insensitive and may carry parameters (``text/plain; charset=utf-8``); only the
    ``type/subtype`` part is compared.
    """
    exact: set[str] = set()
    prefixes: list[str] = []
    for pattern in accept:
        p = pattern.lower()
        if p == "*/*":
            return lambda mime: True
        if p.endswith("/*"):
            prefixes.append(p[:-1])
        else:
            exact.add(p)
    prefix_tuple = tuple(prefixes)

    def matches(mime: str) -> bool:
        essence = mime.split(";", 1)[0].strip().lower()
        return essence in exact or (bool(prefix_tuple) and essence.startswith(prefix_tuple))

    return matches
