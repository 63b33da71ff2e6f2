"""Keys, signatures and key encodings (atproto.com/specs/cryptography) against the interop vectors."""

from __future__ import annotations

import base64
import os

import base58
import pytest

import vectors
from atstack.core import crypto
from atstack.core.crypto import (
    InvalidKey,
    PrivateKey,
    PublicKey,
    generate_private_key,
    load_private_key,
    parse_did_key,
    parse_legacy_key,
    parse_multikey,
    verify_signature,
)

K256_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ORDER = {"k256": K256_N, "p256": P256_N}


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def test_signature_fixtures() -> None:
    cases = vectors.vector_json("crypto", "signature-fixtures.json")
    seen_tags: set[str] = set()
    count = 0
    for case in cases:
        message, sig = _b64(case["messageBase64"]), _b64(case["signatureBase64"])
        key = parse_did_key(case["publicKeyDid"])
        assert key.jwt_alg == case["algorithm"]
        assert key.did_key() == case["publicKeyDid"]
        # the legacy DID-document form of the same key parses to the same key
        assert parse_legacy_key(case["didDocSuite"], case["publicKeyMultibase"]) == key
        assert key.verify(message, sig) is case["validSignature"], case["comment"]
        assert verify_signature(case["publicKeyDid"], message, sig) is case["validSignature"]
        assert verify_signature(key.multikey(), message, sig) is case["validSignature"]
        seen_tags.update(case["tags"])
        count += 1
    assert count > 0
    assert {"high-s", "der-encoded"} <= seen_tags


def test_high_s_rejection_is_only_about_s() -> None:
    """The high-S fixtures become valid once S is flipped: the rejection is the low-S rule, for both curves."""
    count = 0
    for case in vectors.vector_json("crypto", "signature-fixtures.json"):
        if "high-s" not in case["tags"]:
            continue
        key = parse_did_key(case["publicKeyDid"])
        message, sig = _b64(case["messageBase64"]), _b64(case["signatureBase64"])
        s = int.from_bytes(sig[32:], "big")
        assert s > ORDER[key.curve] // 2
        low = sig[:32] + (ORDER[key.curve] - s).to_bytes(32, "big")
        assert not key.verify(message, sig)
        assert key.verify(message, low)
        count += 1
    assert count == 2


def test_w3c_did_key_k256() -> None:
    count = 0
    for case in vectors.vector_json("crypto", "w3c_didkey_K256.json"):
        key = load_private_key(case["privateKeyBytesHex"], "k256")
        assert key.did_key() == case["publicDidKey"]
        assert key.to_hex() == case["privateKeyBytesHex"]
        assert parse_did_key(case["publicDidKey"]) == key.public_key
        assert case["publicDidKey"].startswith("did:key:zQ3sh")
        count += 1
    assert count > 0


def test_w3c_did_key_p256() -> None:
    count = 0
    for case in vectors.vector_json("crypto", "w3c_didkey_P256.json"):
        secret = base58.b58decode(case["privateKeyBytesBase58"])
        key = load_private_key(secret, "p256")
        assert key.did_key() == case["publicDidKey"]
        assert key.to_bytes() == secret
        assert parse_did_key(case["publicDidKey"]) == key.public_key
        assert case["publicDidKey"].startswith("did:key:zDnae")
        count += 1
    assert count > 0


def test_spec_examples_and_legacy_conversion() -> None:
    assert parse_multikey("zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo").curve == "p256"
    assert parse_multikey("zQ3shqwJEJyMBsBXCWyCBpUBMqxcon9oHB7mCvx4sSpMdLJwc").curve == "k256"
    # atproto.com/specs/did: the same K-256 key in legacy (uncompressed, no multicodec) and Multikey form
    legacy = parse_legacy_key(
        "EcdsaSecp256k1VerificationKey2019",
        "zQYEBzXeuTM9UR3rfvNag6L3RNAs5pQZyYPsomTsgQhsxLdEgCrPTLgFna8yqCnxPpNT7DBk6Ym3dgPKNu86vt9GR",
    )
    assert legacy.multikey() == "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"
    assert len(legacy.uncompressed()) == 65
    p = generate_private_key("p256").public_key
    as_legacy = "z" + base58.b58encode(p.uncompressed()).decode()
    assert parse_legacy_key("EcdsaSecp256r1VerificationKey2019", as_legacy) == p


@pytest.mark.parametrize("curve", ["k256", "p256"])
def test_sign_verify_round_trip(curve: str) -> None:
    key = generate_private_key(curve)  # type: ignore[arg-type]
    assert key.curve == curve
    message = b"atproto signing round trip"
    sig = key.sign(message)
    assert len(sig) == 64
    assert key.public_key.verify(message, sig)
    assert verify_signature(key.did_key(), message, sig)
    assert not key.public_key.verify(message + b"!", sig)
    assert not key.public_key.verify(message, sig[:63])
    assert not key.public_key.verify(message, sig + b"\x00")
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    assert not key.public_key.verify(message, flipped)
    assert not generate_private_key(curve).public_key.verify(message, sig)  # type: ignore[arg-type]
    assert not key.public_key.verify(message, bytes(64))  # r = s = 0


