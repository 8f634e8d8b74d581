"""What long commands print while they run and when they end: the load heartbeat and the demo's headline."""

from __future__ import annotations

from types import SimpleNamespace

from run_folders import make_failover_run

from sessionproof.analysis.report import build_report
from sessionproof.chaos.demo import headline
from sessionproof.load.runinfo import HEARTBEAT_PREFIX, heartbeat_line


def test_the_heartbeat_says_time_users_requests_failures_and_the_current_p99():
    total = SimpleNamespace(
        num_requests=1234, num_failures=5, current_rps=98.6, get_current_response_time_percentile=lambda p: 41.0
    )
    line = heartbeat_line(25.2, 60, total, 20)
    assert line.startswith(HEARTBEAT_PREFIX)
    assert "25/60s 20 users, 1234 requests (99/s), 5 failed, p99 41 ms" in line
    idle = SimpleNamespace(
        num_requests=0, num_failures=0, current_rps=0, get_current_response_time_percentile=lambda p: None
    )
    assert "p99 n/a" in heartbeat_line(1, None, idle, 0)


def test_the_demo_headline_names_latency_errors_losses_and_the_failover(tmp_path):
    summary = build_report(make_failover_run(tmp_path / "run"))
    text = "\n".join(headline(summary))
    assert "GET /cart" in text and "GET /ping" in text
    assert "acknowledged writes: 500, LOST: 2" in text
    assert "by class: 502: 1, 503: 2" in text
    assert "errors for 2 s, longest time without a success 7 s" in text and "SLOs: passed" in text
