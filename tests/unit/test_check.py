"""`make check`: a run judged again from its history, everything rebuilt, each planted anomaly named."""

from __future__ import annotations

import json
import lzma

import pytest
from planting import plant
from run_folders import history_lines, make_failover_run, write_jsonl

from sessionproof.analysis import check
from sessionproof.history import ANOMALY_CLASSES
from sessionproof.history.files import history_path, read_history


@pytest.fixture
def run_dir(tmp_path):
    run = make_failover_run(tmp_path / "run")
    write_jsonl(history_path(run), history_lines())
    return run


def test_make_check_judges_a_run_and_rebuilds_its_summary_and_report(run_dir, capsys):
    (run_dir / "summary.json").write_text(json.dumps({"correctness": {"lost_writes": 9}}))
    assert check.main([str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "no anomaly in 5 checks" in out and "2 acknowledged writes (0 unread at the end)" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["correctness"]["lost_writes"] == 0 and summary["correctness_source"] == "history"
    assert "slo" in summary and "Judged by the one checker" in (run_dir / "report.md").read_text()


@pytest.mark.parametrize("name", ANOMALY_CLASSES)
def test_a_planted_anomaly_exits_3_naming_its_class(run_dir, capsys, name):
    write_jsonl(history_path(run_dir), plant(read_history(history_path(run_dir)), name))
    assert check.main([str(run_dir)]) == check.ANOMALY_EXIT_CODE
    out = capsys.readouterr().out
    assert f"{name} 1" in out, out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["correctness"][name] == 1 and summary["correctness"]["anomalies"] >= 1
    assert name.replace("_", " ") in (run_dir / "report.md").read_text()


def test_a_run_without_a_history_or_with_a_damaged_one_cannot_be_judged(tmp_path, run_dir, capsys):
    assert check.main([str(tmp_path)]) == check.CANNOT_JUDGE_EXIT_CODE
    assert "history.jsonl is missing" in capsys.readouterr().err
    history_path(run_dir).write_text('{"process": "x"\n')
    assert check.main([str(run_dir)]) == check.CANNOT_JUDGE_EXIT_CODE
    lines = history_lines()
    del lines[2]  # an add's invoke: its completion has none
    write_jsonl(history_path(run_dir), lines)
    assert check.main([str(run_dir)]) == check.CANNOT_JUDGE_EXIT_CODE
    assert "without its invoke" in capsys.readouterr().err


def test_a_lean_folder_with_only_its_xz_history_is_judged_from_the_history_alone(tmp_path, capsys):
    """A long campaign kept in results/reference/: raw/history.jsonl.xz (and events), not the rest of raw/."""
    lean = tmp_path / "lean"
    (lean / "raw").mkdir(parents=True)
    plain = tmp_path / "history.jsonl"
    write_jsonl(plain, history_lines())
    (lean / "raw" / "history.jsonl.xz").write_bytes(lzma.compress(plain.read_bytes()))
    assert check.main([str(lean)]) == 0
    out = capsys.readouterr().out
    assert "no anomaly in 5 checks" in out and "judged the history alone, rebuilt nothing" in out
    assert "history.jsonl.xz" in out and not (lean / "summary.json").exists()
    write_jsonl(plain, plant(history_lines(), "lost_writes"))
    (lean / "raw" / "history.jsonl.xz").write_bytes(lzma.compress(plain.read_bytes()))
    assert check.main([str(lean)]) == check.ANOMALY_EXIT_CODE
    assert "lost_writes 1" in capsys.readouterr().out
