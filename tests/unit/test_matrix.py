"""The fault matrix from synthetic run folders: rows, their table, and runs that left no summary."""

from __future__ import annotations

import json

from sessionproof.analysis.matrix import Skipped, build_matrix, configuration_of, main


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


def write_run(
    run_dir,
    failover: dict | None,
    layer: str | None,
    slo_passed: bool,
    split_brain: int = 0,
    *,
    fault: str = "kill-redis-master",
    min_replicas: str | None = None,
    partition: dict | None = None,
    stale_reads: int | None = None,
    judged: dict | None = None,
):
    run_dir.mkdir(parents=True)
    faults = [{"fault": fault, "target": "redis-1"}] if failover else []
    summary = {
        "scenario": fault,
        "valid": True,
        "faults": faults,
        "failover": failover,
        "sentinel_timeline": [],
        "split_brain": [{"t_rel_s": 20.0, "masters": ["redis-1", "redis-2"]}] * split_brain,
        "slo": {"passed": slo_passed, "checks": []},
    }
    if partition is not None:  # runs recorded before the partition block have none
        summary["partition"] = partition
    if stale_reads is not None:
        summary["correctness"] = {"stale_reads": stale_reads}
    if judged is not None:  # the checker's figures over the run's history
        summary["correctness"], summary["correctness_source"] = judged, "history"
    (run_dir / "summary.json").write_text(json.dumps(summary))
    config = {} if layer is None else {"SESSION_LAYER": layer}  # stock runs predate the setting
    if min_replicas is not None:
        config["REDIS_MIN_REPLICAS_TO_WRITE"] = min_replicas
    (run_dir / "meta.json").write_text(json.dumps({"scenario": fault, "config": config}))
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
    assert (stock["fault"], stock["configuration"], stock["client_errors_total"]) == ("kill-redis-master", "stock", 96)
    assert stock["layer"] == "stock"
    assert (stock["p99_before_us"], stock["p99_during_us"], stock["max_during_us"]) == (9600, 862_200, 1_537_000)
    assert (stock["acknowledged_writes"], stock["lost_acknowledged_writes"]) == (541, 3)
    assert (stock["indeterminate_writes"], stock["indeterminate_took_effect"]) == (7, 2)
    assert (stock["split_brain"], stock["valid"], stock["slo_passed"]) == (1, True, False)
    assert stock["report"] == "../runs/stock/report.md"
    assert (hardened["configuration"], hardened["client_errors_total"], hardened["slo_passed"]) == (
        "hardened",
        0,
        True,
    )
    # Runs recorded before the partition block: its figures are absent, not zero.
    assert (stock["two_masters_s"], stock["writes_during_fault"], stock["stale_reads_in_fault"]) == (None, None, None)
    assert failed == {
        "fault": "failed",
        "scenario": None,
        "configuration": None,
        "note": "no summary (run failed)",
        "report": "../runs/failed/report.md",
    }


def tables(report_md: str) -> dict[str, list[str]]:
    """The report's table lines under each '## ' heading."""
    found: dict[str, list[str]] = {}
    heading = ""
    for line in report_md.splitlines():
        if line.startswith("## "):
            heading = line[3:]
        elif line.startswith("| "):
            found.setdefault(heading, []).append(line)
    return found


