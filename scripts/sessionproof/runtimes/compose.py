"""The compose runtime: the stack as containers, through Podman (podman-compose) or Docker (docker compose).

The compose tool creates and removes the stack; every fault acts on one container through the
engine itself, found by the labels both compose tools put on it (project `sessionproof`, service
`redis-1`, ...):

| operation | engine command                                   |
|-----------|--------------------------------------------------|
| kill      | ENGINE kill --signal KILL CONTAINER              |
| pause     | ENGINE pause CONTAINER (cgroup freezer)          |
| resume    | ENGINE unpause CONTAINER                         |
| start     | ENGINE start CONTAINER (unpause when paused)     |
| stop      | ENGINE stop CONTAINER (SIGTERM, then SIGKILL)    |
| restart   | ENGINE restart CONTAINER, then wait until healthy |
| cut, congest | iptables and tc inside the container's own network namespace (container_network.py) |

Health checks gate start-up. Podman schedules health checks with systemd timers, and
podman-compose ignores `depends_on: condition: service_healthy` before Podman 4.6, so `up`
starts the services level by level in the order of the compose file's `depends_on`, and
waits until each level is healthy before the next, running each check itself
(`podman healthcheck run`) where the engine would not. Docker runs its checks itself.

The harness reaches the nodes on their fixed addresses in the compose network (COMPOSE_SUBNET, read
from the compose file), as the host can with rootful Podman or Docker on Linux: the watchers
subscribe to the Sentinels, and Redis is asked for its role and INFO directly, with no engine
command (the split-brain watcher asks every 0.2 s).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from sessionproof import REPO_ROOT, settings
from sessionproof.configs import templates as configs
from sessionproof.configs.container_files import IMAGES_ENV_FILE, app_env, read_env_file
from sessionproof.runtimes import container_network, probes
from sessionproof.runtimes.commands import ContainerError, Runner, run_command
from sessionproof.runtimes.compose_probe import ComposeProbe
from sessionproof.runtimes.interface import DISK_FAULTS_NEED_LOCAL
from sessionproof.topology import CONTAINER_PORTS, Node, StackConfig
from sessionproof.waiting import wait_until

COMPOSE_FILE = REPO_ROOT / "compose" / "docker-compose.yml"
PASSWORD_FILE = REPO_ROOT / "compose" / "redis-password.txt"
APP_ENV_FILE = REPO_ROOT / "compose" / "app.env"
PROJECT = "sessionproof"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
PROFILES = ("load", "observability")
OBSERVABILITY_SERVICES = ["redis-exporter", "nginx-exporter", "prometheus"]


def container_engine(env=None) -> str:
    """CONTAINER_ENGINE, with `auto` resolved: Podman where it is installed, else Docker."""
    choice = settings.get_choice("CONTAINER_ENGINE", ("auto", "podman", "docker"), env)
    if choice == "auto":
        return "podman" if shutil.which("podman") else "docker"
    return choice


def compose_command(engine: str) -> list[str]:
    """podman-compose (installed in this virtual environment) for Podman, the compose plugin for Docker."""
    if engine == "podman":
        beside_python = Path(sys.executable).with_name("podman-compose")
        return [str(beside_python) if beside_python.exists() else "podman-compose"]
    return ["docker", "compose"]


@dataclass(frozen=True)
class Container:
    name: str
    service: str
    status: str  # running, paused, exited, created, ...
    health: str  # healthy, unhealthy, starting, or "" when the container has no health check
    has_healthcheck: bool
    pid: int
    ip: str

    @classmethod
    def from_inspect(cls, data: dict) -> Container:
        state = data.get("State", {})
        health = state.get("Health") or state.get("Healthcheck") or {}
        networks = data.get("NetworkSettings", {}).get("Networks") or {}
        ip = next((n.get("IPAddress", "") for n in networks.values() if n.get("IPAddress")), "")
        return cls(
            name=data["Name"].lstrip("/"),
            service=data.get("Config", {}).get("Labels", {}).get(SERVICE_LABEL, ""),
            status=str(state.get("Status", "")).lower(),
            health=str(health.get("Status", "")).lower(),
            has_healthcheck=bool((data.get("Config", {}).get("Healthcheck") or {}).get("Test")),
            pid=int(state.get("Pid") or 0),
            ip=ip,
        )


def service_nodes(config: StackConfig) -> list[Node]:
    """The stack's nodes as they name each other in the compose network: service name and container port."""
    return [Node(n.name, n.kind, CONTAINER_PORTS[n.kind], n.name) for n in config.nodes]


