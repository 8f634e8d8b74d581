"""make power-loss's stand-in for the page cache (which AOF bytes the last fsync covered) and its report, from
strace lines as strace 6 writes them (the live run is `make power-loss`, not a test)."""

from __future__ import annotations

import json

from sessionproof.analysis.power_loss_report import main, report_lines
from sessionproof.chaos import aof_trace

# The main thread (100) appends to the AOF (fd 11) and answers a client (fd 12); a background thread (101) fsyncs.
EVERYSEC = """\
100 1000.000100 write(11, ""..., 52) = 52
100 1000.000200 write(12, ""..., 5) = 5
101 1000.000300 fdatasync(11) = 0
100 1000.000400 write(11, ""..., 29) = 29
101 1000.000500 fdatasync(11 <unfinished ...>
100 1000.000600 write(11, ""..., 30) = 30
101 1000.000700 <... fdatasync resumed>) = 0
100 1000.000800 write(11, ""..., 31 <unfinished ...>
101 1000.000900 fdatasync(11 <unfinished ...>
100 1000.001000 <... write resumed>) = 31
100 1000.001100 write(11, ""..., 40) = 40
"""


def test_only_writes_that_returned_before_a_completed_fsync_began_survive():
    trace = aof_trace.parse(EVERYSEC.splitlines(), fd=11)
    assert trace.written_bytes == 52 + 29 + 30 + 31 + 40
    # the fsync that began at .0005 covers 52 + 29; the 30 bytes were written while it ran; the last fsync began
    # while the 31-byte write was in progress and never returned (the node died): neither counts
    assert trace.durable_bytes == 52 + 29
    assert trace.fsyncs == 2 and trace.last_fsync_unix_s == 1000.0005
    assert trace.unsynced_bytes == 101 and trace.surviving_size(1000) == 899
    assert not trace.unfinished_write


def test_a_write_in_progress_when_the_node_died_is_flagged_and_other_fds_are_ignored():
    lines = ['7 5.0 write(11, ""..., 10) = 10', '7 5.1 fsync(11) = 0', '7 5.2 write(11, ""..., 8 <unfinished ...>',
             '7 5.3 fsync(12) = 0', '7 5.4 write(13, ""..., 99) = 99', "garbage"]  # fmt: skip
    trace = aof_trace.parse(lines, fd=11)
    assert (trace.written_bytes, trace.durable_bytes, trace.fsyncs) == (10, 10, 1)
    assert trace.unfinished_write
    assert aof_trace.parse(["7 5.1 fdatasync(11) = -1 EIO (Input/output error)"], fd=11).fsyncs == 0


def node(cut_bytes: int, problems: list[str] | None = None) -> dict:
    return {"aof": "appendonly.aof.1.incr.aof", "size_bytes": 5000, "cut_bytes": cut_bytes, "fsyncs": 4,
            "last_fsync_before_ms": 420, "problems": problems or []}  # fmt: skip


def power_loss(lost: int, acknowledged: int = 300, problems: list[str] | None = None) -> dict:
    return {"kill_after_s": 4.2, "acknowledged": acknowledged, "lost": lost, "lost_items": ["x"] * lost,
            "lost_acked_before_ms": [3, 380] if lost else None, "post_ms_under_strace": {"p50": 2.0, "p99": 9.0},
            "nodes": {"redis-1": node(900 if lost else 0, problems), "redis-2": node(0)}, "valid": not problems}  # fmt: skip


VALKEY = {"SESSION_LAYER": "hardened", "STORE_ENGINE": "valkey"}
SUMMARY = {
    "started_at": "20261207T100000Z",
    "command": "power_loss.py",
    "versions": {"store": "valkey 9.1.2"},
    "settings": {"rounds": 2, "write_min_s": 3.0, "write_max_s": 6.0, "writers": 4, "seed": 1},
    "configurations": {
        "hardened on valkey": {"settings": VALKEY, "store": "valkey 9.1.2", "rounds": [power_loss(25), power_loss(0)]},
        "hardened-waitaof on valkey": {
            "settings": VALKEY,
            "rounds": [power_loss(0), power_loss(0, problems=["no fsync traced"])],
        },
    },
    "skipped": {"hardened-waitaof": "SESSION_WAIT_AOF=yes needs WAITAOF, which Redis 7.0 does not have"},
}


def test_the_report_counts_lost_writes_per_configuration_and_says_which_rounds_were_not_valid(tmp_path):
    text = "\n".join(report_lines(SUMMARY))
    assert "Engines: valkey 9.1.2, valkey. 2 power losses" in text  # reported by the nodes, else the setting
    assert "| hardened on valkey | 2 | 600 | **25** | 25, 0 | 3 to 380 | 0 to 900 | 420 to 420 | yes |" in text
    assert "| hardened-waitaof on valkey | 2 | 600 | **0** | 0, 0 | none lost | 0 to 0 | 420 to 420 | **no** |" in text
    assert "- hardened-waitaof on valkey, round 2, redis-1: no fsync traced" in text
    assert "Not run: hardened-waitaof: SESSION_WAIT_AOF=yes needs WAITAOF" in text
    (tmp_path / "summary.json").write_text(json.dumps(SUMMARY))
    assert main([str(tmp_path)]) == 0
    assert (tmp_path / "plots" / "power-loss.png").read_bytes().startswith(b"\x89PNG")
