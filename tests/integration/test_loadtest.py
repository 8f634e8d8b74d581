"""A short headless Locust run against the real stack leaves a complete, honest results folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from planting import plant

from sessionproof import REPO_ROOT
from sessionproof.history import ANOMALY_CLASSES, FINAL_READ_PROCESS
from sessionproof.history.files import history_path, read_history, write_history
from sessionproof.waiting import wait_until

pytestmark = pytest.mark.stack
LOCUST = str(Path(sys.executable).parent / "locust")


def run_locust(stack, results: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LOCUST, "--headless", "--host", stack.config.entry_url, *args],
        cwd=REPO_ROOT,  # locust.conf names the locustfile
        env={**os.environ, "RESULTS_DIR": str(results), **stack.config.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_bounce_run_checks_every_answer_and_writes_a_complete_results_folder(healthy_stack, tmp_path):
    result = run_locust(healthy_stack, tmp_path, "--scenario", "bounce", "-u", "6", "-r", "6", "-t", "8s")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = (tmp_path / "latest").resolve()
    assert run_dir.name.endswith("-bounce")
    for name in ("meta.json", "summary.json", "report.md", "plots/latency.png", "plots/errors.png",
                 "plots/replicas.png", "raw/histograms.jsonl", "raw/counters.json",
                 "raw/locust_stats_history.csv", "raw/locust_stats.csv", "locust.html", "plots/percentiles.png",
                 "raw/hlog/service-get-cart.hlog", "raw/hlog/intended-get-cart.hlog"):  # fmt: skip
        assert (run_dir / name).stat().st_size > 0, name
    summary = json.loads((run_dir / "summary.json").read_text())
    correctness = summary["correctness"]
    assert correctness["checks"] > 50
    assert {name: correctness[name] for name in ANOMALY_CLASSES} == dict.fromkeys(ANOMALY_CLASSES, 0)
    assert correctness["acknowledged_writes"] > 20 and correctness["unread_writes"] == 0  # the final read read all
    assert set(summary["served_by"]) == {"app-1", "app-2", "app-3"}
    for kind in ("latency_us", "latency_intended_us"):
        cart = summary[kind]["GET /cart"]
        assert cart["count"] > 50 and 0 < cart["p50"] <= cart["p99"] <= cart["max"]
    assert summary["latency_intended_us"]["GET /cart"]["p99"] >= summary["latency_us"]["GET /cart"]["p99"]
    assert summary["requests"]["failed"] == 0 and summary["slo"]["passed"] is True
    # The app's Server-Timing, through nginx and Sentinel: its time inside the client's, Redis's inside its own.
    cart = summary["latency_decomposition_us"]["GET /cart"]
    assert 0 < cart["store_p50"] < cart["app_p50"] < cart["client_p50"] and cart["outside_app_p50"] > 0
    assert summary["loop_lag_us"]["count"] > 1000  # the probe woke about every ms of the 8 s

    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["config"]["REDIS_PASSWORD"] == "***" and meta["host"]["cores"] >= 1

    rerendered = subprocess.run(
        [sys.executable, "-m", "sessionproof.analysis.report", str(run_dir)], capture_output=True, text=True, timeout=60
    )
    assert rerendered.returncode == 0, rerendered.stderr
    assert json.loads((run_dir / "summary.json").read_text()) == summary

    # The verdict is the checker's over raw/history.jsonl, the final read included; make check judges it again.
    ops = read_history(history_path(run_dir))
    assert {op["type"] for op in ops} >= {"invoke", "ok"} and {op["f"] for op in ops} >= {"login", "add", "read"}
    assert any(op["process"] == FINAL_READ_PROCESS for op in ops)
    checked = make_check(run_dir)
    assert checked.returncode == 0 and f"no anomaly in {correctness['checks']} checks" in checked.stdout, checked.stdout

    # An adversary edits the real history: one anomaly of each class, each named by make check (exit 3).
    for name in ANOMALY_CLASSES:
        write_history(history_path(run_dir), plant(ops, name))
        planted = make_check(run_dir)
        assert planted.returncode == 3 and f"{name} 1" in planted.stdout, (name, planted.stdout, planted.stderr)
    write_history(history_path(run_dir), ops)


def make_check(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sessionproof.analysis.check", str(run_dir)], capture_output=True, text=True, timeout=60
    )


def test_concurrent_adds_of_one_session_lose_no_update_with_the_hardened_layer(healthy_stack, tmp_path):
    result = run_locust(healthy_stack, tmp_path, "--scenario", "concurrency", "-u", "4", "-r", "4", "-t", "6s")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(((tmp_path / "latest") / "summary.json").read_text())
    meta = json.loads(((tmp_path / "latest") / "meta.json").read_text())
    assert meta["config"]["SESSION_LAYER"] == "hardened"
    concurrent = summary["requests"]["by_endpoint"]["POST /cart/[item] (concurrent)"]
    assert concurrent["ok"] > 40 and concurrent["failed"] == 0
    assert summary["correctness"]["lost_updates"] == 0
    # Locust stops a user inside its burst (about every second stop, per user): adds it had in flight must not
    # be sent after the history is written, or the final read finds items no add wrote (phantom writes).
    assert summary["correctness"]["phantom_writes"] == 0 and summary["correctness"]["anomalies"] == 0


def test_ctrl_c_during_a_run_stops_the_users_before_the_history_is_written(healthy_stack, tmp_path):
    """Locust fires `quitting` before it stops the users: the run was written while they went on adding, and the
    final read found their items with no add in the history (74 phantom writes in a campaign stopped by Ctrl-C)."""
    env = {**os.environ, "RESULTS_DIR": str(tmp_path), **healthy_stack.config.env}
    command = [LOCUST, "--headless", "--host", healthy_stack.config.entry_url, "--scenario", "mixed", "-u", "8",
               "-r", "8", "-t", "5m", "--only-summary"]  # fmt: skip
    log = (tmp_path / "locust.log").open("w")
    locust = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:

        def seconds_of_load() -> int:
            history = list(tmp_path.glob("*-mixed/raw/locust_stats_history.csv"))
            return len(history[0].read_text().splitlines()) - 1 if history else 0

        wait_until(lambda: seconds_of_load() >= 6, 60, "six seconds of load")
        locust.send_signal(signal.SIGINT)
        locust.wait(timeout=90)
    finally:
        if locust.poll() is None:
            locust.kill()
            locust.wait()
        log.close()
    summary = json.loads((tmp_path / "latest" / "summary.json").read_text())
    correctness = summary["correctness"]
    assert correctness["acknowledged_writes"] > 20, (tmp_path / "locust.log").read_text()[-3000:]
    assert correctness["phantom_writes"] == 0 and correctness["anomalies"] == 0, correctness


STRICT_SLO = """
description: a bounce run with an SLO no stack can meet, for the exit code
users: 2
spawn_rate: 2
duration: 6s
rate_per_user_per_s: 4
mix: {bounce: 1}
slo:
  - {path: [latency_us, "GET /cart", p50], max: 1}
"""


def test_an_invalid_run_says_so_on_its_summary_first_line_and_exits_4(healthy_stack, tmp_path):
    result = run_locust(healthy_stack, tmp_path, "--scenario", "bounce", "-u", "2", "-r", "2", "-t", "3s")
    assert result.returncode == 4, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    first = next(
        i
        for i, line in enumerate(lines)
        if line.startswith("sessionproof: ") and " run" in line and ("INVALID" in line or "valid run" in line)
    )
    assert lines[first].startswith("sessionproof: INVALID run, do not trust its figures (exit code 4): the run lasted")
    assert "results in" in lines[first + 1], "the validity line is not the summary's first line"
    assert json.loads(((tmp_path / "latest") / "summary.json").read_text())["valid"] is False


def test_an_slo_breach_exits_3_and_still_writes_the_report(healthy_stack, tmp_path):
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "strict.yaml").write_text(STRICT_SLO)
    result = run_locust(
        healthy_stack, tmp_path, "--scenario", "strict", "-t", "6s", env={"SCENARIO_DIR": str(tmp_path / "scenarios")}
    )  # 6 s: a run under 5 s is INVALID, which exits 4 before a breach's 3
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    assert "FAIL" in ((tmp_path / "latest") / "report.md").read_text()
