"""compose/: the Docker Compose file, its configs and the app's env file."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from sessionproof import settings
from sessionproof.configs.container_files import (
    APP_IMAGE,
    COUNT,
    LOADGEN_IMAGE,
    LOCUST_WEB_PORT,
    NGINX_IMAGE,
    PASSWORD_FILE,
    REDIS_IMAGE,
    app_env,
    catch_up_argument,
    env_file,
    nginx_file,
    redis_confs,
    sentinel_confs,
    yaml_documents,
)
from sessionproof.configs.observability_files import COMPOSE_PROMETHEUS_CONF, compose_prometheus_conf, compose_services
from sessionproof.topology import APP_PORT, HOST_NUMBER_BASE, NGINX_PORT, PROMETHEUS_PORT, REDIS_PORT, SENTINEL_PORT

LOCUST_WORKERS_MAX_WAIT_S = 60
LOCUST_WORKERS = 2
LOCUST_PASSTHROUGH = ("SCENARIO", "LOCUST_HEADLESS", "LOCUST_RUN_TIME", "LOCUST_USERS", "LOCUST_SPAWN_RATE")


def compose_files(env: Mapping[str, str]) -> dict[str, str]:
    apps = settings.get_int("APPS", env, minimum=2)
    redis_hosts = [f"redis-{i}" for i in range(1, COUNT + 1)]
    sentinel_hosts = [f"sentinel-{i}" for i in range(1, COUNT + 1)]
    app_hosts = [f"app-{i}" for i in range(1, apps + 1)]
    files = {
        **{f"compose/config/{h}.conf": t for h, t in zip(redis_hosts, redis_confs(env, redis_hosts), strict=True)},
        **{
            f"compose/config/{h}.conf": t
            for h, t in zip(sentinel_hosts, sentinel_confs(env, sentinel_hosts, redis_hosts[0]), strict=True)
        },
    }
    files["compose/config/nginx.conf"] = nginx_file(env, app_hosts)
    files["compose/app.env"] = env_file(app_env(env, sentinel_hosts))
    files[COMPOSE_PROMETHEUS_CONF] = compose_prometheus_conf(env, app_hosts, redis_hosts)
    document = _compose_document(redis_hosts, sentinel_hosts, app_hosts, catch_up_argument(env))
    # The `observability` profile: Prometheus, its exporters and Grafana (observability_files.py).
    document["services"] |= compose_services(env)
    document["volumes"]["prometheus-data"] = {}
    _fix_addresses(document, settings.get_str("COMPOSE_SUBNET", env))
    files["compose/docker-compose.yml"] = yaml_documents(document)
    return files


def node_addresses(subnet: str, services: list[str]) -> dict[str, str]:
    """A fixed address per node: the local NETWORK=netns plan (redis-N .1N, sentinel-N .2N, app-N .(100+N)),
    nginx .2, the observability nodes .3 on and Locust's master .7 (its workers find it without DNS). The workers
    and anything else get one from the top quarter."""
    network = ipaddress.ip_network(subnet)
    fixed = {"nginx": 2, "redis-exporter": 3, "nginx-exporter": 4, "prometheus": 5, "grafana": 6, "locust-master": 7}
    addresses = {}
    for service in services:
        kind, _, number = service.rpartition("-")
        if service in fixed:
            addresses[service] = str(network.network_address + fixed[service])
        elif kind in HOST_NUMBER_BASE and number.isdigit():
            addresses[service] = str(network.network_address + HOST_NUMBER_BASE[kind] + int(number))
    return addresses


def _fix_addresses(document: dict, subnet: str) -> None:
    """Why: Sentinel and Redis resolve node names in their event loop, and a lookup that waits on the engine's
    DNS (Podman's aardvark-dns, while containers join or leave the network) stalls Sentinel into TILT mode.
    With fixed addresses in every /etc/hosts, names resolve without DNS; the configs keep the names."""
    network = ipaddress.ip_network(subnet)
    if network.num_addresses < 256:
        raise settings.ConfigError(f"COMPOSE_SUBNET={subnet} must be a /24 or larger")
    addresses = node_addresses(subnet, list(document["services"]))
    hosts = [f"{name}:{address}" for name, address in addresses.items()]
    for name, service in document["services"].items():
        service["extra_hosts"] = hosts
        if name in addresses:
            service["networks"] = {"default": {"ipv4_address": addresses[name]}}
            # A fixed MAC too: a node killed and started again keeps its address, and with a new MAC its peers'
            # neighbour caches would send to the old one until they expire (Sentinel saw a restarted Redis
            # ~30 s late). Locally administered: 02:00 and the four bytes of the address.
            octets = ipaddress.ip_address(addresses[name]).packed
            service["mac_address"] = "02:00:" + ":".join(f"{b:02x}" for b in octets)
    dynamic = ipaddress.ip_network(f"{network.network_address + 192}/26")
    document["networks"] = {"default": {"ipam": {"config": [{"subnet": subnet, "ip_range": str(dynamic)}]}}}


def _redis_healthcheck(port: int) -> dict:
    return {
        "test": [
            "CMD-SHELL",
            # redis-cli in the Redis images and the offline Valkey one; valkey-cli in the official Valkey image.
            f'$$(command -v redis-cli || command -v valkey-cli) -p {port} -a "$$(cat {PASSWORD_FILE})" '
            "--no-auth-warning ping | grep -q PONG",
        ],
        "interval": "2s",
        "timeout": "2s",
        "retries": 15,
    }


def _compose_document(
    redis_hosts: list[str], sentinel_hosts: list[str], app_hosts: list[str], catch_up: str = "yes"
) -> dict:
    entrypoint = "/sessionproof/container-entrypoint.sh"
    common = {
        # The official image by default; `make images` names its offline build in compose/.env.
        "image": f"${{REDIS_IMAGE:-{REDIS_IMAGE}}}",
        "secrets": ["redis_password"],
        "restart": "no",  # faults decide when a node comes back, as in the local runtime
    }

    def data_node(kind: str, host: str, port: int) -> dict:
        return {
            **common,
            "command": ["sh", entrypoint, kind, f"/config/{host}.conf", *([catch_up] if kind == "redis" else [])],
            "volumes": [
                f"./config/{host}.conf:/config/{host}.conf:ro",
                "../services/redis/container-entrypoint.sh:/sessionproof/container-entrypoint.sh:ro",
                "../services/redis/start-redis-node.sh:/sessionproof/start-redis-node.sh:ro",
                f"{host}-data:/data",
            ],
            "healthcheck": _redis_healthcheck(port),
        }

    services: dict[str, dict] = {host: data_node("redis", host, REDIS_PORT) for host in redis_hosts}
    for host in sentinel_hosts:
        services[host] = {
            **data_node("sentinel", host, SENTINEL_PORT),
            "depends_on": {h: {"condition": "service_healthy"} for h in redis_hosts},
        }
    app = {
        "image": APP_IMAGE,
        "build": {"context": "..", "dockerfile": "services/app/Dockerfile"},
        "env_file": ["app.env"],
        "secrets": ["redis_password"],
        "restart": "no",
        "depends_on": {h: {"condition": "service_healthy"} for h in sentinel_hosts},
        # Ready, not only alive: /readyz answers 200 once the replica reaches the Redis master. nginx waits on it.
        "healthcheck": {
            "test": [
                "CMD",
                "python3",
                "-c",
                f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{APP_PORT}/readyz', timeout=2)",
            ],
            "interval": "2s",
            "timeout": "3s",
            "retries": 15,
        },
    }
    for host in app_hosts:
        services[host] = {**app, "environment": {"INSTANCE_ID": host}}
    services["nginx"] = {
        "image": f"${{NGINX_IMAGE:-{NGINX_IMAGE}}}",
        "command": [
            "sh",
            "-c",
            "mkdir -p /tmp/nginx/run /tmp/nginx/nginx && exec nginx -c /etc/nginx/sessionproof.conf",
        ],
        "volumes": ["./config/nginx.conf:/etc/nginx/sessionproof.conf:ro"],
        # NGINX_PORT on the host, as in the local runtime (the same setting); 8080 inside.
        "ports": [f"127.0.0.1:${{NGINX_PORT:-{NGINX_PORT}}}:{NGINX_PORT}"],
        "restart": "no",
        "depends_on": {h: {"condition": "service_healthy"} for h in app_hosts},
        "healthcheck": {
            "test": ["CMD-SHELL", f"curl -fsS http://127.0.0.1:{NGINX_PORT}/ping >/dev/null || exit 1"],
            "interval": "2s",
            "timeout": "2s",
            "retries": 15,
        },
    }
    locust = {
        "image": LOADGEN_IMAGE,
        "build": {"context": "..", "dockerfile": "services/app/Dockerfile", "target": "loadgen"},
        "profiles": ["load"],
        # The image keeps the repository's layout under /sessionproof: SCENARIO_DIR and RESULTS_DIR resolve
        # there as on the host, and the run folders land in the mounted results/.
        "working_dir": "/sessionproof",
        # Passed through from the shell when set: the scenario, and Locust's own LOCUST_* options, e.g.
        # SCENARIO=bounce LOCUST_HEADLESS=true LOCUST_RUN_TIME=30s for a run without the web UI.
        "environment": ["STACK=compose", f"PROMETHEUS_URL=http://prometheus:{PROMETHEUS_PORT}", *LOCUST_PASSTHROUGH],
        "volumes": ["../results:/sessionproof/results"],
        "depends_on": {"nginx": {"condition": "service_healthy"}},
    }
    services["locust-master"] = {
        **locust,
        "command": [
            "locust",
            "--master",
            "--host",
            f"http://nginx:{NGINX_PORT}",
            "--web-host",
            "0.0.0.0",
            "--expect-workers",
            str(LOCUST_WORKERS),
            # A worker that never connects ends the run with an error instead of a master that waits forever.
            "--expect-workers-max-wait",
            str(LOCUST_WORKERS_MAX_WAIT_S),
        ],
        "ports": [f"127.0.0.1:{LOCUST_WEB_PORT}:{LOCUST_WEB_PORT}"],
    }
    services["locust-worker"] = {
        **locust,
        "command": ["locust", "--worker", "--master-host", "locust-master"],
        "deploy": {"mode": "replicated", "replicas": LOCUST_WORKERS},
        "depends_on": {"locust-master": {"condition": "service_started"}},
    }
    return {
        "name": "sessionproof",
        "services": services,
        "volumes": {f"{h}-data": {} for h in [*redis_hosts, *sentinel_hosts]},
        # `make up STACK=compose` writes this file from REDIS_PASSWORD when it is missing (git-ignored).
        "secrets": {"redis_password": {"file": "./redis-password.txt"}},
    }
