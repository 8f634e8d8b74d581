"""Failover figures of an experiment: what users saw while a fault lasted.

From a loaded run (rundata.RunData): its events (fault_start / fault_end, sentinel,
split_brain), timeline (every request's end time and outcome), per-second
intended-start latency, and the checker's verdict on its history (what became of
every acknowledged write, the final read included).
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime

from sessionproof.analysis.rundata import RunData
from sessionproof.histograms import new_histogram, percentiles_us
from sessionproof.history import ANOMALY_CLASSES

ERROR_CLASSES = ("502", "503", "504", "timeout")
SENTINEL_COLLAPSE_S = 1.0
SESSIONLESS_ENDPOINTS = ("GET /ping",)


def iso_utc(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def fault_periods(events: list[dict]) -> list[dict]:
    """fault_start/fault_end pairs by (fault, target), in order, with the heal's start between them (heal_t);
    an unmatched start has no end."""
    periods: list[dict] = []
    open_periods: dict[tuple, dict] = {}
    for event in sorted(events, key=lambda e: e["t"]):  # stable: same-time events keep file order
        key = (event.get("fault"), event.get("target"))
        if event.get("type") == "fault_start":
            period = {"fault": key[0], "target": key[1], "start_t": event["t"], "heal_t": None, "end_t": None}
            open_periods[key] = period
            periods.append(period)
        elif event.get("type") == "heal_start" and key in open_periods:
            open_periods[key]["heal_t"] = event["t"]
        elif event.get("type") == "fault_end" and key in open_periods:
            open_periods.pop(key)["end_t"] = event["t"]
    for period in periods:
        period["started_at"] = iso_utc(period["start_t"])
        period["heal_started_at"] = iso_utc(period["heal_t"])
        period["ended_at"] = iso_utc(period["end_t"])
        period["duration_s"] = None if period["end_t"] is None else round(period["end_t"] - period["start_t"], 3)
    return periods


def sentinel_timeline(events: list[dict], run_start_t: float) -> list[dict]:
    """Sentinel events relative to the run start; the same event seen by several Sentinels within 1 s is one entry."""
    timeline: list[dict] = []
    last_seen: dict[tuple, dict] = {}
    for event in sorted((e for e in events if e.get("type") == "sentinel"), key=lambda e: e["t"]):
        key = (event.get("channel"), event.get("message"))
        previous = last_seen.get(key)
        if previous is not None and event["t"] - previous["_t"] <= SENTINEL_COLLAPSE_S:
            previous["sentinels"] += 1
            continue
        entry = {
            "_t": event["t"],
            "t_rel_s": round(event["t"] - run_start_t, 3),
            "event": event.get("channel"),
            "detail": event.get("message"),
            "sentinel": event.get("sentinel"),
            "sentinels": 1,
        }
        last_seen[key] = entry
        timeline.append(entry)
    for entry in timeline:
        del entry["_t"]
    return timeline


def split_brain_moments(events: list[dict], run_start_t: float) -> list[dict]:
    return [
        {"t_rel_s": round(e["t"] - run_start_t, 3), "masters": e.get("masters", [])}
        for e in sorted(events, key=lambda e: e["t"])
        if e.get("type") == "split_brain"
    ]


def _error_class(kind: str) -> str:
    return kind if kind in ERROR_CLASSES else "other"


def intended_by_second(histogram_lines: list[dict]) -> dict[int, list[str]]:
    """The encoded intended-start histograms of each second (raw/histograms.jsonl's lines), for latency_between."""
    by_second: dict[int, list[str]] = {}
    for line in histogram_lines:
        if line["kind"] == "intended":
            by_second.setdefault(int(line["t"]), []).append(line["hist"])
    return by_second


def latency_between(intended_by_second: dict[int, list[str]], first_s: int, last_s: int) -> dict:
    """Intended-start latency over the seconds first_s..last_s (Unix), every endpoint merged."""
    merged = new_histogram()
    for t, encoded in intended_by_second.items():
        if first_s <= t <= last_s:
            for text in encoded:
                merged.decode_and_add(text)
    p = percentiles_us(merged)
    count = p["count"]
    return {"p99_us": p["p99"] if count else None, "max_us": p["max"] if count else None, "count": count}


def failover_figures(run: RunData) -> dict | None:
    """What users saw while the run's faults lasted; None for a run without a fault_start event."""
    periods = fault_periods(run.events)
    if not periods:
        return None
    fault_start_t = min(p["start_t"] for p in periods)
    ends = [p["end_t"] for p in periods if p["end_t"] is not None]
    fault_end_t = max(ends) if ends else None
    timeline = run.timeline
    error_ts = [r["t"] for r in timeline if not r["ok"]]
    # /ping never touches the session store: its successes say nothing about whether sessions work.
    ok_ts = [r["t"] for r in timeline if r["ok"] and r["endpoint"] not in SESSIONLESS_ENDPOINTS]
    # A fault never healed lasts, for latency, until the last request the run saw.
    last_t = fault_end_t if fault_end_t is not None else max([fault_start_t, *ok_ts, *error_ts])
    return {
        "client_errors": _client_errors(timeline, run.counters),
        "error_window_s": round(error_ts[-1] - error_ts[0], 3) if error_ts else 0.0,
        "longest_gap_s": _longest_gap_s(ok_ts, fault_start_t, fault_end_t),
        "latency": {
            "before": latency_between(run.intended_by_second, 0, int(fault_start_t) - 1),
            "during": latency_between(run.intended_by_second, int(fault_start_t), int(last_t)),
        },
        **write_figures(run),
        "time_to_recover_s": _time_to_recover_s(ok_ts, error_ts, fault_start_t),
    }


# An acknowledged write absent at the end, either way: the classes of ANOMALY_CLASSES that lose a write.
LOST_CLASSES = tuple(name for name in ANOMALY_CLASSES if name.startswith("lost_"))


def write_figures(run: RunData) -> dict:
    """Acknowledged writes and what became of them: the checker's verdict on the history (a run without one:
    its final read's figures, or None for each when it had no read-back either)."""
    if run.verdict is None:
        return _legacy_write_figures(run.legacy_final_read)
    figures = run.verdict.figures
    return {
        "acknowledged_writes": figures["acknowledged_writes"],
        "lost_acknowledged_writes": sum(figures[name] for name in LOST_CLASSES),
        "lost_examples": [
            {"session": e["session"], "item": e["item"], "class": e["class"]}
            for e in run.verdict.examples
            if e["class"] in LOST_CLASSES
        ],
        "indeterminate_writes": {
            "count": figures["indeterminate_writes"],
            "took_effect": figures["indeterminate_took_effect"],
        },
        "unread_writes": figures["unread_writes"],
    }


def _legacy_write_figures(final: dict) -> dict:
    return {
        "acknowledged_writes": final.get("acknowledged_writes"),
        "lost_acknowledged_writes": final.get("lost_acknowledged_writes"),
        "lost_examples": final.get("lost_examples", []),
        "indeterminate_writes": {
            "count": final.get("indeterminate_writes"),
            "took_effect": final.get("indeterminate_took_effect"),
        },
        "unread_writes": final.get("unreadable_sessions"),
    }


def _client_errors(timeline: list[dict], counters: dict) -> dict[str, int]:
    errors = Counter(dict.fromkeys((*ERROR_CLASSES, "other"), 0))
    if timeline:
        errors.update(_error_class(r["kind"]) for r in timeline if not r["ok"])
        return dict(errors)
    # Runs recorded before timeline.jsonl existed still have the totals, only not their times.
    for kind, count in (counters.get("failures_by_kind") or {}).items():
        errors[_error_class(kind)] += int(count)
    return dict(errors)


def _longest_gap_s(ok_ts: list[float], start_t: float, end_t: float | None) -> float:
    """Longest time without a successful response, over the fault period (bounded by the successes around it)."""
    end_t = end_t if end_t is not None else (ok_ts[-1] if ok_ts else start_t)
    before = [t for t in ok_ts if t < start_t]
    inside = [t for t in ok_ts if start_t <= t <= end_t]
    after = [t for t in ok_ts if t > end_t]
    points = ([before[-1]] if before else [start_t]) + inside + ([after[0]] if after else [end_t])
    return round(max((b - a for a, b in itertools.pairwise(points)), default=0.0), 3)


def _time_to_recover_s(ok_ts: list[float], error_ts: list[float], fault_start_t: float) -> float | None:
    """Fault start to the first success after the last error; None when no success followed it."""
    errors_after = [t for t in error_ts if t >= fault_start_t]
    if not errors_after:
        return 0.0
    last_error_t = errors_after[-1]
    recovered_t = next((t for t in ok_ts if t > last_error_t), None)
    # Never recovered within the run: a number here would claim a recovery nobody saw.
    return None if recovered_t is None else round(recovered_t - fault_start_t, 3)
