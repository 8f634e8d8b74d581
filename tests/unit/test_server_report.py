"""The report's server side, from a raw/server.json as load/server_metrics.py writes it (Prometheus range queries)."""

from __future__ import annotations

import json

from run_folders import CART_AND_PING, PNG_MAGIC, T0_S, make_run, summary_of

from sessionproof.analysis.report import build_report
from sessionproof.analysis.server import counter_increase

FAULT_AT_S = 10


def series(labels: dict, values: list[float], first_t: float = T0_S) -> dict:
    return {"labels": labels, "values": [[first_t + i, v] for i, v in enumerate(values)]}


def server_raw() -> dict:
    seconds = 31
    return {
        "window": {"start_s": T0_S, "end_s": T0_S + 30},
        "prometheus_url": "http://127.0.0.1:9090",
        "step_s": 1.0,
        "available": True,
        "series": {
            "requests": [
                # app-1 answered 10/s; it was restarted at second 20 (counter back to 0).
                series(
                    {"node": "app-1", "status": "200"}, [100 + 10 * i for i in range(20)] + [10 * i for i in range(11)]
                ),
                series({"node": "app-2", "status": "200"}, [50 + 10 * i for i in range(seconds)]),
                # First 503 at second 12: the series appears then, at 3 (those 3 count).
                series({"node": "app-2", "status": "503"}, [3, 3, 5], first_t=T0_S + 12),
            ],
            "retries": [series({"node": "app-2", "reason": "connection"}, [4, 9, 9], first_t=T0_S + 11)],
            "conflicts": [series({"node": "app-1"}, [1] * seconds)],  # there before the window: no rise
            "replays": [],
            "store_unavailable": [
                series({"node": "app-2", "error": "store_unavailable"}, [3, 3, 5], first_t=T0_S + 12)
            ],
            "up": [series({"job": "app", "node": "app-1"}, [1] * 18 + [0, 0] + [1] * 11)],
            "redis_role": [
                series({"node": "redis-1", "role": "master"}, [1] * 12),
                series({"node": "redis-2", "role": "slave"}, [1] * 14),
                series({"node": "redis-2", "role": "master"}, [1] * 17, first_t=T0_S + 14),
            ],
            "redis_master_offset": [series({"node": "redis-1"}, [1000 + 100 * i for i in range(12)])],
            "redis_replica_offset": [
                series(
                    {"node": "redis-1", "slave_ip": "10.199.0.12", "slave_port": "6381"},
                    [1000 + 100 * i for i in range(12)],
                ),
                series(
                    {"node": "redis-1", "slave_ip": "10.199.0.13", "slave_port": "6382"},
                    [900 + 100 * i for i in range(12)],
                ),
            ],
            "redis_clients": [series({"node": "redis-1"}, [5, 9, 7]), series({"node": "redis-2"}, [2, 3])],
            "nginx_active": [series({"node": "nginx"}, [10, 40, 12])],
        },
    }


def make_server_run(tmp_path, raw: dict | None):
    events = [
        {"t": T0_S + FAULT_AT_S, "type": "fault_start", "fault": "kill-redis-master", "target": "redis-1"},
        {"t": T0_S + 15, "type": "heal_start", "fault": "kill-redis-master", "target": "redis-1"},
        {"t": T0_S + 16, "type": "fault_end", "fault": "kill-redis-master", "target": "redis-1"},
    ]
    run_dir = make_run(tmp_path / "run", CART_AND_PING, events=events)
    meta = json.loads((run_dir / "meta.json").read_text())
    meta["topology"] = {
        "nodes": [
            {"name": f"redis-{i}", "kind": "redis", "host": f"10.199.0.1{i}", "port": 6379 + i} for i in (1, 2, 3)
        ]
    }
    (run_dir / "meta.json").write_text(json.dumps(meta))
    if raw is not None:
        (run_dir / "raw" / "server.json").write_text(json.dumps(raw))
    return run_dir


def test_counter_increase_counts_resets_and_series_born_during_the_run():
    assert counter_increase([[0, 5], [1, 7], [2, 2], [3, 4]], window_start_s=0, step_s=1) == 2 + 2 + 2
    assert counter_increase([[5, 3], [6, 4]], window_start_s=0, step_s=1) == 3 + 1  # born at 5 s: from zero
    assert counter_increase([], window_start_s=0, step_s=1) == 0


def test_the_server_block_has_per_replica_counts_lag_at_the_fault_roles_and_peaks(tmp_path):
    server = summary_of(make_server_run(tmp_path, server_raw()))["server"]
    assert server["available"] is True
    app1, app2 = server["per_replica"]["app-1"], server["per_replica"]["app-2"]
    assert app1["requests"] == 190 + 100  # 19 s of 10/s, then a restart and 10 s more
    assert (app2["requests"], app2["5xx"], app2["503"]) == (300 + 5, 5, 5)
    assert app2["retries"] == 9 and app2["retries_by_reason"] == {"connection": 9}
    assert app1["conflicts"] == 0 and app2["store_unavailable"] == 5
    assert server["totals"]["retries"] == 9
    (fault,) = server["replica_lag_at_faults"]
    assert (fault["fault"], fault["t_s"], fault["master"]) == ("kill-redis-master", FAULT_AT_S, "redis-1")
    assert fault["lag_bytes"] == {"redis-2": 0, "redis-3": 100}
    assert server["redis_master_timeline"] == [
        {"t_s": 0.0, "master": "redis-1"},
        {"t_s": 12.0, "master": None},
        {"t_s": 14.0, "master": "redis-2"},
    ]
    assert server["peak_connections"] == {"redis_clients": {"redis-1": 9, "redis-2": 3}, "nginx_active": 40}
    assert server["scrapes_down_s"] == {"app-1": 2.0}


def test_the_report_shows_the_server_side_and_its_plot(tmp_path):
    run_dir = make_server_run(tmp_path, server_raw())
    build_report(run_dir)
    report = (run_dir / "report.md").read_text()
    assert "## Server side" in report and "| app-2 | 305 | 5 | 5 | 9 (connection 9) |" in report
    assert "kill-redis-master (redis-1): master redis-1; redis-2 0 B, redis-3 100 B" in report
    assert (run_dir / "plots" / "server.png").read_bytes().startswith(PNG_MAGIC)


def test_without_prometheus_the_report_says_why_and_everything_else_stands(tmp_path):
    raw = {"window": {"start_s": T0_S, "end_s": T0_S + 30}, "available": False,
           "reason": "Prometheus at http://127.0.0.1:9090 did not answer (ConnectionError)"}  # fmt: skip
    run_dir = make_server_run(tmp_path, raw)
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "server.png").write_bytes(PNG_MAGIC)  # from an earlier render
    summary = build_report(run_dir)
    assert summary["server"] == {"available": False, "reason": raw["reason"], "prometheus_url": None}
    report = (run_dir / "report.md").read_text()
    assert "Not recorded: Prometheus at http://127.0.0.1:9090 did not answer (ConnectionError)" in report
    assert "## Latency" in report and (run_dir / "plots" / "latency.png").exists()
    assert not (run_dir / "plots" / "server.png").exists()


def test_a_run_from_before_server_metrics_renders_too(tmp_path):
    summary = build_report(make_server_run(tmp_path, None))
    assert summary["server"]["available"] is False and "raw/server.json is missing" in summary["server"]["reason"]
