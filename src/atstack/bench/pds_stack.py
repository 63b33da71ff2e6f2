"""Servers for ``atstack bench pds``: a local atstack stack in child processes, and facts read about a server.

Without ``--url`` the bench starts ``atstack plc`` and ``atstack pds`` as two child processes on free
loopback ports with a temporary data directory. Two processes rather than ``atstack up`` (which runs both in
one): the PDS's RSS is then the PDS alone, as it is for the reference (whose PLC is its own process), and
the PDS runs with ``--no-rate-limits`` (the reference's default) so creating 1,000 accounts from one
address is not refused. Everything else is the PDS's default configuration — bundled lexicons, INFO access
log (to a file), ``synchronous=FULL``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

__all__ = ["LocalStack", "Target", "free_port", "read_rss_mib", "wait_healthy"]


@dataclass(slots=True)
class Target:
    """One PDS to measure: its URL, how to administer it, and its process id when known (for RSS)."""

    name: str
    url: str
    admin_password: str | None = None
    invite_code: str | None = None
    pid: int | None = None
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_rss_mib(pid: int) -> tuple[float, float] | None:
    """``(VmHWM, VmRSS)`` of a process in MiB from ``/proc/<pid>/status``; None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return None
    try:
        hwm = int(fields["VmHWM"].split()[0]) / 1024
        rss = int(fields["VmRSS"].split()[0]) / 1024
    except (KeyError, ValueError, IndexError):
        return None
    return hwm, rss


async def wait_healthy(
    http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 30
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server process for {url} exited with {proc.returncode}")
        try:
            async with http.get(f"{url}/xrpc/_health") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not become healthy within {timeout:.0f} s")


class LocalStack:
    """``atstack plc`` + ``atstack pds`` in child processes; ``async with`` starts and stops them."""

    def __init__(self, admin_password: str | None = None, keep_dir: bool = False) -> None:
        self.admin_password = admin_password or secrets.token_urlsafe(12)
        self.keep_dir = keep_dir
        self.dir = Path(tempfile.mkdtemp(prefix="atstack-bench-pds-"))
        self.plc_port = free_port()
        self.pds_port = free_port()
        self.plc: subprocess.Popen[bytes] | None = None
        self.pds: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.pds_port}"

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with open(self.dir / log_name, "ab") as sink:
            return subprocess.Popen(
                [sys.executable, "-m", "atstack", *args],
                stdout=subprocess.DEVNULL,
                stderr=sink,
                env={**os.environ, "ATSTACK_ADMIN_PASSWORD": self.admin_password},
            )

    async def __aenter__(self) -> LocalStack:
        try:
            self.plc = self._spawn(
                [
                    "plc",
                    "--data-dir",
                    str(self.dir / "plc"),
                    "--port",
                    str(self.plc_port),
                    "--log-level",
                    "WARNING",
                ],
                "plc.log",
            )
            self.pds = self._spawn(
                [
                    "pds",
                    "--data-dir", str(self.dir / "pds"),
                    "--port", str(self.pds_port),
                    "--plc-url", f"http://localhost:{self.plc_port}",
                    "--no-rate-limits",
                ],
                "pds.log",
            )  # fmt: skip
            async with aiohttp.ClientSession() as http:
                await wait_healthy(http, f"http://127.0.0.1:{self.plc_port}", self.plc)
                await wait_healthy(http, self.url, self.pds)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    def target(self) -> Target:
        assert self.pds is not None
        return Target("atstack", self.url, self.admin_password, pid=self.pds.pid)

    async def __aexit__(self, *exc: object) -> None:
        for proc in (self.pds, self.plc):
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
