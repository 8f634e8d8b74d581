"""The README's commands, run as a user runs them: make up, make status, make down."""

from __future__ import annotations

import os
import subprocess

import psutil
import pytest

from sessionproof import REPO_ROOT
from sessionproof.runtimes.local import LocalRuntime
from sessionproof.topology import StackConfig

from .conftest import stack_env

pytestmark = pytest.mark.stack


def make(target: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"make {target} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def test_make_up_status_and_down_leave_no_process_behind(tmp_path):
    env = stack_env(tmp_path / "state", apps=2)
    runtime = LocalRuntime(StackConfig.from_env(env))
    started: list[psutil.Process] = []
    try:
        up = make("up", env)
        assert f"stack is up: http://127.0.0.1:{env['NGINX_PORT']}" in up.stdout
        started = [psutil.Process(runtime.supervisor.pid())]
        started += started[0].children(recursive=True)

        status = make("status", env).stdout
        roles = [line.split()[1] for line in status.splitlines()[1:] if line and not line.startswith(" ")][:8]
        assert sorted(roles) == sorted(
            ["master", "replica", "replica", "sentinel", "sentinel", "sentinel", "app", "app"]
        )
        assert "entry" in status and "12/12 nodes running" in status  # 9 of the stack, Prometheus and 2 exporters
        assert "prometheus" in status and "targets up" in status

        pids_before = {p.pid for p in started}
        rerun = make("up", env)
        assert "supervisord already running" in rerun.stdout
        assert {row.pid for row in runtime.status()} <= pids_before, "a re-run of make up restarted nodes"
    finally:
        make("down", env, check=False)
    alive = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"make down left {[(p.pid, p.name()) for p in alive]}"
    down_status = make("status", env, check=False)
    assert down_status.returncode != 0 and "the stack is not running" in down_status.stdout
