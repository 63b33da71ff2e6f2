"""subscribeRepos: live events, their order, Sync 1.1 verification of every #commit, cursors, replay after a
restart, and the events of account status changes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from pds_support import Clock, Pds, post_record, start_pds

from atstack.core.car import read_car
from atstack.core.cid import CID
from atstack.core.commit import decode_commit
from atstack.core.crypto import PublicKey
from atstack.core.repo_verify import verify_commit_slice
from atstack.core.stream import (
    AccountEvent,
    CommitEvent,
    ErrorFrame,
    Event,
    IdentityEvent,
    SyncEvent,
    decode_event,
)
from atstack.pds.store import accounts

POST = "app.bsky.feed.post"


class Subscriber:
    """A WebSocket client collecting decoded events in the background."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.events: list[Event] = []
        self.closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> Subscriber:
        self._ws = await self.http.ws_connect(self.url)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                self.events.append(decode_event(msg.data))
        self.closed.set()

    async def wait_for(self, count: int, timeout: float = 10) -> list[Event]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.events) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"got {len(self.events)} events, wanted {count}: {self.events}")
            await asyncio.sleep(0.01)
        return self.events

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            await asyncio.wait_for(self._task, 5)


async def public_key(pds: Pds, did: str) -> PublicKey:
    account = await pds.ctx.db.read(lambda c: accounts.get_account(c, did))
    assert account is not None
    return account.signing_key.public_key


async def verify_commits(pds: Pds, events: list[Event]) -> int:
    """Check every #commit with Sync 1.1 rules, chaining since/prevData per repo; returns how many."""
    last: dict[str, tuple[str, CID]] = {}  # did -> (rev, data)
    keys: dict[str, PublicKey] = {}
    count = 0
    for ev in events:
        if not isinstance(ev, CommitEvent):
            continue
        did = ev.repo
        if did not in keys:
            keys[did] = await public_key(pds, did)
        previous = last.get(did)
        commit = verify_commit_slice(ev.blocks, ev.ops, ev.prev_data, did=did, public_key=keys[did])
        assert read_car(ev.blocks).roots[0] == ev.commit
        assert commit.rev == ev.rev and commit.did == did
        if previous is None:
            assert ev.since is None and ev.prev_data is None and ev.ops == []
        else:
            assert ev.since == previous[0] and ev.prev_data == previous[1]
            assert ev.rev > previous[0]
        assert ev.blobs == [] and ev.rebase is False and ev.too_big is False
        last[did] = (ev.rev, commit.data)
        count += 1
    return count


def seqs(events: list[Event]) -> list[int]:
    return [ev.seq for ev in events if hasattr(ev, "seq")]  # type: ignore[union-attr]


async def test_account_creation_and_writes_on_the_firehose(pds: Pds, http: aiohttp.ClientSession) -> None:
    async with Subscriber(http, pds.ws_url()) as sub:
        alice = await pds.create_account("alice")
        events = await sub.wait_for(3)
        assert [type(e) for e in events[:3]] == [IdentityEvent, AccountEvent, CommitEvent]
        identity, account, first = events[:3]
        assert (
            isinstance(identity, IdentityEvent)
            and identity.did == alice.did
            and identity.handle == "alice.test"
        )
        assert isinstance(account, AccountEvent) and account.active is True and account.status is None
        head = await pds.get("com.atproto.sync.getLatestCommit", {"did": alice.did})
        assert isinstance(first, CommitEvent) and first.commit.encode() == head.body["cid"]
        made = [await pds.create_record(alice, post_record(f"p{i}")) for i in range(5)]
        rkey = made[0].body["uri"].rsplit("/", 1)[1]
        await pds.post(
            "com.atproto.repo.putRecord",
            {"repo": alice.did, "collection": POST, "rkey": rkey, "record": post_record("edited")},
            alice.auth,
        )
        await pds.post(
            "com.atproto.repo.deleteRecord", {"repo": alice.did, "collection": POST, "rkey": rkey}, alice.auth
        )
        events = await sub.wait_for(3 + 7)
    assert await verify_commits(pds, events) == 8
    assert seqs(events) == sorted(seqs(events)) and len(set(seqs(events))) == len(events)
    commits = [e for e in events if isinstance(e, CommitEvent)]
    assert [op.action for op in commits[-2].ops] == ["update"]
    assert [op.action for op in commits[-1].ops] == ["delete"] and commits[-1].ops[0].cid is None
    assert commits[1].ops[0].cid.encode() == made[0].body["cid"]
    assert (
        commits[-1].commit.encode()
        == (await pds.get("com.atproto.sync.getLatestCommit", {"did": alice.did})).body["cid"]
    )


