"""Fixtures that run Bluesky's own TypeScript packages (from npm) beside our code.

The packages are pinned in ``js/package-lock.json`` and installed with ``npm ci`` on first use. Node and npm
must be present (``.ci/run`` installs them); a missing toolchain fails the tests rather than skipping them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

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
    """A repo CAR written by ``@atproto/repo`` with 40 records, and what the script says about it."""
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
