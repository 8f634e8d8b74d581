"""A user without root: `make up`'s stack runs on loopback, and network faults refuse at once, saying why.

The commands run as `nobody` (setpriv drops root), with their own state folder and ports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from sessionproof import REPO_ROOT

from .conftest import stack_env

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to become nobody"),
]
NOBODY = 65534


def as_nobody(env: dict[str, str], *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    command = [
        "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
        sys.executable, "-m", *args,
    ]  # fmt: skip
    return subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture
def nobody_dir():
    """A folder nobody can reach (pytest's tmp_path lives under a root-only folder)."""
    path = Path(tempfile.mkdtemp(prefix="sessionproof-nobody-"))
    os.chown(path, NOBODY, NOBODY)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_user_without_root_gets_a_loopback_stack_and_a_clear_refusal_of_network_faults(nobody_dir):
    tmp_path = nobody_dir
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "LANG")},
        **stack_env(tmp_path / "state"),
        "HOME": str(home),
        "PYTHONDONTWRITEBYTECODE": "1",
        "NETWORK": "auto",
    }
    usable = as_nobody(env, "sessionproof.runtimes.netns", timeout_s=30)  # imports the harness, does nothing
    if usable.returncode != 0:
        pytest.skip(
            f"nobody cannot run this venv's Python ({os.path.realpath(sys.executable)}, e.g. under a root-only "
            f"folder): {usable.stderr.strip().splitlines()[-1] if usable.stderr.strip() else usable.returncode}"
        )
    try:
        up = as_nobody(env, "sessionproof.runtimes.stack", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "network: a namespace per node" not in up.stdout
        assert f"127.0.0.1:{env['REDIS_PORT_BASE']}" in up.stdout  # status: every node on loopback
        fault = as_nobody(env, "sessionproof.chaos.faults", "partition-redis-master", timeout_s=30)
        assert fault.returncode == 2
        assert "NETWORK=loopback" in fault.stderr and "NETWORK=netns" in fault.stderr and "root" in fault.stderr
        status = as_nobody(env, "sessionproof.runtimes.stack", "status", timeout_s=30)
        assert status.returncode == 0, status.stdout + status.stderr  # the refused fault touched nothing
    finally:
        down = as_nobody(env, "sessionproof.runtimes.stack", "down")
        assert down.returncode == 0, down.stdout + down.stderr