async def test_concurrent_writers_keep_per_repo_chains(pds: Pds, http: aiohttp.ClientSession) -> None:
    users = [await pds.create_account(f"user{i}") for i in range(3)]
    async with Subscriber(http, pds.ws_url(cursor=0)) as sub:

        async def write(account: Any, n: int) -> None:
            for i in range(n):
                r = await pds.create_record(account, post_record(f"{i}"))
                assert r.status == 200, r.body

        await asyncio.gather(*(write(u, 8) for u in users), *(write(users[0], 4) for _ in range(2)))
        events = await sub.wait_for(9 + 3 * 8 + 8)
    assert await verify_commits(pds, events) == 3 + 24 + 8
    assert seqs(events) == list(range(1, len(events) + 1))


async def test_cursor_replay_and_future_cursor(
    tmp_path: Path, plc_url: str, http: aiohttp.ClientSession
) -> None:
    data = tmp_path / "pds"
    clock = Clock()
    pds = await start_pds(data, plc_url, http, clock)
    alice = await pds.create_account("alice")
    for i in range(4):
        await pds.create_record(alice, post_record(f"{i}"))
    await pds.runner.cleanup()
    # a new process on the same data directory replays everything it persisted
    pds = await start_pds(data, plc_url, http, clock)
    try:
        async with Subscriber(http, pds.ws_url(cursor=0)) as sub:
            events = await sub.wait_for(7)
            assert seqs(events) == list(range(1, 8))
            assert await verify_commits(pds, events) == 5
            r = await pds.create_record(alice, post_record("after restart"))
            assert r.status == 200, r.body
            events = await sub.wait_for(8)
            assert isinstance(events[7], CommitEvent) and events[7].seq == 8
            assert await verify_commits(pds, events) == 6
        async with Subscriber(http, pds.ws_url(cursor=5)) as sub:
            events = await sub.wait_for(3)
            assert seqs(events) == [6, 7, 8]
        async with Subscriber(http, pds.ws_url(cursor=99)) as sub:
            await asyncio.wait_for(sub.closed.wait(), 5)
            assert len(sub.events) == 1 and isinstance(sub.events[0], ErrorFrame)
            assert sub.events[0].error == "FutureCursor"
    finally:
        await pds.runner.cleanup()


async def test_status_change_events(pds: Pds, http: aiohttp.ClientSession) -> None:
    alice = await pds.create_account("alice")
    await pds.create_record(alice, post_record())
    async with Subscriber(http, pds.ws_url()) as sub:
        await pds.post("com.atproto.server.deactivateAccount", {}, alice.auth)
        events = await sub.wait_for(1)
        assert isinstance(events[0], AccountEvent)
        assert (events[0].did, events[0].active, events[0].status) == (alice.did, False, "deactivated")
        r = await pds.create_record(alice, post_record())
        assert r.status == 401  # and so no #commit while inactive
        await pds.post("com.atproto.server.activateAccount", headers=alice.auth)
        events = await sub.wait_for(4)
        assert [type(e) for e in events[1:4]] == [AccountEvent, IdentityEvent, SyncEvent]
        assert events[1].active is True  # type: ignore[union-attr]
        sync = events[3]
        assert isinstance(sync, SyncEvent) and sync.did == alice.did
        head = await pds.get("com.atproto.sync.getLatestCommit", {"did": alice.did})
        car = read_car(sync.blocks)
        assert car.roots[0].encode() == head.body["cid"] and sync.rev == head.body["rev"]
        assert decode_commit(car.blocks[car.roots[0]]).rev == sync.rev
        # deletion
        await pds.post("com.atproto.server.requestAccountDelete", headers=alice.auth)
        token = await pds.ctx.db.read(lambda c: c.execute("SELECT token FROM email_token").fetchone()[0])
        r = await pds.post(
            "com.atproto.server.deleteAccount", {"did": alice.did, "password": alice.password, "token": token}
        )
        assert r.status == 200, r.body
        events = await sub.wait_for(5)
        assert isinstance(events[4], AccountEvent)
        assert (events[4].active, events[4].status) == (False, "deleted")
    assert not [e for e in events if isinstance(e, CommitEvent)]
    # a replay from the start no longer carries the deleted account's earlier events
    async with Subscriber(http, pds.ws_url(cursor=0)) as sub:
        await asyncio.sleep(0.3)
        mine = [
            e
            for e in sub.events
            if getattr(e, "did", None) == alice.did or getattr(e, "repo", None) == alice.did
        ]
        assert len(mine) == 1 and isinstance(mine[0], AccountEvent) and mine[0].status == "deleted"
