"""Identifier and string-format syntax: handle, DID, NSID, TID, record key, AT-URI, datetime, language, CID, URI.

Specs: atproto.com/specs/handle, /did, /nsid, /tid, /record-key, /at-uri-scheme and /lexicon ("String
Formats"); checklist §1 (and §4 for repo paths). For every kind there is ``is_valid_<kind>(s) -> bool`` (cheap:
one precompiled match, no exception) and ``ensure_valid_<kind>(s) -> None`` raising ``InvalidSyntax`` with a
one-line reason. ``datetime`` and ``language`` also have a strict level (``*_strict``) for the semantic rules
the interop ``*_parse_invalid`` vectors test; records should be validated at that level.

Submodules by concept: ``identifiers`` (handle, DID, NSID, TID, rkey), ``aturi`` (AT-URI, repo paths),
``datetimes``, ``language``, ``formats`` (cid, uri).
"""

from __future__ import annotations

from atstack.core.syntax.aturi import (
    AtUri,
    ensure_valid_at_uri,
    ensure_valid_mst_key,
    is_valid_at_uri,
    is_valid_mst_key,
    parse_at_uri,
    split_repo_path,
)
from atstack.core.syntax.datetimes import (
    ensure_valid_datetime,
    ensure_valid_datetime_strict,
    is_valid_datetime,
    is_valid_datetime_strict,
    parse_datetime,
)
from atstack.core.syntax.errors import InvalidSyntax
from atstack.core.syntax.formats import ensure_valid_cid, ensure_valid_uri, is_valid_cid, is_valid_uri
from atstack.core.syntax.identifiers import (
    DISALLOWED_TLDS,
    SUPPORTED_DID_METHODS,
    UnsupportedDidMethod,
    did_method,
    ensure_supported_did,
    ensure_valid_at_identifier,
    ensure_valid_did,
    ensure_valid_handle,
    ensure_valid_nsid,
    ensure_valid_nsid_glob,
    ensure_valid_record_key,
    ensure_valid_tid,
    is_disallowed_tld,
    is_supported_did_method,
    is_valid_at_identifier,
    is_valid_did,
    is_valid_handle,
    is_valid_nsid,
    is_valid_nsid_glob,
    is_valid_record_key,
    is_valid_tid,
    normalize_handle,
    normalize_nsid,
)
from atstack.core.syntax.language import (
    ensure_valid_language,
    ensure_valid_language_strict,
    is_valid_language,
    is_valid_language_strict,
)

__all__ = [
    "DISALLOWED_TLDS",
    "SUPPORTED_DID_METHODS",
    "AtUri",
    "InvalidSyntax",
    "UnsupportedDidMethod",
    "did_method",
    "ensure_supported_did",
    "ensure_valid_at_identifier",
    "ensure_valid_at_uri",
    "ensure_valid_cid",
    "ensure_valid_datetime",
    "ensure_valid_datetime_strict",
    "ensure_valid_did",
    "ensure_valid_handle",
    "ensure_valid_language",
    "ensure_valid_language_strict",
    "ensure_valid_mst_key",
    "ensure_valid_nsid",
    "ensure_valid_nsid_glob",
    "ensure_valid_record_key",
    "ensure_valid_tid",
    "ensure_valid_uri",
    "is_disallowed_tld",
    "is_supported_did_method",
    "is_valid_at_identifier",
    "is_valid_at_uri",
    "is_valid_cid",
    "is_valid_datetime",
    "is_valid_datetime_strict",
    "is_valid_did",
    "is_valid_handle",
    "is_valid_language",
    "is_valid_language_strict",
    "is_valid_mst_key",
    "is_valid_nsid",
    "is_valid_nsid_glob",
    "is_valid_record_key",
    "is_valid_tid",
    "is_valid_uri",
    "normalize_handle",
    "normalize_nsid",
    "parse_at_uri",
    "parse_datetime",
    "split_repo_path",
]
