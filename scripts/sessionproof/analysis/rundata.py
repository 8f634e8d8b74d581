"""A run folder read into memory: metadata, per-second latency, outcomes, counters and events.

`load_run(RUN_DIR)` reads RUN_DIR/meta.json and RUN_DIR/raw/ through runfiles, once: every figure
of the report is computed from the RunData it returns. The correctness verdict is the one checker's
over raw/history.jsonl (history/checker.py); a run recorded before histories existed keeps the counts
its users made live, and its final read's figures (raw/final_read.json), and says so.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hdrh.codec import HdrCookieException, HdrHistogramSettingsException, HdrLengthException
from hdrh.histogram import HdrHistogram

from sessionproof.histograms import new_histogram
from sessionproof.history.checker import Verdict, check
from sessionproof.history.files import has_history, history_path, read_history
from sessionproof.runfiles import (
    DAMAGED,
    RunFileError,
    iter_jsonl,
    number_field,
    read_json_object,
    read_jsonl,
    require_file,
    run_file_exists,
)

KINDS = ("service", "intended")  # the client's two views of a request
# The app's own view, from its Server-Timing header: its whole time, and the part spent waiting on Redis.
SERVER_KINDS = ("app", "store")
ALL_KINDS = (*KINDS, *SERVER_KINDS)
ALL_ENDPOINTS = "all endpoints"

_DECODE_ERRORS = (
    ValueError,
    TypeError,
    IndexError,
    zlib.error,
    HdrCookieException,
    HdrLengthException,
    HdrHistogramSettingsException,
)


@dataclass
class SecondStats:
    """One second's latency for one series, in microseconds."""

    t: int
    count: int
    p50_us: int
    p99_us: int


@dataclass
class LatencyData:
    # (kind, endpoint) -> whole-run histogram, duplicates of a second merged.
    totals: dict[tuple[str, str], HdrHistogram] = field(default_factory=dict)
    # kind -> endpoint (or ALL_ENDPOINTS) -> per-second stats in time order.
    per_second: dict[str, dict[str, list[SecondStats]]] = field(
        default_factory=lambda: {kind: defaultdict(list) for kind in ALL_KINDS}
    )


@dataclass
class RunData:
    run_dir: Path
    meta: dict[str, Any]
    started_unix_s: float
    duration_s: float
    latency: LatencyData
    ok_by_second: dict[int, int]
    failed_by_second: dict[int, int]
    requests_by_endpoint: dict[str, dict[str, int]]
    counters: dict[str, Any]
    events: list[dict[str, Any]]  # every record of raw/events.jsonl, t checked to be a number
    # raw/server.json: what Prometheus saw during the run (load/server_metrics.py); None for runs without one.
    server: dict[str, Any] | None = None
    # raw/timeline.jsonl: every request's end (t, Unix s), endpoint, outcome and store, in time order.
    timeline: list[dict[str, Any]] = field(default_factory=list)
    # The intended-start histograms of each second (encoded, every endpoint): latency over any span.
    intended_by_second: dict[int, list[str]] = field(default_factory=dict)
    # The checker's verdict on raw/history.jsonl; None for a run recorded before histories existed.
    verdict: Verdict | None = None
    # raw/final_read.json of a run without a history (its ledger's read-back); {} otherwise.
    legacy_final_read: dict[str, Any] = field(default_factory=dict)

    def unix_s(self, time_us: float) -> float:
        """A history time (µs since the run's start) as Unix time, as the timeline and events have it."""
        return self.started_unix_s + time_us / 1_000_000

    def history_us(self, unix_s: float) -> float:
        """A Unix time as a history time (µs since the run's start): unix_s's inverse."""
        return (unix_s - self.started_unix_s) * 1_000_000


def _parse_started_unix_s(meta: dict[str, Any], meta_path: Path) -> float:
    if isinstance(meta.get("started_unix_s"), int | float):
        return float(meta["started_unix_s"])  # exact; runs before it had started_at only, to the second
    try:
        started = datetime.fromisoformat(str(meta["started_at"]))
    except (KeyError, ValueError) as error:
        raise RunFileError(
            f"{meta_path}: started_at must be an ISO UTC time such as 2026-11-23T12:00:00Z ({error})"
        ) from error
    # The harness writes UTC; a time without an offset is read as UTC, never as this host's zone.
    return (started if started.tzinfo else started.replace(tzinfo=UTC)).timestamp()


def _parse_duration_s(meta: dict[str, Any], meta_path: Path) -> float:
    duration_s = meta.get("duration_s")
    if isinstance(duration_s, bool) or not isinstance(duration_s, int | float):
        raise RunFileError(f"{meta_path}: duration_s must be a number of seconds, not {duration_s!r}")
    return float(duration_s)


