"""The k8s runtime: the stack as pods of a kustomize overlay, through kubectl (commands.py runs it).

Every fault of the chaos module acts through these, by the same name on every
runtime (see the table in docs/runtimes.md):

| operation | k8s                                                                                   |
|-----------|---------------------------------------------------------------------------------------|
| kill      | kubectl delete pod POD --grace-period=0 --force                                       |
| pause     | kubectl exec POD -- kill -STOP -1 (every process of the container's user)             |
| resume    | kubectl exec POD -- kill -CONT -1                                                     |
| start     | (the controller recreates the pod) wait until Ready                                   |
| stop      | kubectl delete pod POD (graceful)                                                     |
| restart   | kubectl delete pod POD, wait for a Ready replacement                                  |

No cluster runs on the machines this project is built on, so the k8s runtime is
unit-tested against a recorded command runner, not live (see docs/runtimes.md).
"""

from __future__ import annotations

import json
from pathlib import Path

from sessionproof import REPO_ROOT, settings
from sessionproof.configs import templates as configs
from sessionproof.runtimes.commands import ContainerError, Runner, run_command
from sessionproof.runtimes.interface import DISK_FAULTS_NEED_LOCAL
from sessionproof.topology import CONTAINER_PORTS, REDIS_PORT, SENTINEL_PORT, Node, StackConfig
from sessionproof.waiting import wait_until

_REDIS_CLI = 'redis-cli -p {port} -a "$(cat /run/secrets/redis_password)" --no-auth-warning {command}'


