"""The parts faults are made of: the Fault record, target choices, and inject, release and heal actions, each acting
only through the runtime interface (chaos/faults.py holds the catalogue)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import requests

from sessionproof import settings
from sessionproof.runtimes import disk
from sessionproof.runtimes.interface import Runtime
from sessionproof.waiting import wait_until

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
    heal: Callable[[Runtime, list[str]], None]  # idempotent; leaves the whole stack healthy
    # Undoes this fault alone, at once, without waiting for the topology (the nemesis overlaps faults: a
    # heal would also end the others). None: only heal ends it (network faults: the nemesis heals them
    # when its step ends).
    release: Callable[[Runtime, list[str]], None] | None = None


def first(kind: str) -> Callable[[Runtime], list[str]]:
    return lambda runtime: [runtime.nodes(kind)[0].name]


def redis_master(runtime: Runtime) -> list[str]:
    master = runtime.master_node()
    if master is None:
        raise RuntimeError("no Sentinel names a master; run `make up` to restore the stack first")
    return [master.name]


def kill_each(runtime: Runtime, targets: list[str]) -> None:
    for target in targets:
        runtime.kill(target)


def pause_each(runtime: Runtime, targets: list[str]) -> None:
    for target in targets:
        runtime.pause(target)


def restart_each(runtime: Runtime, targets: list[str]) -> None:
    """A rolling restart: one replica at a time, and the next goes only once nginx routes to this one again.

    Ready is not enough: nginx's passive check keeps a replica that failed out of
    rotation for NGINX_FAIL_TIMEOUT_S. Restarting the next one sooner can leave no
    replica in rotation ("no live upstreams", 502), which no real rolling deploy
    (one unavailable at a time) would do."""
    for target in targets:
        runtime.restart(target)
        wait_until(
            lambda target=target: served_by_through_entry(runtime, target),
            ROTATION_TIMEOUT_S,
            f"nginx to route requests to {target} again",
            interval_s=0.1,
        )


def served_by_through_entry(runtime: Runtime, target: str, attempts: int = 6) -> bool:
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
def fill(runtime: Runtime, targets: list[str]) -> None:
    """maxmemory below what the node uses: with noeviction, Redis refuses every write that needs memory (OOM)."""
    for target in targets:
        used = int(runtime.redis_info(target, "memory")["used_memory"])
        runtime.redis_config_set(target, "maxmemory", str(max(1, used // 2)))


def heal_fill(runtime: Runtime, targets: list[str]) -> None:
    """Idempotent: REDIS_MAXMEMORY on every Redis node again (a failover may have moved the master), then what
    heal_stack waits for."""
    restore_maxmemory(runtime, targets)
    heal_stack(runtime, [])


# ------------------------------------------------------------------ network faults
def names(runtime: Runtime, *kinds: str) -> list[str]:
    return [n.name for n in runtime.nodes() if n.kind in kinds]


def partition_from(peer_kinds: tuple[str, ...]) -> Callable[[Runtime, list[str]], None]:
    """Cut each target from every node of peer_kinds (but itself)."""

    def cut(runtime: Runtime, targets: list[str]) -> None:
        runtime.cut_links([(t, peer) for t in targets for peer in names(runtime, *peer_kinds) if peer != t])

    return cut


def minority_sides(runtime: Runtime) -> list[str]:
    """Side A: the master and the first Sentinel; side B (the rest of Redis and Sentinel) is the majority."""
    return [*redis_master(runtime), runtime.nodes("sentinel")[0].name]


def cut_sides(runtime: Runtime, side_a: list[str]) -> None:
    side_b = [n for n in names(runtime, "redis", "sentinel") if n not in side_a]
    runtime.cut_links([(a, b) for a in side_a for b in side_b])


def congest(runtime: Runtime, targets: list[str]) -> None:
    rate_kbit = settings.get_int("CONGEST_RATE_KBIT", runtime.config.env, minimum=8)
    for target in targets:
        runtime.congest(target, rate_kbit, CONGEST_BURST_KBIT, CONGEST_LATENCY_MS)


def heal_network(runtime: Runtime, targets: list[str]) -> None:
    """Idempotent: every link restored, then what heal_stack waits for. After a partition of the master that
    means Sentinel has demoted the old master and it has resynced from the new one: one settled master."""
    runtime.heal_network()
    heal_stack(runtime, targets)


# ------------------------------------------------------------------ releases (one fault alone, no wait)
def start_each(runtime: Runtime, targets: list[str]) -> None:
    """Start killed nodes again (resume paused ones); the topology settles on its own."""
    for target in targets:
        runtime.start(target)


def resume_each(runtime: Runtime, targets: list[str]) -> None:
    for target in targets:
        runtime.resume(target)


def restore_maxmemory(runtime: Runtime, targets: list[str]) -> None:
    """REDIS_MAXMEMORY on every running Redis node again (a failover may have moved the master)."""
    maxmemory = settings.get_str("REDIS_MAXMEMORY", runtime.config.env)
    for node in runtime.nodes("redis"):
        if runtime.is_running(node.name):
            runtime.redis_config_set(node.name, "maxmemory", maxmemory)


# ------------------------------------------------------------------ replicas
def replicas(runtime: Runtime) -> list[str]:
    """The running Redis nodes other than the one Sentinel names master, by name (a replica fault during a
    master kill must find the live replicas, not the dead master Sentinel has just replaced)."""
    master = runtime.master_node()
    return sorted(
        n.name
        for n in runtime.nodes("redis")
        if (master is None or n.name != master.name) and runtime.is_running(n.name)
    )


def first_replica(runtime: Runtime) -> list[str]:
    found = replicas(runtime)
    if not found:
        raise RuntimeError("no replica to target; run `make up` to restore the stack first")
    return found[:1]


# ------------------------------------------------------------------ in-band faults
def _each_running_redis(runtime: Runtime, *command: str) -> None:
    """Send `command` to every running Redis node, ignoring the ones that refuse it (nothing to undo there)."""
    for node in runtime.nodes("redis"):
        if runtime.is_running(node.name):
            try:
                runtime.redis_command(node.name, *command)
            except Exception:
                continue


# A read-only script that spins until ARGV[1] seconds have passed: the node answers nobody meanwhile (and BUSY
# after busy-reply-threshold); Sentinel, or SCRIPT KILL, can stop it because it wrote nothing.
BUSY_SCRIPT = """
local t = redis.call('TIME')
local started = tonumber(t[1]) + tonumber(t[2]) / 1e6
while true do
  local n = redis.call('TIME')
  if tonumber(n[1]) + tonumber(n[2]) / 1e6 - started > tonumber(ARGV[1]) then return 1 end
