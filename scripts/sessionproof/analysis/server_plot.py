"""plots/server.png: the server side on the client's time axis, with the same fault bands and Sentinel marks.

Panels, top to bottom: the client's latency (all endpoints), requests and 5xx per second per
replica as the replicas counted them, store retries and session conflicts per second per
replica, each replica's replication lag behind the master, and which Redis node was master.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from sessionproof.analysis import partition
from sessionproof.analysis.plots import _legend, _note, _panels, mark_events, plot_latency_panel
from sessionproof.analysis.rundata import ALL_ENDPOINTS, RunData
from sessionproof.analysis.server import per_step_increase, value_at

MARK_LABELS = {"fault", "heal", "+odown", "+switch-master", "two masters"}  # mark_events' legend entries
REPLICA_COLOURS = ("C0", "C1", "C2", "C6", "C7", "C8", "C9")


def _per_node_rate(series: list[dict], start_s: float, step_s: float, keep=lambda labels: True) -> dict[str, dict]:
    """node -> {t: increase per second}, summed over the node's series that `keep` accepts."""
    rates: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for item in series:
        if not keep(item["labels"]):
            continue
        for t, rise in per_step_increase(item["values"], start_s, step_s):
            rates[item["labels"].get("node", "?")][t] += rise / step_s
    return rates


def _draw_rates(
    axes, rates: dict[str, dict], x0_s: float, ls: str, suffix: str, colours: dict[str, str], always: bool = False
) -> bool:
    """One line per node; a node whose rate stayed zero is left out unless `always`. True if a line was drawn."""
    drawn = False
    for node in sorted(rates):
        points = sorted(rates[node].items())
        if not points or not (always or any(v for _, v in points)):
            continue
        axes.plot([t - x0_s for t, _ in points], [v for _, v in points], color=colours[node], ls=ls, lw=1.1,
                  label=f"{node} {suffix}")  # fmt: skip
        drawn = True
    return drawn


def _lag_series(series: dict, names: dict[str, str]) -> dict[str, list[tuple[float, float]]]:
    """replica -> [(t, bytes behind its master)], from each master's INFO replication."""
    offsets = {item["labels"].get("node"): item["values"] for item in series.get("redis_master_offset", [])}
    lags: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for item in series.get("redis_replica_offset", []):
        labels = item["labels"]
        master_values = offsets.get(labels.get("node")) or []
        replica = partition.node_name(f"{labels.get('slave_ip')}:{labels.get('slave_port')}", names)
        for t, replica_offset in item["values"]:
            master = value_at(master_values, t)
            if master is not None and master[1] <= 1.5:
                lags[replica].append((t, max(master[0] - replica_offset, 0.0)))
    return {replica: sorted(points) for replica, points in lags.items()}


def _with_gaps(points: list[tuple[float, float]], step_s: float) -> tuple[list[float], list[float]]:
    """x and y with a NaN wherever samples are missing for more than a step: a gap, not a line across it."""
    xs: list[float] = []
    ys: list[float] = []
    for t, value in points:
        if xs and t - xs[-1] > 1.5 * step_s:
            xs.append(xs[-1] + step_s)
            ys.append(float("nan"))
        xs.append(t)
        ys.append(value)
    return xs, ys


def _draw_roles(axes, series: dict, x0_s: float, step_s: float) -> None:
    """A bar per Redis node: thick red where it reported master, thin grey where replica, nothing where silent."""
    nodes = sorted({item["labels"].get("node", "?") for item in series.get("redis_role", [])})
    for row, node in enumerate(nodes):
        for item in series.get("redis_role", []):
            if item["labels"].get("node") != node:
                continue
            master = item["labels"].get("role") == "master"
            spans = [(t - x0_s, step_s) for t, _ in item["values"]]
            height, colour = (0.6, "C3") if master else (0.2, "0.6")
            axes.broken_barh(spans, (row - height / 2, height), facecolors=colour, lw=0)
    axes.set_yticks(range(len(nodes)), nodes, fontsize=8)
    axes.set_ylim(-0.6, max(len(nodes), 1) - 0.4)
    axes.set_title("Redis role (thick red: master, thin grey: replica, blank: not answering)", fontsize=10)


