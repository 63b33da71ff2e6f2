"""Helpers for the real-client tests: a PLC + PDS pair run as child processes, XRPC calls, Node scripts.

The services are started exactly as a user starts them (``python -m atstack plc|pds`` with the flags of the
DESIGN "Command line and ports" contract) and are reached only over the wire. Setting
``ATSTACK_INTEROP_PDS_URL`` and ``ATSTACK_INTEROP_PLC_URL`` points the tests at an already running pair
instead — Bluesky's reference PDS from ``shared/refpds`` — which is how the tests themselves are checked
independently of our implementation.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HTTP_TIMEOUT = 15.0
STARTUP_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Stack:
    """Where the PDS under test and its PLC directory answer; ``kind`` is ``atstack`` or ``external``."""

    pds_url: str
    plc_url: str
    admin_password: str
    kind: str

    @property
    def ws_url(self) -> str:
        return "ws" + self.pds_url.removeprefix("http")


@dataclass(slots=True)
class Account:
    handle: str
    password: str
    did: str
    access_jwt: str
    refresh_jwt: str
    email: str = field(default="")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_jwt}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(slots=True)
class Service:
    """One child process with its stderr in a file (a pipe could fill up and stall the service)."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        return terminate(self.proc)


def terminate(proc: subprocess.Popen[Any]) -> int | None:
    """SIGTERM, then kill if it has not exited within 15 s; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
    return proc.returncode


def spawn(name: str, args: list[str], log: Path, env: dict[str, str] | None = None) -> Service:
    handle = log.open("wb")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "atstack", name, *args],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    finally:
        handle.close()
    return Service(name, proc, log)


def wait_healthy(service: Service, url: str, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            raise AssertionError(
                f"atstack {service.name} exited with {service.proc.returncode} before it was healthy:\n"
                f"{service.log_tail()}"
            )
        try:
            if httpx.get(f"{url}/xrpc/_health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(
        f"atstack {service.name} not healthy at {url} within {timeout} s:\n{service.log_tail()}"
    )


def new_handle(prefix: str) -> str:
    """A fresh handle under ``.test`` whose first label stays within the reference PDS's 18 characters."""
    return f"{prefix[:10]}{secrets.token_hex(3)}.test"


def xrpc(
    stack: Stack,
    method: str,
    nsid: str,
    *,
    account: Account | None = None,
    params: dict[str, Any] | None = None,
    body: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    hdrs = {**(account.auth if account else {}), **(headers or {})}
    return httpx.request(
        method,
        f"{stack.pds_url}/xrpc/{nsid}",
        params=params,
        json=body,
        content=content,
        headers=hdrs,
        timeout=HTTP_TIMEOUT,
    )


def create_account(stack: Stack, prefix: str) -> Account:
    handle = new_handle(prefix)
    password = secrets.token_urlsafe(12)
    email = f"{handle.split('.')[0]}@example.com"
    resp = xrpc(
        stack,
        "POST",
        "com.atproto.server.createAccount",
        body={"handle": handle, "email": email, "password": password},
    )
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["handle"] == handle and out["did"].startswith("did:plc:"), out
    return Account(handle, password, out["did"], out["accessJwt"], out["refreshJwt"], email)


def create_record(stack: Stack, account: Account, collection: str, record: dict[str, Any]) -> dict[str, Any]:
    resp = xrpc(
        stack,
        "POST",
        "com.atproto.repo.createRecord",
        account=account,
        body={"repo": account.did, "collection": collection, "record": record},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def png_bytes(width: int = 16, height: int = 16) -> bytes:
    """A real (decodable) RGB PNG, random so every run uploads a new blob."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + secrets.token_bytes(width * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def node_major(binary: str) -> int:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=True)
    return int(out.stdout.strip().lstrip("v").split(".")[0])


def run_node(node: str, js_dir: Path, script: str, *args: str, timeout: float = 180) -> dict[str, Any]:
    """Run one driver script; it must exit 0 and print its result as the last line (a JSON object)."""
    proc = subprocess.run(
        [node, script, *args], cwd=js_dir, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, (
        f"{script} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, f"{script} printed nothing; stderr:\n{proc.stderr}"
    return json.loads(lines[-1])


class NodeLines:
    """A Node script as a child process, its stdout JSON lines collected by a reader thread (anything that is
    not JSON goes to ``junk``); ``send`` writes one JSON command line to its stdin."""

    def __init__(self, node: str, js_dir: Path, script: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [node, script, *args],
            cwd=js_dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self.junk: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._cond:
                try:
                    self.lines.append(json.loads(raw))
                except json.JSONDecodeError:
                    self.junk.append(raw)
                self._cond.notify_all()

    def wait_for(self, done: Callable[[list[dict[str, Any]]], bool], timeout: float) -> bool:
        """Until ``done(lines)`` holds (True), the timeout passes or the process exits (then ``done(lines)``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done(self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return done(self.lines)
                self._cond.wait(min(left, 0.5))
            return True

    def send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def stop(self) -> str:
        """SIGTERM (then kill), and the process's stderr."""
        terminate(self.proc)
        self._reader.join(timeout=15)
        return self.proc.stderr.read() if self.proc.stderr else ""
