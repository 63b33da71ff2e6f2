"""Retention of the firehose event log: events older than ``PdsConfig.event_retention`` are trimmed (the
newest always stays), by hand and by the periodic task; a cursor from before the window gets
``#info OutdatedCursor`` and then the window, also after a restart on the trimmed log."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from pds_extras import replay
from pds_support import Account, Clock, Pds, pds_config, post_record, start_pds

from atstack.core.stream import CommitEvent, Event, InfoEvent

HOUR = 3600.0


async def logged_seqs(pds: Pds) -> list[int]:
    rows = await pds.ctx.db.read(lambda c: c.execute("SELECT seq FROM repo_seq ORDER BY seq").fetchall())
    return [r[0] for r in rows]


async def write(pds: Pds, account: Account, text: str) -> int:
    """A new post (logging in again: moving the clock hours on expires access tokens); returns its seq."""
    login = await pds.post(
        "com.atproto.server.createSession", {"identifier": account.did, "password": account.password}
    )
    assert login.status == 200, login.body
    r = await pds.create_record(replace(account, access=login.body["accessJwt"]), post_record(text))
    assert r.status == 200, r.body
    return pds.ctx.sequencer.latest_seq() or 0


def shape(events: list[Event]) -> list[object]:
    """``#info`` frames by name, other events by seq."""
    return [e.name if isinstance(e, InfoEvent) else e.seq for e in events]  # type: ignore[union-attr]


async def test_trim_drops_old_events_and_old_cursors_are_told(pds: Pds) -> None:
    retention = pds.ctx.config.event_retention
    assert retention == 72 * HOUR  # the default window
    alice = await pds.create_account("alice")  # seqs 1-3
    assert [await write(pds, alice, f"{i}") for i in range(3)] == [4, 5, 6]
    sequencer = pds.ctx.sequencer
    assert await sequencer.trim(retention) == 0  # nothing is old yet
    assert (sequencer.oldest_seq(), sequencer.latest_seq()) == (1, 6)

    pds.clock.advance(retention + HOUR)
    assert await write(pds, alice, "fresh") == 7
    assert await sequencer.trim(retention) == 6
    assert await logged_seqs(pds) == [7]
    assert (sequencer.oldest_seq(), sequencer.latest_seq()) == (7, 7)
    events = await replay(pds, 2)
    assert shape(events) == ["OutdatedCursor", 7]
    assert isinstance(events[1], CommitEvent) and events[1].repo == alice.did
    assert shape(await replay(pds, 6)) == [7]  # had everything before the window: nothing missed
    assert shape(await replay(pds, 0)) == [7]  # 0 means "the whole window"

    # every event old: the newest stays, as the lower bound of what a cursor can resume from
    pds.clock.advance(retention + HOUR)
    assert await sequencer.trim(retention) == 0
    assert await logged_seqs(pds) == [7]
    assert shape(await replay(pds, 3)) == ["OutdatedCursor", 7]
    assert await write(pds, alice, "later") == 8
    pds.clock.advance(retention + HOUR)
    assert await sequencer.trim(retention) == 1
    assert await logged_seqs(pds) == [8]
    assert shape(await replay(pds, 6)) == ["OutdatedCursor", 8]
    assert shape(await replay(pds, 7)) == [8]


async def test_periodic_trim_and_restart(tmp_path: Path, plc_url: str, http: aiohttp.ClientSession) -> None:
    clock = Clock()
    options = {"event_retention": HOUR, "event_trim_interval": 0.02}
    pds = await start_pds(tmp_path / "pds", plc_url, http, clock, **options)
    try:
        alice = await pds.create_account("alice")  # seqs 1-3
        clock.advance(2 * HOUR)
        assert await write(pds, alice, "fresh") == 4
        deadline = asyncio.get_running_loop().time() + 10
        # oldest_seq moves first (so a cursor arriving mid-trim is already told), then the rows go
        while pds.ctx.sequencer.oldest_seq() != 4 or await logged_seqs(pds) != [4]:
            assert asyncio.get_running_loop().time() < deadline, "the trim task did not run"
            await asyncio.sleep(0.01)
        assert await logged_seqs(pds) == [4]
    finally:
        await pds.runner.cleanup()
    pds = await start_pds(tmp_path / "pds", plc_url, http, clock, **options)
    try:
        assert (pds.ctx.sequencer.oldest_seq(), pds.ctx.sequencer.latest_seq()) == (4, 4)
        assert shape(await replay(pds, 1)) == ["OutdatedCursor", 4]
        assert await write(pds, alice, "after restart") == 5
        assert shape(await replay(pds, 3)) == [4, 5]
    finally:
        await pds.runner.cleanup()


def test_retention_must_be_positive(tmp_path: Path) -> None:
    for bad in ({"event_retention": 0}, {"event_trim_interval": -1}):
        with pytest.raises(ValueError, match="event_retention"):
            pds_config(tmp_path, "http://localhost:1", Clock(), **bad)
    assert pds_config(tmp_path, "http://localhost:1", Clock()).event_retention == 72 * HOUR
