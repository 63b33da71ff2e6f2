"""``com.atproto.sync``: getRepo, getRecord, getBlocks, getLatestCommit, getRepoStatus, listRepos,
listReposByCollection and the ``subscribeRepos`` firehose. (Blob reads live with the blob handlers.)

Spec: atproto.com/specs/sync, /repository ("CAR File Serialization"), /event-stream; checklist §4–§6, §10.
Behaviour anchored on the reference PDS:

* an unknown repo is 400 ``RepoNotFound``; an inactive one ``RepoTakendown``/``RepoSuspended``/
  ``RepoDeactivated`` — except for its owner (access token) or the admin (Basic auth), who may still read;
* ``getRepo`` answers a CAR (``application/vnd.ipld.car``) rooted at the current commit: the whole repo in
  the preferred order (commit, then MST pre-order with records interleaved), or with ``since`` only the
  blocks written by commits after that rev; ``getRecord`` answers the record's inclusion (or absence)
  proof as a CAR — a record the admin took down is 400 ``RecordNotFound`` to anyone but the admin, as
  ``repo.getRecord`` answers (the whole-repo exports still carry its block: the repo stays verifiable);
  ``getBlocks`` the requested blocks (all must exist);
* ``listRepos`` pages by DID (limit 1–1000, default 500) with each repo's head, rev and status;
* ``subscribeRepos`` is served by the event hub from the sequencer's log (cursor rules in
  :mod:`atstack.xrpc.stream`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from atstack.core.blockstore import MissingBlock
from atstack.core.car import car_block, car_header, iter_repo_car
from atstack.core.cid import CID
from atstack.core.repo import Repo
from atstack.pds.auth import Credentials
from atstack.pds.handlers._util import optional_cid, repo_unavailable
from atstack.pds.repo_writer import DbBlockStore
from atstack.pds.store import account_admin, accounts
from atstack.pds.store import repo as repo_store
from atstack.xrpc.errors import InvalidRequestError
from atstack.xrpc.request import XRPCRequest, XRPCResponse
from atstack.xrpc.server import XRPCRouter

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["CAR_TYPE", "register"]

CAR_TYPE = "application/vnd.ipld.car"
_CHUNK = 64 * 1024


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    """Coalesce many small CAR pieces into ~64 KiB writes."""
    buf: list[bytes] = []
    size = 0
    for part in parts:
        buf.append(part)
        size += len(part)
        if size >= _CHUNK:
            yield b"".join(buf)
            buf, size = [], 0
    if buf:
        yield b"".join(buf)


def register(router: XRPCRouter, ctx: PdsContext) -> None:
    auth = ctx.auth

    async def readable_account(req: XRPCRequest, did: Any) -> accounts.Account:
        """The hosted account ``did``, available to this caller (owner and admin see inactive repos)."""
        if not isinstance(did, str):
            raise InvalidRequestError("did is required")
        account = await ctx.db.read(lambda conn: accounts.get_account(conn, did))
        creds: Credentials = req.auth
        privileged = account is not None and (creds.is_admin or creds.did == account.did)
        problem = repo_unavailable(account, did)
        if problem is not None and not (privileged and account is not None):
            raise problem
        assert account is not None
        return account

    @router.query("com.atproto.sync.getRepo", auth=auth.optional_access_or_admin)
    async def get_repo(req: XRPCRequest) -> XRPCResponse:
        account = await readable_account(req, req.params.get("did"))
        did = account.did
        since = req.params.get("since")

        def export(conn: sqlite3.Connection) -> list[bytes]:
            head = repo_store.get_root(conn, did)
            if head is None:
                raise InvalidRequestError(f"Could not find repo for DID: {did}", "RepoNotFound")
            if since is None:
                return list(iter_repo_car(DbBlockStore(conn, did), head[0]))
            parts = [car_header([head[0]])]
            parts.extend(car_block(cid, block) for cid, block in repo_store.blocks_since(conn, did, since))
            return parts

        try:
            parts = await ctx.db.read(export)
        except MissingBlock as exc:
            raise InvalidRequestError(f"Repo is incomplete: {exc}") from None
        return XRPCResponse(_chunks(parts), CAR_TYPE)

    @router.query("com.atproto.sync.getRecord", auth=auth.optional_access_or_admin)
    async def get_record(req: XRPCRequest) -> XRPCResponse:
        account = await readable_account(req, req.params.get("did"))
        did = account.did
        collection, rkey = req.params.get("collection"), req.params.get("rkey")
        if not isinstance(collection, str) or not isinstance(rkey, str):
            raise InvalidRequestError("collection and rkey are required")

        admin = req.auth.is_admin

        def proof(conn: sqlite3.Connection) -> bytes | None:
            head = repo_store.get_root(conn, did)
            if head is None:
                return None
            if not admin:
                state = account_admin.get_record_takedown(conn, did, collection, rkey)
                if state is not None and state[1] is not None:
                    return None  # taken down: served to the admin only
            repo = Repo.load(DbBlockStore(conn, did), head[0])
            if repo.get_record_cid(collection, rkey) is None:
                return None
            return repo.record_proof_car(collection, rkey)

        car = await ctx.db.read(proof)
        if car is None:
            raise InvalidRequestError(
                f"Could not locate record: at://{did}/{collection}/{rkey}", "RecordNotFound"
            )
        return XRPCResponse(car, CAR_TYPE)

    @router.query("com.atproto.sync.getBlocks", auth=auth.optional_access_or_admin)
    async def get_blocks(req: XRPCRequest) -> XRPCResponse:
        account = await readable_account(req, req.params.get("did"))
        raw = req.params.get("cids") or []
        if isinstance(raw, str):
            raw = [raw]
        cids: list[CID] = []
        for value in raw:
            cid = optional_cid(value, "cids")
            if cid is not None:
                cids.append(cid)
        did = account.did
        found = await ctx.db.read(lambda conn: repo_store.get_blocks(conn, did, cids))
        missing = [c.encode() for c in cids if c not in found]
        if missing:
            raise InvalidRequestError(f"Could not find cids: {', '.join(missing[:20])}", "BlockNotFound")
        parts = [car_header([])] + [car_block(c, b) for c, b in found.items()]
        return XRPCResponse(b"".join(parts), CAR_TYPE)

    @router.query("com.atproto.sync.getLatestCommit", auth=auth.optional_access_or_admin)
    async def get_latest_commit(req: XRPCRequest) -> dict[str, Any]:
        account = await readable_account(req, req.params.get("did"))
        did = account.did
        head = await ctx.db.read(lambda conn: repo_store.get_root(conn, did))
        if head is None:
            raise InvalidRequestError(f"Could not find root for DID: {did}", "RepoNotFound")
        return {"cid": head[0].encode(), "rev": head[1]}

    @router.query("com.atproto.sync.getRepoStatus")
    async def get_repo_status(req: XRPCRequest) -> dict[str, Any]:
        did = req.params.get("did")
        if not isinstance(did, str):
            raise InvalidRequestError("did is required")

        def read(conn: sqlite3.Connection) -> tuple[accounts.Account | None, Any]:
            return accounts.get_account(conn, did), repo_store.get_root(conn, did)

        account, head = await ctx.db.read(read)
        if account is None:
            raise InvalidRequestError(f"Could not find repo for DID: {did}", "RepoNotFound")
        out: dict[str, Any] = {"did": did, "active": account.status is None}
        if account.status is not None:
            out["status"] = account.status
        elif head is not None:
            out["rev"] = head[1]
        return out

    @router.query("com.atproto.sync.listRepos")
    async def list_repos(req: XRPCRequest) -> dict[str, Any]:
        limit = int(req.params.get("limit", 500))
        if not 1 <= limit <= 1000:
            raise InvalidRequestError("limit must be between 1 and 1000")
        cursor = req.params.get("cursor")
        rows = await ctx.db.read(
            lambda conn: accounts.list_accounts_after(
                conn, cursor if isinstance(cursor, str) else None, limit
            )
        )
        repos: list[dict[str, Any]] = []
        for account, head_cid, rev in rows:
            if head_cid is None or rev is None:
                continue
            entry: dict[str, Any] = {
                "did": account.did,
                "head": CID(head_cid).encode(),
                "rev": rev,
                "active": account.status is None,
            }
            if account.status is not None:
                entry["status"] = account.status
            repos.append(entry)
        out: dict[str, Any] = {"repos": repos}
        if len(rows) == limit:
            out["cursor"] = rows[-1][0].did
        return out

    @router.query("com.atproto.sync.listReposByCollection")
    async def list_repos_by_collection(req: XRPCRequest) -> dict[str, Any]:
        collection = req.params.get("collection")
        if not isinstance(collection, str):
            raise InvalidRequestError("collection is required")
        limit = int(req.params.get("limit", 500))
        if not 1 <= limit <= 2000:
            raise InvalidRequestError("limit must be between 1 and 2000")
        cursor = req.params.get("cursor")

        def read(conn: sqlite3.Connection) -> tuple[list[str], list[str]]:
            dids = repo_store.repos_with_collection(
                conn, collection, cursor if isinstance(cursor, str) else None, limit
            )
            active = [
                d for d in dids if (a := accounts.get_account(conn, d)) is not None and a.status is None
            ]
            return dids, active

        dids, active = await ctx.db.read(read)
        out: dict[str, Any] = {"repos": [{"did": d} for d in active]}
        if len(dids) == limit:
            out["cursor"] = dids[-1]
        return out

    @router.subscription("com.atproto.sync.subscribeRepos")
    async def subscribe_repos(req: XRPCRequest) -> Any:
        return await ctx.hub.serve(req)

    async def close_streams() -> None:
        if ctx.started:
            await ctx.hub.close_all()

    router.add_shutdown_hook(close_streams)
