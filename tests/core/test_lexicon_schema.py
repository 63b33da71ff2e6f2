"""Lexicon documents: the interop schema vectors, the catalog, every shipped lexicon, and schema-level rules."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

import vectors
from atstack.core.lexicon import LexiconError, Lexicons, load_lexicon_dir

CATALOG = vectors.vector_path("lexicon", "catalog")
JETSTREAM_LEXICONS = vectors.vector_path("jetstream", "lexicons", base=vectors.ATPROTO)


def json_files(root: Path) -> list[Path]:
    files = sorted(root.rglob("*.json"))
    assert files, f"no lexicon files under {root}"
    return files


def test_lexicon_valid_vectors() -> None:
    cases = vectors.vector_json("lexicon", "lexicon-valid.json")
    for case in cases:
        lexicons = Lexicons()
        lexicons.add(case["lexicon"])
        assert case["lexicon"]["id"] in lexicons, case["name"]
    assert len(cases) > 0


def test_lexicon_invalid_vectors() -> None:
    cases = vectors.vector_json("lexicon", "lexicon-invalid.json")
    accepted = []
    for case in cases:
        try:
            Lexicons().add(case["lexicon"])
        except LexiconError:
            continue
        accepted.append(case["name"])
    assert accepted == []
    assert len(cases) > 0


def test_catalog_documents_load() -> None:
    files = json_files(CATALOG)
    lexicons = load_lexicon_dir(CATALOG)
    assert len(lexicons) == len(files) == 5
    assert lexicons.method_type("example.lexicon.query") == "query"
    assert lexicons.method_type("example.lexicon.procedure") == "procedure"
    assert lexicons.method_type("example.lexicon.subscription") == "subscription"
    assert lexicons.get_def("example.lexicon.permissionset")["type"] == "permission-set"
    assert lexicons.record_key_type("example.lexicon.record") == "literal:demo"


def test_all_shipped_lexicons_load_and_resolve() -> None:
    files = json_files(vectors.LEXICONS) + json_files(JETSTREAM_LEXICONS)
    lexicons = load_lexicon_dir(vectors.LEXICONS)
    jetstream = load_lexicon_dir(JETSTREAM_LEXICONS)
    for nsid in jetstream:
        lexicons.add(jetstream.get(nsid))
    assert len(lexicons) == len(files)
    assert len(lexicons) > 100
    namespaces = {nsid.split(".")[0] + "." + nsid.split(".")[1] for nsid in lexicons}
    assert {"com.atproto", "app.bsky", "chat.bsky", "network.bsky"} <= namespaces
    # Every ref in every document resolves to a definition of an allowed type.
    lexicons.check_references()


def test_lookup_api() -> None:
    lexicons = load_lexicon_dir(vectors.LEXICONS)
    post = lexicons.get("app.bsky.feed.post")
    assert post is not None and post["id"] == "app.bsky.feed.post"
    assert "app.bsky.feed.post" in lexicons and "com.example.nothing" not in lexicons
    assert lexicons.get("com.example.nothing") is None
    # A bare NSID is #main.
    assert lexicons.get_def("app.bsky.feed.post") is post["defs"]["main"]
    assert lexicons.get_def("app.bsky.feed.post#main") is post["defs"]["main"]
    assert lexicons.get_def("app.bsky.feed.post#replyRef") is post["defs"]["replyRef"]
    assert lexicons.get_def("app.bsky.feed.post#nope") is None
    assert lexicons.get_def("com.atproto.repo.strongRef")["type"] == "object"


def test_load_lexicon_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(LexiconError, match="not found"):
        load_lexicon_dir(tmp_path / "missing")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(LexiconError, match=r"bad\.json"):
        load_lexicon_dir(tmp_path)


def test_duplicate_id_rejected() -> None:
    doc = minimal("com.example.dup", {"main": {"type": "token"}})
    lexicons = Lexicons([doc])
    with pytest.raises(LexiconError, match="already loaded"):
        lexicons.add(copy.deepcopy(doc))


def minimal(nsid: str, defs: dict[str, Any]) -> dict[str, Any]:
    return {"lexicon": 1, "id": nsid, "defs": defs}


def obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


INVALID_DOCS: dict[str, dict[str, Any]] = {
    "lexicon version 2": {"lexicon": 2, "id": "com.example.a", "defs": {"x": {"type": "token"}}},
    "lexicon true (bool is not the integer 1)": {
        "lexicon": True,
        "id": "com.example.a",
        "defs": {"x": {"type": "token"}},
    },
    "no defs": {"lexicon": 1, "id": "com.example.a", "defs": {}},
    "def without type": minimal("com.example.a", {"x": {"description": "?"}}),
    "unknown def type": minimal("com.example.a", {"x": {"type": "float"}}),
    "params as named def": minimal("com.example.a", {"x": {"type": "params", "properties": {}}}),
    "union as named def": minimal("com.example.a", {"x": {"type": "union", "refs": []}}),
    "def name with #": minimal("com.example.a", {"a#b": {"type": "token"}}),
    "object without properties": minimal("com.example.a", {"x": {"type": "object"}}),
    "required not in properties": minimal(
        "com.example.a", {"x": {**obj(a={"type": "integer"}), "required": ["b"]}}
    ),
    "nullable not a list": minimal("com.example.a", {"x": {**obj(a={"type": "integer"}), "nullable": "a"}}),
    "token as a field": minimal("com.example.a", {"x": obj(a={"type": "token"})}),
    "array without items": minimal("com.example.a", {"x": {"type": "array"}}),
    "unknown string format": minimal("com.example.a", {"x": {"type": "string", "format": "email"}}),
    "negative maxLength": minimal("com.example.a", {"x": {"type": "string", "maxLength": -1}}),
    "const and default": minimal("com.example.a", {"x": {"type": "string", "const": "a", "default": "a"}}),
    "integer minimum > maximum": minimal(
        "com.example.a", {"x": {"type": "integer", "minimum": 5, "maximum": 1}}
    ),
    "integer enum of strings": minimal("com.example.a", {"x": {"type": "integer", "enum": ["a"]}}),
    "boolean default not bool": minimal("com.example.a", {"x": {"type": "boolean", "default": "true"}}),
    "blob accept bare star": minimal("com.example.a", {"x": {"type": "blob", "accept": ["*"]}}),
    "blob accept partial glob": minimal("com.example.a", {"x": {"type": "blob", "accept": ["text/ht*"]}}),
    "closed empty union": minimal(
        "com.example.a", {"x": obj(u={"type": "union", "refs": [], "closed": True})}
    ),
    "ref with bad nsid": minimal("com.example.a", {"x": obj(r={"type": "ref", "ref": "not an nsid"})}),
    "undefined local ref": minimal("com.example.a", {"x": obj(r={"type": "ref", "ref": "#missing"})}),
    "undefined local ref via own nsid": minimal(
        "com.example.a", {"x": obj(r={"type": "ref", "ref": "com.example.a#nope"})}
    ),
    "record with bad key type": minimal(
        "com.example.a", {"main": {"type": "record", "key": "uuid", "record": obj()}}
    ),
    "record with literal key that is not a record key": minimal(
        "com.example.a", {"main": {"type": "record", "key": "literal:..", "record": obj()}}
    ),
    "query with input": minimal(
        "com.example.a", {"main": {"type": "query", "input": {"encoding": "application/json"}}}
    ),
    "output without encoding": minimal(
        "com.example.a", {"main": {"type": "query", "output": {"schema": obj()}}}
    ),
    "body schema of type string": minimal(
        "com.example.a",
        {
            "main": {
                "type": "procedure",
                "input": {"encoding": "application/json", "schema": {"type": "string"}},
            }
        },
    ),
    "params with object property": minimal(
        "com.example.a",
        {"main": {"type": "query", "parameters": {"type": "params", "properties": {"o": obj()}}}},
    ),
    "params with array of objects": minimal(
        "com.example.a",
        {
            "main": {
                "type": "query",
                "parameters": {"type": "params", "properties": {"o": {"type": "array", "items": obj()}}},
            }
        },
    ),
    "parameters not of type params": minimal(
        "com.example.a", {"main": {"type": "query", "parameters": obj()}}
    ),
    "error name with whitespace": minimal(
        "com.example.a", {"main": {"type": "query", "errors": [{"name": "Bad Name"}]}}
    ),
    "subscription message not a union": minimal(
        "com.example.a", {"main": {"type": "subscription", "message": {"schema": obj()}}}
    ),
    "subscription without message": minimal("com.example.a", {"main": {"type": "subscription"}}),
    "repo permission with wildcard collection": minimal(
        "com.example.a",
        {
            "main": {
                "type": "permission-set",
                "permissions": [{"type": "permission", "resource": "repo", "collection": ["*"]}],
            }
        },
    ),
    "repo permission with empty collection": minimal(
        "com.example.a",
        {
            "main": {
                "type": "permission-set",
                "permissions": [{"type": "permission", "resource": "repo", "collection": []}],
            }
        },
    ),
    "repo permission with unknown action": minimal(
        "com.example.a",
        {
            "main": {
                "type": "permission-set",
                "permissions": [
                    {
                        "type": "permission",
                        "resource": "repo",
                        "collection": ["com.example.a.b"],
                        "action": ["read"],
                    }
                ],
            }
        },
    ),
    "rpc permission without aud or inheritAud": minimal(
        "com.example.a",
        {
            "main": {
                "type": "permission-set",
                "permissions": [{"type": "permission", "resource": "rpc", "lxm": ["com.example.a.b"]}],
            }
        },
    ),
    "rpc permission with fixed DID audience": minimal(
        "com.example.a",
        {
            "main": {
                "type": "permission-set",
                "permissions": [
                    {
                        "type": "permission",
                        "resource": "rpc",
                        "lxm": ["com.example.a.b"],
                        "aud": "did:web:x.com#svc",
                    }
                ],
            }
        },
    ),
    "rpc permission with both wildcards": minimal(
        "com.example.a",
        {
            "main": {
                "type": "permission-set",
                "permissions": [{"type": "permission", "resource": "rpc", "lxm": ["*"], "aud": "*"}],
            }
        },
    ),
    "permission-set with bad language key": minimal(
        "com.example.a",
        {"main": {"type": "permission-set", "title:lang": {"not a tag!": "x"}, "permissions": []}},
    ),
    "permission of wrong type": minimal(
        "com.example.a",
        {"main": {"type": "permission-set", "permissions": [{"type": "object", "resource": "repo"}]}},
    ),
}


@pytest.mark.parametrize("name", sorted(INVALID_DOCS))
def test_invalid_documents(name: str) -> None:
    with pytest.raises(LexiconError):
        Lexicons().add(INVALID_DOCS[name])


def test_valid_edge_documents() -> None:
    lexicons = Lexicons()
    # An open union with no refs is allowed (like `unknown`, but $type is required).
    lexicons.add(minimal("com.example.open", {"x": obj(u={"type": "union", "refs": []})}))
    # Unknown permission resources are ignored, not rejected; extra top-level keys are tolerated.
    lexicons.add(
        {
            **minimal(
                "com.example.perm",
                {
                    "main": {
                        "type": "permission-set",
                        "permissions": [
                            {"type": "permission", "resource": "blob", "accept": ["image/*"]},
                            {"type": "permission", "resource": "rpc", "lxm": ["com.example.x.y"], "aud": "*"},
                        ],
                    }
                },
            ),
            "$type": "com.atproto.lexicon.schema",
            "revision": 3,
        }
    )
    # `main` may be a non-primary type; a record may use any record-key type.
    lexicons.add(minimal("com.example.str", {"main": {"type": "string", "maxLength": 10}}))
    lexicons.add(
        minimal("com.example.rec", {"main": {"type": "record", "key": "literal:self", "record": obj()}})
    )
    assert len(lexicons) == 4
    assert lexicons.record_key_type("com.example.rec") == "literal:self"


def test_reference_errors_surface_when_used() -> None:
    lexicons = Lexicons(
        [
            minimal(
                "com.example.refs",
                {
                    "main": {
                        "type": "record",
                        "key": "any",
                        "record": obj(
                            token={"type": "ref", "ref": "#tok"},
                        ),
                    },
                    "tok": {"type": "token"},
                },
            )
        ]
    )
    with pytest.raises(LexiconError, match="token"):
        lexicons.check_references()
    with pytest.raises(LexiconError, match="token"):
        lexicons.validate_record("com.example.refs", {"$type": "com.example.refs"})


def test_missing_reference_is_lazy_until_reached() -> None:
    lexicons = Lexicons(
        [
            minimal(
                "com.example.lazy",
                {
                    "main": {
                        "type": "record",
                        "key": "tid",
                        "record": obj(other={"type": "ref", "ref": "com.example.elsewhere#thing"}),
                    }
                },
            )
        ]
    )
    with pytest.raises(LexiconError, match=re.escape("com.example.elsewhere#thing")):
        lexicons.check_references()
    lexicons.validate_record("com.example.lazy", {"$type": "com.example.lazy"})
    with pytest.raises(LexiconError, match="unresolved"):
        lexicons.validate_record("com.example.lazy", {"$type": "com.example.lazy", "other": {}})
    # Adding the missing document resolves the reference for validators compiled afterwards.
    lexicons.add(minimal("com.example.elsewhere", {"thing": obj(n={"type": "integer"})}))
    lexicons.check_references()
    lexicons.validate_record("com.example.lazy", {"$type": "com.example.lazy", "other": {"n": 1}})


def test_non_record_and_unknown_collections() -> None:
    lexicons = load_lexicon_dir(vectors.LEXICONS)
    with pytest.raises(LexiconError, match="no lexicon"):
        lexicons.validate_record("com.example.unknown", {"$type": "com.example.unknown"})
    with pytest.raises(LexiconError, match="not a record"):
        lexicons.validate_record("com.atproto.repo.listRecords", {})
    with pytest.raises(LexiconError):
        lexicons.record_key_type("com.atproto.repo.strongRef")
