"""``GET /export``: paging by createdAt (legacy format) and by seq returns every entry once, in order."""

from __future__ import annotations

from datetime import timedelta

import orjson
from plc_support import Plc, new_account

from atstack.core.plc_op import create_tombstone_op, create_update_op, op_cid


async def _populate(plc: Plc) -> list[tuple[str, str]]:
    """Accept 31 operations (some in the same millisecond); return their (did, cid) in acceptance order."""
    accepted: list[tuple[str, str]] = []
    for i in range(12):
        acct = new_account(f"user{i}.test")
        assert (await plc.post(acct.did, acct.genesis))[0] == 200
        accepted.append((acct.did, op_cid(acct.genesis).encode()))
        prev = acct.genesis
        for j in range(i % 3):
            if i % 4 == 0:
                plc.clock.advance(timedelta(milliseconds=1))
            op = create_update_op(prev, acct.rotation[0], handle=f"user{i}-{j}.test")
            assert (await plc.post(acct.did, op))[0] == 200
            accepted.append((acct.did, op_cid(op).encode()))
            prev = op
        if i == 5:
            tomb = create_tombstone_op(prev, acct.rotation[0])
            assert (await plc.post(acct.did, tomb))[0] == 200
            accepted.append((acct.did, op_cid(tomb).encode()))
    assert len(accepted) == 12 + sum(i % 3 for i in range(12)) + 1
    return accepted


async def _page(plc: Plc, query: str) -> list[dict]:
    status, text, ctype = await plc.get(f"/export?{query}")
    assert status == 200 and ctype.startswith("application/jsonlines")
    return [orjson.loads(line) for line in text.split("\n")] if text else []


async def test_export_paging_by_created_at(plc: Plc) -> None:
    accepted = await _populate(plc)
    seen: list[dict] = []
    page = await _page(plc, "count=7")
    pages = 0
    while page:
        pages += 1
        assert len(page) <= 7
        seen.extend(page)
        page = await _page(plc, f"count=7&after={page[-1]['createdAt']}")
    assert pages == -(-len(accepted) // 7)
    assert [(e["did"], e["cid"]) for e in seen] == accepted
    stamps = [e["createdAt"] for e in seen]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(set(e) == {"did", "operation", "cid", "nullified", "createdAt"} for e in seen)
    # the same entries as the per-DID audit logs
    for did in {d for d, _ in accepted}:
        assert [e for e in seen if e["did"] == did] == await plc.audit(did)


async def test_export_paging_by_seq(plc: Plc) -> None:
    accepted = await _populate(plc)
    seen: list[dict] = []
    after = 0
    while page := await _page(plc, f"count=10&after={after}"):
        seen.extend(page)
        after = page[-1]["seq"]
    assert [(e["did"], e["cid"]) for e in seen] == accepted
    seqs = [e["seq"] for e in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(e["type"] == "sequenced_op" and "nullified" not in e for e in seen)


async def test_export_parameters(plc: Plc) -> None:
    total = len(await _populate(plc))
    assert total == 25
    assert len(await _page(plc, "")) == total
    assert len(await _page(plc, "count=5000")) == total  # capped at 1000, not refused
    assert len(await _page(plc, "count=3")) == 3
    assert await _page(plc, "after=2100-01-01T00:00:00.000Z") == []
    for query in ("count=0", "count=-4", "count=abc", "after=yesterday"):
        status, body, _ = await plc.get(f"/export?{query}")
        assert status == 400, query
        assert "Invalid" in body["message"]


async def test_export_shows_nullified_flags(plc: Plc) -> None:
    acct = new_account()
    assert (await plc.post(acct.did, acct.genesis))[0] == 200
    hijack = create_update_op(acct.genesis, acct.rotation[1], handle="mallory.test")
    assert (await plc.post(acct.did, hijack))[0] == 200
    recover = create_update_op(acct.genesis, acct.rotation[0], handle="alice.test")
    assert (await plc.post(acct.did, recover))[0] == 200
    assert [e["nullified"] for e in await _page(plc, "")] == [False, True, False]
