"""Blobs over HTTP: upload (temporary until referenced), getBlob with its security headers, listBlobs,
limits and refused bodies that store nothing, listMissingBlobs after an import, and garbage collection."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
from pds_extras import blob_json, png, upload
from pds_support import Clock, Pds, start_pds

from atstack.core.cid import cid_for_raw, parse_cid
from atstack.pds.blob_gc import DEFAULT_TEMP_TTL, blob_gc
from atstack.pds.blob_upload import sniff_mime

PIC = "com.example.pic"


async def blob_rows(pds: Pds) -> int:
    return await pds.ctx.db.read(lambda c: c.execute("SELECT count(*) FROM blob").fetchone()[0])


def tmp_files(pds: Pds) -> list[str]:
    return sorted(os.listdir(pds.ctx.blobs.tmp))


async def test_upload_is_temporary_until_a_record_references_it(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    data = png()
    cid = cid_for_raw(data)
    # the Content-Type is only a fallback: the bytes say PNG
    blob = await upload(pds, alice, data, "application/octet-stream")
    assert blob == {
        "$type": "blob",
        "ref": {"$link": cid.encode()},
        "mimeType": "image/png",
        "size": len(data),
    }
    assert cid.encode().startswith("bafkrei")
    # temporary: not listed, not downloadable, the file waits under tmp/
    listed = await pds.get("com.atproto.sync.listBlobs", {"did": alice.did})
    assert listed.status == 200 and listed.body == {"cids": []}
    r = await pds.get("com.atproto.sync.getBlob", {"did": alice.did, "cid": cid.encode()})
    assert (r.status, r.error) == (400, "BlobNotFound")
    assert len(tmp_files(pds)) == 1
    # a committed record makes it permanent
    made = await pds.create_record(alice, {"$type": PIC, "img": blob_json(blob)}, rkey="one")
    assert made.status == 200, made.body
    assert tmp_files(pds) == []
    listed = await pds.get("com.atproto.sync.listBlobs", {"did": alice.did})
    assert listed.body == {"cids": [cid.encode()]}
    r = await pds.get("com.atproto.sync.getBlob", {"did": alice.did, "cid": cid.encode()})
    assert r.status == 200 and r.raw == data
    assert r.headers["Content-Type"] == "image/png"
    assert r.headers["Content-Length"] == str(len(data))
    assert r.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Disposition"] == f'attachment; filename="{cid.encode()}"'
    async with pds.http.head(
        f"{pds.url}/xrpc/com.atproto.sync.getBlob", params={"did": alice.did, "cid": cid.encode()}
    ) as resp:
        assert resp.status == 200 and resp.headers["Content-Length"] == str(len(data))
        assert resp.headers["X-Content-Type-Options"] == "nosniff" and await resp.read() == b""
    # ranges work (video players rely on them)
    async with pds.http.get(
        f"{pds.url}/xrpc/com.atproto.sync.getBlob",
        params={"did": alice.did, "cid": cid.encode()},
        headers={"Range": "bytes=0-9"},
    ) as resp:
        assert resp.status == 206 and await resp.read() == data[:10]
    # the same bytes uploaded again: same blob, still permanent, no stray temp file
    again = await upload(pds, alice, data)
    assert again == blob and tmp_files(pds) == []
    # unknown CIDs and DIDs
    other = cid_for_raw(b"never uploaded")
    r = await pds.get("com.atproto.sync.getBlob", {"did": alice.did, "cid": other.encode()})
    assert (r.status, r.error) == (400, "BlobNotFound")
    r = await pds.get(
        "com.atproto.sync.getBlob", {"did": "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "cid": cid.encode()}
    )
    assert (r.status, r.error) == (400, "RepoNotFound")
    r = await pds.get("com.atproto.sync.getBlob", {"did": alice.did, "cid": "not-a-cid"})
    assert r.status == 400


async def test_records_referencing_blobs(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    # a blob nobody uploaded is refused and changes nothing
    ghost = {
        "$type": "blob",
        "ref": {"$link": cid_for_raw(b"ghost").encode()},
        "mimeType": "image/png",
        "size": 5,
    }
    r = await pds.create_record(alice, {"$type": PIC, "img": ghost})
    assert (r.status, r.error) == (400, "BlobNotFound")
    # a bsky post embedding an image, validated by its lexicon
    data = png()
    blob = await upload(pds, alice, data)
    post = {
        "$type": "app.bsky.feed.post",
        "text": "look",
        "createdAt": "2025-01-01T00:00:00.000Z",
        "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "pixels", "image": blob_json(blob)}]},
    }
    r = await pds.create_record(alice, post)
    assert r.status == 200 and r.body["validationStatus"] == "valid", r.body
    rkey = r.body["uri"].rsplit("/", 1)[1]
    cid = blob["ref"]["$link"]
    # deleting the only record deletes the blob: row, file, listing, download
    r = await pds.post(
        "com.atproto.repo.deleteRecord",
        {"repo": alice.did, "collection": "app.bsky.feed.post", "rkey": rkey},
        alice.auth,
    )
    assert r.status == 200
    await blob_gc(pds.ctx).run_once(sweep_files=True)
    r = await pds.get("com.atproto.sync.getBlob", {"did": alice.did, "cid": cid})
    assert (r.status, r.error) == (400, "BlobNotFound")
    assert (await pds.get("com.atproto.sync.listBlobs", {"did": alice.did})).body == {"cids": []}
    assert await blob_rows(pds) == 0
    assert not pds.ctx.blobs.account_dir(alice.did).exists() or not os.listdir(
        pds.ctx.blobs.account_dir(alice.did)
    )


async def test_list_blobs_pages_and_since(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    cids = []
    revs = []
    for i in range(5):
        blob = await upload(pds, alice, png())
        r = await pds.create_record(alice, {"$type": PIC, "img": blob_json(blob)}, rkey=f"r{i}")
        assert r.status == 200
        cids.append(blob["ref"]["$link"])
        revs.append(r.body["commit"]["rev"])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"did": alice.did, "limit": "2", **({"cursor": cursor} if cursor else {})}
        r = await pds.get("com.atproto.sync.listBlobs", params)
        assert r.status == 200, r.body
        pages += 1
        seen.extend(r.body["cids"])
        cursor = r.body.get("cursor")
        if cursor is None:
            break
    assert sorted(seen) == sorted(cids) and len(seen) == 5 and pages == 3
    since = await pds.get("com.atproto.sync.listBlobs", {"did": alice.did, "since": revs[2]})
    assert sorted(since.body["cids"]) == sorted(cids[3:])
    for bad in ("0", "1001", "x"):
        r = await pds.get("com.atproto.sync.listBlobs", {"did": alice.did, "limit": bad})
        assert r.status == 400


async def test_upload_auth_and_limits(tmp_path: Path, plc_url: str, http: aiohttp.ClientSession) -> None:
    pds = await start_pds(tmp_path / "small", plc_url, http, Clock(), blob_upload_limit=1000)
    try:
        alice = await pds.create_account("alice")
        r = await pds.post("com.atproto.repo.uploadBlob", data=b"x" * 10, content_type="text/plain")
        assert r.status == 401
        ok = await upload(pds, alice, b"y" * 1000, "text/plain")
        assert ok["size"] == 1000 and ok["mimeType"] == "text/plain"
        rows = await blob_rows(pds)
        # over the limit with a Content-Length: refused before reading
        r = await pds.post(
            "com.atproto.repo.uploadBlob", data=b"z" * 1001, content_type="text/plain", headers=alice.auth
        )
        assert (r.status, r.error) == (413, "PayloadTooLarge")

        # over the limit without one (chunked): cut off while streaming
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b"w" * 400

        async with http.post(
            f"{pds.url}/xrpc/com.atproto.repo.uploadBlob",
            data=chunks(),
            headers={**alice.auth, "Content-Type": "text/plain"},
        ) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"] == "PayloadTooLarge"

        # a chunked body within the limit is fine
        async def small() -> AsyncIterator[bytes]:
            yield b"v" * 300
            yield b"v" * 300

        async with http.post(
            f"{pds.url}/xrpc/com.atproto.repo.uploadBlob",
            data=small(),
            headers={**alice.auth, "Content-Type": "text/plain"},
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["blob"]["ref"]["$link"] == cid_for_raw(b"v" * 600).encode()
        # a body shorter than its Content-Length (the client gave up): nothing is stored
        host, port = pds.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /xrpc/com.atproto.repo.uploadBlob HTTP/1.1\r\n"
            + f"Host: {host}\r\nAuthorization: Bearer {alice.access}\r\n".encode()
            + b"Content-Type: text/plain\r\nContent-Length: 900\r\n\r\n"
            + b"u" * 300
        )
        await writer.drain()
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert b"200 OK" not in answer
        await asyncio.sleep(0.3)  # the handler's cleanup runs after the connection is gone
        assert len(tmp_files(pds)) == 2  # the two accepted temporary uploads only
        assert await blob_rows(pds) == rows + 1
    finally:
        await pds.runner.cleanup()


async def test_missing_blobs_after_import(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    data = png()
    blob = await upload(pds, alice, data)
    r = await pds.create_record(alice, {"$type": PIC, "img": blob_json(blob)}, rkey="pic")
    assert r.status == 200
    car = (await pds.get("com.atproto.sync.getRepo", {"did": alice.did})).raw
    # the record and its blob go away, then the old repo comes back (as a migration would bring it)
    await pds.post(
        "com.atproto.repo.deleteRecord", {"repo": alice.did, "collection": PIC, "rkey": "pic"}, alice.auth
    )
    assert await blob_rows(pds) == 0
    r = await pds.post(
        "com.atproto.repo.importRepo", data=car, content_type="application/vnd.ipld.car", headers=alice.auth
    )
    assert r.status == 200, r.body
    missing = await pds.get("com.atproto.repo.listMissingBlobs", headers=alice.auth)
    assert missing.status == 200
    assert missing.body == {
        "blobs": [{"cid": blob["ref"]["$link"], "recordUri": f"at://{alice.did}/{PIC}/pic"}]
    }
    assert (await pds.get("com.atproto.repo.listMissingBlobs")).status == 401
    # uploading it makes it permanent at once: a record already references it
    assert await upload(pds, alice, data) == blob
    assert (await pds.get("com.atproto.repo.listMissingBlobs", headers=alice.auth)).body == {"blobs": []}
    got = await pds.get("com.atproto.sync.getBlob", {"did": alice.did, "cid": blob["ref"]["$link"]})
    assert got.status == 200 and got.raw == data
    assert tmp_files(pds) == []

    # the other order: the blob uploaded first, the repo naming it imported after; the collector's next
    # pass promotes the upload without waiting for it to expire
    await pds.post(
        "com.atproto.repo.deleteRecord", {"repo": alice.did, "collection": PIC, "rkey": "pic"}, alice.auth
    )
    assert await upload(pds, alice, data) == blob
    r = await pds.post(
        "com.atproto.repo.importRepo", data=car, content_type="application/vnd.ipld.car", headers=alice.auth
    )
    assert r.status == 200, r.body
    gc = blob_gc(pds.ctx)
    await gc.stop()
    assert (await gc.run_once()).made_permanent == 1
    got = await pds.get("com.atproto.sync.getBlob", {"did": alice.did, "cid": blob["ref"]["$link"]})
    assert got.status == 200 and got.raw == data
    assert (await pds.get("com.atproto.sync.listBlobs", {"did": alice.did})).body == {
        "cids": [blob["ref"]["$link"]]
    }
    assert tmp_files(pds) == []


async def test_garbage_collection(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    gc = blob_gc(pds.ctx)
    kept = await upload(pds, alice, png())
    await pds.create_record(alice, {"$type": PIC, "img": blob_json(kept)}, rkey="kept")
    stale = await upload(pds, alice, png())
    await gc.stop()  # run passes by hand from here on
    ctx = pds.ctx
    assert ctx.blobs.exists(alice.did, parse_cid(kept["ref"]["$link"]))
    # stray files: an old temporary file with no row, a young one (an upload in flight), a permanent file
    # with no row, and the directory of an account that no longer exists
    old_tmp = ctx.blobs.temp_path("0" * 32)
    old_tmp.write_bytes(b"crashed upload")
    past = time.time() - DEFAULT_TEMP_TTL - 60
    os.utime(old_tmp, (past, past))
    young_tmp = ctx.blobs.temp_path("1" * 32)
    young_tmp.write_bytes(b"in flight")
    stray = ctx.blobs.path(alice.did, cid_for_raw(b"stray"))
    stray.write_bytes(b"stray")
    gone_dir = ctx.blobs.account_dir("did:plc:bbbbbbbbbbbbbbbbbbbbbbbb")
    gone_dir.mkdir()
    (gone_dir / cid_for_raw(b"x").encode()).write_bytes(b"x")

    report = await gc.run_once(sweep_files=True)
    assert (report.expired_uploads, report.orphan_temp_files) == (0, 1)
    assert (report.orphan_blob_files, report.orphan_account_dirs) == (1, 1)
    assert not old_tmp.exists() and young_tmp.exists() and not stray.exists() and not gone_dir.exists()
    assert len(tmp_files(pds)) == 2  # the stale upload (not old yet) and the one in flight

    pds.clock.advance(DEFAULT_TEMP_TTL - 120)
    assert (await gc.run_once()).expired_uploads == 0
    pds.clock.advance(180)
    report = await gc.run_once()
    assert report.expired_uploads == 1
    assert tmp_files(pds) == ["1" * 32]
    assert await blob_rows(pds) == 1
    # (the clock moved past the access token's life: log in again)
    login = await pds.post(
        "com.atproto.server.createSession", {"identifier": alice.did, "password": alice.password}
    )
    alice = replace(alice, access=login.body["accessJwt"])
    r = await pds.create_record(alice, {"$type": PIC, "img": blob_json(stale)})
    assert (r.status, r.error) == (400, "BlobNotFound")
    # the referenced blob was never touched
    got = await pds.get("com.atproto.sync.getBlob", {"did": alice.did, "cid": kept["ref"]["$link"]})
    assert got.status == 200 and cid_for_raw(got.raw).encode() == kept["ref"]["$link"]


def test_sniff_mime() -> None:
    cases = {
        b"\x89PNG\r\n\x1a\n....": "image/png",
        b"\xff\xd8\xff\xe0\x00\x10JFIF": "image/jpeg",
        b"GIF89a....": "image/gif",
        b"RIFF\x00\x00\x00\x00WEBPVP8 ": "image/webp",
        b"\x00\x00\x00\x18ftypisom\x00\x00": "video/mp4",
        b"\x00\x00\x00\x1cftypavif\x00\x00": "image/avif",
        b"\x00\x00\x00\x14ftypqt  \x00\x00": "video/quicktime",
        b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm": "video/webm",
        b"%PDF-1.7": "application/pdf",
    }
    for head, mime in cases.items():
        assert sniff_mime(head) == mime, head
    assert sniff_mime(b"hello world") is None
    assert sniff_mime(b"") is None
    assert len(cases) == 9


async def test_empty_blob_upload(pds: Pds) -> None:
    """The blob spec allows an empty blob: size 0 and the raw CID of no bytes."""
    alice = await pds.create_account("emptyblob")
    blob = await upload(pds, alice, b"", "application/octet-stream")
    assert blob["size"] == 0
    assert blob["ref"]["$link"] == cid_for_raw(b"").encode()
