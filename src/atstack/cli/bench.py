"""`atstack bench`: Benchmarks that print throughput, latency percentiles and peak RSS."""

from __future__ import annotations

import click


@click.group()
def bench() -> None:
    """Benchmarks that print throughput, latency percentiles and peak RSS."""
