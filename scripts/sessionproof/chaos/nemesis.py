"""The nemesis: a schedule of random, often overlapping faults drawn from a seed, and the loop that runs it.

The schedule is a list of steps, made before the run from SEED alone (same seed, same schedule: the faults,
their order, offsets, holds, targets by role and the quiet periods). A step is one fault (`single`), two or
three at once (`pair`, `triple`: random, or one of the named combinations in COMBINATIONS that probes found
dangerous). Within a step every fault is injected at its offset and released after its hold by its own
`release` (a killed node starts, a paused one resumes, a script is killed), without waiting for the others;
network faults last until the step ends. Then the step heals everything (idempotent: every link back, every
node running, one settled master) and the nemesis stays quiet for a while. Jepsen's
`jepsen.nemesis.combined` and its generator combinators (`mix`, `stagger`, `time-limit`) are the model.

Targets are roles, resolved when the fault is injected: `master` (the node the Sentinels name then),
`replica:N` (the Nth of the other Redis nodes, sorted by name), `app:N`, `sentinel:N`, or `` (the fault's own
choice). Every inject, release and heal is written to the run's events with its step and combination.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from sessionproof.chaos.fault_kit import (
    heal_stack,
    kill_scripts,
    replicas,
    restore_maxmemory,
    start_each,
    thaw_aof,
    unpause_clients,
)
from sessionproof.chaos.faults import FAULTS, Fault, inject
from sessionproof.runs import EventLog
from sessionproof.runtimes.interface import Runtime
from sessionproof.waiting import DeadlineExceeded

FIRST_QUIET_S = 10.0  # load before the first fault: a baseline
QUIET_S = (4.0, 12.0)  # between a step's heal and the next step
OFFSET_S = (0.0, 4.0)  # a random pair's or triple's later faults start this long after its first
HOLD_S = (3.0, 12.0)
HEAL_ATTEMPTS = 3
# A step's heal as the plan assumes it: shorter than most (2-10 s here), so the plan has more steps than a
# run gets to; the run stops at its end (a 50-minute campaign ran out of its 111 steps with 10 s assumed).
PLANNED_HEAL_S = 1.0
KIND_WEIGHTS = {"single": 0.45, "pair": 0.25, "triple": 0.1, "combination": 0.2}
# Faults a random step may draw; each ends by its own release or at the step's heal. The rolling restart
# (30 s of graceful restarts) and the full restart stay singles.
SINGLES_ONLY = ("restart-apps", "restart-redis-all")


@dataclass(frozen=True)
class Planned:
    fault: str
    at_s: float  # after the step starts
    hold_s: float
    target: str = ""  # a role: master, replica:N, app:N, sentinel:N, or "" for the fault's own choice


@dataclass(frozen=True)
class Step:
    step: int
    name: str
    kind: str  # single, pair, triple
    quiet_before_s: float
    faults: tuple[Planned, ...]

    @property
    def length_s(self) -> float:
        return max(p.at_s + p.hold_s for p in self.faults)


def _role(rng: random.Random, fault: str) -> str:
    if fault.endswith("redis-master") or fault in ("fill-redis", "partition-sentinels-minority"):
        return "master"
    if "replica" in fault or fault == "split-sentinel-views":
        return f"replica:{rng.randrange(2)}"
    if fault in ("kill-app", "pause-app", "partition-app"):
        return f"app:{rng.randrange(3)}"
    if fault in ("kill-sentinel", "isolate-sentinel"):
        return f"sentinel:{rng.randrange(3)}"
    return ""


def _hold(rng: random.Random) -> float:
    return round(rng.uniform(*HOLD_S), 1)


def _combination(rng: random.Random, name: str) -> tuple[Planned, ...]:
    """The named combinations: each a window a probe or an earlier run found."""
    u = lambda low, high: round(rng.uniform(low, high), 1)  # noqa: E731
    replica_fault = rng.choice(("kill-redis-replica", "pause-redis-replica"))
    return {
        # A replica fault while the master is down: the promotion has one candidate, or none.
        "replica-fault-during-master-kill": (
            Planned("kill-redis-master", 0, u(6, 10), "master"),
            Planned(replica_fault, u(0.5, 3), u(3, 8), f"replica:{rng.randrange(2)}"),
        ),
        "app-fault-during-redis-fault": (
            Planned(rng.choice(("kill-app", "pause-app")), 0, u(4, 10), f"app:{rng.randrange(3)}"),
            Planned(rng.choice(("kill-redis-master", "pause-redis-master", "partition-redis-master")), u(0, 3), u(4, 10), "master"),
        ),
        "partition-during-congestion": (
            Planned("congest-redis-master", 0, u(8, 14), "master"),
            Planned(rng.choice(("partition-redis-master", "partition-app", "partition-sentinels-minority")), u(1, 4), u(4, 8), "master"),
        ),
        # The old master starts again (from its own data, catching up) just before the new one dies.
        "back-to-back-failovers": (
            Planned("kill-redis-master", 0, u(3, 5), "master"),
            Planned("kill-redis-master", u(5.5, 8), u(4, 8), "master"),
        ),
        # A replica is killed; later the master and the other replica stop, and the killed one starts again
        # from its older data: it must not be promoted (383 of 1,291 acknowledged writes lost when it was).
        "stale-node-restart": (
            Planned("kill-redis-replica", 0, 6, "replica:0"),
            Planned("pause-redis-master", 5.9, u(8, 12), "master"),
            Planned("pause-redis-replica", 5.9, u(8, 12), "replica:1"),
        ),
        # One replica confirms writes but no Sentinel can promote it; the one they can has lost its link, and
        # then the master dies (20 of 20 acknowledged writes lost when WAIT counted).
        "hidden-replica-and-broken-link": (
            Planned("hide-replica-from-sentinels", 0, u(12, 16), "replica:0"),
            Planned("cut-replica-from-master", 0.5, u(12, 16), "replica:1"),
            Planned("kill-redis-master", u(2, 4), u(6, 10), "master"),
        ),
        "sentinels-disagree": (
            Planned("split-sentinel-views", 0, u(10, 14), f"replica:{rng.randrange(2)}"),
            Planned("kill-redis-master", u(1, 3), u(6, 10), "master"),
        ),
        "apps-cut-from-sentinels-during-failover": (
            Planned("cut-apps-from-sentinels", 0, u(6, 10), ""),
            Planned("kill-redis-master", u(1, 3), u(4, 8), "master"),
        ),
        "busy-master-and-paused-replica": (
            Planned("busy-script-redis-master", 0, u(4, 8), "master"),
            Planned("pause-redis-replica", u(0.5, 2), u(3, 8), f"replica:{rng.randrange(2)}"),
        ),
    }[name]  # fmt: skip


COMBINATIONS = (
    "replica-fault-during-master-kill",
    "app-fault-during-redis-fault",
    "partition-during-congestion",
    "back-to-back-failovers",
    "stale-node-restart",
    "hidden-replica-and-broken-link",
    "sentinels-disagree",
    "apps-cut-from-sentinels-during-failover",
    "busy-master-and-paused-replica",
)


def plan(seed: int, duration_s: float, faults: tuple[str, ...] | None = None) -> list[Step]:
    """Enough steps to fill duration_s (each assumed no longer than its holds; the run stops when time is up).
    `faults` is the pool; the named combinations run only when it is the whole catalogue (they draw from it)."""
    rng = random.Random(seed)
    pool = sorted(faults or FAULTS)
    named = set(pool) >= set(FAULTS)
    combinable = [f for f in pool if f not in SINGLES_ONLY]
    steps: list[Step] = []
    elapsed = 0.0
    while elapsed < duration_s:
        quiet = FIRST_QUIET_S if not steps else round(rng.uniform(*QUIET_S), 1)
        kind = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
        if kind == "combination" and named:
            name = rng.choice(COMBINATIONS)
            planned = _combination(rng, name)
            kind = "pair" if len(planned) == 2 else "triple"
        else:
            count = {"single": 1, "pair": 2, "triple": 3}.get(kind, 1)
            kind = {1: "single", 2: "pair", 3: "triple"}[count]
            chosen = [rng.choice(pool)] if count == 1 else rng.sample(combinable, count)
            planned = tuple(
                Planned(f, 0.0 if i == 0 else round(rng.uniform(*OFFSET_S), 1), _hold(rng), _role(rng, f))
                for i, f in enumerate(chosen)
            )
            name = "+".join(p.fault for p in planned)
        step = Step(len(steps), name, kind, quiet, planned)
        steps.append(step)
        elapsed += quiet + step.length_s + PLANNED_HEAL_S
    return steps


def plan_event(seed: int, duration_s: float, configuration: str, steps: list[Step]) -> dict:
    return {
        "seed": seed,
        "duration_s": duration_s,
        "configuration": configuration,
        "steps": [
            {**{k: v for k, v in asdict(s).items() if k != "faults"}, "faults": [asdict(p) for p in s.faults]}
            for s in steps
        ],
    }


def resolve(runtime: Runtime, role: str) -> list[str] | None:
    """A role's node now; None: the fault's own choice."""
    if not role:
        return None
    if role == "master":
        master = runtime.master_node()
        if master is None:
            raise RuntimeError("no Sentinel names a master")
        return [master.name]
    kind, _, index = role.partition(":")
    found = replicas(runtime) if kind == "replica" else [n.name for n in runtime.nodes(kind)]
    if not found:
        raise RuntimeError(f"no {kind} to target")
    return [found[int(index) % len(found)]]


def heal_everything(runtime: Runtime) -> None:
    """Idempotent: every link restored, every node running, no script or client pause, maxmemory back, every AOF
    writable, then one settled master with its replicas (heal_stack)."""
    runtime.heal_network()
    everyone = [n.name for n in runtime.nodes()]
    start_each(runtime, everyone)  # a paused node would not answer the in-band heals below
    for in_band in (kill_scripts, unpause_clients, restore_maxmemory, thaw_aof):
        try:
            in_band(runtime, everyone)
        except Exception:
            continue
    heal_stack(runtime, [])


class Nemesis:
    """Runs the steps of a plan against a runtime, writing every action to the log, until `stop_at`."""

    def __init__(self, runtime: Runtime, log: EventLog, steps: list[Step], progress: Callable[[str], None]):
        self.runtime, self.log, self.steps, self.progress = runtime, log, steps, progress

    def run(self, started: float, stop_at: float, alive: Callable[[], bool]) -> int:
        """Run steps until stop_at (monotonic); returns how many steps ran. `alive` false: stop at once."""
        ran = 0
        for step in self.steps:
            begin = time.monotonic() + step.quiet_before_s
            if begin + step.length_s > stop_at:
                break
            if not self._sleep_until(begin, alive):
                break
            self.log.write("nemesis_step", step=step.step, combination=step.name, kind=step.kind)
            self._run_step(step, alive)
            ran += 1
            self.progress(
                f"t={time.monotonic() - started:.0f}s step {step.step} ({step.kind}) {step.name}: done, healed"
            )
        return ran

    def _run_step(self, step: Step, alive: Callable[[], bool]) -> None:
        begin = time.monotonic()
        actions = sorted(
            [(p.at_s, 0, i) for i, p in enumerate(step.faults)] + [(p.at_s + p.hold_s, 1, i) for i, p in enumerate(step.faults)]
        )  # fmt: skip
        active: dict[int, tuple[Fault, list[str]]] = {}
        fields = {"step": step.step, "combination": step.name}
        try:
            for at_s, release, i in actions:
                if not self._sleep_until(begin + at_s, alive):
                    return
                planned = step.faults[i]
                fault = FAULTS[planned.fault]
                if not release:
                    try:
                        targets = inject(fault, self.runtime, self.log, resolve(self.runtime, planned.target), **fields)
                        active[i] = (fault, targets)
                    except Exception as error:
                        self.log.write("fault_failed", fault=fault.name, error=str(error)[:300], **fields)
                elif i in active and fault.release is not None:
                    fault, targets = active.pop(i)
                    self._end(fault, targets, fields, lambda f=fault, t=targets: f.release(self.runtime, t))
        finally:
            self._heal_step(active, fields)

    def _end(self, fault: Fault, targets: list[str], fields: dict, action: Callable[[], None]) -> None:
        target = ",".join(targets)
        self.log.write("heal_start", fault=fault.name, target=target, **fields)
        try:
            action()
        except Exception as error:
            self.log.write("release_failed", fault=fault.name, error=str(error)[:300], **fields)
        self.log.write("fault_end", fault=fault.name, target=target, **fields)

    def _heal_step(self, active: dict[int, tuple[Fault, list[str]]], fields: dict) -> None:
        for fault, targets in active.values():
            self.log.write("heal_start", fault=fault.name, target=",".join(targets), **fields)
        for attempt in range(1, HEAL_ATTEMPTS + 1):
            try:
                heal_everything(self.runtime)
                break
            except (DeadlineExceeded, RuntimeError) as error:
                self.log.write("heal_failed", attempt=attempt, error=str(error)[:300], **fields)
                if attempt == HEAL_ATTEMPTS:
                    raise
        for fault, targets in active.values():
            self.log.write("fault_end", fault=fault.name, target=",".join(targets), **fields)

    @staticmethod
    def _sleep_until(deadline: float, alive: Callable[[], bool]) -> bool:
        while time.monotonic() < deadline:
            if not alive():
                return False
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return alive()
