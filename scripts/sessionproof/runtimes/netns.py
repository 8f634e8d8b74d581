"""The local runtime's node network (NETWORK=netns): one network namespace per node, links that can be cut.

    host namespace:  nginx (BIND_HOST:NGINX_PORT, the entry point), the harness, bridge <prefix>br (.1)
                         | veth pairs, one per node
    namespaces:      <prefix>-redis-1 (.11) ... <prefix>-sentinel-1 (.21) ... <prefix>-app-1 (.101) ...

Every name starts with a prefix made from the state folder, so two stacks (a user's and the
tests') never touch each other's namespaces, and `make down` finds everything it made, also
after a crash, by that prefix alone.

Faults act inside the namespaces only:
- a cut link is a pair of DROP rules (INPUT from the peer, OUTPUT to the peer) in a chain of our
  own (SP-FAULTS) in each end's namespace; the host keeps reaching every node, so the harness
  (probes, watchers, nginx) sees both sides of a partition;
- congestion is a `tbf` qdisc on both ends of a node's veth (this kernel has no `netem`).
Healing flushes the chains and deletes the qdiscs: idempotent.
"""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess
from dataclasses import dataclass

import psutil

from sessionproof.topology import Node, StackConfig, which_tool

FAULT_CHAIN = "SP-FAULTS"
COMMAND_TIMEOUT_S = 10.0
_SHORT_KIND = {"redis": "r", "sentinel": "s", "app": "a"}


class NetworkError(RuntimeError):
    """A namespace, link or rule could not be made or removed; the message has the command and its error."""


@dataclass(frozen=True)
class Link:
    """One node's veth pair: the host end on the bridge, the node end in its namespace."""

    namespace: str
    host_end: str
    node_end: str


def stack_prefix(config: StackConfig) -> str:
    return "sp" + hashlib.sha1(str(config.state_dir).encode()).hexdigest()[:4]


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    argv = [which_tool(argv[0]) or argv[0], *argv[1:]]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    if check and done.returncode != 0:
        raise NetworkError(f"`{' '.join(argv)}` failed: {(done.stderr or done.stdout).strip()}")
    return done


