"""report.md of a run, rendered from its summary."""

from __future__ import annotations

from typing import Any

from sessionproof.analysis import partition, server
from sessionproof.analysis.summary import path_text
from sessionproof.histograms import MIN_SAMPLES_FOR_P999
from sessionproof.history import ANOMALY_CLASSES, TALLIES

RERENDER_HINT = "every figure here is recomputed from raw/ by `make report RUN=<folder>`"


def _ms(value_us: int | None) -> str:
    return "n/a" if value_us is None else f"{value_us / 1000:.3f}"


def _latency_lines(table: dict[str, dict[str, int | None]]) -> list[str]:
    if not table:
        return ["No latency samples.", ""]
    lines = ["| endpoint | count | p50 | p90 | p99 | p99.9 | max |", "|---|--:|--:|--:|--:|--:|--:|"]
    for endpoint, p in table.items():
        p999 = _ms(p["p999"]) if p["p999"] is not None else f"n/a (<{MIN_SAMPLES_FOR_P999} samples)"
        cells = [endpoint, str(p["count"]), _ms(p["p50"]), _ms(p["p90"]), _ms(p["p99"]), p999, _ms(p["max"])]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _validity_lines(summary: dict[str, Any]) -> list[str]:
    if summary["valid"]:
        cpu_percent = summary["cpu"].get("max_percent")
        cpu = "not recorded" if cpu_percent is None else f"peaked at {cpu_percent:.0f}%"
        lag = summary.get("loop_lag_us") or {}
        lag_text = f"; its event loop woke {_ms(lag['p99'])} ms late at p99" if lag.get("count") else ""
        return [f"Validity: **valid** (load generator CPU {cpu}{lag_text}; requests recorded; long enough).", ""]
    return ["Validity: **INVALID**, do not trust these numbers:", *(f"- {r}" for r in summary["invalid_reasons"]), ""]


def _decomposition_lines(parts: dict[str, dict[str, int]]) -> list[str]:
    lines = ["## Where the time goes", ""]
    if not parts:
        return [*lines, "The app sent no Server-Timing header in this run.", ""]
    lines += [
        "At p50, in ms: what the client measured (service time), the app's own time and the part of it spent "
        "waiting on Redis (from the app's Server-Timing header), and the rest: network, nginx and the load "
        "generator. Each column is its own p50, so they need not add up exactly.",
        "",
        "| endpoint | client | app | of which store | outside the app |",
        "|---|--:|--:|--:|--:|",
    ]
    for endpoint, p in parts.items():
        lines.append(
            f"| {endpoint} | {_ms(p['client_p50'])} | {_ms(p['app_p50'])} | {_ms(p['store_p50'])} | "
            f"{_ms(p['outside_app_p50'])} |"
        )
    return [*lines, ""]


def _tax_lines(tax: dict[str, Any] | None) -> list[str]:
    lines = ["## Session tax", ""]
    if tax is None:
        return [*lines, "Not computed: needs both GET /cart and GET /ping samples.", ""]
    lines.append("GET /cart (reads the session from Redis) minus GET /ping (no session), in ms:")
    lines.append("")
    for kind, values in tax.items():
        text = "no data" if values is None else f"p50 {_ms(values['p50'])}, p99 {_ms(values['p99'])}"
        lines.append(f"- {kind}: {text}")
    return [*lines, ""]


def _correctness_lines(summary: dict[str, Any]) -> list[str]:
    correctness, failures_by_kind = summary["correctness"], summary["failures_by_kind"]
    lines = ["## Correctness", ""]
    checks = correctness["checks"]
    # Every class with a count, one this module does not know included (kept, never dropped).
    found = {name: count for name, count in correctness.items() if name not in (*TALLIES, "anomalies") and count}
    if summary.get("correctness_source") == "history":
        lines.append(
            f"Judged by the one checker over `raw/history.jsonl` (`make check RUN=...`): {checks} answers in "
            f"{correctness['sessions']} sessions; {correctness['acknowledged_writes']} acknowledged writes, "
            f"{correctness['unread_writes']} of them unread at the end; {correctness['indeterminate_writes']} "
            f"writes of unknown outcome, {correctness['indeterminate_took_effect']} of which took effect."
        )
    else:
        lines.append(
            "Counted live by the load's users: this run was recorded before histories, so it cannot be judged again."
        )
    lines.append("")
    if checks == 0 and not found:
        lines.append("No answer was judged, so nothing is claimed about lost or stale session data.")
    elif not found:
        lines.append(f"0 anomalies ({', '.join(name.replace('_', ' ') for name in ANOMALY_CLASSES)}).")
    else:
        lines.append(f"{sum(found.values())} anomalies:")
        lines.extend(f"- {name.replace('_', ' ')}: {count}" for name, count in found.items())
        examples = summary.get("anomaly_examples") or []
        if examples:
            lines += ["", "First examples (times in µs since the run's start):", ""]
            for name in found:
                for example in [e for e in examples if e["class"] == name][:3]:
                    detail = ", ".join(f"{k} {v}" for k, v in example.items() if k != "class" and v is not None)
                    lines.append(f"- {name.replace('_', ' ')}: {detail}")
    lines.append("")
    if failures_by_kind:
        lines.append("Failed requests by kind: " + ", ".join(f"{k}: {v}" for k, v in failures_by_kind.items()) + ".")
        lines.append("")
    return lines