class K8sRuntime:
    name = "k8s"

    def __init__(self, config: StackConfig, runner: Runner = run_command):
        self.config = config
        self.run = runner
        self.master_name = settings.get_str("REDIS_MASTER_NAME", config.env)
        self.namespace = settings.get_str("K8S_NAMESPACE", config.env)
        self.overlay = REPO_ROOT / "k8s" / "overlays" / settings.get_str("K8S_OVERLAY", config.env)

    def kubectl(self, *args: str) -> str:
        return self.run(["kubectl", "--namespace", self.namespace, *args])

    # ------------------------------------------------------------- topology
    def _pods(self) -> dict[str, dict]:
        pods = json.loads(self.kubectl("get", "pods", "-l", "app.kubernetes.io/name=sessionproof", "-o", "json"))
        return {p["metadata"]["name"]: p for p in pods["items"]}

    def nodes(self, kind: str | None = None) -> list[Node]:
        nodes = []
        for name, pod in sorted(self._pods().items()):
            component = pod["metadata"]["labels"].get("app.kubernetes.io/component")
            if component in CONTAINER_PORTS and pod["metadata"].get("deletionTimestamp") is None:
                nodes.append(Node(name, component, CONTAINER_PORTS[component]))
        return [n for n in nodes if kind is None or n.kind == kind]

    def _shell(self, node_name: str, command: str) -> str:
        return self.kubectl("exec", node_name, "--", "sh", "-c", command)

    @staticmethod
    def _ready(pod: dict) -> bool:
        conditions = pod.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def is_running(self, node_name: str) -> bool:
        pod = self._pods().get(node_name)
        return pod is not None and pod.get("status", {}).get("phase") == "Running"

    def healthy(self) -> bool:
        pods = self._pods()
        return bool(pods) and all(self._ready(p) for p in pods.values() if "locust" not in p["metadata"]["name"])

    # ------------------------------------------------- asking Sentinel and Redis
    def _redis_cli(self, node_name: str, port: int, command: str) -> str:
        return self._shell(node_name, _REDIS_CLI.format(port=port, command=command))

    def master_node(self) -> Node | None:
        """The Redis node the first answering Sentinel names (its hostname's first label is the node)."""
        for sentinel in self.nodes("sentinel"):
            try:
                out = self._redis_cli(
                    sentinel.name, SENTINEL_PORT, f"SENTINEL get-master-addr-by-name {self.master_name}"
                )
            except ContainerError:
                continue
            host = out.split()[0].split(".")[0] if out.split() else ""
            return next((n for n in self.nodes("redis") if n.name == host), None)
        return None

    # Network faults cut links between nodes with their own addresses: the local runtime's NETWORK=netns.
    def network_refusal(self) -> str | None:
        return (
            f"network faults run on the local runtime with NETWORK=netns or on STACK=compose, not on STACK={self.name}: "
            "`make down && STACK=local NETWORK=netns make up` (as root)"
        )

    def cut_links(self, pairs: list[tuple[str, str]]) -> None:
        raise ContainerError(self.network_refusal())

    def congest(self, node_name: str, rate_kbit: int, burst_kbit: int, latency_ms: int) -> None:
        raise ContainerError(self.network_refusal())

    def heal_network(self) -> None:
        return None  # nothing was cut

    def aof_dir(self, node_name: str) -> Path:
        raise ContainerError(f"{node_name}'s AOF is in a pod's volume; {DISK_FAULTS_NEED_LOCAL}")

    def redis_info(self, node_name: str, section: str) -> dict[str, str]:
        out = self._redis_cli(node_name, REDIS_PORT, f"INFO {section}")
        return dict(line.split(":", 1) for line in out.splitlines() if ":" in line and not line.startswith("#"))

    def redis_command(self, node_name: str, *args: str, timeout_s: float | None = None) -> str:
        """Through redis-cli in the pod: arguments are single-quoted for its shell."""
        quoted = " ".join("'" + arg.replace("'", "'\\''") + "'" for arg in args)
        return self._redis_cli(node_name, REDIS_PORT, quoted)

    def redis_config_set(self, node_name: str, parameter: str, value: str) -> None:
        self._redis_cli(node_name, REDIS_PORT, f"CONFIG SET {parameter} {value}")

    def redis_roles(self) -> dict[str, str]:
        roles = {}
        for node in self.nodes("redis"):
            try:
                role = self._redis_cli(node.name, REDIS_PORT, "ROLE").split()[0]
                roles[node.name] = {"slave": "replica"}.get(role, role)
            except (ContainerError, IndexError):
                roles[node.name] = "down"
        return roles

    # ------------------------------------------------------------ lifecycle
    def up(self, timeout_s: float | None = None, progress=print) -> None:
        configs.check_timeouts(self.config.env)
        timeout_s = timeout_s or settings.get_int("STACK_UP_TIMEOUT_S", self.config.env, minimum=1)
        progress(f"kubectl apply -k {self.overlay.relative_to(REPO_ROOT)}")
        self.run(["kubectl", "apply", "-k", str(self.overlay)])
        for workload in ("statefulset/redis", "statefulset/sentinel", "deployment/app", "deployment/nginx"):
            self.kubectl("rollout", "status", workload, f"--timeout={int(timeout_s)}s")
        for node in self.nodes():
            self.resume(node.name)  # harmless on a running pod; a paused one would never answer

    def down(self, progress=print) -> None:
        progress(f"kubectl delete -k {self.overlay.relative_to(REPO_ROOT)} (PersistentVolumeClaims are kept)")
        self.run(["kubectl", "delete", "-k", str(self.overlay), "--ignore-not-found"])

    # --------------------------------------------------------------- faults
    def kill(self, node_name: str) -> int:
        self.kubectl("delete", "pod", node_name, "--grace-period=0", "--force", "--wait=false")
        return 0

    def pause(self, node_name: str) -> None:
        self._shell(node_name, "kill -STOP -1")

    def resume(self, node_name: str) -> None:
        self._shell(node_name, "kill -CONT -1")

    def start(self, node_name: str) -> None:
        # Controllers recreate killed pods (StatefulSet pods under the same name); a paused one is resumed.
        pods = self._pods()
        if node_name in pods and pods[node_name].get("status", {}).get("phase") == "Running":
            self.resume(node_name)

    def stop(self, node_name: str) -> None:
        self.kubectl("delete", "pod", node_name, "--wait=true")

    def restart(self, node_name: str, timeout_s: float = 30) -> None:
        kind = next((n.kind for n in self.nodes() if n.name == node_name), None)
        before = {n.name for n in self.nodes(kind)}
        self.stop(node_name)
        if kind in ("redis", "sentinel"):  # a StatefulSet pod comes back under its own name
            self.wait_node_ready(node_name, timeout_s)
            return

        def replaced() -> bool:
            pods = self._pods()
            new = [n for n in self.nodes(kind) if n.name not in before]
            return any(self._ready(pods[n.name]) for n in new)

        wait_until(replaced, timeout_s, f"a Ready replacement for {node_name}", interval_s=1.0)

    def wait_node_ready(self, node_name: str, timeout_s: float = 30) -> None:
        wait_until(
            lambda: (pod := self._pods().get(node_name)) is not None and self._ready(pod),
            timeout_s,
            f"{node_name} to be Ready",
            interval_s=1.0,
        )
