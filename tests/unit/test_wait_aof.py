"""SESSION_WAIT_AOF: a write counts only once WAITAOF reports it fsynced on the master and on every replica in sync,
against a real Valkey master and replica (Redis 7.0 has no WAITAOF)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import redis

from sessionproof import engines
from sessionproof.waiting import wait_until
from sessionproof_app import replication
from sessionproof_app.confirmers_cache import ConfirmersCache
from sessionproof_app.store import WriteNotReplicated

pytestmark = pytest.mark.redis


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(folder: Path, port: int, *args: str) -> subprocess.Popen:
    folder.mkdir()
    argv = [engines.server_binary("valkey"), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
    argv += ["--save", "", "--appendonly", "yes", "--appendfsync", "always", "--repl-diskless-sync-delay", "0", *args]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def valkey_pair(tmp_path):
    """A Valkey master and its replica, AOF fsynced on every write; the replica's process for faults."""
    master_port, replica_port = _free_port(), _free_port()
    master = _start(tmp_path / "master", master_port)
    replica = _start(tmp_path / "replica", replica_port, "--replicaof", "127.0.0.1", str(master_port))
    client = redis.Redis(port=master_port, socket_timeout=5)
    try:
        wait_until(
            lambda: _in_sync(client, replica_port), 15, "the Valkey replica in sync with its master", interval_s=0.05
        )
        yield {"client": client, "replica": replica, "replica_port": replica_port}
    finally:
        client.close()
        for proc in (replica, master):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            proc.wait(10)


def _in_sync(client: redis.Redis, replica_port: int) -> bool:
    """The replica listed in sync and fsyncing what it gets: right after its full sync it rewrites its AOF, and
    WAITAOF counts it only after that (measured: 0 of 1 for a moment after the master listed it online)."""
    try:
        if ("127.0.0.1", replica_port) not in replication.in_sync(client.info("replication")):
            return False
        pipe = client.pipeline(transaction=False)
        pipe.set("fixture:probe", "1")
        pipe.execute_command("WAITAOF", 1, 1, 100)
        return [int(n) for n in pipe.execute()[1]] == [1, 1]
    except redis.ConnectionError:
        return False


def _write(client: redis.Redis, wait_aof: bool, timeout_ms: int = 300) -> list:
    cache = ConfirmersCache(client, ttl_s=60)
    pipe = client.pipeline(transaction=False)
    pipe.set("session:k", "v")
    return replication.execute_confirmed(client, cache, pipe, 1, lambda replies: None, timeout_ms, wait_aof)


def test_a_write_waits_for_its_fsync_on_the_master_and_the_replica(valkey_pair):
    client = valkey_pair["client"]
    assert replication.aof_replicas(ConfirmersCache(client, 60).get()) == 1
    assert _write(client, wait_aof=True) == [True]


def test_a_replica_that_acknowledges_but_cannot_fsync_holds_the_write(valkey_pair):
    """WAIT counts a replica that has the write in memory; with its AOF off it never fsyncs it, so WAITAOF (and the
    layer) refuses: without SESSION_WAIT_AOF the same write is acknowledged."""
    client = valkey_pair["client"]
    with redis.Redis(port=valkey_pair["replica_port"]) as replica:
        replica.config_set("appendonly", "no")
    assert _write(client, wait_aof=False) == [True]
    with pytest.raises(WriteNotReplicated, match=r"not fsynced within 300 ms: the master has, 0 of 1 replicas"):
        _write(client, wait_aof=True)


def test_the_fsync_count_is_every_replica_in_sync_and_at_least_the_required():
    """WAITAOF says how many fsynced, not which: counting every replica in sync, the required ones are among them."""
    a, b = ("10.0.0.11", 6379), ("10.0.0.12", 6379)
    assert replication.aof_replicas(replication.Confirmers(frozenset({a}), None, frozenset({a, b}))) == 2
    assert replication.aof_replicas(replication.Confirmers(frozenset({a, b}), None, frozenset({a}))) == 2
    assert replication.aof_replicas(replication.Confirmers(frozenset(), None, frozenset())) == 1
    with pytest.raises(WriteNotReplicated, match="the master has not, 2 of 2"):
        replication.require_fsynced([0, 2], 2, 300)
    replication.require_fsynced([1, 2], 2, 300)
