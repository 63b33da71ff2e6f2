"""Compact JWS/JWT encoding for the PDS: HS256 session tokens and ES256K/ES256 inter-service tokens.

Spec: atproto.com/specs/xrpc ("Authentication", "Inter-Service Authentication"), checklist §8; RFC 7515/7519.
Session tokens are HMAC-SHA256 with the server's secret; their header ``typ`` separates access tokens
(``at+jwt``) from refresh tokens (``refresh+jwt``) so one can never stand in for the other. Service tokens
are signed with the account's repo signing key: header ``{"typ": "JWT", "alg": "ES256K"|"ES256"}``, the
signature the raw 64-byte low-S ``r‖s`` (base64url), as :class:`atstack.core.crypto.PrivateKey` produces.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from atstack.core.crypto import PrivateKey, PublicKey

__all__ = [
    "JwtError",
    "ParsedJwt",
    "b64url_decode",
    "b64url_encode",
    "create_service_jwt",
    "hs256_sign",
    "parse_jwt",
    "verify_hs256",
    "verify_service_jwt_signature",
]

_ALG_BY_CURVE = {"k256": "ES256K", "p256": "ES256"}


class JwtError(ValueError):
    """A token that is not a well-formed compact JWS (reason in the message)."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not text.isascii() or "=" in text:
        raise JwtError("invalid base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise JwtError("invalid base64url") from None


@dataclass(frozen=True, slots=True)
class ParsedJwt:
    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def parse_jwt(token: str) -> ParsedJwt:
    """Split and decode a compact JWS without checking its signature."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("a JWT has three parts")
    try:
        header = orjson.loads(b64url_decode(parts[0]))
        payload = orjson.loads(b64url_decode(parts[1]))
    except orjson.JSONDecodeError:
        raise JwtError("JWT header or payload is not JSON") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise JwtError("JWT header and payload must be objects")
    return ParsedJwt(header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), b64url_decode(parts[2]))


def _encode(header: Mapping[str, Any], payload: Mapping[str, Any]) -> bytes:
    return (b64url_encode(orjson.dumps(header)) + "." + b64url_encode(orjson.dumps(payload))).encode("ascii")


def hs256_sign(header: Mapping[str, Any], payload: Mapping[str, Any], secret: bytes) -> str:
    signing_input = _encode({**header, "alg": "HS256"}, payload)
    sig = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return signing_input.decode("ascii") + "." + b64url_encode(sig)


def verify_hs256(parsed: ParsedJwt, secret: bytes) -> bool:
    if parsed.header.get("alg") != "HS256":
        return False
    expected = hmac.new(secret, parsed.signing_input, hashlib.sha256).digest()
    return hmac.compare_digest(expected, parsed.signature)


def create_service_jwt(
    key: PrivateKey, *, iss: str, aud: str, iat: int, exp: int, lxm: str | None = None
) -> str:
    """An inter-service token: ``iss`` the account DID, ``aud`` the service (``did`` or ``did#id``)."""
    payload: dict[str, Any] = {"iat": iat, "iss": iss, "aud": aud, "exp": exp}
    if lxm is not None:
        payload["lxm"] = lxm
    payload["jti"] = secrets.token_hex(16)
    signing_input = _encode({"typ": "JWT", "alg": _ALG_BY_CURVE[key.curve]}, payload)
    return signing_input.decode("ascii") + "." + b64url_encode(key.sign(signing_input))


def verify_service_jwt_signature(parsed: ParsedJwt, public_key: PublicKey) -> bool:
    if parsed.header.get("alg") != _ALG_BY_CURVE.get(public_key.curve):
        return False
    return public_key.verify(parsed.signing_input, parsed.signature)
