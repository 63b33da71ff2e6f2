"""`atstack repo`: Repository CAR tools: inspect, export, verify.

Every command reads a whole-repo CAR (``com.atproto.sync.getRepo`` output), checks it with
:func:`atstack.core.repo_verify.verify_repo_car` and reports one line on stderr with exit status 1 when the
file is missing or is not a valid repository.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
import orjson

from atstack.core.cbor import CBORDecodeError, decode_json_mode
from atstack.core.crypto import PublicKey, parse_did_key
from atstack.core.repo_verify import RepoVerifyError, VerifiedRepo, verify_repo_car
from atstack.core.syntax import InvalidSyntax, split_repo_path

_FILE = click.Path(path_type=Path)  # existence and type are checked on read, for a one-line error


def _fail(message: str) -> NoReturn:
    click.echo(" ".join(message.split()), err=True)
    raise SystemExit(1)


def _load(path: Path, *, did: str | None = None, public_key: PublicKey | None = None) -> VerifiedRepo:
    try:
        data = path.read_bytes()
    except OSError as exc:
        _fail(f"error: cannot read {path}: {exc.strerror or exc}")
    try:
        return verify_repo_car(data, did=did, public_key=public_key)
    except RepoVerifyError as exc:
        _fail(f"error: {path}: {exc}")


@click.group()
def repo() -> None:
    """Repository CAR tools: inspect, export, verify."""


@repo.command()
@click.argument("file", type=_FILE)
def inspect(file: Path) -> None:
    """Show a repo CAR's DID, rev, commit, MST root and record counts per collection."""
    v = _load(file)
    click.echo(f"did:       {v.did}")
    click.echo(f"rev:       {v.rev}")
    click.echo(f"commit:    {v.commit_cid.encode()}")
    click.echo(f"mst root:  {v.data_cid.encode()}")
    click.echo(f"blocks:    {len(v.blocks)}")
    click.echo(f"records:   {v.record_count}")
    width = max((len(c) for c in v.records), default=0)
    for collection, count in v.records.items():
        click.echo(f"  {collection:<{width}}  {count}")


def _json_value(path: str, block: bytes) -> object:
    try:
        return decode_json_mode(block)
    except CBORDecodeError as exc:
        _fail(f"error: record {path} cannot be converted to JSON: {exc}")


@repo.command()
@click.argument("file", type=_FILE)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write DIR/<collection>/<rkey>.json per record instead of JSON lines on stdout.",
)
def export(file: Path, out_dir: Path | None) -> None:
    """Export every record as JSON (data-model JSON form): JSONL {uri, cid, value} or one file per record."""
    v = _load(file)
    if out_dir is None:
        out = sys.stdout.buffer
        for path, cid, block in v.iter_records():
            line = {"uri": f"at://{v.did}/{path}", "cid": cid.encode(), "value": _json_value(path, block)}
            out.write(orjson.dumps(line) + b"\n")
        out.flush()
        return
    base = out_dir.resolve()
    planned: list[tuple[Path, str, bytes]] = []
    for path, _cid, block in v.iter_records():
        try:
            collection, rkey = split_repo_path(path)
        except InvalidSyntax as exc:  # verify_repo_car already checks; never trust a path blindly
            _fail(f"error: refusing record path {path[:200]!r}: {exc}")
        target = (base / collection / f"{rkey}.json").resolve()
        if target.parent.parent != base:
            _fail(f"error: refusing record path {path[:200]!r}: it would escape {out_dir}")
        planned.append((target, path, block))
    try:
        for target, path, block in planned:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(orjson.dumps(_json_value(path, block), option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as exc:
        _fail(f"error: cannot write to {out_dir}: {exc.strerror or exc}")
    click.echo(f"exported {len(planned)} records to {out_dir}")


@repo.command()
@click.argument("file", type=_FILE)
@click.option("--did-key", help="Check the commit signature with this did:key (the account's signing key).")
@click.option("--did", "did", help="Require the commit to be for this DID.")
def verify(file: Path, did_key: str | None, did: str | None) -> None:
    """Verify a repo CAR: block hashes, commit, MST structure, records present (and signature with --did-key)."""
    public_key = None
    if did_key is not None:
        try:
            public_key = parse_did_key(did_key)
        except ValueError as exc:
            _fail(f"error: --did-key: {exc}")
    v = _load(file, did=did, public_key=public_key)
    signed = "signature valid" if public_key is not None else "signature not checked"
    click.echo(
        f"OK {v.did} rev {v.rev} commit {v.commit_cid.encode()}: {v.record_count} records in "
        f"{len(v.records)} collections, {signed}"
    )
