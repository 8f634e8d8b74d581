"""Whether two campaign runs ran the same schedule: same seed, same steps in the same order, each with the same
faults at the same planned moments, and how far each injection's start strayed from its planned moment.

    python -m sessionproof.analysis.campaign_schedule RUN_A RUN_B

Compared from each run's events alone (raw/events.jsonl, or its compressed lean copy): the plan the run made
(its `nemesis_plan` event) and, per step it ran (`nemesis_step`), the faults it started (`fault_start`) in order,
with their offsets from the step's start. Targets are compared as the plan names them (roles such as `master`),
not as node names: which node is master when a step starts depends on the failovers before it.
Exit 0: the steps both runs ran are the same; 1: they differ (the first difference is printed); 2: usage.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from . import rundata
from .campaign_faults import nemesis_plan


@dataclass(frozen=True)
class RanStep:
    step: int
    combination: str
    kind: str
    faults: tuple[str, ...]  # in the order they started
    offsets_s: tuple[float, ...]  # each start after the step's nemesis_step event


def ran_steps(events: list[dict]) -> list[RanStep]:
    """Each step the nemesis ran, with the faults it started, in the order of the log."""
    steps: list[RanStep] = []
    current: dict | None = None
    for event in sorted(events, key=lambda e: e["t"]):
        kind = event.get("type")
        if kind == "nemesis_step":
            if current is not None:
                steps.append(_ran(current))
            current = {"event": event, "starts": []}
        elif kind == "fault_start" and current is not None and event.get("step") == current["event"].get("step"):
            current["starts"].append(event)
    if current is not None:
        steps.append(_ran(current))
    return steps


def _ran(current: dict) -> RanStep:
    begin = current["event"]
    return RanStep(
        step=int(begin["step"]),
        combination=str(begin.get("combination")),
        kind=str(begin.get("kind")),
        faults=tuple(str(s.get("fault")) for s in current["starts"]),
        offsets_s=tuple(round(s["t"] - begin["t"], 3) for s in current["starts"]),
    )


def planned_starts(plan: dict, step: int) -> list[tuple[str, float]]:
    """(fault, planned start after the step's start) of one planned step, in start order."""
    return sorted(((f["fault"], float(f["at_s"])) for f in plan["steps"][step]["faults"]), key=lambda x: x[1])


@dataclass
class Comparison:
    same: bool
    lines: list[str]


def compare(events_a: list[dict], events_b: list[dict]) -> Comparison:
    plan_a, plan_b = nemesis_plan(events_a), nemesis_plan(events_b)
    if plan_a is None or plan_b is None:
        return Comparison(False, ["not a campaign: no nemesis_plan event in " + ("A" if plan_a is None else "B")])
    lines = [f"seed: A {plan_a['seed']}, B {plan_b['seed']}"]
    same = plan_a["seed"] == plan_b["seed"]
    steps_a, steps_b = ran_steps(events_a), ran_steps(events_b)
    common = min(len(steps_a), len(steps_b))
    lines.append(f"steps run: A {len(steps_a)}, B {len(steps_b)}; compared: the first {common}")
    # The plans are made for each run's duration: the shorter one is the start of the longer (same seed).
    plan_len = min(len(plan_a["steps"]), len(plan_b["steps"]))
    if plan_a["steps"][:plan_len] != plan_b["steps"][:plan_len]:
        same = False
        first = next(i for i in range(plan_len) if plan_a["steps"][i] != plan_b["steps"][i])
        lines.append(f"plans differ from step {first}")
    drift_s = 0.0
    injections = 0
    for a, b in zip(steps_a, steps_b, strict=False):  # the shorter run is a prefix
        if (a.step, a.combination, a.kind, a.faults) != (b.step, b.combination, b.kind, b.faults):
            same = False
            lines.append(
                f"first difference at step {a.step}: A {a.combination} {a.faults}, B {b.combination} {b.faults}"
            )
            break
        planned = planned_starts(plan_a, a.step)
        if list(a.faults) != [fault for fault, _ in planned]:  # b started the same faults as a
            same = False
            lines.append(f"step {a.step} started {a.faults}, planned {planned}")
        for ran in (a, b):
            drift_s = max([drift_s] + [abs(o - at) for o, (_, at) in zip(ran.offsets_s, planned, strict=False)])
        injections += len(a.faults)
    lines.append(
        f"{'same' if same else 'NOT the same'} schedule over the {common} steps both ran ({injections} injections"
        f" each; the plans, faults, offsets, holds and target roles, are compared where both have them); largest"
        f" start off its planned moment: {drift_s:.3f} s"
    )
    return Comparison(same, lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    args = parser.parse_args(argv)
    try:
        events_a, events_b = (rundata.read_events(run) for run in (args.run_a, args.run_b))
    except rundata.RunFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = compare(events_a, events_b)
    print("\n".join(result.lines))
    return 0 if result.same else 1


if __name__ == "__main__":
    sys.exit(main())
