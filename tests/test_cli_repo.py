"""`atstack repo inspect | export | verify` on CARs built by `Repo` and on the CAR fixture."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import vectors
from atstack.cli import main
from atstack.core.blockstore import MemoryBlockStore
from atstack.core.car import read_car, write_car
from atstack.core.cbor import encode
from atstack.core.cid import cid_for_cbor
from atstack.core.crypto import generate_private_key
from atstack.core.repo import RecordWrite, Repo

DID = "did:plc:abcdefghijklmnopqrstuvwx"
KEY = generate_private_key()
POST = "app.bsky.feed.post"


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _posts() -> dict[str, dict]:
    posts = {
        f"3l2aaaaaaa{i:02d}2".replace("0", "a").replace("1", "b"): {"$type": POST, "text": f"post {i}"}
        for i in range(12)
    }
    first = next(iter(posts))
    posts[first]["link"] = cid_for_cbor(b"\xa0")  # a cid-link and bytes, to see the JSON form
    posts[first]["data"] = b"\x01\x02"
    return posts


@pytest.fixture(scope="module")
def repo_car(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = MemoryBlockStore()
    repo, _ = Repo.create(store, DID, KEY)
    writes = [RecordWrite.create(POST, rkey, encode(v)) for rkey, v in _posts().items()]
    writes.append(RecordWrite.create("app.bsky.actor.profile", "self", encode({"$type": "x", "n": 1})))
    writes.append(RecordWrite.create("com.example.odd", "a:b~c", encode({"$type": "y"})))
    repo.apply_writes(writes, KEY)
    path = tmp_path_factory.mktemp("car") / "repo.car"
    path.write_bytes(repo.export_car())
    return path


def _one_line_error(code: int, out: str, err: str) -> str:
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    return lines[0]


def test_inspect(repo_car: Path) -> None:
    code, out, _ = _run("repo", "inspect", str(repo_car))
    assert code == 0
    car = read_car(repo_car.read_bytes())
    assert DID in out and car.roots[0].encode() in out
    assert "records:   14" in out
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith("  ")}
    assert lines == {"app.bsky.actor.profile": "1", POST: "12", "com.example.odd": "1"}


def test_export_jsonl(repo_car: Path) -> None:
    code, out, _ = _run("repo", "export", str(repo_car))
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 14
    by_uri = {r["uri"]: r for r in rows}
    posts = _posts()
    first = next(iter(posts))
    row = by_uri[f"at://{DID}/{POST}/{first}"]
    assert row["cid"] == cid_for_cbor(encode(posts[first])).encode()
    assert row["value"]["link"] == {"$link": cid_for_cbor(b"\xa0").encode()}
    assert row["value"]["data"]["$bytes"].rstrip("=") == base64.b64encode(b"\x01\x02").decode().rstrip("=")
    assert by_uri[f"at://{DID}/com.example.odd/a:b~c"]["value"] == {"$type": "y"}


def test_export_dir(repo_car: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, out, _ = _run("repo", "export", str(repo_car), "--out", str(out_dir))
    assert code == 0 and "14 records" in out
    files = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.json"))
    assert len(files) == 14
    assert "app.bsky.actor.profile/self.json" in files
    assert json.loads((out_dir / "app.bsky.actor.profile" / "self.json").read_text()) == {
        "$type": "x",
        "n": 1,
    }


def test_verify_ok_and_key(repo_car: Path) -> None:
    code, out, _ = _run("repo", "verify", str(repo_car))
    assert code == 0 and out.startswith("OK ") and len(out.strip().splitlines()) == 1
    assert "not checked" in out
    code, out, _ = _run("repo", "verify", str(repo_car), "--did-key", KEY.did_key(), "--did", DID)
    assert code == 0 and "signature valid" in out and "14 records" in out
    line = _one_line_error(
        *_run("repo", "verify", str(repo_car), "--did-key", generate_private_key().did_key())
    )
    assert "signature" in line
    line = _one_line_error(
        *_run("repo", "verify", str(repo_car), "--did", "did:plc:zzzzzzzzzzzzzzzzzzzzzzzz")
    )
    assert "expected" in line
    assert "did-key" in _one_line_error(*_run("repo", "verify", str(repo_car), "--did-key", "did:key:zNope"))


def test_bad_inputs(repo_car: Path, tmp_path: Path) -> None:
    data = repo_car.read_bytes()
    car = read_car(data)
    garbage = tmp_path / "garbage.car"
    garbage.write_bytes(b"this is not a car file at all")
    truncated = tmp_path / "truncated.car"
    truncated.write_bytes(data[: len(data) // 2])
    record = next(c for c, b in car.blocks.items() if b"post 3" in b)
    missing = tmp_path / "missing-record.car"
    missing.write_bytes(write_car(car.roots, [(c, b) for c, b in car.blocks.items() if c != record]))
    empty = tmp_path / "empty.car"
    empty.write_bytes(b"")
    cases = [tmp_path / "does-not-exist.car", garbage, truncated, missing, empty, tmp_path]
    ran = 0
    for path in cases:
        for cmd in ("inspect", "export", "verify"):
            line = _one_line_error(*_run("repo", cmd, str(path)))
            assert line.startswith("error:")
            ran += 1
    assert ran == 18
    assert "missing" in _one_line_error(*_run("repo", "verify", str(missing)))


def test_fixture_car_is_rejected_cleanly(tmp_path: Path) -> None:
    fixtures = vectors.vector_json("repo", "car-file-fixtures.json", base=vectors.EXTRA)
    for i, fx in enumerate(fixtures):
        path = tmp_path / f"fixture{i}.car"
        path.write_bytes(base64.b64decode(fx["car"] + "=" * (-len(fx["car"]) % 4)))
        # a well-formed CAR whose root is not a commit: a clear one-line reason, no traceback
        line = _one_line_error(*_run("repo", "verify", str(path)))
        assert "commit" in line
        assert "commit" in _one_line_error(*_run("repo", "inspect", str(path)))
    assert len(fixtures) > 0
