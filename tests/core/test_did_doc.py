"""Extracting the atproto identity from DID documents (atproto.com/specs/did) and rendering them."""

from __future__ import annotations

import copy
from typing import Any

import base58
import pytest

from atstack.core.crypto import generate_private_key, parse_multikey
from atstack.core.did_doc import (
    AtprotoIdentity,
    InvalidDidDocument,
    build_did_doc,
    is_valid_pds_endpoint,
    parse_did_doc,
)

DID = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
KEY = "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"
# the same key in the legacy encoding (atproto.com/specs/did)
LEGACY_KEY = "zQYEBzXeuTM9UR3rfvNag6L3RNAs5pQZyYPsomTsgQhsxLdEgCrPTLgFna8yqCnxPpNT7DBk6Ym3dgPKNu86vt9GR"
OTHER_KEY = generate_private_key("p256").public_key.multikey()


def _doc() -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": DID,
        "alsoKnownAs": ["at://alice.example.com"],
        "verificationMethod": [
            {"id": f"{DID}#atproto", "type": "Multikey", "controller": DID, "publicKeyMultibase": KEY}
        ],
        "service": [
            {
                "id": "#atproto_pds",
                "type": "AtprotoPersonalDataServer",
                "serviceEndpoint": "https://pds.example.com",
            }
        ],
    }


def test_standard_document() -> None:
    assert parse_did_doc(_doc(), DID) == AtprotoIdentity(
        DID, "alice.example.com", KEY, "https://pds.example.com"
    )