def _replica_lines(served_by: dict[str, int]) -> list[str]:
    lines = ["## Requests per replica", ""]
    total = sum(served_by.values())
    if not total:
        return [*lines, "No replica counts recorded.", ""]
    lines += ["| replica | requests | share |", "|---|--:|--:|"]
    lines += [f"| {name} | {count} | {100 * count / total:.1f}% |" for name, count in served_by.items()]
    return [*lines, "", "![requests per replica](plots/replicas.png)", ""]


def _slo_lines(slo: dict[str, Any]) -> list[str]:
    lines = ["## SLOs", ""]
    if not slo["checks"]:
        return [*lines, "The scenario defines no SLOs.", ""]
    lines.append(f"Overall: **{'PASS' if slo['passed'] else 'FAIL'}**. Values in summary.json's units (latency in µs).")
    lines += ["", "| path | limit | actual | result |", "|---|---|--:|---|"]
    for check in slo["checks"]:
        path = path_text(check["path"])
        limit = ", ".join(
            f"{'≤' if bound == 'max' else '≥'} {check[bound]}" for bound in ("max", "min") if bound in check
        )
        result = "PASS" if check["passed"] else f"**FAIL** ({check['reason']})"
        lines.append(f"| {path} | {limit} | {'' if check['actual'] is None else check['actual']} | {result} |")
    return [*lines, ""]


def _events_lines(events: dict[str, int]) -> list[str]:
    if not events:
        return []
    return ["## Events", "", *(f"- {kind}: {count}" for kind, count in events.items()), ""]


def ms_short(value_us: int | None) -> str:
    """Failover latencies are stalls of hundreds of ms: 0.1 ms is precision enough."""
    return "n/a" if value_us is None else f"{value_us / 1000:.1f}"


def or_na(value: Any, none_text: str = "n/a") -> str:
    return none_text if value is None else str(value)


def _failover_figure_lines(figures: dict[str, Any]) -> list[str]:
    errors = figures["client_errors"]
    by_class = ", ".join(f"{name}: {count}" for name, count in errors.items())
    p99_max = {when: f"{ms_short(p['p99_us'])} / {ms_short(p['max_us'])} ms" for when, p in figures["latency"].items()}
    indeterminate = figures["indeterminate_writes"]
    no_read_back = "n/a (no read-back)"
    took_effect = f"{or_na(indeterminate['count'], no_read_back)} ({or_na(indeterminate['took_effect'])})"
    rows = [
        ("client errors", f"{sum(errors.values())} ({by_class})"),
        ("error window (first to last error)", f"{figures['error_window_s']} s"),
        ("longest time without a successful response", f"{figures['longest_gap_s']} s"),
        ("p99 / max before the fault (intended start)", p99_max["before"]),
        ("p99 / max during the fault (intended start)", p99_max["during"]),
        ("acknowledged writes", or_na(figures["acknowledged_writes"], no_read_back)),
        ("**lost acknowledged writes**", f"**{or_na(figures['lost_acknowledged_writes'], no_read_back)}**"),
        ("indeterminate writes (took effect)", took_effect),
        ("acknowledged writes unread at the end", or_na(figures.get("unread_writes"), no_read_back)),
        ("time to recover", or_na(figures["time_to_recover_s"], "not within the run") + " s"),
    ]
    return ["| figure | value |", "|---|--:|", *(f"| {name} | {value} |" for name, value in rows), ""]


