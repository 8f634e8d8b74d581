"""report.md and plots/bench.png of a `make bench` run, from its summary.json.

`python -m sessionproof.analysis.bench_report FOLDER`, run by `make bench` when its measurements are written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sessionproof.analysis.plots import log_ms_axis
from sessionproof.runs import folder_report_main, write_report_files

ENDPOINTS = ("GET /ping", "GET /cart", "POST /cart/[item]")


def _range(spread: dict, digits: int = 0) -> str:
    fmt = f"{{:.{digits}f}}"
    return f"{fmt.format(spread['median'])} ({fmt.format(spread['min'])} to {fmt.format(spread['max'])})"


def _verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def _cpu_lines(summary: dict) -> list[str]:
    """Where a saturated request's CPU goes: µs per request of each part (psutil, per process tree)."""
    rows = [
        (layer, figures.get("capacity_cpu_us_per_request") or {})
        for layer, figures in summary["configurations"].items()
    ]
    if not any(split for _, split in rows):
        return []
    # The parts in the order the measurement wrote them (load/cpu_split.PARTS), machine last.
    parts = list(dict.fromkeys(p for _, split in rows for e in split.values() for p in e if p != "machine"))
    lines = [
        "",
        "### Where a saturated request's CPU goes, µs per request",
        "",
        "CPU time of each node's processes (workers included) over each capacity run, divided by its requests; "
        "`generator` is wrk, `machine` every busy CPU on the machine (kernel and interrupts too).",
        "",
        "| configuration | endpoint | " + " | ".join(parts) + " | machine |",
        "|---|---|" + "--:|" * (len(parts) + 1),
    ]
    for layer, split in rows:
        for name in ENDPOINTS:
            if name in split:
                lines.append(
                    f"| {layer} | {name} | " + " | ".join(f"{split[name][p]:.0f}" for p in parts)
                    + f" | {split[name]['machine']:.0f} |"
                )  # fmt: skip
    return lines


DURABLE_CONFIGURATIONS = ("hardened-fsync-always", "hardened-waitaof")
POST = "POST /cart/[item]"


