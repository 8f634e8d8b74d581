"""make soak's verdicts and report, from synthetic samples and folders (the live run is `make soak`, not a test)."""

from __future__ import annotations

import json

from sessionproof.analysis.soak_report import drift_verdict, main, memory_verdict, report_lines, write_report
from sessionproof.histograms import new_histogram
from sessionproof.validity import BAD_INPUT_EXIT_CODE

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


def soak_folder(folder, peak_used: int, harness_valid: bool = True):
    """A soak's folder as `make soak` leaves it for its report: raw/soak.json and the harness run."""
    run_dir = folder / "harness" / "20261124T030000Z-mixed"
    (run_dir / "raw").mkdir(parents=True)
    lines = [second(t, 2000) for t in range(100)]
    (run_dir / "raw" / "histograms.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    by_endpoint = {"POST /cart/[item]": {"ok": 1000, "failed": 0}, "GET /cart": {"ok": 5000, "failed": 0}}
    (run_dir / "summary.json").write_text(
        json.dumps({"valid": harness_valid, "requests": {"by_endpoint": by_endpoint}})
    )
    measured = {
        "started_at": "20261124T030000Z", "command": "soak.py", "machine": {"cores": 2, "platform": "Linux"},
        "config": {"IDEMPOTENCY_TTL_S": "90"}, "duration_s": 100.0, "harness_run": "harness/20261124T030000Z-mixed",
        "samples": [{"t": 0.0, "used_memory": 10 * MIB, "sessions": 0, "records": 0}, *samples(peak_used)],
        "bytes_per_session": 400, "bytes_per_record": 300, "record_ttl_s": 90,
    }  # fmt: skip
    (folder / "raw").mkdir()
    (folder / "raw" / "soak.json").write_text(json.dumps(measured))
    return folder


def test_the_report_program_judges_what_the_soak_measured_and_exits_3_when_it_failed(tmp_path, capsys):
    passed = soak_folder(tmp_path / "passed", 11 * MIB)
    assert main([str(passed)]) == 0
    summary = json.loads((passed / "summary.json").read_text())
    assert summary["passed"] and summary["harness_valid"] and summary["drift"]["passed"]
    assert summary["memory"]["writes_per_s"] == 10.0  # 1000 POSTs in 100 s
    assert summary["memory"]["baseline_bytes"] == 10 * MIB and len(summary["samples"]) == 11
    assert capsys.readouterr().out == f"soak: passed; {passed / 'report.md'}\n"
    assert main([str(soak_folder(tmp_path / "leak", 20 * MIB))]) == 3
    assert main([str(soak_folder(tmp_path / "invalid", 11 * MIB, harness_valid=False))]) == 3
    assert main([str(tmp_path / "nothing")]) == BAD_INPUT_EXIT_CODE == 2
