"""`atstack bench pds` runs its whole workload against a local stack and prints its table (figures not judged)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_bench_pds_smoke() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "atstack",
            "bench",
            "pds",
            "--seconds",
            "1",
            "--accounts",
            "5",
            "--clients",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.startswith("atstack bench pds — 20"), "the header carries the date"
    assert "machine:" in out and "load average before:" in out
    assert "local stack at http://127.0.0.1:" in out

    def figure(label: str) -> float:
        match = re.search(rf"^\s+{re.escape(label)}\s+(-?[\d,.]+) ", out, re.MULTILINE)
        assert match is not None, f"no {label!r} row in:\n{out}"
        return float(match.group(1).replace(",", ""))

    assert figure("accounts created") > 0
    assert figure("createRecord, 2 clients") > 0
    assert figure("getRecord, 2 clients") > 0
    assert figure("server CPU time per write") > 0
    for p in ("p50", "p90", "p99"):
        assert figure(f"createRecord latency {p}") > 0
    assert figure("firehose write sent → event p50") > 0
    assert figure("server peak RSS (VmHWM)") > 10
    assert "validationStatus valid" in out, "records are validated against the bundled lexicons"
    assert "MISSED" not in out and "first error" not in out
