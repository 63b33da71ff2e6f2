"""``com.atproto.sync`` on the relay: requestCrawl, listHosts, getHostStatus, the repo queries, the firehose.

Spec: lexicons ``com.atproto.sync.*``; atproto.com/specs/sync; checklist §6, §8, §10. Answers come from the
relay's own state (accounts and hosts it has seen), not from the hosts:

* ``requestCrawl {hostname}`` — subscribe to a host (400 ``HostBanned`` for a banned one, 400
  ``InvalidRequest`` for a malformed or disallowed name or an unreachable host);
* ``listHosts`` (limit 1–1000, default 200, oldest first, cursor = opaque id) and ``getHostStatus``
  (400 ``HostNotFound``) — ``seq`` is the persisted upstream cursor;
* ``getRepoStatus`` (``{did, active, status?, rev?}``), ``getLatestCommit`` (``{cid, rev}``; inactive repos
  answer ``RepoTakendown``/``RepoSuspended``/``RepoDeactivated``), ``listRepos`` (limit 1–1000, default 500,
  repos with at least one accepted commit, in DID order) and ``listReposByCollection`` (limit 1–2000,
  default 500, active repos with records in the collection) — unknown repos are 400 ``RepoNotFound``;
* ``subscribeRepos`` — the hub over our output log (cursor rules in :mod:`atstack.xrpc.stream`).
"""

from __future__ import annotations

from typing import Any

from atstack.core.syntax import is_valid_did, is_valid_nsid
from atstack.relay.context import RelayContext
from atstack.relay.handlers._params import int_param, str_param
from atstack.relay.host import InvalidHost
from atstack.relay.slurper import HostBanned, HostUnreachable, TooManyNewHosts
from atstack.relay.state import Account
from atstack.relay.store import accounts as account_store
from atstack.relay.store import hosts as host_store
from atstack.xrpc.errors import InvalidRequestError, RateLimitExceededError
from atstack.xrpc.request import XRPCRequest
from atstack.xrpc.server import XRPCRouter

__all__ = ["register"]

_INACTIVE_ERRORS = {
    "takendown": "RepoTakendown",
    "suspended": "RepoSuspended",
    "deactivated": "RepoDeactivated",
}


def _did(req: XRPCRequest) -> str:
    did = str_param(req.params, "did", required=True)
    assert did is not None
    if not is_valid_did(did):
        raise InvalidRequestError(f"invalid DID: {did[:100]!r}")
    return did


