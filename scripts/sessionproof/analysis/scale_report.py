"""report.md and plots/scale.png of a `make scale` run, from its summary.json.

`python -m sessionproof.analysis.scale_report FOLDER`, run by `make scale` when its measurements are written.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from sessionproof.analysis.plots import log_ms_axis
from sessionproof.runs import folder_report_main, write_report_files

ENDPOINTS = ("GET /cart", "POST /cart/[item]")
P99_FLAT_WITHIN = 0.2  # p99 at the largest size within 20% of p99 at the smallest


def _us(value) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def p99_runs(step: dict, endpoint: str) -> list[int]:
    """The p99 of every latency run at this size (the first pass and the alternating repeats)."""
    runs_ = step.get("latency_repeats") or [step["latency"]]
    return [run[endpoint]["p99"] for run in runs_ if run[endpoint]["p99"] is not None]


def p99_growth(summary: dict, endpoint: str) -> float | None:
    """Median p99 at the largest size over the median at the smallest, minus one (0.1: 10% higher)."""
    first, last = (p99_runs(summary["steps"][i], endpoint) for i in (0, -1))
    return None if not first or not last else statistics.median(last) / statistics.median(first) - 1


def report_lines(summary: dict) -> list[str]:
    settings, machine, config = summary["settings"], summary["machine"], summary["config"]
    steps = summary["steps"]
    lines = [
        f"# Scale, {summary['started_at']}",
        "",
        f"Machine: {machine['cores']} cores, {machine['platform']}. Hardened stack, {config.get('APPS')} app "
        f"replicas; Redis maxmemory {settings['maxmemory']} for this run (noeviction), "
        f"appendonly with appendfsync everysec; every node's AOF is rewritten (BGREWRITEAOF, awaited) after each "
        f"fill, so it holds the live data alone and no rewrite overlaps a measurement. Each fill session is a real one (login and "
        f"{settings['cart_items']} items, as the app stored it), copied under new ids with pipelined SET EX. "
        f"Latency: the latency scenario through the harness for {settings['load_s']:g} s at each size.",
        "",
        "![p99 and memory against live sessions](plots/scale.png)",
        "",
        "## Memory",
        "",
        "| live sessions | used_memory | bytes/session (used_memory delta) | bytes/session (MEMORY USAGE) | "
        "bytes/record (used_memory delta) | bytes/record (MEMORY USAGE) | fill |",
        "|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for step in steps:
        record = step["idempotency"]
        lines.append(
            f"| {step['sessions']} | {step['used_memory_bytes'] / 2**20:.1f} MiB | "
            f"{_us(step['bytes_per_session_used_memory'])} | {_us(step['bytes_per_session_memory_usage'])} | "
            f"{_us(record['bytes_per_record_used_memory'])} | {_us(record['bytes_per_record_memory_usage'])} | "
            f"{step['fill_s']:.1f} s |"
        )
    lines += [
        "",
        f"A session's value is {steps[0]['session_value_bytes']} bytes; records are measured over "
        f"{steps[0]['idempotency']['writes']} writes through nginx at each size.",
        "",
        "## Latency, µs",
        "",
        "The first pass, then every run at each size (the smallest and the largest are measured again, "
        "alternately, REPEATS times): p99 of each run in order.",
        "",
        "| live sessions | GET /cart p50 | GET /cart p99 | POST p50 | POST p99 | GET /cart p99, every run | "
        "POST p99, every run | valid |",
        "|--:|--:|--:|--:|--:|---|---|---|",
    ]
    for step in steps:
        latency = step["latency"]
        cart, post = latency["GET /cart"], latency["POST /cart/[item]"]
        every_valid = all(run["valid"] for run in step.get("latency_repeats") or [latency])
        lines.append(
            f"| {step['sessions']} | {_us(cart['p50'])} | {_us(cart['p99'])} | {_us(post['p50'])} | "
            f"{_us(post['p99'])} | {', '.join(map(str, p99_runs(step, 'GET /cart')))} | "
            f"{', '.join(map(str, p99_runs(step, 'POST /cart/[item]')))} | {'yes' if every_valid else '**no**'} |"
        )
    lines.append("")
    for endpoint in ENDPOINTS:
        growth = p99_growth(summary, endpoint)
        if growth is None:
            continue
        verdict = "flat" if growth <= P99_FLAT_WITHIN else "**not flat**"
        lines.append(
            f"- {endpoint}: the median p99 at {steps[-1]['sessions']} sessions is {growth:+.0%} against "
            f"{steps[0]['sessions']} ({verdict}: within {P99_FLAT_WITHIN:.0%})."
        )
    lines += [
        "",
        "## Recovery",
        "",
        "| live sessions | replica resync after SIGKILL | kind | AOF size | full restart: until every node answers |",
        "|--:|--:|---|--:|--:|",
    ]
    for step in steps:
        resync, restart = step["replica_resync"], step["full_restart"]
        kind = "full" if resync["full_syncs"] else "partial" if resync["partial_syncs"] else "none counted"
        lines.append(
            f"| {step['sessions']} | {resync['seconds']:.2f} s | {kind} | {step['aof_bytes'] / 2**20:.1f} MiB | "
            f"{restart['max_s']:.2f} s |"
        )
    lines += ["", f"Command: `{summary['command']}`", ""]
    return lines


def plot_scale(summary: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    steps = summary["steps"]
    sessions = [step["sessions"] for step in steps]
    figure = Figure(figsize=(11, 4.2), dpi=100)
    latency, memory = figure.subplots(1, 2, gridspec_kw={"left": 0.07, "right": 0.98, "bottom": 0.14, "wspace": 0.25})
    for index, endpoint in enumerate(ENDPOINTS):
        p50 = [(n, step["latency"][endpoint]["p50"]) for n, step in zip(sessions, steps, strict=True)]
        p50 = [(n, v / 1000) for n, v in p50 if v is not None]
        if p50:
            latency.plot(*zip(*p50, strict=True), "o--", color=f"C{index}", label=f"{endpoint} p50 (first pass)")
        medians = [(n, statistics.median(r) / 1000) for n, step in zip(sessions, steps, strict=True)
                   if (r := p99_runs(step, endpoint))]  # fmt: skip
        if medians:
            latency.plot(*zip(*medians, strict=True), "^-", color=f"C{index}", label=f"{endpoint} p99 (median of runs)")
        for n, step in zip(sessions, steps, strict=True):  # every run's p99: the spread at a glance
            runs_ = [v / 1000 for v in p99_runs(step, endpoint)]
            latency.plot([n] * len(runs_), runs_, ".", color=f"C{index}", ms=5, alpha=0.6)
    latency.set_title("latency at a fixed rate (harness); dots: each run's p99", fontsize=10)
    log_ms_axis(latency)
    memory.plot(sessions, [step["used_memory_bytes"] / 2**20 for step in steps], "s-", color="C2",
                label="Redis used_memory")  # fmt: skip
    memory.set_title("Redis memory against live sessions", fontsize=10)
    memory.set_ylabel("MiB")
    memory.grid(True, lw=0.5, alpha=0.4)
    for axes in (latency, memory):
        axes.set_xscale("log")
        axes.set_xlabel("live sessions")
        axes.legend(fontsize=7)
    figure.savefig(path)


def write_report(summary: dict, out_dir: Path) -> None:
    write_report_files(out_dir, report_lines(summary), "scale.png", lambda path: plot_scale(summary, path))


def main(argv: list[str] | None = None) -> int:
    return folder_report_main(argv, "scale", write_report)


if __name__ == "__main__":
    sys.exit(main())
