"""The disk fault's parts (runtimes/disk.py) against a real redis-server with its AOF on: a frozen AOF folder makes
Redis refuse writes and PING with MISCONF, and it takes writes again by itself once the folder is writable."""

from __future__ import annotations

import pytest
import redis
from conftest import _start_redis, free_port_block

from sessionproof.runtimes import disk
from sessionproof.waiting import wait_until

pytestmark = pytest.mark.redis


def test_a_frozen_folder_refuses_even_roots_writes_to_open_files_and_thaws(tmp_path):
    folder = tmp_path / "aof"
    folder.mkdir()
    open_file = (folder / "incr.aof").open("a")
    try:
        disk.freeze(folder)
        assert disk.is_frozen(folder)
        with pytest.raises(OSError, match="Operation not permitted"):
            open_file.write("x")
            open_file.flush()
        with pytest.raises(OSError):
            (folder / "new.aof").write_text("x")  # no new file either (an AOF rewrite's)
    finally:
        disk.writable_again(folder)
    assert not disk.is_frozen(folder)
    open_file.write("y")
    open_file.close()
    disk.writable_again(folder)  # idempotent
    disk.writable_again(tmp_path / "absent")  # nothing there: nothing to do


def test_redis_with_an_unwritable_aof_refuses_writes_with_misconf_then_recovers(redis_binary, tmp_path):
    port = free_port_block(1)
    proc = _start_redis(redis_binary, port, tmp_path, "--appendonly", "yes", "--appendfsync", "everysec")
    client = redis.Redis(port=port, socket_timeout=2)
    folder = tmp_path / "appendonlydir"
    try:
        wait_until(lambda: proc.poll() is None and client.ping() and folder.is_dir(), 15, "redis-server with its AOF")
        client.set("before", "1")
        disk.freeze(folder)
        client.set("probe", "1")  # taken in memory; its append to the AOF fails
        wait_until(lambda: client.info("persistence")["aof_last_write_status"] == "err", 10, "the append to fail")
        with pytest.raises(redis.ResponseError, match=r"^MISCONF"):
            client.set("refused", "1")
        with pytest.raises(redis.ResponseError, match=r"^MISCONF"):
            client.ping()  # what Sentinel asks: a master that answers this is not seen down
        assert client.get("before") == b"1"  # reads still pass
        disk.writable_again(folder)
        wait_until(lambda: client.info("persistence")["aof_last_write_status"] == "ok", 10, "Redis to append again")
        client.set("after", "1")
    finally:
        disk.writable_again(folder)
        client.close()
        proc.kill()
        proc.wait(timeout=10)
