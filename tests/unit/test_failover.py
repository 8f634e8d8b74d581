"""Failover figures on synthetic experiment folders: every figure checked to the exact value."""

from __future__ import annotations

import json

import pytest
from run_folders import history_lines

from sessionproof.analysis import failover
from sessionproof.analysis.rundata import load_run
from sessionproof.histograms import new_histogram
from sessionproof.runfiles import RunFileError

T0 = 1_000_000.0  # fault starts at T0 + 10, ends at T0 + 20
FAULT = "kill-redis-master"
ONE_FAULT = [
    {"t": T0 + 10, "type": "fault_start", "fault": FAULT, "target": "redis-1"},
    {"t": T0 + 20, "type": "fault_end", "fault": FAULT, "target": "redis-1"},
]


def write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def write_run(run_dir, timeline=None, events=ONE_FAULT, final=None, latencies=None, counters=None, history=None):
    """A run folder with the raw files failover.py's figures come from, loaded (rundata.load_run) as the report
    loads it; latencies maps a second to values in µs."""
    raw = run_dir / "raw"
    raw.mkdir(parents=True)
    (run_dir / "meta.json").write_text(json.dumps({"started_at": "1970-01-12T13:46:40Z", "duration_s": 60}))
    (raw / "outcomes.jsonl").write_text("")
    (raw / "counters.json").write_text(json.dumps(counters or {}))
    write_jsonl(raw / "events.jsonl", events)
    if timeline is not None:
        write_jsonl(
            raw / "timeline.jsonl", [{"t": t, "endpoint": ep, "ok": ok, "kind": k} for t, ep, ok, k in timeline]
        )
    lines = []
    for second, values in (latencies or {}).items():
        histogram = new_histogram()
        for value in values:
            histogram.record_value(value)
        lines.append({"t": second, "endpoint": "GET /cart", "kind": "intended", "hist": histogram.encode().decode()})
    write_jsonl(raw / "histograms.jsonl", lines)
    if final is not None:
        (raw / "final_read.json").write_text(json.dumps(final))
    if history is not None:
        write_jsonl(raw / "history.jsonl", history)
    return load_run(run_dir)


def ok(t, endpoint="GET /cart"):
    return (T0 + t, endpoint, True, "ok")


def err(t, kind):
    return (T0 + t, "POST /cart/[item]", False, kind)


def test_no_fault_means_no_failover_figures(tmp_path):
    assert failover.failover_figures(write_run(tmp_path / "a", [ok(1)], events=[])) is None
    other_events = [{"t": T0, "type": "mismatch"}, {"t": T0 + 1, "type": "fault_end", "fault": FAULT, "target": "x"}]
    assert failover.failover_figures(write_run(tmp_path / "b", [ok(1)], events=other_events)) is None
    (tmp_path / "c" / "raw").mkdir(parents=True)  # a plain load run: no events.jsonl at all


def test_errors_are_classed_windowed_and_timed_to_recovery(tmp_path):
    timeline = [ok(9), err(11, "503"), err(12, "503"), err(12.5, "502"), err(13, "connection"), err(13.5, "409")]
    timeline += [err(13.75, "504"), err(13.75, "timeout"), ok(14), ok(15)]
    figures = failover.failover_figures(write_run(tmp_path, timeline))
    assert figures["client_errors"] == {"502": 1, "503": 2, "504": 1, "timeout": 1, "other": 2}
    assert figures["error_window_s"] == 2.75  # 11 -> 13.75
    assert figures["time_to_recover_s"] == 4.0  # fault start (10) to the first success after the last error (14)


def test_no_errors_means_a_zero_window_and_no_recovery_time(tmp_path):
    figures = failover.failover_figures(write_run(tmp_path, [ok(9), ok(11), ok(19)]))
    assert figures["client_errors"] == {"502": 0, "503": 0, "504": 0, "timeout": 0, "other": 0}
    assert (figures["error_window_s"], figures["time_to_recover_s"]) == (0.0, 0.0)


def test_errors_only_before_the_fault_need_no_recovery(tmp_path):
    figures = failover.failover_figures(write_run(tmp_path, [err(2, "502"), ok(3), ok(12)]))
    assert (figures["error_window_s"], figures["time_to_recover_s"]) == (0.0, 0.0)


