"""Record validation: the interop record-data vectors and hand-written app.bsky.feed.post cases."""

from __future__ import annotations

import copy
from typing import Any

import cbrrr
import pytest

import vectors
from atstack.core.cid import CID, cid_for_cbor, cid_for_raw
from atstack.core.lexicon import LexiconError, Lexicons, ValidationError, load_lexicon_dir

POST = "app.bsky.feed.post"
BLOB_CID = cid_for_raw(b"a cat picture")
RECORD_CID = cid_for_cbor(b"\xa0")
DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
POST_URI = f"at://{DID}/app.bsky.feed.post/3k2la3b5mrc2y"


def json_to_data(obj: Any) -> Any:
    """JSON form (``$link``/``$bytes``) → data-model form (CID, bytes), via cbrrr's atjson mode."""
    return cbrrr.decode_dag_cbor(cbrrr.encode_dag_cbor(obj, atjson_mode=True))


@pytest.fixture(scope="module")
def catalog() -> Lexicons:
    return load_lexicon_dir(vectors.vector_path("lexicon", "catalog"))


@pytest.fixture(scope="module")
def lexicons() -> Lexicons:
    return load_lexicon_dir(vectors.LEXICONS)


def reject(lexicons: Lexicons, collection: str, value: Any) -> str:
    with pytest.raises(ValidationError) as info:
        lexicons.validate_record(collection, value)
    return str(info.value)


# -- interop vectors ---------------------------------------------------------------------------------------


def test_record_data_valid_vectors(catalog: Lexicons) -> None:
    cases = vectors.vector_json("lexicon", "record-data-valid.json")
    for case in cases:
        data = json_to_data(case["data"])
        catalog.validate_record(data["$type"], data)
        catalog.validate_record_key(data["$type"], case["rkey"])
    assert len(cases) > 0


def test_record_data_invalid_vectors(catalog: Lexicons) -> None:
    cases = vectors.vector_json("lexicon", "record-data-invalid.json")
    accepted = []
    for case in cases:
        data = json_to_data(case["data"])
        for variant in (data, {"integer": 1, **data}):
            # Several cases also omit the required `integer`; with it added they must still fail for the
            # reason they were written for (except the case that is about the missing field itself).
            if variant is not data and (case["name"] == "missing required field" or "integer" in data):
                continue
            try:
                catalog.validate_record(data["$type"], variant)
            except ValidationError:
                continue
            accepted.append(case["name"])
    assert accepted == []
    assert len(cases) > 0


def test_vector_error_paths(catalog: Lexicons) -> None:
    base = {"$type": "example.lexicon.record", "integer": 1}
    cases = {
        "Record/formats/did must be a valid did": {"formats": {"did": "123"}},
        "Record/array/1 must be an integer": {"array": [1, "x"]},
        'Record must have the property "integer"': {"integer": None},
        "Record/unknown must be an object": {"unknown": False},
        "Record/unknown must be an object, not a blob, CID link or bytes": {
            "unknown": {"$type": "blob", "ref": BLOB_CID, "mimeType": "text/plain", "size": 1}
        },
        "Record/closedUnion $type must be one of (example.lexicon.record#demoObject)": {
            "closedUnion": {"$type": "example.lexicon.record#demoObjectTwo"}
        },
        "Record/nullableString must be a string": {"nullableString": 5},
        'Record/$type must be "example.lexicon.record"': {"$type": "example.lexicon.other"},
    }
    for expected, patch in cases.items():
        value = {**base, **patch}
        if patch.get("integer", 0) is None:
            del value["integer"]
        assert reject(catalog, "example.lexicon.record", value) == expected


def test_nullable_and_extra_fields(catalog: Lexicons) -> None:
    base = {"$type": "example.lexicon.record", "integer": 1}
    catalog.validate_record("example.lexicon.record", {**base, "nullableString": None})
    assert "must be a string" in reject(catalog, "example.lexicon.record", {**base, "string": None})
    # Unknown fields are allowed, but must be data-model values.
    catalog.validate_record("example.lexicon.record", {**base, "extra": {"nested": [1, "a", None, b"x"]}})
    msg = reject(catalog, "example.lexicon.record", {**base, "extra": {"nested": [1, 2.5]}})
    assert msg == "Record/extra/nested/1 must not be a float (floats are not allowed in atproto data)"
    msg = reject(catalog, "example.lexicon.record", {**base, "extra": 2**64})
    assert "64-bit" in msg
    msg = reject(catalog, "example.lexicon.record", {**base, "extra": {"$type": "blob", "ref": "x"}})
    assert msg.startswith("Record/extra must be a blob")


