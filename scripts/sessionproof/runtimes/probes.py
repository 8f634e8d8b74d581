"""Read-only looks at a running stack: Redis roles, Sentinel's view, HTTP health."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

PROBE_TIMEOUT_S = 0.5


def redis_client(
    host: str, port: int, password: str, timeout_s: float | None = PROBE_TIMEOUT_S, retries: int | None = None
) -> redis.Redis:
    """A client of one node; timeout_s None: a command may take as long as it takes (a fault's busy script);
    retries None: redis-py's default retries."""
    return redis.Redis(
        host=host,
        port=port,
        password=password,
        **({} if retries is None else {"retry": Retry(NoBackoff(), retries)}),
        socket_timeout=timeout_s,
        socket_connect_timeout=PROBE_TIMEOUT_S,
        decode_responses=True,
    )


def redis_replication(host: str, port: int, password: str) -> dict | None:
    """INFO replication of one node, or None when it does not answer."""
    try:
        with redis_client(host, port, password) as client:
            return client.info("replication")
    except redis.RedisError:
        return None


@dataclass(frozen=True)
class SentinelView:
    master: tuple[str, int] | None
    replicas: list[tuple[str, int, str]]  # host, port, flags
    other_sentinels: int
    master_flags: str


def sentinel_view(host: str, port: int, password: str, master_name: str) -> SentinelView | None:
    try:
        with redis_client(host, port, password) as client:
            master = client.execute_command("SENTINEL", "MASTER", master_name)
            master = _pairs(master)
            replicas = [_pairs(r) for r in client.execute_command("SENTINEL", "REPLICAS", master_name)]
    except redis.RedisError:
        return None
    return SentinelView(
        master=(master["ip"], int(master["port"])),
        replicas=[(r["ip"], int(r["port"]), r["flags"]) for r in replicas],
        other_sentinels=int(master.get("num-other-sentinels", 0)),
        master_flags=master["flags"],
    )


def _pairs(reply) -> dict:
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


def http_get_json(url: str, timeout_s: float = 1.0) -> tuple[int, dict | None]:
    """Status and JSON body of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"null")
        except ValueError:
            return error.code, None
    except (OSError, ValueError):
        return 0, None


def http_ok(url: str) -> bool:
    return http_get_json(url)[0] == 200


def http_status(url: str, timeout_s: float = 1.0) -> int:
    """Status of a GET whatever its body (an exporter's /metrics is text); 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def prometheus_targets(prometheus_url: str) -> list[dict] | None:
    """Prometheus's active targets (job, node, health, lastError), or None when it does not answer."""
    code, body = http_get_json(f"{prometheus_url}/api/v1/targets?state=active")
    if code != 200 or not isinstance(body, dict):
        return None
    return [
        {
            "job": t["labels"].get("job"),
            "node": t["labels"].get("node"),
            "health": t.get("health"),
            "last_error": t.get("lastError", ""),
        }
        for t in body.get("data", {}).get("activeTargets", [])
    ]


def redis_command(host: str, port: int, password: str, args: tuple[str, ...], timeout_s: float | None):
    """One command on one node (a fault's in-band action), on a connection of its own, tried once: a timeout
    is an answer here (the node is held by a script, paused, ...)."""
    with redis_client(host, port, password, timeout_s, retries=0) as client:
        return client.execute_command(*args)