def test_the_report_tables(tmp_path):
    out_dir = tmp_path / "matrix"
    build_matrix(out_dir, three_runs(tmp_path), title="Stock against hardened")
    report_md = (out_dir / "report.md").read_text()
    assert report_md.splitlines()[0] == "# Stock against hardened"
    availability, correctness = tables(report_md)["Availability"], tables(report_md)["Correctness"]
    assert availability[0] == (
        "| fault | configuration | client errors | error window s | longest gap s | p99 before ms | p99 during ms "
        "| max during ms | time to recover s | valid | SLOs | report |"
    )
    assert availability[1] == (
        "| kill-redis-master | stock | 96 (503\N{MULTIPLICATION SIGN}84, 502\N{MULTIPLICATION SIGN}12) "
        "| 1.935 | 2.289 | 9.6 | 862.2 | 1537.0 | 2.289 | yes | FAIL | [report](../runs/stock/report.md) |"
    )
    assert availability[2].startswith("| kill-redis-master | hardened | 0 | ")
    assert "| not recovered | yes | pass |" in availability[2]
    assert availability[3].startswith("| failed |  | no summary (run failed) |")
    assert correctness[0] == (
        "| fault | configuration | acknowledged writes | lost acknowledged writes | indeterminate (took effect) "
        "| stale reads in fault (run) | other anomalies | two masters s | acknowledged/lost per master in fault |"
    )
    assert correctness[1] == (
        "| kill-redis-master | stock | 541 | **3** | 7 (2) | n/a (n/a) | n/a (no history) | n/a | n/a |"
    )
    assert correctness[3] == "| failed |  | no summary (run failed) |  |  |  |  |  |  |"
    for table in (availability, correctness):
        assert len(table) == 4 and all(line.count("|") == table[0].count("|") for line in table)


def partition_block(stale_in_fault: int, two_masters_s: float, writes: dict) -> dict:
    return {
        "old_master": "redis-1",
        "two_masters_s": two_masters_s,
        "writes_during_fault": writes,
        "writes_while_two_masters": {},
        "stale_reads": {"run": 9, "during_fault": stale_in_fault, "heal_window_s": 10.0},
    }


def test_three_configurations_per_fault_sit_together_in_run_order_with_partition_columns(tmp_path):
    split = partition_block(3, 7.5, {"redis-1": {"acked": 120, "lost": 118}, "redis-2": {"acked": 40, "lost": 0}})
    runs = []
    for config, layer, min_replicas in (("h", "hardened", "1"), ("s", "stock", "1"), ("s0", "stock", "0")):
        runs.append(
            write_run(
                tmp_path / f"{config}-partition",
                figures({}, 118 if config == "s0" else 0, 0.0),
                layer,
                True,
                fault="partition-redis-master",
                min_replicas=min_replicas,
                partition=split if config == "s0" else partition_block(0, 0.0, {}),
                stale_reads=9,
            )
        )
        runs.append(write_run(tmp_path / f"{config}-kill", figures({}, 0, 0.0), layer, True, min_replicas=min_replicas))
    runs.insert(3, Skipped("isolate-sentinel", "stock", "isolate-sentinel: needs NETWORK=netns", "isolate-sentinel"))
    result = build_matrix(tmp_path / "matrix", runs)
    assert [(r["fault"], r["configuration"]) for r in result["rows"]] == [
        ("partition-redis-master", "hardened"),
        ("partition-redis-master", "stock"),
        ("partition-redis-master", "stock-min-replicas-0"),
        ("kill-redis-master", "hardened"),
        ("kill-redis-master", "stock"),
        ("kill-redis-master", "stock-min-replicas-0"),
        ("isolate-sentinel", "stock"),
    ]
    s0 = result["rows"][2]
    assert (s0["stale_reads_in_fault"], s0["stale_reads"], s0["two_masters_s"], s0["old_master"]) == (
        3,
        9,
        7.5,
        "redis-1",
    )
    assert s0["writes_during_fault"] == {"redis-1": {"acked": 120, "lost": 118}, "redis-2": {"acked": 40, "lost": 0}}
    correctness = tables((tmp_path / "matrix" / "report.md").read_text())["Correctness"]
    assert correctness[3] == (
        "| partition-redis-master | stock-min-replicas-0 | 541 | **118** | 7 (2) | 3 (9) | n/a (no history) | 7.5 "
        "| redis-1 (old): 120/118, redis-2: 40/0 |"
    )
    assert correctness[1].endswith(
        "| 0 (9) | n/a (no history) | 0.0 | n/a |"
    )  # a partition block, but no write named its node
    skipped = "| isolate-sentinel | stock | skipped: isolate-sentinel: needs NETWORK=netns |"
    assert correctness[7].startswith(skipped)
    assert tables((tmp_path / "matrix" / "report.md").read_text())["Availability"][7] == skipped + "  |" * 9