def _durability_lines(summary: dict) -> list[str]:
    """What waiting for the disk costs a write: each durable variant's POST against plain hardened on its engine."""
    configurations = summary["configurations"]
    rows = []
    for label, figures in configurations.items():
        configuration, _, engine = label.partition(" on ")
        base = "hardened" + (f" on {engine}" if engine else "")
        if configuration in DURABLE_CONFIGURATIONS and base in configurations:
            rows.append((label, base, figures, configurations[base]))
    if not rows:
        return []
    lines = [
        "",
        "## What waiting for the disk costs a write (POST /cart, against hardened on the same engine)",
        "",
        "hardened: appendfsync everysec, WAIT. hardened-fsync-always: every node fsyncs before it answers (and so "
        "before its replica acknowledgement), WAIT. hardened-waitaof: the same, and WAITAOF after WAIT.",
        "",
        "| configuration | unloaded p50 µs | against | unloaded p99 µs | against | saturated req/s | against |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for label, base, figures, base_figures in rows:
        p50, base_p50 = (f["unloaded_us"][POST]["p50"]["median"] for f in (figures, base_figures))
        p99, base_p99 = (f["unloaded_us"][POST]["p99"]["median"] for f in (figures, base_figures))
        rps, base_rps = (f["capacity_rps"][POST]["median"] for f in (figures, base_figures))
        lines.append(
            f"| {label} | {p50:.0f} | {p50 - base_p50:+.0f} ({base}) | {p99:.0f} | {p99 - base_p99:+.0f} | "
            f"{rps:.0f} | {(rps / base_rps - 1) * 100:+.0f} % |"
        )
    return lines


def report_lines(summary: dict) -> list[str]:
    settings, targets = summary["settings"], summary["targets"]
    machine, config = summary["machine"], summary["config"]
    lines = [
        f"# Bench, {summary['started_at']}",
        "",
        f"Machine: {machine['cores']} cores, {machine['platform']}. Stack: {config.get('APPS')} app replicas x "
        f"{config.get('GUNICORN_WORKERS')} gunicorn workers x {config.get('GUNICORN_THREADS')} threads, behind nginx. "
        f"Independent clients: wrk (closed loop) and hey (fixed rate), from Debian's packages. "
        f"{settings['reps']} repetitions in alternating order; figures are medians (min to max).",
        "",
        "![capacity and unloaded latency](plots/bench.png)",
        "",
        f"## Capacity (wrk, {settings['connections']} connections, {settings['capacity_s']:g} s each)",
        "",
        "| configuration | GET /ping req/s | GET /cart req/s | POST req/s | GET /cart ÷ GET /ping | POST ÷ GET /ping | "
        "errors |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for layer, figures in summary["configurations"].items():
        rps, ratios = figures["capacity_rps"], figures["ratios"]
        lines.append(
            f"| {layer} | " + " | ".join(_range(rps[name]) for name in ENDPOINTS)
            + f" | {ratios['GET /cart ÷ GET /ping']:.2f} | {ratios['POST ÷ GET /ping']:.2f} | "
            + f"{sum(figures['capacity_errors'].values())} |"
        )  # fmt: skip
    lines += _cpu_lines(summary)
    lines += [
        "",
        f"## Unloaded latency (wrk, one connection, {settings['unloaded_s']:g} s each), µs",
        "",
        "| configuration | endpoint | p50 | p99 | p99.9 |",
        "|---|---|--:|--:|--:|",
    ]
    for layer, figures in summary["configurations"].items():
        for name in ENDPOINTS:
            p = figures["unloaded_us"][name]
            lines.append(f"| {layer} | {name} | {_range(p['p50'])} | {_range(p['p99'])} | {_range(p['p999'])} |")
    lines += _durability_lines(summary)
    lines += ["", *(f"Not run: {label}: {why}." for label, why in (summary.get("skipped") or {}).items())]
    lines += [
        "",
        "## Against the targets",
        "",
        "| configuration | figure | value | target | |",
        "|---|---|--:|--:|---|",
    ]
    for layer, figures in summary["configurations"].items():
        ratio = figures["ratios"]["GET /cart ÷ GET /ping"]
        tax, post = figures["session_tax_p50_us"], figures["post_over_cart_p50"]
        lines += [
            f"| {layer} | GET /cart ÷ GET /ping saturated | {ratio:.2f} | ≥ {targets['cart_over_ping_min']} | "
            f"{_verdict(ratio >= targets['cart_over_ping_min'])} |",
            f"| {layer} | session tax at p50, unloaded | {tax:.0f} µs | ≤ {targets['session_tax_p50_max_us']} µs | "
            f"{_verdict(tax <= targets['session_tax_p50_max_us'])} |",
            f"| {layer} | POST ÷ GET /cart at p50, unloaded | {post:.2f} | ≤ {targets['post_over_cart_p50_max']} | "
            f"{_verdict(post <= targets['post_over_cart_p50_max'])} |",
        ]
    lines += [
        "",
        f"## Harness accuracy ({settings['accuracy_s']:g} s of the latency scenario, then hey at the rates it "
        "sent to each endpoint)",
        "",
        "The harness's service time against hey's, at p50 and p99 (µs). Accurate: p50 within 25% or 300 µs.",
        "",
        "| configuration | endpoint | req/s | harness p50 | hey p50 | diff | harness p99 | hey p99 | diff | accurate |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for layer, figures in summary["configurations"].items():
        for name, row in figures["accuracy"]["endpoints"].items():
            ours, theirs = row["harness"], row["independent"]
            lines.append(
                f"| {layer} | {name} | {row.get('rate_per_s', 'n/a')} | {ours['p50_us']} | {theirs['p50_us']} | "
                f"{row['p50_diff_us']:+d} | "
                f"{ours['p99_us']} | {theirs['p99_us']} | {row['p99_diff_us']:+d} | "
                f"{'yes' if row['accurate'] else '**no**'} |"
            )
    lines += ["", f"Command: `{summary['command']}`", ""]
    return lines


def plot_bench(summary: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    layers = list(summary["configurations"])
    figure = Figure(figsize=(11, 4.2), dpi=100)
    capacity, unloaded = figure.subplots(1, 2, gridspec_kw={"left": 0.07, "right": 0.98, "bottom": 0.2, "wspace": 0.25})
    width = 0.8 / len(layers)
    for index, layer in enumerate(layers):
        figures = summary["configurations"][layer]
        xs = [i + (index - (len(layers) - 1) / 2) * width for i in range(len(ENDPOINTS))]
        medians = [figures["capacity_rps"][name]["median"] for name in ENDPOINTS]
        bars = capacity.bar(xs, medians, width * 0.9, color=f"C{index}", label=layer)
        capacity.bar_label(bars, labels=[f"{m:.0f}" for m in medians], fontsize=7)
        for x, name in zip(xs, ENDPOINTS, strict=True):  # every repetition as a dot: the spread at a glance
            reps = figures["capacity_rps"][name]["reps"]
            capacity.plot([x] * len(reps), reps, "k.", ms=3)
        for key, style in (("p50", "o"), ("p99", "^")):
            values = [figures["unloaded_us"][name][key]["median"] / 1000 for name in ENDPOINTS]
            unloaded.plot(xs, values, style, color=f"C{index}")
    for key, style in (("p50", "o"), ("p99", "^")):  # colours are the configurations, as in the left panel
        unloaded.plot([], [], style, color="grey", label=key)
    capacity.set_title("saturated throughput (wrk), req/s", fontsize=10)
    unloaded.set_title("unloaded latency, one connection (wrk)", fontsize=10)
    for axes in (capacity, unloaded):
        axes.set_xticks(range(len(ENDPOINTS)))
        axes.set_xticklabels(ENDPOINTS, fontsize=8)
        axes.legend(fontsize=7)
    capacity.grid(True, axis="y", lw=0.5, alpha=0.4)
    log_ms_axis(unloaded)
    figure.savefig(path)


def write_report(summary: dict, out_dir: Path) -> None:
    write_report_files(out_dir, report_lines(summary), "bench.png", lambda path: plot_bench(summary, path))


def main(argv: list[str] | None = None) -> int:
    return folder_report_main(argv, "bench", write_report)


if __name__ == "__main__":
    sys.exit(main())
