"""Shared fixtures of the relay tests: an HTTP session and a PLC directory per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from relay_support import start_plc


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def plc_url(tmp_path: Path) -> AsyncIterator[str]:
    url, runner = await start_plc(tmp_path / "plc")
    yield url
    await runner.cleanup()
