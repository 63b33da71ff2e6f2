"""`atstack repo`: Repository CAR tools: inspect, export, verify."""

from __future__ import annotations

import click


@click.group()
def repo() -> None:
    """Repository CAR tools: inspect, export, verify."""
