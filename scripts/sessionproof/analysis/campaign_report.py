"""The campaign report: one long run under a nemesis of random, overlapping faults, judged by the one checker.

    python -m sessionproof.analysis.campaign_report RUN_DIR

writes RUN_DIR/campaign.md, RUN_DIR/campaign.json and RUN_DIR/plots/campaign.png from the run folder's meta.json
and raw/ (history, events, timeline, histograms, plain or gzipped): the faults and combinations that ran and which
overlapped, Sentinel's failovers, the load, every anomaly class with the operations and faults around each
example, availability per fault kind and combination, and the bound on lost acknowledged writes this run gives.
A runner calls `write_campaign_report(run_dir)`. Exit status: 0 when the run is valid and no anomaly was found,
3 when the checker found one, 4 when the run is invalid (its figures cannot be trusted), 2 when RUN_DIR cannot be
read. Every figure in campaign.json names its unit (_s, _us, _per_s); times ending _rel_s are seconds since the
run's start (meta.json's started_at).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sessionproof.analysis import campaign_faults as nemesis
from sessionproof.analysis import matrix
from sessionproof.analysis.campaign_availability import (
    availability,
    lost_by_fault,
    run_wide,
    status_counts,
    steps_with_loss,
)
from sessionproof.analysis.campaign_bound import bound_sentence, loss_bound
from sessionproof.analysis.campaign_history import (
    Answers,
    context_line,
    example_moment_us,
    read_answers_and_context,
)
from sessionproof.analysis.campaign_markdown import render_campaign
from sessionproof.analysis.campaign_plot import plot_campaign
from sessionproof.analysis.failover import LOST_CLASSES
from sessionproof.analysis.rundata import RunData, load_run
from sessionproof.analysis.summary import invalid_reasons, validity_line
from sessionproof.history import ANOMALY_CLASSES, TALLIES
from sessionproof.runfiles import RunFileError
from sessionproof.validity import BAD_INPUT_EXIT_CODE, INVALID_RUN_EXIT_CODE, SLO_BREACH_EXIT_CODE

REPORT_FILE, FIGURES_FILE, PLOT_FILE = "campaign.md", "campaign.json", "campaign.png"


@dataclass
class Campaign:
    """A campaign run read and judged: what the report, its figures and its plot are made from."""

    run: RunData
    plan: dict | None
    runs: list[nemesis.Injection]
    failed: list[dict]
    steps: list[dict]
    failovers: list[dict]
    aborted: list[dict]
    split_brains: list[dict]
    answers: Answers
    end_t: float
    figures: dict[str, Any]

    def rel_s(self, t: float | None) -> float | None:
        return None if t is None else round(t - self.run.started_unix_s, 3)


def configuration_of(meta: dict, plan: dict | None) -> str | None:
    """The campaign's configuration: the plan's, meta.json's, or the one whose settings meta.json's config has."""
    named = (plan or {}).get("configuration") or meta.get("configuration")
    if named:
        return str(named)
    return matrix.configuration_of(meta) if meta.get("config") else None


def seed_of(meta: dict, plan: dict | None) -> int | None:
    """The nemesis's seed: the plan's, else meta.json's campaign.seed."""
    seed = (plan or {}).get("seed")
    return seed if seed is not None else (meta.get("campaign") or {}).get("seed")


def reproduce_command(meta: dict, plan: dict | None, configuration: str | None) -> str:
    """`make campaign DURATION=... SEED=... LAYERS=...` from the plan (meta.json where it has no plan); ? for what
    neither says."""
    duration = (plan or {}).get("duration_s", meta.get("duration_s"))
    seed = seed_of(meta, plan)
    words = ["make campaign", f"DURATION={duration:g}s" if isinstance(duration, int | float) else "DURATION=?"]
    words += [f"SEED={seed if seed is not None else '?'}", f"LAYERS={configuration or '?'}"]
    return " ".join(words)


def _header(run: RunData, plan: dict | None) -> dict:
    counters = run.counters
    requests = sum(run.ok_by_second.values()) + sum(run.failed_by_second.values())
    reasons = invalid_reasons(run.duration_s, requests, counters.get("cpu") or {}, counters.get("loop_lag_us"))
    judged = {"valid": not reasons, "invalid_reasons": reasons, "cpu": counters.get("cpu") or {}}
    configuration = configuration_of(run.meta, plan)
    return {
        "run_dir": str(run.run_dir),
        "started_at": run.meta.get("started_at"),
        "configuration": configuration,
        "seed": seed_of(run.meta, plan),
        "planned_duration_s": (plan or {}).get("duration_s"),
        "actual_duration_s": run.duration_s,
        "reproduce": reproduce_command(run.meta, plan, configuration),
        "recorded_command": run.meta.get("command"),
        "valid": judged["valid"],
        "invalid_reasons": reasons,
        "validity": validity_line({**judged, "loop_lag_us": counters.get("loop_lag_us")}),
    }


