"""Availability of a campaign (analysis/campaign_availability.py, campaign_history.py): error windows, stalls, the
answers and failures while each fault was active, and the 500s counted apart."""

from __future__ import annotations

from sessionproof.analysis.campaign_availability import availability, run_wide, status_counts
from sessionproof.analysis.campaign_faults import Injection
from sessionproof.analysis.campaign_history import Answers, error_windows, stalls


def answers_of(*rows) -> Answers:
    """rows of (t, outcome, error)."""
    return Answers(
        t=[float(t) for t, _, _ in rows],
        outcome=[o for _, o, _ in rows],
        error={i: e for i, (_, o, e) in enumerate(rows) if o != "ok"},
    )


ANSWERS = answers_of(
    (0, "ok", None), (1, "ok", None), (2, "ok", None), (3, "info", "503"), (4, "info", "500"),
    (5, "ok", None), (6, "fail", "409"), (10, "ok", None), (11, "ok", None),
)  # fmt: skip


def test_error_windows_and_stalls():
    assert [(w["start_t"], w["end_t"], w["failures"]) for w in error_windows(ANSWERS)] == [(3, 4, 2), (6, 6, 1)]
    assert stalls(ANSWERS) == [(0, 1), (1, 2), (2, 5), (5, 10), (10, 11)]


def test_availability_per_fault_counts_what_completed_while_it_was_active():
    runs = [
        Injection(0, "kill-redis-master", "kill-redis-master", "redis-1", 2.4, injected_t=2.5, end_t=4.5),
        Injection(1, "kill-app+pause-app", "kill-app", "app-1", 8.0, injected_t=8.0, end_t=9.0),
    ]
    rows = availability(runs, ANSWERS, moments_t=[4.0, 10.5], run_end_t=12, key="fault")
    assert rows["kill-redis-master"] == {
        "injections": 1, "active_s": 2.0, "answers": 2, "ok": 0, "fail": 0, "info": 2,
        "errors": {"500": 1, "503": 1}, "http_500": 1, "error_windows": 1, "longest_error_window_s": 1.0,
        "longest_stall_s": 3.0, "anomalies": 1,
    }  # fmt: skip
    # No answer completed during the app kill, but it sat inside the 5 s stall from 5 to 10.
    assert rows["kill-app"]["answers"] == 0 and rows["kill-app"]["longest_stall_s"] == 5.0
    quiet = rows["(no fault active)"]
    assert (quiet["answers"], quiet["fail"], quiet["anomalies"]) == (7, 1, 1)
    wide = run_wide(ANSWERS, runs, 12)
    assert wide["longest_stall"]["duration_s"] == 5.0 and wide["longest_stall"]["faults"] == [
        "kill-app on app-1 (step 1 kill-app+pause-app)"
    ]
    assert wide["longest_error_window"]["failures"] == 2 and wide["failed_by_error"] == {"409": 1, "500": 1, "503": 1}


def test_500s_are_counted_apart_from_other_5xx():
    timeline = [{"t": 1, "ok": True, "kind": "ok"}, {"t": 2, "ok": False, "kind": "500"},
                {"t": 3, "ok": False, "kind": "503"}, {"t": 4, "ok": False, "kind": "timeout"}]  # fmt: skip
    status = status_counts(timeline, {}, ANSWERS)
    assert (status["requests_500"], status["requests_5xx"], status["answers_500"]) == (1, 2, 1)
    assert status_counts([], {"failures_by_kind": {"500": 3}}, ANSWERS)["requests_500"] == 3