def _fault_table_lines(faults: list[dict[str, Any]]) -> list[str]:
    lines = ["| fault | target | started | heal started | ended | duration s |", "|---|---|---|---|---|--:|"]
    for fault in faults:
        ended = or_na(fault["ended_at"], "not healed")
        heal = or_na(fault.get("heal_started_at"), "n/a")
        lines.append(
            f"| {fault['fault']} | {fault['target']} | {fault['started_at']} | {heal} | {ended} "
            f"| {or_na(fault['duration_s'])} |"
        )
    return [*lines, ""]


def _split_brain_lines(moments: list[dict[str, Any]]) -> list[str]:
    text = "; ".join(f"{m['t_rel_s']} s: {', '.join(m['masters'])}" for m in moments) if moments else "none observed"
    return [f"Split brain (two Redis nodes claiming role:master): {text}.", ""]


def _sentinel_lines(timeline: list[dict[str, Any]]) -> list[str]:
    lines = ["### Sentinel timeline", ""]
    if not timeline:
        return [*lines, "No Sentinel events recorded.", ""]
    lines += ["Seconds since run start; one row per event, however many Sentinels reported it within 1 s.", ""]
    lines += ["| t (s) | event | detail | seen by |", "|--:|---|---|--:|"]
    lines += [f"| {e['t_rel_s']} | `{e['event']}` | {e['detail']} | {e['sentinels']} |" for e in timeline]
    return [*lines, ""]


def _failover_lines(summary: dict[str, Any]) -> list[str]:
    figures = summary.get("failover")
    if not figures:
        return []
    lines = ["## Failover", "", *_failover_figure_lines(figures), *_fault_table_lines(summary["faults"])]
    lines += _split_brain_lines(summary["split_brain"])
    if figures.get("lost_examples"):
        examples = ", ".join(
            f"{e['item']} ({e.get('user') or e.get('session')})" for e in figures["lost_examples"][:10]
        )
        lines += [f"Lost, for example: {examples}.", ""]
    return [*lines, *_sentinel_lines(summary["sentinel_timeline"])]


def render_markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    requests = summary["requests"]
    lines = [
        f"# {summary['scenario']}, started {summary['started_at']}",
        "",
        *_validity_lines(summary),
        f"Stack `{summary['stack']}`, {summary['duration_s']:g} s, {requests['total']} requests "
        f"({requests['failed']} failed), git `{meta.get('git_sha', '?')}`.",
        "",
        "## Latency",
        "",
        "Times in milliseconds (µs resolution). Service time runs from the actual send; intended time from when the "
        "request was due, so it includes the wait a stalled generator would otherwise hide (coordinated omission).",
        "",
        "### Service time (ms)",
        "",
        *_latency_lines(summary["latency_us"]),
        "### Intended time (ms)",
        "",
        *_latency_lines(summary["latency_intended_us"]),
        "![latency and throughput over time](plots/latency.png)",
        "",
        "Each fault is a red band from its inject to the start of its heal; the heal is hatched. Dash-dotted lines "
        "mark Sentinel's +odown and +switch-master; dotted lines, moments when two Redis nodes claimed master.",
        "",
        "![latency by percentile, service time against intended time](plots/percentiles.png)",
        "",
        *_decomposition_lines(summary.get("latency_decomposition_us") or {}),
        *_tax_lines(summary["session_tax_us"]),
        *_correctness_lines(summary),
        "![failed requests over time](plots/errors.png)",
        "",
        *_failover_lines(summary),
        *partition.markdown_lines(summary.get("partition")),
        *server.markdown_lines(summary.get("server")),
        *_replica_lines(summary["served_by"]),
        *_slo_lines(summary["slo"]),
        *_events_lines(summary["events"]),
        "## Files",
        "",
        "Locust's own report: [locust.html](locust.html) (its percentiles are rounded to two significant "
        "digits; the tables above are µs HdrHistograms). Locust's CSVs: `raw/locust_*.csv`. Every histogram, one "
        "interval a second, in HdrHistogram's log format: `raw/hlog/<kind>-<endpoint>.hlog` (values in µs), for "
        "HistogramLogAnalyzer and the HdrHistogram tools.",
        "",
        "## Reproduce",
        "",
        f"Command: `{meta.get('command', '?')}`",
        "",
        f"Note: {RERENDER_HINT}.",
    ]
    return "\n".join(lines) + "\n"
