"""`make scale`: what one live session costs in Redis, and whether latency stays flat as the store fills.

On the hardened stack, brought up with REDIS_MAXMEMORY=SCALE_MAXMEMORY so that the largest size fits, at
each size of SCALE_SIZES (default 10000 100000 1000000 live sessions):

- fill: a real session, made by the app through nginx (login and CART_ITEMS items), is read back from
  Redis and stored again under new ids (`sp:session:scale-<token>`) with pipelined `SET ... EX`, straight
  to the master, up to the size; then the replicas are awaited until they hold it all;
- bytes per session: the master's `used_memory` delta over the sessions added, and `MEMORY USAGE` of a
  sample;
- bytes per idempotency record: RECORD_WRITES `POST /cart/<item>` through nginx (each makes one record),
  the `used_memory` delta over the records made, and `MEMORY USAGE` of a sample;
- latency: the `latency` scenario through the harness (a fixed rate) for SCALE_LOAD_S: GET /cart and
  POST /cart/<item> p50 and p99;
- replica resync: one replica SIGKILLed and started; the time until the master sees it online again at
  its offset, and whether that took a full or a partial resync;
- AOF: the master's AOF size, and the time each Redis node takes to load its AOF on a full restart
  (every node SIGKILLed and started).

The fill sessions are deleted at the end (and REDIS_MAXMEMORY restored), also when the run fails.
Writes results/<UTC-time>-scale/ (summary.json, the harness runs under harness-<size>/), then runs its
report (`python -m sessionproof.analysis.scale_report FOLDER`: report.md, plots/scale.png). Exit status 0;
2 when it could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import redis
import requests

from sessionproof import runs, settings
from sessionproof.load.finish import report_and_point_latest, summary_header
from sessionproof.load.loadtest import run_headless
from sessionproof.runtimes.factory import get_runtime, run_versions
from sessionproof.runtimes.interface import Runtime
from sessionproof.waiting import DeadlineExceeded, wait_until

CART_ITEMS = 5  # a session holds a few items, as a shopper's would
FILL_PREFIX = "scale-"
FILL_BATCH = 2000  # SETs per pipeline
MEMORY_SAMPLES = 200
RECORD_WRITES = 2000
LOAD_SCENARIO = "latency"
SETTLE_TIMEOUT_S = 300.0
RESYNC_TIMEOUT_S = 300.0


def say(line: str) -> None:
    print(line, flush=True)


def master_client(runtime: Runtime) -> redis.Redis:
    master = runtime.master_node()
    if master is None:
        raise RuntimeError("no Sentinel names a master; `make up` first")
    return redis.Redis(
        host=master.host, port=master.port, password=runtime.config.get("REDIS_PASSWORD"), socket_timeout=60
    )


def template_session(base_url: str, cookie_name: str, client: redis.Redis, namespace: str) -> bytes:
    """A session as the app stores it: login and CART_ITEMS items through nginx, read back from Redis."""
    http = requests.Session()
    http.post(f"{base_url}/login", json={"user": f"scale-{secrets.token_hex(4)}"}, timeout=5).raise_for_status()
    for item in range(CART_ITEMS):
        http.post(f"{base_url}/cart/item{item}", timeout=5).raise_for_status()
    raw = client.get(f"{namespace}:session:{http.cookies.get(cookie_name)}")
    if raw is None:
        raise RuntimeError("the session just written through nginx is not on the master")
    return raw


def fill(client: redis.Redis, prefix: str, blob: bytes, count: int, ttl_s: int, progress) -> list[str]:
    """`count` more sessions holding `blob`, under fresh ids like the app's (43 url-safe characters)."""
    keys = []
    for start in range(0, count, FILL_BATCH):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(FILL_BATCH, count - start)):
            key = f"{prefix}{FILL_PREFIX}{secrets.token_urlsafe(32)}"
            keys.append(key)
            pipe.set(key, blob, ex=ttl_s)
        pipe.execute()
        progress(start + FILL_BATCH, count)
    return keys


def replicas_caught_up(client: redis.Redis) -> bool:
    info = client.info("replication")
    offset = info["master_repl_offset"]
    replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    return bool(replicas) and all(r.get("state") == "online" and r.get("offset") == offset for r in replicas)


def settle(client: redis.Redis) -> None:
    wait_until(lambda: replicas_caught_up(client), SETTLE_TIMEOUT_S, "the replicas to hold every write", 0.2)