def test_unknown_field_rules(catalog: Lexicons) -> None:
    base = {"$type": "example.lexicon.record", "integer": 1}
    ok = [
        {"a": 1},
        {"$type": "com.example.whatever", "deep": {"list": [{"x": RECORD_CID}]}},
        {"$type": "example.lexicon.record#demoObject", "a": "not checked against the schema"},
        {"b": {"$type": "blob", "ref": BLOB_CID, "mimeType": "image/png", "size": 3}},  # nested blob is fine
    ]
    for value in ok:
        catalog.validate_record("example.lexicon.record", {**base, "unknown": value})
    bad = [[1], "s", 1, None, b"bytes", RECORD_CID, {"a": 1.5}, {"b": {"$type": "blob", "size": 1}}]
    for value in bad:
        reject(catalog, "example.lexicon.record", {**base, "unknown": value})


def test_integer_and_boolean_strictness(catalog: Lexicons) -> None:
    base = {"$type": "example.lexicon.record", "integer": 1}
    assert (
        reject(catalog, "example.lexicon.record", {**base, "integer": True})
        == "Record/integer must be an integer"
    )
    assert "floats" in reject(catalog, "example.lexicon.record", {**base, "integer": 1.0})
    assert "greater than 9223372036854775807" in reject(
        catalog, "example.lexicon.record", {**base, "integer": 2**63}
    )
    catalog.validate_record("example.lexicon.record", {**base, "integer": -(2**63)})
    assert (
        reject(catalog, "example.lexicon.record", {**base, "boolean": 1})
        == "Record/boolean must be a boolean"
    )


def test_blob_forms(catalog: Lexicons) -> None:
    base = {"$type": "example.lexicon.record", "integer": 1}
    blob = {"$type": "blob", "ref": BLOB_CID, "mimeType": "image/png", "size": 10}
    catalog.validate_record("example.lexicon.record", {**base, "acceptBlob": blob, "sizeBlob": blob})
    catalog.validate_record("example.lexicon.record", {**base, "blob": {**blob, "size": 0}})  # empty blob
    catalog.validate_record(
        "example.lexicon.record", {**base, "acceptBlob": {**blob, "mimeType": "IMAGE/PNG"}}
    )
    # Legacy form is readable; it has no size, so maxSize can not apply.
    legacy = {"cid": str(BLOB_CID.encode()), "mimeType": "image/jpeg"}
    catalog.validate_record("example.lexicon.record", {**base, "acceptBlob": legacy, "sizeBlob": legacy})
    assert "not one of (image/*)" in reject(
        catalog, "example.lexicon.record", {**base, "acceptBlob": {**legacy, "mimeType": "text/plain"}}
    )
    for bad in (
        {**blob, "ref": str(BLOB_CID.encode())},
        {**blob, "mimeType": ""},
        {**blob, "size": -1},
        {**blob, "size": True},
        {**blob, "$type": "blobby"},
        {"cid": "not-a-cid", "mimeType": "image/png"},
        {"ref": BLOB_CID, "mimeType": "image/png", "size": 1},
    ):
        reject(catalog, "example.lexicon.record", {**base, "blob": bad})


# -- app.bsky.feed.post ------------------------------------------------------------------------------------


def make_post(**fields: Any) -> dict[str, Any]:
    post: dict[str, Any] = {
        "$type": POST,
        "text": "Hello @alice.test, see https://example.com 👋",
        "createdAt": "2024-11-25T09:25:00.123Z",
        "langs": ["en", "pt-BR"],
        "facets": [
            {
                "index": {"byteStart": 6, "byteEnd": 17},
                "features": [{"$type": "app.bsky.richtext.facet#mention", "did": DID}],
            },
            {
                "index": {"byteStart": 23, "byteEnd": 42},
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com"}],
            },
        ],
        "embed": {
            "$type": "app.bsky.embed.images",
            "images": [
                {
                    "alt": "a cat",
                    "image": {"$type": "blob", "ref": BLOB_CID, "mimeType": "image/jpeg", "size": 123456},
                    "aspectRatio": {"width": 1200, "height": 800},
                }
            ],
        },
        "reply": {
            "root": {"uri": POST_URI, "cid": str(RECORD_CID.encode())},
            "parent": {"uri": POST_URI, "cid": str(RECORD_CID.encode())},
        },
    }
    post.update(fields)
    return post


