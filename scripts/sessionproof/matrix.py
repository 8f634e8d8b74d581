"""The fault matrix: one row per experiment run (and session layer), from each run's summary.json.

python -m sessionproof.matrix OUT_DIR RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

COLUMNS = (
    "fault", "layer", "client errors", "error window s", "longest gap s", "p99 before ms", "p99 during ms",
    "max during ms", "acknowledged writes", "lost acknowledged writes", "indeterminate (took effect)",
    "time to recover s", "split brain", "valid", "SLOs", "report",
)  # fmt: skip


def _ms(value_us) -> str:
    return "n/a" if value_us is None else f"{value_us / 1000:.1f}"


def matrix_row(run_dir: Path, out_dir: Path) -> dict:
    link = os.path.relpath(run_dir / "report.md", out_dir)
    summary_path, meta_path = run_dir / "summary.json", run_dir / "meta.json"
    if not summary_path.exists():
        return {"fault": run_dir.name, "note": "no summary (run failed)", "report": link}
    summary = json.loads(summary_path.read_text())
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    figures = summary.get("failover") or {}
    errors = figures.get("client_errors") or {}
    latency = figures.get("latency") or {}
    indeterminate = figures.get("indeterminate_writes") or {}
    faults = summary.get("faults") or []
    return {
        "fault": faults[0]["fault"] if faults else summary.get("scenario"),
        "scenario": summary.get("scenario"),
        "layer": (meta.get("config") or {}).get("SESSION_LAYER", "stock"),
        "client_errors": errors,
        "client_errors_total": sum(errors.values()),
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


def _cells(row: dict) -> list[str]:
    if "note" in row:
        return [row["fault"], "", row["note"], *[""] * (len(COLUMNS) - 4), f"[report]({row['report']})"]
    errors = ", ".join(f"{k} x{v}" for k, v in row["client_errors"].items() if v)
    return [
        row["fault"],
        row["layer"],
        f"{row['client_errors_total']}" + (f" ({errors})" if errors else ""),
        str(row["error_window_s"]),
        str(row["longest_gap_s"]),
        _ms(row["p99_before_us"]),
        _ms(row["p99_during_us"]),
        _ms(row["max_during_us"]),
        str(row["acknowledged_writes"]),
        f"**{row['lost_acknowledged_writes']}**",
        f"{row['indeterminate_writes']} ({row['indeterminate_took_effect']})",
        str(row["time_to_recover_s"]),
        str(row["split_brain"]),
        "yes" if row["valid"] else "**no**",
        "pass" if row["slo_passed"] else "FAIL",
        f"[report]({row['report']})",
    ]


def build_matrix(out_dir: Path, run_dirs: list[Path], title: str = "Failover matrix") -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [matrix_row(Path(run_dir), out_dir) for run_dir in run_dirs]
    (out_dir / "matrix.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        f"# {title}",
        "",
        "One row per experiment. Client errors are responses other than 200 seen by the load generator; "
        "lost acknowledged writes were acknowledged (200) yet absent when every session was read back after heal; "
        "latency is from the intended start (coordinated omission corrected).",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(_cells(row)) + " |" for row in rows),
        "",
    ]
    (out_dir / "report.md").write_text("\n".join(lines))
    return {"rows": rows}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python -m sessionproof.matrix OUT_DIR RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return 2
    build_matrix(Path(args[0]), [Path(a) for a in args[1:]])
    print(f"wrote {Path(args[0]) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
