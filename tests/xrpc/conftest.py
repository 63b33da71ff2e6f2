"""Real aiohttp servers on loopback ports and real aiohttp clients for the xrpc tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from atstack.xrpc.service import start_test_server

Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """``base_url = await serve(app)``; every server started is cleaned up after the test."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner, url = await start_test_server(app)
        runners.append(runner)
        return url

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
