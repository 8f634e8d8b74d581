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


def _generator(window_p99_us, run_p99_us, cpu=30.0):
    return {
        "loop_lag_window_us": {"p99": window_p99_us, "count": 100},
        "loop_lag_us": {"p99": run_p99_us, "count": 1000},
        "cpu_max_percent": cpu,
    }


def test_the_heartbeat_states_the_generator_and_warns_when_it_crosses_a_bound():
    total = SimpleNamespace(
        num_requests=10, num_failures=0, current_rps=2.0, get_current_response_time_percentile=lambda p: 3.0
    )
    calm = heartbeat_line(10, 60, total, 5, _generator(1_200, 900))
    assert "generator loop lag p99 1.2 ms, CPU peak 30%" in calm and "WARNING" not in calm
    spike = heartbeat_line(10, 60, total, 5, _generator(7_400, 2_000))
    assert "WARNING: loop lag over the 5 ms bound in the last seconds" in spike and "INVALID" not in spike
    invalid = heartbeat_line(10, 60, total, 5, _generator(6_000, 5_100))
    assert "run INVALID so far (loop lag p99 5.1 ms over the run)" in invalid
    assert "run INVALID: CPU peaked over 90%" in heartbeat_line(10, 60, total, 5, _generator(100, 100, cpu=97))


def test_the_loop_lag_window_holds_what_came_since_the_last_heartbeat_workers_included():
    from sessionproof.load.recorder import Recorder

    master, worker = Recorder(), Recorder()
    for _ in range(100):
        master.lag(200)
    assert master.take_loop_lag_window()["count"] == 100
    assert master.take_loop_lag_window()["count"] == 0, "the window did not start afresh"
    for _ in range(50):
        worker.lag(9_000)
    master.merge(worker.drain())
    window = master.take_loop_lag_window()
    assert window["count"] == 50 and window["p99"] >= 8_900
    assert master.loop_lag.get_total_count() == 150  # the run's own histogram keeps everything


def test_the_demo_headline_states_validity_on_its_first_line(tmp_path):
    summary = build_report(make_failover_run(tmp_path / "run"))
    first = next(line for line in headline(summary) if line)
    assert first.startswith("valid run: the load generator stayed within its bounds")
    summary.update(valid=False, invalid_reasons=["the load generator's event loop woke 7.4 ms late at p99 (>5 ms)"])
    first = next(line for line in headline(summary) if line)
    assert first.startswith("INVALID run, do not trust its figures (exit code 4): the load generator's event loop woke")
