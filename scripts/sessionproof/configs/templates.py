"""The Redis, Sentinel and nginx configs of every runtime, from services/ templates and the settings.

One function per config: the local runtime, compose and k8s (`sessionproof.configs.generate`)
all call these, so a setting (down-after, min-replicas, proxy timeouts, ...) is
the same everywhere by construction. What differs per runtime is passed in:
addresses, folders and how a node announces itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from sessionproof import settings
from sessionproof.configs.render import render_template


def redis_conf(
    env: Mapping[str, str],
    *,
    name: str,
    bind_host: str,
    port: int,
    data_dir: object,
    password: str,
    replica_of: tuple[str, int] | None,
    announce_host: str | None = None,
) -> str:
    return render_template(
        "redis/redis.conf.tmpl",
        {
            "name": name,
            "bind_host": bind_host,
            "port": port,
            "data_dir": data_dir,
            "password": password,
            "replicaof_line": f"replicaof {replica_of[0]} {replica_of[1]}" if replica_of else "",
            # Behind container networking a replica must say where it can be reached.
            "announce_lines": f"replica-announce-ip {announce_host}" if announce_host else "",
            "maxmemory": settings.get_str("REDIS_MAXMEMORY", env),
            "appendfsync": settings.redis_appendfsync(env),
            "min_replicas_to_write": settings.get_int("REDIS_MIN_REPLICAS_TO_WRITE", env, minimum=0),
            "min_replicas_max_lag_s": settings.get_int("REDIS_MIN_REPLICAS_MAX_LAG_S", env, minimum=1),
        },
    )


def sentinel_conf(
    env: Mapping[str, str],
    *,
    name: str,
    bind_host: str,
    port: int,
    data_dir: object,
    password: str,
    master: tuple[str, int],
    announce_host: str | None = None,
) -> str:
    announce = ""
    if announce_host and _is_ip(announce_host):
        # A node in its own network namespace: the others reach it at exactly this address.
        announce = f"sentinel announce-ip {announce_host}"
    elif announce_host:
        # Hostnames, not IPs: a container's IP changes when it restarts, its name does not.
        announce = (
            f"sentinel resolve-hostnames yes\nsentinel announce-hostnames yes\nsentinel announce-ip {announce_host}"
        )
    return render_template(
        "redis/sentinel.conf.tmpl",
        {
            "name": name,
            "bind_host": bind_host,
            "port": port,
            "data_dir": data_dir,
            "password": password,
            "master_name": settings.get_str("REDIS_MASTER_NAME", env),
            "announce_lines": announce,
            "master_host": master[0],
            "master_port": master[1],
            "quorum": settings.get_int("SENTINEL_QUORUM", env, minimum=1),
            "down_after_ms": settings.get_int("SENTINEL_DOWN_AFTER_MS", env, minimum=100),
            "failover_timeout_ms": settings.get_int("SENTINEL_FAILOVER_TIMEOUT_MS", env, minimum=1000),
        },
    )


def check_timeouts(env: Mapping[str, str]) -> None:
    """The settings that only work together; every runtime and `make generate` apply this."""
    keepalive_s = settings.get_int("GUNICORN_KEEPALIVE_S", env)
    upstream_s = settings.get_int("NGINX_UPSTREAM_KEEPALIVE_TIMEOUT_S", env)
    if keepalive_s <= upstream_s:
        raise settings.ConfigError(
            f"GUNICORN_KEEPALIVE_S={keepalive_s} must be longer than NGINX_UPSTREAM_KEEPALIVE_TIMEOUT_S={upstream_s}, "
            "or nginx can send a request on a connection gunicorn is closing"
        )
    budget_s = settings.get_float("STORE_RETRY_BUDGET_S", env)
    read_timeout_s = settings.get_int("NGINX_PROXY_READ_TIMEOUT_S", env)
    if budget_s + 2 > read_timeout_s:
        raise settings.ConfigError(
            f"STORE_RETRY_BUDGET_S={budget_s:g} leaves too little of NGINX_PROXY_READ_TIMEOUT_S={read_timeout_s}: "
            "keep the budget at least 2 s shorter, or nginx gives up on requests the app is still retrying"
        )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def nginx_conf(
    env: Mapping[str, str],
    *,
    state_dir: object,
    bind_host: str,
    port: int,
    upstreams: list[tuple[str, int]],
    status_listen: str,
    access_log: str | None = None,
    error_log: str | None = None,
) -> str:
    """`status_listen`: where stub_status answers (loopback locally); `access_log`, `error_log`: files, or
    /dev/stdout and /dev/stderr in a container (the engine's logs)."""
    servers = "\n".join(
        f"        server {host}:{upstream_port} "
        f"max_fails={settings.get_int('NGINX_MAX_FAILS', env, minimum=0)} "
        f"fail_timeout={settings.get_int('NGINX_FAIL_TIMEOUT_S', env, minimum=1)}s;"
        for host, upstream_port in upstreams
    )
    return render_template(
        "nginx/nginx.conf.tmpl",
        {
            "state_dir": state_dir,
            "access_log": access_log or f"{state_dir}/logs/nginx-access.log",
            "error_log": error_log or f"{state_dir}/logs/nginx-error.log",
            "status_listen": status_listen,
            "bind_host": bind_host,
            "port": port,
            "upstream_servers": servers,
            "upstream_keepalive_timeout_s": settings.get_int("NGINX_UPSTREAM_KEEPALIVE_TIMEOUT_S", env, minimum=1),
            "proxy_connect_timeout_s": settings.get_int("NGINX_PROXY_CONNECT_TIMEOUT_S", env, minimum=1),
            "proxy_read_timeout_s": settings.get_int("NGINX_PROXY_READ_TIMEOUT_S", env, minimum=1),
            "next_upstream_tries": max(len(upstreams), 2),
            # Re-sending a POST to another replica is safe only where the app deduplicates it (Idempotency-Key).
            "next_upstream": "error timeout http_502 non_idempotent"
            if settings.get_choice("SESSION_LAYER", settings.SESSION_LAYERS, env) == "hardened"
            else "error timeout",
            "request_max_bytes": settings.get_int("REQUEST_MAX_BYTES", env, minimum=64),
        },
    )
