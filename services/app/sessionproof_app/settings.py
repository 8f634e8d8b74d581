"""Every configuration name of sessionproof, with its default and meaning.

This module is the one home of configuration: the app, the local runtime and
compose and k8s read the same names. `python -m sessionproof.stack
config` prints the table, and the README's table is checked against it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    doc: str
    scope: str  # "app" (read by the app) or "stack" (read by the runtime)


SETTINGS: tuple[Setting, ...] = (
    # --- the app ---------------------------------------------------------
    Setting("INSTANCE_ID", "<hostname>", "Name of this app replica, returned as servedBy and X-Served-By.", "app"),
    Setting(
        "SENTINELS",
        "127.0.0.1:26380,127.0.0.1:26381,127.0.0.1:26382",
        "Comma-separated host:port of every Sentinel (the local runtime derives it from SENTINEL_PORT_BASE).",
        "app",
    ),
    Setting("REDIS_MASTER_NAME", "sessionproof", "Name under which Sentinel monitors the Redis master.", "app"),
    Setting(
        "REDIS_PASSWORD",
        "sessionproof-dev-password",
        "Password of Redis and Sentinel (requirepass, masterauth, auth-pass). Change it outside a laptop.",
        "app",
    ),
    Setting(
        "REDIS_PASSWORD_FILE",
        "",
        "File holding the Redis password (a Docker or Kubernetes secret); when set, it wins over REDIS_PASSWORD.",
        "app",
    ),
    Setting("SESSION_NAMESPACE", "sp", "Prefix of every Redis key the app writes (`<ns>:session:<sid>`).", "app"),
    Setting("SESSION_IDLE_TTL_S", "1800", "Sliding idle timeout: a session unused this long expires.", "app"),
    Setting(
        "SESSION_ABSOLUTE_LIFETIME_S",
        "43200",
        "Hard limit on a session's age from its creation, however active it is.",
        "app",
    ),
    Setting("SESSION_COOKIE_NAME", "sp_session", "Name of the session cookie.", "app"),
    Setting(
        "SESSION_COOKIE_SECURE",
        "true",
        "Send the cookie only over HTTPS. The local, compose and k8s dev stacks set false (plain http).",
        "app",
    ),
    Setting("REDIS_SOCKET_TIMEOUT_S", "0.5", "Timeout of one Redis command on an open connection.", "app"),
    Setting("REDIS_CONNECT_TIMEOUT_S", "0.25", "Timeout of a TCP connect to Redis or Sentinel.", "app"),
    Setting(
        "SESSION_LAYER",
        "hardened",
        "Session layer: `hardened` (retry budget, compare-and-set, WAIT, Idempotency-Key) or `stock` "
        "(plain Flask-Session 0.8). Also sets nginx's retry of POSTs (non_idempotent only with hardened).",
        "app",
    ),
    Setting(
        "REDIS_RETRIES",
        "3",
        "Stock layer: retries of a Redis command after a connection error or timeout (hardened: 0, see below).",
        "app",
    ),
    Setting("REDIS_RETRY_BACKOFF_BASE_S", "0.05", "First retry backoff; doubles per retry, with jitter.", "app"),
    Setting("REDIS_RETRY_BACKOFF_CAP_S", "0.5", "Largest retry backoff.", "app"),
    Setting(
        "STORE_RETRY_BUDGET_S",
        "6",
        "Hardened layer: how long one request keeps retrying an unavailable store (re-asking Sentinel for the "
        "master) before it answers 503; covers a failover (2-3 s) with margin and must stay at least 2 s under "
        "NGINX_PROXY_READ_TIMEOUT_S.",
        "app",
    ),
    Setting(
        "SESSION_WAIT_REPLICAS",
        "all",
        "Hardened layer: replicas that must confirm a session write (WAIT) before it is acknowledged: `all` = every "
        "replica the master has online (at least 1; checked once a second), so that whichever Sentinel promotes "
        "has the write; a number N = at least N; 0 = no WAIT.",
        "app",
    ),
    Setting("SESSION_WAIT_TIMEOUT_MS", "300", "Hardened layer: how long WAIT waits for those replicas.", "app"),
    Setting(
        "SESSION_CONFLICT_RETRIES",
        "50",
        "Hardened layer: re-runs of a request whose session changed under it before it answers 503.",
        "app",
    ),
    Setting(
        "IDEMPOTENCY_TTL_S",
        "600",
        "Hardened layer: how long the response to a write is kept for a retry with the same Idempotency-Key.",
        "app",
    ),
    Setting("RETRY_AFTER_S", "1", "Retry-After sent with a 503 when the session store is unreachable.", "app"),
    Setting("CART_MAX_ITEMS", "50", "Largest number of items in one cart; adding more gets 409.", "app"),
    Setting("ITEM_MAX_LEN", "64", "Longest item name (characters A-Z a-z 0-9 _ . -).", "app"),
    Setting("USER_MAX_LEN", "64", "Longest user name (same characters as items).", "app"),
    Setting("REQUEST_MAX_BYTES", "4096", "Largest request body the app accepts; larger gets 413.", "app"),
    # --- the stack (local runtime) ----------------------------------------
    Setting(
        "STACK",
        "local",
        "Runtime of the stack: local (processes on this machine), compose (Docker Compose) or k8s (kubectl).",
        "stack",
    ),
    Setting("K8S_OVERLAY", "dev", "With STACK=k8s: the kustomize overlay under k8s/overlays/ to apply.", "stack"),
    Setting("K8S_NAMESPACE", "sessionproof-dev", "With STACK=k8s: the namespace that overlay deploys to.", "stack"),
    Setting("APPS", "3", "Number of app replicas behind nginx (at least 2).", "stack"),
    Setting(
        "NETWORK",
        "auto",
        "Local runtime's network: `netns` gives every Redis, Sentinel and app node its own address in its own "
        "network namespace (links between chosen nodes can be cut: the network faults; needs root), `loopback` "
        "runs everything on BIND_HOST, `auto` picks netns for root and loopback otherwise.",
        "stack",
    ),
    Setting(
        "NETNS_SUBNET",
        "10.199.0.0/24",
        "With NETWORK=netns: the private network of the stack's namespaces (.1 is the host's bridge, "
        "redis-N .1N, sentinel-N .2N, app-N .(100+N)). Two stacks at once need different subnets.",
        "stack",
    ),
    Setting(
        "BIND_HOST",
        "127.0.0.1",
        "Address of the entry point (nginx) and, with NETWORK=loopback, of every node (loopback only).",
        "stack",
    ),
    Setting("NGINX_PORT", "8080", "Port of the nginx entry point.", "stack"),
    Setting("APP_PORT_BASE", "8101", "Port of app-1; app-N listens on APP_PORT_BASE+N-1.", "stack"),
    Setting("REDIS_PORT_BASE", "6380", "Port of redis-1; redis-2 and redis-3 follow (6379 stays free).", "stack"),
    Setting("SENTINEL_PORT_BASE", "26380", "Port of sentinel-1; sentinel-2 and sentinel-3 follow.", "stack"),
    Setting("STATE_DIR", ".run", "Folder (git-ignored) with generated configs, pids, logs and Redis data.", "stack"),
    Setting("SENTINEL_QUORUM", "2", "Sentinels that must agree the master is down before a failover.", "stack"),
    Setting("SENTINEL_DOWN_AFTER_MS", "1000", "Silence after which a Sentinel considers a node down.", "stack"),
    Setting(
        "SENTINEL_FAILOVER_TIMEOUT_MS", "10000", "Sentinel failover-timeout (retry interval of a failover).", "stack"
    ),
    Setting("REDIS_MAXMEMORY", "256mb", "Redis maxmemory (with maxmemory-policy noeviction).", "stack"),
    Setting(
        "REDIS_MIN_REPLICAS_TO_WRITE",
        "1",
        "Redis min-replicas-to-write: a master with fewer connected replicas refuses writes (NOREPLICAS).",
        "stack",
    ),
    Setting(
        "REDIS_MIN_REPLICAS_MAX_LAG_S",
        "1",
        "Redis min-replicas-max-lag: a replica silent for longer does not count for REDIS_MIN_REPLICAS_TO_WRITE.",
        "stack",
    ),
    Setting("GUNICORN_WORKERS", "2", "gunicorn worker processes per app replica.", "stack"),
    Setting("GUNICORN_THREADS", "4", "Threads per gunicorn worker (gthread worker).", "stack"),
    Setting(
        "GUNICORN_KEEPALIVE_S",
        "75",
        "gunicorn keep-alive; must outlive NGINX_UPSTREAM_KEEPALIVE_TIMEOUT_S.",
        "stack",
    ),
    Setting("NGINX_UPSTREAM_KEEPALIVE_TIMEOUT_S", "60", "How long nginx keeps an idle upstream connection.", "stack"),
    Setting(
        "NGINX_MAX_FAILS", "1", "Failed attempts after which nginx skips a replica for NGINX_FAIL_TIMEOUT_S.", "stack"
    ),
    Setting("NGINX_FAIL_TIMEOUT_S", "2", "How long nginx skips a replica that failed.", "stack"),
    Setting("NGINX_PROXY_CONNECT_TIMEOUT_S", "1", "nginx timeout to connect to a replica.", "stack"),
    Setting("NGINX_PROXY_READ_TIMEOUT_S", "10", "nginx timeout waiting for a replica's response.", "stack"),
    Setting("STACK_UP_TIMEOUT_S", "60", "Deadline for `make up` to see every node healthy.", "stack"),
    Setting(
        "CONGEST_RATE_KBIT",
        "256",
        "congest-redis-master: the rate (kbit/s, each way) the master's link is limited to, below what the "
        "failover scenarios' session and replication traffic needs there (a few hundred kbit/s and more).",
        "stack",
    ),
    # --- load tests -------------------------------------------------------
    Setting(
        "SCENARIO", "mixed", "Load scenario (loadtests/scenarios/<name>.yaml) when locust gets no --scenario.", "load"
    ),
    Setting(
        "LAYERS",
        "hardened",
        "Configurations `make experiments` runs the matrix for, in turn: `hardened`, `stock`, and "
        "`stock-min-replicas-0` (stock with REDIS_MIN_REPLICAS_TO_WRITE=0, as the documentation's setups); "
        '`LAYERS="hardened stock stock-min-replicas-0"` puts all three side by side.',
        "load",
    ),
    Setting("SCENARIO_DIR", "loadtests/scenarios", "Folder of the scenario files (<name>.yaml).", "load"),
    Setting(
        "RESULTS_DIR", "results", "Where each run writes results/<UTC-time>-<scenario>/ and the `latest` link.", "load"
    ),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
SESSION_LAYERS = ("hardened", "stock")  # the values of SESSION_LAYER


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message says which and how to fix it."""


