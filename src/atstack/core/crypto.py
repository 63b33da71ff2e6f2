"""Signing keys, signatures and their string encodings (multikey, did:key).

Spec: atproto.com/specs/cryptography; legacy DID-document keys in atproto.com/specs/did ("Legacy
Representation"). Two curves: ``k256`` (secp256k1, JWT ``ES256K``) and ``p256`` (NIST P-256, ``ES256``).

* A signature is ECDSA over SHA-256 of the message, encoded as 64 raw bytes ``r‖s`` (never DER), and must be
  in low-S form. We always sign low-S and refuse high-S, DER and wrong-length signatures when verifying.
* A public key string ("multikey") is ``z`` + base58btc(varint multicodec ‖ 33-byte compressed point); a
  ``did:key`` is ``did:key:`` + multikey. The legacy form (``EcdsaSecp256{k1,r1}VerificationKey2019``) is the
  uncompressed point without multicodec; it is read, never written.
* Private keys have no protocol encoding; we read and write raw 32 bytes, hex, and the multikey-style form with
  the ``secp256k1-priv`` (0x1301) / ``p256-priv`` (0x1306) multicodecs.

k256 runs on libsecp256k1 through ``coincurve``'s C bindings; its verify refuses high-S signatures itself.
p256 runs on ``cryptography`` (OpenSSL), which accepts either S, so the low-S rule is enforced here.
"""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache
from typing import Literal

import base58
from coincurve import PrivateKey as _K256Private
from coincurve import PublicKey as _K256Public

# coincurve's high-level verify wants DER; the raw libsecp256k1 calls let us parse the 64-byte compact form
# directly (pinned to coincurve 21.x in pyproject).
from coincurve._libsecp256k1 import ffi as _ffi
from coincurve._libsecp256k1 import lib as _lib
from coincurve.context import GLOBAL_CONTEXT as _K256_CTX
from cryptography.exceptions import InvalidSignature as _OpenSSLInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "Curve",
    "InvalidKey",
    "InvalidSignature",
    "PrivateKey",
    "PublicKey",
    "generate_private_key",
    "load_private_key",
    "parse_did_key",
    "parse_legacy_key",
    "parse_multikey",
    "verify_signature",
]

Curve = Literal["k256", "p256"]

DID_KEY_PREFIX = "did:key:"
JWT_ALG: dict[str, str] = {"k256": "ES256K", "p256": "ES256"}

# varint-encoded multicodec prefixes
_PUB_PREFIX: dict[str, bytes] = {
    "k256": b"\xe7\x01",
    "p256": b"\x80\x24",
}  # secp256k1-pub 0xe7, p256-pub 0x1200
_PRIV_PREFIX: dict[str, bytes] = {"k256": b"\x81\x26", "p256": b"\x86\x26"}  # 0x1301, 0x1306
_CURVE_BY_PUB_PREFIX = {v: k for k, v in _PUB_PREFIX.items()}
_CURVE_BY_PRIV_PREFIX = {v: k for k, v in _PRIV_PREFIX.items()}

LEGACY_KEY_TYPES: dict[str, Curve] = {
    "EcdsaSecp256k1VerificationKey2019": "k256",
    "EcdsaSecp256r1VerificationKey2019": "p256",
}

_ORDER: dict[str, int] = {
    "k256": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    "p256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
}
_P256_ORDER = _ORDER["p256"]
_P256_HALF_ORDER = _P256_ORDER // 2
_P256_CURVE = ec.SECP256R1()
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_sha256 = hashlib.sha256


class InvalidKey(ValueError):
    """A key (private or public) is malformed, of an unsupported curve, or not on its curve."""


class InvalidSignature(ValueError):
    """A signature did not verify (raised by callers that need an exception rather than ``False``)."""


def _b58(data: bytes) -> str:
    return base58.b58encode(data).decode("ascii")


def _unb58(text: str) -> bytes:
    try:
        return base58.b58decode(text)
    except ValueError as exc:
        raise InvalidKey(f"not valid base58btc: {exc}") from None


# ---------------------------------------------------------------------------------------------------------------
# public keys


