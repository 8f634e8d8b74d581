"""Every configuration name of sessionproof, with its default and meaning.

This module holds the app's settings (what the app and gunicorn read); the harness
declares its own in sessionproof/settings.py and reads both through one registry.
Every runtime passes the same names. `python -m sessionproof.runtimes.stack
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
        "Stock layer: retries of a Redis command after a connection error or timeout (hardened: 0: its retry budget retries, docs/session-layers.md).",
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
        "Hardened layer: replicas that must confirm a session write before it is acknowledged: `all` = each replica "
        "any Sentinel could promote, checked by which replica acknowledged the write's offset (ROLE after WAIT), at "
        "least one, and only on the master the Sentinels name (asked once a second), so that whichever replica "
        "Sentinel promotes has the write; a number N = WAIT N (a count); 0 = no WAIT.",
        "app",
    ),
    Setting("SESSION_WAIT_TIMEOUT_MS", "300", "Hardened layer: how long WAIT waits for those replicas.", "app"),
    Setting(
        "SESSION_WAIT_AOF",
        "no",
        "Hardened layer with SESSION_WAIT_REPLICAS=all: `yes` also waits (WAITAOF, up to SESSION_WAIT_TIMEOUT_MS) "
        "until the master and every replica it lists in sync have fsynced the write to their AOF, so a power loss "
        "of every node at once keeps it. Needs an engine with WAITAOF (STORE_ENGINE=valkey; Redis 7.2+) and "
        "REDIS_APPENDFSYNC=always: `make up` refuses it otherwise. `no`: an acknowledged write is in the memory "
        "of the nodes that confirmed it and reaches their disks within about a second (appendfsync everysec).",
        "app",
    ),
    Setting(
        "SESSION_CONFLICT_RETRIES",
        "50",
        "Hardened layer: re-runs of a request whose session changed under it before it answers 503.",
        "app",
    ),
    Setting(
        "IDEMPOTENCY_TTL_S",
        "90",
        "Hardened layer: how long the response to a write is kept for a retry with the same Idempotency-Key. "
        "It covers nginx's re-sends (within NGINX_PROXY_READ_TIMEOUT_S, 10 s, of the first), the app's own "
        "retries (STORE_RETRY_BUDGET_S, 6 s) and a client retrying for up to a minute; no longer, since every "
        "write keeps a record this long (the sizing rule in docs/measurements.md).",
        "app",
    ),
    Setting("RETRY_AFTER_S", "1", "Retry-After of every 503 (or 502) answering a store error.", "app"),
    Setting("CART_MAX_ITEMS", "50", "Largest number of items in one cart; adding more gets 409.", "app"),
    Setting("ITEM_MAX_LEN", "64", "Longest item name (characters A-Z a-z 0-9 _ . -).", "app"),
    Setting("USER_MAX_LEN", "64", "Longest user name (same characters as items).", "app"),
    Setting("REQUEST_MAX_BYTES", "4096", "Largest request body the app accepts; larger gets 413.", "app"),
    Setting(
        "REQUEST_LOG",
        "json",
        "`json`: one JSON line per request on the replica's log (request id, endpoint, status, duration, store "
        "time, retries); `off`: none.",
        "app",
    ),
    Setting(
        "PROMETHEUS_MULTIPROC_DIR",
        "<a fresh temporary folder>",
        "Folder where gunicorn's workers keep their metrics for /metrics (prometheus-client's multiprocess "
        "mode); emptied when the replica starts. The local runtime uses STATE_DIR/metrics/app-N.",
        "app",
    ),
    # gunicorn (services/app/gunicorn.conf.py reads these)
    Setting("GUNICORN_WORKERS", "2", "gunicorn worker processes per app replica.", "app"),
    Setting("GUNICORN_THREADS", "4", "Threads per gunicorn worker (gthread worker).", "app"),
    Setting(
        "GUNICORN_KEEPALIVE_S",
        "75",
        "gunicorn keep-alive; must outlive NGINX_UPSTREAM_KEEPALIVE_TIMEOUT_S.",
        "app",
    ),
)

SESSION_LAYERS = ("hardened", "stock")  # the values of SESSION_LAYER


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message says which and how to fix it."""


class Registry:
    """Reads settings of a known list from the environment; the harness has its own, a superset of this one."""

    def __init__(self, settings: tuple[Setting, ...]):
        self.settings = settings
        self.by_name: dict[str, Setting] = {s.name: s for s in settings}

    def get_str(self, name: str, env: Mapping[str, str] | None = None) -> str:
        env = os.environ if env is None else env
        setting = self.by_name[name]
        value = env.get(name, "").strip()
        if value:
            return value
        if setting.default == "<hostname>":
            return socket.gethostname()
        return setting.default

    def get_int(self, name: str, env: Mapping[str, str] | None = None, minimum: int | None = None) -> int:
        value = self.get_str(name, env)
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not an integer (default {self.by_name[name].default})") from None
        if minimum is not None and number < minimum:
            raise ConfigError(f"{name}={number} must be at least {minimum}")
        return number

    def get_float(self, name: str, env: Mapping[str, str] | None = None) -> float:
        value = self.get_str(name, env)
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a number (default {self.by_name[name].default})") from None
        if number < 0:
            raise ConfigError(f"{name}={number} must not be negative")
        return number

    def get_bool(self, name: str, env: Mapping[str, str] | None = None) -> bool:
        value = self.get_str(name, env).lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}={value!r} is not a boolean (use true or false)")

    def get_choice(self, name: str, choices: tuple[str, ...], env: Mapping[str, str] | None = None) -> str:
        value = self.get_str(name, env).lower()
        if value not in choices:
            raise ConfigError(f"{name}={value!r} is not one of: {', '.join(choices)}")
        return value

    def get_addresses(self, name: str, env: Mapping[str, str] | None = None) -> list[tuple[str, int]]:
        value = self.get_str(name, env)
        addresses = []
        for part in value.split(","):
            host, sep, port = part.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ConfigError(f"{name}: {part!r} is not host:port (example: 127.0.0.1:26380)")
            addresses.append((host, int(port)))
        return addresses

    def markdown_table(self, scope: str | None = None) -> str:
        rows = ["| name | default | meaning |", "|---|---|---|"]
        for s in self.settings:
            if scope is None or s.scope == scope:
                rows.append(f"| `{s.name}` | `{s.default}` | {s.doc} |")
        return "\n".join(rows)


APP = Registry(SETTINGS)
BY_NAME = APP.by_name
get_str, get_int, get_float, get_bool = APP.get_str, APP.get_int, APP.get_float, APP.get_bool
get_choice, get_addresses, markdown_table = APP.get_choice, APP.get_addresses, APP.markdown_table


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
