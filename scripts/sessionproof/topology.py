"""The stack's shape, resolved from settings: which nodes exist and where they listen."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sessionproof import REPO_ROOT, settings
from sessionproof.engines import ENGINES

REDIS_NODES = 3
SENTINEL_NODES = 3
# Inside containers (compose, k8s) every node has its own address, so all use the standard ports.
REDIS_PORT = 6379
SENTINEL_PORT = 26379
APP_PORT = 8000
NGINX_PORT = 8080
NGINX_STATUS_PORT = 8081
PROMETHEUS_PORT = 9090
REDIS_EXPORTER_PORT = 9121
NGINX_EXPORTER_PORT = 9113
# Inside a container (compose, k8s) every node listens on its kind's standard port.
CONTAINER_PORTS = {"redis": REDIS_PORT, "sentinel": SENTINEL_PORT, "app": APP_PORT, "nginx": NGINX_PORT}
NETWORKS = ("auto", "loopback", "netns")
# Host numbers inside NETNS_SUBNET: .1 is the bridge (the host side, where nginx and the harness
# live); each data node and app replica gets a fixed address, so configs and reports can name it.
HOST_NUMBER_BASE = {"redis": 10, "sentinel": 20, "app": 100}
MAX_APPS_NETNS = 150


@dataclass(frozen=True)
class Node:
    name: str  # redis-1, sentinel-2, app-3, nginx, prometheus, redis-exporter, nginx-exporter
    kind: str  # redis | sentinel | app | nginx, or an observability node's kind (= its name)
    port: int
    host: str = "127.0.0.1"  # the address other nodes reach it on (its own address with NETWORK=netns)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def check_durability(env: Mapping[str, str], engine: str) -> None:
    """SESSION_WAIT_AOF=yes needs WAITAOF (not in Redis 7.0) and appendfsync always: refused up front, with the fix."""
    if not settings.get_bool("SESSION_WAIT_AOF", env):
        return
    if engine == "redis":
        raise settings.ConfigError(
            "SESSION_WAIT_AOF=yes needs WAITAOF, which Redis 7.0 (Debian bookworm's) does not have: run "
            "STORE_ENGINE=valkey, or SESSION_WAIT_AOF=no (README: what each engine keeps)"
        )
    if settings.redis_appendfsync(env) != "always":
        raise settings.ConfigError(
            "SESSION_WAIT_AOF=yes with REDIS_APPENDFSYNC=everysec makes every write wait up to a second for the "
            "next fsync (measured: about 0.9 s each): set REDIS_APPENDFSYNC=always"
        )


def check_configurations(names: list[str]) -> None:
    """LAYERS (or --layers) checked: not empty, and every name one of settings.CONFIGURATIONS."""
    if not names:
        raise settings.ConfigError(f"LAYERS is empty; name one or more of: {', '.join(settings.CONFIGURATIONS)}")
    for name in names:
        if name not in settings.CONFIGURATIONS:
            raise settings.ConfigError(f"LAYERS: {name!r} is not one of: {', '.join(settings.CONFIGURATIONS)}")


def planned_runs(layers: list[str], engines: list[str]) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(engine, configuration) pairs in run order, engine by engine; and the pairs the engine cannot run, with why
    (hardened-waitaof on Redis 7.0, which has no WAITAOF). An unknown configuration is refused."""
    check_configurations(layers)
    planned, skipped = [], {}
    for engine in engines:
        for layer in layers:
            try:
                check_durability(settings.CONFIGURATIONS[layer], engine)
            except settings.ConfigError as error:
                skipped[settings.configuration_label(layer, engine)] = str(error).split(":")[0]
                continue
            planned.append((engine, layer))
    return planned, skipped


def resolve_store_engine(env: Mapping[str, str], state_dir: Path) -> str:
    """STORE_ENGINE; unset, the engine the stack in state_dir last ran (its stack.json), else redis: so that after
    `STORE_ENGINE=valkey make up` a `make experiment` or `make chaos` acts on the stack that runs."""
    if not env.get("STORE_ENGINE"):
        try:
            recorded = json.loads((state_dir / "stack.json").read_text()).get("engine")
        except (OSError, ValueError):
            recorded = None
        if recorded in ENGINES:
            return recorded
    return settings.get_choice("STORE_ENGINE", ENGINES, env)


