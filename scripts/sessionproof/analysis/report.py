"""Turn a load run's raw data into summary.json, report.md and plots, and check its SLOs.

`python -m sessionproof.analysis.report RUN_DIR` (or `make report RUN=<folder>`) recomputes every
figure from RUN_DIR/meta.json and RUN_DIR/raw/, and prints the run's terminal summary; the load
harness runs this same command at the end of each run (load/finish.py), and ends with its exit
code. A failover experiment's run also has fault events in
raw/events.jsonl, raw/timeline.jsonl and raw/final_read.json: its summary then holds
failover figures (see failover.py), and its report a Failover section.

Exit status (every run's, see `exit_code`): 0 when the run is valid and every SLO passes, 3 when
one is breached, 4 when the run is INVALID (the load generator crossed its own bounds: its figures,
the SLO verdict included, cannot be trusted), 2 when RUN_DIR is not a readable run folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sessionproof.analysis.markdown import render_markdown
from sessionproof.analysis.matrix import rebuild_matrix
from sessionproof.analysis.plots import write_plots
from sessionproof.analysis.rundata import load_run
from sessionproof.analysis.server_plot import write_server_plot
from sessionproof.analysis.summary import path_text, summarize, validity_line
from sessionproof.runfiles import LOCUST_HTML, RunFileError
from sessionproof.validity import BAD_INPUT_EXIT_CODE, INVALID_RUN_EXIT_CODE, SLO_BREACH_EXIT_CODE


def exit_code(summary: dict[str, Any]) -> int:
    """4 for an invalid run (before 3: a breach measured by a generator out of its bounds proves nothing, and
    a pass proves less), 3 for an SLO breach, else 0."""
    if not summary["valid"]:
        return INVALID_RUN_EXIT_CODE
    return 0 if summary["slo"]["passed"] else SLO_BREACH_EXIT_CODE


def build_report(run_dir: Path) -> dict[str, Any]:
    """Write RUN_DIR/summary.json, report.md and plots/*.png from raw data; return the summary."""
    run = load_run(Path(run_dir))
    summary = summarize(run)
    write_plots(run, summary, run.run_dir / "plots")
    write_server_plot(run, summary, run.run_dir / "plots")
    (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (run.run_dir / "report.md").write_text(render_markdown(summary, run.meta))
    return summary


def run_folders(root: Path) -> list[Path]:
    """Every run folder in root (root included): a folder holding meta.json and raw/."""
    root = Path(root)
    candidates = [root, *(p for p in root.rglob("*") if p.is_dir())]
    return sorted(p for p in candidates if (p / "meta.json").is_file() and (p / "raw").is_dir())


def matrix_folders(root: Path) -> list[Path]:
    """Every matrix folder in root (root included): a folder holding matrix.json."""
    return sorted(p.parent for p in [*Path(root).glob("matrix.json"), *Path(root).rglob("*/matrix.json")])


def render_tree(root: Path) -> list[tuple[Path, dict]]:
    """Render every run in root again, then every matrix in it; [(run folder, summary)] in path order."""
    rendered = [(run_dir, build_report(run_dir)) for run_dir in run_folders(root)]
    for matrix_dir in matrix_folders(root):
        rebuild_matrix(matrix_dir)
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.analysis.report", description=__doc__)
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder, e.g. results/latest")
    args = parser.parse_args(argv)
    if not (args.run_dir / "meta.json").is_file() and (args.run_dir / "matrix.json").is_file():
        return _render_matrix(args.run_dir)
    try:
        summary = build_report(args.run_dir)
    except RunFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT_EXIT_CODE
    print("\n".join(terminal_summary(args.run_dir, summary)), flush=True)
    return exit_code(summary)


def terminal_summary(run_dir: Path, summary: dict[str, Any]) -> list[str]:
    """What the end of a run prints (a load run's, and `make report`'s): validity on the first line, then the
    latency per endpoint, correctness, the nodes that served, every SLO that failed, the verdict and the reports."""
    lines = [f"sessionproof: {validity_line(summary)}", f"sessionproof: {summary['scenario']} results in {run_dir}"]
    for endpoint, p in summary["latency_us"].items():
        intended = summary["latency_intended_us"].get(endpoint, {})
        lines.append(
            f"  {endpoint:<32} n={p['count']:<7} p50={p['p50']}us p99={p['p99']}us "
            f"(from intended start: p99={intended.get('p99')}us)"
        )
    lines.append("  correctness: " + ", ".join(f"{k}={v}" for k, v in summary["correctness"].items()))
    lines.append("  served by: " + ", ".join(f"{k}={v}" for k, v in summary["served_by"].items()))
    slo = summary["slo"]
    lines += [
        f"  SLO FAILED: {path_text(check['path'])}: {check['reason']}" for check in slo["checks"] if not check["passed"]
    ]
    code = exit_code(summary)
    verdict = (
        "passed" if slo["passed"] else "BREACHED" + (f" (exit code {code})" if code == SLO_BREACH_EXIT_CODE else "")
    )
    locust_html = run_dir / LOCUST_HTML
    lines.append(
        f"  SLOs {verdict} ({len(slo['checks'])} checked); report: {run_dir / 'report.md'}"
        + (f"; Locust's report: {locust_html}" if locust_html.is_file() else "")
    )
    return lines


def _render_matrix(matrix_dir: Path) -> int:
    """A matrix (matrix.json, and its runs inside): every run rendered again, then the matrix from their summaries."""
    try:
        rendered = render_tree(matrix_dir)
    except RunFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT_EXIT_CODE
    invalid = [run_dir for run_dir, summary in rendered if not summary["valid"]]
    first = (
        f"INVALID runs (exit code {INVALID_RUN_EXIT_CODE}): {', '.join(map(str, invalid))}"
        if invalid
        else "every run valid"
    )
    print(f"{first}; rendered {len(rendered)} runs and the matrix: {matrix_dir / 'report.md'}")
    return INVALID_RUN_EXIT_CODE if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
