"""Helpers shared by the handler modules: account lookup, parameters, rate limits, output shapes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from atstack.core.cid import CID, InvalidCID, parse_cid
from atstack.pds.store import accounts
from atstack.xrpc.errors import InvalidRequestError
from atstack.xrpc.ratelimit import WRITE_POINTS, RateLimiter, RouteRateLimit
from atstack.xrpc.request import XRPCRequest

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = [
    "account_status",
    "auth_did",
    "body_of",
    "find_account",
    "optional_cid",
    "repo_unavailable",
    "write_limits",
]

_WRITE_LIMITERS = "repo_write_limiters"


def body_of(req: XRPCRequest) -> dict[str, Any]:
    """The JSON input in data-model form (CIDs and bytes decoded)."""
    data = req.data_model()
    if not isinstance(data, dict):
        raise InvalidRequestError("Input must be an object")
    return data


def auth_did(req: XRPCRequest) -> str:
    did = getattr(req.auth, "did", None)
    if did is None:
        raise InvalidRequestError("Authentication Required")
    return did  # type: ignore[no-any-return]


def optional_cid(value: Any, name: str) -> CID | None:
    """A CID given as a string (or already a link); None when absent."""
    if value is None:
        return None
    if isinstance(value, CID):
        return value
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} must be a CID string")
    try:
        return parse_cid(value)
    except (InvalidCID, ValueError):
        raise InvalidRequestError(f"{name} is not a valid CID") from None


async def find_account(ctx: PdsContext, repo: str) -> accounts.Account | None:
    """The hosted account named by a DID or a handle (any status).

    A primary-key lookup, so it runs on the event loop's own connection (``Database.read_now``): every
    write and most reads start here, and a reader-thread hop would cost ten times the query.
    """
    ident = repo.lower() if not repo.startswith("did:") else repo
    return ctx.db.read_now(lambda conn: accounts.get_by_identifier(conn, ident))


def account_status(account: accounts.Account) -> tuple[bool, str | None]:
    """``(active, status)`` as ``#account`` and ``getRepoStatus`` report it."""
    return account.status is None, account.status


def repo_unavailable(account: accounts.Account | None, repo: str) -> InvalidRequestError | None:
    """The sync endpoints' error for an inactive or unknown repo (checklist §10), or None."""
    if account is None:
        return InvalidRequestError(f"Could not find repo for DID: {repo}", "RepoNotFound")
    if account.status == "takendown":
        return InvalidRequestError(f"Repo has been takendown: {account.did}", "RepoTakendown")
    if account.status == "suspended":
        return InvalidRequestError(f"Repo has been suspended: {account.did}", "RepoSuspended")
    if account.status is not None:
        return InvalidRequestError(f"Repo has been deactivated: {account.did}", "RepoDeactivated")
    return None


def write_limits(ctx: PdsContext, points: int | Any) -> list[RouteRateLimit]:
    """The per-account repo-write limits (5000 points/hour, 35,000/day, one budget for every write route).

    ``points`` is a number or ``points(request)``; creates cost 3, updates 2, deletes 1 (:data:`WRITE_POINTS`).
    """
    if not ctx.config.rate_limits:
        return []
    limiters = ctx.extras.get(_WRITE_LIMITERS)
    if limiters is None:
        limiters = (RateLimiter("repo-write-hour", 5000, 3600), RateLimiter("repo-write-day", 35000, 86400))
        ctx.extras[_WRITE_LIMITERS] = limiters

    def key(req: XRPCRequest) -> str | None:
        return getattr(req.auth, "did", None)

    return [RouteRateLimit(limiter, key, points) for limiter in limiters]


def points_of_writes(req: XRPCRequest) -> int:
    """Rate-limit points of an ``applyWrites`` body."""
    writes = (req.body or {}).get("writes") if isinstance(req.body, dict) else None
    if not isinstance(writes, list):
        return 1
    total = 0
    for w in writes:
        kind = w.get("$type", "") if isinstance(w, dict) else ""
        action = kind.rsplit("#", 1)[-1] if isinstance(kind, str) else ""
        total += WRITE_POINTS.get(action, 1)
    return max(total, 1)
