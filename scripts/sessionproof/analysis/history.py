"""The history of a run, and the checker that judges it: a pure function of raw/history.jsonl.

    python -m sessionproof.analysis.history results/latest      (make check RUN=results/latest)

Every session operation of the Locust users is one line, as in Jepsen: an `invoke`
when it is sent, then `ok`, `fail` (refused: a 4xx, it did not happen) or `info`
(unknown: a 5xx, a timeout, a dropped connection; it may have happened):

    {"process": "3f2a9c1b7d0e", "kind": "bounce", "session": "Xk3…", "type": "ok", "f": "add",
     "value": "i3f2a9c1b7d0e-7", "state": {"user": …, "cart": […], "version": 7}, "time_us": 1234567}

`f` is login, add, read or logout; `value` is the item of an add, the cart of a read,
the user of a login; `state` is what an `ok` answer said of the session. The checker
replays each process's completions through the same session model the live users
use (checker.SessionModel), so its verdict and the live counters agree on the same
run, and a better checker can judge an old run again. Exit status of the CLI: 0 no
violation, 3 at least one, 2 when the run cannot be judged (no history, damaged file).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from sessionproof.analysis.checker import SessionModel, lost_updates
from sessionproof.history import ANOMALY_CLASSES, CORRECTNESS_FIGURES
from sessionproof.runfiles import RunFileError, iter_jsonl, read_json_object, run_file_exists, stored_path

VIOLATION_EXIT_CODE = 3
CANNOT_JUDGE_EXIT_CODE = 2
_F_BY_REQUEST = {
    "POST /login": "login",
    "POST /logout": "logout",
    "GET /cart": "read",
    "POST /cart/[item]": "add",
    "POST /cart/[item] (concurrent)": "add",
}


def operation_of(request_name: str) -> str | None:
    """The history's `f` for a Locust request name; None for requests outside the session (GET /ping)."""
    return _F_BY_REQUEST.get(request_name)


def outcome_type(status: int, ok: bool) -> str:
    """ok (200 with a body), fail (4xx: refused, so it did not happen) or info (anything else: unknown)."""
    if ok:
        return "ok"
    return "fail" if 400 <= status < 500 else "info"


def read_history(path: Path) -> list[dict]:
    return [op for _, op in iter_jsonl(path, ("process", "type", "f", "time_us"))]


def check(history: list[dict]) -> dict[str, int]:
    """The correctness figures of a history: checks made and violations by class."""
    figures = dict.fromkeys(CORRECTNESS_FIGURES, 0)
    by_process: dict[str, list[dict]] = defaultdict(list)
    for op in sorted(history, key=lambda o: o["time_us"]):  # stable: equal times keep file order
        if op["type"] != "invoke":
            by_process[op["process"]].append(op)
    for process, ops in by_process.items():
        kind = ops[0].get("kind")
        if kind == "bounce":
            _judge_sessions(process, ops, figures)
        elif kind == "concurrency":
            _judge_concurrent_adds(ops, figures)
        # latency users measure; their answers are not judged (as live)
    return figures


def _judge_sessions(process: str, ops: list[dict], figures: dict[str, int]) -> None:
    model = SessionModel(user=None, item_prefix=f"i{process}")
    for op in ops:
        f, ok, state = op["f"], op["type"] == "ok", op.get("state") or {}
        if f == "login":
            if ok:
                model.logged_in(state)
            else:
                model.user = None
        elif f == "add" and not ok:
            model.write_indeterminate(op.get("value"))
        elif f in ("add", "read") and ok:
            verdict = model.observe_write(op.get("value"), state) if f == "add" else model.observe_read(state)
            figures["checks"] += 1
            for mismatch in verdict.mismatches:
                figures[mismatch] += 1
            if {"sessions_lost", "foreign_sessions"} & set(verdict.mismatches):
                model.user = None


def _judge_concurrent_adds(ops: list[dict], figures: dict[str, int]) -> None:
    """Each read after a burst of adds: acknowledged adds of the burst missing from the cart are lost updates."""
    acknowledged: list[str] = []
    for op in ops:
        if op["f"] == "add" and op["type"] == "ok":
            acknowledged.append(op.get("value"))
        elif op["f"] == "read":
            if op["type"] == "ok":
                figures["checks"] += 1
                figures["lost_updates"] += len(lost_updates(acknowledged, (op.get("state") or {}).get("cart", [])))
            acknowledged = []
        elif op["f"] == "login":
            acknowledged = []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sessionproof.analysis.history", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder, e.g. results/latest")
    args = parser.parse_args(argv)
    path = args.run_dir / "raw" / "history.jsonl"
    if not run_file_exists(path):
        print(
            f"error: {path} is missing; runs recorded before histories existed cannot be judged again", file=sys.stderr
        )
        return CANNOT_JUDGE_EXIT_CODE
    summary_path = args.run_dir / "summary.json"
    try:
        figures = check(read_history(path))
        # The verdict in summary.json is the history's.
        summary = read_json_object(summary_path) if summary_path.is_file() else None
    except RunFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return CANNOT_JUDGE_EXIT_CODE
    if summary is not None:
        summary["correctness"] = {**summary.get("correctness", {}), **figures}
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    violations = {name: figures[name] for name in ANOMALY_CLASSES if figures[name]}
    print(f"{figures['checks']} checks from {stored_path(path)}")
    print("no violation" if not violations else "VIOLATIONS: " + ", ".join(f"{k} {v}" for k, v in violations.items()))
    return VIOLATION_EXIT_CODE if violations else 0


if __name__ == "__main__":
    sys.exit(main())