def start_order(document: dict, services: list[str]) -> list[list[str]]:
    """The services in levels: each level depends only on the levels before it (the compose file's depends_on)."""
    remaining, levels, placed = list(services), [], set()
    while remaining:
        level = [
            s for s in remaining if set(document["services"][s].get("depends_on") or {}) & set(remaining) <= placed
        ]
        if not level:
            raise ContainerError(f"depends_on has a cycle among {remaining} in {COMPOSE_FILE}")
        levels.append(level)
        placed |= set(level)
        remaining = [s for s in remaining if s not in placed]
    return levels


class ComposeRuntime:
    name = "compose"

    def __init__(self, config: StackConfig, runner: Runner = run_command, sleep=time.sleep):
        self.config = config
        self.run = runner
        self.sleep = sleep
        self.engine = container_engine(config.env)
        self.document = yaml.safe_load(COMPOSE_FILE.read_text())
        # Fixed in the compose file (COMPOSE_SUBNET): the harness reaches each node there, asking no engine.
        self.addresses = {
            name: service["networks"]["default"]["ipv4_address"]
            for name, service in self.document["services"].items()
            if "ipv4_address" in (service.get("networks") or {}).get("default", {})
        }

    def compose(self, *args: str) -> str:
        argv = [*compose_command(self.engine), "-f", str(COMPOSE_FILE), *args]
        if self.config.store_engine == "valkey":  # the data and Sentinel containers run VALKEY_IMAGE instead
            argv = ["env", f"REDIS_IMAGE={self.valkey_image()}", *argv]
        return self.run(argv)

    def valkey_image(self) -> str:
        """VALKEY_IMAGE: the user's, else the offline build compose/.env names (`make images`), else the default."""
        if self.config.env.get("VALKEY_IMAGE"):
            return self.config.env["VALKEY_IMAGE"]
        offline = read_env_file(IMAGES_ENV_FILE.read_text()) if IMAGES_ENV_FILE.exists() else {}  # `make images`
        return offline.get("VALKEY_IMAGE") or settings.get_str("VALKEY_IMAGE", self.config.env)

    def engine_run(self, *args: str) -> str:
        return self.run([self.engine, *args])

    def check_engine_setup(self) -> None:
        """Podman's setup that the compose file needs, checked before anything starts: netavark (CNI's IPAM
        refuses the fixed addresses, deep inside podman-compose) and runc (crun fails on hybrid cgroups)."""
        if self.engine != "podman":
            return
        info = self.engine_run("info", "--format", "{{.Host.NetworkBackend}} {{.Host.OCIRuntime.Name}}").split()
        backend, runtime = [*info, "", ""][:2]
        problems = []
        if backend != "netavark":
            problems.append(
                f"its network backend is {backend or 'unknown'}, and the compose file's fixed addresses need netavark "
                "(CNI refuses them: 'failed to allocate all requested IPs')"
            )
        if runtime != "runc":
            problems.append(f"its OCI runtime is {runtime or 'unknown'}, and containers here start with runc only")
        if problems:
            raise ContainerError(
                f"Podman is not set up for STACK=compose: {'; '.join(problems)}. Fix: `make deps` (it installs "
                "netavark and aardvark-dns and writes /etc/containers/containers.conf.d/50-sessionproof.conf; "
                "it says what to do where containers it did not make stand in the way), then "
                "`podman info --format '{{.Host.NetworkBackend}} {{.Host.OCIRuntime.Name}}'` says: netavark runc"
            )

    # ------------------------------------------------------------- topology
    def containers(self) -> dict[str, Container]:
        """This project's containers by service (one per service: the stack's nodes are not scaled)."""
        ids = self.engine_run("ps", "--all", "--quiet", "--filter", f"label={PROJECT_LABEL}={PROJECT}").split()
        if not ids:
            return {}
        found = [Container.from_inspect(d) for d in json.loads(self.engine_run("container", "inspect", *ids))]
        return {c.service: c for c in sorted(found, key=lambda c: c.name)}

    def container(self, node_name: str) -> Container:
        found = self.containers().get(node_name)
        if found is None:
            raise ContainerError(f"no container of service {node_name} (is the stack up? make up STACK=compose)")
        return found

    def nodes(self, kind: str | None = None) -> list[Node]:
        nodes = [Node(n.name, n.kind, CONTAINER_PORTS[n.kind], self.addresses[n.name]) for n in self.config.nodes]
        return [n for n in nodes if kind is None or n.kind == kind]

    def is_running(self, node_name: str) -> bool:
        found = self.containers().get(node_name)
        return found is not None and found.status == "running"

    def _ready(self, container: Container | None) -> bool:
        """Running, and healthy when it has a health check: Podman's check is run here, Docker's is read."""
        if container is None or container.status != "running":
            return False
        if not container.has_healthcheck:
            return True
        if self.engine != "podman":
            return container.health == "healthy"
        try:
            self.engine_run("healthcheck", "run", container.name)
        except ContainerError:
            return False
        return True

    def healthy(self) -> bool:
        containers = self.containers()
        return all(self._ready(containers.get(n.name)) for n in self.config.nodes) and self.probe().healthy()

    def probe(self) -> ComposeProbe:
        """The local runtime's readiness checks, on the containers' addresses."""
        return ComposeProbe(self.config, self.nodes())

    def master_node(self) -> Node | None:
        return self.probe().master_node()

    # In-band Redis, as the local runtime asks it (a process per question through `exec` would be the other way).
    def redis_info(self, node_name: str, section: str) -> dict[str, str]:
        node = next(n for n in self.nodes("redis") if n.name == node_name)
        with probes.redis_client(node.host, node.port, self.config.get("REDIS_PASSWORD")) as client:
            return {key: str(value) for key, value in client.info(section).items()}

    def redis_command(self, node_name: str, *args: str, timeout_s: float | None = probes.PROBE_TIMEOUT_S):
        node = next(n for n in self.nodes("redis") if n.name == node_name)
        return probes.redis_command(node.host, node.port, self.config.get("REDIS_PASSWORD"), args, timeout_s)

    def redis_config_set(self, node_name: str, parameter: str, value: str) -> None:
        node = next(n for n in self.nodes("redis") if n.name == node_name)
        with probes.redis_client(node.host, node.port, self.config.get("REDIS_PASSWORD")) as client:
            client.config_set(parameter, value)

    def redis_roles(self) -> dict[str, str]:
        return self.probe().redis_roles()

    # ------------------------------------------------------------ lifecycle
    def up(self, timeout_s: float | None = None, progress=print) -> None:
        configs.check_timeouts(self.config.env)
        timeout_s = timeout_s or settings.get_int("STACK_UP_TIMEOUT_S", self.config.env, minimum=1)
        deadline = time.monotonic() + timeout_s
        self.check_engine_setup()
        self._check_generated()
        # Compose's file secrets are bind mounts that keep the host file's mode: the app (uid 10001) reads it.
        PASSWORD_FILE.write_text(settings.redis_password(self.config.env))
        PASSWORD_FILE.chmod(0o644)
        services = [n.name for n in self.config.nodes]
        profile = []
        if self.config.observability:  # Grafana too where its image can be had: `--profile observability up`
            services += OBSERVABILITY_SERVICES
            profile = ["--profile", "observability"]
        for container in self.containers().values():
            if container.status == "paused":
                self.resume(container.service)  # a node left paused by a fault would never answer
        for level in start_order(self.document, services):
            progress(f"{self.engine}: starting {', '.join(level)}")
            self.compose(*profile, "up", "--detach", "--no-deps", *level)
            self._wait_ready(level, deadline, timeout_s)
        wait_until(
            lambda: self.probe().topology_settled(),
            max(1.0, deadline - time.monotonic()),
            "one Redis master that every Sentinel names, with its replicas in sync",
            interval_s=0.2,
            hint=f"`{self.engine} logs CONTAINER`",
        )
        if self.config.observability:
            wait_until(
                self._targets_up,
                max(1.0, deadline - time.monotonic()),
                f"Prometheus ({self.config.prometheus_url}) to scrape every target",
                interval_s=0.5,
            )

    def _targets_up(self) -> bool:
        targets = probes.prometheus_targets(self.config.prometheus_url)
        return bool(targets) and all(t["health"] == "up" for t in targets)

    def _last_lines(self, container_name: str, lines: int = 15) -> str:
        try:
            return self.engine_run("logs", "--tail", str(lines), container_name)
        except ContainerError as error:
            return str(error)

    def _check_generated(self) -> None:
        """The compose files are generated from the settings (`make generate`): refuse settings they do not carry,
        e.g. SESSION_LAYER=stock for a matrix, instead of running the layer that app.env names."""
        wanted = app_env(self.config.env, [n.name for n in self.config.nodes if n.kind == "sentinel"])
        written = read_env_file(APP_ENV_FILE.read_text())
        differing = sorted(k for k in wanted if written.get(k) != wanted[k])
        if differing:
            asked = " ".join(f"{k}={wanted[k]}" for k in differing)
            raise ContainerError(
                f"compose/app.env was generated with {' '.join(f'{k}={written.get(k)}' for k in differing)}, and this "
                f"asks for {asked}: `{asked} make generate`, then `make up STACK=compose` (`make generate` again "
                "restores the defaults)"
            )

    def _wait_ready(self, services: list[str], deadline: float, timeout_s: float) -> None:
        waiting = list(services)
        while waiting:
            containers = self.containers()
            waiting = [s for s in waiting if not self._ready(containers.get(s))]
            if not waiting:
                return
            exited = [s for s in waiting if s in containers and containers[s].status in ("exited", "stopped")]
            if exited:  # `restart: "no"`: it will not come back by itself
                name = containers[exited[0]].name
                raise ContainerError(
                    f"{', '.join(exited)} exited while starting; its last lines (`{self.engine} logs {name}`):\n"
                    + self._last_lines(name)
                )
            if time.monotonic() > deadline:
                states = {
                    s: (containers[s].status, containers[s].health) if s in containers else "missing" for s in waiting
                }
                raise ContainerError(
                    f"timed out after {timeout_s:.0f}s waiting for {', '.join(waiting)} to be healthy: {states}; "
                    f"see `{self.engine} logs CONTAINER` ({self.engine} ps --all lists them)"
                )
            self.sleep(0.5)

    def down(self, progress=print) -> None:
        """Remove every container, network and volume of the project, the load and observability profiles' too."""
        progress(f"{self.engine}: removing the project's containers, network and volumes")
        profiles = [arg for profile in PROFILES for arg in ("--profile", profile)]
        self.compose(*profiles, "down", "--volumes", "--timeout", "5")
        left = self.engine_run("ps", "--all", "--quiet", "--filter", f"label={PROJECT_LABEL}={PROJECT}").split()
        if left:  # started by hand outside the file's services, e.g. `run`: still this project's
            progress(f"removing {len(left)} more container(s) of the project")
            self.engine_run("rm", "--force", "--volumes", *left)
        volumes = self.engine_run("volume", "ls", "--quiet", "--filter", f"label={PROJECT_LABEL}={PROJECT}").split()
        if volumes:
            self.engine_run("volume", "rm", "--force", *volumes)

    # --------------------------------------------------------------- faults
    def kill(self, node_name: str) -> int:
        container = self.container(node_name)
        self.engine_run("kill", "--signal", "KILL", container.name)
        return container.pid

    def pause(self, node_name: str) -> None:
        self.engine_run("pause", self.container(node_name).name)

    def resume(self, node_name: str) -> None:
        self.engine_run("unpause", self.container(node_name).name)

    def start(self, node_name: str) -> None:
        container = self.container(node_name)
        if container.status == "paused":
            self.resume(node_name)
        elif container.status != "running":
            self.engine_run("start", container.name)

    def stop(self, node_name: str) -> None:
        self.engine_run("stop", "--time", "10", self.container(node_name).name)

    def restart(self, node_name: str, timeout_s: float = 30) -> None:
        self.engine_run("restart", "--time", "10", self.container(node_name).name)
        self.wait_node_ready(node_name, timeout_s)

    def wait_node_ready(self, node_name: str, timeout_s: float = 30) -> None:
        self._wait_ready([node_name], time.monotonic() + timeout_s, timeout_s)

    # ------------------------------------------------------ network faults
    def network_refusal(self) -> str | None:
        return container_network.refusal()

    def cut_links(self, pairs: list[tuple[str, str]]) -> None:
        containers = self.containers()
        container_network.cut([(containers[a], containers[b]) for a, b in pairs])

    def congest(self, node_name: str, rate_kbit: int, burst_kbit: int, latency_ms: int) -> None:
        container_network.congest(self.container(node_name), rate_kbit, burst_kbit, latency_ms)

    def heal_network(self) -> None:
        container_network.heal([c for c in self.containers().values() if c.status in ("running", "paused")])

    def aof_dir(self, node_name: str) -> Path:
        raise ContainerError(f"{node_name}'s AOF is in a container volume; {DISK_FAULTS_NEED_LOCAL}")
