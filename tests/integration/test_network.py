"""Network faults against the real stack (NETWORK=netns): each cuts exactly the links it names.

Reachability is checked from inside the namespaces themselves: a node "reaches" another when a
TCP connect plus AUTH and PING from its namespace gets +PONG within REACH_TIMEOUT_S.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import psutil
import pytest

from sessionproof.chaos.faults import FAULTS, heal, inject
from sessionproof.runs import EventLog
from sessionproof.runtimes import probes
from sessionproof.runtimes.local import LocalRuntime
from sessionproof.runtimes.netns import NodeNetwork
from sessionproof.topology import StackConfig
from sessionproof.waiting import wait_until
from support import wait_for_new_master

from .conftest import stack_env

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(os.geteuid() != 0, reason="NETWORK=netns needs root (namespaces, veths, iptables)"),
]

REACH_TIMEOUT_S = 1.0
_PING = """
import socket, sys
host, port, password, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
try:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(f"AUTH {password}\\r\\nPING\\r\\n".encode())
        reply = b""
        while b"PONG" not in reply:
            chunk = s.recv(256)
            if not chunk:
                break
            reply += chunk
    sys.exit(0 if b"PONG" in reply else 1)
except OSError:
    sys.exit(1)
"""


def reaches(stack: LocalRuntime, from_node: str, to_node: str) -> bool:
    """Whether from_node's namespace gets PONG from to_node (a Redis or a Sentinel)."""
    target = stack.config.node(to_node)
    argv = [sys.executable, "-c", _PING, target.host, str(target.port), stack.password, str(REACH_TIMEOUT_S)]
    return stack.run_on(from_node, argv, timeout_s=REACH_TIMEOUT_S + 5).returncode == 0


def host_reaches(stack: LocalRuntime, to_node: str) -> bool:
    """From the host's namespace: where nginx and the harness live."""
    return reaches(stack, "nginx", to_node)  # nginx has no namespace of its own: this runs in the host's


@pytest.fixture
def netns_stack(healthy_stack):
    if healthy_stack.network is None:
        pytest.fail("the tests' stack runs on loopback although the tests run as root: NETWORK=auto is broken")
    return healthy_stack


def run_fault(stack, tmp_path, name: str):
    """Inject, hand the targets to the test, heal (also when the test fails), then check the heal."""
    log = EventLog(tmp_path / "events.jsonl")
    targets = inject(FAULTS[name], stack, log)
    return log, targets


def heal_and_check(stack, log, name: str, targets: list[str]) -> None:
    heal(FAULTS[name], stack, log, targets)
    assert stack.network_faults() == {}, "the heal left rules or qdiscs behind"
    assert stack.healthy()
    heal(FAULTS[name], stack, log, targets)  # healing twice is harmless
    assert stack.healthy()
    types = [json.loads(line)["type"] for line in log.path.read_text().splitlines()]
    assert types[:4] == ["fault_start", "fault_injected", "heal_start", "fault_end"]


def test_partition_redis_master_leaves_it_reachable_to_apps_only_until_sentinel_promotes(netns_stack, tmp_path):
    old_master = netns_stack.master_node()
    replicas = [n.name for n in netns_stack.nodes("redis") if n != old_master]
    log, targets = run_fault(netns_stack, tmp_path, "partition-redis-master")
    try:
        assert targets == [old_master.name]
        assert reaches(netns_stack, "app-1", old_master.name), "the apps must still reach the old master"
        assert not reaches(netns_stack, "sentinel-1", old_master.name)
        assert not reaches(netns_stack, replicas[0], old_master.name)
        assert not reaches(netns_stack, old_master.name, "sentinel-2")
        assert reaches(netns_stack, "sentinel-1", replicas[0]), "links the fault did not name must keep working"
        assert reaches(netns_stack, "app-1", "sentinel-1")
        assert host_reaches(netns_stack, old_master.name), "the harness must see both sides"
        new_master = wait_for_new_master(netns_stack, old_master)
        # The old master does not know: it still says master. Two masters, as in a real partition.
        assert netns_stack.redis_roles()[old_master.name] == "master"
        assert new_master.name in replicas
    finally:
        heal_and_check(netns_stack, log, "partition-redis-master", targets)
    assert netns_stack.master_node() != old_master, "the master after the heal must differ from the one before"
    assert netns_stack.redis_roles()[old_master.name] == "replica"


def test_partition_app_cuts_one_replica_from_the_store_while_nginx_reaches_it(netns_stack, new_user, tmp_path):
    master = netns_stack.master_node()
    log, targets = run_fault(netns_stack, tmp_path, "partition-app")
    try:
        assert targets == ["app-1"]
        assert not reaches(netns_stack, "app-1", master.name)
        assert not reaches(netns_stack, "app-1", "sentinel-1")
        assert reaches(netns_stack, "app-2", master.name) and reaches(netns_stack, "app-2", "sentinel-3")
        user = new_user()
        app_1 = netns_stack.config.node("app-1")
        assert user.http.get(f"http://{app_1.address}/ping", timeout=2).status_code == 200, "nginx's side is cut"
        # Every request through nginx is answered, also those that first land on the cut-off replica.
        statuses = [user.post("/login", json={"user": "nina"}).status_code]
        statuses += [user.post(f"/cart/item{i}").status_code for i in range(6)]
        assert statuses == [200] * 7, statuses
        cart = user.get("/cart").json()["cart"]
        assert cart == [f"item{i}" for i in range(6)]
    finally:
        heal_and_check(netns_stack, log, "partition-app", targets)
    assert reaches(netns_stack, "app-1", netns_stack.master_node().name)


