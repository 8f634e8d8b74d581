"""make bench's report and its rules, from a synthetic summary (the live run is `make bench`, not a test)."""

from __future__ import annotations

import json

from sessionproof.analysis.bench_report import main, report_lines
from sessionproof.load import bench
from sessionproof.topology import planned_runs
from sessionproof.validity import BAD_INPUT_EXIT_CODE


def spread(value: float) -> dict:
    return {"median": value, "min": value * 0.9, "max": value * 1.1, "reps": [value * 0.9, value, value * 1.1]}


def configuration(ping_rps: float, cart_rps: float, tax_us: int, accurate: bool) -> dict:
    unloaded = {name: {key: spread(500.0 * (i + 1)) for key in ("p50", "p99", "p999")}
                for i, name in enumerate(bench.ENDPOINTS)}  # fmt: skip
    return {
        "capacity_rps": {"GET /ping": spread(ping_rps), "GET /cart": spread(cart_rps), "POST /cart/[item]": spread(900)},
        "capacity_errors": dict.fromkeys(bench.ENDPOINTS, 0),
        "ratios": {"GET /cart ÷ GET /ping": round(cart_rps / ping_rps, 3), "POST ÷ GET /ping": 0.3},
        "unloaded_us": unloaded,
        "session_tax_p50_us": tax_us,
        "post_over_cart_p50": 1.5,
        "accuracy": {"endpoints": {"GET /ping": {
            "harness": {"p50_us": 1700, "p99_us": 3400, "count": 800},
            "independent": {"count": 800, "p50_us": 1500 if accurate else 700, "p99_us": 3000, "statuses": {"200": 800}},
            "p50_diff_us": 200 if accurate else 1000, "p99_diff_us": 400, "p50_allowed_us": 375 if accurate else 300,
            "rate_per_s": 40.0,
            "accurate": accurate}}},
    }  # fmt: skip


SUMMARY = {
    "started_at": "20261123T235933Z",
    "command": "bench.py",
    "machine": {"cores": 2, "platform": "Linux"},
    "config": {"APPS": "3", "GUNICORN_WORKERS": "2", "GUNICORN_THREADS": "4"},
    "settings": {"reps": 3, "connections": 32, "capacity_s": 5.0, "unloaded_s": 5.0, "accuracy_s": 20.0},
    "targets": bench.TARGETS,
    "configurations": {
        "hardened": configuration(4000, 3400, 150, True),
        "stock": configuration(4000, 1600, 900, False),
    },
}


