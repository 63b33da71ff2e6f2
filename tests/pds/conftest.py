"""A real PLC directory and PDS on loopback ports per test (fresh data directories, movable clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pds_support import Clock, Pds, start_pds, start_plc


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def plc_url(tmp_path: Path) -> AsyncIterator[str]:
    url, runner = await start_plc(tmp_path / "plc")
    yield url.replace("127.0.0.1", "localhost")
    await runner.cleanup()


@pytest.fixture
async def pds(tmp_path: Path, plc_url: str, http: aiohttp.ClientSession) -> AsyncIterator[Pds]:
    server = await start_pds(tmp_path / "pds", plc_url, http, Clock())
    yield server
    await server.runner.cleanup()
