"""The summary of a run (summary.json): latency tables, session tax, correctness, validity, failover keys and SLOs."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from sessionproof.analysis import failover, partition
from sessionproof.analysis.rundata import SERVER_KINDS, LatencyData, RunData
from sessionproof.analysis.server import summarize_server
from sessionproof.histograms import percentiles_us
from sessionproof.history import ANOMALY_CLASSES, CORRECTNESS_FIGURES
from sessionproof.validity import (
    INVALID_RUN_EXIT_CODE,
    MAX_LOOP_LAG_P99_US,
    MAX_TRUSTED_CPU_PERCENT,
    MIN_VALID_DURATION_S,
)


def _latency_table(latency: LatencyData, kind: str) -> dict[str, dict[str, int | None]]:
    endpoints = sorted(endpoint for k, endpoint in latency.totals if k == kind)
    return {endpoint: percentiles_us(latency.totals[(kind, endpoint)]) for endpoint in endpoints}


def decomposition(service: dict[str, dict], latency: LatencyData) -> dict[str, dict[str, int]]:
    """Per endpoint at p50: the client's time, the app's own time and its store time (from Server-Timing), and
    what is outside the app (client minus app: network, nginx, the generator). Endpoints the app timed only."""
    app, store = _latency_table(latency, "app"), _latency_table(latency, "store")
    parts = {}
    for endpoint, client in service.items():
        if endpoint in app and client.get("p50") is not None:
            parts[endpoint] = {
                "client_p50": client["p50"],
                "app_p50": app[endpoint]["p50"],
                "store_p50": (store.get(endpoint) or {}).get("p50"),
                "outside_app_p50": client["p50"] - app[endpoint]["p50"],
            }
    return parts


def session_tax_us(service: dict[str, dict], intended: dict[str, dict]) -> dict[str, Any] | None:
    """What a session costs: GET /cart (loads the session from Redis) minus GET /ping (no session)."""
    tax = {kind: _tax(table) for kind, table in (("service", service), ("intended", intended))}
    return tax if any(tax.values()) else None


def _tax(table: dict[str, dict]) -> dict[str, int] | None:
    cart, ping = table.get("GET /cart"), table.get("GET /ping")
    if not cart or not ping:
        return None
    return {"p50": cart["p50"] - ping["p50"], "p99": cart["p99"] - ping["p99"]}


def _correctness(counters: dict[str, Any]) -> dict[str, int]:
    given = counters.get("correctness") or {}
    # Every known figure is always present so SLO paths resolve; one a run recorded before it existed reads
    # as 0. Classes this module does not know are kept, never dropped. `anomalies`: every class together.
    extra = sorted(name for name in given if name not in CORRECTNESS_FIGURES)
    figures = {name: int(given.get(name, 0)) for name in [*CORRECTNESS_FIGURES, *extra]}
    return {**figures, "anomalies": sum(v for k, v in figures.items() if k in ANOMALY_CLASSES or k in extra)}


def anomaly_text(correctness: dict[str, int]) -> str:
    """'no anomaly in N checks', or 'ANOMALIES: lost_writes 3, ...': what the checker found, in one phrase."""
    found = {name: count for name, count in correctness.items() if name in ANOMALY_CLASSES and count}
    if not found:
        return f"no anomaly in {correctness.get('checks', 0)} checks"
    return "ANOMALIES: " + ", ".join(f"{name} {count}" for name, count in found.items())


def invalid_reasons(
    duration_s: float, total_requests: int, cpu: dict[str, Any], loop_lag_us: dict[str, Any] | None = None
) -> list[str]:
    """Why the run's numbers cannot be trusted; empty when they can."""
    reasons = []
    lag_p99_us = (loop_lag_us or {}).get("p99")
    if lag_p99_us is not None and (loop_lag_us or {}).get("count") and lag_p99_us > MAX_LOOP_LAG_P99_US:
        reasons.append(
            f"the load generator's event loop woke {lag_p99_us / 1000:.1f} ms late at p99 "
            f"(>{MAX_LOOP_LAG_P99_US / 1000:g} ms): that wait is in every latency it measured; use fewer users "
            "or --processes"
        )
    cpu_percent = cpu.get("max_percent")
    if isinstance(cpu_percent, int | float) and cpu_percent > MAX_TRUSTED_CPU_PERCENT:
        reasons.append(
            f"load generator CPU reached {cpu_percent:.0f}% (>{MAX_TRUSTED_CPU_PERCENT:.0f}%): "
            "its timings are unreliable; use fewer users or --processes"
        )
    if total_requests == 0:
        reasons.append("no requests were recorded: the load generator sent nothing (is the stack up?)")
    if duration_s < MIN_VALID_DURATION_S:
        reasons.append(f"the run lasted {duration_s:g} s (<{MIN_VALID_DURATION_S:g} s): too short to measure anything")
    return reasons


