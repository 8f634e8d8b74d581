"""What the local stack's nodes say about themselves: readiness, the topology Sentinel sees, and `make status` rows.

Every answer comes from asking the node (Redis INFO, Sentinel, /readyz, nginx /ping),
never from the process table alone: a running process is not a serving one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sessionproof.runtimes import probes
from sessionproof.runtimes.supervisor import UP_STATES, is_stopped
from sessionproof.topology import Node, StackConfig

_ROLES = {"master": "master", "slave": "replica"}


@dataclass(frozen=True)
class NodeStatus:
    node: Node
    state: str  # RUNNING, STOPPED, EXITED, FATAL, ... as supervisor says; or "PAUSED"
    pid: int | None
    role: str  # master / replica / sentinel / app / entry, "?" when unknown
    detail: str


class StackProbe:
    def __init__(self, config: StackConfig):
        self.config = config
        self.password = config.get("REDIS_PASSWORD")
        self.master_name = config.get("REDIS_MASTER_NAME")

    # -------------------------------------------------------------- topology
    def sentinel_view(self) -> probes.SentinelView | None:
        for node in self.config.sentinel_nodes:
            view = probes.sentinel_view(node.host, node.port, self.password, self.master_name)
            if view is not None:
                return view
        return None

    def master_node(self) -> Node | None:
        """The Redis node Sentinel names master, or None if no Sentinel answers."""
        view = self.sentinel_view()
        if view is None or view.master is None:
            return None
        return next((n for n in self.config.redis_nodes if (n.host, n.port) == view.master), None)

    def redis_roles(self) -> dict[str, str]:
        """Each Redis node's own view of its role: master, replica or down."""
        roles = {}
        for node in self.config.redis_nodes:
            info = probes.redis_replication(node.host, node.port, self.password)
            roles[node.name] = _ROLES.get((info or {}).get("role"), "down")
        return roles

    # ------------------------------------------------------------- readiness
    def redis_answering(self) -> bool:
        return all(probes.redis_replication(n.host, n.port, self.password) is not None for n in self.config.redis_nodes)

    def redis_ready(self) -> bool:
        infos = [probes.redis_replication(n.host, n.port, self.password) for n in self.config.redis_nodes]
        if any(i is None for i in infos):
            return False
        masters = [i for i in infos if i["role"] == "master"]
        replicas = [i for i in infos if i["role"] == "slave"]
        return (
            len(masters) == 1
            and len(replicas) == len(infos) - 1
            and all(r.get("master_link_status") == "up" for r in replicas)
        )

    def sentinels_ready(self) -> bool:
        expected_peers = len(self.config.sentinel_nodes) - 1
        expected_replicas = len(self.config.redis_nodes) - 1
        masters = set()
        for node in self.config.sentinel_nodes:
            view = probes.sentinel_view(node.host, node.port, self.password, self.master_name)
            # Flags other than plain "master" (s_down, o_down, failover_in_progress, ...) mean not settled.
            if view is None or view.master_flags != "master" or view.other_sentinels < expected_peers:
                return False
            healthy = [r for r in view.replicas if "down" not in r[2] and "disconnected" not in r[2]]
            if len(healthy) < expected_replicas:
                return False
            masters.add(view.master)
        return len(masters) == 1

    def apps_ready(self) -> bool:
        return all(probes.http_ok(f"http://{n.address}/readyz") for n in self.config.app_nodes)

    def nginx_ready(self) -> bool:
        return probes.http_ok(f"{self.config.entry_url}/ping")

    def topology_settled(self) -> bool:
        """One Redis master, the one every Sentinel names, with its replicas in sync."""
        if not (self.redis_ready() and self.sentinels_ready()):
            return False
        master = self.master_node()
        return master is not None and self.redis_roles().get(master.name) == "master"

    def observability_ready(self) -> bool:
        """Both exporters answer, and Prometheus has scraped every target with success."""
        for node in self.config.observability_nodes:
            path = "/-/ready" if node.kind == "prometheus" else "/metrics"
            if probes.http_status(f"http://{node.address}{path}") != 200:
                return False
        targets = probes.prometheus_targets(self.config.prometheus_url)
        return bool(targets) and all(t["health"] == "up" for t in targets)

    def healthy(self) -> bool:
        return all(check() for check in (self.topology_settled, self.apps_ready, self.nginx_ready))

    def node_ready(self, node: Node) -> Callable[[], bool]:
        """The check that says this one node serves again."""
        return {
            "app": lambda: probes.http_ok(f"http://{node.address}/readyz"),
            "nginx": self.nginx_ready,
            "redis": lambda: probes.redis_replication(node.host, node.port, self.password) is not None,
            "sentinel": lambda: probes.sentinel_view(node.host, node.port, self.password, self.master_name) is not None,
            "prometheus": lambda: probes.http_status(f"http://{node.address}/-/ready") == 200,
            "redis-exporter": lambda: probes.http_status(f"http://{node.address}/metrics") == 200,
            "nginx-exporter": lambda: probes.http_status(f"http://{node.address}/metrics") == 200,
        }[node.kind]

    # ---------------------------------------------------------------- status
    def status(self, process_info: dict[str, dict]) -> list[NodeStatus]:
        """One row per node, from supervisor's process info ({} when it is not running) and each node's answer."""
        view = self.sentinel_view() if process_info else None
        rows = []
        for node in self.config.all_nodes:
            proc = process_info.get(node.name, {})
            state = proc.get("statename", "DOWN")
            pid = proc.get("pid") or None
            if pid and is_stopped(pid):
                state = "PAUSED"
            role, detail = self._role(node, view, up=state in UP_STATES)
            rows.append(NodeStatus(node, state, pid, role, detail))
        return rows

    def _role(self, node: Node, view: probes.SentinelView | None, up: bool) -> tuple[str, str]:
        host = node.host
        if node.kind == "redis":
            own = probes.redis_replication(host, node.port, self.password) if up else None
            own_role = _ROLES.get((own or {}).get("role"), "down")
            if view is None:
                return "?", f"self: {own_role} (no Sentinel answers)"
            if view.master == (host, node.port):
                return "master", f"self: {own_role}"
            flags = next((f for h, p, f in view.replicas if (h, p) == (host, node.port)), None)
            if flags is None:
                return "?", f"self: {own_role}; unknown to Sentinel"
            return "replica", f"self: {own_role}; sentinel flags: {flags}"
        if node.kind == "sentinel":
            mine = probes.sentinel_view(host, node.port, self.password, self.master_name) if up else None
            if mine is None:
                return "sentinel", "not answering"
            master = f"{mine.master[0]}:{mine.master[1]}" if self.config.netns else str(mine.master[1])
            return "sentinel", f"master {master}, {mine.other_sentinels} peers, {len(mine.replicas)} replicas"
        if node.kind == "app":
            code, _ = probes.http_get_json(f"http://{host}:{node.port}/readyz") if up else (0, None)
            return "app", {200: "ready", 503: "store unreachable", 0: "not answering"}.get(code, f"HTTP {code}")
        if node.kind == "prometheus":
            targets = probes.prometheus_targets(self.config.prometheus_url) if up else None
            if targets is None:
                return "metrics", "not answering"
            down = [f"{t['node']} ({t['last_error'] or 'down'})" for t in targets if t["health"] != "up"]
            detail = f"{len(targets) - len(down)}/{len(targets)} targets up, scraped at {self.config.prometheus_url}"
            return "metrics", detail + (f"; down: {', '.join(down)}" if down else "")
        if node.kind in ("redis-exporter", "nginx-exporter"):
            code = probes.http_status(f"http://{node.address}/metrics") if up else 0
            return "metrics", "serving /metrics" if code == 200 else f"HTTP {code or 'none'}"
        code, _ = probes.http_get_json(f"{self.config.entry_url}/ping") if up else (0, None)
        return "entry", f"{self.config.entry_url} " + ("serving" if code == 200 else f"HTTP {code or 'none'}")
