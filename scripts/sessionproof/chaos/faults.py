"""Faults: each an inject and an idempotent heal, acting only through the runtime interface.

    python -m sessionproof.chaos.faults kill-redis-master            # inject, hold, heal
    python -m sessionproof.chaos.faults pause-app --hold-s 5 --target app-2
    python -m sessionproof.chaos.faults kill-app --inject-only       # and later: --heal-only

Redis faults use SIGKILL and SIGSTOP, never SIGTERM: Redis 7 waits for its replicas
on SIGTERM, which would hide the losses the harness is there to show. Only the rolling
restart of the apps (restart-apps) stops gracefully, with SIGTERM, as a deployment would. Network faults
(partition-*, isolate-sentinel, congest-redis-master) cut or slow chosen links between
nodes and need a stack with NETWORK=netns; on any other they fail at once, saying why. Each inject
and heal is written, with timestamps, to the events.jsonl of the load run in
progress (results/.current-run), or to the stack's logs when no run is going.
"""

from __future__ import annotations

import argparse
import sys
import time

from sessionproof import runs, settings
from sessionproof.chaos.fault_kit import (
    Fault,
    busy_script,
    congest,
    cut_sides,
    fill,
    first,
    first_replica,
    freeze_aof,
    heal_aof,
    heal_fill,
    heal_in_band,
    heal_network,
    heal_stack,
    kill_each,
    kill_scripts,
    minority_sides,
    names,
    partition_from,
    pause_each,
    pause_writes,
    redis_master,
    restart_each,
    restore_maxmemory,
    resume_each,
    start_each,
    thaw_aof,
    unpause_clients,
)
from sessionproof.runs import EventLog
from sessionproof.runtimes.factory import get_runtime
from sessionproof.runtimes.interface import Runtime
from sessionproof.waiting import DeadlineExceeded


def _cut_from_master(runtime: Runtime, targets: list[str]) -> None:
    master = redis_master(runtime)[0]
    runtime.cut_links([(t, master) for t in targets if t != master])


def _cut_from_two_sentinels(runtime: Runtime, targets: list[str]) -> None:
    """The first two Sentinels lose sight of each target; the third still sees it: the Sentinels disagree."""
    sentinels = names(runtime, "sentinel")[:2]
    runtime.cut_links([(t, s) for t in targets for s in sentinels])


