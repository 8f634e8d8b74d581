"""plots/campaign.png: the campaign on one time axis, in minutes since the run's start.

Top: the faults as a Gantt chart, one row per fault kind, a bar per injection from its inject to its heal, coloured
by its step's kind (single, pair, triple), so overlapping steps show as bars one above the other; above them the
time two or more faults were active at once, the split-brain episodes, and a tick per anomaly the checker saw,
on its class's row; failed injections are crosses on their row. Below: ok answers/s and failed answers/s, averaged over
bins long enough that a run of hours stays readable. Every Sentinel failover is a vertical line through all panels.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sessionproof.analysis.campaign_faults import merge
from sessionproof.analysis.campaign_history import per_bin
from sessionproof.history import ANOMALY_CLASSES

if TYPE_CHECKING:
    from sessionproof.analysis.campaign_report import Campaign

BIN_CHOICES_S = (1, 2, 5, 10, 30, 60, 120, 300)
MAX_BINS = 800
KIND_COLOURS = {"single": "tab:blue", "pair": "tab:orange", "triple": "tab:purple"}
OTHER_KIND_COLOUR = "tab:olive"
FAILOVER_COLOUR = "black"
OVERLAP_ROW, SPLIT_ROW, NO_ANOMALY_ROW = "2+ faults active", "split brain", "anomalies: none"


def bin_s(duration_s: float) -> int:
    """The shortest bin that keeps the rate panels under MAX_BINS points."""
    return next((b for b in BIN_CHOICES_S if duration_s / b <= MAX_BINS), BIN_CHOICES_S[-1])


def _overlap_spans(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Where two or more of the intervals are active at once."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals], key=lambda e: e[0])
    spans, active, since = [], 0, 0.0
    for t, step in edges:
        if active >= 2 and t > since:
            spans.append((since, t))
        active += step
        since = t
    return merge(spans)


def _minutes(spans, origin_t: float) -> list[tuple[float, float]]:
    return [((start - origin_t) / 60, max((end - start) / 60, 0.02)) for start, end in spans]


def plot_campaign(c: Campaign, path: Path) -> None:
    from matplotlib.figure import Figure

    origin = c.run.started_unix_s
    span_min = max((c.end_t - origin) / 60, 1 / 60)
    kinds = list(dict.fromkeys([i.fault for i in c.runs] + [f["fault"] for f in c.failed if f.get("fault")]))
    moments = {name: c.run.verdict.moments.get(name) or [] for name in ANOMALY_CLASSES}
    anomaly_rows = {name: f"{name} ({len(times)})" for name, times in moments.items() if times}
    rows = [*(anomaly_rows.values() or [NO_ANOMALY_ROW]), SPLIT_ROW, OVERLAP_ROW, *kinds]
    gantt_in = 0.3 * len(rows) + 0.8
    figure = Figure(figsize=(13, gantt_in + 5.2), dpi=100)
    # hspace is a share of the mean panel height: about 0.9 in between panels, however tall the Gantt chart is
    # (a fixed 0.35 left 3 in of blank paper under a 30-row chart).
    grid = figure.add_gridspec(
        3, 1, height_ratios=[gantt_in, 2.2, 2.2], left=0.17, right=0.8, top=0.96, bottom=0.07,
        hspace=0.9 * 3 / (gantt_in + 4.4),
    )  # fmt: skip
    gantt = figure.add_subplot(grid[0])
    ok_axes = figure.add_subplot(grid[1], sharex=gantt)
    failed_axes = figure.add_subplot(grid[2], sharex=gantt)
    y = {name: len(rows) - 1 - index for index, name in enumerate(rows)}

    kind_of = {index: step["kind"] for step in c.steps for index in step["faults"]}
    shown_kinds: set[str] = set()
    for index, injection in enumerate(c.runs):
        kind = kind_of.get(index, "single")
        colour = KIND_COLOURS.get(kind, OTHER_KIND_COLOUR)
        bar = _minutes([(injection.active_from, injection.active_to(c.end_t))], origin)
        label = f"{kind} step" if kind not in shown_kinds else None
        shown_kinds.add(kind)
        gantt.broken_barh(bar, (y[injection.fault] - 0.35, 0.7), color=colour, alpha=0.75, lw=0, label=label)
    intervals = [(i.active_from, i.active_to(c.end_t)) for i in c.runs]
    gantt.broken_barh(_minutes(_overlap_spans(intervals), origin), (y[OVERLAP_ROW] - 0.35, 0.7), color="0.35", lw=0)
    brains = [(b["start_t"], b["end_t"]) for b in c.split_brains]
    gantt.broken_barh(_minutes(brains, origin), (y[SPLIT_ROW] - 0.35, 0.7), color="tab:red", alpha=0.6, lw=0)
    for number, failed in enumerate(f for f in c.failed if f.get("fault") in y):
        gantt.plot((failed["t"] - origin) / 60, y[failed["fault"]], "x", color="tab:red", ms=7, mew=2,
                   label="failed injection" if number == 0 else None)  # fmt: skip
    for name, row in anomaly_rows.items():  # a tick per anomaly, on its class's row
        xs = [t / 60_000_000 for t in moments[name]]
        gantt.plot(xs, [y[row]] * len(xs), "|", ls="none", ms=9, mew=1.2, color="tab:red", alpha=0.8,
                   label="anomaly (checker)" if row == next(iter(anomaly_rows.values())) else None)  # fmt: skip
    gantt.axhline(y[OVERLAP_ROW] - 0.5, color="0.6", lw=0.8)  # the faults below, what they led to above
    gantt.set_yticks(list(y.values()), list(y))
    gantt.set_ylim(-0.7, len(rows) - 0.3)
    gantt.set_title(
        f"faults of {len(c.steps)} steps (bars: inject to heal), failovers, split brain and anomalies", fontsize=10
    )
    gantt.grid(True, axis="x", lw=0.5, alpha=0.4)
    gantt.tick_params(axis="y", labelsize=8)
    gantt.tick_params(axis="x", labelbottom=False)

    width = bin_s(c.end_t - origin)
    bins = max(1, int(-(-(c.end_t - origin) // width)))
    ok_rate, failed_rate = per_bin(c.answers, origin, width, bins)
    edges = [index * width / 60 for index in range(bins + 1)]
    ok_axes.stairs(ok_rate, edges, color="tab:blue", lw=1.2, label="ok answers")
    ok_axes.set_ylabel("ok answers/s")
    ok_axes.set_title(f"answers per second (mean over {width} s bins)", fontsize=10)
    ok_axes.tick_params(axis="x", labelbottom=False)
    failed_axes.stairs(failed_rate, edges, color="tab:red", lw=1.2, label="failed answers (4xx, 5xx, timeout)")
    failed_axes.set_ylabel("failed answers/s")
    failed_axes.set_xlabel("minutes since run start")
    if not any(failed_rate):
        failed_axes.text(0.5, 0.5, "no failed answers", ha="center", va="center", transform=failed_axes.transAxes,
                         color="grey")  # fmt: skip
        failed_axes.set_ylim(0, 1)
    for axes in (ok_axes, failed_axes):
        axes.set_ylim(bottom=0)
        axes.grid(True, lw=0.5, alpha=0.4)
    for number, failover in enumerate(c.failovers):
        for axes in (gantt, ok_axes, failed_axes):
            axes.axvline((failover["t"] - origin) / 60, color=FAILOVER_COLOUR, lw=0.8, ls="-.", alpha=0.6,
                         label=f"Sentinel failover ({len(c.failovers)})" if number == 0 and axes is gantt
                         else None)  # fmt: skip
    gantt.set_xlim(0, span_min)
    for axes in (gantt, ok_axes, failed_axes):
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    figure.savefig(path)