def test_a_run_that_never_recovers_has_no_recovery_time(tmp_path):
    figures = failover.failover_figures(write_run(tmp_path, [ok(9), err(11, "503"), ok(12, "GET /ping")]))
    assert figures["time_to_recover_s"] is None  # /ping never touches a session: it proves nothing


def test_without_a_timeline_errors_come_from_the_counters(tmp_path):
    counters = {"failures_by_kind": {"503": 4, "502": 1, "connection": 2, "bad_body": 1}}
    figures = failover.failover_figures(write_run(tmp_path, timeline=None, counters=counters))
    assert figures["client_errors"] == {"502": 1, "503": 4, "504": 0, "timeout": 0, "other": 3}
    assert (figures["error_window_s"], figures["longest_gap_s"], figures["time_to_recover_s"]) == (0.0, 10.0, 0.0)


def test_the_longest_gap_counts_session_requests_only_within_the_fault(tmp_path):
    # 1 -> 9 (8 s) and 21 -> 40 (19 s) lie outside the fault; /ping at 12 does not count.
    timeline = [ok(1), ok(9), ok(12, "GET /ping"), ok(13), ok(19), ok(21), ok(40)]
    assert failover.failover_figures(write_run(tmp_path, timeline))["longest_gap_s"] == 6.0  # 13 -> 19


def test_the_longest_gap_is_bounded_by_the_successes_around_the_fault(tmp_path):
    timeline = [ok(1), ok(8), err(12, "503"), ok(25), ok(26)]  # nothing succeeded from 8 until 25
    assert failover.failover_figures(write_run(tmp_path / "a", timeline))["longest_gap_s"] == 17.0
    # No success before or after: the fault's own start and end bound it.
    assert failover.failover_figures(write_run(tmp_path / "b", [ok(16)]))["longest_gap_s"] == 6.0


def test_latency_before_and_during_the_fault(tmp_path):
    s0 = int(T0)
    latencies = {
        s0 + 5: [1000] * 100,
        s0 + 9: [1200] * 100,  # the last second before the fault's second
        s0 + 10: [1500] * 10,  # the fault starts in this second: "during"
        s0 + 20: [1900] * 10,  # healed in this second: still "during"
        s0 + 21: [2047] * 10,  # after: neither
    }
    figures = failover.failover_figures(write_run(tmp_path, [ok(1)], latencies=latencies))
    assert figures["latency"] == {
        "before": {"p99_us": 1200, "max_us": 1200, "count": 200},
        "during": {"p99_us": 1900, "max_us": 1900, "count": 20},
    }


def test_latency_without_samples_is_null(tmp_path):
    figures = failover.failover_figures(write_run(tmp_path, [ok(1)]))
    assert figures["latency"]["before"] == figures["latency"]["during"] == {"p99_us": None, "max_us": None, "count": 0}


def test_write_figures_of_a_run_without_a_history_come_from_its_final_read(tmp_path):
    final = {
        "sessions": 12,
        "acknowledged_writes": 10,
        "lost_acknowledged_writes": 2,
        "lost_examples": [{"user": "u1", "item": "apple"}, {"user": "u2", "item": "pear"}],
        "indeterminate_writes": 3,
        "indeterminate_took_effect": 1,
        "unreadable_sessions": 0,
    }
    figures = failover.failover_figures(write_run(tmp_path / "a", [ok(1)], final=final))
    assert (figures["acknowledged_writes"], figures["lost_acknowledged_writes"]) == (10, 2)
    assert figures["lost_examples"] == final["lost_examples"]
    assert figures["indeterminate_writes"] == {"count": 3, "took_effect": 1}
    assert figures["unread_writes"] == 0
    missing = failover.failover_figures(write_run(tmp_path / "b", [ok(1)]))
    assert (missing["acknowledged_writes"], missing["lost_acknowledged_writes"], missing["lost_examples"]) == (
        None,
        None,
        [],
    )
    assert missing["indeterminate_writes"] == {"count": None, "took_effect": None}


