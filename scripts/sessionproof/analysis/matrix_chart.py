"""The matrix as one picture: client errors, lost acknowledged writes and p99 during the fault, per fault and
configuration, as horizontal bars side by side (a fault's configurations next to each other)."""

from __future__ import annotations

from pathlib import Path

from sessionproof.analysis.plots import log_ms_axis

# (row key, panel title, scale to the plotted unit, log axis)
PANELS = (
    ("client_errors_total", "client errors (responses other than 200)", 1.0, False),
    ("lost_acknowledged_writes", "lost acknowledged writes", 1.0, False),
    ("p99_during_us", "p99 during the fault, ms (intended start)", 1e-3, True),
)
BAR_HEIGHT_IN = 0.16


def plot_matrix(rows: list[dict], path: Path) -> bool:
    """Write the chart of the fault rows; False (and no file) when no row has figures."""
    rows = [row for row in rows if "note" not in row]
    if not rows:
        return False
    from matplotlib.figure import Figure

    faults = list(dict.fromkeys(row["fault"] for row in rows))
    configurations = list(dict.fromkeys(row["configuration"] for row in rows))
    by_key = {(row["fault"], row["configuration"]): row for row in rows}
    group_in = BAR_HEIGHT_IN * (len(configurations) + 1)
    height_in = 1.3 + group_in * len(faults)
    figure = Figure(figsize=(13, height_in), dpi=100)
    margins = {"left": 0.2, "right": 0.98, "top": 1 - 0.75 / height_in, "bottom": 0.45 / height_in, "wspace": 0.12}
    panels = figure.subplots(1, len(PANELS), sharey=True, gridspec_kw=margins)
    step = 1.0 / (len(configurations) + 1)
    for axes, (key, title, scale, log) in zip(panels, PANELS, strict=True):
        axes.set_title(title, fontsize=9)
        values_seen = []
        for index, configuration in enumerate(configurations):
            ys, widths, labels = [], [], []
            for position, fault in enumerate(faults):
                row = by_key.get((fault, configuration))
                value = None if row is None else row.get(key)
                y = position + (index - (len(configurations) - 1) / 2) * step
                if value is None:
                    if row is not None:  # ran, but this figure does not exist for it
                        axes.text(0, y, " n/a", va="center", fontsize=6, color="grey")
                    continue
                ys.append(y)
                widths.append(value * scale)
                labels.append(f"{value * scale:g}" if not log else f"{value * scale:.0f}")
                values_seen.append(value * scale)
            bars = axes.barh(ys, widths, height=step * 0.9, color=f"C{index}", label=configuration)
            axes.bar_label(bars, labels=labels, fontsize=6, padding=2)
        if log and values_seen:
            log_ms_axis(axes, label="", axis="x", subs=(1.0,))  # a narrow panel: one label a decade
            axes.set_xlim(min(values_seen) / 2, max(values_seen) * 4)
        else:
            axes.grid(True, axis="x", lw=0.5, alpha=0.4)
            axes.set_xlim(0, max([*values_seen, 1]) * 1.25)
        axes.tick_params(axis="x", labelsize=7)
    panels[0].set_yticks(range(len(faults)))
    panels[0].set_yticklabels(faults, fontsize=8)
    panels[0].invert_yaxis()  # the first fault on top, as in the tables
    panels[0].set_ylim(len(faults) - 0.5, -0.5)
    figure.legend(
        *panels[0].get_legend_handles_labels(), loc="upper center", ncols=len(configurations), fontsize=8, frameon=False
    )
    figure.savefig(path)
    return True
