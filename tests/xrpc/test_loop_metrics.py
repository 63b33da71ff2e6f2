"""The loop-only metric types expose exactly what prometheus_client's own types would for the same updates."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from atstack.xrpc.loop_metrics import LoopCounter, LoopHistogram

BUCKETS = (0.0005, 0.001, 0.0025, 0.01, 0.1, 1.0, 2.5)


def _samples(registry: CollectorRegistry) -> list[bytes]:
    # the exposition minus comment lines and the _created samples prometheus_client adds to its own types
    return sorted(
        line
        for line in generate_latest(registry).splitlines()
        if not line.startswith(b"#") and b"_created" not in line
    )


def test_counter_matches_prometheus_counter() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    a = LoopCounter("x_events_total", "Events.", ("type",), registry=ours)
    b = Counter("x_events_total", "Events.", ("type",), registry=theirs)
    for kind, n in (("#commit", 5), ("#sync", 1), ("#commit", 2)):
        a.labels(kind).inc(n)
        b.labels(kind).inc(n)
    assert _samples(ours) == _samples(theirs)
    assert b'x_events_total{type="#commit"} 7.0' in _samples(ours)
    with pytest.raises(ValueError):
        a.labels("one", "too many")


@pytest.mark.parametrize("labelled", [False, True])
def test_histogram_matches_prometheus_histogram(labelled: bool) -> None:
    rng = random.Random(3)
    values = [rng.expovariate(200) for _ in range(2000)] + list(BUCKETS) + [0.0, 7.0]  # bounds are "le"
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    labels = ("type",) if labelled else ()
    a = LoopHistogram("x_seconds", "Time.", labels, buckets=BUCKETS, registry=ours)
    b = Histogram("x_seconds", "Time.", labels, buckets=BUCKETS, registry=theirs)
    for v in values:
        (a.labels("#commit") if labelled else a).observe(v)
        (b.labels("#commit") if labelled else b).observe(v)
    mine, reference = _samples(ours), _samples(theirs)
    # sums may differ in the last digits (same additions, same order: they should not, but do not rely on it)
    assert [s for s in mine if b"_sum" not in s] == [s for s in reference if b"_sum" not in s]
    (ours_sum,) = [float(s.split()[-1]) for s in mine if b"_sum" in s]
    assert ours_sum == pytest.approx(sum(values))
    assert any(b'le="+Inf"' in s and s.endswith(f" {len(values)}.0".encode()) for s in mine)
