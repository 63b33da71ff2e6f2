"""A real PLC directory and PDS per test (in-process, loopback) and a Jetstream subscribed to the PDS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from jetstream_support import Jet, Pds, start_jetstream
from pds_support import Clock, start_pds, start_plc


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def pds(tmp_path: Path, http: aiohttp.ClientSession) -> AsyncIterator[Pds]:
    plc_url, plc_runner = await start_plc(tmp_path / "plc")
    server = await start_pds(tmp_path / "pds", plc_url.replace("127.0.0.1", "localhost"), http, Clock())
    yield server
    await server.runner.cleanup()
    await plc_runner.cleanup()


@pytest.fixture
async def jet(tmp_path: Path, pds: Pds) -> AsyncIterator[Jet]:
    server = await start_jetstream(tmp_path / "jetstream", pds.url)
    yield server
    await server.stop()