def _faults_section(c: Campaign) -> dict:
    planned = (c.plan or {}).get("steps", [])
    return {
        "injections_by_fault": nemesis.counted(i.fault for i in c.runs),
        **nemesis.overlap_figures(c.runs),
        "steps_planned": len(planned),
        "steps_run": len(c.steps),
        "steps_by_kind": nemesis.counted(s["kind"] for s in c.steps),
        "steps_by_combination": nemesis.counted(s["name"] for s in c.steps),
        "planned_steps_by_kind": nemesis.counted(s.get("kind") for s in planned),
        "failed_injections": [{"t_rel_s": c.rel_s(f["t"]), **{k: v for k, v in f.items() if k != "t"}} for f in c.failed],
        "quiet_periods": sum(e.get("type") == "nemesis_quiet" for e in c.run.events),
        "injection_list": [
            {"step": i.step, "combination": i.combination, "fault": i.fault, "target": i.target,
             "injected_rel_s": c.rel_s(i.active_from), "healed_rel_s": c.rel_s(i.end_t),
             "active_s": round(i.active_to(c.end_t) - i.active_from, 3), "overlaps": i.overlaps}
            for i in c.runs
        ],
    }  # fmt: skip


def _sentinel_section(c: Campaign) -> dict:
    brains = c.split_brains
    return {
        "failovers": len(c.failovers),
        "failover_list": [
            {"t_rel_s": c.rel_s(f["t"]), "epoch": f["epoch"], "from": f["from"], "to": f["to"],
             "sentinels": f["sentinels"]}
            for f in c.failovers
        ],
        "aborted_failovers": len(c.aborted),
        "aborted_by_reason": nemesis.counted(a["reason"] for a in c.aborted),
        "split_brain_episodes": len(brains),
        "split_brain_total_s": round(sum(b["end_t"] - b["start_t"] for b in brains), 3),
        "split_brain_longest_s": round(max((b["end_t"] - b["start_t"] for b in brains), default=0.0), 3),
        "split_brain_list": [
            {"start_rel_s": c.rel_s(b["start_t"]), "duration_s": round(b["end_t"] - b["start_t"], 3),
             "masters": b["masters"], "ended": b["ended"]}
            for b in brains
        ],
    }  # fmt: skip


def _examples(c: Campaign, contexts: list[list[dict]]) -> list[dict]:
    examples = []
    for example, lines in zip(c.run.verdict.examples, contexts, strict=True):
        moment_us = example_moment_us(example)
        moment_t = None if moment_us is None else c.run.unix_s(moment_us)
        active = [] if moment_t is None else nemesis.active_at(c.runs, moment_t, c.end_t)
        before = [i for i in c.runs if moment_t is not None and i.end_t is not None and i.end_t < moment_t]
        after = [i for i in c.runs if moment_t is not None and i.active_from > moment_t]
        last = max(before, key=lambda i: i.end_t, default=None)
        upcoming = min(after, key=lambda i: i.active_from, default=None)
        examples.append({
            "class": example["class"],
            "moment_rel_s": None if moment_us is None else round(moment_us / 1e6, 3),
            "detail": {k: v for k, v in example.items() if k != "class"},
            "faults_active": [nemesis.injection_text(i) for i in active],
            "last_fault_before": None if last is None or active
            else {"fault": nemesis.injection_text(last), "healed_s_before": round(moment_t - last.end_t, 3)},
            "next_fault_after": None if upcoming is None or active
            else {"fault": nemesis.injection_text(upcoming), "injected_s_after": round(upcoming.active_from - moment_t, 3)},
            "operations": [context_line(line, moment_us or 0, example.get("item")) for line in lines],
        })  # fmt: skip
    return examples


