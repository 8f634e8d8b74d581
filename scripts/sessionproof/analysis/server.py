"""summary.json's `server` block: what the app replicas, Redis and nginx reported during the run.

From raw/server.json (load/server_metrics.py): per replica its requests, 5xx and 503s, store
retries by reason, session conflicts, idempotent replays and store-unavailable answers; each
replica's replication lag at the moment of each fault; which node was master over time; and
the peak connections of every Redis node and of nginx.

Counter increases are exact at the scrape interval: a series that appears during the run (a
first retry creates it) counts from zero, and a drop (a restarted replica) is a reset.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import Any

from sessionproof.analysis import failover, partition

# The per-replica counters: each is a key of the summary and a series of raw/server.json.
COUNTERS = ("retries", "conflicts", "replays", "store_unavailable", "store_full", "master_changes")
REPLICA_KEYS = ("requests", "5xx", "503", *COUNTERS)


def counter_increase(values: list[list[float]], window_start_s: float, step_s: float) -> float:
    """How much a counter rose over its samples; a series first seen after the window began started at zero."""
    if not values:
        return 0.0
    first_t, first = values[0]
    total = first if first_t > window_start_s + 1.5 * step_s else 0.0
    previous = first
    for _, value in values[1:]:
        total += value - previous if value >= previous else value  # a drop: the replica started again
        previous = value
    return total


def per_step_increase(values: list[list[float]], window_start_s: float, step_s: float) -> list[tuple[float, float]]:
    """(t, increase since the previous sample) for each sample: a counter as a rate over time (per step)."""
    points = []
    previous = None
    for t, value in values:
        if previous is None:
            rise = value if t > window_start_s + 1.5 * step_s else 0.0
        else:
            rise = value - previous if value >= previous else value
        points.append((t, rise))
        previous = value
    return points


def value_at(values: list[list[float]], t: float) -> tuple[float, float] | None:
    """(value, age s) of the last sample at or before t; None when there is none."""
    index = bisect.bisect_right(values, t, key=lambda sample: sample[0])  # samples are in time order
    if index == 0:
        return None
    st, v = values[index - 1]
    return v, t - st


def master_timeline(series: dict, window_start_s: float) -> list[dict]:
    """Which node reported role master, from when (seconds since the run started); None while none did."""
    by_t: dict[float, list[str]] = defaultdict(list)
    times = set()
    for item in series.get("redis_role", []):
        for t, _ in item["values"]:
            times.add(t)
            if item["labels"].get("role") == "master":
                by_t[t].append(item["labels"].get("node", "?"))
    timeline: list[dict] = []
    for t in sorted(times):
        masters = sorted(set(by_t.get(t, [])))  # a restarted node has a new series (its run_id label)
        current = ", ".join(masters) if masters else None
        if not timeline or timeline[-1]["master"] != current:
            timeline.append({"t_s": round(t - window_start_s, 1), "master": current})
    return timeline


def replica_lag_at(series: dict, t: float, names: dict[str, str]) -> dict[str, Any]:
    """Each replica's bytes behind the master's offset, from the last scrape before t (INFO replication on the master)."""
    masters = {
        item["labels"].get("node")
        for item in series.get("redis_role", [])
        if item["labels"].get("role") == "master" and (found := value_at(item["values"], t)) and found[1] <= 2.0
    }
    master = next(iter(masters)) if len(masters) == 1 else None
    if master is None:
        return {"master": None, "lag_bytes": {}, "note": "no single master reported just before the fault"}
    offset = next(
        (item for item in series.get("redis_master_offset", []) if item["labels"].get("node") == master), None
    )
    master_offset = value_at(offset["values"], t) if offset else None
    lag: dict[str, int] = {}
    ages = [master_offset[1]] if master_offset else []
    for item in series.get("redis_replica_offset", []):
        labels = item["labels"]
        if labels.get("node") != master or master_offset is None:
            continue
        replica_offset = value_at(item["values"], t)
        if replica_offset is None:
            continue
        address = f"{labels.get('slave_ip')}:{labels.get('slave_port')}"
        lag[partition.node_name(address, names)] = int(master_offset[0] - replica_offset[0])
        ages.append(replica_offset[1])
    return {
        "master": master,
        "lag_bytes": dict(sorted(lag.items())),
        "sample_age_s": round(max(ages), 2) if ages else None,
    }


def summarize_server(run) -> dict[str, Any]:
    raw = run.server
    if raw is None:
        return {"available": False, "reason": "this run recorded no server-side data (raw/server.json is missing)"}
    if not raw.get("available"):
        return {"available": False, "reason": raw.get("reason", "unknown"), "prometheus_url": raw.get("prometheus_url")}
    series, step_s = raw["series"], float(raw.get("step_s", 1.0))
    start_s = float(raw["window"]["start_s"])
    replicas: dict[str, dict[str, Any]] = defaultdict(lambda: dict.fromkeys(REPLICA_KEYS, 0))
    for item in series.get("requests", []):
        node, status = item["labels"].get("node", "?"), item["labels"].get("status", "")
        rise = round(counter_increase(item["values"], start_s, step_s))
        replicas[node]["requests"] += rise
        replicas[node]["5xx"] += rise if status.startswith("5") else 0
        replicas[node]["503"] += rise if status == "503" else 0
    retries_by_reason: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name in COUNTERS:
        for item in series.get(name, []):
            node = item["labels"].get("node", "?")
            rise = round(counter_increase(item["values"], start_s, step_s))
            replicas[node][name] += rise
            if name == "retries":
                retries_by_reason[node][item["labels"].get("reason", "?")] += rise
    for node, reasons in retries_by_reason.items():
        replicas[node]["retries_by_reason"] = dict(sorted(reasons.items()))
    totals = {key: sum(r[key] for r in replicas.values()) for key in REPLICA_KEYS}
    names = partition.store_names(run.meta)
    faults = [
        {"fault": p["fault"], "target": p.get("target"), "t_s": round(p["start_t"] - run.started_unix_s, 1),
         **replica_lag_at(series, p["start_t"], names)}
        for p in failover.fault_periods(run.events)
    ]  # fmt: skip
    return {
        "available": True,
        "source": f"Prometheus at {raw.get('prometheus_url')}, {step_s:g} s scrapes over the run's window",
        "per_replica": dict(sorted(replicas.items())),
        "totals": totals,
        "replica_lag_at_faults": faults,
        "redis_master_timeline": master_timeline(series, run.started_unix_s),
        "peak_connections": {
            "redis_clients": {
                item["labels"].get("node", "?"): int(max((v for _, v in item["values"]), default=0))
                for item in sorted(series.get("redis_clients", []), key=lambda i: i["labels"].get("node", ""))
            },
            "nginx_active": int(
                max((v for item in series.get("nginx_active", []) for _, v in item["values"]), default=0)
            ),
        },
        "scrapes_down_s": _down_seconds(series.get("up", []), start_s, float(raw["window"]["end_s"]), step_s),
    }


def _down_seconds(up_series: list[dict], start_s: float, end_s: float, step_s: float) -> dict[str, float]:
    """Per target, the seconds Prometheus could not scrape it (a killed or paused node; a sample missing counts)."""
    expected = max(int((end_s - start_s) / step_s) + 1, 1)
    down: dict[str, float] = {}
    for item in up_series:
        node = item["labels"].get("node", "?")
        failed = sum(1 for _, v in item["values"] if v == 0) + max(expected - len(item["values"]), 0)
        if failed:
            down[node] = round(down.get(node, 0) + failed * step_s, 1)
    return dict(sorted(down.items()))


# ------------------------------------------------------------------ report.md
def _per_replica_table(per_replica: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| replica | requests | 5xx | 503 | store retries (by reason) | conflicts | replays | store unavailable "
        "| master changes seen |",
        "|---|--:|--:|--:|---|--:|--:|--:|--:|",
    ]
    for node, r in per_replica.items():
        reasons = ", ".join(f"{k} {v}" for k, v in (r.get("retries_by_reason") or {}).items())
        lines.append(
            f"| {node} | {r['requests']} | {r['5xx']} | {r['503']} | {r['retries']}"
            f"{f' ({reasons})' if reasons else ''} | {r['conflicts']} | {r['replays']} | {r['store_unavailable']} "
            f"| {r['master_changes']} |"
        )
    return [*lines, ""]


def _lag_lines(faults: list[dict[str, Any]]) -> list[str]:
    if not faults:
        return []
    lines = ["Replication at each fault (the last scrape before it; bytes each replica was behind the master):", ""]
    for fault in faults:
        lag = ", ".join(f"{node} {value} B" for node, value in fault["lag_bytes"].items()) or fault.get("note", "none")
        age = f", scraped {fault['sample_age_s']} s before" if fault.get("sample_age_s") is not None else ""
        lines.append(
            f"- t={fault['t_s']} s {fault['fault']} ({fault.get('target')}): master {fault['master']}; {lag}{age}"
        )
    return [*lines, ""]


def markdown_lines(server: dict[str, Any] | None) -> list[str]:
    lines = ["## Server side", ""]
    if not server or not server.get("available"):
        reason = (server or {}).get("reason", "not recorded")
        return [
            *lines,
            f"Not recorded: {reason}. The client's figures above stand on their own; with the stack's Prometheus "
            "running (`OBSERVABILITY=on`, the default of `make up`) each run records the server side.",
            "",
        ]
    timeline = "; ".join(f"{e['t_s']} s: {e['master'] or 'none'}" for e in server["redis_master_timeline"])
    peaks = server["peak_connections"]
    redis_peaks = ", ".join(f"{node} {count}" for node, count in peaks["redis_clients"].items())
    down = ", ".join(f"{node} {seconds} s" for node, seconds in server["scrapes_down_s"].items()) or "none"
    totals = server["totals"]
    return [
        *lines,
        f"What the app replicas, Redis and nginx reported ({server['source']}).",
        "",
        f"Totals: {totals['requests']} requests answered by the replicas, {totals['5xx']} 5xx ({totals['503']} x 503), "
        f"{totals['retries']} store retries, {totals['conflicts']} session conflicts, {totals['replays']} idempotent "
        f"replays, {totals['store_unavailable']} store-unavailable answers.",
        "",
        *_per_replica_table(server["per_replica"]),
        *_lag_lines(server["replica_lag_at_faults"]),
        f"Redis master over time (seconds since the run started): {timeline or 'no role reported'}.",
        "",
        f"Peak connections: Redis clients {redis_peaks or 'n/a'}; nginx active {peaks['nginx_active']}. "
        f"Seconds a target could not be scraped: {down}.",
        "",
        "![server side over time: client latency, replica requests and retries, replica lag, Redis roles]"
        "(plots/server.png)",
        "",
    ]
