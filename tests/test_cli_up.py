"""``atstack up`` as a process: every service healthy, an account and a post work, SIGINT stops it cleanly,
and a second start reuses the data directory."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port_base() -> int:
    """A base port with the next few ports free too."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base > 60000:
            continue
        ok = True
        for p in range(base, base + 5):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


def _call(url: str, body: dict | None = None, token: str | None = None) -> dict:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, headers=headers, method="POST" if body is not None else "GET"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _start(data_dir: Path, base: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "atstack", "up", "--data-dir", str(data_dir), "--port-base", str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            for port in (base, base + 1, base + 2, base + 3):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/xrpc/_health", timeout=2) as r:
                    assert r.status == 200
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("atstack up did not become healthy")


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, _err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    return out


def test_up_runs_the_stack_and_reuses_data(tmp_path: Path) -> None:
    base = _free_port_base()
    pds = f"http://127.0.0.1:{base + 1}"
    proc = _start(tmp_path / "data", base)
    try:
        session = _call(
            f"{pds}/xrpc/com.atproto.server.createAccount",
            {"handle": "alice.test", "email": "alice@example.com", "password": "change-me-123"},
        )
        post = {
            "$type": "app.bsky.feed.post",
            "text": "hello from atstack",
            "createdAt": "2026-01-01T00:00:00Z",
        }
        created = _call(
            f"{pds}/xrpc/com.atproto.repo.createRecord",
            {"repo": "alice.test", "collection": "app.bsky.feed.post", "record": post},
            token=session["accessJwt"],
        )
        assert created["uri"].startswith(f"at://{session['did']}/app.bsky.feed.post/")
        # The relay crawled the PDS and Jetstream, subscribed to the relay, stored the events as JSON.
        deadline = time.monotonic() + 15
        status: dict = {}
        while time.monotonic() < deadline:
            status = _call(f"http://127.0.0.1:{base + 3}/status")
            if (status.get("events_stored") or 0) >= 2:  # at least the account's commit and the post
                break
            time.sleep(0.2)
        assert (status.get("events_stored") or 0) >= 2, status
    finally:
        out = _stop(proc) if proc.poll() is None else ""
    assert f"http://127.0.0.1:{base}" in out and pds in out
    assert "admin_password" in out
    assert (tmp_path / "data" / "admin_password").exists()

    proc = _start(tmp_path / "data", base)
    try:
        listed = _call(
            f"{pds}/xrpc/com.atproto.repo.listRecords?repo=alice.test&collection=app.bsky.feed.post"
        )
        assert [r["value"]["text"] for r in listed["records"]] == ["hello from atstack"]
        doc = _call(f"http://127.0.0.1:{base}/{session['did']}")
        assert doc["alsoKnownAs"] == ["at://alice.test"]
    finally:
        if proc.poll() is None:
            _stop(proc)
