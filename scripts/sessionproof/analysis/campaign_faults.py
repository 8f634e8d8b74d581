"""What the nemesis of a campaign did, from raw/events.jsonl: its plan, each injection's active interval, which
injections overlapped, the injections that failed, Sentinel's failovers and the split-brain moments.

An injection is active from its `fault_injected` (its `fault_start` when that is missing) to its `fault_end` (the
run's end when it was never healed). Two injections overlap when their closed active intervals intersect. A run
without a `nemesis_plan` (an ordinary experiment) reads as a campaign whose every fault is a step of its own.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

STEP_KINDS = ("single", "pair", "triple")
# Every Sentinel publishes +switch-master for one failover, up to a second or more apart; one that was cut off
# publishes it when it rejoins. Counted once per epoch (the Sentinel's last +new-epoch before it), and, where a
# Sentinel's epoch is unknown, once per message within this many seconds.
FAILOVER_COLLAPSE_S = 5.0
ABORT_PREFIX = "-failover-abort"


@dataclass
class Injection:
    """One fault of one step, as the events say it ran."""

    step: int | None
    combination: str
    fault: str
    target: str | None
    start_t: float  # fault_start, Unix s
    injected_t: float | None = None
    heal_t: float | None = None
    end_t: float | None = None  # fault_end; None: never healed within the run
    overlaps: list[int] = field(default_factory=list)  # indexes of the injections it overlapped

    @property
    def active_from(self) -> float:
        return self.injected_t if self.injected_t is not None else self.start_t

    def active_to(self, run_end_t: float) -> float:
        return self.end_t if self.end_t is not None else max(run_end_t, self.active_from)


def nemesis_plan(events: list[dict]) -> dict | None:
    """The campaign's plan (its first nemesis_plan event), or None for a run without one."""
    return next((e for e in events if e.get("type") == "nemesis_plan"), None)


def injections(events: list[dict]) -> tuple[list[Injection], list[dict]]:
    """(every injection, in the order it started; every failed injection: {t, step, fault, error})."""
    runs: list[Injection] = []
    failed: list[dict] = []
    open_: dict[tuple, Injection] = {}
    for event in sorted(events, key=lambda e: e["t"]):  # stable: same-time events keep file order
        kind = event.get("type")
        step, fault = event.get("step"), event.get("fault")
        key = (step, fault, event.get("target"))
        if kind == "fault_start":
            name = event.get("combination") or fault
            injection = Injection(step, str(name), str(fault), event.get("target"), event["t"])
            open_[key] = injection
            runs.append(injection)
        elif kind == "fault_failed":
            failed.append({"t": event["t"], "step": step, "fault": fault, "error": event.get("error")})
            started = next((k for k, i in open_.items() if k[:2] == (step, fault) and i.injected_t is None), None)
            if started is not None:  # it started, then could not be done: no injection
                runs.remove(open_.pop(started))
        elif key in open_:
            injection = open_[key]
            if kind == "fault_injected":
                injection.injected_t = event["t"]
            elif kind == "heal_start":
                injection.heal_t = event["t"]
            elif kind == "fault_end":
                injection.end_t = event["t"]
                del open_[key]
    return runs, failed


def mark_overlaps(runs: list[Injection], run_end_t: float) -> None:
    """Fill each injection's overlaps: the others whose closed active interval intersects its own."""
    order = sorted(range(len(runs)), key=lambda i: runs[i].active_from)
    for position, i in enumerate(order):
        end = runs[i].active_to(run_end_t)
        for j in order[position + 1 :]:
            if runs[j].active_from > end:
                break
            runs[i].overlaps.append(j)
            runs[j].overlaps.append(i)
    for injection in runs:
        injection.overlaps.sort()


def overlap_figures(runs: list[Injection]) -> dict:
    """How many injections overlapped another (and another step's), and the share."""
    overlapped = [i for i in runs if i.overlaps]
    across = [i for i in runs if any(runs[j].step != i.step or i.step is None for j in i.overlaps)]
    return {
        "injections": len(runs),
        "overlapping_injections": len(overlapped),
        "overlapping_share": round(len(overlapped) / len(runs), 4) if runs else 0.0,
        "overlapping_another_step_injections": len(across),
    }


def step_kind(fault_count: int) -> str:
    return STEP_KINDS[fault_count - 1] if 1 <= fault_count <= len(STEP_KINDS) else f"{fault_count} faults"


def steps_run(runs: list[Injection], plan: dict | None) -> list[dict]:
    """Each step that injected something: its number, name, kind (the plan's, else by its fault count) and faults."""
    planned = {s.get("step"): s for s in (plan or {}).get("steps", [])}
    steps: dict[object, dict] = {}
    for index, injection in enumerate(runs):
        key = injection.step if injection.step is not None else f"fault-{index}"
        step = steps.setdefault(key, {"step": injection.step, "name": injection.combination, "faults": []})
        step["faults"].append(index)
    for step in steps.values():
        kind = (planned.get(step["step"]) or {}).get("kind")
        step["kind"] = kind or step_kind(len({runs[i].fault for i in step["faults"]}))
    return list(steps.values())


