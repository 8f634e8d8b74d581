"""The stack on Valkey (STORE_ENGINE=valkey) with writes that wait for the disk (SESSION_WAIT_AOF=yes,
REDIS_APPENDFSYNC=always): a short master kill end to end, judged by the one checker."""

from __future__ import annotations

import json

import pytest

from sessionproof.chaos.experiment import run_experiment

from .conftest import running_stack, stack_env
from .test_experiment import use_short_redis_kill

pytestmark = pytest.mark.stack


@pytest.fixture
def valkey_stack(tmp_path):
    env = {
        **stack_env(tmp_path / "state"),
        "STORE_ENGINE": "valkey",
        "SESSION_WAIT_AOF": "yes",
        "REDIS_APPENDFSYNC": "always",
        "OBSERVABILITY": "off",
    }
    with running_stack(env) as runtime:
        yield runtime


def test_a_master_kill_on_valkey_with_fsynced_writes_loses_nothing(valkey_stack, tmp_path, monkeypatch):
    use_short_redis_kill(valkey_stack, tmp_path, monkeypatch)
    for node in valkey_stack.config.redis_nodes:
        assert valkey_stack.redis_info(node.name, "server")["valkey_version"].startswith("9.")
        reply = valkey_stack.redis_command(node.name, "CONFIG", "GET", "appendfsync")
        assert (reply.get("appendfsync") if isinstance(reply, dict) else reply[1]) == "always", reply

    run_dir, _exit_code = run_experiment("short-redis-kill", valkey_stack, progress=lambda *_: None)

    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["versions"]["store"].startswith("valkey 9.") and meta["config"]["STORE_ENGINE"] == "valkey"
    assert meta["config"]["SESSION_WAIT_AOF"] == "yes"
    summary = json.loads((run_dir / "summary.json").read_text())
    figures = summary["failover"]
    assert figures["acknowledged_writes"] > 20
    assert figures["lost_acknowledged_writes"] == 0, figures["lost_examples"]
    assert summary["correctness_source"] == "history" and summary["correctness"]["anomalies"] == 0
    assert any(e["event"] == "+switch-master" for e in summary["sentinel_timeline"])
    assert valkey_stack.healthy()
