"""The Lexicon ``cid`` and ``uri`` string formats (loose, syntax-level checks).

Spec: atproto.com/specs/lexicon ("cid", "uri"), checklist §1.

``cid``: a CIDv1 in any multibase. The check is on the string only: a known multibase prefix and a body in
that base's alphabet, 8-256 characters; CIDv0 (``Qm…``) is refused. It does not decode the bytes (the vectors
include multibase strings that are not decodable CIDs); use ``atstack.core.cid.parse_cid`` for a real parse of
the base32 form atproto writes.

``uri``: a generic RFC 3986 URI: a scheme, ``:`` and a non-empty remainder without whitespace or control
characters, at most 8 KiB of UTF-8.
"""

from __future__ import annotations

import re

from atstack.core.syntax.errors import InvalidSyntax

__all__ = ["ensure_valid_cid", "ensure_valid_uri", "is_valid_cid", "is_valid_uri"]

CID_MIN = 8
CID_MAX = 256
URI_MAX_BYTES = 8192

# multibase prefix -> alphabet of the rest (padding '=' where the base defines it).
_MULTIBASE_BODY = {
    "0": r"[01]+",
    "7": r"[0-7]+",
    "9": r"[0-9]+",
    "f": r"[0-9a-f]+",
    "F": r"[0-9A-F]+",
    "v": r"[0-9a-v]+",
    "V": r"[0-9A-V]+",
    "t": r"[0-9a-v]+=*",
    "T": r"[0-9A-V]+=*",
    "b": r"[a-z2-7]+",
    "B": r"[A-Z2-7]+",
    "c": r"[a-z2-7]+=*",
    "C": r"[A-Z2-7]+=*",
    "h": r"[ybndrfg8ejkmcpqxot1uwisza345h769]+",
    "k": r"[0-9a-z]+",
    "K": r"[0-9A-Z]+",
    "z": r"[1-9A-HJ-NP-Za-km-z]+",
    "Z": r"[1-9a-km-zA-HJ-NP-Z]+",
    "m": r"[A-Za-z0-9+/]+",
    "M": r"[A-Za-z0-9+/]+=*",
    "u": r"[A-Za-z0-9_-]+",
    "U": r"[A-Za-z0-9_-]+=*",
}
_cid_body_match = {prefix: re.compile(body).fullmatch for prefix, body in _MULTIBASE_BODY.items()}


def is_valid_cid(s: str) -> bool:
    if not isinstance(s, str) or not CID_MIN <= len(s) <= CID_MAX:
        return False
    body_match = _cid_body_match.get(s[0])
    return body_match is not None and body_match(s, 1) is not None


def _cid_problem(s: object) -> str:
    if not isinstance(s, str):
        return "CID must be a string"
    if not CID_MIN <= len(s) <= CID_MAX:
        return f"CID string must be {CID_MIN}-{CID_MAX} characters"
    if s.startswith("Qm"):
        return "CIDv0 ('Qm…') is not allowed; use CIDv1"
    if s[0] not in _cid_body_match:
        return "CID must start with a multibase prefix (atproto writes base32: 'b…')"
    return f"CID has a character outside the alphabet of multibase '{s[0]}'"


def ensure_valid_cid(s: str) -> None:
    if not is_valid_cid(s):
        raise InvalidSyntax(_cid_problem(s))


_uri_match = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:[^\x00-\x20\x7f\s]+").fullmatch


def is_valid_uri(s: str) -> bool:
    if not isinstance(s, str) or len(s) > URI_MAX_BYTES or _uri_match(s) is None:
        return False
    # Characters never exceed bytes; only encode when a non-ASCII string could be over the byte limit.
    return len(s) * 4 <= URI_MAX_BYTES or s.isascii() or len(s.encode()) <= URI_MAX_BYTES


def _uri_problem(s: object) -> str:
    if not isinstance(s, str):
        return "URI must be a string"
    if len(s.encode("utf-8", "surrogatepass")) > URI_MAX_BYTES:
        return f"URI is longer than {URI_MAX_BYTES} bytes"
    scheme, sep, rest = s.partition(":")
    if not sep or re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]*", scheme) is None:
        return "URI needs a scheme: a letter then letters, digits, '+', '.' or '-', followed by ':'"
    if not rest:
        return "URI has nothing after the scheme"
    return "URI must not contain whitespace or control characters"


def ensure_valid_uri(s: str) -> None:
    if not is_valid_uri(s):
        raise InvalidSyntax(_uri_problem(s))
