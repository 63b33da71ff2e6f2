"""Session tokens and the auth hooks XRPC routes declare (``auth=ctx.auth.access_standard`` …).

Spec: atproto.com/specs/xrpc ("Authentication"), checklist §8; behaviour anchored on the reference PDS's
``auth-verifier``:

* access token: HS256, header ``typ: at+jwt``, claims ``scope`` (``com.atproto.access``, or
  ``com.atproto.appPass[Privileged]`` for app-password sessions), ``sub`` (DID), ``aud`` (our service DID),
  ``iat``, ``exp`` (2 h); refresh token: ``typ: refresh+jwt``, ``scope: com.atproto.refresh``, ``jti``
  (stored, rotated on use), ``exp`` (90 days);
* no ``Authorization`` header → 401 ``AuthMissing``; a header that is not ``<type> <token>`` or of an
  unknown type → 400 ``InvalidToken``; bad signature, wrong ``typ`` (a refresh token used as an access
  token and vice versa), wrong audience → 400 ``InvalidToken`` "Token could not be verified"; expired →
  400 ``ExpiredToken``; a scope the route does not accept (an app password on account management) → 400
  ``InvalidToken`` "Bad token scope";
* status checks where a route asks for them: unknown account → 403 ``AccountNotFound``, taken down → 401
  ``AccountTakedown``, deactivated → 401 ``AccountDeactivated``;
* admin routes: HTTP Basic ``admin:<admin password>``, else 401.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atstack.core.syntax import is_valid_did
from atstack.pds.jwt import JwtError, hs256_sign, parse_jwt, verify_hs256
from atstack.pds.store import accounts
from atstack.xrpc.errors import AuthRequiredError, ForbiddenError, InvalidRequestError
from atstack.xrpc.request import XRPCRequest

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = [
    "ACCESS_FULL",
    "ACCESS_PRIVILEGED",
    "ACCESS_STANDARD",
    "SCOPE_ACCESS",
    "SCOPE_APP_PASS",
    "SCOPE_APP_PASS_PRIVILEGED",
    "SCOPE_REFRESH",
    "AuthHook",
    "AuthVerifier",
    "Credentials",
    "IssuedTokens",
]

SCOPE_ACCESS = "com.atproto.access"
SCOPE_REFRESH = "com.atproto.refresh"
SCOPE_APP_PASS = "com.atproto.appPass"
SCOPE_APP_PASS_PRIVILEGED = "com.atproto.appPassPrivileged"
ACCESS_FULL = frozenset((SCOPE_ACCESS,))
ACCESS_PRIVILEGED = frozenset((SCOPE_ACCESS, SCOPE_APP_PASS_PRIVILEGED))
ACCESS_STANDARD = frozenset((SCOPE_ACCESS, SCOPE_APP_PASS_PRIVILEGED, SCOPE_APP_PASS))
_KNOWN_SCOPES = ACCESS_STANDARD | {SCOPE_REFRESH}
TYP_ACCESS = "at+jwt"
# Decoding and checking a token (base64, JSON, HMAC, claims) is ~40 µs of a write's CPU; a client sends the
# same access token for up to two hours. The cache is dropped whole when full: simple, and still bounded.
_VERIFIED_CACHE_SIZE = 4096
TYP_REFRESH = "refresh+jwt"

AuthHook = Callable[[XRPCRequest], Awaitable["Credentials"]]


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who is calling: ``kind`` is ``access``, ``refresh``, ``admin`` or ``none`` (anonymous)."""

    kind: str
    did: str | None = None
    scope: str | None = None
    token_id: str | None = None  # the refresh token's jti
    account: accounts.Account | None = None  # loaded when the route asked for status checks

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    @property
    def is_app_password(self) -> bool:
        return self.scope in (SCOPE_APP_PASS, SCOPE_APP_PASS_PRIVILEGED)

    def require_did(self) -> str:
        if self.did is None:
            raise AuthRequiredError("Authentication Required", "AuthMissing")
        return self.did


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_jwt: str
    refresh_jwt: str
    refresh_id: str
    refresh_expires_at: int