# ---------------------------------------------------------------- intervals
def merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of closed intervals, as disjoint intervals in time order."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def length(merged: list[tuple[float, float]]) -> float:
    return sum(end - start for start, end in merged)


def covers(merged: list[tuple[float, float]], t: float) -> bool:
    i = bisect.bisect_right(merged, (t, float("inf"))) - 1
    return i >= 0 and merged[i][0] <= t <= merged[i][1]


def active_at(runs: list[Injection], t: float, run_end_t: float) -> list[Injection]:
    return [i for i in runs if i.active_from <= t <= i.active_to(run_end_t)]


def active_during(runs: list[Injection], start: float, end: float, run_end_t: float) -> list[Injection]:
    return [i for i in runs if i.active_from <= end and start <= i.active_to(run_end_t)]


def injection_text(injection: Injection) -> str:
    step = "" if injection.step is None else f"step {injection.step} "
    target = f" on {injection.target}" if injection.target else ""
    return f"{injection.fault}{target} ({step}{injection.combination})".replace(" ()", "")


# ------------------------------------------------------------------ Sentinel
def _addresses(message: str) -> tuple[str, str] | None:
    """+switch-master's 'name old_ip old_port new_ip new_port' as (old, new) host:port."""
    words = str(message).split()
    return (f"{words[1]}:{words[2]}", f"{words[3]}:{words[4]}") if len(words) >= 5 else None


def failovers(events: list[dict], node_names: dict[str, str] | None = None) -> list[dict]:
    """Each Sentinel failover once: {t, epoch, from, to, sentinels}, however many Sentinels published it."""
    names = node_names or {}
    epoch_of: dict[str, int] = {}
    found: list[dict] = []
    for event in sorted((e for e in events if e.get("type") == "sentinel"), key=lambda e: e["t"]):
        sentinel, channel = event.get("sentinel"), event.get("channel")
        if channel == "+new-epoch" and str(event.get("message", "")).isdigit():
            epoch_of[sentinel] = int(event["message"])
            continue
        if channel != "+switch-master":
            continue
        epoch, message = epoch_of.get(sentinel), event.get("message")
        same = next((f for f in found if epoch is not None and f["epoch"] == epoch), None) or next(
            (
                f for f in reversed(found)
                if f["message"] == message and event["t"] - f["last_t"] <= FAILOVER_COLLAPSE_S
                and (epoch is None or f["epoch"] is None)
            ),
            None,
        )  # fmt: skip
        if same is not None:
            same["sentinels"] += 1
            same["last_t"] = event["t"]
            same["epoch"] = same["epoch"] if same["epoch"] is not None else epoch
            continue
        old, new = _addresses(message) or (None, None)
        found.append({
            "t": event["t"], "last_t": event["t"], "epoch": epoch, "message": message,
            "from": names.get(old, old), "to": names.get(new, new), "sentinels": 1,
        })  # fmt: skip
    return found


def aborted_failovers(events: list[dict]) -> list[dict]:
    """Each aborted failover attempt once ({t, reason, sentinel, epoch}): per Sentinel and epoch, or, where the
    epoch is unknown, per Sentinel and reason within FAILOVER_COLLAPSE_S."""
    epoch_of: dict[str, int] = {}
    found: list[dict] = []
    for event in sorted((e for e in events if e.get("type") == "sentinel"), key=lambda e: e["t"]):
        sentinel, channel = event.get("sentinel"), str(event.get("channel"))
        if channel == "+new-epoch" and str(event.get("message", "")).isdigit():
            epoch_of[sentinel] = int(event["message"])
        if not channel.startswith(ABORT_PREFIX):
            continue
        epoch = epoch_of.get(sentinel)
        seen = any(
            a["sentinel"] == sentinel
            and (a["epoch"] == epoch if epoch is not None else a["reason"] == channel and event["t"] - a["t"] <= 5)
            for a in found
        )
        if not seen:
            found.append({"t": event["t"], "reason": channel[1:], "sentinel": sentinel, "epoch": epoch})
    return found


def split_brains(events: list[dict], run_end_t: float) -> list[dict]:
    """Each split-brain episode: from a split_brain event to the split_brain_end after it ({start_t, end_t,
    masters, reports}); one not ended within the run lasts to its end."""
    episodes: list[dict] = []
    current: dict | None = None
    for event in sorted(events, key=lambda e: e["t"]):
        if event.get("type") == "split_brain":
            if current is None:
                current = {
                    "start_t": event["t"],
                    "end_t": None,
                    "masters": list(event.get("masters", [])),
                    "reports": 0,
                }
                episodes.append(current)
            current["reports"] += 1
        elif event.get("type") == "split_brain_end" and current is not None:
            current["end_t"] = event["t"]
            current = None
    for episode in episodes:
        episode["ended"] = episode["end_t"] is not None
        episode["end_t"] = episode["end_t"] if episode["end_t"] is not None else max(run_end_t, episode["start_t"])
    return episodes


def counted(values) -> dict[str, int]:
    """A Counter as a plain dict, the most first (then by name)."""
    return dict(sorted(Counter(values).items(), key=lambda kv: (-kv[1], str(kv[0]))))
