"""`atstack key`: Key generation: private keys and did:key."""

from __future__ import annotations

import json

import click

from atstack.core.crypto import (
    DID_KEY_PREFIX,
    InvalidKey,
    PrivateKey,
    PublicKey,
    generate_private_key,
    load_private_key,
    parse_did_key,
    parse_multikey,
)

_CURVE = click.Choice(["k256", "p256"])


@click.group()
def key() -> None:
    """Key generation: private keys and did:key."""


def _private_fields(priv: PrivateKey) -> dict[str, str]:
    return {
        "curve": priv.curve,
        "privateKeyHex": priv.to_hex(),
        "privateKeyMultibase": priv.to_multibase(),
        "publicKeyMultibase": priv.public_key.multikey(),
        "didKey": priv.did_key(),
    }


def _print_fields(fields: dict[str, str], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(fields, indent=2))
        return
    labels = {
        "kind": "kind",
        "curve": "curve",
        "privateKeyHex": "private key (hex)",
        "privateKeyMultibase": "private key (multibase)",
        "publicKeyMultibase": "public key (multikey)",
        "didKey": "did:key",
    }
    width = max(len(labels[k]) for k in fields)
    for name, value in fields.items():
        click.echo(f"{labels[name]:<{width}}  {value}")


@key.command()
@click.option(
    "--curve", type=_CURVE, default="k256", show_default=True, help="Elliptic curve of the new key."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
def generate(curve: str, as_json: bool) -> None:
    """Generate a private key; print it (hex and multibase) and its public did:key.

    Keep the private key secret: anyone holding it can sign as this key.
    """
    _print_fields(_private_fields(generate_private_key(curve)), as_json)  # type: ignore[arg-type]


def _public_fields(kind: str, pub: PublicKey) -> dict[str, str]:
    return {"kind": kind, "curve": pub.curve, "publicKeyMultibase": pub.multikey(), "didKey": pub.did_key()}


def _inspect(text: str, curve: str | None) -> dict[str, str]:
    # the secret is never echoed back: inspecting a private key shows what it signs as
    if text.startswith(DID_KEY_PREFIX):
        fields = _public_fields("public", parse_did_key(text))
    elif text.startswith("z"):
        try:
            fields = _public_fields("public", parse_multikey(text))
        except InvalidKey as as_public:
            try:
                fields = _public_fields("private", load_private_key(text, curve).public_key)  # type: ignore[arg-type]
            except InvalidKey as as_private:
                raise InvalidKey(
                    f"neither a public multikey ({as_public}) nor a private key ({as_private})"
                ) from None
    else:
        fields = _public_fields("private", load_private_key(text, curve).public_key)  # type: ignore[arg-type]
    if curve is not None and curve != fields["curve"]:
        raise InvalidKey(f"key is {fields['curve']}, not {curve}")
    return fields


@key.command()
@click.argument("key_text", metavar="KEY")
@click.option(
    "--curve",
    type=_CURVE,
    default=None,
    help="Curve of a hex private key (default k256); others name theirs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
def inspect(key_text: str, curve: str | None, as_json: bool) -> None:
    """Show the curve and did:key of KEY (never the private key itself).

    KEY is a private key (64 hex digits or multibase 'z…') or a public key (multikey 'z…' or did:key).
    """
    try:
        fields = _inspect(key_text.strip(), curve)
    except InvalidKey as exc:
        raise click.ClickException(f"not a usable key: {exc}") from None
    _print_fields(fields, as_json)
