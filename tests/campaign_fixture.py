"""Campaign run folders for tests: a nemesis's events (its plan, then each fault of each step) written around a copy
of a real run, whose history, timeline, histograms and Sentinel events stay as they were recorded.

A step is given as the plan has it: {"step", "name", "kind", "at_s", "faults": [{"fault", "at_s", "hold_s"}]}, at_s
of a step in seconds since the run's start, of a fault since its step. A fault may add "target", "heal_s" (how
long its heal takes, 0.5 s unless given) or "fail" (the error of an inject that could not be done).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sessionproof import REPO_ROOT
from sessionproof.analysis.rundata import started_unix_s
from sessionproof.runfiles import gzipped, read_jsonl

MATRIX = REPO_ROOT / "results" / "reference" / "matrix-three-configurations"
FAULT_EVENTS = ("fault_start", "fault_injected", "heal_start", "fault_end", "fault_failed", "nemesis_plan")


def step(number: int, at_s: float, *faults: dict, name: str | None = None) -> dict:
    """One step of a plan; its name joins its faults' names with '+', its kind follows their count."""
    kinds = {1: "single", 2: "pair", 3: "triple"}
    return {
        "step": number,
        "name": name or "+".join(f["fault"] for f in faults),
        "kind": kinds[len(faults)],
        "at_s": at_s,
        "faults": list(faults),
    }


def fault(name: str, at_s: float, hold_s: float, **extra) -> dict:
    return {"fault": name, "at_s": at_s, "hold_s": hold_s, **extra}


def campaign_events(t0: float, steps: list[dict], *, seed: int = 7, duration_s: float = 60.0,
                    configuration: str = "hardened") -> list[dict]:  # fmt: skip
    """The events a nemesis writes for these steps, in time order, the plan first."""
    planned = [
        {**s, "faults": [{k: f[k] for k in ("fault", "at_s", "hold_s")} for f in s["faults"]]} for s in steps
    ]  # fmt: skip
    events = [{"t": t0, "type": "nemesis_plan", "seed": seed, "duration_s": duration_s,
               "configuration": configuration, "steps": planned}]  # fmt: skip
    for s in steps:
        for f in s["faults"]:
            at = t0 + s["at_s"] + f["at_s"]
            common = {"fault": f["fault"], "step": s["step"], "combination": s["name"]}
            if "fail" in f:
                events.append({"t": at, "type": "fault_failed", **common, "error": f["fail"]})
                continue
            common["target"] = f.get("target", "node-1")
            heal_t = at + f["hold_s"]
            events += [
                {"t": at - 0.01, "type": "fault_start", **common},
                {"t": at, "type": "fault_injected", **common},
                {"t": heal_t, "type": "heal_start", **common},
                {"t": heal_t + f.get("heal_s", 0.5), "type": "fault_end", **common},
            ]
    return sorted(events, key=lambda e: e["t"])


def write_events(run_dir: Path, events: list[dict]) -> None:
    """raw/events.jsonl as these events, in place of the plain or gzipped one the folder had."""
    path = run_dir / "raw" / "events.jsonl"
    gzipped(path).unlink(missing_ok=True)
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def copy_run(source: Path, into: Path) -> Path:
    """A copy of a run folder, without the reports rendered in it."""
    run_dir = into / source.name
    shutil.copytree(source, run_dir, ignore=shutil.ignore_patterns("report.md", "summary.json", "plots"))
    return run_dir


def campaign_run(source: Path, into: Path, steps: list[dict], **plan) -> Path:
    """A copy of the real run `source` whose events are a campaign's over these steps: its own fault events are
    replaced, its Sentinel, split-brain and steady-state events kept."""
    run_dir = copy_run(source, into)
    kept = [e for e in read_jsonl(run_dir / "raw" / "events.jsonl") if e.get("type") not in FAULT_EVENTS]
    t0 = started_unix_s(run_dir)
    write_events(run_dir, sorted(kept + campaign_events(t0, steps, **plan), key=lambda e: e["t"]))
    return run_dir


# The stock, min-replicas 0 partition of the master: one failover (epoch 61), a split brain from 14.1 s to 33.4 s,
# 300 lost writes; its partition ran from 12.2 s (injected) to 33.6 s (healed). The campaign around it pairs the
# partition with an overlapping replica pause, then runs one app kill alone, then fails to inject a master kill.
LOSSY = MATRIX / "stock-min-replicas-0" / "partition-redis-master"
LOSSY_STEPS = [
    step(0, 12.1, fault("partition-redis-master", 0.0, 10.0, target="redis-2", heal_s=11.4),
         fault("pause-redis-replica", 3.0, 4.0, target="redis-1")),
    step(1, 36.0, fault("kill-app", 0.0, 3.0, target="app-1")),
    step(2, 41.0, fault("kill-redis-master", 0.0, 8.0, fail="no master to target")),
]  # fmt: skip


def lossy_campaign(into: Path) -> Path:
    return campaign_run(LOSSY, into, LOSSY_STEPS, duration_s=45, configuration="stock-min-replicas-0")


# The hardened kill of the master: one failover, no anomaly in 1498 acknowledged writes; its kill ran from 11.8 s
# to 30.5 s. The campaign around it pairs the kill with an overlapping Sentinel kill, then pauses an app alone.
CLEAN = MATRIX / "hardened" / "failover-redis-kill"
CLEAN_STEPS = [
    step(0, 11.75, fault("kill-redis-master", 0.0, 8.0, target="redis-1", heal_s=10.7),
         fault("kill-sentinel", 2.0, 5.0, target="sentinel-1")),
    step(1, 33.0, fault("pause-app", 0.0, 2.0, target="app-2")),
]  # fmt: skip


def clean_campaign(into: Path) -> Path:
    return campaign_run(CLEAN, into, CLEAN_STEPS, seed=11, duration_s=40, configuration="hardened")
