"""The stack's shape, resolved from settings: which nodes exist and where they listen."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sessionproof_app import settings

from . import REPO_ROOT

REDIS_NODES = 3
SENTINEL_NODES = 3


@dataclass(frozen=True)
class Node:
    name: str  # redis-1, sentinel-2, app-3, nginx
    kind: str  # redis | sentinel | app | nginx
    port: int


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        env = dict(os.environ if env is None else env)
        apps = settings.get_int("APPS", env)
        if apps < 2:
            raise settings.ConfigError(f"APPS={apps}: the point is bouncing between replicas, so use at least 2")
        state_dir = Path(settings.get_str("STATE_DIR", env))
        if not state_dir.is_absolute():
            state_dir = REPO_ROOT / state_dir
        config = cls(
            env=env,
            apps=apps,
            bind_host=settings.get_str("BIND_HOST", env),
            nginx_port=settings.get_int("NGINX_PORT", env, minimum=1),
            app_port_base=settings.get_int("APP_PORT_BASE", env, minimum=1),
            redis_port_base=settings.get_int("REDIS_PORT_BASE", env, minimum=1),
            sentinel_port_base=settings.get_int("SENTINEL_PORT_BASE", env, minimum=1),
            state_dir=state_dir,
        )
        config.check_ports()
        return config

    def get(self, name: str) -> str:
        return settings.get_str(name, self.env)

    @property
    def redis_nodes(self) -> list[Node]:
        return [Node(f"redis-{i}", "redis", self.redis_port_base + i - 1) for i in range(1, REDIS_NODES + 1)]

    @property
    def sentinel_nodes(self) -> list[Node]:
        return [
            Node(f"sentinel-{i}", "sentinel", self.sentinel_port_base + i - 1) for i in range(1, SENTINEL_NODES + 1)
        ]

    @property
    def app_nodes(self) -> list[Node]:
        return [Node(f"app-{i}", "app", self.app_port_base + i - 1) for i in range(1, self.apps + 1)]

    @property
    def nginx_node(self) -> Node:
        return Node("nginx", "nginx", self.nginx_port)

    @property
    def nodes(self) -> list[Node]:
        return [*self.redis_nodes, *self.sentinel_nodes, *self.app_nodes, self.nginx_node]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise KeyError(f"no node named {name!r}; the stack has {known}")

    @property
    def sentinels_setting(self) -> str:
        return ",".join(f"{self.bind_host}:{n.port}" for n in self.sentinel_nodes)

    @property
    def entry_url(self) -> str:
        return f"http://{self.bind_host}:{self.nginx_port}"

    def check_ports(self) -> None:
        ports: dict[int, str] = {}
        for node in self.nodes:
            if node.port in ports:
                raise settings.ConfigError(
                    f"{node.name} and {ports[node.port]} would both listen on port {node.port}; "
                    "change APP_PORT_BASE, REDIS_PORT_BASE, SENTINEL_PORT_BASE or NGINX_PORT"
                )
            ports[node.port] = node.name
