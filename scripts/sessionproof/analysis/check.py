"""Judge a run again from its history, and rebuild everything that rests on the verdict.

    python -m sessionproof.analysis.check results/latest      (make check RUN=results/latest)

The one checker (history/checker.py) reads RUN_DIR/raw/history.jsonl, the final read included; then
summary.json (the SLOs included), report.md and the plots are rebuilt from raw/, so nothing in the
run folder keeps a verdict the history no longer supports (an edited history, a better checker).
A lean folder (a long campaign kept in results/reference/ with its history, raw/history.jsonl.xz, but not
the rest of raw/) is judged from its history alone, and nothing is rebuilt.
Exit status: 0 no anomaly, 3 at least one (each class named), 2 when the run cannot be judged (no
history, a damaged file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sessionproof.analysis.report import build_report
from sessionproof.analysis.summary import anomaly_text, validity_line
from sessionproof.history import ANOMALY_CLASSES
from sessionproof.history.checker import check
from sessionproof.history.files import has_history, history_path, read_history
from sessionproof.runfiles import RunFileError, run_file_exists, stored_path

ANOMALY_EXIT_CODE = 3
CANNOT_JUDGE_EXIT_CODE = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.analysis.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder, e.g. results/latest")
    args = parser.parse_args(argv)
    if not has_history(args.run_dir):
        print(
            f"error: {history_path(args.run_dir)} is missing; a run recorded before histories existed cannot be "
            "judged again (make report RUN=... renders it with the counts its users made live)",
            file=sys.stderr,
        )
        return CANNOT_JUDGE_EXIT_CODE
    lean = not run_file_exists(args.run_dir / "raw" / "histograms.jsonl")
    try:
        if lean:
            verdict = check(read_history(history_path(args.run_dir)))
            summary = {"correctness": verdict.figures, "anomaly_examples": verdict.examples}
        else:
            summary = build_report(args.run_dir)
    except RunFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return CANNOT_JUDGE_EXIT_CODE
    correctness = summary["correctness"]
    if not lean:
        print(validity_line(summary))
    print(
        f"judged {stored_path(history_path(args.run_dir))}: {correctness['checks']} answers in "
        f"{correctness['sessions']} sessions, {correctness['acknowledged_writes']} acknowledged writes "
        f"({correctness['unread_writes']} unread at the end), {correctness['indeterminate_writes']} indeterminate "
        f"({correctness['indeterminate_took_effect']} took effect)"
    )
    print(anomaly_text(correctness))
    for name in ANOMALY_CLASSES:
        for example in [e for e in summary["anomaly_examples"] if e["class"] == name][:3]:
            print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in example.items() if k != "class" and v is not None))
    if lean:
        print("a lean folder (its history without the rest of raw/): judged the history alone, rebuilt nothing")
    else:
        print(f"rebuilt {args.run_dir / 'summary.json'}, report.md and plots")
    return ANOMALY_EXIT_CODE if any(correctness[name] for name in ANOMALY_CLASSES) else 0


if __name__ == "__main__":
    sys.exit(main())
