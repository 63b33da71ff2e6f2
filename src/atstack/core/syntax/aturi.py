"""AT-URIs (the restricted Lexicon form) and repo paths / MST keys.

Specs: atproto.com/specs/at-uri-scheme ("Restricted AT URI Syntax") and /repository ("Repo Data Structure"),
checklist §1 and §4. Lexicon AT-URIs are ``at://AUTHORITY[/COLLECTION[/RKEY]]``: the authority is a handle or a
DID, the collection an NSID, the rkey a record key; no trailing slash, query or fragment, at most 8 KiB.
A repo path is exactly ``<collection>/<rkey>`` and is the MST key of the record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from atstack.core.syntax.errors import InvalidSyntax
from atstack.core.syntax.identifiers import (
    RECORD_KEY_MAX,
    _did_problem,
    _handle_problem,
    _nsid_problem,
    _record_key_problem,
    _rkey_match,
    is_valid_did,
    is_valid_handle,
    is_valid_nsid,
    is_valid_record_key,
)

__all__ = [
    "AT_URI_MAX",
    "AtUri",
    "ensure_valid_at_uri",
    "ensure_valid_mst_key",
    "is_valid_at_uri",
    "is_valid_mst_key",
    "is_valid_repo_path",
    "parse_at_uri",
    "split_repo_path",
]

AT_URI_MAX = 8192
MST_KEY_MAX = 1024

_mst_key_match = re.compile(r"[a-zA-Z0-9_~.:-]+/[a-zA-Z0-9_~.:-]+").fullmatch


@dataclass(frozen=True, slots=True)
class AtUri:
    """A parsed Lexicon AT-URI; ``str()`` gives the URI back exactly as parsed."""

    authority: str
    collection: str | None = None
    rkey: str | None = None

    def __str__(self) -> str:
        if self.collection is None:
            return f"at://{self.authority}"
        if self.rkey is None:
            return f"at://{self.authority}/{self.collection}"
        return f"at://{self.authority}/{self.collection}/{self.rkey}"

    @property
    def is_did(self) -> bool:
        return self.authority.startswith("did:")

    def normalized(self) -> AtUri:
        """Lowercase a handle authority and the NSID domain part; DIDs, NSID names and rkeys keep their case."""
        authority = self.authority if self.is_did else self.authority.lower()
        collection = self.collection
        if collection is not None:
            domain, _, name = collection.rpartition(".")
            collection = f"{domain.lower()}.{name}"
        return AtUri(authority, collection, self.rkey)


def _split(s: object) -> tuple[str, str | None, str | None] | None:
    if not isinstance(s, str) or len(s) > AT_URI_MAX or not s.startswith("at://"):
        return None
    parts = s[5:].split("/")
    n = len(parts)
    if n > 3:
        return None
    authority = parts[0]
    if not (is_valid_did(authority) if authority.startswith("did:") else is_valid_handle(authority)):
        return None
    if n == 1:
        return authority, None, None
    if not is_valid_nsid(parts[1]):
        return None
    if n == 2:
        return authority, parts[1], None
    if not is_valid_record_key(parts[2]):
        return None
    return authority, parts[1], parts[2]


def is_valid_at_uri(s: str) -> bool:
    return _split(s) is not None


def _at_uri_problem(s: object) -> str:
    if not isinstance(s, str):
        return "AT-URI must be a string"
    if len(s) > AT_URI_MAX:
        return f"AT-URI is longer than {AT_URI_MAX} characters"
    if not s.startswith("at://"):
        return "AT-URI must start with 'at://' (lowercase)"
    if "?" in s or "#" in s:
        return "AT-URI in Lexicon form must not have a query or fragment"
    parts = s[5:].split("/")
    if parts[-1] == "":
        return "AT-URI must not have an empty path segment or a trailing '/'"
    if len(parts) > 3:
        return "AT-URI path has more than two segments (collection and record key)"
    authority = parts[0]
    if authority.startswith("did:"):
        if not is_valid_did(authority):
            return f"AT-URI authority: {_did_problem(authority)}"
    elif not is_valid_handle(authority):
        return f"AT-URI authority must be a handle or a DID: {_handle_problem(authority)}"
    if len(parts) > 1 and not is_valid_nsid(parts[1]):
        return f"AT-URI collection: {_nsid_problem(parts[1])}"
    if len(parts) > 2 and not is_valid_record_key(parts[2]):
        return f"AT-URI record key: {_record_key_problem(parts[2])}"
    return "not a valid AT-URI"


def ensure_valid_at_uri(s: str) -> None:
    if _split(s) is None:
        raise InvalidSyntax(_at_uri_problem(s))


def parse_at_uri(s: str) -> AtUri:
    parts = _split(s)
    if parts is None:
        raise InvalidSyntax(_at_uri_problem(s))
    return AtUri(*parts)


# Collections already found to be valid NSIDs. Paths repeat a handful of collections, so split_repo_path
# checks each NSID once; bounded so distinct attacker-chosen collections cannot grow it without limit.
_valid_collections: set[str] = set()
_VALID_COLLECTIONS_MAX = 4096


def _is_valid_collection(collection: str) -> bool:
    if collection in _valid_collections:
        return True
    if not is_valid_nsid(collection):
        return False
    if len(_valid_collections) >= _VALID_COLLECTIONS_MAX:
        _valid_collections.clear()
    _valid_collections.add(collection)
    return True


def is_valid_repo_path(path: str) -> bool:
    """True when ``path`` is ``"<nsid>/<rkey>"`` with a valid NSID and record key (:func:`split_repo_path`)."""
    if not isinstance(path, str):
        return False
    collection, sep, rkey = path.partition("/")
    # The record key rule of is_valid_record_key, inlined; most keys are TIDs or other plain ASCII letters and
    # digits, which isalnum/isascii settle without the regex ("." and ".." are not alphanumeric).
    if not sep or not (
        (rkey.isalnum() and rkey.isascii() and len(rkey) <= RECORD_KEY_MAX)
        or (_rkey_match(rkey) is not None and rkey != "." and rkey != "..")
    ):
        return False
    return collection in _valid_collections or _is_valid_collection(collection)


def split_repo_path(path: str) -> tuple[str, str]:
    """``"<nsid>/<rkey>"`` -> ``(collection, rkey)``; raises ``InvalidSyntax`` unless both parts are valid."""
    if is_valid_repo_path(path):
        collection, _, rkey = path.partition("/")
        return collection, rkey
    if not isinstance(path, str):
        raise InvalidSyntax("repo path must be a string")
    collection, _, rkey = path.partition("/")
    if path.count("/") != 1:
        raise InvalidSyntax("repo path must be exactly '<collection>/<rkey>'")
    if not is_valid_nsid(collection):
        raise InvalidSyntax(f"repo path collection: {_nsid_problem(collection)}")
    raise InvalidSyntax(f"repo path record key: {_record_key_problem(rkey)}")


def is_valid_mst_key(key: str) -> bool:
    """The MST's own (looser) key rule: two non-empty segments of ``[a-zA-Z0-9_~.:-]``, ≤1024 chars.

    The MST vectors use keys such as ``A0/374913`` that are not repo paths; record writes should use
    ``split_repo_path``, which also requires an NSID and a valid record key.
    """
    return isinstance(key, str) and len(key) <= MST_KEY_MAX and _mst_key_match(key) is not None


def ensure_valid_mst_key(key: str) -> None:
    if not is_valid_mst_key(key):
        if isinstance(key, str) and len(key) > MST_KEY_MAX:
            raise InvalidSyntax(f"MST key is longer than {MST_KEY_MAX} characters")
        raise InvalidSyntax("MST key must be '<segment>/<segment>' of [a-zA-Z0-9_~.:-]")
