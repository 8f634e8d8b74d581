"""Fixtures that start real processes (redis-server, the whole stack) and always stop them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from sessionproof.waiting import wait_until
from support import OBSERVATIONS, free_port_block


def pytest_terminal_summary(terminalreporter):
    if OBSERVATIONS:
        terminalreporter.section("observed")
        for line in OBSERVATIONS:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def redis_binary() -> str:
    path = shutil.which("redis-server")
    if not path:
        pytest.fail("redis-server is not installed: run `make deps`")
    return path


@pytest.fixture(scope="session")
def redis_server(redis_binary, tmp_path_factory):
    """One real redis-server (no persistence) for the app's unit tests."""
    port = free_port_block(1)
    data_dir: Path = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            redis_binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        client = redis.Redis(port=port, socket_timeout=1)
        wait_until(lambda: proc.poll() is None and client.ping(), 10, "redis-server to answer PING")
        yield {"port": port, "process": proc}
    finally:
        proc.kill()
        proc.wait(timeout=10)