def test_the_configuration_comes_from_the_run_settings():
    assert configuration_of({"config": {"SESSION_LAYER": "hardened", "REDIS_MIN_REPLICAS_TO_WRITE": "1"}}) == "hardened"
    assert configuration_of({"config": {"SESSION_LAYER": "stock", "REDIS_MIN_REPLICAS_TO_WRITE": "1"}}) == "stock"
    assert configuration_of({"config": {"SESSION_LAYER": "stock", "REDIS_MIN_REPLICAS_TO_WRITE": "0"}}) == (
        "stock-min-replicas-0"
    )
    # Hardened with no replica required is still the hardened layer: no configuration names that setup.
    assert configuration_of({"config": {"SESSION_LAYER": "hardened", "REDIS_MIN_REPLICAS_TO_WRITE": "0"}}) == "hardened"
    assert configuration_of({"config": {"SESSION_LAYER": "hardened"}}) == "hardened"  # before the setting existed
    assert configuration_of({"config": {}}) == "stock"  # before SESSION_LAYER existed: stock
    assert configuration_of({}) is None  # no meta.json at all


def test_a_run_on_valkey_says_so_from_what_its_nodes_reported():
    """versions.store is what the data nodes answered (INFO server); the setting only when a run predates it."""
    hardened = {"SESSION_LAYER": "hardened"}
    assert configuration_of({"config": hardened, "versions": {"store": "valkey 9.1.2"}}) == "hardened on valkey"
    assert configuration_of({"config": hardened, "versions": {"store": "redis 7.0.15"}}) == "hardened"
    # The setting said redis (unset, the state folder's engine ran), the nodes said valkey: the nodes win.
    ran = {"config": {**hardened, "STORE_ENGINE": "redis"}, "versions": {"store": "valkey 9.1.2"}}
    assert configuration_of(ran) == "hardened on valkey"
    assert configuration_of({"config": {**hardened, "STORE_ENGINE": "valkey"}}) == "hardened on valkey"
    unknown = {"config": hardened, "versions": {"store": "unknown (no data node answered)"}}
    assert configuration_of(unknown) == "hardened"


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
    config = {"SESSION_LAYER": layer.split("-")[0]} | ({"REDIS_MIN_REPLICAS_TO_WRITE": "0"} if "-" in layer else {})
    (run_dir / "meta.json").write_text(json.dumps({"scenario": scenario, "config": config}))
    return run_dir


def test_runs_without_faults_get_their_own_table_and_the_read_p50_comparison(tmp_path):
    runs = [
        write_load_run(tmp_path / "a", "latency", "stock", 4000, 0),
        write_load_run(tmp_path / "b", "concurrency", "stock", 5000, 1566),
        write_load_run(tmp_path / "c", "latency", "hardened", 3000, 0),
        write_load_run(tmp_path / "d", "latency", "stock-min-replicas-0", 9000, 0),  # not the stock of the comparison
    ]
    result = build_matrix(tmp_path / "matrix", runs)
    assert result["rows"] == []
    stock_latency, stock_concurrency, _, stock_min0 = result["load_rows"]
    assert stock_min0["configuration"] == "stock-min-replicas-0"
    assert (stock_latency["configuration"], stock_latency["read_p50_us"], stock_latency["read_p99_us"]) == (
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
    assert [(r["fault"], r["configuration"]) for r in rows] == [
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


def test_a_judged_run_says_which_lost_writes_were_concurrent_and_names_other_anomalies(tmp_path):
    judged = {"lost_writes": 5, "lost_updates": 348, "stale_reads": 2, "resurrections": 1, "duplicates": 0}
    run = write_run(tmp_path / "runs" / "stock", figures({}, 353, 1.0), "stock", False, judged=judged)
    build_matrix(tmp_path / "matrix", [run])
    report_md = (tmp_path / "matrix" / "report.md").read_text()
    assert tables(report_md)["Correctness"][1] == (
        "| kill-redis-master | stock | 541 | **5** + 348 concurrent | 7 (2) | n/a (2) | resurrections **1** "
        "| n/a | n/a |"
    )
    assert "| **5** + 348 concurrent |" in report_md.split("## ")[0]  # the headline table too