class PublicKey:
    """A k256 or p256 public key; equal and hashable by (curve, compressed point)."""

    __slots__ = ("_impl", "compressed", "curve")

    curve: Curve
    compressed: bytes

    def __init__(self, curve: Curve, point: bytes) -> None:
        """Parse a SEC1 point: 33-byte compressed (0x02/0x03) or 65-byte uncompressed (0x04)."""
        if not (
            (len(point) == 33 and point[0] in (2, 3)) or (len(point) == 65 and point[0] == 4)
        ):  # coincurve would also take the "hybrid" 0x06/0x07 form, which no atproto encoding uses
            raise InvalidKey(f"{curve} public key must be a 33-byte compressed or 65-byte uncompressed point")
        if curve == "k256":
            try:
                impl = _K256Public(point)
            except ValueError:
                raise InvalidKey("k256 public key is not a point on the curve") from None
            compressed = point if len(point) == 33 else impl.format(compressed=True)
        elif curve == "p256":
            try:
                impl = ec.EllipticCurvePublicKey.from_encoded_point(_P256_CURVE, point)
            except ValueError:
                raise InvalidKey("p256 public key is not a point on the curve") from None
            compressed = (
                point if len(point) == 33 else impl.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
            )
        else:
            raise InvalidKey(f"unsupported curve {curve!r}")
        self.curve = curve
        self.compressed = compressed
        self._impl = impl

    def verify(self, message: bytes, sig: bytes) -> bool:
        """True iff ``sig`` is a 64-byte low-S ``r‖s`` ECDSA signature over SHA-256(message) by this key."""
        if len(sig) != 64:
            return False
        digest = _sha256(message).digest()
        if self.curve == "k256":
            cdata = _ffi.new("secp256k1_ecdsa_signature *")
            # parse_compact fails on r or s >= n; verify fails on zero values and on high-S
            if not _lib.secp256k1_ecdsa_signature_parse_compact(_K256_CTX.ctx, cdata, sig):
                return False
            return bool(_lib.secp256k1_ecdsa_verify(_K256_CTX.ctx, cdata, digest, self._impl.public_key))
        r = int.from_bytes(sig[:32], "big")
        s = int.from_bytes(sig[32:], "big")
        if not (0 < r < _P256_ORDER and 0 < s <= _P256_HALF_ORDER):
            return False
        try:
            self._impl.verify(encode_dss_signature(r, s), message, _ECDSA_SHA256)
        except _OpenSSLInvalidSignature:
            return False
        return True

    def uncompressed(self) -> bytes:
        """The 65-byte SEC1 uncompressed point (the legacy DID-document encoding)."""
        if self.curve == "k256":
            return self._impl.format(compressed=False)
        return self._impl.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)

    def multikey(self) -> str:
        return "z" + _b58(_PUB_PREFIX[self.curve] + self.compressed)

    def did_key(self) -> str:
        return DID_KEY_PREFIX + self.multikey()

    @property
    def jwt_alg(self) -> str:
        return JWT_ALG[self.curve]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self.curve == other.curve and self.compressed == other.compressed

    def __hash__(self) -> int:
        return hash((self.curve, self.compressed))

    def __repr__(self) -> str:
        return f"PublicKey({self.did_key()!r})"


def parse_multikey(text: str) -> PublicKey:
    """Parse a multikey string (``z`` + base58btc of multicodec ‖ compressed point)."""
    if not isinstance(text, str) or not text.startswith("z"):
        raise InvalidKey("multikey must be a 'z' (base58btc) multibase string")
    raw = _unb58(text[1:])
    curve = _CURVE_BY_PUB_PREFIX.get(raw[:2])
    if curve is None:
        raise InvalidKey("multikey is not a k256 or p256 public key (unknown multicodec)")
    point = raw[2:]
    if len(point) != 33:
        raise InvalidKey(f"multikey must hold a 33-byte compressed point, got {len(point)} bytes")
    return PublicKey(curve, point)


def parse_did_key(text: str) -> PublicKey:
    """Parse ``did:key:z…`` into a public key."""
    if not isinstance(text, str) or not text.startswith(DID_KEY_PREFIX):
        raise InvalidKey("did:key must start with 'did:key:'")
    return parse_multikey(text[len(DID_KEY_PREFIX) :])


def parse_legacy_key(key_type: str, public_key_multibase: str) -> PublicKey:
    """Parse a legacy DID-document key: ``z`` + base58btc of a bare SEC1 point (no multicodec). Read-only."""
    curve = LEGACY_KEY_TYPES.get(key_type)
    if curve is None:
        raise InvalidKey(f"unsupported legacy verification method type {key_type!r}")
    if not isinstance(public_key_multibase, str) or not public_key_multibase.startswith("z"):
        raise InvalidKey("legacy publicKeyMultibase must be a 'z' (base58btc) multibase string")
    # the spec describes the uncompressed point; the interop fixtures also carry compressed ones
    return PublicKey(curve, _unb58(public_key_multibase[1:]))


@lru_cache(maxsize=32768)
def _cached_key(text: str) -> PublicKey:
    if text.startswith(DID_KEY_PREFIX):
        return parse_did_key(text)
    return parse_multikey(text)


def verify_signature(did_key_or_multikey: str, message: bytes, sig: bytes) -> bool:
    """Verify with a key given as ``did:key:…`` or multikey; parsed keys are cached (hot path for relays).

    Returns False for a bad signature; raises :class:`InvalidKey` if the key string itself is invalid.
    """
    return _cached_key(did_key_or_multikey).verify(message, sig)


