"""`atstack syntax`: Identifier syntax checks."""

from __future__ import annotations

import click


@click.group()
def syntax() -> None:
    """Identifier syntax checks."""
