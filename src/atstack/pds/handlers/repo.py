"""``com.atproto.repo``: createRecord, putRecord, deleteRecord, applyWrites, getRecord, listRecords,
describeRepo, importRepo. (Blob upload and ``listMissingBlobs`` live with the blob handlers.)

Spec: atproto.com/specs/repository, /lexicon, /xrpc; checklist §4, §8, §10; behaviour anchored on the
reference PDS:

* writes need an access token (app passwords allowed) for the account named by ``repo`` (DID or handle);
  a taken-down or deactivated account gets 401 ``AccountTakedown``/``AccountDeactivated``; another
  account's repo gets 401; writes are rate-limited per account in points (create 3, update 2, delete 1);
* output ``{uri, cid, commit: {cid, rev}, validationStatus}``; ``putRecord`` of identical content and
  ``deleteRecord`` of a missing record change nothing and omit ``commit``;
* ``applyWrites`` takes at most 200 writes and applies all or none;
* reads of an inactive or unknown account's records answer as the reference does ("Could not locate
  record" / "Could not find repo"); a record the admin took down (``updateSubjectStatus`` with a
  ``strongRef``) is 400 ``RecordNotFound`` on ``getRecord`` and left out of ``listRecords`` until restored.

Record preparation is :mod:`atstack.pds.records`; the write path is :mod:`atstack.pds.repo_writer`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cbrrr

from atstack.core.car import MAX_CAR_SIZE
from atstack.core.repo_verify import RepoVerifyError
from atstack.pds.auth import ACCESS_FULL
from atstack.pds.handlers._util import (
    auth_did,
    body_of,
    find_account,
    optional_cid,
    points_of_writes,
    repo_unavailable,
    write_limits,
)
from atstack.pds.records import UNSET, PreparedWrite, prepare_delete, prepare_record
from atstack.pds.repo_writer import WriteOutcome
from atstack.pds.store import accounts
from atstack.pds.store import repo as repo_store
from atstack.xrpc.errors import AuthRequiredError, ForbiddenError, InvalidRequestError
from atstack.xrpc.request import XRPCRequest
from atstack.xrpc.server import XRPCRouter

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["WRITE_JSON_LIMIT", "register"]

WRITE_JSON_LIMIT = 1_000_000  # the reference's JSON limit for record writes
MAX_WRITES = 200
_APPLY = "com.atproto.repo.applyWrites"


def _validate_flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise InvalidRequestError("validate must be a boolean")


def _commit_json(outcome: WriteOutcome) -> dict[str, str] | None:
    if outcome.commit is None:
        return None
    return {"cid": outcome.commit.cid.encode(), "rev": outcome.commit.rev}


def _record_value(block: bytes) -> Any:
    return cbrrr.decode_dag_cbor(block, atjson_mode=True)


def register(router: XRPCRouter, ctx: PdsContext) -> None:
    auth = ctx.auth
    write_auth = auth.access_standard
    json_limit = max(ctx.config.json_limit, WRITE_JSON_LIMIT)

    async def writer_account(req: XRPCRequest, repo: Any) -> accounts.Account:
        if not isinstance(repo, str):
            raise InvalidRequestError("repo is required")
        account = await find_account(ctx, repo)
        if account is None:
            raise ForbiddenError("Account not found", "AccountNotFound")
        if account.status == "takendown":
            raise AuthRequiredError("Account has been taken down", "AccountTakedown")
        if account.status is not None:
            raise AuthRequiredError("Account is deactivated", "AccountDeactivated")
        if account.did != auth_did(req):
            raise AuthRequiredError()
        return account

    def result(did: str, write: PreparedWrite, outcome: WriteOutcome) -> dict[str, Any]:
        out: dict[str, Any] = {"uri": write.uri(did), "cid": write.cid.encode() if write.cid else None}
        commit = _commit_json(outcome)
        if commit is not None:
            out["commit"] = commit
        if write.validation_status is not None:
            out["validationStatus"] = write.validation_status
        return out

    @router.procedure(
        "com.atproto.repo.createRecord",
        auth=write_auth,
        max_body=json_limit,
        rate_limits=write_limits(ctx, 3),
    )
    async def create_record(req: XRPCRequest) -> dict[str, Any]:
        body = body_of(req)
        account = await writer_account(req, body.get("repo"))
        validate = _validate_flag(body.get("validate"))
        write = prepare_record(
            ctx.lexicons, "create", body.get("collection"), body.get("rkey"), body.get("record"), validate
        )
        swap_commit = optional_cid(body.get("swapCommit"), "swapCommit")
        outcome = await ctx.repo.apply(account.did, account.signing_key, [write], swap_commit=swap_commit)
        return result(account.did, write, outcome)

    @router.procedure(
        "com.atproto.repo.putRecord", auth=write_auth, max_body=json_limit, rate_limits=write_limits(ctx, 2)
    )
    async def put_record(req: XRPCRequest) -> dict[str, Any]:
        body = body_of(req)
        account = await writer_account(req, body.get("repo"))
        did = account.did
        validate = _validate_flag(body.get("validate"))
        collection, rkey = body.get("collection"), body.get("rkey")
        if rkey is None:
            raise InvalidRequestError("rkey is required")
        swap = UNSET
        if "swapRecord" in body:
            swap = optional_cid(body["swapRecord"], "swapRecord")
        swap_commit = optional_cid(body.get("swapCommit"), "swapCommit")
        write = prepare_record(ctx.lexicons, "update", collection, rkey, body.get("record"), validate, swap)
        current = ctx.db.read_now(lambda conn: repo_store.get_record(conn, did, write.collection, write.rkey))
        if current is None:
            write.action = "create"
        elif current[0] == write.cid:
            # identical content: nothing to commit (checked before any swap, as the reference does)
            return result(did, write, WriteOutcome(None, [write]))
        try:
            outcome = await ctx.repo.apply(did, account.signing_key, [write], swap_commit=swap_commit)
        except InvalidRequestError as exc:
            if exc.error != "InvalidRequest" or "already exists" not in exc.message:
                raise
            # created concurrently between the check and the write: it is an update after all
            write.action = "update"
            outcome = await ctx.repo.apply(did, account.signing_key, [write], swap_commit=swap_commit)
        return result(did, write, outcome)

    @router.procedure(
        "com.atproto.repo.deleteRecord",
        auth=write_auth,
        max_body=json_limit,
        rate_limits=write_limits(ctx, 1),
    )
    async def delete_record(req: XRPCRequest) -> dict[str, Any]:
        body = body_of(req)
        account = await writer_account(req, body.get("repo"))
        did = account.did
        swap = UNSET
        if body.get("swapRecord") is not None:
            swap = optional_cid(body["swapRecord"], "swapRecord")
        write = prepare_delete(body.get("collection"), body.get("rkey"), swap)
        swap_commit = optional_cid(body.get("swapCommit"), "swapCommit")
        current = ctx.db.read_now(lambda conn: repo_store.get_record(conn, did, write.collection, write.rkey))
        if current is None:
            return {}  # nothing to delete: no commit, as the reference answers
        try:
            outcome = await ctx.repo.apply(did, account.signing_key, [write], swap_commit=swap_commit)
        except InvalidRequestError as exc:
            if exc.error == "InvalidRequest" and "no record at" in exc.message:
                return {}  # deleted concurrently
            raise
        commit = _commit_json(outcome)
        return {"commit": commit} if commit else {}

    @router.procedure(
        _APPLY, auth=write_auth, max_body=json_limit, rate_limits=write_limits(ctx, points_of_writes)
    )
    async def apply_writes(req: XRPCRequest) -> dict[str, Any]:
        body = body_of(req)
        account = await writer_account(req, body.get("repo"))
        validate = _validate_flag(body.get("validate"))
        raw = body.get("writes")
        if not isinstance(raw, list):
            raise InvalidRequestError("writes must be an array")
        if len(raw) > MAX_WRITES:
            raise InvalidRequestError(f"Too many writes. Max: {MAX_WRITES}")
        writes: list[PreparedWrite] = []
        for item in raw:
            if not isinstance(item, dict):
                raise InvalidRequestError("each write must be an object")
            kind = item.get("$type")
            if kind == f"{_APPLY}#create":
                w = prepare_record(
                    ctx.lexicons,
                    "create",
                    item.get("collection"),
                    item.get("rkey"),
                    item.get("value"),
                    validate,
                )
            elif kind == f"{_APPLY}#update":
                w = prepare_record(
                    ctx.lexicons,
                    "update",
                    item.get("collection"),
                    item.get("rkey"),
                    item.get("value"),
                    validate,
                )
            elif kind == f"{_APPLY}#delete":
                w = prepare_delete(item.get("collection"), item.get("rkey"))
            else:
                raise InvalidRequestError(f"Action not supported: {kind}")
            writes.append(w)
        swap_commit = optional_cid(body.get("swapCommit"), "swapCommit")
        outcome = await ctx.repo.apply(account.did, account.signing_key, writes, swap_commit=swap_commit)
        results: list[dict[str, Any]] = []
        for w in writes:
            if w.action == "delete":
                results.append({"$type": f"{_APPLY}#deleteResult"})
                continue
            entry: dict[str, Any] = {"$type": f"{_APPLY}#{w.action}Result", "uri": w.uri(account.did)}
            entry["cid"] = w.cid.encode() if w.cid else None
            if w.validation_status is not None:
                entry["validationStatus"] = w.validation_status
            results.append(entry)
        return {"commit": _commit_json(outcome), "results": results}

    # --- reads ----------------------------------------------------------------------------------------

    @router.query("com.atproto.repo.getRecord")
    async def get_record(req: XRPCRequest) -> dict[str, Any]:
        p = req.params
        repo, collection, rkey = p.get("repo"), p.get("collection"), p.get("rkey")
        if not all(isinstance(v, str) for v in (repo, collection, rkey)):
            raise InvalidRequestError("repo, collection and rkey are required")
        account = await find_account(ctx, repo)
        if account is None or account.status is not None:
            raise InvalidRequestError("Could not locate record")
        did = account.did
        uri = f"at://{did}/{collection}/{rkey}"
        # two primary-key lookups: cheaper on this thread than a hop to a reader thread
        found = ctx.db.read_now(
            lambda conn: repo_store.get_record(conn, did, collection, rkey, include_taken_down=False)
        )
        want = optional_cid(p.get("cid"), "cid")
        if found is None or (want is not None and found[0] != want):
            raise InvalidRequestError(f"Could not locate record: {uri}", "RecordNotFound")
        return {"uri": uri, "cid": found[0].encode(), "value": _record_value(found[1])}

    @router.query("com.atproto.repo.listRecords")
    async def list_records(req: XRPCRequest) -> dict[str, Any]:
        p = req.params
        repo, collection = p.get("repo"), p.get("collection")
        if not isinstance(repo, str) or not isinstance(collection, str):
            raise InvalidRequestError("repo and collection are required")
        limit = int(p.get("limit", 50))
        if not 1 <= limit <= 100:
            raise InvalidRequestError("limit must be between 1 and 100")
        reverse = p.get("reverse", False) in (True, "true")
        cursor = p.get("cursor")
        account = await find_account(ctx, repo)
        if account is None or account.status is not None:
            raise InvalidRequestError(f"Could not find repo: {repo}")
        did = account.did
        rows = await ctx.db.read(
            lambda conn: repo_store.list_records(
                conn,
                did,
                collection,
                limit=limit,
                cursor=cursor if isinstance(cursor, str) else None,
                reverse=reverse,
            )
        )
        out: dict[str, Any] = {
            "records": [
                {
                    "uri": f"at://{did}/{collection}/{rkey}",
                    "cid": cbrrr.CID(cid).encode(),
                    "value": _record_value(block),
                }
                for rkey, cid, block in rows
            ]
        }
        if len(rows) == limit:
            out["cursor"] = rows[-1][0]
        return out

    @router.query("com.atproto.repo.describeRepo")
    async def describe_repo(req: XRPCRequest) -> dict[str, Any]:
        repo = req.params.get("repo")
        if not isinstance(repo, str):
            raise InvalidRequestError("repo is required")
        account = await find_account(ctx, repo)
        problem = repo_unavailable(account, repo)
        if problem is not None:
            raise problem
        assert account is not None
        did = account.did
        collections = await ctx.db.read(lambda conn: repo_store.collections(conn, did))
        doc = await ctx.accounts.resolve_did_doc(did)
        if doc is None:
            raise InvalidRequestError(f"Could not resolve DID: {did}")
        aka = doc.get("alsoKnownAs") or []
        handle = account.handle or "handle.invalid"
        return {
            "handle": handle,
            "did": did,
            "didDoc": doc,
            "collections": collections,
            "handleIsCorrect": f"at://{handle}" in aka,
        }

    @router.procedure(
        "com.atproto.repo.importRepo",
        auth=auth.access(ACCESS_FULL, check_takedown=True),
        input="application/vnd.ipld.car",
        max_body=MAX_CAR_SIZE,
    )
    async def import_repo(req: XRPCRequest) -> None:
        did = auth_did(req)
        account = await ctx.db.read(lambda conn: accounts.get_account(conn, did))
        if account is None:
            raise InvalidRequestError("Account not found", "AccountNotFound")
        data = req.body if isinstance(req.body, bytes) else await req.read_body()
        try:
            await ctx.repo.import_car(did, account.signing_key, data, active=account.status is None)
        except RepoVerifyError as exc:
            raise InvalidRequestError(f"Invalid repo CAR: {exc}") from None
