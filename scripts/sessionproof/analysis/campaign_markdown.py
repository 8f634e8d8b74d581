"""campaign.md, rendered from campaign.json's figures (campaign_report.py computes them)."""

from __future__ import annotations

from typing import Any

from sessionproof.history import ANOMALY_CLASSES

EXAMPLES_SHOWN_PER_CLASS = 3  # campaign.json holds every example the checker kept (up to 20 a class)
LISTED = 12  # failovers, failed injections, split-brain episodes listed by name


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    align = ["---" if i == 0 else "--:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _listing(counts: dict[str, int], empty: str = "none") -> str:
    """{'pair': 3, 'single': 2} as 'pair 3, single 2'."""
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or empty


def _minutes(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds / 60:.1f} min ({seconds:g} s)"


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole} ({100 * part / whole:.1f} %)" if whole else f"{part} of 0"


def _header(f: dict) -> list[str]:
    planned = f["planned_duration_s"]
    return [
        f"# Campaign: {f['configuration'] or 'configuration unknown'}, seed {f['seed']}",
        "",
        f"- Started {f['started_at']}; planned {_minutes(planned)}, ran {_minutes(f['actual_duration_s'])}.",
        f"- Reproduce: `{f['reproduce']}` (recorded command: `{f['recorded_command']}`).",
        f"- Validity: {f['validity']}: "
        + ("the run's figures can be trusted." if f["valid"] else "**do not trust the figures below**."),
        "",
        f"**{f['bound']['sentence']}**",
        "",
        "Every figure is in campaign.json (units in the names); this report is rebuilt by "
        "`python -m sessionproof.analysis.campaign_report RUN_DIR`.",
        "",
        "![the campaign: faults, failovers, anomalies and answers per second](plots/campaign.png)",
        "",
    ]


def _faults(f: dict) -> list[str]:
    faults = f["faults"]
    lines = ["## Faults and combinations", ""]
    lines.append(
        f"{faults['injections']} injections in {faults['steps_run']} steps run of {faults['steps_planned']} planned. "
        f"Overlapping another fault (active intervals [fault_injected, fault_end] intersect): "
        f"{_share(faults['overlapping_injections'], faults['injections'])}, of which "
        f"{faults['overlapping_another_step_injections']} with another step's fault."
    )
    lines += ["", *_table(["fault", "injections"], [[k, v] for k, v in faults["injections_by_fault"].items()])]
    kinds, planned = _listing(faults["steps_by_kind"]), _listing(faults["planned_steps_by_kind"], "no plan")
    lines += [f"Steps run by kind: {kinds} (planned: {planned}).", ""]
    lines += _table(["combination", "steps"], [[k, v] for k, v in faults["steps_by_combination"].items()])
    failed = faults["failed_injections"]
    lines.append(f"Failed injections (the nemesis could not inject them): {len(failed)}.")
    lines += [f"- at {x['t_rel_s']} s, step {x['step']}: {x['fault']}: {x['error']}" for x in failed[:LISTED]]
    lines += [f"- ... and {len(failed) - LISTED} more in campaign.json"] if len(failed) > LISTED else []
    return [*lines, ""]


def _sentinel(f: dict) -> list[str]:
    s = f["sentinel"]
    lines = ["## Failovers", ""]
    lines.append(
        f"{s['failovers']} Sentinel failovers (+switch-master, once per epoch however many Sentinels published it); "
        f"{s['aborted_failovers']} aborted failover attempts"
        + (f" ({_listing(s['aborted_by_reason'])})" if s["aborted_by_reason"] else "")
        + f"; {s['split_brain_episodes']} split-brain episodes (two masters at once), {s['split_brain_total_s']} s in "
        f"all, the longest {s['split_brain_longest_s']} s."
    )  # fmt: skip
    rows = [[x["t_rel_s"], x["epoch"], f"{x['from']} -> {x['to']}", x["sentinels"]] for x in s["failover_list"]]
    if rows:
        lines += ["", *_table(["at (s)", "epoch", "master", "Sentinels reporting"], rows[:LISTED])]
        if len(rows) > LISTED:
            lines += [f"... and {len(rows) - LISTED} more in campaign.json.", ""]
    return [*lines, ""]


def _load(f: dict) -> list[str]:
    load = f["load"]
    ops = load["operations"]
    rows = [[name, c["ok"], c["fail"], c["info"], c["unanswered"]] for name, c in ops.items()]
    return [
        "## The load",
        "",
        f"{load['checks']} answers judged in {load['sessions']} sessions; {load['acknowledged_writes']} acknowledged "
        f"writes; {load['indeterminate_writes']} indeterminate writes (ended info, never ok), of which "
        f"{load['indeterminate_took_effect']} took effect; {load['unread_writes']} acknowledged but never read after.",
        "",
        *_table(["operation", "ok", "fail (4xx)", "info (5xx, timeout)", "unanswered"], rows),
        f"Final reads: {load['final_reads'].get('ok', 0)} ok, {load['final_reads'].get('info', 0)} info.",
        "",
    ]


