"""`atstack key generate` and `atstack key inspect`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from atstack.cli import main
from atstack.core.crypto import load_private_key, parse_did_key


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("curve", ["k256", "p256"])
def test_generate_json(curve: str) -> None:
    code, out, _ = _run("key", "generate", "--curve", curve, "--json")
    assert code == 0
    fields = json.loads(out)
    assert fields["curve"] == curve
    key = load_private_key(fields["privateKeyHex"], curve)  # type: ignore[arg-type]
    assert load_private_key(fields["privateKeyMultibase"]) == key
    assert fields["didKey"] == key.did_key() == "did:key:" + fields["publicKeyMultibase"]
    assert parse_did_key(fields["didKey"]).curve == curve


def test_generate_text_defaults_to_k256_and_is_random() -> None:
    code, out, _ = _run("key", "generate")
    assert code == 0
    assert "k256" in out and "did:key:zQ3sh" in out
    hex_line = next(line for line in out.splitlines() if line.startswith("private key (hex)"))
    secret = hex_line.split()[-1]
    assert load_private_key(secret).did_key() in out
    _, again, _ = _run("key", "generate")
    assert again != out


def test_inspect_private_keys_never_echoes_the_secret() -> None:
    _, out, _ = _run("key", "generate", "--curve", "p256", "--json")
    fields = json.loads(out)
    code, shown, _ = _run("key", "inspect", fields["privateKeyMultibase"], "--json")
    assert code == 0
    assert json.loads(shown) == {
        "kind": "private",
        "curve": "p256",
        "publicKeyMultibase": fields["publicKeyMultibase"],
        "didKey": fields["didKey"],
    }
    assert fields["privateKeyHex"] not in shown and fields["privateKeyMultibase"] not in shown
    code, shown, _ = _run("key", "inspect", fields["privateKeyHex"], "--curve", "p256")
    assert code == 0 and fields["didKey"] in shown and fields["privateKeyHex"] not in shown
    # a hex key carries no curve: without --curve it is read as k256, a different key
    code, shown, _ = _run("key", "inspect", fields["privateKeyHex"], "--json")
    assert code == 0 and json.loads(shown)["curve"] == "k256"


def test_inspect_public_keys() -> None:
    multikey = "zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo"
    for text in (multikey, "did:key:" + multikey):
        code, out, _ = _run("key", "inspect", text, "--json")
        assert code == 0
        assert json.loads(out) == {
            "kind": "public",
            "curve": "p256",
            "publicKeyMultibase": multikey,
            "didKey": "did:key:" + multikey,
        }
    code, out, _ = _run("key", "inspect", "did:key:" + multikey)
    assert code == 0 and "p256" in out and "public" in out


@pytest.mark.parametrize(
    "args",
    [
        ("key", "inspect", "garbage"),
        ("key", "inspect", "did:key:zQ3shXjHe"),
        ("key", "inspect", "zQ3shXjHe"),
        ("key", "inspect", "00" * 32),  # zero scalar
        ("key", "inspect", "zDnaembgSGUhZULN2Caob4HLJPaxBh92N7rtH21TErzqf8HQo", "--curve", "k256"),
    ],
)
def test_bad_input_is_a_one_line_error(args: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
