"""Counters and histograms for per-event hot paths that only the event-loop thread updates.

prometheus_client's metrics take a lock and run a few Python checks on every ``inc``/``observe`` (about 1 µs
each): at thousands of events per second, with several metrics per event, that is a measurable share of a
service's CPU. The types here keep plain Python numbers instead (an ``int`` add, a ``bisect`` into bucket
counts) and are read by a custom collector at scrape time, in the same exposition format (``_total``
counters, cumulative ``_bucket``/``_sum``/``_count`` histograms). They are not thread-safe: update them from
the event loop only; a scrape runs on the loop too, so it never sees a half-made update.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["LoopCounter", "LoopHistogram"]


class _CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class LoopCounter(Collector):
    """A labelled counter: ``labels(*values).inc(n)``; exposed as ``<name>_total``."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry):
        self.name = name.removesuffix("_total")
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], _CounterChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> _CounterChild:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _CounterChild()
        return child

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value)
        yield family

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)


class _HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket (not cumulative); the last is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (Prometheus buckets are "le")
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class LoopHistogram(Collector):
    """A histogram with fixed bucket bounds, optionally labelled: ``observe(v)`` or ``labels(*v).observe``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(sorted(float(b) for b in buckets))
        self._children: dict[tuple[str, ...], _HistogramChild] = {}
        if not self.labelnames:
            self._unlabelled = self._children[()] = _HistogramChild(self.bounds)
        registry.register(self)

    def labels(self, *values: str) -> _HistogramChild:
        if len(values) != len(self.labelnames) or not values:
            raise ValueError(f"{self.name} takes labels {self.labelnames}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _HistogramChild(self.bounds)
        return child

    def observe(self, value: float) -> None:
        self._unlabelled.observe(value)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        edges = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        for values, child in list(self._children.items()):
            running = 0
            buckets = []
            for edge, n in zip(edges, child.counts, strict=True):
                running += n
                buckets.append((edge, running))
            family.add_metric(list(values), buckets, child.sum)
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
