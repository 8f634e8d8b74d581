"""Run folders as the load harness writes them, made from synthetic data for the analysis tests."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from hdrh.histogram import HdrHistogram

from sessionproof.analysis.rundata import load_run
from sessionproof.analysis.summary import summarize

STARTED_AT = "2026-11-23T12:00:00Z"
T0_S = int(datetime.fromisoformat(STARTED_AT).timestamp())
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def encoded(values) -> str:
    histogram = HdrHistogram(1, 60_000_000, 3)
    for value in values:
        histogram.record_value(value)
    return histogram.encode().decode("ascii")


def hist_line(t: int, endpoint: str, values, kind: str = "service") -> dict:
    return {"t": t, "endpoint": endpoint, "kind": kind, "hist": encoded(values)}


def write_jsonl(path: Path, records) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def make_run(
    run_dir: Path,
    histograms=(),
    outcomes=None,
    *,
    slo=(),
    cpu_percent: float = 40.0,
    duration_s: float = 30.0,
    served_by=None,
    correctness=None,
    events=None,
) -> Path:
    """A run folder as the load harness writes it; outcomes default to 100 ok requests at second 0."""
    (run_dir / "raw").mkdir(parents=True)
    meta = {
        "scenario": "bounce",
        "started_at": STARTED_AT,
        "ended_at": "2026-11-23T12:00:30Z",
        "duration_s": duration_s,
        "stack": "local",
        "scenario_config": {"slo": list(slo)},
        "git_sha": "abc1234",
        "command": "make load SCENARIO=bounce",
    }
    (run_dir / "meta.json").write_text(json.dumps(meta))
    write_jsonl(run_dir / "raw" / "histograms.jsonl", histograms)
    if outcomes is None:
        outcomes = [{"t": T0_S, "endpoint": "GET /cart", "ok": 100, "failed": 0}]
    write_jsonl(run_dir / "raw" / "outcomes.jsonl", outcomes)
    counters = {
        "correctness": correctness
        or {
            "checks": 50,
            "lost_writes": 0,
            "stale_reads": 0,
            "sessions_lost": 0,
            "foreign_sessions": 0,
            "lost_updates": 0,
        },
        "served_by": {"app-1": 60, "app-2": 40} if served_by is None else served_by,
        "cpu": {"max_percent": cpu_percent, "samples": 30},
        "failures_by_kind": {},
    }
    (run_dir / "raw" / "counters.json").write_text(json.dumps(counters))
    if events is not None:
        write_jsonl(run_dir / "raw" / "events.jsonl", events)
    return run_dir


def summary_of(run_dir: Path) -> dict:
    return summarize(load_run(run_dir))


CART_AND_PING = [
    hist_line(T0_S, "GET /cart", [5000] * 100),
    hist_line(T0_S, "GET /ping", [1000] * 100),
    hist_line(T0_S, "GET /cart", [9000] * 100, kind="intended"),
    hist_line(T0_S, "GET /ping", [2000] * 100, kind="intended"),
]


FAULT_EVENTS = [
    {"t": T0_S + 10, "type": "fault_start", "fault": "kill-redis-master", "target": "redis-1"},
    *(
        {
            "t": T0_S + 12 + i * 0.2,
            "type": "sentinel",
            "channel": "+switch-master",
            "message": "sessionproof 127.0.0.1 6380 127.0.0.1 6381",
            "sentinel": f"sentinel-{i + 1}",
        }
        for i in range(3)
    ),
    {"t": T0_S + 13, "type": "split_brain", "masters": ["redis-1", "redis-2"]},
    {"t": T0_S + 18, "type": "heal_start", "fault": "kill-redis-master", "target": "redis-1"},
    {"t": T0_S + 20, "type": "fault_end", "fault": "kill-redis-master", "target": "redis-1"},
]
FINAL_READ = {
    "sessions": 20,
    "acknowledged_writes": 500,
    "lost_acknowledged_writes": 2,
    "lost_examples": [{"user": "user-7", "item": "plum-3"}],
    "indeterminate_writes": 4,
    "indeterminate_took_effect": 1,
    "unreadable_sessions": 0,
}


def make_failover_run(run_dir: Path, slo=()) -> Path:
    """A run with a Redis master killed at +10 s and healed at +20 s; users saw 503s from +11 to +13 s."""
    make_run(run_dir, CART_AND_PING, slo=slo, events=FAULT_EVENTS)
    timeline = [
        {"t": T0_S + t, "endpoint": "GET /cart", "ok": kind == "ok", "kind": kind}
        for t, kind in ((9.5, "ok"), (11, "503"), (12, "503"), (13, "502"), (14, "ok"), (21, "ok"))
    ]
    write_jsonl(run_dir / "raw" / "timeline.jsonl", timeline)
    (run_dir / "raw" / "final_read.json").write_text(json.dumps(FINAL_READ))
    return run_dir


def history_lines(final_cart=("ip1-1", "ip1-2")) -> list[dict]:
    """A bounce user's history in the run's format: login, two adds, a read, then the final read (4 answers
    judged, no anomaly with the default final cart)."""
    from sessionproof.history import FINAL_READ_PROCESS
    from sessionproof.history.files import operation

    t = iter(range(1000, 100_000, 1000))
    user, sid = "bounce-p1-1", "s" * 43
    lines = [
        operation("invoke", "login", "p1", "bounce", next(t), session=None, user=user),
        operation("ok", "login", "p1", "bounce", next(t), session=sid, user=user, cart=[]),
    ]
    for n, item in enumerate(("ip1-1", "ip1-2"), 1):
        key = f"key-{n}"
        lines.append(operation("invoke", "add", "p1", "bounce", next(t), session=sid, item=item, key=key))
        lines.append(
            operation("ok", "add", "p1", "bounce", next(t), session=sid, item=item, key=key, user=user,
                      cart=["ip1-1", "ip1-2"][:n], store="127.0.0.1:6379")
        )  # fmt: skip
    lines.append(operation("invoke", "read", "p1", "bounce", next(t), session=sid))
    lines.append(operation("ok", "read", "p1", "bounce", next(t), session=sid, user=user, cart=["ip1-1", "ip1-2"]))
    lines.append(operation("invoke", "read", FINAL_READ_PROCESS, "final", next(t), session=sid))
    lines.append(
        operation("ok", "read", FINAL_READ_PROCESS, "final", next(t), session=sid, user=user, cart=list(final_cart))
    )
    return lines
