"""make scale's report, from a synthetic summary (the live run is `make scale`, not a test)."""

from __future__ import annotations

import json

from sessionproof.analysis.scale_report import main, p99_growth, report_lines
from sessionproof.validity import BAD_INPUT_EXIT_CODE


def step(sessions: int, cart_p99: int | None, used_mib: float) -> dict:
    return {
        "sessions": sessions,
        "fill_s": sessions / 100_000,
        "used_memory_bytes": int(used_mib * 2**20),
        "bytes_per_session_used_memory": 410.0,
        "bytes_per_session_memory_usage": 400,
        "session_value_bytes": 120,
        "idempotency": {"writes": 2000, "records": 2000, "bytes_per_record_used_memory": 250.0,
                        "bytes_per_record_memory_usage": 232},
        "latency": {"run": f"harness-{sessions}/x", "valid": True, "failed": 0,
                    "GET /cart": {"p50": 1500, "p99": cart_p99, "p999": 9000, "count": 1000},
                    "POST /cart/[item]": {"p50": 2500, "p99": 6000, "p999": 9000, "count": 500}},
        "replica_resync": {"node": "redis-1", "seconds": 1.5, "full_syncs": 0, "partial_syncs": 1},
        "aof_bytes": 50 * 2**20,
        "full_restart": {"seconds_until_answering": {"redis-1": 2.0}, "max_s": 2.0},
    }  # fmt: skip


SUMMARY = {
    "started_at": "20261124T020000Z",
    "command": "scale.py",
    "machine": {"cores": 2, "platform": "Linux"},
    "config": {"APPS": "3"},
    "settings": {
        "sizes": [10_000, 1_000_000],
        "maxmemory": "2gb",
        "load_s": 30.0,
        "cart_items": 5,
        "record_writes": 2000,
    },
    "steps": [step(10_000, 4000, 10.0), step(1_000_000, 5200, 420.0)],
}


def test_the_report_judges_whether_p99_stays_flat_as_the_store_fills(tmp_path):
    assert round(p99_growth(SUMMARY, "GET /cart"), 2) == 0.3
    text = "\n".join(report_lines(SUMMARY))
    assert "- GET /cart: the median p99 at 1000000 sessions is +30% against 10000 (**not flat**: within 20%)." in text
    assert "- POST /cart/[item]: the median p99 at 1000000 sessions is +0% against 10000 (flat: within 20%)." in text
    assert "| 1000000 | 420.0 MiB | 410 | 400 | 250 | 232 | 10.0 s |" in text
    assert "| 10000 | 1.50 s | partial | 50.0 MiB | 2.00 s |" in text
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY))
    assert main([str(tmp_path)]) == 0  # `make scale` runs it on the folder it wrote
    assert (tmp_path / "plots" / "scale.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "report.md").read_text() == text
    assert main([str(tmp_path / "elsewhere")]) == BAD_INPUT_EXIT_CODE == 2


def test_a_size_without_a_p99_is_shown_as_such_not_judged():
    summary = json.loads(json.dumps(SUMMARY))
    summary["steps"][0]["latency"]["GET /cart"]["p99"] = None
    assert p99_growth(summary, "GET /cart") is None
    text = "\n".join(report_lines(summary))
    assert "| 10000 | 1500 | n/a |" in text and "- GET /cart: the median p99" not in text


def test_the_verdict_takes_the_median_of_the_alternating_runs():
    summary = json.loads(json.dumps(SUMMARY))
    first, last = summary["steps"][0], summary["steps"][-1]
    for step, p99s in ((first, (4000, 5000, 4500)), (last, (5200, 4600, 4700))):
        step["latency_repeats"] = [json.loads(json.dumps(step["latency"])) for _ in p99s]
        for run, p99 in zip(step["latency_repeats"], p99s, strict=True):
            run["GET /cart"]["p99"] = p99
    assert round(p99_growth(summary, "GET /cart"), 3) == round(4700 / 4500 - 1, 3)  # medians: +4%, flat
    assert "| 10000 | 1500 | 4000 | 2500 | 6000 | 4000, 5000, 4500 | 6000, 6000, 6000 | yes |" in "\n".join(
        report_lines(summary)
    )
