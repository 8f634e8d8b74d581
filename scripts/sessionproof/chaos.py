"""Faults: each an inject and an idempotent heal, acting only through the runtime interface.

    python -m sessionproof.chaos kill-redis-master            # inject, hold, heal
    python -m sessionproof.chaos pause-app --hold-s 5 --target app-2
    python -m sessionproof.chaos kill-app --inject-only       # and later: --heal-only

Faults use SIGKILL and SIGSTOP, never SIGTERM: Redis 7 waits for its replicas on
SIGTERM, which would hide the losses the harness is there to show. Each inject
and heal is written, with timestamps, to the events.jsonl of the load run in
progress (results/.current-run), or to the stack's logs when no run is going.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from sessionproof_app import settings

from . import runs
from .runtime import Runtime, get_runtime
from .waiting import DeadlineExceeded, wait_until

HEAL_TIMEOUT_S = 60.0
ROTATION_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    default_hold_s: float  # how long the fault lasts before heal when run by hand
    choose_target: Callable[[Runtime], list[str]]
    inject: Callable[[Runtime, list[str]], None]
    heal: Callable[[Runtime, list[str]], None]


def _first(kind: str) -> Callable[[Runtime], list[str]]:
    return lambda runtime: [runtime.nodes(kind)[0].name]


def _redis_master(runtime: Runtime) -> list[str]:
    master = runtime.master_node()
    if master is None:
        raise RuntimeError("no Sentinel names a master; run `make up` to restore the stack first")
    return [master.name]


def _kill_each(runtime: Runtime, targets: list[str]) -> None:
    for target in targets:
        runtime.kill(target)


def _pause_each(runtime: Runtime, targets: list[str]) -> None:
    for target in targets:
        runtime.pause(target)


def _restart_each(runtime: Runtime, targets: list[str]) -> None:
    """A rolling restart: one replica at a time, and the next goes only once nginx routes to this one again.

    Ready is not enough: nginx's passive check keeps a replica that failed out of
    rotation for NGINX_FAIL_TIMEOUT_S. Restarting the next one sooner can leave no
    replica in rotation ("no live upstreams", 502), which no real rolling deploy
    (one unavailable at a time) would do."""
    for target in targets:
        runtime.restart(target)
        wait_until(
            lambda target=target: _served_by_through_entry(runtime, target),
            ROTATION_TIMEOUT_S,
            f"nginx to route requests to {target} again",
            interval_s=0.1,
        )


def _served_by_through_entry(runtime: Runtime, target: str, attempts: int = 6) -> bool:
    """Whether one of a few GET /ping through the entry point is answered by target (round robin)."""
    with requests.Session() as http:
        for _ in range(attempts):
            try:
                response = http.get(f"{runtime.config.entry_url}/ping", timeout=2)
            except requests.RequestException:
                continue
            if response.headers.get("X-Served-By") == target:
                return True
    return False


def heal_stack(runtime: Runtime, targets: list[str]) -> None:
    """Idempotent: every node running and unpaused, the topology healthy (1 master, 2 replicas, 3 sentinels)."""
    for target in targets:
        runtime.start(target)  # starts a killed node, resumes a paused one, leaves a healthy one alone
    runtime.up(timeout_s=HEAL_TIMEOUT_S, progress=lambda *_: None)


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "kill-app",
            "SIGKILL one app replica; it comes back after the hold",
            5,
            _first("app"),
            _kill_each,
            heal_stack,
        ),
        Fault(
            "pause-app", "SIGSTOP one app replica for the hold, then SIGCONT", 5, _first("app"), _pause_each, heal_stack
        ),
        Fault(
            "restart-apps",
            "rolling restart of every app replica (graceful, one at a time)",
            0,
            lambda runtime: [n.name for n in runtime.nodes("app")],
            _restart_each,
            heal_stack,
        ),
        Fault(
            "kill-redis-master",
            "SIGKILL the node Sentinel names master; it rejoins as a replica when healed",
            8,
            _redis_master,
            _kill_each,
            heal_stack,
        ),
        Fault(
            "pause-redis-master",
            "SIGSTOP the master for the hold, then SIGCONT",
            5,
            _redis_master,
            _pause_each,
            heal_stack,
        ),
        Fault(
            "kill-sentinel",
            "SIGKILL one Sentinel; it comes back after the hold",
            5,
            _first("sentinel"),
            _kill_each,
            heal_stack,
        ),
        Fault(
            "restart-redis-all",
            "SIGKILL every Redis node, start them after the hold: sessions must come back from the AOF",
            3,
            lambda runtime: [n.name for n in runtime.nodes("redis")],
            _kill_each,
            heal_stack,
        ),
    )
}


class EventLog:
    """Appends events to a run's raw/events.jsonl (one JSON object per line)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, type_: str, **fields) -> dict:
        event = {"t": time.time(), "type": type_, **fields}
        with self.path.open("a") as out:
            out.write(json.dumps(event) + "\n")
        return event


def default_event_log(runtime: Runtime) -> EventLog:
    run_dir = runs.current_run()
    if run_dir is not None:
        return EventLog(run_dir / "raw" / "events.jsonl")
    return EventLog(runtime.config.state_dir / "logs" / "chaos-events.jsonl")


def inject(fault: Fault, runtime: Runtime, log: EventLog, targets: list[str] | None = None) -> list[str]:
    targets = targets or fault.choose_target(runtime)
    log.write("fault_start", fault=fault.name, target=",".join(targets))
    fault.inject(runtime, targets)
    log.write("fault_injected", fault=fault.name, target=",".join(targets))
    return targets


def heal(fault: Fault, runtime: Runtime, log: EventLog, targets: list[str]) -> None:
    log.write("heal_start", fault=fault.name, target=",".join(targets))
    fault.heal(runtime, targets)
    log.write("fault_end", fault=fault.name, target=",".join(targets))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sessionproof.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("fault", choices=sorted(FAULTS), help="what to break")
    parser.add_argument("--target", help="node name (default: the fault's own choice, e.g. the current master)")
    parser.add_argument("--hold-s", type=float, help="seconds between inject and heal (default: the fault's)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--inject-only", action="store_true")
    mode.add_argument("--heal-only", action="store_true")
    args = parser.parse_args(argv)
    fault = FAULTS[args.fault]
    try:
        runtime = get_runtime()
        log = default_event_log(runtime)
        if args.heal_only:
            targets = [args.target] if args.target else [n.name for n in runtime.nodes()]
            heal(fault, runtime, log, targets)
            print(f"healed: {fault.name}; every node is up and the topology is healthy")
            return 0
        targets = inject(fault, runtime, log, [args.target] if args.target else None)
        print(f"injected {fault.name} on {', '.join(targets)} ({fault.description}); events: {log.path}")
        if args.inject_only:
            print(f"heal with: make chaos FAULT={fault.name} HEAL=1")
            return 0
        hold_s = fault.default_hold_s if args.hold_s is None else args.hold_s
        time.sleep(max(0.0, hold_s))  # the fault's duration is the point here, not a wait for a condition
        heal(fault, runtime, log, targets)
        print(f"healed {fault.name} after {hold_s:g}s; every node is up and the topology is healthy")
        return 0
    except (RuntimeError, KeyError, DeadlineExceeded, settings.ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
