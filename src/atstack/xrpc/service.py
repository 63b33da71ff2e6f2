"""Running services: uvloop, listening sockets, graceful shutdown on SIGINT/SIGTERM, test servers.

The command-line contract (DESIGN "Command line and ports"): every service listens on ``--host``/``--port``,
logs its URL to stderr once listening, and exits cleanly on SIGINT/SIGTERM — on_shutdown hooks first (event
streams send their close frames), then open connections get ``shutdown_timeout`` to finish, then cleanup
hooks run (databases close). :func:`serve_apps` runs several apps in one event loop, for ``atstack up``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["ServiceSpec", "run", "run_service", "serve_apps", "start_test_server"]

log = logging.getLogger("atstack.service")


@dataclass(slots=True, frozen=True)
class ServiceSpec:
    """One app to serve: ``name`` is used in the log line, ``host``/``port`` where it listens."""

    app: web.Application
    host: str
    port: int
    name: str


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion on uvloop when it is installed (stdlib asyncio otherwise)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)


async def serve_apps(
    specs: Sequence[ServiceSpec],
    *,
    stop: asyncio.Event | None = None,
    shutdown_timeout: float = 10.0,
    on_ready: Callable[[list[tuple[ServiceSpec, str]]], None] | None = None,
) -> None:
    """Serve every app until SIGINT/SIGTERM (or ``stop`` is set), then shut all of them down gracefully."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    installed: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or a platform without signal support
    runners: list[web.AppRunner] = []
    ready: list[tuple[ServiceSpec, str]] = []
    try:
        for spec in specs:
            runner = web.AppRunner(spec.app, access_log=None, shutdown_timeout=shutdown_timeout)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, spec.host, spec.port, reuse_address=True, backlog=1024)
            await site.start()
            url = _url_of(runner, spec.host)
            ready.append((spec, url))
            log.info("%s listening on %s", spec.name, url, extra={"service_name": spec.name, "url": url})
        if on_ready is not None:
            on_ready(ready)
        await stop.wait()
        log.info("shutting down", extra={"services": [spec.name for spec in specs]})
    finally:
        for runner in reversed(runners):
            try:
                await runner.cleanup()
            except Exception:
                log.exception("error while shutting down")
        for sig in installed:
            loop.remove_signal_handler(sig)


def run_service(
    app: web.Application, host: str, port: int, *, name: str, shutdown_timeout: float = 10.0
) -> None:
    """Blocking entry point for ``atstack <service>``: serve ``app`` until SIGINT/SIGTERM."""
    run(serve_apps([ServiceSpec(app, host, port, name)], shutdown_timeout=shutdown_timeout))


def _url_of(runner: web.AppRunner, host: str) -> str:
    addresses = runner.addresses
    port = addresses[-1][1] if addresses else 0
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def start_test_server(app: web.Application, host: str = "127.0.0.1") -> tuple[web.AppRunner, str]:
    """Serve ``app`` on a free loopback port; returns the runner (``await runner.cleanup()``) and base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    return runner, _url_of(runner, host)
