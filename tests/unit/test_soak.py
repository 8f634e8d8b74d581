"""make soak's verdicts and report, from synthetic samples (the live run is `make soak`, not a test)."""

from __future__ import annotations

import json

from sessionproof.analysis.soak_report import report_lines, write_report
from sessionproof.histograms import new_histogram
from sessionproof.load.soak import drift_verdict, memory_verdict

MIB = 2**20


def second(t: int, latency_us: int) -> dict:
    histogram = new_histogram()
    histogram.record_value(latency_us, 100)
    return {"t": t, "kind": "intended", "hist": histogram.encode().decode()}


def samples(peak_used: int, sessions: int = 1000) -> list[dict]:
    return [{"t": 10.0 * i, "used_memory": 10 * MIB + i * (peak_used - 10 * MIB) // 9, "sessions": sessions,
             "records": 500} for i in range(10)]  # fmt: skip


def test_memory_within_the_sizing_rule_passes_and_a_leak_fails():
    # 10 MiB before; 1000 sessions x 400 B + 10 writes/s x 90 s x 300 B = 0.65 MiB predicted on top.
    ok = memory_verdict(10 * MIB, samples(11 * MIB), 400, 300, 10, 90)
    assert ok["predicted_bytes"] == 10 * MIB + 400_000 + 270_000 and ok["passed"]
    leak = memory_verdict(10 * MIB, samples(20 * MIB), 400, 300, 10, 90)
    assert not leak["passed"] and leak["peak_bytes"] == 20 * MIB
    missed = memory_verdict(10 * MIB, [{"t": 1.0, "error": "timeout"}], 400, 300, 10, 90)
    assert missed["passed"] and missed["peak_sessions"] == 0  # a missed sample is not a leak


def test_p99_drift_is_judged_on_the_first_and_last_third_after_the_warm_up():
    flat = [second(t, 2000) for t in range(100)]
    assert drift_verdict(flat, 0, 99)["passed"]
    rising = [second(t, 2000 if t < 60 else 9000) for t in range(100)]
    verdict = drift_verdict(rising, 0, 99)
    assert not verdict["passed"] and verdict["first_third_p99_us"] < 2100 and verdict["last_third_p99_us"] > 8900
    small = [second(t, 2000 if t < 60 else 2600) for t in range(100)]  # +30% but only +0.6 ms: noise
    assert drift_verdict(small, 0, 99)["passed"]


def test_the_report_names_the_verdict_and_the_rule(tmp_path):
    summary = {
        "started_at": "20261124T030000Z", "command": "soak.py", "machine": {"cores": 2, "platform": "Linux"},
        "config": {"IDEMPOTENCY_TTL_S": "90"}, "duration_s": 1800.0, "harness_run": "harness/x",
        "harness_valid": True, "memory": memory_verdict(10 * MIB, samples(20 * MIB), 400, 300, 10, 90),
        "drift": {"first_third_p99_us": 2000, "last_third_p99_us": 2100, "passed": True},
        "samples": samples(20 * MIB), "passed": False,
    }  # fmt: skip
    text = "\n".join(report_lines(summary))
    assert "# Soak, 20261124T030000Z: **FAILED**" in text
    assert "| peak used_memory | 20.0 MiB (**over**) |" in text
    assert "| write rate x TTL x bytes/record | 10.0/s x 90 s x 300 |" in text
    write_report(json.loads(json.dumps(summary)), tmp_path)
    assert (tmp_path / "plots" / "soak.png").read_bytes().startswith(b"\x89PNG")