def read_campaign(run_dir: Path) -> tuple[Campaign, list[list[dict]]]:
    """The run loaded (the checker's verdict included) and every campaign figure computed."""
    run = load_run(Path(run_dir))
    if run.verdict is None:
        raise RunFileError(f"{run.run_dir}/raw/history.jsonl is missing: a campaign is judged on its history")
    events = run.events
    plan = nemesis.nemesis_plan(events)
    runs, failed = nemesis.injections(events)
    answers, contexts = read_answers_and_context(run.run_dir, run.started_unix_s, run.verdict.examples)
    end_t = max([run.started_unix_s + run.duration_s, *(e["t"] for e in events), *answers.t[-1:]])
    nemesis.mark_overlaps(runs, end_t)
    nodes = (run.meta.get("topology") or {}).get("nodes") or []
    names = {f"{n.get('host')}:{n.get('port')}": n.get("name") for n in nodes if isinstance(n, dict)}
    campaign = Campaign(
        run, plan, runs, failed, nemesis.steps_run(runs, plan), nemesis.failovers(events, names),
        nemesis.aborted_failovers(events), nemesis.split_brains(events, end_t), answers, end_t, {},
    )  # fmt: skip
    return campaign, contexts


def campaign_figures(c: Campaign, contexts: list[list[dict]]) -> dict[str, Any]:
    """Everything campaign.json holds."""
    run, verdict = c.run, c.run.verdict
    figures = verdict.figures
    moments_t = [run.unix_s(t) for times in verdict.moments.values() for t in times]
    lost = sum(figures[name] for name in LOST_CLASSES)
    bound = loss_bound(lost, figures["acknowledged_writes"])
    steps_lost = steps_with_loss(c.steps, c.runs, verdict.lost_items, run.started_unix_s, c.end_t)
    return {
        **_header(run, c.plan),
        "faults": _faults_section(c),
        "sentinel": _sentinel_section(c),
        "load": {
            **{name: figures[name] for name in TALLIES},
            "operations": c.answers.operations,
            "final_reads": c.answers.final_reads,
        },
        "anomalies": {name: figures[name] for name in ANOMALY_CLASSES},
        "anomaly_examples": _examples(c, contexts),
        "availability": {
            "by_fault": availability(c.runs, c.answers, moments_t, c.end_t, "fault"),
            "by_combination": availability(c.runs, c.answers, moments_t, c.end_t, "combination"),
            **_rel_times(c, run_wide(c.answers, c.runs, c.end_t)),
            "status": status_counts(run.timeline, run.counters, c.answers),
        },
        "bound": {
            **bound,
            "failovers": len(c.failovers),
            "sentence": bound_sentence(
                bound, len(c.failovers), " + ".join(f"{figures[n]} {n}" for n in LOST_CLASSES if figures[n])
            ),
            "steps": len(c.steps),
            "steps_with_lost_writes": steps_lost,
            # The share of steps that lose a write, bounded as the writes are (None when no step ran).
            "steps_upper_95": loss_bound(steps_lost, len(c.steps))["upper_95"],
            "lost_by_fault_active": lost_by_fault(verdict.lost_items, c.runs, run.started_unix_s, c.end_t),
            "fault_model": nemesis.counted(i.fault for i in c.runs),
        },
    }


def _rel_times(c: Campaign, wide: dict) -> dict:
    for key in ("longest_error_window", "longest_stall"):
        span = wide.get(key)
        if span is not None:
            span["start_rel_s"], span["end_rel_s"] = c.rel_s(span.pop("start_t")), c.rel_s(span.pop("end_t"))
    return wide


def exit_code(figures: dict) -> int:
    if not figures["valid"]:
        return INVALID_RUN_EXIT_CODE
    return SLO_BREACH_EXIT_CODE if any(figures["anomalies"].values()) else 0


def write_campaign_report(run_dir: Path) -> dict[str, Any]:
    """Write RUN_DIR/campaign.md, campaign.json and plots/campaign.png; return campaign.json's figures.
    Raises RunFileError when the folder is not a readable run with a history."""
    campaign, contexts = read_campaign(Path(run_dir))
    campaign.figures = campaign_figures(campaign, contexts)
    plots = campaign.run.run_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    plot_campaign(campaign, plots / PLOT_FILE)
    (campaign.run.run_dir / FIGURES_FILE).write_text(json.dumps(campaign.figures, indent=2) + "\n")
    (campaign.run.run_dir / REPORT_FILE).write_text(render_campaign(campaign.figures))
    return campaign.figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sessionproof.analysis.campaign_report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a campaign's run folder")
    args = parser.parse_args(argv)
    try:
        figures = write_campaign_report(args.run_dir)
    except RunFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT_EXIT_CODE
    print(f"campaign: {figures['validity']}")
    print(f"campaign: {figures['bound']['sentence']}")
    print(f"campaign: report {args.run_dir / REPORT_FILE}, plot {args.run_dir / 'plots' / PLOT_FILE}", flush=True)
    return exit_code(figures)


if __name__ == "__main__":
    sys.exit(main())
