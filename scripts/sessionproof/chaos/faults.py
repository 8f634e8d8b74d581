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
from collections.abc import Callable
from dataclasses import dataclass

import requests

from sessionproof import runs, settings
from sessionproof.runs import EventLog
from sessionproof.runtimes.factory import get_runtime
from sessionproof.runtimes.interface import Runtime
from sessionproof.waiting import DeadlineExceeded, wait_until

HEAL_TIMEOUT_S = 60.0
ROTATION_TIMEOUT_S = 30.0
# congest-redis-master: tbf lets a burst through, queues what exceeds the rate for up to
# CONGEST_LATENCY_MS and drops the rest (the kernel here has no netem to add plain delay).
CONGEST_BURST_KBIT = 32
CONGEST_LATENCY_MS = 200


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


# ------------------------------------------------------------------ a full store
def _fill(runtime: Runtime, targets: list[str]) -> None:
    """maxmemory below what the node uses: with noeviction, Redis refuses every write that needs memory (OOM)."""
    for target in targets:
        used = int(runtime.redis_info(target, "memory")["used_memory"])
        runtime.redis_config_set(target, "maxmemory", str(max(1, used // 2)))


def heal_fill(runtime: Runtime, targets: list[str]) -> None:
    """Idempotent: REDIS_MAXMEMORY on every Redis node again (a failover may have moved the master), then what
    heal_stack waits for."""
    maxmemory = settings.get_str("REDIS_MAXMEMORY", runtime.config.env)
    for node in runtime.nodes("redis"):
        if runtime.is_running(node.name):
            runtime.redis_config_set(node.name, "maxmemory", maxmemory)
    heal_stack(runtime, [])


# ------------------------------------------------------------------ network faults
def _names(runtime: Runtime, *kinds: str) -> list[str]:
    return [n.name for n in runtime.nodes() if n.kind in kinds]


def _partition_from(peer_kinds: tuple[str, ...]) -> Callable[[Runtime, list[str]], None]:
    """Cut each target from every node of peer_kinds (but itself)."""

    def cut(runtime: Runtime, targets: list[str]) -> None:
        runtime.cut_links([(t, peer) for t in targets for peer in _names(runtime, *peer_kinds) if peer != t])

    return cut


def _minority_sides(runtime: Runtime) -> list[str]:
    """Side A: the master and the first Sentinel; side B (the rest of Redis and Sentinel) is the majority."""
    return [*_redis_master(runtime), runtime.nodes("sentinel")[0].name]


def _cut_sides(runtime: Runtime, side_a: list[str]) -> None:
    side_b = [n for n in _names(runtime, "redis", "sentinel") if n not in side_a]
    runtime.cut_links([(a, b) for a in side_a for b in side_b])


def _congest(runtime: Runtime, targets: list[str]) -> None:
    rate_kbit = settings.get_int("CONGEST_RATE_KBIT", runtime.config.env, minimum=8)
    for target in targets:
        runtime.congest(target, rate_kbit, CONGEST_BURST_KBIT, CONGEST_LATENCY_MS)


def heal_network(runtime: Runtime, targets: list[str]) -> None:
    """Idempotent: every link restored, then what heal_stack waits for. After a partition of the master that
    means Sentinel has demoted the old master and it has resynced from the new one: one settled master."""
    runtime.heal_network()
    heal_stack(runtime, targets)


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
            "fill-redis",
            "lower the master's maxmemory to half its use: it refuses writes (OOM) until healed",
            5,
            _redis_master,
            _fill,
            heal_fill,
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
        Fault(
            "partition-redis-master",
            "cut the master off from every Sentinel and replica (the apps still reach it) until Sentinel has promoted "
            "a replica; heal: the old master is demoted and resyncs",
            10,
            _redis_master,
            _partition_from(("redis", "sentinel")),
            heal_network,
        ),
        Fault(
            "partition-app",
            "cut one app replica off from every Redis and Sentinel (nginx still reaches it)",
            10,
            _first("app"),
            _partition_from(("redis", "sentinel")),
            heal_network,
        ),
        Fault(
            "isolate-sentinel",
            "cut one Sentinel off from every other node (Redis, Sentinels, apps)",
            10,
            _first("sentinel"),
            _partition_from(("redis", "sentinel", "app")),
            heal_network,
        ),
        Fault(
            "partition-sentinels-minority",
            "the master and one Sentinel on one side, two Sentinels and both replicas on the other; "
            "the apps reach both",
            10,
            _minority_sides,
            _cut_sides,
            heal_network,
        ),
        Fault(
            "congest-redis-master",
            "slow the master's link both ways to CONGEST_RATE_KBIT with a tbf queue (what exceeds it waits, then drops)",
            10,
            _redis_master,
            _congest,
            heal_network,
        ),
    )
}
NETWORK_FAULTS = frozenset(name for name, fault in FAULTS.items() if fault.heal is heal_network)


def refusal(fault_name: str, runtime: Runtime) -> str | None:
    """Why runtime cannot run this fault (a network fault on a stack without per-node addresses), or None."""
    if fault_name in NETWORK_FAULTS:
        reason = runtime.network_refusal()
        return None if reason is None else f"{fault_name}: {reason}"
    return None


def default_event_log(runtime: Runtime) -> EventLog:
    run_dir = runs.current_run()
    if run_dir is not None:
        return EventLog(run_dir / "raw" / "events.jsonl")
    return EventLog(runtime.config.state_dir / "logs" / "chaos-events.jsonl")


def inject(fault: Fault, runtime: Runtime, log: EventLog, targets: list[str] | None = None) -> list[str]:
    reason = refusal(fault.name, runtime)
    if reason is not None:
        raise RuntimeError(reason)  # at once: before any event says the fault started
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
