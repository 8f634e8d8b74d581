"""report.md and plots/scale.png of a `make scale` run, from its summary."""

from __future__ import annotations

from pathlib import Path

from sessionproof.analysis.plots import log_ms_axis

ENDPOINTS = ("GET /cart", "POST /cart/[item]")
P99_FLAT_WITHIN = 0.2  # p99 at the largest size within 20% of p99 at the smallest


def _us(value) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def p99_growth(summary: dict, endpoint: str) -> float | None:
    """p99 at the largest size over p99 at the smallest, minus one (0.1: 10% higher)."""
    first, last = (summary["steps"][i]["latency"][endpoint]["p99"] for i in (0, -1))
    return None if not first or last is None else last / first - 1


def report_lines(summary: dict) -> list[str]:
    settings, machine, config = summary["settings"], summary["machine"], summary["config"]
    steps = summary["steps"]
    lines = [
        f"# Scale, {summary['started_at']}",
        "",
        f"Machine: {machine['cores']} cores, {machine['platform']}. Hardened stack, {config.get('APPS')} app "
        f"replicas; Redis maxmemory {settings['maxmemory']} for this run (noeviction), "
        f"appendonly with appendfsync everysec. Each fill session is a real one (login and "
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
        "| live sessions | GET /cart p50 | GET /cart p99 | POST p50 | POST p99 | harness run | valid |",
        "|--:|--:|--:|--:|--:|---|---|",
    ]
    for step in steps:
        latency = step["latency"]
        cart, post = latency["GET /cart"], latency["POST /cart/[item]"]
        lines.append(
            f"| {step['sessions']} | {_us(cart['p50'])} | {_us(cart['p99'])} | {_us(post['p50'])} | "
            f"{_us(post['p99'])} | `{latency['run']}` | {'yes' if latency['valid'] else '**no**'} |"
        )
    lines.append("")
    for endpoint in ENDPOINTS:
        growth = p99_growth(summary, endpoint)
        if growth is None:
            continue
        verdict = "flat" if growth <= P99_FLAT_WITHIN else "**not flat**"
        lines.append(
            f"- {endpoint}: p99 at {steps[-1]['sessions']} sessions is {growth:+.0%} against "
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
        for key, style in (("p50", "o--"), ("p99", "^-")):
            values = [step["latency"][endpoint][key] for step in steps]
            points = [(s, v / 1000) for s, v in zip(sessions, values, strict=True) if v is not None]
            if points:
                latency.plot(*zip(*points, strict=True), style, color=f"C{index}", label=f"{endpoint} {key}")
    latency.set_title("latency at a fixed rate (harness), against live sessions", fontsize=10)
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
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    plot_scale(summary, out_dir / "plots" / "scale.png")
    (out_dir / "report.md").write_text("\n".join(report_lines(summary)))
