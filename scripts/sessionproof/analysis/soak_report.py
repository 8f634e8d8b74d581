"""The verdicts of a `make soak` run and its report: summary.json, report.md and plots/soak.png.

`python -m sessionproof.analysis.soak_report FOLDER` (run by `make soak` when its load ends) reads what the
soak measured (FOLDER/raw/soak.json) and its harness run, and marks the soak failed (exit 3) when

- memory grows beyond the sizing rule (docs/measurements.md, the sizing rule): the baseline before the run, plus
  the live sessions times their bytes, plus the write rate times IDEMPOTENCY_TTL_S times a record's bytes, with
  MEMORY_MARGIN on top;
- p99 drifts upward: the intended-start p99 of the last third of the run (after WARMUP_FRACTION) is more
  than DRIFT_RATIO times, and DRIFT_FLOOR_US more than, that of the first third;
- or the harness run is invalid. Exit 2: FOLDER's files cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sessionproof.analysis.failover import intended_by_second, latency_between
from sessionproof.runfiles import RunFileError, read_json_object, read_jsonl
from sessionproof.runs import write_report_files
from sessionproof.validity import BAD_INPUT_EXIT_CODE

MIB = 2**20
MEMORY_MARGIN = 0.25  # over the sizing rule's prediction
MEMORY_FLOOR_BYTES = 2 * MIB  # allocator and buffer noise a small store shows either way
WARMUP_FRACTION = 0.1
DRIFT_RATIO = 1.25
DRIFT_FLOOR_US = 1000
FAILED_EXIT_CODE = 3


def memory_verdict(baseline: int, samples: list[dict], bytes_per_session: float, bytes_per_record: float,
                   writes_per_s: float, record_ttl_s: int) -> dict:  # fmt: skip
    """The sizing rule's prediction for this run against the peak used_memory seen."""
    good = [s for s in samples if "used_memory" in s]
    peak_sessions = max((s["sessions"] for s in good), default=0)
    predicted = baseline + peak_sessions * bytes_per_session + writes_per_s * record_ttl_s * bytes_per_record
    allowed = predicted * (1 + MEMORY_MARGIN) + MEMORY_FLOOR_BYTES
    peak = max((s["used_memory"] for s in good), default=baseline)
    return {
        "baseline_bytes": baseline,
        "peak_bytes": peak,
        "peak_sessions": peak_sessions,
        "peak_records": max((s["records"] for s in good), default=0),
        "bytes_per_session": bytes_per_session,
        "bytes_per_record": bytes_per_record,
        "writes_per_s": round(writes_per_s, 1),
        "predicted_bytes": round(predicted),
        "allowed_bytes": round(allowed),
        "passed": peak <= allowed,
    }


def drift_verdict(histogram_lines: list[dict], start_s: int, end_s: int) -> dict:
    """Intended-start p99 (every endpoint) of the first and last third after the warm-up."""
    first = start_s + int((end_s - start_s) * WARMUP_FRACTION)
    third = (end_s - first) // 3
    by_second = intended_by_second(histogram_lines)
    early = latency_between(by_second, first, first + third - 1)
    late = latency_between(by_second, end_s - third + 1, end_s)
    early_us, late_us = early["p99_us"], late["p99_us"]
    drifted = (
        early_us is not None and late_us is not None
        and late_us > early_us * DRIFT_RATIO and late_us - early_us > DRIFT_FLOOR_US
    )  # fmt: skip
    return {"first_third_p99_us": early_us, "last_third_p99_us": late_us, "passed": not drifted}


def summarize(out_dir: Path) -> dict:
    """summary.json of the soak in out_dir: what it measured (raw/soak.json), judged with its harness run."""
    measured = read_json_object(out_dir / "raw" / "soak.json")
    run_dir = out_dir / measured["harness_run"]
    harness = read_json_object(run_dir / "summary.json")
    posts = sum(v.get("ok", 0) for k, v in harness["requests"]["by_endpoint"].items() if k.startswith("POST"))
    baseline, *samples = measured["samples"]
    memory = memory_verdict(
        baseline["used_memory"], samples, measured["bytes_per_session"], measured["bytes_per_record"],
        posts / measured["duration_s"], measured["record_ttl_s"],
    )  # fmt: skip
    lines = read_jsonl(run_dir / "raw" / "histograms.jsonl", ("t", "kind", "hist"))
    seconds = [line["t"] for line in lines] or [0]
    drift = drift_verdict(lines, min(seconds), max(seconds))
    keep = ("started_at", "command", "machine", "config", "duration_s", "harness_run")
    return {
        **{key: measured[key] for key in keep},
        "harness_valid": harness.get("valid"),
        "memory": memory,
        "drift": drift,
        "samples": measured["samples"],
        "passed": memory["passed"] and drift["passed"] and bool(harness.get("valid")),
    }


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.analysis.soak_report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("folder", type=Path, metavar="FOLDER", help="a soak's folder, e.g. results/<UTC-time>-soak")
    args = parser.parse_args(argv)
    try:
        summary = summarize(args.folder)
    except (RunFileError, KeyError) as error:
        print(f"error: {args.folder} is not a readable soak folder: {error}", file=sys.stderr)
        return BAD_INPUT_EXIT_CODE
    (args.folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_report(summary, args.folder)
    print(f"soak: {'passed' if summary['passed'] else 'FAILED'}; {args.folder / 'report.md'}", flush=True)
    return 0 if summary["passed"] else FAILED_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