end
"""
BUSY_SCRIPT_LONGEST_S = 60  # the script ends by itself after this, should its heal never come


def busy_script(runtime: Runtime, targets: list[str]) -> None:
    """Start BUSY_SCRIPT on each target, from a thread (EVAL_RO does not return until the script ends). EVAL_RO,
    not EVAL: EVAL may write, so a CLIENT PAUSE WRITE (pause-writes-redis-master in the same step) held it back and
    the script never ran (a campaign's injection failed so)."""
    for target in targets:
        thread = threading.Thread(
            target=_run_busy_script, args=(runtime, target), name=f"busy-script-{target}", daemon=True
        )
        thread.start()
        wait_until(lambda target=target: is_busy(runtime, target), 10, f"{target} to run the busy script")


def _run_busy_script(runtime: Runtime, target: str) -> None:
    try:
        runtime.redis_command(target, "EVAL_RO", BUSY_SCRIPT, "0", str(BUSY_SCRIPT_LONGEST_S), timeout_s=None)
    except Exception:
        return


def is_busy(runtime: Runtime, target: str) -> bool:
    """Whether target no longer answers PING at once (the script holds it)."""
    try:
        runtime.redis_command(target, "PING", timeout_s=0.2)
    except Exception:
        return True
    return False


def kill_scripts(runtime: Runtime, targets: list[str]) -> None:
    _each_running_redis(runtime, "SCRIPT", "KILL")


def pause_writes(runtime: Runtime, targets: list[str]) -> None:
    """CLIENT PAUSE WRITE: every write waits (reads and Sentinel's pings pass, so no failover) until unpaused."""
    for target in targets:
        runtime.redis_command(target, "CLIENT", "PAUSE", str(BUSY_SCRIPT_LONGEST_S * 1000), "WRITE")


def unpause_clients(runtime: Runtime, targets: list[str]) -> None:
    _each_running_redis(runtime, "CLIENT", "UNPAUSE")


def heal_in_band(runtime: Runtime, targets: list[str]) -> None:
    """Idempotent: no script running, no client paused, REDIS_MAXMEMORY everywhere; then what heal_stack waits for."""
    kill_scripts(runtime, targets)
    unpause_clients(runtime, targets)
    restore_maxmemory(runtime, targets)
    heal_stack(runtime, [])


# ------------------------------------------------------------------ the disk
AOF_PROBE_KEY = "sessionproof:nemesis:aof-probe"  # a write that makes Redis append to its AOF now; expires in a minute


def aof_write_failing(runtime: Runtime, target: str) -> bool:
    """Whether target's last append to its AOF failed (INFO persistence aof_last_write_status:err)."""
    return runtime.redis_info(target, "persistence").get("aof_last_write_status") == "err"


def freeze_aof(runtime: Runtime, targets: list[str]) -> None:
    """Each target's AOF folder immutable (runtimes/disk.py): its next append fails, and from then on it refuses
    writes and PING with MISCONF, so Sentinel takes it for down. A write of our own makes that append happen now."""
    for target in targets:
        disk.freeze(runtime.aof_dir(target))
        # Refused already (MISCONF, or READONLY on a node that lost its role meanwhile): nothing to push then.
        with contextlib.suppress(Exception):
            runtime.redis_command(target, "SET", AOF_PROBE_KEY, "1", "PX", "60000")
        wait_until(lambda target=target: aof_write_failing(runtime, target), 10, f"{target} to fail writing its AOF")


def thaw_aof(runtime: Runtime, targets: list[str]) -> None:
    """Every Redis node's AOF folder writable again (the master may have moved since the inject): Redis retries the
    append each second and takes writes again once it succeeds."""
    for node in runtime.nodes("redis"):
        disk.writable_again(runtime.aof_dir(node.name))


def heal_aof(runtime: Runtime, targets: list[str]) -> None:
    """Idempotent: every AOF writable, then what heal_stack waits for."""
    thaw_aof(runtime, targets)
    heal_stack(runtime, [])