def test_valid_posts(lexicons: Lexicons) -> None:
    lexicons.validate_record(POST, make_post())
    lexicons.validate_record(POST, {"$type": POST, "text": "", "createdAt": "2024-02-29T23:59:59Z"})
    lexicons.validate_record(POST, make_post(createdAt="1985-04-12T23:20:50.123-07:00", tags=["a", "b"]))
    lexicons.validate_record(
        POST, make_post(labels={"$type": "com.atproto.label.defs#selfLabels", "values": []})
    )
    # Unknown fields pass; the data in them still has to be data-model content.
    lexicons.validate_record(POST, make_post(via="someClient", extra={"n": 1}))


def test_post_text_graphemes_versus_bytes(lexicons: Lexicons) -> None:
    # 300 graphemes is the limit; ASCII: one byte each.
    lexicons.validate_record(POST, make_post(text="a" * 300))
    assert (
        reject(lexicons, POST, make_post(text="a" * 301))
        == "Record/text must not be longer than 300 graphemes"
    )
    # CR LF is a single grapheme: 301 code points, 300 graphemes.
    lexicons.validate_record(POST, make_post(text="\r\n" + "a" * 299))
    # Combining marks: 600 code points and 900 bytes, but 300 graphemes (short in bytes, long in code points).
    lexicons.validate_record(POST, make_post(text="e\u0301" * 300))
    assert "300 graphemes" in reject(lexicons, POST, make_post(text="e\u0301" * 301))
    # Family emoji: 1 grapheme, 7 code points, 25 bytes. 120 of them = exactly 3000 bytes, 120 graphemes.
    family = "👩\u200d👩\u200d👦\u200d👦"
    assert len(family.encode()) == 25
    lexicons.validate_record(POST, make_post(text=family * 120))
    # Few graphemes, too many bytes.
    msg = reject(lexicons, POST, make_post(text=family * 121))
    assert msg == "Record/text must not be longer than 3000 bytes (UTF-8)"
    # Flags are two code points per grapheme.
    lexicons.validate_record(POST, make_post(text="🇩🇪" * 300))
    assert "graphemes" in reject(lexicons, POST, make_post(text="🇩🇪" * 301))


def test_post_required_fields_and_type(lexicons: Lexicons) -> None:
    post = make_post()
    del post["createdAt"]
    assert reject(lexicons, POST, post) == 'Record must have the property "createdAt"'
    post = make_post()
    del post["$type"]
    assert reject(lexicons, POST, post) == 'Record/$type must be "app.bsky.feed.post"'
    assert "$type" in reject(lexicons, POST, make_post(**{"$type": "app.bsky.feed.post#main"}))
    assert reject(lexicons, POST, [make_post()]) == "Record must be an object"
    assert reject(lexicons, POST, make_post(text=None)) == "Record/text must be a string"


def test_post_datetimes(lexicons: Lexicons) -> None:
    for bad in (
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-01-01T00:00:00",
        "2024-01-01 00:00:00Z",
        "2024-01-01T00:00:00.123-00:00",
        "0000-01-01T00:00:00+01:00",
        "2024-01-01T23:99:00Z",
        " 2024-01-01T00:00:00Z",
    ):
        assert (
            reject(lexicons, POST, make_post(createdAt=bad)) == "Record/createdAt must be a valid datetime"
        ), bad
    for good in ("2024-02-29T00:00:00Z", "0000-01-01T00:00:00Z", "2024-12-31T23:59:59.123456789+14:00"):
        lexicons.validate_record(POST, make_post(createdAt=good))


def test_post_facets(lexicons: Lexicons) -> None:
    post = make_post()
    post["facets"][0]["index"]["byteStart"] = -1
    assert reject(lexicons, POST, post) == "Record/facets/0/index/byteStart can not be less than 0"
    post = make_post()
    del post["facets"][1]["index"]
    assert reject(lexicons, POST, post) == 'Record/facets/1 must have the property "index"'
    post = make_post()
    post["facets"][1]["features"][0]["uri"] = "not a uri"
    assert reject(lexicons, POST, post) == "Record/facets/1/features/0/uri must be a valid uri"
    post = make_post()
    post["facets"][0]["features"][0]["did"] = "did:PLC:bad"
    assert reject(lexicons, POST, post) == "Record/facets/0/features/0/did must be a valid did"
    post = make_post()
    del post["facets"][0]["features"][0]["$type"]
    assert "$type" in reject(lexicons, POST, post)
    # An open union accepts a feature type this catalog does not list.
    post = make_post()
    post["facets"][0]["features"].append({"$type": "com.example.richtext#sparkle", "level": 3})
    lexicons.validate_record(POST, post)
    post["facets"][0]["features"][-1]["level"] = 3.5
    assert "Record/facets/0/features/1/level must not be a float" in reject(lexicons, POST, post)
    post["facets"][0]["features"][-1] = {"$type": "not a type ref"}
    assert "not a valid lexicon reference" in reject(lexicons, POST, post)


