"""The unloaded probe's percentiles: microseconds, p99.9 only with enough samples."""

from __future__ import annotations

import pytest
from hdrh.histogram import HdrHistogram

from sessionproof.histograms import percentiles_us
from sessionproof.load.unloaded import summary_line


def histogram_of(values) -> HdrHistogram:
    histogram = HdrHistogram(1, 60_000_000, 3)
    for value in values:
        histogram.record_value(value)
    return histogram


def test_percentiles_of_a_known_uniform_distribution():
    p = percentiles_us(histogram_of(range(1, 10_001)))
    assert p["count"] == 10_000
    # 3 significant digits: each value within 0.1% of the exact percentile.
    for key, exact in (("p50", 5000), ("p90", 9000), ("p99", 9900), ("p999", 9990), ("max", 10_000)):
        assert p[key] == pytest.approx(exact, rel=1e-3), key


def test_a_stall_shows_in_p99_but_not_p50():
    p = percentiles_us(histogram_of([1000] * 980 + [2_000_000] * 20))
    assert p["p50"] == pytest.approx(1000, rel=1e-3)
    assert p["p99"] == pytest.approx(2_000_000, rel=1e-3)


def test_p999_is_not_claimed_from_too_few_samples():
    assert percentiles_us(histogram_of(range(1, 101)))["p999"] is None
    assert "p99.9=    n/a (needs 1000 samples)" in summary_line("GET /x", histogram_of(range(1, 101)))
