"""Two campaign runs compared by the schedule they ran (analysis/campaign_schedule.py)."""

from __future__ import annotations

from sessionproof.analysis import campaign_schedule
from sessionproof.chaos import nemesis


def _events(seed: int, steps: list[nemesis.Step], ran: int, start_t: float = 1000.0, swap_at: int | None = None):
    """The events a run of `steps` writes for its first `ran` steps (the faults of step `swap_at` started in the
    reverse order, as a different schedule would)."""
    events = [{"t": start_t, "type": "nemesis_plan", **nemesis.plan_event(seed, 600, "hardened", steps)}]
    t = start_t
    for step in steps[:ran]:
        t += step.quiet_before_s
        events.append({"t": t, "type": "nemesis_step", "step": step.step, "combination": step.name, "kind": step.kind})
        faults = sorted(step.faults, key=lambda p: p.at_s)
        if step.step == swap_at:
            faults = list(reversed(faults))
        moments = sorted(p.at_s for p in step.faults)
        for planned, at_s in zip(faults, moments, strict=True):
            events.append({"t": t + at_s + 0.05, "type": "fault_start", "fault": planned.fault,
                           "target": "redis-1", "step": step.step, "combination": step.name})  # fmt: skip
        t += step.length_s + 2
    return events


def test_the_same_seed_runs_the_same_schedule_and_the_shorter_run_is_the_start_of_the_longer():
    long_plan, short_plan = nemesis.plan(7, 1800), nemesis.plan(7, 600)
    assert long_plan[: len(short_plan)] == short_plan
    result = campaign_schedule.compare(_events(7, long_plan, 12), _events(7, short_plan, 5, start_t=5000.0))
    assert result.same, result.lines
    assert "the 5 steps both ran" in result.lines[-1] and "0.050 s" in result.lines[-1]


def test_a_different_seed_or_order_is_a_different_schedule():
    plan_7, plan_8 = nemesis.plan(7, 600), nemesis.plan(8, 600)
    assert not campaign_schedule.compare(_events(7, plan_7, 5), _events(8, plan_8, 5)).same
    multi = next(s.step for s in plan_7 if len({p.at_s for p in s.faults}) > 1)
    swapped = campaign_schedule.compare(_events(7, plan_7, multi + 1), _events(7, plan_7, multi + 1, swap_at=multi))
    assert not swapped.same
    assert any(f"first difference at step {multi}" in line for line in swapped.lines)


def test_a_run_without_a_plan_is_not_a_campaign():
    result = campaign_schedule.compare([{"t": 1.0, "type": "fault_start"}], _events(7, nemesis.plan(7, 600), 1))
    assert not result.same and "not a campaign" in result.lines[0]
