"""Running a service for real: JSON logs on stderr, health, graceful SIGTERM with an open event stream."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import socket
import sys
import textwrap

import aiohttp
import orjson

from atstack.xrpc.logs import JSONFormatter, configure_logging

CHILD = textwrap.dedent(
    """
    import sys
    from atstack.xrpc import EventStreamHub, MemoryEventLog, XRPCRouter, configure_logging, run_service

    configure_logging("demo")
    router = XRPCRouter("demo")
    hub = EventStreamHub(MemoryEventLog())
    hub.mount(router)
    run_service(router.create_app(), "127.0.0.1", int(sys.argv[1]), name="demo")
    print("exited cleanly", flush=True)
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_run_service_logs_serves_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None and proc.stdout is not None
    try:
        line = orjson.loads(await asyncio.wait_for(proc.stderr.readline(), 30))
        assert line["service"] == "demo" and line["level"] == "info"
        assert line["url"] == f"http://127.0.0.1:{port}"
        assert line["msg"] == f"demo listening on http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/xrpc/_health") as r:
                assert r.status == 200
            ws = await http.ws_connect(f"ws://127.0.0.1:{port}/xrpc/com.atproto.sync.subscribeRepos")
            proc.send_signal(signal.SIGTERM)
            msg = await ws.receive(timeout=10)
            assert msg.type is aiohttp.WSMsgType.CLOSE
            assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        assert (await proc.stdout.read()).strip() == b"exited cleanly"
        rest = [orjson.loads(x) for x in (await proc.stderr.read()).splitlines() if x.strip()]
        assert any(entry["msg"] == "shutting down" for entry in rest)
        access = [entry for entry in rest if entry["logger"] == "atstack.access"]
        assert {entry["path"] for entry in access} >= {
            "/xrpc/_health",
            "/xrpc/com.atproto.sync.subscribeRepos",
        }
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_json_log_lines_carry_extra_fields_and_tracebacks() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    configure_logging("svc", stream=out)
    try:
        logger = logging.getLogger("atstack.test")
        logger.info("hello %s", "world", extra={"did": "did:plc:x", "n": 3})
        try:
            raise KeyError("boom")
        except KeyError:
            logger.exception("failed\nbadly")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, "one line per record, even with newlines in the message or traceback"
    first, second = (orjson.loads(x) for x in lines)
    assert first["msg"] == "hello world" and first["did"] == "did:plc:x" and first["n"] == 3
    assert first["service"] == "svc" and first["level"] == "info" and first["logger"] == "atstack.test"
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert second["level"] == "error" and "KeyError: 'boom'" in second["exc"]


def test_formatter_survives_unserialisable_extras() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.obj = object()
    assert "object object" in orjson.loads(JSONFormatter("s").format(record))["obj"]
