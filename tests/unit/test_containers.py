"""Every chaos fault on the k8s runtime: the kubectl commands each one sends.

No cluster runs here, so the runtime talks to a small simulated cluster that answers
like `kubectl get pods` and changes state with the commands it receives (delete pod,
exec, ...). The compose runtime runs live on Podman: tests/integration/test_compose.py.
"""

from __future__ import annotations

import json
import re

import pytest

from sessionproof.chaos import fault_kit
from sessionproof.chaos.faults import DISK_FAULTS, FAULTS, NETWORK_FAULTS, heal, inject
from sessionproof.runs import EventLog
from sessionproof.runtimes.commands import ContainerError, run_command
from sessionproof.runtimes.factory import get_runtime
from sessionproof.runtimes.k8s import K8sRuntime
from sessionproof.topology import StackConfig
from sessionproof.waiting import DeadlineExceeded

KUBECTL = ["kubectl", "--namespace", "sessionproof-dev"]


USED_MEMORY = 1_048_576


def _redis_cli_answer(command: str) -> str:
    return f"# Memory\r\nused_memory:{USED_MEMORY}\r\n" if "INFO memory" in command else "OK\n"


def config_sets(calls: list[list[str]]) -> list[tuple[str, str]]:
    """(node, value) of every CONFIG SET maxmemory sent through the engine, in order."""
    return [
        (next(a for a in call if a.startswith("redis-")), call[-1].rsplit(" ", 1)[1])
        for call in calls
        if "CONFIG SET maxmemory" in call[-1]
    ]


