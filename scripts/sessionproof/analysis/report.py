"""Turn a load run's raw data into summary.json, report.md and plots, and check its SLOs.

`python -m sessionproof.analysis.report RUN_DIR` (or `make report RUN=<folder>`) recomputes every
figure from RUN_DIR/meta.json and RUN_DIR/raw/; the load harness calls `build_report`
at the end of each run. A failover experiment's run also has fault events in
raw/events.jsonl, raw/timeline.jsonl and raw/final_read.json: its summary then holds
failover figures (see failover.py), and its report a Failover section.

Exit status: 0 when every SLO passes, 3 when one is breached, 2 when RUN_DIR is not a
readable run folder.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hdrh.codec import HdrCookieException, HdrHistogramSettingsException, HdrLengthException
from hdrh.histogram import HdrHistogram
from matplotlib.ticker import NullFormatter, ScalarFormatter

from sessionproof.analysis import failover, history, partition
from sessionproof.analysis.histograms import MIN_SAMPLES_FOR_P999, new_histogram, percentiles_us

SLO_BREACH_EXIT_CODE = 3
BAD_INPUT_EXIT_CODE = 2

KINDS = ("service", "intended")
CORRECTNESS_CLASSES = ("lost_writes", "stale_reads", "sessions_lost", "foreign_sessions", "lost_updates")
MAX_TRUSTED_CPU_PERCENT = 90.0
MIN_VALID_DURATION_S = 5.0
# Above this many endpoints the per-second plot lines become unreadable; merge them per kind.
MAX_ENDPOINTS_PLOTTED_SEPARATELY = 4
ALL_ENDPOINTS = "all endpoints"
MAX_EVENTS_MARKED = 50  # beyond this the markers hide the data; the summary still counts them all

_DECODE_ERRORS = (
    ValueError,
    TypeError,
    IndexError,
    zlib.error,
    HdrCookieException,
    HdrLengthException,
    HdrHistogramSettingsException,
)
_RERENDER_HINT = "every figure here is recomputed from raw/ by `make report RUN=<folder>`"


class ReportInputError(ValueError):
    """The run folder cannot be read; the message names the file and the fix."""


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
        default_factory=lambda: {kind: defaultdict(list) for kind in KINDS}
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


# --------------------------------------------------------------------- reading


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise ReportInputError(f"{path} is missing; pass a folder written by a load run (e.g. results/latest)")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReportInputError(
            f"{path} is not valid JSON ({error}); restore it from the run or re-run the load test"
        ) from error


def _read_jsonl(path: Path, required: tuple[str, ...]):
    """Yield (line number, record) for each non-blank line, checking the required keys are there."""
    yield from failover.iter_jsonl(path, required, ReportInputError)


def _int_field(record: dict[str, Any], key: str, where: str) -> int:
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReportInputError(f"{where}: {key} must be a number, not {value!r}; the run's raw data is damaged")
    return int(value)


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise ReportInputError(
            f"{path} is missing; the load harness writes it during every run, "
            "so this is not a complete run folder (pass one such as results/latest, or re-run the load test)"
        )
    return path


def _parse_started_unix_s(meta: dict[str, Any], meta_path: Path) -> float:
    try:
        started = datetime.fromisoformat(str(meta["started_at"]))
    except (KeyError, ValueError) as error:
        raise ReportInputError(
            f"{meta_path}: started_at must be an ISO UTC time such as 2026-11-23T12:00:00Z ({error})"
        ) from error
    # The harness writes UTC; a time without an offset is read as UTC, never as this host's zone.
    return (started if started.tzinfo else started.replace(tzinfo=UTC)).timestamp()


def _parse_duration_s(meta: dict[str, Any], meta_path: Path) -> float:
    duration_s = meta.get("duration_s")
    if isinstance(duration_s, bool) or not isinstance(duration_s, int | float):
        raise ReportInputError(f"{meta_path}: duration_s must be a number of seconds, not {duration_s!r}")
    return float(duration_s)


def _read_latency(path: Path) -> LatencyData:
    # Keep the compact encoded text and decode one second at a time: a full histogram
    # is ~140 KB, so holding one per (second, endpoint, kind) would not fit long runs.
    encoded: dict[int, dict[tuple[str, str], list[tuple[int, str]]]] = defaultdict(lambda: defaultdict(list))
    for line_no, record in _read_jsonl(path, ("t", "endpoint", "kind", "hist")):
        if record["kind"] not in KINDS:
            raise ReportInputError(f"{path}:{line_no}: kind must be one of {', '.join(KINDS)}, not {record['kind']!r}")
        t = _int_field(record, "t", f"{path}:{line_no}")
        encoded[t][(record["kind"], record["endpoint"])].append((line_no, record["hist"]))

    latency = LatencyData()
    scratch = new_histogram()
    for t in sorted(encoded):
        merged_by_kind = {kind: new_histogram() for kind in KINDS}
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
        raise ReportInputError(
            f"{where}: hist is not an HdrHistogram(1, 60_000_000, 3) encoding ({error}); the run's raw data is damaged"
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
    for line_no, record in _read_jsonl(path, ("t", "endpoint", "ok", "failed")):
        t, ok, failed = (_int_field(record, key, f"{path}:{line_no}") for key in ("t", "ok", "failed"))
        ok_by_second[t] += ok
        failed_by_second[t] += failed
        by_endpoint[record["endpoint"]]["ok"] += ok
        by_endpoint[record["endpoint"]]["failed"] += failed
    return dict(ok_by_second), dict(failed_by_second), {name: by_endpoint[name] for name in sorted(by_endpoint)}


def _read_events(path: Path) -> list[dict[str, Any]]:
    """Each event record, in file order."""
    if not path.is_file():  # runs without chaos write no events
        return []
    events = []
    for line_no, record in _read_jsonl(path, ("t",)):
        t = record["t"]
        if isinstance(t, bool) or not isinstance(t, int | float):
            raise ReportInputError(f"{path}:{line_no}: t must be a number, not {t!r}; the run's raw data is damaged")
        events.append(record)
    return events


def load_run(run_dir: Path) -> RunData:
    """Read RUN_DIR/meta.json and RUN_DIR/raw/*; raises ReportInputError naming the fix."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportInputError(f"{run_dir} is not a folder; pass a run folder such as results/latest")
    meta_path = run_dir / "meta.json"
    meta = _read_json(meta_path)
    if not isinstance(meta, dict):
        raise ReportInputError(f"{meta_path} must hold a JSON object; the run's metadata is damaged")
    raw = run_dir / "raw"
    ok_by_second, failed_by_second, requests_by_endpoint = _read_outcomes(_require_file(raw / "outcomes.jsonl"))
    counters = _read_json(_require_file(raw / "counters.json"))
    if not isinstance(counters, dict):
        raise ReportInputError(f"{raw / 'counters.json'} must hold a JSON object; the run's raw data is damaged")
    if (raw / "history.jsonl").is_file():  # the verdict comes from the history; runs before it keep the live counts
        try:
            counters = {**counters, "correctness": history.check(history.read_history(raw / "history.jsonl"))}
        except ValueError as error:
            raise ReportInputError(str(error)) from error
    return RunData(
        run_dir=run_dir,
        meta=meta,
        started_unix_s=_parse_started_unix_s(meta, meta_path),
        duration_s=_parse_duration_s(meta, meta_path),
        latency=_read_latency(_require_file(raw / "histograms.jsonl")),
        ok_by_second=ok_by_second,
        failed_by_second=failed_by_second,
        requests_by_endpoint=requests_by_endpoint,
        counters=counters,
        events=_read_events(raw / "events.jsonl"),
    )


# ------------------------------------------------------------------ summarizing


def _latency_table(latency: LatencyData, kind: str) -> dict[str, dict[str, int | None]]:
    endpoints = sorted(endpoint for k, endpoint in latency.totals if k == kind)
    return {endpoint: percentiles_us(latency.totals[(kind, endpoint)]) for endpoint in endpoints}


def session_tax_us(service: dict[str, dict], intended: dict[str, dict]) -> dict[str, Any] | None:
    """What a session costs: GET /cart (loads the session from Redis) minus GET /ping (no session)."""
    tax = {kind: _tax(table) for kind, table in (("service", service), ("intended", intended))}
    return tax if any(tax.values()) else None


def _tax(table: dict[str, dict]) -> dict[str, int] | None:
    cart, ping = table.get("GET /cart"), table.get("GET /ping")
    if not cart or not ping:
        return None
    return {"p50": cart["p50"] - ping["p50"], "p99": cart["p99"] - ping["p99"]}


def _correctness(counters: dict[str, Any]) -> dict[str, int]:
    given = counters.get("correctness") or {}
    # Every known class is always present so SLO paths resolve; one the harness did not
    # report reads as 0. Classes this module does not know are kept, never dropped.
    extra = sorted(name for name in given if name != "checks" and name not in CORRECTNESS_CLASSES)
    names = ["checks", *CORRECTNESS_CLASSES, *extra]
    return {name: int(given.get(name, 0)) for name in names}


def invalid_reasons(duration_s: float, total_requests: int, cpu: dict[str, Any]) -> list[str]:
    """Why the run's numbers cannot be trusted; empty when they can."""
    reasons = []
    cpu_percent = cpu.get("max_percent")
    if isinstance(cpu_percent, int | float) and cpu_percent > MAX_TRUSTED_CPU_PERCENT:
        reasons.append(
            f"load generator CPU reached {cpu_percent:.0f}% (>{MAX_TRUSTED_CPU_PERCENT:.0f}%): "
            "its timings are unreliable; use fewer users or --processes"
        )
    if total_requests == 0:
        reasons.append("no requests were recorded: the load generator sent nothing (is the stack up?)")
    if duration_s < MIN_VALID_DURATION_S:
        reasons.append(f"the run lasted {duration_s:g} s (<{MIN_VALID_DURATION_S:g} s): too short to measure anything")
    return reasons


def summarize(run: RunData) -> dict[str, Any]:
    """The summary dict, in summary.json's key order, SLOs checked."""
    meta, counters = run.meta, run.counters
    duration_s = run.duration_s
    ok = sum(run.ok_by_second.values())
    failed = sum(run.failed_by_second.values())
    cpu = counters.get("cpu") or {}
    reasons = invalid_reasons(duration_s, ok + failed, cpu)
    service = _latency_table(run.latency, "service")
    intended = _latency_table(run.latency, "intended")
    summary: dict[str, Any] = {
        "scenario": meta.get("scenario"),
        "started_at": meta.get("started_at"),
        "duration_s": duration_s,
        "stack": meta.get("stack"),
        "valid": not reasons,
        "invalid_reasons": reasons,
        "requests": {"total": ok + failed, "ok": ok, "failed": failed, "by_endpoint": run.requests_by_endpoint},
        "latency_us": service,
        "latency_intended_us": intended,
        "session_tax_us": session_tax_us(service, intended),
        "correctness": _correctness(counters),
        "served_by": dict(sorted((counters.get("served_by") or {}).items())),
        "failures_by_kind": dict(sorted((counters.get("failures_by_kind") or {}).items())),
        "cpu": cpu,
        "events": dict(sorted(Counter(str(event.get("type", "unknown")) for event in run.events).items())),
        **_failover_keys(run),
    }
    # Checked last, over the whole summary, so an SLO may point anywhere in it (failover figures included).
    slos = (meta.get("scenario_config") or {}).get("slo") or []
    summary["slo"] = check_slos(summary, slos)
    return summary


def _failover_keys(run: RunData) -> dict[str, Any]:
    """faults, failover, sentinel_timeline, split_brain and partition: empty or null for a plain load run."""
    try:
        figures = failover.failover_figures(run.run_dir)
        split = partition.partition_for_run(run)
    except failover.FailoverInputError as error:
        raise ReportInputError(str(error)) from error
    periods = failover.fault_periods(run.events)
    return {
        "faults": [{k: v for k, v in period.items() if k not in ("start_t", "end_t")} for period in periods],
        "failover": figures,
        "sentinel_timeline": failover.sentinel_timeline(run.events, run.started_unix_s),
        "split_brain": failover.split_brain_moments(run.events, run.started_unix_s),
        "partition": split,
    }


# ------------------------------------------------------------------------ SLOs

_MISSING = object()


def _resolve(summary: Any, path: list[Any]) -> Any:
    node = summary
    for key in path:
        in_dict = isinstance(node, dict) and key in node
        in_list = isinstance(node, list) and isinstance(key, int) and -len(node) <= key < len(node)
        if not (in_dict or in_list):
            return _MISSING
        node = node[key]
    return node


def check_slo(summary: dict[str, Any], slo: dict[str, Any]) -> dict[str, Any]:
    """One SLO {"path": [...], "max": x} and/or {"min": y} against the summary; missing data fails."""
    path = slo.get("path") if isinstance(slo, dict) else None
    limits = {bound: slo[bound] for bound in ("max", "min") if isinstance(slo, dict) and bound in slo}
    check: dict[str, Any] = {"path": path} | limits
    if not isinstance(path, list) or not path or not limits:
        return check | {"actual": None, "passed": False, "reason": "malformed SLO: needs a path list and max or min"}
    actual = _resolve(summary, path)
    if actual is _MISSING or actual is None:
        # An endpoint never hit, or p99.9 from too few samples: an SLO cannot pass on no data.
        return check | {"actual": None, "passed": False, "reason": "no data"}
    check["actual"] = actual
    if not isinstance(actual, int | float):
        return check | {"passed": False, "reason": f"not a number: {json.dumps(actual)[:60]}"}
    if "max" in limits and actual > limits["max"]:
        return check | {"passed": False, "reason": f"{actual} > max {limits['max']}"}
    if "min" in limits and actual < limits["min"]:
        return check | {"passed": False, "reason": f"{actual} < min {limits['min']}"}
    return check | {"passed": True}


def _path_text(path: Any) -> str:
    return " → ".join(map(str, path)) if isinstance(path, list) else str(path)


def check_slos(summary: dict[str, Any], slos: list[dict[str, Any]]) -> dict[str, Any]:
    checks = [check_slo(summary, slo) for slo in slos]
    return {"passed": all(check["passed"] for check in checks), "checks": checks}


# ------------------------------------------------------------------------ plots


def _panels(rows: int, height_per_row_in: float = 2.6, sharex: bool = False, legend_outside: bool = False):
    """A figure of `rows` stacked axes, always an array of them."""
    # The object-oriented Figure draws through Agg with no pyplot global state: no GUI
    # backend is touched and nothing needs closing. Fixed margins instead of a layout
    # engine: the engine measures every tick label and costs more than the drawing.
    from matplotlib.figure import Figure

    height_in = 0.5 + rows * height_per_row_in
    figure = Figure(figsize=(11, height_in), dpi=100)
    # A legend outside the axes never hides a spike; it needs a wide right margin.
    margins = {
        "left": 0.08,
        "right": 0.8 if legend_outside else 0.98,
        "top": 1 - 0.35 / height_in,
        "bottom": 0.55 / height_in,
        "hspace": 0.45,
    }
    return figure, figure.subplots(rows, 1, sharex=sharex, squeeze=False, gridspec_kw=margins)[:, 0]


def _note(axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="grey")


def _plotted_series(latency: LatencyData, kind: str) -> dict[str, list[SecondStats]]:
    series = latency.per_second[kind]
    endpoints = sorted(name for name in series if name != ALL_ENDPOINTS)
    if len(endpoints) <= MAX_ENDPOINTS_PLOTTED_SEPARATELY:
        return {name: series[name] for name in endpoints}
    return {ALL_ENDPOINTS: series.get(ALL_ENDPOINTS, [])}


def _seconds_axis(run: RunData) -> list[int]:
    """Every second of the run, so a second with no completed request shows as zero, not as a line across it."""
    seen = [*run.ok_by_second, *run.failed_by_second]
    start = math.floor(run.started_unix_s)
    last = start + max(math.ceil(run.duration_s), 1) - 1
    return list(range(min([start, *seen]), max([last, *seen]) + 1))


_MARKED_EVENT_TYPES = ("split_brain",)


def _mark_events(run: RunData, panels) -> bool:
    """Shade each fault period and draw a dotted line at each split-brain moment, on every panel; True if any fault."""
    periods = failover.fault_periods(run.events)
    for index, period in enumerate(periods):
        start_s = period["start_t"] - run.started_unix_s
        # A fault never healed lasts, on the plot, to the end of the run.
        end_s = (period["end_t"] - run.started_unix_s) if period["end_t"] is not None else run.duration_s
        for axes in panels:
            # One legend entry however many faults: the annotation names each.
            axes.axvspan(start_s, end_s, color="C3", alpha=0.12, lw=0, label="fault" if index == 0 else None)
        panels[0].annotate(
            period["fault"],
            (start_s, 1),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            va="top",
            ha="left",
            color="C3",
        )
    marked = [event for event in run.events if event.get("type") in _MARKED_EVENT_TYPES]
    for event in marked[:MAX_EVENTS_MARKED]:
        for axes in panels:
            axes.axvline(event["t"] - run.started_unix_s, color="grey", ls=":", lw=1)
    return bool(periods)


def _plot_latency_panel(axes, run: RunData, kind: str) -> None:
    title = "service time (from actual send)" if kind == "service" else "intended (coordinated-omission corrected)"
    axes.set_title(f"latency, {title}", fontsize=10)
    axes.set_ylabel("ms")
    series = {name: stats for name, stats in _plotted_series(run.latency, kind).items() if stats}
    if not series:
        _note(axes, "no latency samples")
        return
    for colour, (name, stats) in enumerate(series.items()):
        x_s = [s.t - run.started_unix_s + 0.5 for s in stats]  # a second's value at its middle
        axes.plot(x_s, [s.p50_us / 1000 for s in stats], color=f"C{colour}", lw=1, label=f"{name} p50")
        axes.plot(x_s, [s.p99_us / 1000 for s in stats], color=f"C{colour}", lw=1, ls="--", label=f"{name} p99")
    axes.set_yscale("log")  # a stall's p99 is orders of magnitude above p50
    axes.yaxis.set_major_formatter(ScalarFormatter())
    axes.yaxis.set_minor_formatter(NullFormatter())
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)


def plot_latency(run: RunData, path: Path) -> None:
    figure, panels = _panels(3, sharex=True, legend_outside=True)
    _mark_events(run, panels)  # before the latency panels draw their legends, so "fault" is in them
    for axes, kind in zip(panels[:2], KINDS, strict=True):
        _plot_latency_panel(axes, run, kind)
    throughput = panels[2]
    throughput.set_title("throughput (ok requests/s)", fontsize=10)
    throughput.set_ylabel("requests/s")
    throughput.set_xlabel("seconds since run start")
    seconds = _seconds_axis(run)
    if run.ok_by_second:
        x_s = [t - run.started_unix_s for t in [*seconds, seconds[-1] + 1]]
        ok = [run.ok_by_second.get(t, 0) for t in seconds]
        throughput.stairs(ok, x_s, baseline=None, lw=1)
    else:
        _note(throughput, "no requests recorded")
    figure.savefig(path)


def plot_errors(run: RunData, path: Path) -> None:
    figure, (axes,) = _panels(1)
    axes.set_title("failed requests per second", fontsize=10)
    axes.set_xlabel("seconds since run start")
    axes.set_ylabel("failed/s")
    seconds = _seconds_axis(run)
    failed = [run.failed_by_second.get(t, 0) for t in seconds]
    axes.bar([t - run.started_unix_s for t in seconds], failed, width=1.0, align="edge", color="C3")
    if not any(failed):
        _note(axes, "no failed requests")
    if _mark_events(run, [axes]):
        axes.legend(fontsize=7, loc="upper right")
    figure.savefig(path)


def plot_replicas(served_by: dict[str, int], path: Path) -> None:
    figure, (axes,) = _panels(1)
    axes.set_title("requests served per replica", fontsize=10)
    axes.set_ylabel("requests")
    if served_by:
        bars = axes.bar(list(served_by), list(served_by.values()), color="C0")
        axes.bar_label(bars, fontsize=8)
    else:
        _note(axes, "no replica counts recorded")
    figure.savefig(path)


def write_plots(run: RunData, summary: dict[str, Any], plots_dir: Path) -> None:
    plots_dir.mkdir(parents=True, exist_ok=True)
    plot_latency(run, plots_dir / "latency.png")
    plot_errors(run, plots_dir / "errors.png")
    plot_replicas(summary["served_by"], plots_dir / "replicas.png")


# --------------------------------------------------------------------- report.md


def _ms(value_us: int | None) -> str:
    return "n/a" if value_us is None else f"{value_us / 1000:.3f}"


def _latency_lines(table: dict[str, dict[str, int | None]]) -> list[str]:
    if not table:
        return ["No latency samples.", ""]
    lines = ["| endpoint | count | p50 | p90 | p99 | p99.9 | max |", "|---|--:|--:|--:|--:|--:|--:|"]
    for endpoint, p in table.items():
        p999 = _ms(p["p999"]) if p["p999"] is not None else f"n/a (<{MIN_SAMPLES_FOR_P999} samples)"
        cells = [endpoint, str(p["count"]), _ms(p["p50"]), _ms(p["p90"]), _ms(p["p99"]), p999, _ms(p["max"])]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _validity_lines(summary: dict[str, Any]) -> list[str]:
    if summary["valid"]:
        cpu_percent = summary["cpu"].get("max_percent")
        cpu = "not recorded" if cpu_percent is None else f"peaked at {cpu_percent:.0f}%"
        return [f"Validity: **valid** (load generator CPU {cpu}; requests recorded; long enough).", ""]
    return ["Validity: **INVALID**, do not trust these numbers:", *(f"- {r}" for r in summary["invalid_reasons"]), ""]


def _tax_lines(tax: dict[str, Any] | None) -> list[str]:
    lines = ["## Session tax", ""]
    if tax is None:
        return [*lines, "Not computed: needs both GET /cart and GET /ping samples.", ""]
    lines.append("GET /cart (reads the session from Redis) minus GET /ping (no session), in ms:")
    lines.append("")
    for kind, values in tax.items():
        text = "no data" if values is None else f"p50 {_ms(values['p50'])}, p99 {_ms(values['p99'])}"
        lines.append(f"- {kind}: {text}")
    return [*lines, ""]


def _correctness_lines(correctness: dict[str, int], failures_by_kind: dict[str, int]) -> list[str]:
    lines = ["## Correctness", ""]
    checks = correctness["checks"]
    failures = {name: count for name, count in correctness.items() if name != "checks" and count}
    if checks == 0 and not failures:
        lines.append("No correctness checks ran, so nothing is claimed about lost or stale session data.")
    elif not failures:
        lines.append(f"0 correctness failures in {checks} checks.")
    else:
        lines.append(f"{sum(failures.values())} correctness failures in {checks} checks:")
        lines.extend(f"- {name.replace('_', ' ')}: {count}" for name, count in failures.items())
    lines.append("")
    if failures_by_kind:
        lines.append("Failed requests by kind: " + ", ".join(f"{k}: {v}" for k, v in failures_by_kind.items()) + ".")
        lines.append("")
    return lines


def _replica_lines(served_by: dict[str, int]) -> list[str]:
    lines = ["## Requests per replica", ""]
    total = sum(served_by.values())
    if not total:
        return [*lines, "No replica counts recorded.", ""]
    lines += ["| replica | requests | share |", "|---|--:|--:|"]
    lines += [f"| {name} | {count} | {100 * count / total:.1f}% |" for name, count in served_by.items()]
    return [*lines, "", "![requests per replica](plots/replicas.png)", ""]


def _slo_lines(slo: dict[str, Any]) -> list[str]:
    lines = ["## SLOs", ""]
    if not slo["checks"]:
        return [*lines, "The scenario defines no SLOs.", ""]
    lines.append(f"Overall: **{'PASS' if slo['passed'] else 'FAIL'}**. Values in summary.json's units (latency in µs).")
    lines += ["", "| path | limit | actual | result |", "|---|---|--:|---|"]
    for check in slo["checks"]:
        path = _path_text(check["path"])
        limit = ", ".join(
            f"{'≤' if bound == 'max' else '≥'} {check[bound]}" for bound in ("max", "min") if bound in check
        )
        result = "PASS" if check["passed"] else f"**FAIL** ({check['reason']})"
        lines.append(f"| {path} | {limit} | {'' if check['actual'] is None else check['actual']} | {result} |")
    return [*lines, ""]


def _events_lines(events: dict[str, int]) -> list[str]:
    if not events:
        return []
    return ["## Events", "", *(f"- {kind}: {count}" for kind, count in events.items()), ""]


def ms_short(value_us: int | None) -> str:
    """Failover latencies are stalls of hundreds of ms: 0.1 ms is precision enough."""
    return "n/a" if value_us is None else f"{value_us / 1000:.1f}"


def or_na(value: Any, none_text: str = "n/a") -> str:
    return none_text if value is None else str(value)


def _failover_figure_lines(figures: dict[str, Any]) -> list[str]:
    errors = figures["client_errors"]
    by_class = ", ".join(f"{name}: {count}" for name, count in errors.items())
    p99_max = {when: f"{ms_short(p['p99_us'])} / {ms_short(p['max_us'])} ms" for when, p in figures["latency"].items()}
    indeterminate = figures["indeterminate_writes"]
    no_read_back = "n/a (no read-back)"
    took_effect = f"{or_na(indeterminate['count'], no_read_back)} ({or_na(indeterminate['took_effect'])})"
    rows = [
        ("client errors", f"{sum(errors.values())} ({by_class})"),
        ("error window (first to last error)", f"{figures['error_window_s']} s"),
        ("longest time without a successful response", f"{figures['longest_gap_s']} s"),
        ("p99 / max before the fault (intended start)", p99_max["before"]),
        ("p99 / max during the fault (intended start)", p99_max["during"]),
        ("acknowledged writes", or_na(figures["acknowledged_writes"], no_read_back)),
        ("**lost acknowledged writes**", f"**{or_na(figures['lost_acknowledged_writes'], no_read_back)}**"),
        ("indeterminate writes (took effect)", took_effect),
        ("sessions that could not be read back", or_na(figures["unreadable_sessions"], no_read_back)),
        ("time to recover", or_na(figures["time_to_recover_s"], "not within the run") + " s"),
    ]
    return ["| figure | value |", "|---|--:|", *(f"| {name} | {value} |" for name, value in rows), ""]


def _fault_table_lines(faults: list[dict[str, Any]]) -> list[str]:
    lines = ["| fault | target | started | ended | duration s |", "|---|---|---|---|--:|"]
    for fault in faults:
        ended = or_na(fault["ended_at"], "not healed")
        lines.append(
            f"| {fault['fault']} | {fault['target']} | {fault['started_at']} | {ended} | {or_na(fault['duration_s'])} |"
        )
    return [*lines, ""]


def _split_brain_lines(moments: list[dict[str, Any]]) -> list[str]:
    text = "; ".join(f"{m['t_rel_s']} s: {', '.join(m['masters'])}" for m in moments) if moments else "none observed"
    return [f"Split brain (two Redis nodes claiming role:master): {text}.", ""]


def _sentinel_lines(timeline: list[dict[str, Any]]) -> list[str]:
    lines = ["### Sentinel timeline", ""]
    if not timeline:
        return [*lines, "No Sentinel events recorded.", ""]
    lines += ["Seconds since run start; one row per event, however many Sentinels reported it within 1 s.", ""]
    lines += ["| t (s) | event | detail | seen by |", "|--:|---|---|--:|"]
    lines += [f"| {e['t_rel_s']} | `{e['event']}` | {e['detail']} | {e['sentinels']} |" for e in timeline]
    return [*lines, ""]


def _failover_lines(summary: dict[str, Any]) -> list[str]:
    figures = summary.get("failover")
    if not figures:
        return []
    lines = ["## Failover", "", *_failover_figure_lines(figures), *_fault_table_lines(summary["faults"])]
    lines += _split_brain_lines(summary["split_brain"])
    if figures.get("lost_examples"):
        examples = ", ".join(f"{e['item']} ({e['user']})" for e in figures["lost_examples"][:10])
        lines += [f"Lost, for example: {examples}.", ""]
    return [*lines, *_sentinel_lines(summary["sentinel_timeline"])]


def render_markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    requests = summary["requests"]
    lines = [
        f"# {summary['scenario']}, started {summary['started_at']}",
        "",
        *_validity_lines(summary),
        f"Stack `{summary['stack']}`, {summary['duration_s']:g} s, {requests['total']} requests "
        f"({requests['failed']} failed), git `{meta.get('git_sha', '?')}`.",
        "",
        "## Latency",
        "",
        "Times in milliseconds (µs resolution). Service time runs from the actual send; intended time from when the "
        "request was due, so it includes the wait a stalled generator would otherwise hide (coordinated omission).",
        "",
        "### Service time (ms)",
        "",
        *_latency_lines(summary["latency_us"]),
        "### Intended time (ms)",
        "",
        *_latency_lines(summary["latency_intended_us"]),
        "![latency and throughput over time](plots/latency.png)",
        "",
        *_tax_lines(summary["session_tax_us"]),
        *_correctness_lines(summary["correctness"], summary["failures_by_kind"]),
        "![failed requests over time](plots/errors.png)",
        "",
        *_failover_lines(summary),
        *partition.markdown_lines(summary.get("partition")),
        *_replica_lines(summary["served_by"]),
        *_slo_lines(summary["slo"]),
        *_events_lines(summary["events"]),
        "## Reproduce",
        "",
        f"Command: `{meta.get('command', '?')}`",
        "",
        f"Note: {_RERENDER_HINT}.",
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------- entry points


def build_report(run_dir: Path) -> dict[str, Any]:
    """Write RUN_DIR/summary.json, report.md and plots/*.png from raw data; return the summary."""
    run = load_run(Path(run_dir))
    summary = summarize(run)
    write_plots(run, summary, run.run_dir / "plots")
    (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (run.run_dir / "report.md").write_text(render_markdown(summary, run.meta))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.analysis.report", description=__doc__)
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder, e.g. results/latest")
    args = parser.parse_args(argv)
    try:
        summary = build_report(args.run_dir)
    except ReportInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT_EXIT_CODE
    print(f"wrote {args.run_dir / 'report.md'}")
    if not summary["valid"]:
        print("run INVALID: " + "; ".join(summary["invalid_reasons"]))
    slo = summary["slo"]
    for check in slo["checks"]:
        if not check["passed"]:
            print(f"SLO FAILED: {_path_text(check['path'])}: {check['reason']}")
    print(f"SLOs: {'passed' if slo['passed'] else 'BREACHED'} ({len(slo['checks'])} checked)")
    return 0 if slo["passed"] else SLO_BREACH_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
