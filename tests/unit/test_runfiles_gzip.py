"""Gzip-compressed raw files (the slimmed reference runs): every reader takes raw/X.gz where raw/X is absent,
a run renders the same summary from them, and slim.py slims a run folder without changing a figure."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from run_folders import T0_S, history_lines, make_failover_run, write_jsonl

from sessionproof.analysis import check, slim
from sessionproof.analysis.matrix import Skipped, build_matrix, rebuild_matrix
from sessionproof.analysis.report import build_report
from sessionproof.runfiles import RunFileError, read_json_object, read_jsonl, run_file_exists

SERVER_DOWN = {"available": False, "reason": "Prometheus did not answer", "prometheus_url": "http://127.0.0.1:9090"}


def make_full_run(run_dir: Path, timeline_rows: int = 0) -> Path:
    """A failover run with every raw file a report reads: histograms, outcomes, counters, events, timeline,
    final_read, history and server.json; timeline_rows more successes make timeline.jsonl larger than a block."""
    make_failover_run(run_dir)
    raw = run_dir / "raw"
    write_jsonl(raw / "history.jsonl", history_lines())
    (raw / "server.json").write_text(json.dumps(SERVER_DOWN))
    if timeline_rows:
        with (raw / "timeline.jsonl").open("a") as timeline:
            for i in range(timeline_rows):
                row = {"t": T0_S + 22 + i / 100, "endpoint": "GET /cart", "ok": True, "kind": "ok"}
                timeline.write(json.dumps(row) + "\n")
    return run_dir


def gzip_every_raw_file(run_dir: Path) -> list[str]:
    """Replace each raw/X by raw/X.gz, as the slimmed reference runs store them; the names written."""
    for path in sorted((run_dir / "raw").iterdir()):
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    return sorted(path.name for path in (run_dir / "raw").iterdir())


def rendered(run_dir: Path) -> tuple[dict, str]:
    build_report(run_dir)
    return json.loads((run_dir / "summary.json").read_text()), (run_dir / "report.md").read_text()


def test_a_run_renders_the_same_summary_and_report_from_gzipped_raw_files(tmp_path):
    plain = make_full_run(tmp_path / "plain")
    packed = tmp_path / "packed"
    shutil.copytree(plain, packed)
    assert gzip_every_raw_file(packed) == [
        "counters.json.gz", "events.jsonl.gz", "final_read.json.gz", "histograms.jsonl.gz", "history.jsonl.gz",
        "outcomes.jsonl.gz", "server.json.gz", "timeline.jsonl.gz",
    ]  # fmt: skip

    summary, report = rendered(packed)

    assert (summary, report) == rendered(plain)
    # Each file was read, not skipped as absent: its figures are in the summary.
    assert summary["requests"]["total"] == 100  # outcomes
    assert summary["latency_us"]["GET /cart"]["p50"] == 5003  # histograms
    assert summary["correctness"]["checks"] == 5  # history (the counters say 50)
    assert summary["cpu"]["max_percent"] == 40.0  # counters
    assert summary["events"]["fault_start"] == 1  # events
    assert summary["failover"]["client_errors"]["503"] == 2  # timeline
    assert summary["failover"]["acknowledged_writes"] == 2  # history (final_read.json, not read, says otherwise)
    assert summary["server"]["reason"] == SERVER_DOWN["reason"]  # server.json


def test_the_plain_file_wins_over_a_gzipped_copy(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"t": 1}\n')
    (tmp_path / "events.jsonl.gz").write_bytes(gzip.compress(b'{"t": 2}\n'))
    assert read_jsonl(path) == [{"t": 1}]
    path.unlink()
    assert read_jsonl(path) == [{"t": 2}]
    (tmp_path / "events.jsonl.gz").unlink()
    assert not run_file_exists(path) and read_jsonl(path) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not gzip at all", r"timeline.jsonl.gz: unreadable after line 0"),
        (gzip.compress(b'{"t": 1}\n' * 500, mtime=0)[:-40], r"timeline.jsonl.gz: unreadable after line"),
        (gzip.compress(b'{"t": 1}\n{"t": \n', mtime=0), r"timeline.jsonl.gz:2 is not valid JSON"),
    ],
    ids=["not gzip", "truncated", "a damaged line"],
)
def test_a_damaged_gzipped_file_is_named(tmp_path, content, message):
    (tmp_path / "timeline.jsonl.gz").write_bytes(content)
    with pytest.raises(RunFileError, match=message):
        read_jsonl(tmp_path / "timeline.jsonl")


def test_a_damaged_gzipped_json_document_is_named(tmp_path):
    (tmp_path / "final_read.json.gz").write_bytes(b"\x1f\x8b but no more")
    with pytest.raises(RunFileError, match=r"final_read.json.gz is not valid JSON"):
        read_json_object(tmp_path / "final_read.json")


def test_make_check_judges_a_gzipped_history(tmp_path, capsys):
    run_dir = make_full_run(tmp_path / "run")
    gzip_every_raw_file(run_dir)
    assert check.main([str(run_dir)]) == 0
    assert "5 answers in 1 sessions" in capsys.readouterr().out


def add_harness_extras(run_dir: Path) -> None:
    """What a live run writes beside the reports' inputs: hlog exports, Locust's files, a ledger, plots."""
    raw = run_dir / "raw"
    (raw / "hlog").mkdir()
    (raw / "hlog" / "service-GET_cart.hlog").write_text("#[StartTime: 0]\n")
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "locust_exceptions.csv"):
        (raw / name).write_text("Type,Name\n")
    (run_dir / "locust.html").write_text("<html></html>")
    write_jsonl(raw / "ledger.jsonl", [{"user": f"u{i}", "sid": "s" * 40, "acked": ["i1", "i2"]} for i in range(100)])
    (raw / "locust.log").write_text("[2026-11-23] vm/INFO/locust.main: Starting Locust\n" * 100)
    build_report(run_dir)  # plots/


def test_slimming_keeps_what_the_report_reads_and_changes_no_figure(tmp_path):
    run_dir = make_full_run(tmp_path / "run", timeline_rows=200)
    add_harness_extras(run_dir)
    summary_before, report_before = rendered(run_dir)
    assert sorted(p.name for p in (run_dir / "plots").iterdir())  # drawn

    done = slim.slim_run(run_dir)

    assert sorted(p.name for p in (run_dir / "raw").iterdir()) == [
        "counters.json", "events.jsonl", "final_read.json", "histograms.jsonl", "history.jsonl",
        "ledger.jsonl.gz", "locust.log.gz", "outcomes.jsonl", "server.json", "timeline.jsonl.gz",
    ]  # fmt: skip
    # Files of one disk block or less stay plain.
    assert not (run_dir / "plots").exists() and not (run_dir / "locust.html").exists()
    assert {p.name for p in done.removed} >= {"hlog", "locust_stats_history.csv", "locust.html", "latency.png"}
    assert done.bytes_after < done.bytes_before
    assert rendered(run_dir) == (summary_before, report_before)
    assert gzip.decompress((run_dir / "raw" / "ledger.jsonl.gz").read_bytes()).count(b"\n") == 100

    again = slim.slim_run(run_dir)  # idempotent: plots just drawn again go, nothing else changes
    assert not again.compressed and {p.parent.name for p in again.removed} == {"plots"}


def test_slimming_never_removes_a_cited_file(tmp_path):
    repo = tmp_path / "repo"
    run_dir = make_full_run(repo / "results" / "reference" / "run")
    build_report(run_dir)
    (repo / "docs").mkdir()
    (repo / "docs" / "design.md").write_text("![errors](../results/reference/run/plots/errors.png)\n")
    assert slim.main([str(repo / "results" / "reference"), "--repo", str(repo)]) == 0
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == ["errors.png"]


def test_slim_refuses_a_folder_without_runs(tmp_path, capsys):
    assert slim.main([str(tmp_path)]) == slim.BAD_INPUT_EXIT_CODE
    assert "holds no run folder" in capsys.readouterr().err


def test_a_matrix_renders_again_from_its_runs_with_its_order_skips_and_title(tmp_path):
    matrix_dir = tmp_path / "matrix"
    runs = [make_full_run(matrix_dir / layer / "failover-redis-kill") for layer in ("hardened", "stock")]
    for run_dir in runs:
        build_report(run_dir)
        gzip_every_raw_file(run_dir)
    skipped = Skipped("partition-app", "stock", "needs NETWORK=netns", "partition-app")
    build_matrix(matrix_dir, [runs[1], skipped, runs[0]], "Failover matrix: hardened against stock")
    before = {name: (matrix_dir / name).read_bytes() for name in ("matrix.json", "report.md")}
    (matrix_dir / "report.md").write_text("# Failover matrix: hardened against stock\n\nstale\n")

    rendered_runs = slim.render_tree(matrix_dir)

    assert [run_dir for run_dir, _ in rendered_runs] == sorted(runs)
    assert {name: (matrix_dir / name).read_bytes() for name in before} == before
    notes = [row.get("note") for row in rebuild_matrix(matrix_dir)["rows"]]
    assert notes == [None, None, "skipped: needs NETWORK=netns"]


def test_a_slimmed_report_says_why_its_pictures_are_missing_and_a_render_draws_them(tmp_path):
    run_dir = make_full_run(tmp_path / "results" / "reference" / "run")
    build_report(run_dir)
    slim.slim_run(run_dir)
    lines = (run_dir / "report.md").read_text().splitlines()
    assert lines[2].startswith("> A slimmed copy") and "`make report RUN=results/reference/run`" in lines[2]
    slim.slim_run(run_dir)
    assert (run_dir / "report.md").read_text().count("> A slimmed copy") == 1, "the note was added twice"
    build_report(run_dir)
    assert "A slimmed copy" not in (run_dir / "report.md").read_text() and any((run_dir / "plots").glob("*.png"))


def test_make_report_renders_a_matrix_folder_and_its_runs(tmp_path, capsys):
    from sessionproof.analysis.report import main as report_main

    matrix_dir = tmp_path / "matrix"
    runs = [make_full_run(matrix_dir / layer / "failover-redis-kill") for layer in ("hardened", "stock")]
    for run_dir in runs:
        build_report(run_dir)
    build_matrix(matrix_dir, runs, "Failover matrix: hardened against stock")
    for run_dir in runs:
        slim.slim_run(run_dir)
    assert report_main([str(matrix_dir)]) == 0
    assert capsys.readouterr().out.startswith("every run valid; rendered 2 runs and the matrix")
    assert all(any((run_dir / "plots").glob("*.png")) for run_dir in runs)
