"""Availability of a campaign per fault kind and per combination: how long each was active, the answers completed
meanwhile and how many failed, the error windows and stalls it touched, and the anomalies seen during it.

An error window is a run of failed answers (fail: a 4xx; info: a 5xx, timeout or lost connection) with no ok
answer between; a stall is the time between two ok answers back to back. A window or stall counts for a fault
when it meets the fault's active time; anomalies count for it when the checker saw them during it.
"""

from __future__ import annotations

import bisect
from collections import Counter

from sessionproof.analysis.campaign_faults import Injection, active_during, covers, injection_text, length, merge
from sessionproof.analysis.campaign_history import Answers, error_windows, stalls, window_figures

NO_FAULT = "(no fault active)"
HTTP_500 = "500"


class Spans:
    """Disjoint spans in time order, with their ends ready for bisection."""

    def __init__(self, spans: list[tuple[float, float]]) -> None:
        self.spans, self.ends = spans, [end for _, end in spans]


def _spans_meeting(given: Spans, merged: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The spans that meet the union."""
    spans, ends = given.spans, given.ends
    met = []
    for start, end in merged:
        lo = bisect.bisect_left(ends, start)  # the first span ending at or after the interval's start
        while lo < len(spans) and spans[lo][0] <= end:
            met.append(spans[lo])
            lo += 1
    return sorted(set(met))


def _row(answers: Answers, merged, windows: Spans, stall_spans: Spans, moments: list[float], count: int) -> dict:
    met_windows = _spans_meeting(windows, merged)
    met_stalls = _spans_meeting(stall_spans, merged)
    figures = window_figures(answers, merged)
    return {
        "injections": count,
        "active_s": round(length(merged), 3),
        **figures,
        "http_500": figures["errors"].get(HTTP_500, 0),
        "error_windows": len(met_windows),
        "longest_error_window_s": round(max((b - a for a, b in met_windows), default=0.0), 3),
        "longest_stall_s": round(max((b - a for a, b in met_stalls), default=0.0), 3),
        "anomalies": sum(covers(merged, t) for t in moments),
    }


def availability(
    runs: list[Injection], answers: Answers, moments_t: list[float], run_end_t: float, key: str
) -> dict[str, dict]:
    """One row per fault kind (key "fault") or combination (key "combination"), in order of first injection,
    then the time no fault was active."""
    windows = Spans([(w["start_t"], w["end_t"]) for w in error_windows(answers)])
    stall_spans = Spans(stalls(answers))
    groups: dict[str, list[Injection]] = {}
    for injection in runs:
        groups.setdefault(getattr(injection, key), []).append(injection)
    rows = {}
    for name, members in groups.items():
        merged = merge([(i.active_from, i.active_to(run_end_t)) for i in members])
        rows[name] = _row(answers, merged, windows, stall_spans, moments_t, len(members))
    if answers.t:
        faulted = merge([(i.active_from, i.active_to(run_end_t)) for i in runs])
        rows[NO_FAULT] = _row(answers, _complement(faulted, answers.t[0], answers.t[-1]), windows, stall_spans,
                              moments_t, 0)  # fmt: skip
    return rows


def _complement(merged: list[tuple[float, float]], first: float, last: float) -> list[tuple[float, float]]:
    gaps, at = [], first
    for start, end in merged:
        if start > at:
            gaps.append((at, min(start, last)))
        at = max(at, end)
    if at < last:
        gaps.append((at, last))
    return [(a, b) for a, b in gaps if b > a]


def longest(spans: list[tuple[float, float]], runs: list[Injection], run_end_t: float, **extra) -> dict | None:
    """The longest span, with the faults active during it."""
    if not spans:
        return None
    start, end = max(spans, key=lambda span: span[1] - span[0])
    return {
        "start_t": start,
        "end_t": end,
        "duration_s": round(end - start, 3),
        "faults": [injection_text(i) for i in active_during(runs, start, end, run_end_t)],
        **extra,
    }


def run_wide(answers: Answers, runs: list[Injection], run_end_t: float) -> dict:
    """The error windows (how many, the longest), the longest stall, and the failed answers by error."""
    windows = error_windows(answers)
    worst = max(windows, key=lambda w: (w["end_t"] - w["start_t"], w["failures"]), default=None)
    return {
        "error_windows": len(windows),
        "longest_error_window": None
        if worst is None
        else longest([(worst["start_t"], worst["end_t"])], runs, run_end_t, failures=worst["failures"]),
        "longest_stall": longest(stalls(answers), runs, run_end_t),
        "failed_by_error": dict(sorted(Counter(answers.error.values()).items())),
    }


def status_counts(timeline: list[dict], counters: dict, answers: Answers) -> dict:
    """What failed by kind (an HTTP status, timeout, connection) in the timeline (every request, /ping included)
    and in the history (the judged operations), and the 500s of each, counted explicitly."""
    if timeline:
        every = Counter(str(row["kind"]) for row in timeline if not row["ok"])
        source = "timeline"
    else:  # runs recorded before timeline.jsonl existed kept the totals only
        every = Counter({str(k): int(v) for k, v in (counters.get("failures_by_kind") or {}).items()})
        source = "counters"
    judged = Counter(answers.error.values())
    return {
        "requests_failed_by_kind": dict(sorted(every.items())),
        "requests_source": source,
        "requests_5xx": sum(v for k, v in every.items() if k.isdigit() and k.startswith("5")),
        "requests_500": every.get(HTTP_500, 0),
        "answers_500": judged.get(HTTP_500, 0),
    }


def lost_by_fault(lost_items: list[dict], runs: list[Injection], started_unix_s: float, run_end_t: float) -> dict:
    """The lost writes by the fault kinds active when each was acknowledged (an item known only from an answer
    has no acknowledgement: 'unknown')."""
    counts: Counter = Counter()
    for lost in lost_items:
        if lost.get("acked_us") is None:
            counts["(acknowledgement unknown)"] += 1
            continue
        t = started_unix_s + lost["acked_us"] / 1_000_000
        kinds = sorted({i.fault for i in active_during(runs, t, t, run_end_t)})
        counts[" + ".join(kinds) if kinds else NO_FAULT] += 1
    return dict(counts.most_common())


def steps_with_loss(steps: list[dict], runs: list[Injection], lost_items: list[dict], started_unix_s: float,
                    run_end_t: float) -> int:  # fmt: skip
    """How many steps had an acknowledged write, later lost, acknowledged while one of their faults was active."""
    acked = [started_unix_s + lost["acked_us"] / 1_000_000 for lost in lost_items if lost.get("acked_us") is not None]
    count = 0
    for step in steps:
        merged = merge([(runs[i].active_from, runs[i].active_to(run_end_t)) for i in step["faults"]])
        count += any(covers(merged, t) for t in acked)
    return count
