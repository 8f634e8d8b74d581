"""The fault matrix from synthetic run folders: rows, their table, and runs that left no summary."""

from __future__ import annotations

import json

from sessionproof.matrix import build_matrix, main


def figures(errors: dict, lost: int, recover_s: float | None) -> dict:
    return {
        "client_errors": {"502": 0, "503": 0, "504": 0, "timeout": 0, "other": 0} | errors,
        "error_window_s": 1.935,
        "longest_gap_s": 2.289,
        "latency": {
            "before": {"p99_us": 9600, "max_us": 12_000, "count": 900},
            "during": {"p99_us": 862_200, "max_us": 1_537_000, "count": 400},
        },
        "acknowledged_writes": 541,
        "lost_acknowledged_writes": lost,
        "lost_examples": [],
        "indeterminate_writes": {"count": 7, "took_effect": 2},
        "unreadable_sessions": 0,
        "time_to_recover_s": recover_s,
    }


def write_run(run_dir, failover: dict | None, layer: str | None, slo_passed: bool, split_brain: int = 0):
    run_dir.mkdir(parents=True)
    faults = [{"fault": "kill-redis-master", "target": "redis-1"}] if failover else []
    summary = {
        "scenario": "failover-redis-kill",
        "valid": True,
        "faults": faults,
        "failover": failover,
        "sentinel_timeline": [],
        "split_brain": [{"t_rel_s": 20.0, "masters": ["redis-1", "redis-2"]}] * split_brain,
        "slo": {"passed": slo_passed, "checks": []},
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    config = {} if layer is None else {"SESSION_LAYER": layer}  # stock runs predate the setting
    (run_dir / "meta.json").write_text(json.dumps({"scenario": "failover-redis-kill", "config": config}))
    return run_dir


def three_runs(tmp_path):
    stock = write_run(tmp_path / "runs" / "stock", figures({"503": 84, "502": 12}, 3, 2.289), None, False, 1)
    hardened = write_run(tmp_path / "runs" / "hardened", figures({}, 0, None), "hardened", True)
    failed = tmp_path / "runs" / "failed"
    failed.mkdir()
    return [stock, hardened, failed]


def test_one_row_per_run_in_matrix_json(tmp_path):
    out_dir = tmp_path / "matrix"
    rows = build_matrix(out_dir, three_runs(tmp_path))["rows"]
    assert json.loads((out_dir / "matrix.json").read_text()) == {"rows": rows, "load_rows": []}
    stock, hardened, failed = rows
    assert (stock["fault"], stock["layer"], stock["client_errors_total"]) == ("kill-redis-master", "stock", 96)
    assert (stock["p99_before_us"], stock["p99_during_us"], stock["max_during_us"]) == (9600, 862_200, 1_537_000)
    assert (stock["acknowledged_writes"], stock["lost_acknowledged_writes"]) == (541, 3)
    assert (stock["indeterminate_writes"], stock["indeterminate_took_effect"]) == (7, 2)
    assert (stock["split_brain"], stock["valid"], stock["slo_passed"]) == (1, True, False)
    assert stock["report"] == "../runs/stock/report.md"
    assert (hardened["layer"], hardened["client_errors_total"], hardened["slo_passed"]) == ("hardened", 0, True)
    assert failed == {"fault": "failed", "note": "no summary (run failed)", "report": "../runs/failed/report.md"}


def test_the_report_table(tmp_path):
    out_dir = tmp_path / "matrix"
    build_matrix(out_dir, three_runs(tmp_path), title="Stock against hardened")
    lines = (out_dir / "report.md").read_text().splitlines()
    assert lines[0] == "# Stock against hardened"
    table = [line for line in lines if line.startswith("| ")]
    assert table[0].startswith("| fault | layer | client errors | error window s | longest gap s |")
    assert table[1] == (
        "| kill-redis-master | stock | 96 (503\N{MULTIPLICATION SIGN}84, 502\N{MULTIPLICATION SIGN}12) "
        "| 1.935 | 2.289 | 9.6 | 862.2 | 1537.0 | 541 | **3** | 7 (2) | 2.289 | 1 | yes | FAIL "
        "| [report](../runs/stock/report.md) |"
    )
    assert table[2].startswith("| kill-redis-master | hardened | 0 | ")
    assert "| not recovered | 0 | yes | pass |" in table[2]
    assert table[3].startswith("| failed |  | no summary (run failed) |")
    assert all(line.count("|") == table[0].count("|") for line in table)


def write_load_run(run_dir, scenario: str, layer: str, read_p50_us: int, lost_updates: int):
    run_dir.mkdir(parents=True)
    summary = {
        "scenario": scenario,
        "valid": True,
        "faults": [],
        "requests": {"total": 1000, "ok": 1000, "failed": 0},
        "latency_us": {
            "GET /cart": {"p50": read_p50_us, "p99": 3 * read_p50_us},
            "POST /cart/[item] (concurrent)": {"p50": 9000, "p99": 20000},
        },
        "correctness": {"lost_updates": lost_updates},
        "slo": {"passed": lost_updates == 0},
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "meta.json").write_text(json.dumps({"scenario": scenario, "config": {"SESSION_LAYER": layer}}))
    return run_dir


def test_runs_without_faults_get_their_own_table_and_the_read_p50_comparison(tmp_path):
    runs = [
        write_load_run(tmp_path / "a", "latency", "stock", 4000, 0),
        write_load_run(tmp_path / "b", "concurrency", "stock", 5000, 1566),
        write_load_run(tmp_path / "c", "latency", "hardened", 3000, 0),
    ]
    result = build_matrix(tmp_path / "matrix", runs)
    assert result["rows"] == []
    stock_latency, stock_concurrency, _ = result["load_rows"]
    assert (stock_latency["layer"], stock_latency["read_p50_us"], stock_latency["read_p99_us"]) == (
        "stock",
        4000,
        12000,
    )
    assert (stock_concurrency["lost_updates"], stock_concurrency["write_p50_us"]) == (1566, 9000)
    report = (tmp_path / "matrix" / "report.md").read_text()
    assert "| concurrency | stock | 1000 | 0 | 5000 | 15000 | 9000 | 20000 | **1566** | yes | FAIL |" in report
    assert "hardened 3000 µs against stock 4000 µs (-25.0%)" in report


def test_fault_rows_of_both_layers_sit_side_by_side(tmp_path):
    stock_kill = write_run(tmp_path / "1", figures({"503": 84}, 0, 2.0), "stock", False)
    stock_other = write_run(tmp_path / "2", figures({}, 0, 0.0), "stock", True)
    summary = json.loads((stock_other / "summary.json").read_text())
    summary["faults"] = [{"fault": "kill-app", "target": "app-1"}]
    (stock_other / "summary.json").write_text(json.dumps(summary))
    hardened_kill = write_run(tmp_path / "3", figures({}, 0, 0.0), "hardened", True)
    rows = build_matrix(tmp_path / "matrix", [stock_kill, stock_other, hardened_kill])["rows"]
    assert [(r["fault"], r["layer"]) for r in rows] == [
        ("kill-redis-master", "stock"),
        ("kill-redis-master", "hardened"),
        ("kill-app", "stock"),
    ]


def test_a_run_with_a_damaged_summary_gets_a_row_saying_so(tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "summary.json").write_text('{"scenario": ')
    (damaged_row,) = build_matrix(tmp_path / "matrix", [damaged])["rows"]
    assert damaged_row["note"] == "summary unreadable (damaged)"


def test_cli_exit_codes(tmp_path, capsys):
    run_dirs = [str(path) for path in three_runs(tmp_path)]
    assert main([str(tmp_path / "matrix"), *run_dirs]) == 0
    assert (tmp_path / "matrix" / "report.md").is_file()
    assert main([str(tmp_path / "matrix")]) == 2  # no run folder
    assert "RUN_DIR" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("")
    assert main([str(tmp_path / "a-file"), *run_dirs]) == 2
    assert "is not a folder" in capsys.readouterr().err
