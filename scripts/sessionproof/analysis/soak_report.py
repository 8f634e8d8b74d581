"""report.md and plots/soak.png of a `make soak` run, from its summary."""

from __future__ import annotations

from pathlib import Path

from sessionproof.runs import write_report_files

MIB = 2**20


def _mib(value: float) -> str:
    return f"{value / MIB:.1f} MiB"


def report_lines(summary: dict) -> list[str]:
    memory, drift, machine = summary["memory"], summary["drift"], summary["machine"]
    verdict = "**passed**" if summary["passed"] else "**FAILED**"
    return [
        f"# Soak, {summary['started_at']}: {verdict}",
        "",
        f"Machine: {machine['cores']} cores, {machine['platform']}. The mixed scenario for "
        f"{summary['duration_s']:.0f} s (`{summary['harness_run']}`, "
        f"{'valid' if summary['harness_valid'] else '**invalid**'}); the Redis master sampled every 10 s.",
        "",
        "![memory and keys over the run](plots/soak.png)",
        "",
        "## Memory against the sizing rule",
        "",
        "baseline + live sessions x bytes/session + write rate x IDEMPOTENCY_TTL_S x bytes/record, "
        "with 25% and 2 MiB on top:",
        "",
        "| figure | value |",
        "|---|--:|",
        f"| baseline (before the run) | {_mib(memory['baseline_bytes'])} |",
        f"| peak live sessions x bytes/session | {memory['peak_sessions']} x {memory['bytes_per_session']:.0f} |",
        f"| write rate x TTL x bytes/record | {memory['writes_per_s']:.1f}/s x "
        f"{summary['config'].get('IDEMPOTENCY_TTL_S')} s x {memory['bytes_per_record']:.0f} |",
        f"| predicted | {_mib(memory['predicted_bytes'])} |",
        f"| allowed | {_mib(memory['allowed_bytes'])} |",
        f"| peak used_memory | {_mib(memory['peak_bytes'])} ({'within' if memory['passed'] else '**over**'}) |",
        f"| peak idempotency records | {memory['peak_records']} |",
        "",
        "## p99 drift (intended start, every endpoint)",
        "",
        f"First third after the warm-up: {drift['first_third_p99_us']} µs; last third: "
        f"{drift['last_third_p99_us']} µs ({'no drift' if drift['passed'] else '**drifted upward**'}: at most "
        "25% and 1 ms higher).",
        "",
        f"Command: `{summary['command']}`",
        "",
    ]


def plot_soak(summary: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    samples = [s for s in summary["samples"] if "used_memory" in s]
    start = samples[0]["t"] if samples else 0
    minutes = [(s["t"] - start) / 60 for s in samples]
    figure = Figure(figsize=(11, 4.2), dpi=100)
    memory, keys = figure.subplots(1, 2, gridspec_kw={"left": 0.07, "right": 0.98, "bottom": 0.14, "wspace": 0.25})
    memory.plot(minutes, [s["used_memory"] / MIB for s in samples], "-", color="C0", label="used_memory")
    memory.axhline(summary["memory"]["predicted_bytes"] / MIB, color="C2", ls="--", label="sizing rule")
    memory.axhline(summary["memory"]["allowed_bytes"] / MIB, color="C3", ls=":", label="allowed")
    memory.set_ylabel("MiB")
    memory.set_title("Redis master memory", fontsize=10)
    keys.plot(minutes, [s["sessions"] for s in samples], "-", color="C0", label="live sessions")
    keys.plot(minutes, [s["records"] for s in samples], "-", color="C1", label="idempotency records")
    keys.set_title("live keys", fontsize=10)
    for axes in (memory, keys):
        axes.set_xlabel("minutes into the run")
        axes.grid(True, lw=0.5, alpha=0.4)
        axes.legend(fontsize=7)
    figure.savefig(path)


def write_report(summary: dict, out_dir: Path) -> None:
    write_report_files(out_dir, report_lines(summary), "soak.png", lambda path: plot_soak(summary, path))
