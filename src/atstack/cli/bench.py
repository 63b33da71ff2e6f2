"""`atstack bench`: benchmarks that print throughput, latency percentiles and peak RSS."""

from __future__ import annotations

import click


@click.group()
def bench() -> None:
    """Benchmarks that print throughput, latency percentiles and peak RSS."""


@bench.command("core")
@click.option("--records", default=100_000, show_default=True, help="Records in the benchmark repository.")
@click.option("--seconds", default=1.0, show_default=True, help="Measuring time per figure.")
def core(records: int, seconds: float) -> None:
    """DRISL, signatures, CAR, MST and repository operations on one core."""
    from atstack.bench.core import run

    run(records=records, seconds=seconds)