@dataclass(frozen=True)
class StackConfig:
    env: Mapping[str, str] = field(repr=False)
    apps: int
    bind_host: str
    nginx_port: int
    app_port_base: int
    redis_port_base: int
    sentinel_port_base: int
    state_dir: Path
    network: str = "loopback"  # resolved: loopback or netns
    subnet: str = "10.199.0.0/24"
    observability: bool = False  # Prometheus and the exporters run beside the stack
    prometheus_port: int = PROMETHEUS_PORT
    redis_exporter_port: int = REDIS_EXPORTER_PORT
    nginx_exporter_port: int = NGINX_EXPORTER_PORT
    nginx_status_port: int = NGINX_STATUS_PORT
    store_engine: str = "redis"  # STORE_ENGINE: redis | valkey

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        env = dict(os.environ if env is None else env)
        apps = settings.get_int("APPS", env)
        if apps < 2:
            raise settings.ConfigError(f"APPS={apps}: the point is bouncing between replicas, so use at least 2")
        state_dir = Path(settings.get_str("STATE_DIR", env))
        if not state_dir.is_absolute():
            state_dir = REPO_ROOT / state_dir
        network = resolve_network(settings.get_choice("NETWORK", NETWORKS, env))
        subnet = settings.get_str("NETNS_SUBNET", env)
        if network == "netns":
            _check_subnet(subnet, apps)
        config = cls(
            env=env,
            apps=apps,
            bind_host=settings.get_str("BIND_HOST", env),
            nginx_port=settings.get_int("NGINX_PORT", env, minimum=1),
            app_port_base=settings.get_int("APP_PORT_BASE", env, minimum=1),
            redis_port_base=settings.get_int("REDIS_PORT_BASE", env, minimum=1),
            sentinel_port_base=settings.get_int("SENTINEL_PORT_BASE", env, minimum=1),
            state_dir=state_dir,
            network=network,
            subnet=subnet,
            observability=settings.get_choice("OBSERVABILITY", ("on", "off"), env) == "on",
            prometheus_port=settings.get_int("PROMETHEUS_PORT", env, minimum=1),
            redis_exporter_port=settings.get_int("REDIS_EXPORTER_PORT", env, minimum=1),
            nginx_exporter_port=settings.get_int("NGINX_EXPORTER_PORT", env, minimum=1),
            nginx_status_port=settings.get_int("NGINX_STATUS_PORT", env, minimum=1),
            store_engine=resolve_store_engine(env, state_dir),
        )
        config.check_ports()
        check_durability(env, config.store_engine)
        return config

    def get(self, name: str) -> str:
        return settings.get_str(name, self.env)

    @property
    def data_dir(self) -> Path:
        """The folder of the data nodes' folders (redis-N/, sentinel-N/): STATE_DIR for Redis, STATE_DIR/valkey for
        Valkey. Apart because Redis 7.0 cannot read what Valkey 9 writes, and each engine keeps its own sessions."""
        return self.state_dir if self.store_engine == "redis" else self.state_dir / self.store_engine

    @property
    def netns(self) -> bool:
        return self.network == "netns"

    @property
    def gateway_host(self) -> str:
        """The bridge's address: the host side of the node network (nginx's upstream side, the harness)."""
        return str(ipaddress.ip_network(self.subnet)[1])

    def _host(self, kind: str, index: int) -> str:
        if not self.netns:
            return self.bind_host
        return str(ipaddress.ip_network(self.subnet)[HOST_NUMBER_BASE[kind] + index])

    @property
    def redis_nodes(self) -> list[Node]:
        return [
            Node(f"redis-{i}", "redis", self.redis_port_base + i - 1, self._host("redis", i))
            for i in range(1, REDIS_NODES + 1)
        ]

    @property
    def sentinel_nodes(self) -> list[Node]:
        return [
            Node(f"sentinel-{i}", "sentinel", self.sentinel_port_base + i - 1, self._host("sentinel", i))
            for i in range(1, SENTINEL_NODES + 1)
        ]

    @property
    def app_nodes(self) -> list[Node]:
        return [
            Node(f"app-{i}", "app", self.app_port_base + i - 1, self._host("app", i)) for i in range(1, self.apps + 1)
        ]

    @property
    def nginx_node(self) -> Node:
        # nginx stays in the host's namespace, so the entry point is BIND_HOST:NGINX_PORT in every mode;
        # towards the apps it speaks from the bridge's address.
        return Node("nginx", "nginx", self.nginx_port, self.gateway_host if self.netns else self.bind_host)

    @property
    def nodes(self) -> list[Node]:
        """The session stack: what serves sessions, and what the faults break."""
        return [*self.redis_nodes, *self.sentinel_nodes, *self.app_nodes, self.nginx_node]

    @property
    def observability_nodes(self) -> list[Node]:
        """Prometheus and its exporters (OBSERVABILITY=on): ordinary nodes on BIND_HOST, never a fault's target."""
        if not self.observability:
            return []
        return [
            Node("redis-exporter", "redis-exporter", self.redis_exporter_port, self.bind_host),
            Node("nginx-exporter", "nginx-exporter", self.nginx_exporter_port, self.bind_host),
            Node("prometheus", "prometheus", self.prometheus_port, self.bind_host),
        ]

    @property
    def all_nodes(self) -> list[Node]:
        return [*self.nodes, *self.observability_nodes]

    @property
    def prometheus_url(self) -> str:
        """PROMETHEUS_URL, or Prometheus on BIND_HOST:PROMETHEUS_PORT (the harness on the stack's host)."""
        return self.get("PROMETHEUS_URL") or f"http://{self.bind_host}:{self.prometheus_port}"

    @property
    def nginx_status_url(self) -> str:
        return f"http://{self.bind_host}:{self.nginx_status_port}/stub_status"

    def node(self, name: str) -> Node:
        for node in self.all_nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.all_nodes)
        raise KeyError(f"no node named {name!r}; the stack has {known}")

    @property
    def sentinels_setting(self) -> str:
        return ",".join(n.address for n in self.sentinel_nodes)

    @property
    def entry_url(self) -> str:
        return f"http://{self.bind_host}:{self.nginx_port}"

    def check_ports(self) -> None:
        ports: dict[int, str] = {}
        listeners = [(n.name, n.port) for n in self.all_nodes] + [("nginx's stub_status", self.nginx_status_port)]
        for name, port in listeners:
            if port in ports:
                raise settings.ConfigError(
                    f"{name} and {ports[port]} would both listen on port {port}; change APP_PORT_BASE, "
                    "REDIS_PORT_BASE, SENTINEL_PORT_BASE, NGINX_PORT or the OBSERVABILITY ports (PROMETHEUS_PORT, ...)"
                )
            ports[port] = name