def get_str(name: str, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    setting = BY_NAME[name]
    value = env.get(name, "").strip()
    if value:
        return value
    if setting.default == "<hostname>":
        return socket.gethostname()
    return setting.default


def redis_password(env: Mapping[str, str] | None = None) -> str:
    """REDIS_PASSWORD, or the content of REDIS_PASSWORD_FILE when that is set (container secrets)."""
    path = get_str("REDIS_PASSWORD_FILE", env)
    if not path:
        return get_str("REDIS_PASSWORD", env)
    try:
        with open(path, encoding="utf-8") as secret:
            return secret.read().strip()
    except OSError as error:
        raise ConfigError(
            f"REDIS_PASSWORD_FILE={path!r} cannot be read ({error.strerror}); mount the secret there"
        ) from None


def get_int(name: str, env: Mapping[str, str] | None = None, minimum: int | None = None) -> int:
    value = get_str(name, env)
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer (default {BY_NAME[name].default})") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name}={number} must be at least {minimum}")
    return number


def get_float(name: str, env: Mapping[str, str] | None = None) -> float:
    value = get_str(name, env)
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number (default {BY_NAME[name].default})") from None
    if number < 0:
        raise ConfigError(f"{name}={number} must not be negative")
    return number


def get_bool(name: str, env: Mapping[str, str] | None = None) -> bool:
    value = get_str(name, env).lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (use true or false)")


def get_choice(name: str, choices: tuple[str, ...], env: Mapping[str, str] | None = None) -> str:
    value = get_str(name, env).lower()
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of: {', '.join(choices)}")
    return value


def get_addresses(name: str, env: Mapping[str, str] | None = None) -> list[tuple[str, int]]:
    value = get_str(name, env)
    addresses = []
    for part in value.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"{name}: {part!r} is not host:port (example: 127.0.0.1:26380)")
        addresses.append((host, int(port)))
    return addresses


def markdown_table(scope: str | None = None) -> str:
    rows = ["| name | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        if scope is None or s.scope == scope:
            rows.append(f"| `{s.name}` | `{s.default}` | {s.doc} |")
    return "\n".join(rows)