def test_fault_periods_pair_starts_and_ends_by_fault_and_target():
    events = [
        {"t": 10.0, "type": "fault_start", "fault": "kill-app", "target": "app-1"},
        {"t": 11.0, "type": "fault_start", "fault": "kill-app", "target": "app-2"},
        {"t": 12.5, "type": "fault_end", "fault": "kill-app", "target": "app-1"},
        {"t": 13.0, "type": "sentinel", "channel": "+sdown", "message": "x"},
        {"t": 14.0, "type": "fault_end", "fault": "kill-app", "target": "app-2"},
        {"t": 20.0, "type": "fault_start", "fault": "pause-app", "target": "app-3"},  # never healed
    ]
    periods = failover.fault_periods(events)
    assert [(p["target"], p["start_t"], p["end_t"], p["duration_s"]) for p in periods] == [
        ("app-1", 10.0, 12.5, 2.5),
        ("app-2", 11.0, 14.0, 3.0),
        ("app-3", 20.0, None, None),
    ]
    assert (periods[0]["started_at"], periods[0]["ended_at"]) == (
        "1970-01-01T00:00:10.000Z",
        "1970-01-01T00:00:12.500Z",
    )
    assert periods[2]["ended_at"] is None


def test_the_same_sentinel_event_from_three_sentinels_is_one_entry():
    switch = {"type": "sentinel", "channel": "+switch-master", "message": "sessionproof 127.0.0.1 6380 127.0.0.1 6381"}
    events = [switch | {"t": 105.0 + i * 0.3, "sentinel": f"sentinel-{i + 1}"} for i in range(3)]
    events += [
        {"t": 104.0, "type": "sentinel", "channel": "+sdown", "message": "master x", "sentinel": "sentinel-2"},
        switch | {"t": 107.0, "sentinel": "sentinel-1"},  # 2 s after the first: a new event
        {"t": 105.1, "type": "split_brain", "masters": ["redis-1", "redis-2"]},  # not a Sentinel event
    ]
    timeline = failover.sentinel_timeline(events, run_start_t=100.0)
    assert [(e["t_rel_s"], e["event"], e["sentinel"], e["sentinels"]) for e in timeline] == [
        (4.0, "+sdown", "sentinel-2", 1),
        (5.0, "+switch-master", "sentinel-1", 3),
        (7.0, "+switch-master", "sentinel-1", 1),
    ]
    assert timeline[1]["detail"] == switch["message"]


def test_split_brain_moments_are_relative_to_the_run_start():
    events = [
        {"t": 112.5, "type": "split_brain", "masters": ["redis-2", "redis-3"]},
        {"t": 110.25, "type": "split_brain", "masters": ["redis-1", "redis-2"]},
        {"t": 111.0, "type": "mismatch"},
    ]
    assert failover.split_brain_moments(events, run_start_t=100.0) == [
        {"t_rel_s": 10.25, "masters": ["redis-1", "redis-2"]},
        {"t_rel_s": 12.5, "masters": ["redis-2", "redis-3"]},
    ]


def test_a_damaged_timeline_is_named_with_its_line(tmp_path):
    run_dir = write_run(tmp_path, [ok(1)]).run_dir
    with (run_dir / "raw" / "timeline.jsonl").open("a") as timeline:
        timeline.write('{"t": 5, "endpoint"\n')
    with pytest.raises(RunFileError, match=r"timeline.jsonl:2 is not valid JSON"):
        load_run(run_dir)


def test_write_figures_are_the_checkers_verdict_on_the_history(tmp_path):
    final = {"acknowledged_writes": 10, "lost_acknowledged_writes": 7}  # a history wins over a final_read.json
    figures = failover.failover_figures(
        write_run(tmp_path, [ok(1)], final=final, history=history_lines(final_cart=["ip1-2"]))
    )
    assert (figures["acknowledged_writes"], figures["lost_acknowledged_writes"]) == (2, 1)
    assert figures["lost_examples"] == [{"session": "s" * 12, "item": "ip1-1", "class": "lost_writes"}]
    assert figures["unread_writes"] == 0 and figures["indeterminate_writes"] == {"count": 0, "took_effect": 0}