def resolve_network(choice: str) -> str:
    """auto: namespaces when this user can make them (root, iproute2, iptables), loopback otherwise."""
    can = os.geteuid() == 0 and all(which_tool(tool) for tool in ("ip", "iptables", "tc"))
    if choice == "auto":
        return "netns" if can else "loopback"
    if choice == "netns" and not can:
        missing = [tool for tool in ("ip", "iptables", "tc") if not which_tool(tool)]
        why = f"{', '.join(missing)} not installed (`make deps`)" if missing else "it needs root"
        raise settings.ConfigError(
            f"NETWORK=netns: {why}; network namespaces, veth links and iptables rules need root "
            "(run as root, or use NETWORK=loopback, where network faults are not available)"
        )
    return choice


def which_tool(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")


def _check_subnet(subnet: str, apps: int) -> None:
    try:
        network = ipaddress.ip_network(subnet)
    except ValueError as error:
        raise settings.ConfigError(f"NETNS_SUBNET={subnet!r} is not a network ({error}); e.g. 10.199.0.0/24") from None
    if network.version != 4 or network.prefixlen > 24:
        raise settings.ConfigError(f"NETNS_SUBNET={subnet}: use an IPv4 network of at least /24, e.g. 10.199.0.0/24")
    if apps > MAX_APPS_NETNS:
        raise settings.ConfigError(f"APPS={apps}: NETWORK=netns gives addresses to at most {MAX_APPS_NETNS} replicas")
