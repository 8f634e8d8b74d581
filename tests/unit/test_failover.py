"""Failover figures on synthetic experiment folders."""

from __future__ import annotations

import json

import pytest

from sessionproof import failover
from sessionproof.matrix import build_matrix
from sessionproof.recorder import new_histogram

T0 = 1_000_000.0  # fault starts at T0 + 10, ends at T0 + 20


def write_run(run_dir, timeline, events=None, final=None, latencies=None):
    raw = run_dir / "raw"
    raw.mkdir(parents=True)
    events = events if events is not None else [
        {"t": T0 + 10, "type": "fault_start", "fault": "kill-redis-master", "target": "redis-1"},
        {"t": T0 + 20, "type": "fault_end", "fault": "kill-redis-master", "target": "redis-1"},
    ]  # fmt: skip
    (raw / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (raw / "timeline.jsonl").write_text(
        "".join(json.dumps({"t": t, "endpoint": ep, "ok": ok, "kind": kind}) + "\n" for t, ep, ok, kind in timeline)
    )
    lines = []
    for second, values in (latencies or {}).items():
        histogram = new_histogram()
        for value in values:
            histogram.record_value(value)
        lines.append({"t": second, "endpoint": "GET /cart", "kind": "intended", "hist": histogram.encode().decode()})
    (raw / "histograms.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if final is not None:
        (raw / "final_read.json").write_text(json.dumps(final))
    return run_dir


def ok(t, endpoint="GET /cart"):
    return (T0 + t, endpoint, True, "ok")


def err(t, kind):
    return (T0 + t, "POST /cart/[item]", False, kind)


def test_no_fault_means_no_failover_figures(tmp_path):
    assert failover.failover_figures(write_run(tmp_path, [ok(1)], events=[])) is None


def test_errors_are_classed_and_windowed(tmp_path):
    timeline = [
        ok(9),
        err(11, "503"),
        err(12, "503"),
        err(12.5, "502"),
        err(13, "connection"),
        err(13.5, "409"),
        ok(14),
    ]
    figures = failover.failover_figures(write_run(tmp_path, timeline))
    assert figures["client_errors"] == {"502": 1, "503": 2, "504": 0, "timeout": 0, "other": 2}
    assert figures["error_window_s"] == pytest.approx(2.5)
    assert figures["time_to_recover_s"] == pytest.approx(4.0)  # fault start to the first success after the last error


def test_the_longest_gap_counts_session_requests_only_within_the_fault(tmp_path):
    timeline = [ok(1), ok(9), ok(12, "GET /ping"), ok(13), ok(19), ok(21), ok(40)]  # 21-40 is after the fault
    figures = failover.failover_figures(write_run(tmp_path, timeline))
    assert figures["longest_gap_s"] == pytest.approx(6.0)  # 13 -> 19; /ping at 12 does not count


def test_latency_before_and_during_the_fault(tmp_path):
    latencies = {int(T0) + 5: [1000] * 100, int(T0) + 15: [1000] * 90 + [2_000_000] * 10}
    figures = failover.failover_figures(write_run(tmp_path, [ok(1)], latencies=latencies))
    assert figures["latency"]["before"]["p99_us"] == pytest.approx(1000, rel=1e-3)
    assert figures["latency"]["during"]["p99_us"] == pytest.approx(2_000_000, rel=1e-3)
    assert figures["latency"]["during"]["count"] == 100


def test_write_figures_come_from_the_final_read(tmp_path):
    final = {"acknowledged_writes": 10, "lost_acknowledged_writes": 2, "lost_examples": [{"user": "u", "item": "i"}],
             "indeterminate_writes": 3, "indeterminate_took_effect": 1, "unreadable_sessions": 0}  # fmt: skip
    figures = failover.failover_figures(write_run(tmp_path, [ok(1)], final=final))
    assert (figures["acknowledged_writes"], figures["lost_acknowledged_writes"]) == (10, 2)
    assert figures["indeterminate_writes"] == {"count": 3, "took_effect": 1}


def test_fault_periods_pair_starts_and_ends_and_keep_an_unmatched_start():
    events = [
        {"t": 10.0, "type": "fault_start", "fault": "a", "target": "x"},
        {"t": 12.0, "type": "fault_end", "fault": "a", "target": "x"},
        {"t": 20.0, "type": "fault_start", "fault": "b", "target": "y"},
    ]
    periods = failover.fault_periods(events)
    assert [(p["fault"], p["duration_s"]) for p in periods] == [("a", 2.0), ("b", None)]


def test_the_same_sentinel_event_from_three_sentinels_is_one_entry():
    events = [
        {"t": 5.0 + i * 0.1, "type": "sentinel", "channel": "+switch-master", "message": "m 1 2", "sentinel": f"s{i}"}
        for i in range(3)
    ] + [{"t": 9.0, "type": "sentinel", "channel": "+sdown", "message": "x", "sentinel": "s1"}]
    timeline = failover.sentinel_timeline(events, run_start_t=0.0)
    assert [(e["event"], e["sentinels"], e["t_rel_s"]) for e in timeline] == [
        ("+switch-master", 3, 5.0),
        ("+sdown", 1, 9.0),
    ]


def test_the_matrix_has_a_row_per_run_and_survives_a_failed_run(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    summary = {"scenario": "failover-app-kill", "valid": True, "slo": {"passed": False}, "split_brain": [],
               "faults": [{"fault": "kill-app"}],
               "failover": {"client_errors": {"502": 2, "503": 0}, "error_window_s": 0.5, "longest_gap_s": 0.1,
                            "latency": {"before": {"p99_us": 1000}, "during": {"p99_us": 5000, "max_us": 9000}},
                            "acknowledged_writes": 10, "lost_acknowledged_writes": 0,
                            "indeterminate_writes": {"count": 1, "took_effect": 1}, "time_to_recover_s": 0.6}}  # fmt: skip
    (good / "summary.json").write_text(json.dumps(summary))
    (good / "meta.json").write_text(json.dumps({"config": {"SESSION_LAYER": "hardened"}}))
    failed = tmp_path / "failed"
    failed.mkdir()
    rows = build_matrix(tmp_path / "matrix", [good, failed])["rows"]
    assert rows[0]["fault"] == "kill-app" and rows[0]["layer"] == "hardened" and rows[0]["client_errors_total"] == 2
    assert rows[1]["note"] == "no summary (run failed)"
    text = (tmp_path / "matrix" / "report.md").read_text()
    assert "| kill-app | hardened | 2 (502 x2) |" in text and "no summary (run failed)" in text
