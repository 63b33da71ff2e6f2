"""Fixtures for the identity tests: real servers on loopback, a client session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from identity_support import DnsServer, WebHost, start_dns, start_plc, start_web_host


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def plc_url(tmp_path: Path) -> AsyncIterator[str]:
    url, runner = await start_plc(tmp_path / "plc")
    yield url
    await runner.cleanup()


@pytest.fixture
async def web_host() -> AsyncIterator[WebHost]:
    host, runner = await start_web_host()
    yield host
    await runner.cleanup()


@pytest.fixture
async def dns_server() -> AsyncIterator[tuple[DnsServer, int]]:
    server, port, close = await start_dns()
    yield server, port
    close()


__all__ = ["web"]