def test_id_must_match_expected_did() -> None:
    with pytest.raises(InvalidDidDocument):
        parse_did_doc(_doc(), "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
    doc = _doc()
    del doc["id"]
    with pytest.raises(InvalidDidDocument):
        parse_did_doc(doc, DID)
    with pytest.raises(InvalidDidDocument):
        parse_did_doc([], DID)  # type: ignore[arg-type]


def test_handle_is_first_valid_at_uri() -> None:
    doc = _doc()
    doc["alsoKnownAs"] = [
        "https://alice.example.com",  # not at://
        "at://nodots",  # not a valid handle (one label)
        "at://alice.example.com/app.bsky.feed.post",  # nothing may follow the handle
        "at://Bob.Example.COM",
        "at://carol.example.com",
    ]
    assert parse_did_doc(doc, DID).handle == "bob.example.com"
    doc["alsoKnownAs"] = ["at://-bad-.com", 42]
    assert parse_did_doc(doc, DID).handle is None
    del doc["alsoKnownAs"]
    assert parse_did_doc(doc, DID).handle is None


def test_signing_key_rules() -> None:
    def key_of(methods: list[Any]) -> str | None:
        doc = _doc()
        doc["verificationMethod"] = methods
        return parse_did_doc(doc, DID).signing_key

    good = {"id": "#atproto", "type": "Multikey", "controller": DID, "publicKeyMultibase": KEY}
    assert key_of([good]) == KEY  # bare fragment id
    assert key_of([{**good, "id": f"{DID}#atproto"}]) == KEY  # DID-qualified id
    assert key_of([{**good, "id": "did:plc:someoneelse#atproto"}]) is None
    assert key_of([{**good, "id": "#atproto_other"}]) is None
    assert key_of([{**good, "controller": "did:plc:someoneelse"}]) is None
    assert key_of([{**good, "type": "JsonWebKey2020"}]) is None
    assert key_of([{**good, "publicKeyMultibase": "zNotAKey"}]) is None
    # the first *valid* entry wins: invalid ones before it are skipped, later ones ignored
    assert key_of([{**good, "controller": "x"}, {**good, "publicKeyMultibase": OTHER_KEY}, good]) == OTHER_KEY
    assert key_of([{**good, "id": "#labeler", "publicKeyMultibase": OTHER_KEY}, good]) == KEY
    assert key_of([]) is None


@pytest.mark.parametrize("curve", ["k256", "p256"])
def test_legacy_key_types_convert_to_multikey(curve: str) -> None:
    pub = generate_private_key(curve).public_key  # type: ignore[arg-type]
    key_type = {"k256": "EcdsaSecp256k1VerificationKey2019", "p256": "EcdsaSecp256r1VerificationKey2019"}[
        curve
    ]
    legacy = "z" + base58.b58encode(pub.uncompressed()).decode()
    doc = _doc()
    doc["verificationMethod"] = [
        {"id": "#atproto", "type": key_type, "controller": DID, "publicKeyMultibase": legacy}
    ]
    assert parse_did_doc(doc, DID).signing_key == pub.multikey()
    # the curve comes from the type: the wrong one does not parse as this key
    wrong = "EcdsaSecp256r1VerificationKey2019" if curve == "k256" else "EcdsaSecp256k1VerificationKey2019"
    doc["verificationMethod"][0]["type"] = wrong
    assert parse_did_doc(doc, DID).signing_key != pub.multikey()


def test_spec_legacy_example() -> None:
    doc = _doc()
    doc["verificationMethod"] = [
        {
            "id": "#atproto",
            "type": "EcdsaSecp256k1VerificationKey2019",
            "controller": DID,
            "publicKeyMultibase": LEGACY_KEY,
        }
    ]
    assert parse_did_doc(doc, DID).signing_key == KEY


def test_pds_rules() -> None:
    def pds_of(services: list[Any]) -> str | None:
        doc = _doc()
        doc["service"] = services
        return parse_did_doc(doc, DID).pds_endpoint

    good = {
        "id": "#atproto_pds",
        "type": "AtprotoPersonalDataServer",
        "serviceEndpoint": "https://pds.example.com",
    }
    assert pds_of([good]) == "https://pds.example.com"
    assert pds_of([{**good, "id": f"{DID}#atproto_pds"}]) == "https://pds.example.com"
    assert pds_of([{**good, "serviceEndpoint": "http://localhost:2583"}]) == "http://localhost:2583"
    assert pds_of([{**good, "id": "did:web:other.com#atproto_pds"}]) is None
    assert pds_of([{**good, "type": "AtprotoLabeler"}]) is None
    assert pds_of([{**good, "serviceEndpoint": "https://pds.example.com/xrpc"}]) is None
    assert pds_of([{**good, "serviceEndpoint": {"uri": "https://pds.example.com"}}]) is None
    # entries of another type are skipped; the first matching entry decides
    other = {**good, "type": "BskyNotificationService", "serviceEndpoint": "https://x.example.com"}
    assert pds_of([other, good]) == "https://pds.example.com"
    assert (
        pds_of([good, {**good, "serviceEndpoint": "https://second.example.com"}]) == "https://pds.example.com"
    )
    assert pds_of([{**good, "serviceEndpoint": "ftp://pds.example.com"}, good]) is None
    assert pds_of([]) is None


def test_pds_endpoint_syntax() -> None:
    good = [
        "https://pds.example.com",
        "http://localhost",
        "https://pds.example.com:8443",
        "http://[::1]:2583",
    ]
    bad = [
        "https://pds.example.com/",
        "https://pds.example.com/xrpc",
        "https://user@pds.example.com",
        "https://pds.example.com?x=1",
        "https://pds.example.com?",
        "https://pds.example.com#frag",
        "https://pds.example.com:",
        "https://pds.example.com:99999",
        "https://pds.example.com:0",
        "wss://pds.example.com",
        "pds.example.com",
        "https://",
        " https://pds.example.com",
        "https://pds.exämple.com",
        None,
    ]
    for url in good:
        assert is_valid_pds_endpoint(url), url
    for url in bad:
        assert not is_valid_pds_endpoint(url), url


def test_build_did_doc_matches_directory_shape_and_parses_back() -> None:
    p256 = generate_private_key("p256").public_key.multikey()
    doc = build_did_doc(DID, "alice.example.com", p256, "https://pds.example.com")
    assert doc == {
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/multikey/v1",
            "https://w3id.org/security/suites/ecdsa-2019/v1",
        ],
        "id": DID,
        "alsoKnownAs": ["at://alice.example.com"],
        "verificationMethod": [
            {"id": f"{DID}#atproto", "type": "Multikey", "controller": DID, "publicKeyMultibase": p256}
        ],
        "service": [
            {
                "id": "#atproto_pds",
                "type": "AtprotoPersonalDataServer",
                "serviceEndpoint": "https://pds.example.com",
            }
        ],
    }
    assert parse_did_doc(copy.deepcopy(doc), DID) == AtprotoIdentity(
        DID, "alice.example.com", p256, "https://pds.example.com"
    )
    k256_doc = build_did_doc(DID, "alice.example.com", KEY, "https://pds.example.com")
    assert k256_doc["@context"][2] == "https://w3id.org/security/suites/secp256k1-2019/v1"
    assert parse_multikey(k256_doc["verificationMethod"][0]["publicKeyMultibase"]).curve == "k256"


def test_build_did_doc_with_missing_parts() -> None:
    doc = build_did_doc(DID, None, None, None)
    assert doc["alsoKnownAs"] == [] and doc["verificationMethod"] == [] and doc["service"] == []
    assert doc["@context"] == ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]
    assert parse_did_doc(doc, DID) == AtprotoIdentity(DID, None, None, None)