def validity_line(summary: dict[str, Any]) -> str:
    """The first line of every terminal summary: valid, with the generator's figures against its bounds, or
    INVALID with every reason and the exit code it gets (report.exit_code)."""
    if not summary["valid"]:
        reasons = "; ".join(summary["invalid_reasons"])
        return f"INVALID run, do not trust its figures (exit code {INVALID_RUN_EXIT_CODE}): {reasons}"
    lag = summary.get("loop_lag_us") or {}
    cpu_percent = (summary.get("cpu") or {}).get("max_percent")
    bound_ms = MAX_LOOP_LAG_P99_US / 1000
    lag_text = (
        f"event-loop lag p99 {lag['p99'] / 1000:.1f} ms <= {bound_ms:g} ms"
        if lag.get("count")
        else "event-loop lag not recorded"
    )
    cpu_text = (
        "CPU not recorded" if cpu_percent is None else f"CPU peak {cpu_percent:.0f}% <= {MAX_TRUSTED_CPU_PERCENT:.0f}%"
    )
    return f"valid run: the load generator stayed within its bounds ({lag_text}, {cpu_text})"


def summarize(run: RunData) -> dict[str, Any]:
    """The summary dict, in summary.json's key order, SLOs checked."""
    meta, counters = run.meta, run.counters
    duration_s = run.duration_s
    ok = sum(run.ok_by_second.values())
    failed = sum(run.failed_by_second.values())
    cpu = counters.get("cpu") or {}
    loop_lag = counters.get("loop_lag_us")
    reasons = invalid_reasons(duration_s, ok + failed, cpu, loop_lag)
    service = _latency_table(run.latency, "service")
    intended = _latency_table(run.latency, "intended")
    summary: dict[str, Any] = {
        "scenario": meta.get("scenario"),
        "started_at": meta.get("started_at"),
        "duration_s": duration_s,
        "stack": meta.get("stack"),
        "valid": not reasons,
        "invalid_reasons": reasons,
        "requests": {"total": ok + failed, "ok": ok, "failed": failed, "by_endpoint": run.requests_by_endpoint},
        "latency_us": service,
        "latency_intended_us": intended,
        "session_tax_us": session_tax_us(service, intended),
        "correctness": _correctness(counters),
        "correctness_source": "history" if run.verdict is not None else "live",
        "anomaly_examples": run.verdict.examples if run.verdict is not None else [],
        "served_by": dict(sorted((counters.get("served_by") or {}).items())),
        "failures_by_kind": dict(sorted((counters.get("failures_by_kind") or {}).items())),
        "cpu": cpu,
        "loop_lag_us": loop_lag,
        "server_timing_us": {kind: _latency_table(run.latency, kind) for kind in SERVER_KINDS},
        "latency_decomposition_us": decomposition(service, run.latency),
        "events": dict(sorted(Counter(str(event.get("type", "unknown")) for event in run.events).items())),
        **_failover_keys(run),
        "server": summarize_server(run),
    }
    # Checked last, over the whole summary, so an SLO may point anywhere in it (failover figures included).
    slos = (meta.get("scenario_config") or {}).get("slo") or []
    summary["slo"] = check_slos(summary, slos)
    return summary


def _failover_keys(run: RunData) -> dict[str, Any]:
    """faults, failover, sentinel_timeline, split_brain and partition: empty or null for a plain load run."""
    figures = failover.failover_figures(run)
    split = partition.partition_for_run(run)
    periods = failover.fault_periods(run.events)
    return {
        "faults": [{k: v for k, v in period.items() if k not in ("start_t", "heal_t", "end_t")} for period in periods],
        "failover": figures,
        "sentinel_timeline": failover.sentinel_timeline(run.events, run.started_unix_s),
        "split_brain": failover.split_brain_moments(run.events, run.started_unix_s),
        "partition": split,
    }


# ------------------------------------------------------------------------ SLOs

_MISSING = object()


def _resolve(summary: Any, path: list[Any]) -> Any:
    node = summary
    for key in path:
        in_dict = isinstance(node, dict) and key in node
        in_list = isinstance(node, list) and isinstance(key, int) and -len(node) <= key < len(node)
        if not (in_dict or in_list):
            return _MISSING
        node = node[key]
    return node


def check_slo(summary: dict[str, Any], slo: dict[str, Any]) -> dict[str, Any]:
    """One SLO {"path": [...], "max": x} and/or {"min": y} against the summary; missing data fails."""
    path = slo.get("path") if isinstance(slo, dict) else None
    limits = {bound: slo[bound] for bound in ("max", "min") if isinstance(slo, dict) and bound in slo}
    check: dict[str, Any] = {"path": path} | limits
    if not isinstance(path, list) or not path or not limits:
        return check | {"actual": None, "passed": False, "reason": "malformed SLO: needs a path list and max or min"}
    actual = _resolve(summary, path)
    if actual is _MISSING or actual is None:
        # An endpoint never hit, or p99.9 from too few samples: an SLO cannot pass on no data.
        return check | {"actual": None, "passed": False, "reason": "no data"}
    check["actual"] = actual
    if not isinstance(actual, int | float):
        return check | {"passed": False, "reason": f"not a number: {json.dumps(actual)[:60]}"}
    if "max" in limits and actual > limits["max"]:
        return check | {"passed": False, "reason": f"{actual} > max {limits['max']}"}
    if "min" in limits and actual < limits["min"]:
        return check | {"passed": False, "reason": f"{actual} < min {limits['min']}"}
    return check | {"passed": True}


def path_text(path: Any) -> str:
    return " → ".join(map(str, path)) if isinstance(path, list) else str(path)


def check_slos(summary: dict[str, Any], slos: list[dict[str, Any]]) -> dict[str, Any]:
    checks = [check_slo(summary, slo) for slo in slos]
    return {"passed": all(check["passed"] for check in checks), "checks": checks}
