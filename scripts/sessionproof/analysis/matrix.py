"""The fault matrix: one row per experiment run (and configuration), from each run's summary.json.

`python -m sessionproof.analysis.matrix OUT_DIR RUN_DIR [RUN_DIR ...]` writes OUT_DIR/matrix.json and
OUT_DIR/report.md. A run folder without a readable summary.json gets a row saying so, and so does an
experiment the runtime refused (skipped). Rows of one fault sit together, its configurations in the
order they ran; the figures fill two tables keyed by fault and configuration, availability and
correctness, each narrow enough to read. Exit status: 0, or 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from sessionproof.analysis.matrix_chart import plot_matrix
from sessionproof.analysis.matrix_tables import (
    AVAILABILITY_COLUMNS,
    CORRECTNESS_COLUMNS,
    LOAD_COLUMNS,
    OTHER_ANOMALIES,
    availability_cells,
    correctness_cells,
    headline_cells,
    load_cells,
    table,
)
from sessionproof.analysis.partition import HEAL_WINDOW_S
from sessionproof.engines import ENGINES
from sessionproof.runfiles import RunFileError, read_json_object
from sessionproof.settings import CONFIGURATIONS, configuration_label

BAD_ARGUMENTS_EXIT_CODE = 2
DEFAULT_TITLE = "Failover matrix"
SKIPPED_NOTE = "skipped: "  # a skipped experiment's note, before its reason


@dataclass(frozen=True)
class Skipped:
    """An experiment the runtime refused to run (e.g. a network fault on a loopback stack)."""

    scenario: str
    configuration: str
    reason: str
    fault: str  # the fault it would have injected: its row sits with that fault's other runs


def _read_object(path: Path) -> dict | None:
    """The JSON object in path; None when it is missing or damaged (a failed run must not stop the matrix)."""
    try:
        return read_json_object(path)
    except RunFileError:
        return None


def _layer(meta: dict) -> str:
    return (meta.get("config") or {}).get("SESSION_LAYER", "stock")  # runs before the setting were stock


def configuration_of(meta: dict) -> str | None:
    """The configuration a run measured, from the settings in its meta.json: the most specific of
    CONFIGURATIONS that they satisfy (stock with REDIS_MIN_REPLICAS_TO_WRITE=0 is stock-min-replicas-0);
    runs recorded before the setting existed match by layer alone. None without a meta.json. The hardened
    configuration sets only the layer: an older hardened run (nodes started plainly) is still `hardened`.
    A run on another engine than Redis says so: `hardened on valkey`."""
    if not meta:
        return None
    # Before REDIS_CATCH_UP_BEFORE_PROMOTION existed every node started as Redis does on its own: `no`.
    config = {"REDIS_CATCH_UP_BEFORE_PROMOTION": "no", **(meta.get("config") or {}), "SESSION_LAYER": _layer(meta)}
    matches = [name for name, overrides in CONFIGURATIONS.items() if overrides.items() <= config.items()]
    name = max(matches, key=lambda name: len(CONFIGURATIONS[name]), default=config["SESSION_LAYER"])
    return configuration_label(name, engine_of(meta))


def engine_of(meta: dict) -> str:
    """The store engine a run measured: what its data nodes reported (versions.store, "valkey 9.1.2"), else its
    STORE_ENGINE setting; runs recorded before either existed ran Redis."""
    reported = str((meta.get("versions") or {}).get("store", "")).split(" ", 1)[0]
    if reported in ENGINES:
        return reported
    return (meta.get("config") or {}).get("STORE_ENGINE") or "redis"


def _note_row(fault: str, note: str, link: str | None, configuration: str | None, scenario: str | None) -> dict:
    return {"fault": fault, "scenario": scenario, "configuration": configuration, "note": note, "report": link}


def skipped_row(skipped: Skipped) -> dict:
    return _note_row(skipped.fault, f"{SKIPPED_NOTE}{skipped.reason}", None, skipped.configuration, skipped.scenario)


def matrix_row(run_dir: Path, out_dir: Path, summary: dict | None, meta: dict) -> dict:
    """One fault run's figures, flat; a row with a "note" when its summary.json is missing or damaged."""
    link = os.path.relpath(run_dir / "report.md", out_dir)
    if summary is None:
        note = "summary unreadable (damaged)" if (run_dir / "summary.json").exists() else "no summary (run failed)"
        return _note_row(run_dir.name, note, link, configuration_of(meta), meta.get("scenario"))
    figures = summary.get("failover") or {}
    errors = figures.get("client_errors") or {}
    latency = figures.get("latency") or {}
    indeterminate = figures.get("indeterminate_writes") or {}
    faults = summary.get("faults") or []
    split = summary.get("partition") or {}  # absent in runs recorded before it existed: n/a cells
    stale = split.get("stale_reads") or {}
    correctness = summary.get("correctness") or {}
    judged = summary.get("correctness_source") == "history"  # runs before histories kept only the live counts
    return {
        "fault": faults[0].get("fault") if faults else summary.get("scenario"),
        "scenario": summary.get("scenario"),
        "configuration": configuration_of(meta),
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
        # Of those, the adds that overlapped another add to their session (lost updates), judged by the checker.
        "lost_updates_of_writes": correctness.get("lost_updates") if judged and figures else None,
        # Every other anomaly class the checker found (stale reads have their own column).
        "other_anomalies": {name: correctness[name] for name in OTHER_ANOMALIES if correctness.get(name)}
        if judged
        else None,
        "indeterminate_writes": indeterminate.get("count"),
        "indeterminate_took_effect": indeterminate.get("took_effect"),
        "time_to_recover_s": figures.get("time_to_recover_s"),
        "split_brain": len(summary.get("split_brain") or []),
        "stale_reads_in_fault": stale.get("during_fault"),
        "stale_reads": (summary.get("correctness") or {}).get("stale_reads", stale.get("run")),
        "two_masters_s": split.get("two_masters_s"),
        "old_master": split.get("old_master"),
        # Per Redis node: {"acked": n, "lost": m}, over the whole fault and while two masters coexisted.
        "writes_during_fault": split.get("writes_during_fault"),
        "writes_while_two_masters": split.get("writes_while_two_masters"),
        "valid": summary.get("valid"),
        "slo_passed": (summary.get("slo") or {}).get("passed"),
        "report": link,
    }


