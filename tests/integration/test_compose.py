"""The compose stack, live on Podman: up, a bounce run from the Locust containers, a Redis-master kill, down.

It needs the images (`make images`, which .ci/run runs before `make test`) and runs on its own
NGINX_PORT. The project's name and network are the compose file's own, so it refuses to run over a
compose stack a user has up (it would replace it) rather than touch it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import requests

from sessionproof import runs
from sessionproof.chaos.faults import FAULTS, heal, inject
from sessionproof.runs import EventLog
from sessionproof.runtimes import probes
from sessionproof.runtimes.compose import COMPOSE_FILE, OBSERVABILITY_SERVICES, PROJECT, PROJECT_LABEL, compose_command
from sessionproof.runtimes.factory import get_runtime
from sessionproof.runtimes.images import APP_IMAGE, LOADGEN_IMAGE, NGINX_IMAGE, REDIS_IMAGE, image_exists
from support import free_port_block

pytestmark = [pytest.mark.stack, pytest.mark.compose, pytest.mark.timeout(600)]
NODES = 10  # redis x3, sentinel x3, app x3, nginx


def project_containers() -> list[str]:
    out = subprocess.run(
        ["podman", "ps", "--all", "--format", "{{.Names}}", "--filter", f"label={PROJECT_LABEL}={PROJECT}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


@pytest.fixture(scope="module")
def compose_stack():
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: `make deps` installs it")
    missing = [i for i in (REDIS_IMAGE, NGINX_IMAGE, APP_IMAGE, LOADGEN_IMAGE) if not image_exists(i)]
    if missing:
        pytest.fail(f"images {missing} are missing: `make images` builds them (.ci/run does before the tests)")
    if project_containers():
        pytest.skip(
            "a compose stack of this project is up (`make down STACK=compose` first): this test would replace it"
        )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STACK", "compose")
        env.setenv("NGINX_PORT", str(free_port_block(1)))  # the compose tool interpolates NGINX_PORT
        runtime = get_runtime()
        try:
            runtime.up(progress=lambda *_: None)
            yield runtime
        finally:
            runtime.down(progress=lambda *_: None)


def test_up_starts_every_node_healthy_and_a_cart_bounces_across_the_app_containers(compose_stack):
    containers = compose_stack.containers()
    nodes = [c for c in containers.values() if c.service not in OBSERVABILITY_SERVICES]
    assert len(nodes) == NODES and all(c.status == "running" and c.health == "healthy" for c in nodes), nodes
    # OBSERVABILITY=on (the default): Prometheus scrapes every app, every Redis node (through the exporter) and nginx
    targets = probes.prometheus_targets(compose_stack.config.prometheus_url)
    assert {t["node"] for t in targets} >= {"app-1", "app-2", "app-3", "redis-1", "redis-2", "redis-3", "nginx"}
    assert all(t["health"] == "up" for t in targets), targets
    served = set()
    with requests.Session() as http:
        for i in range(6):
            response = http.post(f"{compose_stack.config.entry_url}/cart/item{i}", timeout=5)
            assert response.status_code == 200, response.text
            served.add(response.json()["servedBy"])
        cart = http.get(f"{compose_stack.config.entry_url}/cart", timeout=5).json()["cart"]
    assert served == {"app-1", "app-2", "app-3"}
    assert cart == [f"item{i}" for i in range(6)]  # every write, whichever container took it
    status = subprocess.run(
        [sys.executable, "-m", "sessionproof.runtimes.stack", "status"], capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status
    roles = [line.split()[1] for line in status.stdout.splitlines() if line.startswith("redis-")]
    assert sorted(roles) == ["master", "replica", "replica"], status.stdout


def test_the_load_profile_writes_a_complete_run_folder_to_results(compose_stack):
    before = set(runs.results_dir().iterdir())
    env = {**os.environ, "SCENARIO": "bounce", "LOCUST_HEADLESS": "true", "LOCUST_RUN_TIME": "10s"}
    compose = [*compose_command("podman"), "-f", str(COMPOSE_FILE), "--profile", "load"]
    subprocess.run(
        [*compose, "up", "--detach", "--no-deps", "--force-recreate", "locust-master", "locust-worker"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        waited = subprocess.run(
            ["podman", "wait", f"{PROJECT}_locust-master_1"], capture_output=True, text=True, timeout=150, check=True
        )
    except subprocess.TimeoutExpired:
        waited = None
    assert waited is not None and waited.stdout.strip() == "0", _locust_logs()
    new = [p for p in set(runs.results_dir().iterdir()) - before if p.name.endswith("-bounce")]
    assert len(new) == 1, new
    run_dir = new[0]
    try:
        for name in ("report.md", "summary.json", "meta.json", "locust.html", "plots/latency.png", "raw/history.jsonl"):
            assert (run_dir / name).exists(), name
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["stack"] == "compose"
        assert summary["requests"]["total"] > 100 and summary["requests"]["failed"] == 0, summary["requests"]
        assert summary["correctness"]["lost_writes"] == 0
        assert summary["server"]["available"], summary["server"]  # read from Prometheus in the compose network
    finally:
        shutil.rmtree(run_dir)


def _locust_logs() -> str:
    """What Locust's master and workers printed: the reason a load run did not end (or ended non-zero)."""
    names = [f"{PROJECT}_locust-master_1", f"{PROJECT}_locust-worker_1", f"{PROJECT}_locust-worker_2"]
    logs = [subprocess.run(["podman", "logs", "--tail", "30", n], capture_output=True, text=True) for n in names]
    return "\n".join(f"== {n}\n{log.stdout}{log.stderr}" for n, log in zip(names, logs, strict=True))


def test_a_killed_redis_master_fails_over_and_rejoins_on_containers(compose_stack, tmp_path):
    before = compose_stack.master_node().name
    log = EventLog(tmp_path / "events.jsonl")
    targets = inject(FAULTS["kill-redis-master"], compose_stack, log)
    assert targets == [before] and not compose_stack.is_running(before)
    deadline = time.monotonic() + 30
    while (master := compose_stack.master_node()) is None or master.name == before:
        assert time.monotonic() < deadline, "Sentinel promoted no replica within 30 s"
        time.sleep(0.5)
    heal(FAULTS["kill-redis-master"], compose_stack, log, targets)
    roles = compose_stack.redis_roles()
    assert roles[before] == "replica" and list(roles.values()).count("master") == 1, roles


def test_down_removes_every_container_network_and_volume(compose_stack):
    compose_stack.down(progress=lambda *_: None)
    assert project_containers() == []
    networks = subprocess.run(["podman", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True)
    assert f"{PROJECT}_default" not in networks.stdout.split()
    volumes = subprocess.run(
        ["podman", "volume", "ls", "--quiet", "--filter", f"label={PROJECT_LABEL}={PROJECT}"],
        capture_output=True,
        text=True,
    )
    assert volumes.stdout.split() == []