class FakeCluster:
    def __init__(self):
        self.pods = {f"redis-{i}": "redis" for i in range(3)} | {f"sentinel-{i}": "sentinel" for i in range(3)}
        self.pods |= {f"app-7d9f-{s}": "app" for s in ("aaaaa", "bbbbb", "ccccc")} | {"nginx-5c4b-ddddd": "nginx"}
        self.generation = 0
        self.calls: list[list[str]] = []

    def _pod(self, name: str, component: str) -> dict:
        return {
            "metadata": {"name": name, "labels": {"app.kubernetes.io/component": component}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }

    def __call__(self, argv: list[str]) -> str:
        self.calls.append(argv)
        if argv[:2] == ["kubectl", "apply"] or argv[:2] == ["kubectl", "delete"]:
            return ""
        assert argv[:3] == KUBECTL, argv
        verb, args = argv[3], argv[4:]
        if verb == "get":
            return json.dumps({"items": [self._pod(n, c) for n, c in self.pods.items()]})
        if verb == "exec":
            command = args[-1]
            if "get-master-addr-by-name" in command:
                return "redis-0.redis\n6379\n"
            if "INFO memory" in command or "CONFIG SET" in command:
                return _redis_cli_answer(command)
            return ("master" if args[0] == "redis-0" else "slave") + "\n"
        if verb == "delete":
            name = args[1]
            component = self.pods.pop(name)
            # The controller replaces it: a StatefulSet pod under its name, a Deployment pod under a new one.
            self.generation += 1
            replacement = name if re.fullmatch(r"\w+-\d", name) else f"{name[:-5]}new{self.generation:02d}"
            self.pods[replacement] = component
        return ""

    def sent(self, *args: str) -> bool:
        return [*KUBECTL, *args] in self.calls


def k8s_runtime(fake):
    return K8sRuntime(StackConfig.from_env({}), runner=fake)


@pytest.fixture(autouse=True)
def nginx_routes_at_once(monkeypatch):
    monkeypatch.setattr(fault_kit, "served_by_through_entry", lambda runtime, target: True)
    monkeypatch.setattr(fault_kit, "is_busy", lambda runtime, target: True)  # the fake cluster runs no script


def run_fault(runtime, name: str, tmp_path) -> list[str]:
    log = EventLog(tmp_path / "events.jsonl")
    targets = inject(FAULTS[name], runtime, log)
    heal(FAULTS[name], runtime, log, targets)
    return targets


PROCESS_FAULTS = sorted(set(FAULTS) - NETWORK_FAULTS - DISK_FAULTS)


K8S_EXPECTED = {
    "kill-app": [("delete", "pod", "app-7d9f-aaaaa", "--grace-period=0", "--force", "--wait=false")],
    "pause-app": [("exec", "app-7d9f-aaaaa", "--", "sh", "-c", "kill -STOP -1"),
                  ("exec", "app-7d9f-aaaaa", "--", "sh", "-c", "kill -CONT -1")],
    "restart-apps": [("delete", "pod", "app-7d9f-aaaaa", "--wait=true"),
                     ("delete", "pod", "app-7d9f-bbbbb", "--wait=true"),
                     ("delete", "pod", "app-7d9f-ccccc", "--wait=true")],
    "kill-redis-master": [("delete", "pod", "redis-0", "--grace-period=0", "--force", "--wait=false")],
    "pause-redis-master": [("exec", "redis-0", "--", "sh", "-c", "kill -STOP -1"),
                           ("exec", "redis-0", "--", "sh", "-c", "kill -CONT -1")],
    "kill-sentinel": [("delete", "pod", "sentinel-0", "--grace-period=0", "--force", "--wait=false")],
    "restart-redis-all": [("delete", "pod", f"redis-{i}", "--grace-period=0", "--force", "--wait=false")
                          for i in range(3)],
    "fill-redis": [],  # in-band: see config_sets
    "kill-redis-replica": [("delete", "pod", "redis-1", "--grace-period=0", "--force", "--wait=false")],
    "pause-redis-replica": [("exec", "redis-1", "--", "sh", "-c", "kill -STOP -1"),
                            ("exec", "redis-1", "--", "sh", "-c", "kill -CONT -1")],
    "busy-script-redis-master": [],  # in-band: see redis_commands
    "pause-writes-redis-master": [],
}  # fmt: skip
IN_BAND = {
    "busy-script-redis-master": ("redis-0", "'EVAL_RO'"),
    "pause-writes-redis-master": ("redis-0", "'CLIENT' 'PAUSE' '60000' 'WRITE'"),
}


@pytest.mark.parametrize("name", PROCESS_FAULTS)
def test_every_fault_on_k8s(name, tmp_path):
    fake = FakeCluster()
    run_fault(k8s_runtime(fake), name, tmp_path)
    for command in K8S_EXPECTED[name]:
        assert fake.sent(*command), (command, fake.calls)
    assert ["kubectl", "apply", "-k", str(k8s_runtime(fake).overlay)] in fake.calls  # heal re-applies and waits
    assert fake.sent("rollout", "status", "statefulset/redis", "--timeout=60s")
    if name in IN_BAND:
        pod, command = IN_BAND[name]
        assert any(pod in call and command in " ".join(call) for call in fake.calls), fake.calls
    if name == "fill-redis":
        assert config_sets(fake.calls) == [("redis-0", str(USED_MEMORY // 2))] + [
            (f"redis-{i}", "256mb") for i in range(3)
        ]


@pytest.mark.parametrize(
    ("name", "reason"),
    [(name, "NETWORK=netns") for name in sorted(NETWORK_FAULTS)]
    + [(name, "run on the local runtime") for name in sorted(DISK_FAULTS)],
)
def test_network_and_disk_faults_are_refused_on_k8s_before_anything_is_done(name, reason, tmp_path):
    fake = FakeCluster()
    log = EventLog(tmp_path / "events.jsonl")
    with pytest.raises(RuntimeError, match=reason):
        inject(FAULTS[name], k8s_runtime(fake), log)
    assert not fake.calls, fake.calls
    assert not log.path.exists()  # no fault_start for a fault that never began


def test_the_master_is_the_node_sentinel_names():
    assert k8s_runtime(FakeCluster()).master_node().name == "redis-0"
    assert k8s_runtime(FakeCluster()).redis_roles() == {"redis-0": "master", "redis-1": "replica", "redis-2": "replica"}


def test_a_deployment_pod_restart_waits_for_a_ready_replacement():
    fake = FakeCluster()
    runtime = k8s_runtime(fake)
    runtime.restart("app-7d9f-bbbbb")
    assert "app-7d9f-bbbbb" not in fake.pods and any("new" in name for name in fake.pods)


def test_stack_selects_the_runtime_and_refuses_an_unknown_one():
    assert get_runtime({"STACK": "compose"}).name == "compose"
    assert get_runtime({"STACK": "k8s"}).name == "k8s"
    with pytest.raises(ValueError, match="STACK='swarm' is not one of: local, compose, k8s"):
        get_runtime({"STACK": "swarm"})


def test_a_missing_tool_is_named_with_what_needs_it(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda _name: None)
    with pytest.raises(ContainerError, match="kubectl is not installed; STACK=k8s needs it"):
        run_command(["kubectl", "version"])


def test_a_statefulset_pod_restart_waits_for_the_pod_under_its_own_name():
    fake = FakeCluster()
    k8s_runtime(fake).restart("redis-1")
    assert fake.sent("delete", "pod", "redis-1", "--wait=true") and "redis-1" in fake.pods


def test_a_pod_that_is_never_ready_times_out_like_on_every_runtime():
    with pytest.raises(DeadlineExceeded, match="timed out after 0s waiting for redis-9 to be Ready"):
        k8s_runtime(FakeCluster()).wait_node_ready("redis-9", timeout_s=0)