def test_post_embeds(lexicons: Lexicons) -> None:
    def embed_post(embed: dict[str, Any]) -> dict[str, Any]:
        return make_post(embed=embed)

    external = {
        "$type": "app.bsky.embed.external",
        "external": {"uri": "https://example.com/a", "title": "A", "description": "about a"},
    }
    strong_ref = {"uri": POST_URI, "cid": str(RECORD_CID.encode())}
    record = {"$type": "app.bsky.embed.record", "record": strong_ref}
    images = make_post()["embed"]
    with_media = {"$type": "app.bsky.embed.recordWithMedia", "record": record, "media": images}
    for embed in (external, record, images, with_media):
        lexicons.validate_record(POST, embed_post(embed))

    bad_images = copy.deepcopy(images)
    bad_images["images"][0]["alt"] = 7
    assert reject(lexicons, POST, embed_post(bad_images)) == "Record/embed/images/0/alt must be a string"
    bad_images = copy.deepcopy(images)
    bad_images["images"][0]["aspectRatio"]["width"] = 1.5
    msg = reject(lexicons, POST, embed_post(bad_images))
    assert msg == "Record/embed/images/0/aspectRatio/width must be an integer (floats are not allowed)"
    bad_images = copy.deepcopy(images)
    bad_images["images"][0]["image"]["mimeType"] = "text/html"
    assert reject(lexicons, POST, embed_post(bad_images)).startswith(
        "Record/embed/images/0/image has MIME type"
    )
    bad_images = copy.deepcopy(images)
    bad_images["images"][0]["image"]["size"] = 2_000_001
    assert "must not be larger than 2000000 bytes" in reject(lexicons, POST, embed_post(bad_images))
    bad_images = copy.deepcopy(images)
    bad_images["images"] *= 5
    assert (
        reject(lexicons, POST, embed_post(bad_images))
        == "Record/embed/images must not have more than 4 elements"
    )

    bad_external = copy.deepcopy(external)
    del bad_external["external"]["title"]
    assert (
        reject(lexicons, POST, embed_post(bad_external))
        == 'Record/embed/external must have the property "title"'
    )
    bad_with_media = copy.deepcopy(with_media)
    bad_with_media["record"]["record"]["cid"] = "bafy-not-a-cid"
    assert (
        reject(lexicons, POST, embed_post(bad_with_media))
        == "Record/embed/record/record/cid must be a valid cid"
    )

    # The embed union is open: an unknown, well-formed variant passes; its content is data-model checked.
    lexicons.validate_record(POST, embed_post({"$type": "com.example.embed.poll", "options": ["a", "b"]}))
    assert "float" in reject(lexicons, POST, embed_post({"$type": "com.example.embed.poll", "weight": 0.5}))
    assert "$type" in reject(lexicons, POST, embed_post({"options": ["a"]}))
    assert "#main" in reject(
        lexicons, POST, embed_post({**external, "$type": "app.bsky.embed.external#main"})
    )


def test_post_langs_and_reply(lexicons: Lexicons) -> None:
    assert reject(lexicons, POST, make_post(langs=["en", "fr", "de", "ja"])) == (
        "Record/langs must not have more than 3 elements"
    )
    assert (
        reject(lexicons, POST, make_post(langs=["not a language"]))
        == "Record/langs/0 must be a valid language"
    )
    lexicons.validate_record(POST, make_post(langs=["JA", "i-navajo", "x-private"]))  # well-formed is enough
    reply = make_post()["reply"]
    reply["parent"]["uri"] = "https://example.com/not-at-uri"
    assert reject(lexicons, POST, make_post(reply=reply)) == "Record/reply/parent/uri must be a valid at-uri"
    reply = make_post()["reply"]
    reply["root"]["cid"] = RECORD_CID  # a cid-link where the schema wants a CID string
    assert reject(lexicons, POST, make_post(reply=reply)) == "Record/reply/root/cid must be a string"


def test_other_record_types(lexicons: Lexicons) -> None:
    like = {
        "$type": "app.bsky.feed.like",
        "subject": {"uri": POST_URI, "cid": str(RECORD_CID.encode())},
        "createdAt": "2024-11-25T09:25:00Z",
    }
    lexicons.validate_record("app.bsky.feed.like", like)
    profile = {"$type": "app.bsky.actor.profile", "displayName": "Alice", "description": "hi"}
    lexicons.validate_record("app.bsky.actor.profile", profile)
    assert "64 graphemes" in reject(lexicons, "app.bsky.actor.profile", {**profile, "displayName": "x" * 65})
    follow = {"$type": "app.bsky.graph.follow", "subject": "alice.test", "createdAt": "2024-11-25T09:25:00Z"}
    assert reject(lexicons, "app.bsky.graph.follow", follow) == "Record/subject must be a valid did"


