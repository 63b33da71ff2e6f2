"""``com.atproto.sync.getRepo`` from our PDS, verified by Bluesky's ``@atproto/repo`` (``js/verify_repo.mjs``)
with the account's signing key taken from its DID document in the PLC directory (``@atproto/identity``, which
needs Node >= 22).
"""

from __future__ import annotations

from pathlib import Path

import httpx
from interop_support import Stack, create_account, create_record, run_node, xrpc

POST = "app.bsky.feed.post"
NOTE = "com.example.interop.note"


def test_get_repo_car_verifies_with_atproto_repo(stack: Stack, node_js: Path, node22: str) -> None:
    account = create_account(stack, "car")
    texts: dict[str, str] = {}
    for i in range(52):
        collection = POST if i % 4 else NOTE
        record = {"$type": collection, "text": f"record {i} 🧩", "createdAt": "2025-01-01T00:00:00.000Z"}
        out = create_record(stack, account, collection, record)
        texts[out["uri"].split("/", 3)[3]] = record["text"]
    paths = sorted(texts)
    for path in paths[:2]:  # two deletes
        collection, rkey = path.split("/")
        resp = xrpc(
            stack,
            "POST",
            "com.atproto.repo.deleteRecord",
            account=account,
            body={"repo": account.did, "collection": collection, "rkey": rkey},
        )
        assert resp.status_code == 200, resp.text
        del texts[path]
    for path in paths[10:12]:  # two updates
        collection, rkey = path.split("/")
        record = {"$type": collection, "text": f"updated {rkey}", "createdAt": "2025-01-02T00:00:00.000Z"}
        resp = xrpc(
            stack,
            "POST",
            "com.atproto.repo.putRecord",
            account=account,
            body={"repo": account.did, "collection": collection, "rkey": rkey, "record": record},
        )
        assert resp.status_code == 200, resp.text
        texts[path] = record["text"]
    assert len(texts) == 50

    latest = xrpc(stack, "GET", "com.atproto.sync.getLatestCommit", params={"did": account.did})
    assert latest.status_code == 200, latest.text
    data = httpx.get(f"{stack.plc_url}/{account.did}/data", timeout=15)
    assert data.status_code == 200, data.text
    doc_key = data.json()["verificationMethods"]["atproto"]

    out = run_node(node22, node_js, "verify_repo.mjs", stack.pds_url, stack.plc_url, account.did)

    assert out["contentType"].split(";")[0] == "application/vnd.ipld.car"
    assert out["signingKey"] == doc_key
    assert out["did"] == account.did
    assert out["version"] == 3
    assert out["root"] == out["commit"] == latest.json()["cid"]
    assert out["rev"] == latest.json()["rev"]
    assert out["rebuiltRoot"] == out["dataCid"]
    assert out["verifiedCount"] == out["count"] == 50
    assert {r["path"]: r["text"] for r in out["records"]} == texts
    assert [r["path"] for r in out["records"]] == sorted(texts)
    assert out["wrongKey"] is not None
    assert out["wrongKey"]["rejected"] is True
    assert out["wrongKey"]["verificationError"] is True, out["wrongKey"]