def _cut_apps_from_sentinels(runtime: Runtime, targets: list[str]) -> None:
    runtime.cut_links([(a, s) for a in names(runtime, "app") for s in names(runtime, "sentinel")])


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault(
            "kill-app",
            "SIGKILL one app replica; it comes back after the hold",
            5, first("app"), kill_each, heal_stack, start_each,
        ),
        Fault(
            "pause-app",
            "SIGSTOP one app replica for the hold, then SIGCONT",
            5, first("app"), pause_each, heal_stack, resume_each,
        ),
        Fault(
            "restart-apps",
            "rolling restart of every app replica (graceful, one at a time)",
            0, lambda runtime: [n.name for n in runtime.nodes("app")], restart_each, heal_stack,
        ),
        Fault(
            "kill-redis-master",
            "SIGKILL the node Sentinel names master; it rejoins as a replica when healed",
            8, redis_master, kill_each, heal_stack, start_each,
        ),
        Fault(
            "pause-redis-master",
            "SIGSTOP the master for the hold, then SIGCONT",
            5, redis_master, pause_each, heal_stack, resume_each,
        ),
        Fault(
            "kill-redis-replica",
            "SIGKILL one replica; it starts again from its own (older) data when healed",
            8, first_replica, kill_each, heal_stack, start_each,
        ),
        Fault(
            "pause-redis-replica",
            "SIGSTOP one replica (the master keeps it online until repl-timeout), then SIGCONT",
            8, first_replica, pause_each, heal_stack, resume_each,
        ),
        Fault(
            "fill-redis",
            "lower the master's maxmemory to half its use: it refuses writes (OOM) until healed",
            5, redis_master, fill, heal_fill, restore_maxmemory,
        ),
        Fault(
            "busy-script-redis-master",
            "a read-only Lua script spins on the master: it answers nobody, then BUSY, until Sentinel or the heal "
            "kills it (SCRIPT KILL)",
            8, redis_master, busy_script, heal_in_band, kill_scripts,
        ),
        Fault(
            "pause-writes-redis-master",
            "CLIENT PAUSE WRITE on the master: writes wait, reads and Sentinel's pings pass (no failover) until "
            "CLIENT UNPAUSE",
            5, redis_master, pause_writes, heal_in_band, unpause_clients,
        ),
        Fault(
            "aof-unwritable-redis-master",
            "the master's AOF folder made immutable (chattr +i): its appends fail, it refuses writes and PING with "
            "MISCONF (as on a full disk) and Sentinel fails it over; writable again at the release",
            8, redis_master, freeze_aof, heal_aof, thaw_aof,
        ),
        Fault(
            "kill-sentinel",
            "SIGKILL one Sentinel; it comes back after the hold",
            5, first("sentinel"), kill_each, heal_stack, start_each,
        ),
        Fault(
            "restart-redis-all",
            "SIGKILL every Redis node, start them after the hold: sessions must come back from the AOF",
            3, lambda runtime: [n.name for n in runtime.nodes("redis")], kill_each, heal_stack, start_each,
        ),
        Fault(
            "partition-redis-master",
            "cut the master off from every Sentinel and replica (the apps still reach it) until Sentinel has promoted "
            "a replica; heal: the old master is demoted and resyncs",
            10, redis_master, partition_from(("redis", "sentinel")), heal_network,
        ),
        Fault(
            "partition-app",
            "cut one app replica off from every Redis and Sentinel (nginx still reaches it)",
            10, first("app"), partition_from(("redis", "sentinel")), heal_network,
        ),
        Fault(
            "isolate-sentinel",
            "cut one Sentinel off from every other node (Redis, Sentinels, apps)",
            10, first("sentinel"), partition_from(("redis", "sentinel", "app")), heal_network,
        ),
        Fault(
            "partition-sentinels-minority",
            "the master and one Sentinel on one side, two Sentinels and both replicas on the other; "
            "the apps reach both",
            10, minority_sides, cut_sides, heal_network,
        ),
        Fault(
            "congest-redis-master",
            "slow the master's link both ways to CONGEST_RATE_KBIT with a tbf queue (what exceeds it waits, then drops)",
            10, redis_master, congest, heal_network,
        ),
        Fault(
            "cut-replica-from-master",
            "cut one replica's link to the master only: the Sentinels still see it healthy, and could promote it",
            10, first_replica, _cut_from_master, heal_network,
        ),
        Fault(
            "hide-replica-from-sentinels",
            "cut one replica off from every Sentinel only: it still replicates (and confirms writes), but no "
            "Sentinel can promote it",
            10, first_replica, partition_from(("sentinel",)), heal_network,
        ),
        Fault(
            "split-sentinel-views",
            "cut one replica off from two of the three Sentinels: the third still sees it up (the Sentinels disagree)",
            10, first_replica, _cut_from_two_sentinels, heal_network,
        ),
        Fault(
            "cut-apps-from-sentinels",
            "cut every app replica off from every Sentinel (the apps still reach Redis)",
            10, lambda runtime: [], _cut_apps_from_sentinels, heal_network,
        ),
    )
}  # fmt: skip
NETWORK_FAULTS = frozenset(name for name, fault in FAULTS.items() if fault.heal is heal_network)
DISK_FAULTS = frozenset(name for name, fault in FAULTS.items() if fault.heal is heal_aof)


def refusal(fault_name: str, runtime: Runtime) -> str | None:
    """Why runtime cannot run this fault (a network fault on a stack without per-node addresses, a disk fault where
    the AOF is out of this host's reach), or None."""
    if fault_name in NETWORK_FAULTS:
        reason = runtime.network_refusal()
        return None if reason is None else f"{fault_name}: {reason}"
    if fault_name in DISK_FAULTS:
        try:
            runtime.aof_dir(runtime.config.redis_nodes[0].name)  # from the config: asking costs no cluster call
        except RuntimeError as error:  # the runtime keeps the AOF where this host cannot reach it
            return f"{fault_name}: {error}"
    return None


def default_event_log(runtime: Runtime) -> EventLog:
    run_dir = runs.current_run()
    if run_dir is not None:
        return EventLog(run_dir / "raw" / "events.jsonl")
    return EventLog(runtime.config.state_dir / "logs" / "chaos-events.jsonl")


def inject(fault: Fault, runtime: Runtime, log: EventLog, targets: list[str] | None = None, **fields) -> list[str]:
    """Inject fault; `fields` (the nemesis's step and combination) go into both events."""
    reason = refusal(fault.name, runtime)
    if reason is not None:
        raise RuntimeError(reason)  # at once: before any event says the fault started
    targets = targets or fault.choose_target(runtime)
    log.write("fault_start", fault=fault.name, target=",".join(targets), **fields)
    fault.inject(runtime, targets)
    log.write("fault_injected", fault=fault.name, target=",".join(targets), **fields)
    return targets


def heal(fault: Fault, runtime: Runtime, log: EventLog, targets: list[str], **fields) -> None:
    log.write("heal_start", fault=fault.name, target=",".join(targets), **fields)
    fault.heal(runtime, targets)
    log.write("fault_end", fault=fault.name, target=",".join(targets), **fields)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sessionproof.chaos.faults",
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
