"""Every fault injects and heals against the real local stack; after heal the topology is whole again."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from sessionproof.chaos.fault_kit import aof_write_failing
from sessionproof.chaos.faults import FAULTS, NETWORK_FAULTS, heal, inject
from sessionproof.runs import EventLog
from sessionproof.runtimes.disk import is_frozen
from support import wait_for_new_master

pytestmark = pytest.mark.stack


def assert_whole(stack) -> None:
    roles = Counter(row.role for row in stack.status() if row.state == "RUNNING")
    # Prometheus and its two exporters (role "metrics") run beside the stack and no fault touches them.
    assert roles == Counter(
        {"master": 1, "replica": 2, "sentinel": 3, "app": stack.config.apps, "entry": 1, "metrics": 3}
    )
    assert list(stack.redis_roles().values()).count("master") == 1
    assert stack.healthy()


def fault_is_visible(stack, fault: str, targets: list[str], master_before) -> None:
    """What the fault must have done, checked before heal."""
    if fault in ("kill-app", "kill-sentinel", "restart-redis-all"):
        assert not any(stack.is_running(t) for t in targets)
    elif fault in ("pause-app", "pause-redis-master"):
        assert {row.node.name: row.state for row in stack.status()}[targets[0]] == "PAUSED"
    elif fault == "kill-redis-master":
        assert not stack.is_running(targets[0])
        new_master = wait_for_new_master(stack, master_before)
        assert new_master.name != targets[0]
    elif fault == "aof-unwritable-redis-master":
        assert aof_write_failing(stack, targets[0])  # its appends fail: MISCONF, and Sentinel fails it over
        assert is_frozen(stack.aof_dir(targets[0]))
    elif fault == "restart-apps":
        assert all(stack.is_running(t) for t in targets)  # rolled, each ready again


@pytest.mark.parametrize("fault_name", sorted(set(FAULTS) - NETWORK_FAULTS))
def test_each_fault_injects_and_heals(healthy_stack, tmp_path, fault_name):
    fault = FAULTS[fault_name]
    log = EventLog(tmp_path / "events.jsonl")
    master_before = healthy_stack.master_node()
    pids_before = {row.node.name: row.pid for row in healthy_stack.status()}
    targets = inject(fault, healthy_stack, log)
    try:
        fault_is_visible(healthy_stack, fault_name, targets, master_before)
        if fault_name == "restart-apps":
            after = {row.node.name: row.pid for row in healthy_stack.status()}
            assert all(after[t] != pids_before[t] for t in targets), "a replica was not restarted"
    finally:
        heal(fault, healthy_stack, log, targets)
    assert_whole(healthy_stack)
    assert not any(is_frozen(healthy_stack.aof_dir(n.name)) for n in healthy_stack.nodes("redis"))
    heal(fault, healthy_stack, log, targets)  # healing twice is harmless
    assert_whole(healthy_stack)
    types = [json.loads(line)["type"] for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert types[:4] == ["fault_start", "fault_injected", "heal_start", "fault_end"]
