"""Bluesky's TypeScript client ``@atproto/api`` (``AtpAgent``), unmodified, against our PDS.

``js/api_client.mjs`` does the calls and prints what the client parsed; every assertion is made here.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from interop_support import Stack, new_handle, png_bytes, run_node, xrpc

POST = "app.bsky.feed.post"


def test_atp_agent_session_posts_blobs_delete_refresh(stack: Stack, node_js: Path, tmp_path: Path) -> None:
    handle, password = new_handle("js"), secrets.token_urlsafe(12)
    image = png_bytes(24, 12)
    image_path = tmp_path / "image.png"
    image_path.write_bytes(image)
    out = run_node(
        "node",
        node_js,
        "api_client.mjs",
        stack.pds_url,
        handle,
        password,
        f"{handle.split('.')[0]}@example.com",
        str(image_path),
    )

    did = out["created"]["did"]
    assert did.startswith("did:plc:")
    assert out["created"]["handle"] == handle
    assert out["login"] == {"did": did, "handle": handle, "active": True}
    # When the session's DID document names a PDS, the agent switches to it: it must be us.
    assert out["pdsUrl"] in (None, stack.pds_url + "/")

    posts = out["posts"]
    assert len(posts) == 17
    assert len({p["uri"] for p in posts}) == 17
    assert all(p["uri"].startswith(f"at://{did}/{POST}/") and p["cid"].startswith("bafyrei") for p in posts)
    assert out["read"] == [{"uri": p["uri"], "cid": p["cid"], "text": p["text"]} for p in posts]

    uris = out["list"]["uris"]
    assert sorted(uris) == sorted(p["uri"] for p in posts)
    assert len(uris) == len(set(uris))
    assert out["list"]["pages"] >= 5  # 17 records at 4 a page

    assert out["blob"] == {"cid": out["blob"]["cid"], "mimeType": "image/png", "size": len(image)}
    assert out["blob"]["cid"].startswith("bafkrei")
    assert out["imagePost"]["blobCid"] == out["blob"]["cid"]
    assert out["imagePost"]["alt"] == "random pixels"
    assert (out["imagePost"]["mimeType"], out["imagePost"]["size"]) == ("image/png", len(image))
    assert out["getBlob"]["size"] == len(image)
    assert base64.b64decode(out["getBlob"]["base64"]) == image

    assert out["deleted"] == posts[5]["uri"]
    assert out["afterDelete"] == {"found": False, "error": "RecordNotFound", "status": 400}
    remaining = {p["uri"] for p in posts} - {out["deleted"]} | {out["imagePost"]["uri"]}
    assert sorted(out["listAfterDelete"]["uris"]) == sorted(remaining)

    assert out["refresh"]["did"] == did and out["refresh"]["handle"] == handle
    assert out["refresh"]["refreshChanged"] is True
    assert out["sessionAfterRefresh"] == {"did": did, "handle": handle}
    assert out["afterRefreshPost"].startswith(f"at://{did}/{POST}/")

    # And the server's own view, read without the client library.
    listed = xrpc(stack, "GET", "com.atproto.repo.listRecords", params={"repo": did, "collection": POST})
    assert listed.status_code == 200, listed.text
    assert {r["uri"] for r in listed.json()["records"]} == remaining | {out["afterRefreshPost"]}
