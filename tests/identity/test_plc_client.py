"""PlcClient against a real PLC directory on loopback."""

from __future__ import annotations

import aiohttp
import pytest
from identity_support import new_account

from atstack.core.plc_op import create_tombstone_op, create_update_op, op_cid, op_to_data, op_to_did_doc
from atstack.identity import PlcClient, PlcError


async def test_round_trip(plc_url: str, http: aiohttp.ClientSession) -> None:
    client = PlcClient(plc_url, http)
    acct = new_account("alice.test")
    await client.submit_operation(acct.did, acct.genesis)
    update = create_update_op(acct.genesis, acct.rotation, handle="bob.test")
    await client.submit_operation(acct.did, update)

    assert await client.get_document(acct.did) == op_to_did_doc(acct.did, update)
    assert await client.get_data(acct.did) == op_to_data(acct.did, update)
    assert await client.get_log(acct.did) == [acct.genesis, update]
    assert await client.get_last_op(acct.did) == update
    audit = await client.get_audit_log(acct.did)
    assert [e["cid"] for e in audit] == [op_cid(acct.genesis).encode(), op_cid(update).encode()]
    legacy = await client.export()
    assert [e["operation"] for e in legacy] == [acct.genesis, update]
    sequenced = await client.export(after=0, count=1)
    assert len(sequenced) == 1 and sequenced[0]["type"] == "sequenced_op"
    rest = await client.export(after=sequenced[0]["seq"])
    assert [e["operation"] for e in rest] == [update]
    assert await client.export(after=legacy[-1]["createdAt"]) == []


async def test_errors(plc_url: str, http: aiohttp.ClientSession) -> None:
    client = PlcClient(plc_url + "/", http)  # a trailing slash is fine
    acct = new_account("alice.test")
    with pytest.raises(PlcError) as info:
        await client.get_document(acct.did)
    assert info.value.status == 404
    assert info.value.message == f"DID not registered: {acct.did}"

    bad = dict(acct.genesis, alsoKnownAs=["at://evil.test"])
    with pytest.raises(PlcError) as info:
        await client.submit_operation(acct.did, bad)
    assert info.value.status == 400
    assert "not signed" in info.value.message  # the changed genesis no longer matches its signature

    await client.submit_operation(acct.did, acct.genesis)
    await client.submit_operation(acct.did, create_tombstone_op(acct.genesis, acct.rotation))
    for call in (client.get_document, client.get_data):
        with pytest.raises(PlcError) as info:
            await call(acct.did)
        assert info.value.status == 410
    assert len(await client.get_audit_log(acct.did)) == 2


async def test_unreachable_directory(http: aiohttp.ClientSession) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = PlcClient(f"http://127.0.0.1:{port}", http, timeout=2.0)
    with pytest.raises(PlcError) as info:
        await client.get_document("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")
    assert info.value.status is None
    assert "unreachable" in info.value.message
