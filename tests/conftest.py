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


def _installed(program: str) -> str:
    path = shutil.which(program)
    if not path:
        pytest.fail(f"{program} is not installed: run `make deps`")
    return path


@pytest.fixture(scope="session")
def redis_binary() -> str:
    return _installed("redis-server")


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
        with redis.Redis(port=port + 1, socket_timeout=1) as replica:  # closed: not left to the garbage collector
            wait_until(
                lambda: (
                    all(p.poll() is None for p in procs)
                    and replica.info("replication").get("master_link_status") == "up"
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


@pytest.fixture
def lone_redis(redis_binary, tmp_path):
    """A redis-server of the test's own, without replicas (NOREPLICAS with min-replicas-to-write 1), in a folder the
    test may take away (MISCONF), with DEBUG allowed from loopback: for replies that change or stop the server."""
    port = free_port_block(1)
    data_dir = tmp_path / "lone-redis"
    data_dir.mkdir()
    proc = _start_redis(redis_binary, port, data_dir, "--enable-debug-command", "local")
    admin = redis.Redis(port=port, socket_timeout=2)
    try:
        wait_until(lambda: proc.poll() is None and admin.ping(), 15, "the lone redis-server to answer")
        yield {"port": port, "dir": data_dir, "admin": admin}
    finally:
        admin.close()
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def sentinel_binary() -> str:
    return _installed("redis-sentinel")


@pytest.fixture(scope="module")
def split_brain_sentinels(redis_binary, sentinel_binary, tmp_path_factory):
    """Two redis-servers, both masters, and two redis-sentinels that monitor them under ONE master name:
    "old" names the first at config-epoch 1, "new" the second at config-epoch 5 (a split brain as clients
    see it). Everything requires `password`."""
    name, password = "sp-split", "sp-test-password"
    base = free_port_block(4)  # old master, new master, old sentinel, new sentinel
    sides = {
        "old": {"master_port": base, "sentinel_port": base + 2, "epoch": 1},
        "new": {"master_port": base + 1, "sentinel_port": base + 3, "epoch": 5},
    }
    procs = []
    try:
        for side, info in sides.items():
            master_dir = tmp_path_factory.mktemp(f"{side}-master")
            procs.append(_start_redis(redis_binary, info["master_port"], master_dir, "--requirepass", password))
            sentinel_dir = tmp_path_factory.mktemp(f"{side}-sentinel")
            conf = sentinel_dir / "sentinel.conf"  # Sentinel rewrites its config file: one per Sentinel
            conf.write_text(
                f"port {info['sentinel_port']}\n"
                "bind 127.0.0.1\n"
                f'dir "{sentinel_dir}"\n'
                f"requirepass {password}\n"
                f"sentinel monitor {name} 127.0.0.1 {info['master_port']} 1\n"
                f"sentinel auth-pass {name} {password}\n"
                f"sentinel config-epoch {name} {info['epoch']}\n"
            )
            procs.append(
                subprocess.Popen([sentinel_binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            )
            info["sentinel"] = ("127.0.0.1", info["sentinel_port"])
            info["sentinel_process"] = procs[-1]

        def healthy(info) -> bool:
            client = redis.Redis(*info["sentinel"], password=password, socket_timeout=1)
            try:
                state = client.sentinel_masters().get(name)
            finally:
                client.close()
            # Measured: flags are "master,disconnected" until Sentinel's links to the master are up (for good if
            # auth-pass is wrong), then "master"; s_down/o_down would follow only after down-after-milliseconds.
            # redis-py's check_master_state does not look at "disconnected", so wait for plain "master" here.
            return bool(state) and state["flags"] == "master" and int(state["config-epoch"]) == info["epoch"]

        wait_until(
            lambda: all(p.poll() is None for p in procs) and all(healthy(info) for info in sides.values()),
            15,
            "both Sentinels to report their master healthy at their config-epoch",
        )
        yield {"name": name, "password": password, **sides}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def unreachable_store():
    from sessionproof_app.store import make_retry

    # The app's own retry policy (3 retries with backoff), against a port nobody listens on.
    client = redis.Redis(port=free_port_block(1), socket_timeout=0.2, socket_connect_timeout=0.2, retry=make_retry({}))
    yield client
    client.close()