def _example_lines(example: dict) -> list[str]:
    active = "; ".join(example["faults_active"]) or "none"
    last, upcoming = example["last_fault_before"], example["next_fault_after"]
    after = f"; the last, {last['fault']}, healed {last['healed_s_before']} s before" if last else ""
    after += f"; the next, {upcoming['fault']}, injected {upcoming['injected_s_after']} s after" if upcoming else ""
    detail = ", ".join(f"{k}={v}" for k, v in example["detail"].items() if v is not None)
    lines = [
        f"- **{example['class']}** at {example['moment_rel_s']} s: {detail}",
        f"  - faults active: {active}{after}",
    ]
    lines.append("  - operations of the session around it (s from the moment):")
    lines.append("    ```")
    for op in example["operations"]:
        words = [f"{op['dt_s']:+8.3f}", op["process"][:14], op.get("type", ""), op.get("f", "")]
        words += [f"{k}={op[k]}" for k in ("item", "user", "error", "store", "cart_items", "has_item") if k in op]
        lines.append("    " + " ".join(str(w) for w in words))
    return [*lines, "    ```"]


def _anomalies(f: dict) -> list[str]:
    counts = f["anomalies"]
    lines = ["## Anomalies", "", *_table(["class", "count"], [[name, counts[name]] for name in ANOMALY_CLASSES])]
    for name in ANOMALY_CLASSES:
        examples = [e for e in f["anomaly_examples"] if e["class"] == name]
        for example in examples[:EXAMPLES_SHOWN_PER_CLASS]:
            lines += _example_lines(example)
        if len(examples) > EXAMPLES_SHOWN_PER_CLASS:
            lines.append(f"- ... {len(examples) - EXAMPLES_SHOWN_PER_CLASS} more {name} examples in campaign.json")
    return [*lines, ""]


def _availability_rows(table: dict[str, dict]) -> list[list[Any]]:
    return [
        [name, r["injections"], r["active_s"], r["answers"], r["fail"], r["info"], r["http_500"], r["error_windows"],
         r["longest_error_window_s"], r["longest_stall_s"], r["anomalies"]]
        for name, r in table.items()
    ]  # fmt: skip


AVAILABILITY_HEADERS = [
    "injections", "active (s)", "answers", "failed (4xx)", "indeterminate (5xx, timeout)", "500s", "error windows",
    "longest error window (s)", "longest stall (s)", "anomalies",
]  # fmt: skip


def _availability(f: dict) -> list[str]:
    a = f["availability"]
    status = a["status"]
    lines = ["## Availability", ""]
    for key, title in (("by_fault", "fault kind"), ("by_combination", "combination")):
        lines += [f"Per {title} (answers completed while it was active):", ""]
        lines += _table([title, *AVAILABILITY_HEADERS], _availability_rows(a[key]))
    stall, window = a["longest_stall"], a["longest_error_window"]
    if stall:
        lines.append(
            f"Longest stall (no answer completed ok): {stall['duration_s']} s, from {stall['start_rel_s']} s to "
            f"{stall['end_rel_s']} s, faults active: {'; '.join(stall['faults']) or 'none'}."
        )
    if window:
        lines.append(
            f"Error windows (failed answers with no ok between): {a['error_windows']}; the longest "
            f"{window['duration_s']} s ({window['failures']} failures) from {window['start_rel_s']} s, faults "
            f"active: {'; '.join(window['faults']) or 'none'}."
        )
    failed = _listing(status["requests_failed_by_kind"])
    lines += [
        "",
        f"Client errors by kind (every request, /ping included, from the {status['requests_source']}): {failed}; "
        f"5xx {status['requests_5xx']}. **HTTP 500: {status['requests_500']} requests** "
        f"({status['answers_500']} of them judged operations in the history).",
        "",
    ]
    return lines


def _bound(f: dict) -> list[str]:
    b = f["bound"]
    model = _listing(b["fault_model"], "no fault ran")
    lost = ", ".join(f"{k}: {v}" for k, v in b["lost_by_fault_active"].items()) or "none lost"
    per_step = (
        f"{b['steps_with_lost_writes']} of {b['steps']} steps lost a write acknowledged while one of their faults was "
        f"active (95 % upper bound on the share of such steps: {b['steps_upper_95']:.4g})."
        if b["steps_upper_95"] is not None
        else "No step ran, so no per-step bound."
    )
    method = f" Method: {b['method']}." if b.get("method") else ""
    return [
        "## The bound",
        "",
        b["sentence"] + method,
        "",
        f"It holds only for this run's fault model (injections per fault: {model}), its load and this checker "
        "(history/checker.py: a write is lost when an acknowledged item is missing from the latest later "
        "observation of its session; lost_writes and lost_updates count). It treats every acknowledged write as an "
        "independent trial, which they are not: writes during one fault share its fate, so lost writes come in "
        f"clusters. Lost writes by the faults active at their acknowledgement: {lost}. Steps are closer to "
        f"independent trials: {per_step}",
        "",
    ]


def render_campaign(figures: dict[str, Any]) -> str:
    sections = [_header, _faults, _sentinel, _load, _anomalies, _availability, _bound]
    return "\n".join(line for section in sections for line in section(figures))
