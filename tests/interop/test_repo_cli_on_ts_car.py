"""`atstack repo inspect | verify | export` on a repo CAR written by Bluesky's ``@atproto/repo``.

The CAR, its signing did:key and the records it holds come from ``js/make_repo_car.mjs`` (fixture
``ts_repo_car``); the CLI runs as a real child process, the way a user runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from atstack.core.cbor import encode_json_mode
from atstack.core.cid import cid_for_cbor
from atstack.core.crypto import generate_private_key


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "atstack", "repo", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _written(info: dict) -> list[dict]:
    records = json.loads(Path(info["recordsFile"]).read_text())
    assert len(records) == info["count"] == 40
    return records


def test_verify_with_the_signing_key(ts_repo_car: tuple[Path, dict]) -> None:
    car, info = ts_repo_car
    proc = _cli("verify", str(car), "--did-key", info["didKey"], "--did", info["did"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"OK {info['did']} rev {info['rev']} commit {info['commit']}: 40 records")
    assert "signature valid" in proc.stdout


def test_verify_with_another_key_fails(ts_repo_car: tuple[Path, dict]) -> None:
    car, info = ts_repo_car
    other = generate_private_key("k256").did_key()
    assert other != info["didKey"]
    proc = _cli("verify", str(car), "--did-key", other)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "signature" in proc.stderr.lower(), proc.stderr
    assert "Traceback" not in proc.stderr


def test_verify_for_another_did_fails(ts_repo_car: tuple[Path, dict]) -> None:
    car, info = ts_repo_car
    proc = _cli("verify", str(car), "--did-key", info["didKey"], "--did", "did:plc:someoneelse0000000000000")
    assert proc.returncode != 0
    assert proc.stdout == ""


def test_inspect(ts_repo_car: tuple[Path, dict]) -> None:
    car, info = ts_repo_car
    proc = _cli("inspect", str(car))
    assert proc.returncode == 0, proc.stderr
    fields = {
        key.strip(): value.strip()
        for key, value in (
            line.split(":", 1) for line in proc.stdout.splitlines() if not line.startswith(" ")
        )
    }
    assert fields["did"] == info["did"]
    assert fields["rev"] == info["rev"]
    assert fields["commit"] == info["commit"]
    assert fields["records"] == "40"
    per_collection = {
        line.split()[0]: int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("  ")
    }
    expected = Counter(r["collection"] for r in _written(info))
    assert per_collection == dict(expected)
    assert expected == {"app.bsky.feed.like": 14, "app.bsky.feed.post": 26}


def test_export_jsonl(ts_repo_car: tuple[Path, dict]) -> None:
    car, info = ts_repo_car
    proc = _cli("export", str(car))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 40
    assert all(set(row) == {"uri", "cid", "value"} for row in rows)
    got = {row["uri"]: row for row in rows}
    assert len(got) == 40
    for written in _written(info):
        uri = f"at://{info['did']}/{written['collection']}/{written['rkey']}"
        assert uri in got, uri
        assert got[uri]["value"] == written["record"]
        assert got[uri]["value"]["text"] == written["record"]["text"]
        assert got[uri]["cid"] == cid_for_cbor(encode_json_mode(written["record"])).encode()
