"""A small run of the fan-out benchmark: every subscriber receives every byte, on the coalesced path and
on the one-send-per-frame path."""

from __future__ import annotations

import pytest
from bench_fanout import run_bench


@pytest.mark.parametrize("coalesce", [True, False])
async def test_fanout_delivers_every_frame_to_every_subscriber(coalesce: bool) -> None:
    result = await run_bench(subscribers=10, frames=2000, size=300, coalesce=coalesce)
    assert result["frames"] == 2000 and result["subscribers"] == 10
    assert result["frames_per_s"] > 0
    print(result)
