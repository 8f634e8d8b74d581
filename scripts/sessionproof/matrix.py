"""The fault matrix: one row per experiment run (and session layer), from each run's summary.json.

`python -m sessionproof.matrix OUT_DIR RUN_DIR [RUN_DIR ...]` writes OUT_DIR/matrix.json and
OUT_DIR/report.md. A run folder without a readable summary.json gets a row saying so. Exit
status: 0, or 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .report import ms_short, or_na

BAD_ARGUMENTS_EXIT_CODE = 2
DEFAULT_TITLE = "Failover matrix"
TIMES = "\N{MULTIPLICATION SIGN}"  # spelled out: ruff flags the literal sign as a look-alike of x

COLUMNS = (
    "fault", "layer", "client errors", "error window s", "longest gap s", "p99 before ms", "p99 during ms",
    "max during ms", "acknowledged writes", "lost acknowledged writes", "indeterminate (took effect)",
    "time to recover s", "split brain", "valid", "SLOs", "report",
)  # fmt: skip


def _read_object(path: Path) -> dict | None:
    """The JSON object in path; None when it is missing or damaged (a failed run must not stop the matrix)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _layer(meta: dict) -> str:
    return (meta.get("config") or {}).get("SESSION_LAYER", "stock")  # runs before the setting were stock


def matrix_row(run_dir: Path, out_dir: Path, summary: dict | None, meta: dict) -> dict:
    """One fault run's figures, flat; {"fault", "note", "report"} when its summary.json is missing or damaged."""
    link = os.path.relpath(run_dir / "report.md", out_dir)
    if summary is None:
        note = "summary unreadable (damaged)" if (run_dir / "summary.json").exists() else "no summary (run failed)"
        return {"fault": run_dir.name, "note": note, "report": link}
    figures = summary.get("failover") or {}
    errors = figures.get("client_errors") or {}
    latency = figures.get("latency") or {}
    indeterminate = figures.get("indeterminate_writes") or {}
    faults = summary.get("faults") or []
    return {
        "fault": faults[0].get("fault") if faults else summary.get("scenario"),
        "scenario": summary.get("scenario"),
        "layer": _layer(meta),
        "client_errors": errors,
        # A run without a fault has no failover figures: n/a, not a claim of zero errors.
        "client_errors_total": sum(errors.values()) if figures else None,
        "error_window_s": figures.get("error_window_s"),
        "longest_gap_s": figures.get("longest_gap_s"),
        "p99_before_us": (latency.get("before") or {}).get("p99_us"),
        "p99_during_us": (latency.get("during") or {}).get("p99_us"),
        "max_during_us": (latency.get("during") or {}).get("max_us"),
        "acknowledged_writes": figures.get("acknowledged_writes"),
        "lost_acknowledged_writes": figures.get("lost_acknowledged_writes"),
        "indeterminate_writes": indeterminate.get("count"),
        "indeterminate_took_effect": indeterminate.get("took_effect"),
        "time_to_recover_s": figures.get("time_to_recover_s"),
        "split_brain": len(summary.get("split_brain") or []),
        "valid": summary.get("valid"),
        "slo_passed": (summary.get("slo") or {}).get("passed"),
        "report": link,
    }


LOAD_COLUMNS = (
    "scenario", "layer", "requests", "failed", "GET /cart p50 µs", "GET /cart p99 µs", "POST p50 µs", "POST p99 µs",
    "lost updates", "valid", "SLOs", "report",
)  # fmt: skip
READ_ENDPOINT = "GET /cart"


def load_row(run_dir: Path, out_dir: Path, summary: dict, meta: dict) -> dict:
    """Figures of a run without faults (latency, concurrency)."""
    latency = summary.get("latency_us") or {}
    post = next((v for k, v in latency.items() if k.startswith("POST /cart/")), {})
    requests = summary.get("requests") or {}
    return {
        "scenario": summary.get("scenario"),
        "layer": _layer(meta),
        "requests": requests.get("total"),
        "failed": requests.get("failed"),
        "read_p50_us": (latency.get(READ_ENDPOINT) or {}).get("p50"),
        "read_p99_us": (latency.get(READ_ENDPOINT) or {}).get("p99"),
        "write_p50_us": post.get("p50"),
        "write_p99_us": post.get("p99"),
        "lost_updates": (summary.get("correctness") or {}).get("lost_updates"),
        "valid": summary.get("valid"),
        "slo_passed": (summary.get("slo") or {}).get("passed"),
        "report": os.path.relpath(run_dir / "report.md", out_dir),
    }


def read_p50_comparison(load_rows: list[dict]) -> str | None:
    """'hardened p50 X µs against stock Y µs (+Z%)' for the latency scenario, when both layers ran it."""
    by_layer = {r["layer"]: r["read_p50_us"] for r in load_rows if r["scenario"] == "latency" and r["read_p50_us"]}
    if not {"stock", "hardened"} <= by_layer.keys():
        return None
    change = by_layer["hardened"] / by_layer["stock"] - 1
    return (
        f"Session read ({READ_ENDPOINT}) p50 at low load, same run: hardened {by_layer['hardened']} µs against "
        f"stock {by_layer['stock']} µs ({change:+.1%})."
    )