def _read_latency(path: Path, intended_by_second: dict[int, list[str]]) -> LatencyData:
    # Keep the compact encoded text and decode one second at a time: a full histogram
    # is ~140 KB, so holding one per (second, endpoint, kind) would not fit long runs.
    encoded: dict[int, dict[tuple[str, str], list[tuple[int, str]]]] = defaultdict(lambda: defaultdict(list))
    for line_no, record in iter_jsonl(path, ("t", "endpoint", "kind", "hist")):
        if record["kind"] not in ALL_KINDS:
            raise RunFileError(f"{path}:{line_no}: kind must be one of {', '.join(ALL_KINDS)}, not {record['kind']!r}")
        t = int(number_field(record, "t", f"{path}:{line_no}"))
        encoded[t][(record["kind"], record["endpoint"])].append((line_no, record["hist"]))
        if record["kind"] == "intended":
            intended_by_second.setdefault(t, []).append(record["hist"])

    latency = LatencyData()
    scratch = new_histogram()
    for t in sorted(encoded):
        merged_by_kind = {kind: new_histogram() for kind in ALL_KINDS}
        for (kind, endpoint), texts in sorted(encoded[t].items()):
            scratch.reset()
            for line_no, text in texts:  # several worker processes report the same second
                _decode_into(scratch, text, f"{path}:{line_no}")
            _add_second(latency.per_second[kind][endpoint], t, scratch)
            latency.totals.setdefault((kind, endpoint), new_histogram()).add(scratch)
            merged_by_kind[kind].add(scratch)
        for kind, merged in merged_by_kind.items():
            _add_second(latency.per_second[kind][ALL_ENDPOINTS], t, merged)
    return latency


def _decode_into(histogram: HdrHistogram, text: str, where: str) -> None:
    try:
        histogram.decode_and_add(text)
    except _DECODE_ERRORS as error:
        raise RunFileError(
            f"{where}: hist is not an HdrHistogram(1, 60_000_000, 3) encoding ({error}); {DAMAGED}"
        ) from error


def _add_second(series: list[SecondStats], t: int, histogram: HdrHistogram) -> None:
    count = histogram.get_total_count()
    if count:  # a second without samples is a gap in the plot, not a zero latency
        p50_us = histogram.get_value_at_percentile(50)
        series.append(SecondStats(t, count, p50_us, histogram.get_value_at_percentile(99)))


def _read_outcomes(path: Path) -> tuple[dict[int, int], dict[int, int], dict[str, dict[str, int]]]:
    ok_by_second: dict[int, int] = defaultdict(int)
    failed_by_second: dict[int, int] = defaultdict(int)
    by_endpoint: dict[str, dict[str, int]] = defaultdict(lambda: {"ok": 0, "failed": 0})
    for line_no, record in iter_jsonl(path, ("t", "endpoint", "ok", "failed")):
        t, ok, failed = (int(number_field(record, key, f"{path}:{line_no}")) for key in ("t", "ok", "failed"))
        ok_by_second[t] += ok
        failed_by_second[t] += failed
        by_endpoint[record["endpoint"]]["ok"] += ok
        by_endpoint[record["endpoint"]]["failed"] += failed
    return dict(ok_by_second), dict(failed_by_second), {name: by_endpoint[name] for name in sorted(by_endpoint)}


def _read_events(path: Path) -> list[dict[str, Any]]:
    """Each event record, in file order; [] for a run without chaos, which writes no events."""
    if not run_file_exists(path):
        return []
    events = []
    for line_no, record in iter_jsonl(path, ("t",)):
        number_field(record, "t", f"{path}:{line_no}")  # the file's line, as every other reader names it
        events.append(record)
    return events


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """A run's events alone (RUN_DIR/raw/events.jsonl, or its compressed copy), without the rest of the run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFileError(f"{run_dir} is not a run folder (results/<UTC-time>-<name>/)")
    return _read_events(run_dir / "raw" / "events.jsonl")


def load_run(run_dir: Path) -> RunData:
    """Read RUN_DIR/meta.json and RUN_DIR/raw/*; raises RunFileError naming the fix."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFileError(f"{run_dir} is not a folder; pass a run folder such as results/latest")
    meta_path = run_dir / "meta.json"
    meta = read_json_object(meta_path)
    raw = run_dir / "raw"
    ok_by_second, failed_by_second, requests_by_endpoint = _read_outcomes(raw / "outcomes.jsonl")
    counters = read_json_object(require_file(raw / "counters.json"))
    verdict, legacy_final_read = None, {}
    if has_history(run_dir):
        try:
            verdict = check(read_history(history_path(run_dir)))
        except ValueError as error:  # RunFileError included: a damaged line, or a completion without its invoke
            raise RunFileError(f"{history_path(run_dir)}: {error}") from error
        counters = {**counters, "correctness": verdict.figures}
    else:
        legacy_final_read = read_json_object(raw / "final_read.json", missing_ok=True)
    intended_by_second: dict[int, list[str]] = {}
    latency = _read_latency(raw / "histograms.jsonl", intended_by_second)
    timeline = read_jsonl(raw / "timeline.jsonl", ("t", "endpoint", "ok", "kind"))
    return RunData(
        run_dir=run_dir,
        meta=meta,
        started_unix_s=_parse_started_unix_s(meta, meta_path),
        duration_s=_parse_duration_s(meta, meta_path),
        latency=latency,
        ok_by_second=ok_by_second,
        failed_by_second=failed_by_second,
        requests_by_endpoint=requests_by_endpoint,
        counters=counters,
        events=_read_events(raw / "events.jsonl"),
        server=read_json_object(raw / "server.json") if run_file_exists(raw / "server.json") else None,
        timeline=sorted(timeline, key=lambda row: row["t"]),
        intended_by_second=intended_by_second,
        verdict=verdict,
        legacy_final_read=legacy_final_read,
    )


def started_unix_s(run_dir: Path) -> float:
    """When a run started (meta.json's started_at), as Unix time: the origin of its history's times."""
    meta_path = Path(run_dir) / "meta.json"
    return _parse_started_unix_s(read_json_object(meta_path), meta_path)
