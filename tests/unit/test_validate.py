"""make validate: generated compose/k8s files, their schemas, and parity with the local runtime."""

from __future__ import annotations

import shutil

import pytest

from sessionproof import REPO_ROOT
from sessionproof.configs import generate as deploy
from sessionproof.runtimes import validate


@pytest.fixture
def tree(tmp_path):
    """A copy of what make validate reads: compose/, k8s/, Grafana's files and the Dockerfile."""
    for name in ("compose", "k8s", "services/grafana"):
        shutil.copytree(REPO_ROOT / name, tmp_path / name)
    (tmp_path / "services" / "app").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "services" / "app" / "Dockerfile", tmp_path / "services" / "app" / "Dockerfile")
    return tmp_path


def test_the_committed_tree_validates():
    assert validate.all_problems() == []


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("relative", "old", "new", "what"),
    [
        ("compose/config/sentinel-1.conf", "down-after-milliseconds sessionproof 1200",
         "down-after-milliseconds sessionproof 5000", "compose sentinel"),
        ("k8s/base/config/redis-0.conf", "min-replicas-to-write 1", "min-replicas-to-write 0", "k8s redis-master"),
        ("compose/config/nginx.conf", "proxy_read_timeout 10s;", "proxy_read_timeout 60s;", "compose nginx"),
        ("k8s/base/config/app.env", "SESSION_LAYER=hardened", "SESSION_LAYER=stock", "k8s app settings"),
    ],
)  # fmt: skip
def test_a_setting_drifting_in_one_runtime_fails_validation(tree, relative, old, new, what):
    edit(tree / relative, old, new)
    problems = validate.all_problems(tree)
    assert any(p.startswith("drift: ") and relative in p for p in problems), problems
    assert any(p.startswith("parity: ") and what in p for p in problems), problems


def test_a_compose_file_outside_the_specification_fails(tree):
    edit(tree / "compose/docker-compose.yml", "    restart: 'no'\n", "    restart: 'no'\n    restartt: always\n")
    assert any("compose specification" in p for p in validate.compose_problems(tree))


def test_a_manifest_outside_the_kubernetes_schema_fails(tree):
    edit(tree / "k8s/base/app.yaml", "  maxUnavailable: 1\n", "  maxUnavailable: 1\n  maxUnavailabel: 2\n")
    problems = validate.k8s_problems(tree)
    assert any("PodDisruptionBudget/app" in p for p in problems), problems


def test_no_password_is_written_into_generated_files():
    for relative, text in deploy.generated_files().items():
        assert "sessionproof-dev-password" not in text, relative
    assert "__REDIS_PASSWORD__" in deploy.generated_files()["compose/config/redis-1.conf"]


def test_every_runtime_names_the_same_services():
    compose = deploy.generated_files()["compose/docker-compose.yml"]
    for name in ("redis-1", "redis-2", "redis-3", "sentinel-1", "sentinel-2", "sentinel-3", "app-1", "app-2",
                 "app-3", "nginx", "locust-master", "locust-worker"):  # fmt: skip
        assert f"\n  {name}:\n" in compose, name
    objects = validate.k8s_objects(REPO_ROOT / "k8s" / "overlays" / "dev")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {("StatefulSet", "redis"), ("StatefulSet", "sentinel"), ("Deployment", "app")} <= kinds


# A Redis node starts with replica-priority 0 until it has caught up (start-redis-node.sh); its watcher ends
# with the server, so the run returns once the stand-in server has.
@pytest.mark.parametrize(("kind", "extra"), [("redis", " --replica-priority 0"), ("sentinel", " --sentinel")])
def test_the_container_entrypoint_fills_the_password_in_once_and_starts_the_server(tmp_path, kind, extra):
    import os
    import subprocess

    bin_dir, data_dir = tmp_path / "bin", tmp_path / "data"
    bin_dir.mkdir()
    data_dir.mkdir()
    fake_server = bin_dir / "redis-server"  # stands in for the real one: shows what it was started with
    fake_server.write_text('#!/bin/sh\necho "args: $*"\ncat "$1"\n')
    fake_server.chmod(0o755)
    (tmp_path / "secret").write_text("p&w\\d|x\n")
    template = tmp_path / "node.conf"
    template.write_text("requirepass __REDIS_PASSWORD__\nmasterauth __REDIS_PASSWORD__\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DATA_DIR": str(data_dir),
           "REDIS_PASSWORD_FILE": str(tmp_path / "secret")}  # fmt: skip
    script = REPO_ROOT / "services" / "redis" / "container-entrypoint.sh"

    def start() -> str:
        done = subprocess.run(["sh", str(script), kind, str(template)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = start()
    assert out.splitlines()[0] == f"args: {data_dir / kind}.conf{extra}"
    assert "requirepass p&w\\d|x\nmasterauth p&w\\d|x\n" in out
    assert oct((data_dir / f"{kind}.conf").stat().st_mode)[-3:] == "600"
    (data_dir / f"{kind}.conf").write_text("rewritten by Sentinel\n")
    assert "rewritten by Sentinel" in start()  # a restart keeps what the node learnt


def test_a_dockerfile_that_copies_a_missing_file_or_runs_as_root_fails(tmp_path):
    (tmp_path / "services" / "app").mkdir(parents=True)
    dockerfile = (REPO_ROOT / "services" / "app" / "Dockerfile").read_text()
    assert validate.dockerfile_problems(REPO_ROOT) == []
    broken = dockerfile.replace("USER 10001", "USER root").replace("COPY locust.conf", "COPY locust.cfg")
    (tmp_path / "services" / "app" / "Dockerfile").write_text(broken)
    problems = validate.dockerfile_problems(tmp_path)
    assert "Dockerfile: the final stage must run as a non-root USER" in problems
    assert any("COPY source locust.cfg does not exist" in p for p in problems)