class NodeNetwork:
    """The namespaces, veths, bridge and fault rules of one stack."""

    def __init__(self, config: StackConfig):
        self.config = config
        self.prefix = stack_prefix(config)
        self.bridge = f"{self.prefix}br"

    # ----------------------------------------------------------------- names
    def namespaced_nodes(self) -> list[Node]:
        return [n for n in self.config.nodes if n.kind in _SHORT_KIND]

    def link(self, node: Node) -> Link:
        short = _SHORT_KIND[node.kind] + node.name.rsplit("-", 1)[1]
        return Link(f"{self.prefix}-{node.name}", f"{self.prefix}-{short}", f"{self.prefix}-{short}i")

    def namespace(self, node_name: str) -> str | None:
        node = self.config.node(node_name)
        return self.link(node).namespace if node.kind in _SHORT_KIND else None

    def exec_argv(self, node: Node, argv: list[str]) -> list[str]:
        """argv run inside node's namespace (unchanged for nginx, which lives in the host's)."""
        if node.kind not in _SHORT_KIND:
            return argv
        return [which_tool("ip") or "ip", "netns", "exec", self.link(node).namespace, *argv]

    # ------------------------------------------------------------- inventory
    def namespaces(self) -> list[str]:
        """Every namespace of this stack that exists, whatever APPS was when it was made."""
        listed = run(["ip", "netns", "list"]).stdout.splitlines()
        names = [line.split()[0] for line in listed if line.strip()]
        return sorted(n for n in names if n.startswith(self.prefix + "-"))

    def links(self) -> list[str]:
        listed = run(["ip", "-o", "link", "show"]).stdout.splitlines()
        names = [line.split(":", 2)[1].strip().split("@")[0] for line in listed if line.count(":") >= 2]
        return sorted(n for n in names if n.startswith(self.prefix))

    def leftovers(self) -> dict[str, list[str]]:
        return {"namespaces": self.namespaces(), "links": self.links()}

    # ---------------------------------------------------------------- create
    def create(self) -> None:
        """Bridge, one namespace and veth pair per node, the fault chain in each; leaves what exists alone."""
        self._check_subnet_free()
        existing_links = set(self.links())
        network = ipaddress.ip_network(self.config.subnet)
        if self.bridge not in existing_links:
            run(["ip", "link", "add", self.bridge, "type", "bridge"])
            run(["ip", "addr", "add", f"{self.config.gateway_host}/{network.prefixlen}", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        namespaces = set(self.namespaces())
        for node in self.namespaced_nodes():
            link = self.link(node)
            if link.namespace not in namespaces:
                run(["ip", "netns", "add", link.namespace])
            inside = ["ip", "netns", "exec", link.namespace]
            if link.host_end not in existing_links:
                run(["ip", "link", "add", link.host_end, "type", "veth", "peer", "name", link.node_end])
                run(["ip", "link", "set", link.node_end, "netns", link.namespace])
                run([*inside, "ip", "addr", "add", f"{node.host}/{network.prefixlen}", "dev", link.node_end])
            run(["ip", "link", "set", link.host_end, "master", self.bridge, "up"])
            run([*inside, "ip", "link", "set", link.node_end, "up"])
            run([*inside, "ip", "link", "set", "lo", "up"])
            if run([*inside, "iptables", "-n", "-L", FAULT_CHAIN], check=False).returncode != 0:
                run([*inside, "iptables", "-N", FAULT_CHAIN])
                run([*inside, "iptables", "-I", "INPUT", "-j", FAULT_CHAIN])
                run([*inside, "iptables", "-I", "OUTPUT", "-j", FAULT_CHAIN])

    def _check_subnet_free(self) -> None:
        network = ipaddress.ip_network(self.config.subnet)
        for line in run(["ip", "-o", "-4", "addr", "show"]).stdout.splitlines():
            fields = line.split()
            device, address = fields[1], ipaddress.ip_interface(fields[3])
            if device != self.bridge and address.network.overlaps(network):
                raise NetworkError(
                    f"NETNS_SUBNET={self.config.subnet} overlaps {address} on {device}; choose another "
                    "NETNS_SUBNET (each stack needs its own), or NETWORK=loopback"
                )

    # --------------------------------------------------------------- destroy
    def destroy(self, progress=print) -> None:
        """Remove every namespace and link with this stack's prefix; a process still inside is killed first."""
        for namespace in self.namespaces():
            pids = [int(p) for p in run(["ip", "netns", "pids", namespace], check=False).stdout.split()]
            procs = []
            for pid in pids:
                try:
                    procs.append(psutil.Process(pid))
                except psutil.NoSuchProcess:
                    continue
            for proc in procs:
                progress(f"killing pid {proc.pid} left in {namespace}")
                proc.kill()
            psutil.wait_procs(procs, timeout=5)
            run(["ip", "netns", "del", namespace])
        for name in self.links():  # the bridge, and any veth whose namespace went first
            run(["ip", "link", "del", name], check=False)
        left = self.leftovers()
        if left["namespaces"] or left["links"]:
            raise NetworkError(f"could not remove {left}; remove them with `ip netns del` / `ip link del`")

    # ---------------------------------------------------------------- faults
    def cut(self, a: Node, b: Node) -> None:
        """Drop every packet between a and b, both ways, in each end's namespace."""
        for here, peer in ((a, b), (b, a)):
            namespace = self.namespace(here.name)
            if namespace is None:
                continue
            inside = ["ip", "netns", "exec", namespace, "iptables"]
            run([*inside, "-A", FAULT_CHAIN, "-s", peer.host, "-j", "DROP"])
            run([*inside, "-A", FAULT_CHAIN, "-d", peer.host, "-j", "DROP"])

    def congest(self, node: Node, rate_kbit: int, burst_kbit: int, latency_ms: int) -> None:
        """A token bucket on both ends of node's veth: what exceeds the rate waits (up to latency_ms), then drops."""
        link = self.link(node)
        shape = ["root", "tbf", "rate", f"{rate_kbit}kbit", "burst", f"{burst_kbit}kbit", "latency", f"{latency_ms}ms"]
        run(["tc", "qdisc", "replace", "dev", link.host_end, *shape])
        run(["ip", "netns", "exec", link.namespace, "tc", "qdisc", "replace", "dev", link.node_end, *shape])

    def heal(self) -> None:
        """Flush every cut and remove every rate limit; a no-op on a healthy network."""
        for node in self.namespaced_nodes():
            link = self.link(node)
            inside = ["ip", "netns", "exec", link.namespace]
            run([*inside, "iptables", "-F", FAULT_CHAIN], check=False)
            run(["tc", "qdisc", "del", "dev", link.host_end, "root"], check=False)
            run([*inside, "tc", "qdisc", "del", "dev", link.node_end, "root"], check=False)

    def rules(self) -> dict[str, list[str]]:
        """Each namespace's fault rules (`iptables -S` lines) and qdiscs other than the defaults."""
        found: dict[str, list[str]] = {}
        for node in self.namespaced_nodes():
            link = self.link(node)
            inside = ["ip", "netns", "exec", link.namespace]
            rules = run([*inside, "iptables", "-S", FAULT_CHAIN], check=False).stdout.splitlines()
            lines = [r for r in rules if r.startswith("-A")]
            for dev, argv in ((link.host_end, []), (link.node_end, inside)):
                qdiscs = run([*argv, "tc", "qdisc", "show", "dev", dev], check=False).stdout.splitlines()
                lines += [q for q in qdiscs if " tbf " in q]
            if lines:
                found[node.name] = lines
        return found