def _split_authorization(req: XRPCRequest) -> tuple[str, str] | None:
    header = req.headers.get("Authorization")
    if not header:
        return None
    parts = header.split(" ")
    if len(parts) != 2:
        raise InvalidRequestError("Malformed authorization header", "InvalidToken")
    kind = parts[0].lower()
    if kind not in ("bearer", "basic", "dpop"):
        raise InvalidRequestError(f"Unsupported authorization type: {parts[0]}", "InvalidToken")
    return kind, parts[1]


class AuthVerifier:
    """Issues session tokens and builds the auth hooks of the PDS's routes."""

    def __init__(self, ctx: PdsContext) -> None:
        self.ctx = ctx
        self._secret: bytes | None = None
        # token → (typ, payload) of session tokens that passed every check but expiry and scope (see
        # _verify_bearer); these tokens are stateless, so a verified one stays valid until it expires.
        self._verified: dict[str, tuple[str, dict[str, Any]]] = {}

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = self.ctx.config.resolve_jwt_secret().encode()
        return self._secret

    def now(self) -> int:
        return int(self.ctx.clock())

    # --- issuing --------------------------------------------------------------------------------------

    def create_access_token(self, did: str, scope: str = SCOPE_ACCESS) -> str:
        now = self.now()
        payload = {
            "scope": scope,
            "sub": did,
            "aud": self.ctx.config.service_did,
            "iat": now,
            "exp": now + self.ctx.config.access_token_ttl,
        }
        return hs256_sign({"typ": TYP_ACCESS}, payload, self.secret)

    def create_tokens(self, did: str, scope: str = SCOPE_ACCESS, jti: str | None = None) -> IssuedTokens:
        """An access token and a refresh token (its ``jti`` is for the caller to store)."""
        now = self.now()
        jti = jti or base64.b64encode(secrets.token_bytes(32)).decode()
        expires = now + self.ctx.config.refresh_token_ttl
        refresh_payload = {
            "scope": SCOPE_REFRESH,
            "sub": did,
            "aud": self.ctx.config.service_did,
            "jti": jti,
            "iat": now,
            "exp": expires,
        }
        refresh = hs256_sign({"typ": TYP_REFRESH}, refresh_payload, self.secret)
        return IssuedTokens(self.create_access_token(did, scope), refresh, jti, expires)

    # --- verifying ------------------------------------------------------------------------------------

    def _verify_bearer(
        self, req: XRPCRequest, typ: str, scopes: Collection[str], *, allow_expired: bool = False
    ) -> dict[str, Any]:
        parsed_header = _split_authorization(req)
        if parsed_header is None:
            raise AuthRequiredError("Authentication Required", "AuthMissing")
        kind, token = parsed_header
        if kind != "bearer":
            raise InvalidRequestError("Unexpected authorization type", "InvalidToken")
        known = self._verified.get(token)
        if known is not None and known[0] == typ:
            # Verified before: only the checks that depend on the time and on the route remain.
            payload = known[1]
            if not allow_expired and payload["exp"] <= self.now():
                raise InvalidRequestError("Token has expired", "ExpiredToken")
            if payload["scope"] not in scopes:
                raise InvalidRequestError("Bad token scope", "InvalidToken")
            return payload
        try:
            parsed = parse_jwt(token)
        except JwtError:
            raise InvalidRequestError("Token could not be verified", "InvalidToken") from None
        if not verify_hs256(parsed, self.secret) or parsed.header.get("typ") != typ:
            raise InvalidRequestError("Token could not be verified", "InvalidToken")
        payload = parsed.payload
        if payload.get("aud") != self.ctx.config.service_did:
            raise InvalidRequestError("Token could not be verified", "InvalidToken")
        exp = payload.get("exp")
        if type(exp) is not int:
            raise InvalidRequestError("Token could not be verified", "InvalidToken")
        if not allow_expired and exp <= self.now():
            raise InvalidRequestError("Token has expired", "ExpiredToken")
        if "lxm" in payload or "cnf" in payload:
            raise InvalidRequestError("Malformed token", "InvalidToken")
        sub = payload.get("sub")
        if not isinstance(sub, str) or not is_valid_did(sub):
            raise InvalidRequestError("Malformed token", "InvalidToken")
        jti = payload.get("jti")
        if jti is not None and not isinstance(jti, str):
            raise InvalidRequestError("Malformed token", "InvalidToken")
        scope = payload.get("scope")
        if scope not in _KNOWN_SCOPES or scope not in scopes:
            raise InvalidRequestError("Bad token scope", "InvalidToken")
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (typ, payload)
        return payload

    async def _check_status(self, did: str, *, takedown: bool, deactivated: bool) -> accounts.Account:
        account = self.ctx.db.read_now(lambda conn: accounts.get_account(conn, did))  # a key lookup
        if account is None:
            raise ForbiddenError("Account not found", "AccountNotFound")
        if takedown and account.status == "takendown":
            raise AuthRequiredError("Account has been taken down", "AccountTakedown")
        if deactivated and account.status is not None and account.status != "takendown":
            raise AuthRequiredError("Account is deactivated", "AccountDeactivated")
        return account

    def access(
        self,
        scopes: Collection[str] = ACCESS_STANDARD,
        *,
        check_takedown: bool = False,
        check_deactivated: bool = False,
    ) -> AuthHook:
        """A hook accepting access tokens with one of ``scopes`` (optionally checking the account's status)."""
        allowed = frozenset(scopes)

        async def hook(req: XRPCRequest) -> Credentials:
            payload = self._verify_bearer(req, TYP_ACCESS, allowed)
            did = payload["sub"]
            account = None
            if check_takedown or check_deactivated:
                account = await self._check_status(
                    did, takedown=check_takedown, deactivated=check_deactivated
                )
            return Credentials("access", did, payload["scope"], account=account)

        return hook

    def refresh(self, *, allow_expired: bool = False) -> AuthHook:
        async def hook(req: XRPCRequest) -> Credentials:
            payload = self._verify_bearer(req, TYP_REFRESH, (SCOPE_REFRESH,), allow_expired=allow_expired)
            jti = payload.get("jti")
            if not jti:
                raise AuthRequiredError("Unexpected missing refresh token id", "MissingTokenId")
            return Credentials("refresh", payload["sub"], SCOPE_REFRESH, token_id=jti)

        return hook

    def check_admin(self, req: XRPCRequest) -> bool:
        """True for valid ``Basic admin:<password>``; False when the header is absent or not Basic."""
        parsed = _split_authorization(req)
        if parsed is None or parsed[0] != "basic":
            return False
        try:
            user, _, password = base64.b64decode(parsed[1], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthRequiredError() from None
        expected = self.ctx.config.admin_password
        if user != "admin" or not expected or not hmac.compare_digest(password.encode(), expected.encode()):
            raise AuthRequiredError()
        return True

    async def admin(self, req: XRPCRequest) -> Credentials:
        if not self.check_admin(req):
            raise AuthRequiredError()
        return Credentials("admin")

    async def unauthenticated(self, req: XRPCRequest) -> Credentials:
        if req.headers.get("Authorization"):
            raise AuthRequiredError("Invalid authorization header")
        return Credentials("none")

    async def optional_access_or_admin(self, req: XRPCRequest) -> Credentials:
        """Anonymous, an access token (standard scopes) or the admin: the sync endpoints' auth."""
        parsed = _split_authorization(req)
        if parsed is None:
            return Credentials("none")
        if parsed[0] == "basic":
            self.check_admin(req)
            return Credentials("admin")
        payload = self._verify_bearer(req, TYP_ACCESS, ACCESS_STANDARD)
        return Credentials("access", payload["sub"], payload["scope"])

    # the hooks most routes use
    @property
    def access_standard(self) -> AuthHook:
        return self.access(ACCESS_STANDARD)

    @property
    def access_full(self) -> AuthHook:
        return self.access(ACCESS_FULL)

    @property
    def access_privileged(self) -> AuthHook:
        return self.access(ACCESS_PRIVILEGED)