def test_the_report_judges_each_configuration_against_the_targets(tmp_path):
    text = "\n".join(report_lines(SUMMARY))
    assert "| hardened | GET /cart ÷ GET /ping saturated | 0.85 | ≥ 0.8 | met |" in text
    assert "| stock | GET /cart ÷ GET /ping saturated | 0.40 | ≥ 0.8 | **not met** |" in text
    assert "| hardened | session tax at p50, unloaded | 150 µs | ≤ 200 µs | met |" in text
    assert "| stock | GET /ping | 40.0 | 1700 | 700 | +1000 | 3400 | 3000 | +400 | **no** |" in text
    assert "| hardened | 4000 (3600 to 4400) | 3400 (3060 to 3740) |" in text  # median (min to max) of the repetitions
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY))
    assert main([str(tmp_path)]) == 0  # `make bench` runs it on the folder it wrote
    assert (tmp_path / "plots" / "bench.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "report.md").read_text() == text
    assert main([str(tmp_path / "elsewhere")]) == BAD_INPUT_EXIT_CODE == 2


def test_each_repetition_runs_the_endpoints_in_another_order():
    orders = [bench._rotated(rep) for rep in range(3)]
    assert {order[0] for order in orders} == set(bench.ENDPOINTS)
    assert all(sorted(order) == sorted(bench.ENDPOINTS) for order in orders)


def test_hey_sends_each_endpoint_what_the_latency_scenario_sends_it():
    from sessionproof.load import scenarios

    # 10 users x 10 req/s, split 0.4 / 0.2 / 0.4 between GET /cart, POST and GET /ping.
    assert bench.endpoint_rates(scenarios.load("latency")) == {"GET /ping": 40.0, "GET /cart": 40.0}


def test_the_cpu_split_counts_each_part_per_request_and_new_processes_from_zero():
    from sessionproof.load.cpu_split import CpuSnapshot, per_request_us

    before = CpuSnapshot({10: ("app", 1.0), 11: ("redis master", 0.5)}, generator_s=2.0, machine_busy_s=10.0)
    # pid 12 is a gunicorn worker that started during the run; pid 11 exited (counts nothing).
    after = CpuSnapshot({10: ("app", 1.6), 12: ("app", 0.2)}, generator_s=2.1, machine_busy_s=11.0)
    split = per_request_us(before, after, requests=1000)
    assert split["app"] == 800.0 and split["generator"] == 100.0 and split["machine"] == 1000.0
    assert split["redis master"] == 0.0 and split["nginx"] == 0.0
    assert per_request_us(before, after, requests=0) == {}


def test_the_observability_nodes_are_one_part_of_the_cpu_split():
    """With OBSERVABILITY=on the stack's status lists Prometheus and its exporters: make bench failed with
    KeyError 'redis-exporter' when their kinds were taken for parts."""
    from sessionproof.load.cpu_split import CpuSnapshot, _part, per_request_us

    assert [_part(kind, "") for kind in ("redis-exporter", "nginx-exporter", "prometheus")] == ["observability"] * 3
    assert (_part("redis", "master"), _part("redis", "slave"), _part("app", "")) == (
        "redis master",
        "redis replicas",
        "app",
    )
    before = CpuSnapshot({20: (_part("prometheus", ""), 1.0)}, generator_s=0.0, machine_busy_s=0.0)
    after = CpuSnapshot({20: (_part("prometheus", ""), 1.5)}, generator_s=0.0, machine_busy_s=0.0)
    assert per_request_us(before, after, requests=1000)["observability"] == 500.0


def test_the_report_shows_where_a_saturated_requests_cpu_goes():
    from sessionproof.load.cpu_split import PARTS

    summary = json.loads(json.dumps(SUMMARY))
    summary["configurations"]["hardened"]["capacity_cpu_us_per_request"] = {
        "GET /ping": dict.fromkeys(PARTS, 10.0) | {"app": 650.0, "machine": 750.0},
    }
    text = "\n".join(report_lines(summary))
    assert "| hardened | GET /ping | 650 | 10 | 10 | 10 | 10 | 10 | 10 | 750 |" in text
    assert "| stock | GET /ping |" not in text.split("Where a saturated")[1].split("## Unloaded")[0]
    assert "Where a saturated" not in "\n".join(report_lines(SUMMARY))  # no split measured: no section


def test_waitaof_is_planned_only_on_an_engine_that_has_it():
    planned, skipped = planned_runs(["hardened", "hardened-waitaof"], ["redis", "valkey"])
    assert planned == [("redis", "hardened"), ("valkey", "hardened"), ("valkey", "hardened-waitaof")]
    assert list(skipped) == ["hardened-waitaof"]
    assert "Redis 7.0" in skipped["hardened-waitaof"]


def test_the_cost_of_waiting_for_the_disk_is_against_hardened_on_the_same_engine():
    durable = configuration(4000, 3400, 150, True)
    durable["unloaded_us"]["POST /cart/[item]"]["p50"] = spread(2000.0)  # +500 µs against 1500
    durable["capacity_rps"]["POST /cart/[item]"] = spread(450)  # half of 900
    summary = {
        **SUMMARY,
        "configurations": {
            "hardened": configuration(4000, 3400, 150, True),
            "hardened on valkey": configuration(4000, 3400, 150, True),
            "hardened-waitaof on valkey": durable,
        },
        "skipped": {"hardened-waitaof": "SESSION_WAIT_AOF=yes needs WAITAOF, which Redis 7.0 does not have"},
    }
    text = "\n".join(report_lines(summary))
    assert "| hardened-waitaof on valkey | 2000 | +500 (hardened on valkey) | 1500 | +0 | 450 | -50 % |" in text
    assert "Not run: hardened-waitaof: SESSION_WAIT_AOF=yes needs WAITAOF" in text
    assert "What waiting for the disk costs" not in "\n".join(report_lines(SUMMARY))  # no durable variant, no table
