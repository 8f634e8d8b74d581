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


def _start_redis(redis_binary: str, port: int, data_dir: Path, *extra: str) -> subprocess.Popen:
    command = [redis_binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return subprocess.Popen(
        [*command, "--dir", str(data_dir), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )


@pytest.fixture(scope="session")
def redis_server(redis_binary, tmp_path_factory):
    """A real redis-server (no persistence) with one replica, for the app's unit tests (WAIT needs a replica)."""
    port = free_port_block(2)
    procs = []
    try:
        procs.append(_start_redis(redis_binary, port, tmp_path_factory.mktemp("redis")))
        procs.append(
            _start_redis(
                redis_binary, port + 1, tmp_path_factory.mktemp("replica"), "--replicaof", "127.0.0.1", str(port)
            )
        )
        replica = redis.Redis(port=port + 1, socket_timeout=1)
        wait_until(
            lambda: (
                all(p.poll() is None for p in procs) and replica.info("replication").get("master_link_status") == "up"
            ),
            15,
            "redis-server and its replica to be in sync",
        )
        yield {"port": port, "replica_port": port + 1, "process": procs[0], "replica_process": procs[1]}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def redis_client(redis_server):
    """A client of redis_server, emptied for each test (the replica follows)."""
    client = redis.Redis(port=redis_server["port"], socket_timeout=1)
    client.flushall()
    yield client
    client.close()
