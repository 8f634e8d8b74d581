"""Unloaded latency through nginx: one client, one request at a time, per endpoint.

`python -m sessionproof.load.unloaded --requests 2000` (or `make unloaded`) prints
p50/p90/p99/p99.9 in microseconds per endpoint, with sample counts. It is the
floor the load tests are compared against, not a load test.
"""

from __future__ import annotations

import argparse
import sys
import time

import requests
from hdrh.histogram import HdrHistogram

from sessionproof.histograms import LOWEST_US, MIN_SAMPLES_FOR_P999, new_histogram, percentiles_us
from sessionproof.topology import StackConfig


def measure(base_url: str, requests_per_endpoint: int, warmup: int = 50) -> dict[str, HdrHistogram]:
    http = requests.Session()
    http.post(f"{base_url}/login", json={"user": "unloaded-probe"}, timeout=5).raise_for_status()
    for item in ("apple", "pear", "plum"):
        http.post(f"{base_url}/cart/{item}", timeout=5).raise_for_status()
    endpoints = {"GET /ping": "/ping", "GET /cart": "/cart"}
    histograms = {name: new_histogram() for name in endpoints}
    for _ in range(warmup):
        for path in endpoints.values():
            http.get(base_url + path, timeout=5)
    for _ in range(requests_per_endpoint):
        for name, path in endpoints.items():  # interleaved, so both see the same moments
            started = time.perf_counter_ns()
            response = http.get(base_url + path, timeout=5)
            elapsed_us = (time.perf_counter_ns() - started) // 1000
            if response.status_code != 200:
                raise RuntimeError(f"{name} answered {response.status_code}: {response.text[:200]}")
            histograms[name].record_value(max(elapsed_us, LOWEST_US))
    http.post(f"{base_url}/logout", timeout=5)
    return histograms


def summary_line(name: str, histogram: HdrHistogram) -> str:
    p = percentiles_us(histogram)
    p999 = f"{p['p999']:>7}" if p["p999"] is not None else f"{'n/a':>7} (needs {MIN_SAMPLES_FOR_P999} samples)"
    return (
        f"{name:<10} n={p['count']:<6} p50={p['p50']:>6} p90={p['p90']:>6} p99={p['p99']:>6} "
        f"p99.9={p999} max={p['max']:>7}  (microseconds)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.load.unloaded", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="requests per endpoint (default 2000)")
    parser.add_argument("--url", help="entry URL (default: the local stack's nginx)")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 100_000:
        parser.error("--requests must be between 1 and 100000")
    url = args.url or StackConfig.from_env().entry_url
    try:
        histograms = measure(url, args.requests)
    except (requests.RequestException, RuntimeError) as error:
        print(f"error: {error}; is the stack up (`make up`)?", file=sys.stderr)
        return 2
    print(f"unloaded latency through {url}, one request at a time:")
    for name, histogram in histograms.items():
        print(summary_line(name, histogram))
    return 0


if __name__ == "__main__":
    sys.exit(main())
