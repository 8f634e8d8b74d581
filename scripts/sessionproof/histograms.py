"""Latency histograms: µs HdrHistograms (3 significant digits) and their percentiles; the recorder fills them."""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS = 1, 60_000_000, 3


MIN_SAMPLES_FOR_P999 = 1000


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def percentiles_us(histogram: HdrHistogram) -> dict[str, int | None]:
    """count, p50, p90, p99, p999 (None below MIN_SAMPLES_FOR_P999 samples) and max, in microseconds."""
    count = histogram.get_total_count()
    return {
        "count": count,
        "p50": histogram.get_value_at_percentile(50),
        "p90": histogram.get_value_at_percentile(90),
        "p99": histogram.get_value_at_percentile(99),
        "p999": histogram.get_value_at_percentile(99.9) if count >= MIN_SAMPLES_FOR_P999 else None,
        "max": histogram.get_max_value(),
    }
