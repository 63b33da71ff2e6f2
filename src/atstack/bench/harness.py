"""Measurement helpers shared by the benchmark workloads: rates, percentiles, peak RSS, machine facts."""

from __future__ import annotations

import datetime as dt
import gc
import os
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "Report",
    "best_rates",
    "k256_verify_rate",
    "machine_summary",
    "peak_rss_mib",
    "percentiles",
    "rate",
    "timed_samples",
]


def rate(fn: Callable[[], object], *, seconds: float = 1.0, batch: int = 1) -> float:
    """Calls of ``fn`` per second over at least ``seconds`` (``batch`` = items handled per call)."""
    fn()  # warm caches and lazy imports outside the timed window
    gc_was = gc.isenabled()
    gc.disable()
    try:
        calls = 0
        start = time.perf_counter()
        deadline = start + seconds
        step = 1
        while True:
            for _ in range(step):
                fn()
            calls += step
            now = time.perf_counter()
            if now >= deadline:
                break
            step = min(step * 2, 1 << 16)
        return calls * batch / (now - start)
    finally:
        if gc_was:
            gc.enable()


def best_rates(fns: list[Callable[[], object]], *, seconds: float = 1.0, rounds: int = 5) -> list[float]:
    """Best rate of each function over ``rounds`` interleaved windows: on a shared machine, comparing two
    calls measured at different moments mostly measures the neighbours."""
    best = [0.0] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            best[i] = max(best[i], rate(fn, seconds=seconds / rounds))
    return best


def k256_verify_rate(seconds: float = 0.5) -> float:
    """This host's speed right now, as k256 signature checks per second: the largest single cost of a relay's
    validation, and the figure ``DESIGN.md``'s per-core estimates assume (28k/s). Shared machines drift by
    a third within minutes, so workloads print it beside the figures it explains."""
    from atstack.core.crypto import generate_private_key

    key = generate_private_key("k256")
    message = os.urandom(200)
    sig = key.sign(message)
    public = key.public_key
    return rate(lambda: public.verify(message, sig), seconds=seconds)


def timed_samples(fn: Callable[[], object], n: int) -> list[float]:
    """Wall time of each of ``n`` calls, in microseconds."""
    out = []
    perf = time.perf_counter
    for _ in range(n):
        t0 = perf()
        fn()
        out.append((perf() - t0) * 1e6)
    return out


def percentiles(samples: list[float], points: tuple[float, ...] = (50, 90, 99)) -> dict[str, float]:
    ordered = sorted(samples)
    res = {}
    for p in points:
        idx = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        res[f"p{p:g}"] = ordered[idx]
    return res


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_summary() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.machine()}"


@dataclass
class Report:
    """Rows of (name, value, unit, note) printed as an aligned table."""

    title: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str, note: str = "") -> None:
        if value >= 100:
            text = f"{value:,.0f}"
        elif value >= 10:
            text = f"{value:.1f}"
        else:
            text = f"{value:.2f}"
        self.rows.append((name, text, unit, note))
        print(f"  {name:<52} {text:>12} {unit:<10} {note}", flush=True)

    def header(self) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        print(f"{self.title} — {now}\n  machine: {machine_summary()} (one thread = one core)", flush=True)
