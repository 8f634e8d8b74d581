"""The plots of a run: latency and throughput over time, failed requests, the percentile distribution, replicas.

Every time plot shares one picture of what happened: each fault is a red band from its
inject to the start of its heal, named on the band, and the heal a hatched band after it;
Sentinel's +odown and +switch-master are marked lines; split-brain moments dotted lines.
A second without samples is a gap in a line, never a ramp across it. Latency axes are
logarithmic, with labelled ticks at 1-2-5 steps and a grid.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from sessionproof.analysis import failover
from sessionproof.analysis.rundata import ALL_ENDPOINTS, KINDS, LatencyData, RunData, SecondStats
from sessionproof.histograms import new_histogram

MAX_ENDPOINTS_PLOTTED = 4  # more lines than this per panel cannot be told apart
MAX_EVENTS_MARKED = 50  # beyond this the markers hide the data; the summary still counts them all
SENTINEL_MARKED = ("+odown", "+switch-master")
SENTINEL_MARK_COLLAPSE_S = 2.0  # every Sentinel reports the same moment: one mark
# The percentile distribution's x axis, as HdrHistogram plots it: 1 / (1 - p), labelled as p.
DISTRIBUTION_PERCENTILES = (0.0, 90.0, 99.0, 99.9, 99.99, 99.999)
ENDPOINT_COLOURS = ("C0", "C1", "C2", "C9")  # none of them a mark's colour
MARK_COLOURS = {"+odown": "C5", "+switch-master": "C4"}
KIND_TITLES = {"service": "service time (from actual send)", "intended": "intended (coordinated-omission corrected)"}


# ------------------------------------------------------------------ figures
def _panels(rows: int, cols: int = 1, height_per_row_in: float = 2.6, sharex: bool = False, legend: bool = False):
    """A figure of rows x cols axes, always a 2-D array of them."""
    # The object-oriented Figure draws through Agg with no pyplot global state: no GUI
    # backend is touched and nothing needs closing. Fixed margins instead of a layout
    # engine: the engine measures every tick label and costs more than the drawing.
    from matplotlib.figure import Figure

    height_in = 0.6 + rows * height_per_row_in
    figure = Figure(figsize=(11, height_in), dpi=100)
    # A legend outside the axes never hides a spike; it needs a wide right margin.
    margins = {
        "left": 0.08,
        "right": 0.78 if legend else 0.98,
        "top": 1 - 0.4 / height_in,
        "bottom": 0.6 / height_in,
        "hspace": 0.5,
        "wspace": 0.25,
    }
    return figure, figure.subplots(rows, cols, sharex=sharex, squeeze=False, gridspec_kw=margins)


def _note(axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="grey")


def _ms_text(value_ms: float, _position=None) -> str:
    return f"{value_ms:g}" if value_ms >= 0.01 else ""


def log_ms_axis(axes, label: str = "ms", axis: str = "y", subs: tuple[float, ...] = (1.0, 2.0, 5.0)) -> None:
    """A log axis in ms with labelled ticks at 1, 2, 5 (subs) of each decade and a grid."""
    getattr(axes, f"set_{axis}scale")("log")
    ticks = getattr(axes, f"{axis}axis")
    ticks.set_major_locator(LogLocator(base=10, subs=subs))
    ticks.set_major_formatter(FuncFormatter(_ms_text))
    ticks.set_minor_locator(LogLocator(base=10, subs=(3.0, 4.0, 6.0, 7.0, 8.0, 9.0)))
    ticks.set_minor_formatter(NullFormatter())
    axes.grid(True, axis=axis, which="major", lw=0.6, alpha=0.5)
    axes.grid(True, axis=axis, which="minor", lw=0.3, alpha=0.25)
    getattr(axes, f"set_{axis}label")(label)


def _legend(axes) -> None:
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)


# ---------------------------------------------------------------- endpoints
def plotted_endpoints(run: RunData, kind: str = "service") -> list[str]:
    """The endpoints a scenario is about, each its own line.

    The scenario's `plot_endpoints` when it names them; else those of its latency_mix;
    else every endpoint, the most requested first, at most MAX_ENDPOINTS_PLOTTED."""
    series = run.latency.per_second[kind]
    present = [name for name in series if name != ALL_ENDPOINTS and series[name]]
    scenario = run.meta.get("scenario_config") or {}
    wanted = scenario.get("plot_endpoints") or list((scenario.get("latency_mix") or {}).keys())
    chosen = [name for name in wanted if name in present]
    if not chosen:
        counts = {name: sum(s.count for s in series[name]) for name in present}
        chosen = sorted(present, key=lambda name: (-counts[name], name))
    return chosen[:MAX_ENDPOINTS_PLOTTED]


def _with_gaps(stats: list[SecondStats], x0_s: float, value) -> tuple[list[float], list[float]]:
    """x (the middle of each second) and y, with NaN in every second that has no sample: a gap, not a ramp."""
    if not stats:
        return [], []
    by_t = {s.t: s for s in stats}
    xs, ys = [], []
    for t in range(stats[0].t, stats[-1].t + 1):
        xs.append(t - x0_s + 0.5)
        ys.append(value(by_t[t]) if t in by_t else math.nan)
    return xs, ys


def _seconds_axis(run: RunData) -> list[int]:
    """Every second of the run, so a second with no completed request shows as zero, not as a line across it."""
    seen = [*run.ok_by_second, *run.failed_by_second]
    start = math.floor(run.started_unix_s)
    last = start + max(math.ceil(run.duration_s), 1) - 1
    return list(range(min([start, *seen]), max([last, *seen]) + 1))


# ------------------------------------------------------------------- events
def sentinel_marks(run: RunData) -> list[tuple[float, str]]:
    """(seconds since start, channel) of each +odown / +switch-master moment, one per moment however many saw it."""
    marks: list[tuple[float, str]] = []
    last: dict[str, float] = {}
    for event in sorted((e for e in run.events if e.get("type") == "sentinel"), key=lambda e: e["t"]):
        channel = event.get("channel")
        if channel not in SENTINEL_MARKED:
            continue
        if channel in last and event["t"] - last[channel] <= SENTINEL_MARK_COLLAPSE_S:
            continue
        last[channel] = event["t"]
        marks.append((event["t"] - run.started_unix_s, str(channel)))
    return marks[:MAX_EVENTS_MARKED]


def mark_events(run: RunData, panels, label_panel=None) -> bool:
    """Fault bands, heal bands, Sentinel marks and split-brain lines on every panel; True if anything was drawn."""
    periods = failover.fault_periods(run.events)
    label_panel = label_panel if label_panel is not None else panels[0]
    for index, period in enumerate(periods):
        start_s = period["start_t"] - run.started_unix_s
        # A fault never healed lasts, on the plot, to the end of the run.
        end_s = (period["end_t"] - run.started_unix_s) if period["end_t"] is not None else run.duration_s
        heal_s = (period["heal_t"] - run.started_unix_s) if period["heal_t"] is not None else end_s
        for axes in panels:
            axes.axvspan(start_s, heal_s, color="C3", alpha=0.13, lw=0, label="fault" if index == 0 else None)
            if end_s > heal_s:
                axes.axvspan(
                    heal_s, end_s, facecolor="none", edgecolor="0.45", hatch="///", alpha=0.35, lw=0,
                    label="heal" if index == 0 else None,
                )  # fmt: skip
        label_panel.annotate(
            f"{period['fault']} ({period['target']})" if period.get("target") else period["fault"],
            (start_s, 1),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2),
            textcoords="offset points",
            fontsize=7,
            va="top",
            ha="left",
            color="C3",
        )
    marks = sentinel_marks(run)
    for index, (t_s, channel) in enumerate(marks):
        first = next(i for i, (_, c) in enumerate(marks) if c == channel) == index
        for axes in panels:  # named in the legend: a text label would sit on the lines
            axes.axvline(t_s, color=MARK_COLOURS[channel], lw=1.2, ls="-.", label=channel if first else None)
    split = [e for e in run.events if e.get("type") == "split_brain"][:MAX_EVENTS_MARKED]
    for index, event in enumerate(split):
        for axes in panels:
            axes.axvline(
                event["t"] - run.started_unix_s, color="grey", ls=":", lw=1, label="two masters" if index == 0 else None
            )
    return bool(periods or marks or split)


# -------------------------------------------------------------------- plots
def plot_latency_panel(axes, run: RunData, kind: str, endpoints: list[str]) -> None:
    axes.set_title(f"latency, {KIND_TITLES[kind]}", fontsize=10)
    series = run.latency.per_second[kind]
    drawn = False
    for colour, name in zip(ENDPOINT_COLOURS, endpoints, strict=False):
        stats = series.get(name) or []
        if not stats:
            continue
        drawn = True
        x_s, p50 = _with_gaps(stats, run.started_unix_s, lambda s: s.p50_us / 1000)
        _, p99 = _with_gaps(stats, run.started_unix_s, lambda s: s.p99_us / 1000)
        axes.plot(x_s, p50, color=colour, lw=1.2, label=f"{name} p50")
        axes.plot(x_s, p99, color=colour, lw=1, ls="--", label=f"{name} p99")
    if not drawn:
        _note(axes, "no latency samples")
        return
    log_ms_axis(axes)


def plot_latency(run: RunData, path: Path) -> None:
    figure, grid = _panels(3, sharex=True, legend=True)
    panels = list(grid[:, 0])
    endpoints = plotted_endpoints(run)
    for axes, kind in zip(panels[:2], KINDS, strict=True):
        plot_latency_panel(axes, run, kind, endpoints)
    throughput = panels[2]
    throughput.set_title("throughput (requests/s)", fontsize=10)
    throughput.set_ylabel("requests/s")
    throughput.set_xlabel("seconds since run start")
    throughput.grid(True, lw=0.5, alpha=0.4)
    seconds = _seconds_axis(run)
    if run.ok_by_second or run.failed_by_second:
        edges = [t - run.started_unix_s for t in [*seconds, seconds[-1] + 1]]
        throughput.stairs([run.ok_by_second.get(t, 0) for t in seconds], edges, baseline=None, lw=1.2, label="ok")
        failed = [run.failed_by_second.get(t, 0) for t in seconds]
        if any(failed):
            throughput.stairs(failed, edges, baseline=None, lw=1.2, color="C3", label="failed")
    else:
        _note(throughput, "no requests recorded")
    mark_events(run, panels)  # after the lines: the legend lists the lines first, then the marks
    for axes in (panels[0], panels[2]):  # the intended panel has the service panel's lines
        if axes.get_legend_handles_labels()[0]:
            _legend(axes)
    figure.savefig(path)


def plot_errors(run: RunData, path: Path) -> None:
    figure, grid = _panels(1, legend=True)
    axes = grid[0, 0]
    axes.set_title("failed requests per second", fontsize=10)
    axes.set_xlabel("seconds since run start")
    axes.set_ylabel("failed/s")
    axes.grid(True, lw=0.5, alpha=0.4)
    seconds = _seconds_axis(run)
    failed = [run.failed_by_second.get(t, 0) for t in seconds]
    axes.bar([t - run.started_unix_s for t in seconds], failed, width=1.0, align="edge", color="C3", label="failed")
    if not any(failed):
        _note(axes, "no failed requests")
    mark_events(run, [axes])
    _legend(axes)
    figure.savefig(path)


def distribution_x(percentile: float) -> float:
    """HdrHistogram's percentile axis: 1 / (1 - p), so 90, 99, 99.9 are evenly spaced."""
    return 1.0 / (1.0 - percentile / 100.0)