def _load_cells(row: dict) -> list[str]:
    return [
        or_na(row["scenario"]),
        or_na(row["layer"]),
        or_na(row["requests"]),
        or_na(row["failed"]),
        or_na(row["read_p50_us"]),
        or_na(row["read_p99_us"]),
        or_na(row["write_p50_us"]),
        or_na(row["write_p99_us"]),
        f"**{or_na(row['lost_updates'])}**",
        "yes" if row["valid"] else "**no**",
        "pass" if row["slo_passed"] else "FAIL",
        f"[report]({row['report']})",
    ]


def _client_errors_cell(row: dict) -> str:
    """The total, then each class seen and its count joined by TIMES, most frequent first."""
    seen = sorted(((name, count) for name, count in row["client_errors"].items() if count), key=lambda nc: -nc[1])
    by_class = ", ".join(f"{name}{TIMES}{count}" for name, count in seen)
    return or_na(row["client_errors_total"]) + (f" ({by_class})" if by_class else "")


def _recover_cell(row: dict) -> str:
    if row["time_to_recover_s"] is None and row["client_errors_total"] is not None:
        return "not recovered"  # failover figures exist, but no success followed the last error
    return or_na(row["time_to_recover_s"])


def _cells(row: dict) -> list[str]:
    if "note" in row:
        return [row["fault"], "", row["note"], *[""] * (len(COLUMNS) - 4), f"[report]({row['report']})"]
    return [
        or_na(row["fault"]),
        or_na(row["layer"]),
        _client_errors_cell(row),
        or_na(row["error_window_s"]),
        or_na(row["longest_gap_s"]),
        ms_short(row["p99_before_us"]),
        ms_short(row["p99_during_us"]),
        ms_short(row["max_during_us"]),
        or_na(row["acknowledged_writes"]),
        f"**{or_na(row['lost_acknowledged_writes'])}**",
        f"{or_na(row['indeterminate_writes'])} ({or_na(row['indeterminate_took_effect'])})",
        _recover_cell(row),
        str(row["split_brain"]),
        "yes" if row["valid"] else "**no**",
        "pass" if row["slo_passed"] else "FAIL",
        f"[report]({row['report']})",
    ]


def build_matrix(out_dir: Path, run_dirs: list[Path], title: str = DEFAULT_TITLE) -> dict:
    """Write OUT_DIR/matrix.json and OUT_DIR/report.md: a row per fault run (faults side by side by layer)
    and a row per run without faults; return {"rows": [...], "load_rows": [...]}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    load_rows, rows = [], []
    for run_dir in map(Path, run_dirs):
        summary = _read_object(run_dir / "summary.json")
        meta = _read_object(run_dir / "meta.json") or {}
        if summary is not None and not summary.get("faults"):
            load_rows.append(load_row(run_dir, out_dir, summary, meta))
        else:
            rows.append(matrix_row(run_dir, out_dir, summary, meta))
    first_seen: dict[str, int] = {}
    for row in rows:
        first_seen.setdefault(row["fault"], len(first_seen))
    rows.sort(key=lambda r: first_seen[r["fault"]])  # stable: each fault's layers stay in run order
    (out_dir / "matrix.json").write_text(json.dumps({"rows": rows, "load_rows": load_rows}, indent=2) + "\n")
    lines = [
        f"# {title}",
        "",
        "One row per experiment and session layer. Client errors are responses other than 200 seen by the load "
        "generator; lost acknowledged writes were acknowledged (200) yet absent when every session was read back "
        "after heal; latency is from the intended start (coordinated omission corrected).",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(_cells(row)) + " |" for row in rows),
        "",
    ]
    if load_rows:
        lines += [
            "## Without faults",
            "",
            "Service time of the session read and write; lost updates are acknowledged adds missing from the cart "
            "when several requests of one session ran at once (the concurrency scenario).",
            "",
            "| " + " | ".join(LOAD_COLUMNS) + " |",
            "|" + "---|" * len(LOAD_COLUMNS),
            *("| " + " | ".join(_load_cells(row)) + " |" for row in load_rows),
            "",
        ]
        comparison = read_p50_comparison(load_rows)
        if comparison:
            lines += [comparison, ""]
    (out_dir / "report.md").write_text("\n".join(lines))
    return {"rows": rows, "load_rows": load_rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.matrix", description=__doc__)
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="where matrix.json and report.md go")
    parser.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="experiment run folders")
    parser.add_argument("--title", default=DEFAULT_TITLE, help=f"report heading (default: {DEFAULT_TITLE})")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits; callers of main() get the code instead
        return BAD_ARGUMENTS_EXIT_CODE if exit_.code else 0
    if args.out_dir.exists() and not args.out_dir.is_dir():
        print(f"error: {args.out_dir} exists and is not a folder", file=sys.stderr)
        return BAD_ARGUMENTS_EXIT_CODE
    build_matrix(args.out_dir, args.run_dirs, args.title)
    print(f"wrote {args.out_dir / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
