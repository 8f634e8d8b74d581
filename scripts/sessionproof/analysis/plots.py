"""The plots of a run: latency and throughput over time, failed requests, requests per replica."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.ticker import NullFormatter, ScalarFormatter

from sessionproof.analysis import failover
from sessionproof.analysis.rundata import ALL_ENDPOINTS, KINDS, LatencyData, RunData, SecondStats

# Above this many endpoints the per-second plot lines become unreadable; merge them per kind.
MAX_ENDPOINTS_PLOTTED_SEPARATELY = 4
MAX_EVENTS_MARKED = 50  # beyond this the markers hide the data; the summary still counts them all


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
