"""`atstack key`: Key generation: private keys and did:key."""

from __future__ import annotations

import click


@click.group()
def key() -> None:
    """Key generation: private keys and did:key."""
