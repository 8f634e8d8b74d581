"""Network faults on the compose runtime, inside each container's own network namespace.

The same faults as the local runtime's NETWORK=netns (netns.py), on the namespaces the engine made:
- a cut link is a pair of DROP rules (INPUT from the peer's address, OUTPUT to it) in a chain of our
  own (SP-FAULTS) inside each end's namespace, entered with `nsenter --target PID --net`; the host
  keeps reaching every container (its address on the bridge is no peer), so the harness sees both
  sides of a partition;
- congestion is a `tbf` qdisc on both ends of the container's veth: its own interface (what it sends)
  and the host end on the bridge (what it receives). This kernel has no `netem`.
Healing flushes the chains and deletes the qdiscs: idempotent. A container that is recreated or
restarted gets a new namespace, without the rules.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Protocol

from sessionproof.runtimes.netns import FAULT_CHAIN, run
from sessionproof.topology import which_tool

_PEER_LINK = re.compile(r"^\d+:\s+(?P<name>[^:@\s]+)@if(?P<peer>\d+):")


class _Container(Protocol):
    name: str
    status: str
    pid: int
    ip: str


def _inside(container: _Container) -> list[str]:
    return ["nsenter", "--target", str(container.pid), "--net"]


def refusal() -> str | None:
    if os.geteuid() != 0:
        return "network faults on STACK=compose enter the containers' network namespaces (nsenter): run as root"
    missing = [tool for tool in ("nsenter", "iptables", "tc", "ip") if which_tool(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed: `make deps`"
    return None


def _require() -> None:
    reason = refusal()
    if reason:
        raise RuntimeError(reason)


def _interface(container: _Container) -> tuple[str, int]:
    """The container's veth end (its name inside) and the ifindex of its peer, the host end."""
    for line in run([*_inside(container), "ip", "-o", "link", "show"]).stdout.splitlines():
        match = _PEER_LINK.match(line)
        if match:
            return match["name"], int(match["peer"])
    raise RuntimeError(f"{container.name} has no veth interface (is it on the compose network?)")


def _host_end(ifindex: int) -> str:
    for line in run(["ip", "-o", "link", "show"]).stdout.splitlines():
        if line.startswith(f"{ifindex}:"):
            return line.split(":")[1].strip().split("@")[0]
    raise RuntimeError(f"no host interface with index {ifindex}")


def _chain(container: _Container) -> list[str]:
    inside = [*_inside(container), "iptables"]
    if run([*inside, "-n", "-L", FAULT_CHAIN], check=False).returncode != 0:
        run([*inside, "-N", FAULT_CHAIN])
        run([*inside, "-I", "INPUT", "-j", FAULT_CHAIN])
        run([*inside, "-I", "OUTPUT", "-j", FAULT_CHAIN])
    return inside


def cut(pairs: Iterable[tuple[_Container, _Container]]) -> None:
    """Drop every packet between each pair's containers, both ways, in each end's namespace."""
    _require()
    for a, b in pairs:
        for here, peer in ((a, b), (b, a)):
            if not here.pid or not peer.ip:
                continue  # not running: nothing to cut
            inside = _chain(here)
            run([*inside, "-A", FAULT_CHAIN, "-s", peer.ip, "-j", "DROP"])
            run([*inside, "-A", FAULT_CHAIN, "-d", peer.ip, "-j", "DROP"])


def congest(container: _Container, rate_kbit: int, burst_kbit: int, latency_ms: int) -> None:
    """A token bucket on both ends of the container's veth: what exceeds the rate waits (up to latency_ms), then drops."""
    _require()
    shape = ["root", "tbf", "rate", f"{rate_kbit}kbit", "burst", f"{burst_kbit}kbit", "latency", f"{latency_ms}ms"]
    device, peer = _interface(container)
    run([*_inside(container), "tc", "qdisc", "replace", "dev", device, *shape])
    run(["tc", "qdisc", "replace", "dev", _host_end(peer), *shape])


def heal(containers: Iterable[_Container]) -> None:
    """Flush every cut and remove every rate limit of these containers; a no-op on a healthy network."""
    if refusal():
        return  # nothing could have been cut
    for container in containers:
        if not container.pid:
            continue
        inside = _inside(container)
        run([*inside, "iptables", "-F", FAULT_CHAIN], check=False)
        try:
            device, peer = _interface(container)
            host_end = _host_end(peer)
        except RuntimeError:
            continue
        run([*inside, "tc", "qdisc", "del", "dev", device, "root"], check=False)
        run(["tc", "qdisc", "del", "dev", host_end, "root"], check=False)


def rules(containers: Iterable[_Container]) -> dict[str, list[str]]:
    """Each container's fault rules (`iptables -S` lines) and tbf qdiscs on either end of its veth."""
    found: dict[str, list[str]] = {}
    for container in containers:
        if not container.pid:
            continue
        inside = _inside(container)
        lines = [
            r
            for r in run([*inside, "iptables", "-S", FAULT_CHAIN], check=False).stdout.splitlines()
            if r.startswith("-A")
        ]
        device, peer = _interface(container)
        for argv, dev in ((inside, device), ([], _host_end(peer))):
            lines += [q for q in run([*argv, "tc", "qdisc", "show", "dev", dev]).stdout.splitlines() if " tbf " in q]
        if lines:
            found[container.name] = lines
    return found
