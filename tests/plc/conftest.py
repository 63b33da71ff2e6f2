"""A real PLC directory on a loopback port (fresh data directory and clock per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from plc_support import Clock, Plc, start_plc


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def plc(tmp_path: Path, http: aiohttp.ClientSession) -> AsyncIterator[Plc]:
    server, runner = await start_plc(tmp_path / "plc", Clock(), http)
    yield server
    await runner.cleanup()
