"""Benchmark workloads behind ``atstack bench …``: each prints throughput, latency percentiles and peak RSS.

Benchmarks are measurements, not tests: they never assert, they report. Figures go into the README with the
date and machine they were measured on.
"""
