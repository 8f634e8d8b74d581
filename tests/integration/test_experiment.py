"""A short failover experiment end to end: load, a Redis master kill, heal, read-back, failover figures."""

from __future__ import annotations

import json

import pytest

from sessionproof.chaos.experiment import run_experiment

pytestmark = pytest.mark.stack

SHORT_REDIS_KILL = """
description: a short failover-redis-kill for the test suite
users: 6
spawn_rate: 6
duration: 16s
rate_per_user_per_s: 4
mix: {bounce: 1}
faults:
  - {fault: kill-redis-master, at_s: 4, hold_s: 7}  # Sentinel promotes after 2-3.5 s here: heal well after it
slo:
  - {path: [failover, lost_acknowledged_writes], max: 0}
"""


def use_short_redis_kill(stack, tmp_path, monkeypatch) -> None:
    """The short scenario in a scenario folder of its own, runs into tmp_path, the stack's settings in the env."""
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "short-redis-kill.yaml").write_text(SHORT_REDIS_KILL)
    monkeypatch.setenv("SCENARIO_DIR", str(tmp_path / "scenarios"))
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "results"))
    for name, value in stack.config.env.items():
        monkeypatch.setenv(name, value)


def test_an_experiment_heals_the_stack_and_reports_failover_figures(healthy_stack, tmp_path, monkeypatch):
    use_short_redis_kill(healthy_stack, tmp_path, monkeypatch)
    master_before = healthy_stack.master_node()

    lines: list[str] = []
    run_dir, _exit_code = run_experiment("short-redis-kill", healthy_stack, progress=lines.append)

    # A heartbeat at least every 5 s of load reached the terminal, and the log judges nothing before the final read.
    assert sum(line.startswith("[short-redis-kill] load ") for line in lines) >= 2, lines
    locust_log = (run_dir / "raw" / "locust.log").read_text()
    assert "SLOs" not in locust_log and "the experiment reads back every session" in locust_log

    assert healthy_stack.healthy()
    assert list(healthy_stack.redis_roles().values()).count("master") == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [f["fault"] for f in summary["faults"]] == ["kill-redis-master"]
    assert summary["faults"][0]["target"] == master_before.name
    figures = summary["failover"]
    for key in ("client_errors", "error_window_s", "longest_gap_s", "latency", "acknowledged_writes",
                "lost_acknowledged_writes", "indeterminate_writes", "time_to_recover_s"):  # fmt: skip
        assert key in figures, key
    assert figures["acknowledged_writes"] > 20
    # The tests' stack runs the hardened layer: a SIGKILLed master must cost no acknowledged write.
    assert figures["lost_acknowledged_writes"] == 0, figures["lost_examples"]
    assert summary["partition"]["promotion"] is not None, "the report names Sentinel's promotion"
    assert set(figures["client_errors"]) == {"502", "503", "504", "timeout", "other"}
    assert figures["latency"]["before"]["count"] > 0 and figures["latency"]["during"]["count"] > 0
    assert any(e["event"] == "+switch-master" for e in summary["sentinel_timeline"])
    assert (run_dir / "plots" / "latency.png").exists()
    # The final read is in the history, and every class of the checker is 0 with the hardened layer.
    assert summary["correctness_source"] == "history" and summary["correctness"]["anomalies"] == 0
    assert figures["unread_writes"] == 0
    # The server side, from the stack's Prometheus: the replicas retried while the master was gone.
    server = summary["server"]
    assert server["available"] is True, server
    assert server["totals"]["retries"] > 0, server["per_replica"]
    assert set(server["per_replica"]) == {n.name for n in healthy_stack.config.app_nodes}
    (at_fault,) = server["replica_lag_at_faults"]
    assert at_fault["master"] == master_before.name and len(at_fault["lag_bytes"]) == 2, at_fault
    assert server["redis_master_timeline"][0]["master"] == master_before.name
    assert (run_dir / "plots" / "server.png").exists()