def register(router: XRPCRouter, ctx: RelayContext) -> None:
    async def account(did: str) -> Account:
        acc = await ctx.ingest.get_account(did)
        if acc is None:
            raise InvalidRequestError(f"Could not find repo for DID: {did}", "RepoNotFound")
        return acc

    @router.procedure("com.atproto.sync.requestCrawl", input="application/json")
    async def request_crawl(req: XRPCRequest) -> None:
        hostname = req.body.get("hostname") if isinstance(req.body, dict) else None
        if not isinstance(hostname, str):
            raise InvalidRequestError("hostname is required")
        try:
            await ctx.slurper.request_crawl(hostname)
        except InvalidHost as exc:
            raise InvalidRequestError(str(exc)) from None
        except HostBanned:
            raise InvalidRequestError("Host is banned", "HostBanned") from None
        except HostUnreachable as exc:
            raise InvalidRequestError(str(exc)) from None
        except TooManyNewHosts:
            raise RateLimitExceededError("too many new hosts today; try again later") from None

    @router.query("com.atproto.sync.listHosts")
    async def list_hosts(req: XRPCRequest) -> dict[str, Any]:
        limit = int_param(req.params, "limit", 200, 1, 1000)
        cursor = str_param(req.params, "cursor")
        after = 0
        if cursor is not None:
            if not cursor.isdigit():
                raise InvalidRequestError("invalid cursor")
            after = int(cursor)
        rows = await ctx.db.read(lambda conn: host_store.list_hosts_after(conn, after, limit))
        hosts = []
        for row in rows:
            host = ctx.slurper.by_id.get(row.id)
            entry: dict[str, Any] = {"hostname": row.hostname}
            seq = host.cursor if host is not None else row.last_seq
            if seq is not None:
                entry["seq"] = seq
            entry["accountCount"] = host.account_count if host is not None else 0
            entry["status"] = host.reported_status if host is not None else row.status
            hosts.append(entry)
        out: dict[str, Any] = {"hosts": hosts}
        if len(rows) == limit:
            out["cursor"] = str(rows[-1].id)
        return out

    @router.query("com.atproto.sync.getHostStatus")
    async def get_host_status(req: XRPCRequest) -> dict[str, Any]:
        hostname = str_param(req.params, "hostname", required=True)
        assert hostname is not None
        host = ctx.slurper.get(hostname)
        if host is None:
            raise InvalidRequestError(f"Host not found: {hostname}", "HostNotFound")
        out: dict[str, Any] = {"hostname": host.hostname}
        if host.cursor is not None:
            out["seq"] = host.cursor
        out["accountCount"] = host.account_count
        out["status"] = host.reported_status
        return out

    @router.query("com.atproto.sync.getRepoStatus")
    async def get_repo_status(req: XRPCRequest) -> dict[str, Any]:
        acc = await account(_did(req))
        out: dict[str, Any] = {"did": acc.did, "active": acc.active}
        if acc.public_status is not None:
            out["status"] = acc.public_status
        elif acc.rev is not None:
            out["rev"] = acc.rev
        return out

    @router.query("com.atproto.sync.getLatestCommit")
    async def get_latest_commit(req: XRPCRequest) -> dict[str, Any]:
        acc = await account(_did(req))
        status = acc.public_status
        if status is not None:
            name = _INACTIVE_ERRORS.get(status, "RepoInactive")
            raise InvalidRequestError(f"Repo is {status}: {acc.did}", name)
        if acc.rev is None or acc.commit_cid is None:
            raise InvalidRequestError(f"Could not find root for DID: {acc.did}", "RepoNotFound")
        return {"cid": acc.commit_cid.encode(), "rev": acc.rev}

    @router.query("com.atproto.sync.listRepos")
    async def list_repos(req: XRPCRequest) -> dict[str, Any]:
        limit = int_param(req.params, "limit", 500, 1, 1000)
        after = str_param(req.params, "cursor")
        repos: list[dict[str, Any]] = []
        more = True
        # accounts without a commit yet are skipped, so read on until the page is full or rows run out
        while len(repos) < limit and more:
            rows = await ctx.db.read(
                lambda conn, start=after: account_store.list_accounts_after(conn, start, limit)  # type: ignore[misc]
            )
            more = len(rows) == limit
            for row in rows:
                after = row.did
                acc = ctx.ingest.accounts.get(row.did) or Account.from_row(row)
                if acc.rev is None or acc.commit_cid is None:
                    continue
                entry: dict[str, Any] = {
                    "did": acc.did,
                    "head": acc.commit_cid.encode(),
                    "rev": acc.rev,
                    "active": acc.active,
                }
                if acc.public_status is not None:
                    entry["status"] = acc.public_status
                repos.append(entry)
                if len(repos) == limit:
                    break
        out: dict[str, Any] = {"repos": repos}
        if len(repos) == limit and after is not None:
            out["cursor"] = after
        return out

    @router.query("com.atproto.sync.listReposByCollection")
    async def list_repos_by_collection(req: XRPCRequest) -> dict[str, Any]:
        collection = str_param(req.params, "collection", required=True)
        assert collection is not None
        if not is_valid_nsid(collection):
            raise InvalidRequestError(f"invalid collection NSID: {collection[:100]!r}")
        limit = int_param(req.params, "limit", 500, 1, 2000)
        cursor = str_param(req.params, "cursor")
        dids, more = await _repos_in_collection(ctx, collection, cursor, limit)
        out: dict[str, Any] = {"repos": [{"did": did} for did in dids]}
        if more:
            out["cursor"] = dids[-1]
        return out


async def _repos_in_collection(
    ctx: RelayContext, collection: str, cursor: str | None, limit: int
) -> tuple[list[str], bool]:
    """A page of active DIDs with records in ``collection``, and whether more follow. The table holds the
    counts as of the last state checkpoint; the changes since (held by the sequencer) are merged in."""
    pending = ctx.sequencer.pending_records(collection)
    if cursor is not None:
        pending = {did: n for did, n in pending.items() if did > cursor}
    fetch = limit + sum(1 for n in pending.values() if n < 0)  # room for the rows that drop out

    def read(conn: Any) -> tuple[list[str], dict[str, int]]:
        page = account_store.list_by_collection(conn, collection, cursor, fetch)
        return page, account_store.collection_counts(conn, collection, sorted(pending))

    page, counts = await ctx.db.read(read)
    if not pending:
        return page[:limit], len(page) >= limit
    accounts = ctx.ingest.accounts
    present = set(page)
    for did, n in pending.items():
        acc = accounts.get(did)
        if counts.get(did, 0) + n > 0 and (acc is None or acc.active):
            present.add(did)
        else:
            present.discard(did)
    merged = sorted(present)
    if len(page) == fetch:  # the table has more rows past this page: only what sorts before them is known
        merged = [did for did in merged if did <= page[-1]]
        return merged[:limit], True
    return merged[:limit], len(merged) > limit
