"""Blobs: ``com.atproto.repo.uploadBlob``, ``listMissingBlobs``, ``com.atproto.sync.getBlob``, ``listBlobs``.

Spec: atproto.com/specs/blob, /sync; checklist §10–§11; behaviour anchored on the reference PDS:

* ``uploadBlob`` (any ``Content-Type``, access token, taken-down accounts refused, deactivated ones allowed
  so a migrating account can upload) streams the body to a temporary file (:mod:`atstack.pds.blob_upload`)
  and answers ``{"blob": {"$type": "blob", "ref": {"$link"}, "mimeType", "size"}}``. The blob stays
  temporary — not listed, not downloadable — until a committed record references it
  (:mod:`atstack.pds.repo_writer`); unreferenced uploads are collected by :mod:`atstack.pds.blob_gc`. A
  blob some record already references (an imported repo) becomes permanent at once. Re-uploading a
  taken-down blob is refused;
* ``getBlob?did&cid`` serves a permanent, not taken-down blob of an available repo (owner and admin may
  read an inactive one) with its stored ``Content-Type``, ``Content-Length``,
  ``Content-Security-Policy: default-src 'none'; sandbox``, ``X-Content-Type-Options: nosniff`` and
  ``Content-Disposition: attachment`` (the file is sent with ``sendfile``; ranges work); anything else is
  400 ``BlobNotFound``;
* ``listBlobs?did&since&cursor&limit`` pages the permanent blobs in CID order (limit 1–1000, default 500;
  ``since`` = only blobs of records written after that rev);
* ``listMissingBlobs`` (the caller's own account) pages blobs records reference but the PDS lacks —
  what a migration still has to upload.

The collector's background loop (:func:`atstack.pds.blob_gc.start_blob_gc`) is started by the first upload
if the app has not started it already, and stopped with the app.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING, Any

from aiohttp import web

from atstack.core.cid import CID, CODEC_RAW, InvalidCID, parse_cid
from atstack.pds.auth import ACCESS_STANDARD, Credentials
from atstack.pds.blob_gc import blob_gc
from atstack.pds.blob_upload import ReceivedBlob, receive_blob
from atstack.pds.handlers._params import int_param
from atstack.pds.handlers._util import auth_did, repo_unavailable
from atstack.pds.store import accounts, blob_maintenance, blobs, iso_time
from atstack.pds.store.blobs import BlobRow
from atstack.xrpc.errors import InvalidRequestError
from atstack.xrpc.ratelimit import RateLimiter, RouteRateLimit
from atstack.xrpc.request import XRPCRequest
from atstack.xrpc.server import XRPCRouter

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["BLOB_SECURITY_HEADERS", "register"]

BLOB_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
UPLOADS_PER_DAY = 1000  # the reference's per-account upload rate limit


def _blob_cid(value: Any, name: str = "cid") -> CID:
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} is required")
    try:
        return parse_cid(value)
    except (InvalidCID, ValueError):
        raise InvalidRequestError(f"{name} is not a valid CID") from None


def _blob_not_found() -> InvalidRequestError:
    return InvalidRequestError("Blob not found", "BlobNotFound")


def register(router: XRPCRouter, ctx: PdsContext) -> None:
    auth = ctx.auth
    config = ctx.config
    gc = blob_gc(ctx)
    router.add_shutdown_hook(gc.stop)

    async def readable_account(req: XRPCRequest, did: Any) -> accounts.Account:
        if not isinstance(did, str):
            raise InvalidRequestError("did is required")
        account = await ctx.db.read(lambda conn: accounts.get_account(conn, did))
        creds: Credentials = req.auth
        problem = repo_unavailable(account, did)
        if problem is not None and not (account is not None and (creds.is_admin or creds.did == account.did)):
            raise problem
        assert account is not None
        return account

    # --- upload ---------------------------------------------------------------------------------------

    upload_limits = (
        [RouteRateLimit(RateLimiter("upload-blob", UPLOADS_PER_DAY, 86400), lambda r: r.auth.did)]
        if config.rate_limits
        else []
    )

    @router.procedure(
        "com.atproto.repo.uploadBlob",
        auth=auth.access(ACCESS_STANDARD, check_takedown=True),
        input="*/*",
        stream_input=True,
        max_body=config.blob_upload_limit,
        rate_limits=upload_limits,
    )
    async def upload_blob(req: XRPCRequest) -> dict[str, Any]:
        did = auth_did(req)
        gc.start()  # the collector only has work once uploads exist (a no-op when already running)
        received = await receive_blob(ctx, req)
        try:
            row = await _track_upload(ctx, did, received)
        except BaseException:
            await asyncio.to_thread(ctx.blobs.delete_temp, received.temp_key)
            raise
        return {
            "blob": {"$type": "blob", "ref": row.cid, "mimeType": row.mime_type, "size": row.size},
        }

    # --- reads ----------------------------------------------------------------------------------------

    @router.query("com.atproto.sync.getBlob", auth=auth.optional_access_or_admin)
    async def get_blob(req: XRPCRequest) -> web.StreamResponse:
        account = await readable_account(req, req.params.get("did"))
        cid = _blob_cid(req.params.get("cid"))
        did = account.did
        row = await ctx.db.read(lambda conn: blobs.get_blob(conn, did, cid))
        if row is None or row.temp_key is not None or row.takedown_ref is not None:
            raise _blob_not_found()
        path = ctx.blobs.path(did, cid)
        if not await asyncio.to_thread(path.is_file):
            raise _blob_not_found()
        headers = {
            "Content-Type": row.mime_type or "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{cid.encode()}"',
            **BLOB_SECURITY_HEADERS,
            **req.response_headers,
        }
        return web.FileResponse(path, headers=headers)

    @router.query("com.atproto.sync.listBlobs", auth=auth.optional_access_or_admin)
    async def list_blobs(req: XRPCRequest) -> dict[str, Any]:
        account = await readable_account(req, req.params.get("did"))
        limit = int_param(req, "limit", 500, 1, 1000)
        raw_cursor = req.params.get("cursor")
        cursor = _blob_cid(raw_cursor, "cursor") if raw_cursor else None
        since = req.params.get("since")
        if since is not None and not isinstance(since, str):
            raise InvalidRequestError("since must be a revision string")
        did = account.did
        cids = await ctx.db.read(
            lambda conn: blobs.list_blobs(conn, did, cursor=cursor, limit=limit, since_rev=since or None)
        )
        out: dict[str, Any] = {"cids": [c.encode() for c in cids]}
        if len(cids) == limit:
            out["cursor"] = cids[-1].encode()
        return out

    @router.query("com.atproto.repo.listMissingBlobs", auth=auth.access_standard)
    async def list_missing_blobs(req: XRPCRequest) -> dict[str, Any]:
        did = auth_did(req)
        limit = int_param(req, "limit", 500, 1, 1000)
        raw_cursor = req.params.get("cursor")
        cursor = _blob_cid(raw_cursor, "cursor") if raw_cursor else None
        rows = await ctx.db.read(lambda conn: blob_maintenance.list_missing_blobs(conn, did, cursor, limit))
        out: dict[str, Any] = {
            "blobs": [{"cid": cid.encode(), "recordUri": f"at://{did}/{path}"} for cid, path in rows]
        }
        if len(rows) == limit:
            out["cursor"] = rows[-1][0].encode()
        return out


async def _track_upload(ctx: PdsContext, did: str, received: ReceivedBlob) -> BlobRow:
    """Record the upload's row; a blob records already reference is made permanent right away.

    Runs under the account's repo write lock, so a record write never sees the row half-updated.
    """
    cid = received.cid
    assert cid.cid_bytes[1] == CODEC_RAW
    now = iso_time(ctx.clock())
    async with ctx.repo.lock(did):

        def track(conn: sqlite3.Connection) -> tuple[BlobRow | None, BlobRow, bool]:
            before = blobs.get_blob(conn, did, cid)
            if before is not None and before.takedown_ref is not None:
                raise InvalidRequestError("Blob has been takendown, cannot re-upload")
            row = blobs.insert_blob(conn, did, cid, received.mime_type, received.size, received.temp_key, now)
            if row.temp_key is not None:
                blob_maintenance.touch_temp_blob(conn, did, cid, now)
            return before, row, row.temp_key is not None and blob_maintenance.is_referenced(conn, did, cid)

        before, row, referenced = await ctx.db.execute_write(track)
        superseded = before.temp_key if before is not None else None
        if row.temp_key is None:
            # already permanent: this upload's bytes are the same blob, its file is not needed
            superseded = received.temp_key
        if superseded is not None and superseded != row.temp_key:
            await asyncio.to_thread(ctx.blobs.delete_temp, superseded)
        if referenced:
            await asyncio.to_thread(ctx.blobs.make_permanent, did, cid, row.temp_key)
            await ctx.db.execute_write(lambda conn: blobs.make_permanent(conn, did, cid))
            found = await ctx.db.read(lambda conn: blobs.get_blob(conn, did, cid))
            assert found is not None
            row = found
    return row