def plot_percentiles(run: RunData, path: Path) -> None:
    """The latency distribution of each plotted endpoint over the whole run: service time against intended time."""
    endpoints = plotted_endpoints(run) or [ALL_ENDPOINTS]
    cols = 2 if len(endpoints) > 1 else 1
    rows = math.ceil(len(endpoints) / cols)
    figure, grid = _panels(rows, cols, height_per_row_in=3.0)
    for index, axes in enumerate(grid.flat):
        if index >= len(endpoints):
            axes.set_visible(False)
            continue
        name = endpoints[index]
        axes.set_title(f"{name}: latency by percentile", fontsize=10)
        drawn = False
        for colour, kind in enumerate(KINDS):
            histogram = _total(run.latency, kind, name)
            count = histogram.get_total_count()
            if not count:
                continue
            drawn = True
            # No point beyond what the samples can tell: p99.9 needs about 1000 of them.
            shown = [p for p in DISTRIBUTION_PERCENTILES if distribution_x(p) <= max(count, 2)]
            points = _fine_percentiles(shown[-1])
            axes.plot(
                [distribution_x(p) for p in points],
                [histogram.get_value_at_percentile(p) / 1000 for p in points],
                color=f"C{colour}",
                lw=1.3,
                label=f"{kind} (n={count})",
            )
        if not drawn:
            _note(axes, "no latency samples")
            continue
        axes.set_xscale("log")
        axes.set_xticks([distribution_x(p) for p in DISTRIBUTION_PERCENTILES])
        axes.set_xticklabels([f"{p:g}%" for p in DISTRIBUTION_PERCENTILES], fontsize=8)
        axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_xlim(1, 1.5 * distribution_x(DISTRIBUTION_PERCENTILES[-1]))
        log_ms_axis(axes)
        axes.set_xlabel("percentile")
        axes.legend(fontsize=7, loc="upper left")
    figure.savefig(path)


def _fine_percentiles(highest: float) -> list[float]:
    """Percentiles from 0 to highest, evenly spaced on the 1 / (1 - p) axis, so the curve has no corners."""
    top = math.log10(distribution_x(highest))
    steps = 60
    return [100.0 * (1.0 - 10 ** (-top * i / steps)) for i in range(steps + 1)]


def _total(latency: LatencyData, kind: str, endpoint: str):
    if endpoint != ALL_ENDPOINTS:
        return latency.totals.get((kind, endpoint)) or new_histogram()
    merged = new_histogram()
    for (k, _), histogram in latency.totals.items():
        if k == kind:
            merged.add(histogram)
    return merged


def plot_replicas(served_by: dict[str, int], path: Path) -> None:
    figure, grid = _panels(1)
    axes = grid[0, 0]
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
    plot_percentiles(run, plots_dir / "percentiles.png")
    plot_replicas(summary["served_by"], plots_dir / "replicas.png")