def test_record_keys(lexicons: Lexicons) -> None:
    assert lexicons.record_key_type(POST) == "tid"
    assert lexicons.record_key_type("app.bsky.actor.profile") == "literal:self"
    assert lexicons.record_key_type("com.atproto.lexicon.schema") == "nsid"
    lexicons.validate_record_key(POST, "3k2la3b5mrc2y")
    lexicons.validate_record_key("app.bsky.actor.profile", "self")
    lexicons.validate_record_key("com.atproto.lexicon.schema", "app.bsky.feed.post")
    for collection, rkey in (
        (POST, "self"),
        (POST, "3K2LA3B5MRC2Y"),
        ("app.bsky.actor.profile", "other"),
        ("com.atproto.lexicon.schema", "nope"),
        (POST, ".."),
        (POST, ""),
    ):
        with pytest.raises(ValidationError):
            lexicons.validate_record_key(collection, rkey)


def test_recursive_definitions() -> None:
    lexicons = Lexicons(
        [
            {
                "lexicon": 1,
                "id": "com.example.tree",
                "defs": {
                    "main": {
                        "type": "record",
                        "key": "any",
                        "record": {
                            "type": "object",
                            "required": ["root"],
                            "properties": {"root": {"type": "ref", "ref": "#node"}},
                        },
                    },
                    "node": {
                        "type": "object",
                        "required": ["v"],
                        "properties": {
                            "v": {"type": "integer"},
                            "kids": {"type": "array", "items": {"type": "ref", "ref": "#node"}},
                        },
                    },
                },
            }
        ]
    )
    tree = {"$type": "com.example.tree", "root": {"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}]}}
    lexicons.validate_record("com.example.tree", tree)
    tree["root"]["kids"][0]["kids"][0]["v"] = "x"
    assert reject(lexicons, "com.example.tree", tree) == "Record/root/kids/0/kids/0/v must be an integer"
    # Data nested without bound is refused cleanly, not with a crash.
    deep: dict[str, Any] = {"v": 0}
    for _ in range(5000):
        deep = {"v": 0, "kids": [deep]}
    assert "nested too deeply" in reject(
        lexicons, "com.example.tree", {"$type": "com.example.tree", "root": deep}
    )


def test_string_constraints() -> None:
    defs = {
        "main": {
            "type": "record",
            "key": "any",
            "record": {
                "type": "object",
                "properties": {
                    "c": {"type": "string", "const": "fixed"},
                    "k": {"type": "string", "knownValues": ["a", "com.example.strings#tok"]},
                    "b": {"type": "bytes", "maxLength": 2},
                    "l": {"type": "cid-link"},
                    "t": {"type": "boolean", "const": True},
                    "min": {"type": "string", "minLength": 4, "minGraphemes": 2},
                },
            },
        },
        "tok": {"type": "token"},
    }
    lexicons = Lexicons([{"lexicon": 1, "id": "com.example.strings", "defs": defs}])
    base = {"$type": "com.example.strings"}
    lexicons.validate_record(
        "com.example.strings", {**base, "c": "fixed", "k": "anything", "b": b"ab", "l": RECORD_CID}
    )
    lexicons.validate_record("com.example.strings", {**base, "t": True, "min": "éé"})  # 4 bytes, 2 graphemes
    assert "must be 'fixed'" in reject(lexicons, "com.example.strings", {**base, "c": "other"})
    assert "larger than 2 bytes" in reject(lexicons, "com.example.strings", {**base, "b": b"abc"})
    assert "CID link" in reject(lexicons, "com.example.strings", {**base, "l": str(RECORD_CID.encode())})
    assert "must be true" in reject(lexicons, "com.example.strings", {**base, "t": False})
    assert "shorter than 4 bytes" in reject(lexicons, "com.example.strings", {**base, "min": "abc"})
    assert "shorter than 2 graphemes" in reject(
        lexicons, "com.example.strings", {**base, "min": "e\u0301\u0301\u0301"}
    )
    assert "Unicode" in reject(lexicons, "com.example.strings", {**base, "min": "\ud800x"})
    assert isinstance(RECORD_CID, CID)


def test_missing_lexicon_raises_lexicon_error(lexicons: Lexicons) -> None:
    with pytest.raises(LexiconError):
        lexicons.validate_record("com.example.not.loaded", {"$type": "com.example.not.loaded"})