# ---------------------------------------------------------------------------------------------------------------
# private keys


class PrivateKey:
    """A k256 or p256 signing key. Signatures are always 64-byte raw ``r‖s`` in low-S form."""

    __slots__ = ("_impl", "_public", "curve")

    curve: Curve

    def __init__(self, curve: Curve, secret: bytes) -> None:
        if curve not in _ORDER:
            raise InvalidKey(f"unsupported curve {curve!r}")
        if len(secret) != 32:
            raise InvalidKey(f"private key must be 32 bytes, got {len(secret)}")
        if not 0 < int.from_bytes(secret, "big") < _ORDER[curve]:
            raise InvalidKey(f"private key scalar out of range for {curve}")
        self.curve = curve
        if curve == "k256":
            impl = _K256Private(secret)
            self._public = PublicKey("k256", impl.public_key.format(compressed=True))
        else:
            impl = ec.derive_private_key(int.from_bytes(secret, "big"), _P256_CURVE)
            point = impl.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
            self._public = PublicKey("p256", point)
        self._impl = impl

    def sign(self, message: bytes) -> bytes:
        """ECDSA over SHA-256(message): 64 bytes ``r‖s``, low-S."""
        if self.curve == "k256":
            cdata = _ffi.new("secp256k1_ecdsa_signature *")
            digest = _sha256(message).digest()
            # libsecp256k1 signs deterministically (RFC 6979) and always produces low-S
            if not _lib.secp256k1_ecdsa_sign(
                _K256_CTX.ctx, cdata, digest, self._impl.secret, _ffi.NULL, _ffi.NULL
            ):
                raise InvalidKey("libsecp256k1 refused to sign with this key")
            out = _ffi.new("unsigned char[64]")
            _lib.secp256k1_ecdsa_signature_serialize_compact(_K256_CTX.ctx, out, cdata)
            return bytes(_ffi.buffer(out, 64))
        r, s = decode_dss_signature(self._impl.sign(message, _ECDSA_SHA256))
        if s > _P256_HALF_ORDER:  # OpenSSL returns either S; (r, n-s) is the same signature in low-S form
            s = _P256_ORDER - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    @property
    def public_key(self) -> PublicKey:
        return self._public

    def to_bytes(self) -> bytes:
        if self.curve == "k256":
            return self._impl.secret
        return self._impl.private_numbers().private_value.to_bytes(32, "big")

    def to_hex(self) -> str:
        return self.to_bytes().hex()

    def to_multibase(self) -> str:
        return "z" + _b58(_PRIV_PREFIX[self.curve] + self.to_bytes())

    def did_key(self) -> str:
        return self._public.did_key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivateKey):
            return NotImplemented
        return self.curve == other.curve and secrets.compare_digest(self.to_bytes(), other.to_bytes())

    def __hash__(self) -> int:
        return hash((self.curve, self._public.compressed))

    def __repr__(self) -> str:  # never print the secret
        return f"PrivateKey(curve={self.curve!r}, public={self._public.did_key()!r})"


def generate_private_key(curve: Curve = "k256") -> PrivateKey:
    """A fresh random key (k256 by default, like the reference implementation)."""
    if curve not in _ORDER:
        raise InvalidKey(f"unsupported curve {curve!r}")
    while True:
        secret = secrets.token_bytes(32)
        if 0 < int.from_bytes(secret, "big") < _ORDER[curve]:
            return PrivateKey(curve, secret)


def load_private_key(data: bytes | str, curve: Curve | None = None) -> PrivateKey:
    """Load a private key from raw 32 bytes, 64 hex digits, or multibase (``z…``, which names its curve).

    Raw and hex keys carry no curve: ``curve`` defaults to k256. A multibase key whose curve disagrees with an
    explicit ``curve`` is refused.
    """
    if isinstance(data, bytes | bytearray):
        return PrivateKey(curve or "k256", bytes(data))
    if not isinstance(data, str):
        raise InvalidKey("private key must be bytes or a string")
    text = data.strip()
    if text.startswith("z"):
        raw = _unb58(text[1:])
        found = _CURVE_BY_PRIV_PREFIX.get(raw[:2])
        if found is None:
            raise InvalidKey("multibase private key has no secp256k1-priv or p256-priv multicodec")
        if curve is not None and curve != found:
            raise InvalidKey(f"multibase private key is {found}, not {curve}")
        return PrivateKey(found, raw[2:])
    if text.startswith(("0x", "0X")):
        text = text[2:]
    if len(text) != 64:
        raise InvalidKey("hex private key must be 64 hex digits")
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise InvalidKey("private key is neither hex nor multibase") from None
    return PrivateKey(curve or "k256", secret)