def test_isolate_sentinel_cuts_it_from_every_node_and_the_others_keep_quorum(netns_stack, tmp_path):
    master = netns_stack.master_node()
    log, targets = run_fault(netns_stack, tmp_path, "isolate-sentinel")
    try:
        assert targets == ["sentinel-1"]
        for other in (master.name, "sentinel-2", "redis-3"):
            assert not reaches(netns_stack, "sentinel-1", other), other
        assert not reaches(netns_stack, "app-1", "sentinel-1")
        assert reaches(netns_stack, "sentinel-2", master.name) and reaches(netns_stack, "app-1", "sentinel-2")
        assert host_reaches(netns_stack, "sentinel-1")
    finally:
        heal_and_check(netns_stack, log, "isolate-sentinel", targets)
    assert netns_stack.master_node() == master, "an isolated Sentinel alone must not cause a failover"


def test_partition_sentinels_minority_lets_the_majority_fail_over(netns_stack, tmp_path):
    old_master = netns_stack.master_node()
    log, targets = run_fault(netns_stack, tmp_path, "partition-sentinels-minority")
    try:
        assert targets == [old_master.name, "sentinel-1"]
        replica = next(n.name for n in netns_stack.nodes("redis") if n != old_master)
        assert reaches(netns_stack, "sentinel-1", old_master.name), "side A stays whole"
        assert reaches(netns_stack, "sentinel-2", replica) and reaches(netns_stack, "sentinel-2", "sentinel-3")
        assert not reaches(netns_stack, "sentinel-2", old_master.name)
        assert not reaches(netns_stack, "sentinel-1", "sentinel-3")
        assert not reaches(netns_stack, old_master.name, replica)
        assert reaches(netns_stack, "app-2", old_master.name) and reaches(netns_stack, "app-2", "sentinel-3")
        wait_until(
            lambda: _master_seen_by(netns_stack, "sentinel-2") not in (None, (old_master.host, old_master.port)),
            30,
            "the majority side (sentinel-2, sentinel-3) to promote a replica",
        )
        assert _master_seen_by(netns_stack, "sentinel-1") == (old_master.host, old_master.port), (
            "the minority Sentinel cannot know of the failover"
        )
    finally:
        heal_and_check(netns_stack, log, "partition-sentinels-minority", targets)
    assert netns_stack.master_node() != old_master


def _master_seen_by(stack, sentinel_name: str):
    node = stack.config.node(sentinel_name)
    view = probes.sentinel_view(node.host, node.port, stack.password, stack.master_name)
    return view.master if view else None


def test_congest_redis_master_rate_limits_its_link_both_ways(netns_stack, tmp_path):
    master = netns_stack.master_node()
    link = netns_stack.network.link(master)
    log, targets = run_fault(netns_stack, tmp_path, "congest-redis-master")
    try:
        assert targets == [master.name]
        shaped = netns_stack.network_faults()[master.name]
        assert len(shaped) == 2 and all(" tbf " in line and "rate 256Kbit" in line for line in shaped), shaped
        assert reaches(netns_stack, "app-1", master.name), "a slowed link still carries small requests"
        # 256 KiB each way through a 256 kbit/s bucket cannot pass without exceeding it: the qdisc counts
        # overlimits. ECHO, not SET: a write may be refused (NOREPLICAS) once the slowed replicas lag.
        with probes.redis_client(master.host, master.port, netns_stack.password) as client:
            client.connection_pool.connection_kwargs["socket_timeout"] = 30
            assert len(client.echo("x" * 262_144)) == 262_144
        stats = netns_stack.run_on("nginx", ["tc", "-s", "qdisc", "show", "dev", link.host_end]).stdout
        overlimits = int(stats.split("overlimits ")[1].split()[0])
        assert overlimits > 0, stats
    finally:
        heal_and_check(netns_stack, log, "congest-redis-master", targets)


def test_down_removes_every_namespace_and_link_also_after_a_crash(tmp_path):
    """supervisord SIGKILLed, its children left running inside their namespaces: `down` still clears all."""
    runtime = LocalRuntime(StackConfig.from_env({**stack_env(tmp_path / "state"), "NETWORK": "netns"}))
    network = NodeNetwork(runtime.config)
    try:
        runtime.up(progress=lambda *_: None)
        assert len(network.leftovers()["namespaces"]) == 3 + 3 + runtime.config.apps
        os.kill(runtime.supervisor.pid(), signal.SIGKILL)
        ours = [
            p for p in psutil.process_iter(["cmdline"]) if str(runtime.state_dir) in " ".join(p.info["cmdline"] or [])
        ]
        orphans = ours + [child for p in ours for child in p.children(recursive=True)]  # nginx's workers too
        assert orphans, "the stack's processes should outlive supervisord"
        runtime.down(progress=lambda *_: None)
        psutil.wait_procs(orphans, timeout=10)
        alive = [p for p in orphans if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, [(p.pid, p.cmdline()) for p in alive]
    finally:
        runtime.down(progress=lambda *_: None)
    assert network.leftovers() == {"namespaces": [], "links": []}
