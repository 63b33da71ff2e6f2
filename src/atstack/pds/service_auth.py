"""Verifying inter-service JWTs sent to this PDS (e.g. ``createAccount`` for a migrating DID).

Spec: atproto.com/specs/xrpc ("Inter-Service Authentication"), checklist §8. Checks, in order: a Bearer
token that parses; ``iss`` a DID (``did#service`` allowed); ``aud`` our service DID (bare or with a
fragment); ``exp`` in the future; ``lxm``, when present, the method called; the signature by the
``#atproto`` key in the issuer's DID document (re-resolved once if it fails, in case the key rotated).
Failures are 401 with the reference's names (``BadJwt``, ``BadJwtAudience``, ``JwtExpired``,
``BadJwtLexiconMethod``, ``BadJwtSignature``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from atstack.core.crypto import InvalidKey, parse_multikey
from atstack.core.syntax import is_valid_did
from atstack.identity import IdentityError
from atstack.pds.jwt import JwtError, parse_jwt, verify_service_jwt_signature
from atstack.xrpc.errors import AuthRequiredError
from atstack.xrpc.request import XRPCRequest

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["verify_service_auth"]


async def verify_service_auth(ctx: PdsContext, req: XRPCRequest, lxm: str) -> str:
    """The issuer DID of a valid service token for method ``lxm``; raises 401 otherwise."""
    header = req.headers.get("Authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token:
        raise AuthRequiredError("missing jwt", "MissingJwt")
    try:
        parsed = parse_jwt(token)
    except JwtError as exc:
        raise AuthRequiredError(f"poorly formatted jwt: {exc}", "BadJwt") from None
    payload = parsed.payload
    iss, aud, exp = payload.get("iss"), payload.get("aud"), payload.get("exp")
    if not isinstance(iss, str) or not is_valid_did(iss.split("#", 1)[0]):
        raise AuthRequiredError("jwt iss is not a DID", "BadJwt")
    service_did = ctx.config.service_did
    if not isinstance(aud, str) or aud.split("#", 1)[0] != service_did:
        raise AuthRequiredError("jwt audience does not match service did", "BadJwtAudience")
    if type(exp) is not int or exp <= int(ctx.clock()):
        raise AuthRequiredError("jwt expired", "JwtExpired")
    token_lxm = payload.get("lxm")
    if token_lxm is not None and token_lxm != lxm:
        raise AuthRequiredError(f"bad jwt lexicon method (lxm): {token_lxm}", "BadJwtLexiconMethod")
    did = iss.split("#", 1)[0]
    for refresh in (False, True):
        try:
            identity = await ctx.did_resolver.resolve(did, refresh=refresh)
        except IdentityError:
            raise AuthRequiredError("could not resolve iss did") from None
        if identity.signing_key is None:
            raise AuthRequiredError("missing or bad key in did doc")
        try:
            key = parse_multikey(identity.signing_key)
        except InvalidKey:
            raise AuthRequiredError("missing or bad key in did doc") from None
        if verify_service_jwt_signature(parsed, key):
            return did
    raise AuthRequiredError("jwt signature does not match jwt issuer", "BadJwtSignature")