def rewrite_aofs(runtime: Runtime) -> None:
    """BGREWRITEAOF on every Redis node, awaited: the AOFs then hold the live data alone, not the history of
    earlier fills and deletes, and no automatic rewrite (a fork) overlaps the measurements that follow."""
    password = runtime.config.get("REDIS_PASSWORD")
    clients = [redis.Redis(host=n.host, port=n.port, password=password, socket_timeout=10)
               for n in runtime.nodes("redis")]  # fmt: skip
    try:
        for client in clients:
            wait_until(lambda c=client: not int(c.info("persistence")["aof_rewrite_in_progress"]),
                       SETTLE_TIMEOUT_S, "a running AOF rewrite to end", 0.1)  # fmt: skip
            client.bgrewriteaof()
        for client in clients:
            wait_until(
                lambda c=client: not int(c.info("persistence")["aof_rewrite_in_progress"])
                and not int(c.info("persistence")["aof_rewrite_scheduled"]),
                SETTLE_TIMEOUT_S, "the AOF rewrite", 0.1,
            )  # fmt: skip
    finally:
        for client in clients:
            client.close()


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def memory_usage(client: redis.Redis, keys: list) -> float:
    """Median `MEMORY USAGE` of up to MEMORY_SAMPLES of `keys`, evenly spread; keys gone meanwhile are skipped."""
    sample = keys[:: max(1, len(keys) // MEMORY_SAMPLES)][:MEMORY_SAMPLES]
    sizes = [size for key in sample if (size := client.memory_usage(key, samples=0))]
    return statistics.median(sizes) if sizes else 0.0


def record_cost(base_url: str, client: redis.Redis, namespace: str, cookie_name: str) -> dict:
    """RECORD_WRITES writes through nginx, one idempotency record each: bytes per record two ways."""
    pattern = f"{namespace}:idempotency:*"
    before_keys = set(client.scan_iter(match=pattern, count=10_000))
    settle(client)
    before = used_memory(client)
    carts: list[requests.Session] = []
    for n in range(RECORD_WRITES):
        if n % 40 == 0:  # a fresh cart before CART_MAX_ITEMS (50) is reached
            carts.append(requests.Session())
        carts[-1].post(f"{base_url}/cart/r{n}", timeout=5).raise_for_status()
    settle(client)
    made = [k for k in client.scan_iter(match=pattern, count=10_000) if k not in before_keys]
    # The carts are sessions too: their own bytes are taken off the delta.
    cart_bytes = sum(
        client.memory_usage(f"{namespace}:session:{http.cookies.get(cookie_name)}", samples=0) or 0 for http in carts
    )
    delta = used_memory(client) - before - cart_bytes
    return {
        "writes": RECORD_WRITES,
        "records": len(made),
        "bytes_per_record_used_memory": round(delta / len(made), 1) if made else None,
        "bytes_per_record_memory_usage": memory_usage(client, [k.decode() for k in made]),
    }


def harness_latency(base_url: str, env: dict, out_dir: Path, duration_s: float) -> dict:
    summary = run_headless(LOAD_SCENARIO, base_url, env, out_dir, duration_s)  # HarnessRunError is a RuntimeError
    latency = summary.get("latency_us") or {}
    return {
        "run": os.path.relpath((out_dir / "latest").resolve(), out_dir.parent),
        "valid": summary.get("valid"),
        "failed": (summary.get("requests") or {}).get("failed"),
        **{
            name: {key: (latency.get(name) or {}).get(key) for key in ("p50", "p99", "p999", "count")}
            for name in ("GET /cart", "POST /cart/[item]")
        },
    }


def replica_resync(runtime: Runtime, client: redis.Redis) -> dict:
    """SIGKILL one replica, start it, and time until it has loaded, linked up and holds the master's offset."""
    name = next(name for name, role in runtime.redis_roles().items() if role == "replica")
    node = runtime.config.node(name)
    stats_before = client.info("stats")
    target_offset = client.info("replication")["master_repl_offset"]
    started = time.monotonic()
    runtime.kill(name)
    runtime.start(name)
    replica = redis.Redis(host=node.host, port=node.port, password=runtime.config.get("REDIS_PASSWORD"),
                          socket_timeout=2)  # fmt: skip

    def in_sync() -> bool:  # a LOADING error while it reads its AOF counts as "not yet"
        info = replica.info("replication")
        return (
            info.get("master_link_status") == "up"
            and not int(info.get("master_sync_in_progress", 1))
            and int(info.get("slave_repl_offset", -1)) >= target_offset
        )

    try:
        wait_until(in_sync, RESYNC_TIMEOUT_S, f"{name} to resync", 0.05)
    finally:
        replica.close()
    elapsed_s = time.monotonic() - started
    stats = client.info("stats")
    return {
        "node": name,
        "seconds": round(elapsed_s, 2),
        "full_syncs": stats["sync_full"] - stats_before["sync_full"],
        "partial_syncs": stats["sync_partial_ok"] - stats_before["sync_partial_ok"],
    }


def aof_restart(runtime: Runtime, password: str | None) -> dict:
    """Every Redis node SIGKILLed and started: the seconds until each answers again (its AOF loaded)."""
    nodes = runtime.nodes("redis")
    for node in nodes:
        runtime.kill(node.name)
    loaded_s = {}
    for node in nodes:
        runtime.start(node.name)
    started = time.monotonic()
    for node in nodes:
        probe = redis.Redis(host=node.host, port=node.port, password=password, socket_timeout=2)
        wait_until(lambda probe=probe: probe.ping(), RESYNC_TIMEOUT_S, f"{node.name} to load its AOF", 0.05)
        loaded_s[node.name] = round(time.monotonic() - started, 2)
        probe.close()
    runtime.up(timeout_s=RESYNC_TIMEOUT_S, progress=lambda *_: None)  # the topology settled again
    return {"seconds_until_answering": loaded_s, "max_s": max(loaded_s.values())}


def aof_bytes(client: redis.Redis) -> int:
    info = client.info("persistence")
    return int(info.get("aof_current_size", 0))


def unlink(client: redis.Redis, keys: Iterable) -> int:
    """UNLINK every key, 10k per command; how many existed."""
    deleted, batch = 0, []
    for key in keys:
        batch.append(key)
        if len(batch) >= 10_000:
            deleted += client.unlink(*batch)
            batch = []
    return deleted + (client.unlink(*batch) if batch else 0)


def delete_fill(client: redis.Redis, namespace: str) -> int:
    return unlink(client, client.scan_iter(match=f"{namespace}:session:{FILL_PREFIX}*", count=10_000))


def measure_size(
    runtime: Runtime, args, size: int, filled: int, blob: bytes, out_dir: Path, fill_keys: list[str]
) -> dict:
    env = runtime.config.env
    namespace = settings.get_str("SESSION_NAMESPACE", env)
    ttl_s = settings.get_int("SESSION_IDLE_TTL_S", env, minimum=1)
    base_url, cookie = runtime.config.entry_url, runtime.config.get("SESSION_COOKIE_NAME")
    client = master_client(runtime)
    settle(client)
    before = used_memory(client)
    added = size - filled
    started = time.monotonic()
    keys = fill(client, f"{namespace}:session:", blob, added, ttl_s,
                lambda done, total: done % 100_000 < FILL_BATCH and say(f"    filled {min(done, total)} of {total}"))  # fmt: skip
    settle(client)
    fill_s = time.monotonic() - started
    after = used_memory(client)
    say(f"  {size} sessions: {(after - before) / max(added, 1):.0f} bytes each (used_memory), fill {fill_s:.1f} s")
    figures = {
        "sessions": size,
        "fill_s": round(fill_s, 1),
        "used_memory_bytes": after,
        "bytes_per_session_used_memory": round((after - before) / added, 1) if added else None,
        "bytes_per_session_memory_usage": memory_usage(client, keys),
        "session_value_bytes": len(blob),
    }
    figures["idempotency"] = record_cost(base_url, client, namespace, cookie)
    say(f"  records: {figures['idempotency']['bytes_per_record_used_memory']} bytes each (used_memory)")
    fill_keys.extend(keys)
    rewrite_aofs(runtime)
    figures["latency"] = harness_latency(base_url, {**os.environ, **env}, out_dir / f"harness-{size}", args.load_s)
    figures["latency_repeats"] = [figures["latency"]]
    say(f"  GET /cart p99 {figures['latency']['GET /cart']['p99']} µs; resyncing a replica")
    figures["replica_resync"] = replica_resync(runtime, client)
    figures["aof_bytes"] = aof_bytes(client)
    client.close()
    say(f"  resync {figures['replica_resync']['seconds']} s; full restart (AOF {figures['aof_bytes']} bytes)")
    figures["full_restart"] = aof_restart(runtime, runtime.config.get("REDIS_PASSWORD"))
    return figures


def alternate_latency(runtime: Runtime, args, steps: list[dict], blob: bytes, out_dir: Path,
                      fill_keys: list[str]) -> None:  # fmt: skip
    """The latency at the smallest and the largest size again, args.repeats times in turn: one 30 s run per size
    is within this machine's noise, so the report compares medians of several, taken alternately."""
    env = runtime.config.env
    namespace = settings.get_str("SESSION_NAMESPACE", env)
    ttl_s = settings.get_int("SESSION_IDLE_TTL_S", env, minimum=1)
    smallest, largest = steps[0], steps[-1]
    client = master_client(runtime)
    for repeat in range(1, args.repeats + 1):
        for step, wanted in ((smallest, smallest["sessions"]), (largest, largest["sessions"])):
            if len(fill_keys) > wanted:
                unlink(client, fill_keys[wanted:])
                del fill_keys[wanted:]
            else:
                fill_keys.extend(fill(client, f"{namespace}:session:", blob, wanted - len(fill_keys), ttl_s,
                                      lambda *_: None))  # fmt: skip
            settle(client)
            rewrite_aofs(runtime)
            say(f"[repeat {repeat}/{args.repeats}] latency at {wanted} live sessions")
            run = harness_latency(runtime.config.entry_url, {**os.environ, **env},
                                  out_dir / f"harness-{wanted}", args.load_s)  # fmt: skip
            step["latency_repeats"].append(run)
    client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.load.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--sizes", default=settings.get_str("SCALE_SIZES"), help="live sessions at each step")
    parser.add_argument("--maxmemory", default=settings.get_str("SCALE_MAXMEMORY"), help="Redis maxmemory for the run")
    parser.add_argument("--load-s", type=float, default=settings.get_float("SCALE_LOAD_S"))
    parser.add_argument("--repeats", type=int, default=settings.get_int("SCALE_REPEATS", minimum=0),
                        help="latency runs again at the smallest and largest size, in turn")  # fmt: skip
    args = parser.parse_args(argv)
    base = get_runtime()
    runtime = get_runtime({**base.config.env, "SESSION_LAYER": "hardened", "REDIS_MAXMEMORY": args.maxmemory})
    try:
        sizes = sorted({int(size) for size in args.sizes.split()})
        if not sizes or sizes[0] <= 0:
            raise settings.ConfigError(f"SCALE_SIZES: {args.sizes!r} must be positive whole numbers")
        out_dir = runs.reserve_run_dir("scale")
        say(f"== the hardened stack with REDIS_MAXMEMORY={args.maxmemory}")
        runtime.up(progress=lambda *_: None)
        namespace = settings.get_str("SESSION_NAMESPACE", runtime.config.env)
        client = master_client(runtime)
        blob = template_session(runtime.config.entry_url, runtime.config.get("SESSION_COOKIE_NAME"), client, namespace)
        client.close()
        steps, filled, fill_keys = [], 0, []
        for n, size in enumerate(sizes, 1):
            say(f"[{n}/{len(sizes)}] {size} live sessions")
            steps.append(measure_size(runtime, args, size, filled, blob, out_dir, fill_keys))
            filled = size
        if len(sizes) > 1:
            alternate_latency(runtime, args, steps, blob, out_dir, fill_keys)
        summary = {
            **summary_header(out_dir, runtime.config.env),
            "versions": run_versions(runtime.config.env),
            "settings": {
                "sizes": sizes,
                "maxmemory": args.maxmemory,
                "load_s": args.load_s,
                "repeats": args.repeats,
                "cart_items": CART_ITEMS,
                "record_writes": RECORD_WRITES,
            },
            "steps": steps,
        }
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    except (settings.ConfigError, DeadlineExceeded, RuntimeError, redis.RedisError, requests.RequestException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        _clean_up(runtime, base)
    return report_and_point_latest("scale_report", out_dir)


def _clean_up(runtime: Runtime, base: Runtime) -> None:
    """The fill sessions deleted, then REDIS_MAXMEMORY as configured again (a full store otherwise)."""
    try:
        client = master_client(runtime)
        deleted = delete_fill(client, settings.get_str("SESSION_NAMESPACE", runtime.config.env))
        client.close()
        say(f"deleted {deleted} fill sessions")
        base.up(progress=lambda *_: None)
    except (RuntimeError, redis.RedisError, DeadlineExceeded) as error:
        print(f"warning: could not clean up ({error}); `make down && make clean && make up` starts afresh",
              file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