def plot_server(run: RunData, server: dict[str, Any], path: Path) -> None:
    raw = run.server or {}
    series, step_s = raw.get("series") or {}, float(raw.get("step_s", 1.0))
    x0_s = run.started_unix_s
    start_s = float((raw.get("window") or {}).get("start_s", x0_s))
    figure, grid = _panels(5, sharex=True, legend=True, height_per_row_in=2.2)
    panels = list(grid[:, 0])
    plot_latency_panel(panels[0], run, "service", [ALL_ENDPOINTS])
    panels[0].set_title("client latency, all endpoints (service time)", fontsize=10)
    nodes = sorted({item["labels"].get("node", "?") for item in series.get("requests", [])})
    colours = defaultdict(
        lambda: "C7", {node: REPLICA_COLOURS[i % len(REPLICA_COLOURS)] for i, node in enumerate(nodes)}
    )

    requests_panel, retries_panel, lag_panel, roles_panel = panels[1:]
    requests_panel.set_title("requests/s per replica (solid), 5xx/s (dashed), as each replica counted", fontsize=10)
    _draw_rates(
        requests_panel,
        _per_node_rate(series.get("requests", []), start_s, step_s),
        x0_s,
        "-",
        "req/s",
        colours,
        always=True,
    )
    five_xx = _per_node_rate(
        series.get("requests", []), start_s, step_s, lambda labels: labels.get("status", "").startswith("5")
    )
    _draw_rates(requests_panel, five_xx, x0_s, "--", "5xx/s", colours)
    requests_panel.set_ylabel("per s")

    retries_panel.set_title("store retries/s per replica (solid), session conflicts/s (dotted)", fontsize=10)
    drawn = _draw_rates(
        retries_panel, _per_node_rate(series.get("retries", []), start_s, step_s), x0_s, "-", "retries/s", colours
    )
    drawn |= _draw_rates(
        retries_panel, _per_node_rate(series.get("conflicts", []), start_s, step_s), x0_s, ":", "conflicts/s", colours
    )
    if not drawn:
        _note(retries_panel, "no store retries or conflicts")
    retries_panel.set_ylabel("per s")

    lag_panel.set_title("replication lag: bytes each replica is behind its master", fontsize=10)
    lags = _lag_series(series, partition.store_names(run.meta))
    for index, (replica, points) in enumerate(sorted(lags.items())):
        lag_panel.plot(
            [t - x0_s for t, _ in points], [v for _, v in points], lw=1.1, color=f"C{index + 3}", label=replica
        )
    lag_panel.set_ylim(bottom=0)
    lag_panel.set_ylabel("bytes")
    if not lags:
        _note(lag_panel, "no replica reported")

    _draw_roles(roles_panel, series, x0_s, step_s)
    roles_panel.set_xlabel("seconds since run start")
    for axes in panels[1:4]:
        axes.grid(True, lw=0.5, alpha=0.4)
    panels[0].set_xlim(0, max(run.duration_s, 1))
    mark_events(run, panels)
    _legend(panels[0])  # the marks once, with the client's lines
    for axes in panels[1:4]:  # the replicas' lines; the marks are the same as above
        handles, labels = axes.get_legend_handles_labels()
        kept = [(h, label) for h, label in zip(handles, labels, strict=True) if label not in MARK_LABELS]
        if kept:
            axes.legend(
                *zip(*kept, strict=True), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0
            )
    figure.savefig(path)


def write_server_plot(run: RunData, summary: dict[str, Any], plots_dir: Path) -> None:
    """plots/server.png when the run recorded the server side; a stale one from an earlier render is removed."""
    path = plots_dir / "server.png"
    server = summary.get("server") or {}
    if server.get("available"):
        plot_server(run, server, path)
    elif path.exists():
        path.unlink()
