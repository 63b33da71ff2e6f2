"""A small, scriptable upstream host speaking ``subscribeRepos`` — for making a relay misbehave on purpose.

Its accounts are real: did:plc identities registered in a real PLC directory (their PDS endpoint is this
host, or another one), real signed repos (:class:`atstack.core.repo.Repo`) served by ``getRepo``. The test
decides exactly which frames go out: :meth:`FakeHost.send` appends a frame to the replayable log (served
again to a subscriber resuming from an older cursor), :meth:`FakeHost.send_once` writes raw bytes to the
currently connected subscribers only (garbage, oversized frames: nothing a resumed consumer should see).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from atstack.core.blockstore import MemoryBlockStore
from atstack.core.car import write_car
from atstack.core.cbor import encode as cbor_encode
from atstack.core.crypto import PrivateKey, generate_private_key
from atstack.core.plc_op import create_genesis_op, create_update_op, did_for_genesis
from atstack.core.repo import CommitData, RecordWrite, Repo
from atstack.core.stream import AccountEvent, CommitEvent, IdentityEvent, SyncEvent, encode_error
from atstack.xrpc.service import start_test_server


def now_iso() -> str:
    return "2025-01-01T00:00:00.000Z"


@dataclass
class FakeAccount:
    did: str
    handle: str
    rotation: PrivateKey
    signing: PrivateKey
    last_op: dict[str, Any]
    store: MemoryBlockStore
    repo: Repo
    genesis: CommitData
    counter: int = 0

    def write(
        self, n: int = 1, *, rev: str | None = None, collection: str = "app.bsky.feed.post"
    ) -> CommitData:
        writes = []
        for _ in range(n):
            self.counter += 1
            record = cbor_encode({"$type": collection, "text": f"{self.handle} #{self.counter}",
                                  "createdAt": now_iso()})  # fmt: skip
            writes.append(RecordWrite.create(collection, f"3k{self.counter:011d}", record))
        return self.repo.apply_writes(writes, self.signing, rev=rev)


@dataclass
class FakeHost:
    plc_url: str
    http: aiohttp.ClientSession
    url: str = ""
    runner: web.AppRunner | None = None
    log: list[tuple[int, bytes]] = field(default_factory=list)
    accounts: dict[str, FakeAccount] = field(default_factory=dict)
    seq: int = 0
    connections: int = 0
    _subscribers: list[asyncio.Queue[bytes | None]] = field(default_factory=list)

    @property
    def hostname(self) -> str:
        return self.url.removeprefix("http://")

    async def start(self) -> FakeHost:
        app = web.Application()
        app.router.add_get("/xrpc/com.atproto.server.describeServer", self._describe)
        app.router.add_get("/xrpc/com.atproto.sync.getRepo", self._get_repo)
        app.router.add_get("/xrpc/com.atproto.sync.subscribeRepos", self._subscribe)
        self.runner, url = await start_test_server(app)
        self.url = url.replace("127.0.0.1", "localhost")
        return self

    async def close(self) -> None:
        for queue in self._subscribers:
            queue.put_nowait(None)
        if self.runner is not None:
            await self.runner.cleanup()

    # --- accounts --------------------------------------------------------------------------------------

    async def create_account(self, handle: str, *, pds: str | None = None) -> FakeAccount:
        rotation, signing = generate_private_key(), generate_private_key()
        op = create_genesis_op(
            rotation,
            [rotation],
            {"atproto": signing.did_key()},
            [f"at://{handle}"],
            {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": pds or self.url}},
        )
        did = did_for_genesis(op)
        await self._plc_submit(did, op)
        store = MemoryBlockStore()
        repo, genesis = Repo.create(store, did, signing)
        account = FakeAccount(did, handle, rotation, signing, op, store, repo, genesis)
        self.accounts[did] = account
        return account

    async def rotate_signing_key(self, account: FakeAccount) -> None:
        new_key = generate_private_key()
        op = create_update_op(account.last_op, account.rotation, atproto_key=new_key)
        await self._plc_submit(account.did, op)
        account.last_op, account.signing = op, new_key

    async def _plc_submit(self, did: str, op: dict[str, Any]) -> None:
        async with self.http.post(f"{self.plc_url}/{did}", json=op) as resp:
            assert resp.status == 200, await resp.text()

    # --- frames ----------------------------------------------------------------------------------------

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def send(self, frame: bytes, seq: int) -> None:
        self.log.append((seq, frame))
        for queue in self._subscribers:
            queue.put_nowait(frame)

    async def wait_connected(self, connections: int, timeout: float = 10.0) -> None:
        """Until at least ``connections`` subscriptions were opened and one is open now."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.connections < connections or not self._subscribers:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{self.connections} connections, {len(self._subscribers)} open")
            await asyncio.sleep(0.01)

    def send_once(self, raw: bytes) -> None:
        for queue in self._subscribers:
            queue.put_nowait(raw)

    def commit_frame(self, did: str, data: CommitData, **overrides: Any) -> tuple[int, bytes]:
        seq = self.next_seq()
        fields: dict[str, Any] = {
            "seq": seq,
            "repo": did,
            "commit": data.cid,
            "rev": data.rev,
            "since": data.since,
            "blocks": data.car_slice,
            "ops": data.ops,
            "time": now_iso(),
            "prev_data": data.prev_data,
        }
        fields.update(overrides)
        return seq, CommitEvent(**fields).to_frame()

    def send_commit(self, did: str, data: CommitData, **overrides: Any) -> int:
        seq, frame = self.commit_frame(did, data, **overrides)
        self.send(frame, seq)
        return seq

    def send_identity(self, account: FakeAccount) -> int:
        seq = self.next_seq()
        self.send(
            IdentityEvent(seq=seq, did=account.did, time=now_iso(), handle=account.handle).to_frame(), seq
        )
        return seq

    def send_account(self, account: FakeAccount, active: bool = True, status: str | None = None) -> int:
        seq = self.next_seq()
        event = AccountEvent(seq=seq, did=account.did, time=now_iso(), active=active, status=status)
        self.send(event.to_frame(), seq)
        return seq

    def send_sync(self, account: FakeAccount) -> int:
        seq = self.next_seq()
        repo = account.repo
        block = account.store.get(repo.commit_cid)
        assert block is not None
        blocks = write_car([repo.commit_cid], [(repo.commit_cid, block)])
        self.send(
            SyncEvent(seq=seq, did=account.did, blocks=blocks, rev=repo.rev, time=now_iso()).to_frame(), seq
        )
        return seq

    def announce(self, account: FakeAccount) -> None:
        """What a PDS sends for a new account: #identity, #account, then the first commit."""
        self.send_identity(account)
        self.send_account(account)
        self.send_commit(account.did, account.genesis)

    # --- HTTP ------------------------------------------------------------------------------------------

    async def _describe(self, request: web.Request) -> web.Response:
        return web.json_response({"did": f"did:web:{self.hostname}", "availableUserDomains": [".test"]})

    async def _get_repo(self, request: web.Request) -> web.Response:
        account = self.accounts.get(request.query.get("did", ""))
        if account is None:
            return web.json_response({"error": "RepoNotFound", "message": "no such repo"}, status=400)
        return web.Response(body=account.repo.export_car(), content_type="application/vnd.ipld.car")

    async def _subscribe(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0, compress=False)
        await ws.prepare(request)
        self.connections += 1
        cursor_raw = request.query.get("cursor")
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._subscribers.append(queue)
        reader = asyncio.create_task(self._drain(ws))
        try:
            if cursor_raw is not None:
                cursor = int(cursor_raw)
                if cursor > self.seq:
                    await ws.send_bytes(encode_error("FutureCursor", "cursor in the future"))
                    return ws
                for seq, frame in list(self.log):
                    if seq > cursor:
                        await ws.send_bytes(frame)
            while not ws.closed:
                item = await queue.get()
                if item is None:
                    break
                await ws.send_bytes(item)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self._subscribers.remove(queue)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            await ws.close()
        return ws

    @staticmethod
    async def _drain(ws: web.WebSocketResponse) -> None:
        async for _msg in ws:
            pass
