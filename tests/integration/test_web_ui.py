"""Locust's web UI, driven through its HTTP API as the browser does: each test is one complete run folder.

Also the other ways to start load keep working: --processes (a master and forked workers).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from sessionproof import REPO_ROOT
from sessionproof.load.screenshots import free_port
from sessionproof.waiting import wait_until

pytestmark = pytest.mark.stack
LOCUST = str(Path(sys.executable).parent / "locust")
COMPLETE = ("meta.json", "summary.json", "report.md", "locust.html", "plots/latency.png", "plots/percentiles.png",
            "raw/locust_stats.csv", "raw/locust_stats_history.csv", "raw/histograms.jsonl", "raw/history.jsonl",
            "raw/hlog/service-get-cart.hlog")  # fmt: skip
SCENARIO = """description: a short {name} for the web UI test
users: {users}
spawn_rate: {users}
duration: 5m
rate_per_user_per_s: 4
mix: {{bounce: 1, latency: 1}}
latency_mix: {{"GET /cart": 0.5, "GET /ping": 0.5}}
slo:
  - {{path: [correctness, lost_writes], max: 0}}
"""


def run_folders(results: Path) -> list[Path]:
    return sorted(p for p in results.iterdir() if p.is_dir() and not p.is_symlink())


def running_with(ui: str, users: int, min_requests: int = 40) -> bool:
    """The test in the UI runs with this many users and has sent min_requests."""
    stats = requests.get(f"{ui}/stats/requests", timeout=5).json()
    sent = next((s["num_requests"] for s in stats["stats"] if s["name"] == "Aggregated"), 0)
    return stats["user_count"] == users and sent >= min_requests


@pytest.fixture
def scenario_dir(tmp_path) -> Path:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    for name, users in (("ui-first", 4), ("ui-second", 6)):
        (folder / f"{name}.yaml").write_text(SCENARIO.format(name=name, users=users))
    return folder


def test_each_test_in_the_web_ui_is_one_complete_folder_and_nothing_else(healthy_stack, tmp_path, scenario_dir):
    results = tmp_path / "results"
    port = free_port()
    env = {**os.environ, **healthy_stack.config.env, "RESULTS_DIR": str(results), "SCENARIO_DIR": str(scenario_dir)}
    command = [LOCUST, "--host", healthy_stack.config.entry_url, "--web-port", str(port), "--scenario", "ui-first"]
    log = (tmp_path / "locust.log").open("w")
    locust = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    ui = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(ui, timeout=2).ok, 30, "the web UI to answer")
        listening = {c.laddr.port: c.laddr.ip for c in psutil.Process(locust.pid).net_connections()}
        assert listening.get(port) == "127.0.0.1"  # loopback only, from locust.conf
        assert not results.exists() or not run_folders(results)  # nothing at start-up or from viewing the page

        for scenario, users in (("ui-first", 4), ("ui-second", 6)):
            done_before = len(run_folders(results)) if results.exists() else 0
            started = requests.post(f"{ui}/swarm", data={"scenario": scenario, "host": healthy_stack.config.entry_url})
            assert started.json()["success"], started.text
            # The scenario's users, not the form's: with the scenario's shape the form has none.
            wait_until(lambda u=users: running_with(ui, u), 60, f"{scenario}: {users} users and 40 requests")
            assert requests.post(f"{ui}/stop", timeout=10).json()["success"]
            folder = run_folders(results)[done_before]
            if scenario == "ui-first":
                wait_until(lambda f=folder: (results / "latest").resolve() == f, 60, f"{scenario}: its folder written")
        # Ctrl-C while the stopped test's report is being written: the folder is still finished before Locust quits.
        wait_until(lambda: (folder / "raw" / "histograms.jsonl").exists(), 60, "the second test's report begun")
        locust.send_signal(signal.SIGINT)  # quit as a person does (the UI has no quit button)
        exit_code = locust.wait(timeout=30)
    finally:
        if locust.poll() is None:
            locust.kill()
            locust.wait()
        log.close()

    folders = run_folders(results)
    assert [f.name.split("-", 1)[1] for f in folders] == ["ui-first", "ui-second"], (
        tmp_path / "locust.log"
    ).read_text()
    for folder, users in zip(folders, (4, 6), strict=True):
        for name in COMPLETE:
            assert (folder / name).stat().st_size > 0, f"{folder.name}: {name}"
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["locust"]["web_ui"] is True and meta["locust"]["users"] == users
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["requests"]["total"] >= 40 and summary["correctness"]["checks"] > 0
        # Only this test's requests: the second folder does not carry the first test's.
        assert summary["requests"]["total"] < 10 * 40 * users
    assert (results / "latest").resolve() == folders[-1]
    # Locust quits with the last test's code: 0, or 4 where that test, stopped after 40 requests, ran under 5 s.
    last = json.loads((folders[-1] / "summary.json").read_text())
    assert exit_code == (0 if last["valid"] else 4), (exit_code, last["invalid_reasons"])


def test_processes_give_one_folder_with_every_workers_requests(healthy_stack, tmp_path):
    results = tmp_path / "results"
    env = {**os.environ, **healthy_stack.config.env, "RESULTS_DIR": str(results)}
    command = [LOCUST, "--headless", "--host", healthy_stack.config.entry_url, "--scenario", "bounce",
               "-u", "6", "-r", "6", "-t", "8s", "--processes", "2", "--only-summary"]  # fmt: skip
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (folder,) = run_folders(results)
    summary = json.loads((folder / "summary.json").read_text())
    locust_total = next(
        int(row.split(",")[2]) for row in (folder / "raw" / "locust_stats.csv").read_text().splitlines()
        if ",Aggregated," in row
    )  # fmt: skip
    # Both workers' histograms reached the master: the run counts what Locust counted, within the last report.
    assert summary["requests"]["total"] >= 0.9 * locust_total > 0
    assert "sessionproof: load " in result.stdout  # the heartbeat
