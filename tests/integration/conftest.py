"""A whole stack on its own ports and state folder, so tests never touch a user's `make up`."""

from __future__ import annotations

import contextlib

import psutil
import pytest
import requests

from sessionproof.runtimes.local import LocalRuntime
from sessionproof.topology import StackConfig
from support import free_port_block


def stack_env(state_dir, apps: int = 3) -> dict[str, str]:
    base = free_port_block(24)
    return {
        "STATE_DIR": str(state_dir),
        "APPS": str(apps),
        "REDIS_PORT_BASE": str(base),
        "SENTINEL_PORT_BASE": str(base + 3),
        "APP_PORT_BASE": str(base + 6),
        "NGINX_PORT": str(base + 19),
        "NGINX_STATUS_PORT": str(base + 20),
        "REDIS_EXPORTER_PORT": str(base + 21),
        "NGINX_EXPORTER_PORT": str(base + 22),
        "PROMETHEUS_PORT": str(base + 23),
        "GUNICORN_WORKERS": "1",
        # Its own subnet, so a user's `make up` (10.199.0.0/24) can run beside the tests' stack.
        "NETNS_SUBNET": f"10.198.{base % 250}.0/24",
    }


def processes_of(runtime: LocalRuntime) -> list[psutil.Process]:
    pid = runtime.supervisor.pid()
    if pid is None:
        return []
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


@contextlib.contextmanager
def running_stack(env: dict[str, str]):
    """A local stack with these settings, up for the block; then down, with nothing of it left behind."""
    runtime = LocalRuntime(StackConfig.from_env(env))
    started: list[psutil.Process] = []
    try:
        runtime.up(progress=lambda *_: None)
        started = processes_of(runtime)
        yield runtime
    finally:
        started += processes_of(runtime)
        runtime.down(progress=lambda *_: None)
        alive = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"processes left behind: {[p.pid for p in alive]}"
        if runtime.network is not None:
            assert runtime.network.leftovers() == {"namespaces": [], "links": []}


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    with running_stack(stack_env(tmp_path_factory.mktemp("stack") / "state")) as runtime:
        yield runtime


@pytest.fixture
def healthy_stack(stack):
    """Every test starts from the known topology: all nodes up, 1 master, 2 replicas."""
    stack.up(progress=lambda *_: None)
    return stack


# Longer than the hardened layer's retry budget (STORE_RETRY_BUDGET_S, 6 s), shorter than nginx's 10 s.
REQUEST_TIMEOUT_S = 9


class User:
    """A browser: a cookie jar talking to nginx."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = requests.Session()

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.base_url + path, timeout=REQUEST_TIMEOUT_S, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.http.post(self.base_url + path, timeout=REQUEST_TIMEOUT_S, **kwargs)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def new_user(healthy_stack):
    users: list[User] = []

    def make() -> User:
        user = User(healthy_stack.config.entry_url)
        users.append(user)
        return user

    yield make
    for user in users:
        user.close()