READ_ENDPOINT = "GET /cart"


def load_row(run_dir: Path, out_dir: Path, summary: dict, meta: dict) -> dict:
    """Figures of a run without faults (latency, concurrency)."""
    latency = summary.get("latency_us") or {}
    post = next((v for k, v in latency.items() if k.startswith("POST /cart/")), {})
    requests = summary.get("requests") or {}
    return {
        "scenario": summary.get("scenario"),
        "configuration": configuration_of(meta),
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
    """'hardened p50 X µs against stock Y µs (+Z%)' for the latency scenario, when both configurations ran it."""
    by_config = {
        r["configuration"]: r["read_p50_us"] for r in load_rows if r["scenario"] == "latency" and r["read_p50_us"]
    }
    if not {"stock", "hardened"} <= by_config.keys():
        return None
    change = by_config["hardened"] / by_config["stock"] - 1
    return (
        f"Session read ({READ_ENDPOINT}) p50 at low load, same run: hardened {by_config['hardened']} µs against "
        f"stock {by_config['stock']} µs ({change:+.1%})."
    )


def build_matrix(out_dir: Path, run_dirs: list[Path | Skipped], title: str = DEFAULT_TITLE) -> dict:
    """Write OUT_DIR/matrix.json and OUT_DIR/report.md: a row per fault run or skipped experiment (a fault's
    configurations side by side, in run order) and a row per run without faults; return
    {"rows": [...], "load_rows": [...]}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    load_rows, rows = [], []
    for entry in run_dirs:
        if isinstance(entry, Skipped):
            rows.append(skipped_row(entry))
            continue
        run_dir = Path(entry)
        summary = _read_object(run_dir / "summary.json")
        meta = _read_object(run_dir / "meta.json") or {}
        if summary is not None and not summary.get("faults"):
            load_rows.append(load_row(run_dir, out_dir, summary, meta))
        else:
            rows.append(matrix_row(run_dir, out_dir, summary, meta))
    first_seen: dict[str, int] = {}
    for row in rows:
        first_seen.setdefault(row["fault"], len(first_seen))
    rows.sort(key=lambda r: first_seen[r["fault"]])  # stable: each fault's configurations stay in run order
    (out_dir / "matrix.json").write_text(json.dumps({"rows": rows, "load_rows": load_rows}, indent=2) + "\n")
    charted = plot_matrix(rows, out_dir / "matrix.png")
    lines = [
        f"# {title}",
        "",
        *(["![errors, lost writes and p99 per fault and configuration](matrix.png)", ""] if charted else []),
        "| fault | configuration | client errors | lost acknowledged writes | p99 during fault (ms) | report |",
        "|---|---|--:|--:|--:|---|",
        *(headline_cells(row) for row in rows),
        "",
        "The details follow in two tables, one row per experiment and configuration. Latency is from the intended "
        "start (coordinated omission corrected).",
        "",
        "## Availability",
        "",
        "Client errors are responses other than 200 seen by the load generator.",
        "",
        *table(AVAILABILITY_COLUMNS, [availability_cells(row) for row in rows]),
        "## Correctness",
        "",
        "Every figure here is the checker's verdict on the run's history (history/checker.py), the final read "
        "of every session after heal included; runs recorded before histories show their live counts (n/a where "
        "they had none). Lost acknowledged writes were acknowledged (200) yet absent from a later read; "
        "'+ N concurrent' are lost updates, adds that overlapped another add to the same session. "
        f"Stale reads: during the fault and the {HEAL_WINDOW_S:g} s after its heal (in the whole run). "
        "Two masters: how long two Redis nodes both claimed role:master. Per master: writes it acknowledged during the fault / "
        "how many of those were lost; (old) is the master the fault hit.",
        "",
        *table(CORRECTNESS_COLUMNS, [correctness_cells(row) for row in rows]),
    ]
    if load_rows:
        lines += [
            "## Without faults",
            "",
            "Service time of the session read and write; lost updates are acknowledged adds missing from the cart "
            "when several requests of one session ran at once (the concurrency scenario).",
            "",
            *table(LOAD_COLUMNS, [load_cells(row) for row in load_rows]),
        ]
        comparison = read_p50_comparison(load_rows)
        if comparison:
            lines += [comparison, ""]
    (out_dir / "report.md").write_text("\n".join(lines))
    return {"rows": rows, "load_rows": load_rows}


def rebuild_matrix(out_dir: Path) -> dict:
    """Write OUT_DIR/matrix.json, report.md and matrix.png again from the summaries of the runs its matrix.json
    links to (render those first: see report.py's render_tree), in the rows' order; skipped experiments stay
    skipped and the title is kept. Raises RunFileError when OUT_DIR/matrix.json cannot be read."""
    out_dir = Path(out_dir)
    matrix = read_json_object(out_dir / "matrix.json")
    entries: list[Path | Skipped] = []
    for row in [*(matrix.get("rows") or []), *(matrix.get("load_rows") or [])]:
        note = row.get("note") or ""
        if row.get("report"):
            entries.append(out_dir / Path(row["report"]).parent)
        elif note.startswith(SKIPPED_NOTE):
            reason = note.removeprefix(SKIPPED_NOTE)
            entries.append(Skipped(row.get("scenario"), row.get("configuration"), reason, row["fault"]))
    report = out_dir / "report.md"
    first_line = report.read_text(encoding="utf-8").split("\n", 1)[0] if report.is_file() else ""
    title = first_line.removeprefix("# ") if first_line.startswith("# ") else DEFAULT_TITLE
    return build_matrix(out_dir, entries, title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.analysis.matrix", description=__doc__)
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
