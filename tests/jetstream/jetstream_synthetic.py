"""Upstream events made in the test and fed through the real converter, store and fan-out of a Jetstream
that has no upstream: exact control over which DID, collection and kind arrive, and when.

``Feed.publish`` does what the upstream consumer does with a batch: convert, store (one transaction),
publish. ``MovableClock`` is the service's clock (``JetstreamConfig.clock``) so a test can step over the
retention window without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jetstream_support import Jet, start_jetstream

from atstack.core import cbor
from atstack.core.car import write_car
from atstack.core.cid import cid_for_cbor
from atstack.core.repo_op import RepoOp
from atstack.core.stream import AccountEvent, CommitEvent, Event, IdentityEvent, SyncEvent
from atstack.jetstream.convert import JetEvent, now_us

__all__ = ["ALICE", "BOB", "CAROL", "Feed", "MovableClock", "start_fed"]

ALICE = "did:plc:alicealicealicealicealic"
BOB = "did:plc:bobbobbobbobbobbobbobbobb"
CAROL = "did:plc:carolcarolcarolcarolcaro"
TIME = "2025-01-01T00:00:00.000Z"
HOUR_US = 3600 * 1_000_000


@dataclass
class MovableClock:
    """Unix µs: real time plus an offset the test moves."""

    offset: int = 0

    def __call__(self) -> int:
        return now_us() + self.offset

    def advance(self, microseconds: int) -> None:
        self.offset += microseconds


class Feed:
    """Builds typed upstream events (real CAR slices for commits) and publishes them as the consumer does."""

    def __init__(self, jet: Jet) -> None:
        self.jet = jet
        self.seq = 0
        self.rkey = 0

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def commit(self, did: str, collection: str, text: str = "", *, pad: int = 0) -> CommitEvent:
        record: dict[str, Any] = {"$type": collection, "text": text + "x" * pad, "createdAt": TIME}
        block = cbor.encode(record)
        cid = cid_for_cbor(block)
        head = cbor.encode({"did": did, "version": 3})
        head_cid = cid_for_cbor(head)
        self.rkey += 1
        return CommitEvent(
            seq=self._next(),
            repo=did,
            commit=head_cid,
            rev="3l3qo2vutsw2b",
            since=None,
            blocks=write_car([head_cid], [(head_cid, head), (cid, block)]),
            ops=[RepoOp("create", f"{collection}/3l3qo2vuo{self.rkey:04d}", cid)],
            time=TIME,
        )

    def identity(self, did: str, handle: str = "someone.test") -> IdentityEvent:
        return IdentityEvent(seq=self._next(), did=did, time=TIME, handle=handle)

    def account(self, did: str, active: bool = True) -> AccountEvent:
        status = None if active else "deactivated"
        return AccountEvent(seq=self._next(), did=did, time=TIME, active=active, status=status)

    def sync(self, did: str) -> SyncEvent:
        return SyncEvent(seq=self._next(), did=did, blocks=b"\x00\x01", rev="3l3qo2vutsw2c", time=TIME)

    async def publish(self, *events: Event) -> list[JetEvent]:
        service = self.jet.service
        rows: list[JetEvent] = []
        for event in events:
            rows.extend(service.converter.convert(event))
        await service.store.append(rows, self.seq)
        service.fanout.publish(rows)
        return rows

    async def history(self, collection: str, rounds: int, per_round: int) -> list[JetEvent]:
        """``rounds`` batches of ``per_round`` commits by ALICE: a stored past to replay."""
        stored: list[JetEvent] = []
        for i in range(rounds):
            stored += await self.publish(
                *(self.commit(ALICE, collection, f"s{i}.{j}") for j in range(per_round))
            )
        return stored

    async def keep_publishing(
        self,
        collection: str,
        extra: Callable[[str], Event],
        published: list[JetEvent],
        stop: asyncio.Event,
        at_least: int,
    ) -> None:
        """Publish a BOB commit and ``extra(BOB)`` per round, one loop turn apart, into ``published``,
        until ``stop`` is set and at least ``at_least`` rounds went (live traffic during a replay)."""
        i = 0
        while not stop.is_set() or i < at_least:
            published.extend(await self.publish(self.commit(BOB, collection, f"c{i}"), extra(BOB)))
            i += 1
            await asyncio.sleep(0)


async def start_fed(data_dir: Path, **overrides: Any) -> tuple[Jet, Feed]:
    jet = await start_jetstream(data_dir, None, **overrides)
    return jet, Feed(jet)