@pytest.mark.parametrize("curve", ["k256", "p256"])
def test_signatures_are_always_low_s(curve: str) -> None:
    key = generate_private_key(curve)  # type: ignore[arg-type]
    half = ORDER[curve] // 2
    for _ in range(300):
        message = os.urandom(48)
        sig = key.sign(message)
        assert 0 < int.from_bytes(sig[32:], "big") <= half
        assert key.public_key.verify(message, sig)


@pytest.mark.parametrize("curve", ["k256", "p256"])
def test_key_encodings_round_trip(curve: str) -> None:
    key = generate_private_key(curve)  # type: ignore[arg-type]
    pub = key.public_key
    assert len(pub.compressed) == 33
    assert parse_multikey(pub.multikey()) == pub
    assert parse_did_key(pub.did_key()) == pub
    assert pub.did_key() == "did:key:" + pub.multikey()
    assert pub.multikey().startswith("zQ3sh" if curve == "k256" else "zDnae")
    assert hash(parse_multikey(pub.multikey())) == hash(pub)
    assert len({pub, parse_did_key(pub.did_key())}) == 1
    assert load_private_key(key.to_bytes(), curve) == key  # type: ignore[arg-type]
    assert load_private_key(key.to_hex(), curve) == key  # type: ignore[arg-type]
    assert load_private_key(key.to_multibase()) == key
    assert load_private_key(key.to_multibase()).curve == curve
    assert key.to_multibase().startswith("z")
    assert key.to_hex() not in repr(key)


def test_private_multibase_uses_private_key_multicodecs() -> None:
    k = generate_private_key("k256").to_multibase()
    p = generate_private_key("p256").to_multibase()
    assert base58.b58decode(k[1:])[:2] == b"\x81\x26"  # secp256k1-priv 0x1301
    assert base58.b58decode(p[1:])[:2] == b"\x86\x26"  # p256-priv 0x1306


def test_load_private_key_rejects_bad_input() -> None:
    k256_multibase = generate_private_key("k256").to_multibase()
    bad: list[tuple[bytes | str, str | None]] = [
        (b"\x00" * 32, None),  # zero scalar
        (K256_N.to_bytes(32, "big"), "k256"),  # scalar = n
        (b"\x01" * 31, None),
        ("zz", None),
        ("not hex at all, not multibase, 64 characters long ............", None),
        ("abcd", None),
        (k256_multibase, "p256"),  # curve conflict
        ("z" + base58.b58encode(b"\xe7\x01" + b"\x02" * 33).decode(), None),  # a public multikey
    ]
    for data, curve in bad:
        with pytest.raises(InvalidKey):
            load_private_key(data, curve)  # type: ignore[arg-type]


def test_parse_rejects_bad_public_keys() -> None:
    good = generate_private_key("k256").public_key
    raw = base58.b58decode(good.multikey()[1:])
    bad = [
        "",
        "did:key:",
        "Q3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF",  # no multibase prefix
        "z0OIl",  # not base58btc
        "z" + base58.b58encode(b"\xed\x01" + raw[2:]).decode(),  # ed25519 codec
        "z" + base58.b58encode(raw[:-1]).decode(),  # truncated point
        "z" + base58.b58encode(raw[:2] + b"\x04" + raw[3:]).decode(),  # wrong point tag
        "z" + base58.b58encode(b"\xe7\x01" + b"\x02" + b"\xff" * 32).decode(),  # x not on the curve
    ]
    for text in bad:
        with pytest.raises(InvalidKey):
            parse_multikey(text)
    with pytest.raises(InvalidKey):
        parse_did_key(good.multikey())  # missing did:key: prefix
    with pytest.raises(InvalidKey):
        parse_legacy_key("Ed25519VerificationKey2020", "z" + base58.b58encode(good.uncompressed()).decode())
    with pytest.raises(InvalidKey):
        verify_signature("did:key:zBogus", b"m", bytes(64))


def test_generated_keys_are_distinct_and_default_k256() -> None:
    keys = {generate_private_key().to_hex() for _ in range(20)}
    assert len(keys) == 20
    assert generate_private_key().curve == "k256"
    with pytest.raises(InvalidKey):
        generate_private_key("ed25519")  # type: ignore[arg-type]
    assert isinstance(generate_private_key(), PrivateKey)
    assert isinstance(generate_private_key().public_key, PublicKey)
    assert crypto.JWT_ALG == {"k256": "ES256K", "p256": "ES256"}
