"""CPU time per request, per part of the stack, over one load run: where a saturated request's cost goes.

Each node's process tree (gunicorn's workers, nginx's workers included) is read with psutil
before and after the run; the load generator's own CPU is that of this process's finished
children (wrk). Needs process ids, so only runtimes whose `status()` names them (local);
elsewhere `CpuMeter.available` is False and the split is left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

from sessionproof.runtimes.supervisor import process_tree

# The parts, in the order the report shows them; redis is split by role at the time of the run, and the
# observability nodes (Prometheus and its exporters, OBSERVABILITY=on) are one part.
PARTS = ("app", "nginx", "redis master", "redis replicas", "sentinel", "observability", "generator", "machine")
STACK_KINDS = ("app", "nginx", "sentinel")


def _part(kind: str, role: str) -> str:
    if kind == "redis":
        return "redis master" if role == "master" else "redis replicas"
    return kind if kind in STACK_KINDS else "observability"


@dataclass(frozen=True)
class CpuSnapshot:
    processes: dict[int, tuple[str, float]]  # pid: (part, user+system CPU s)
    generator_s: float
    machine_busy_s: float


class CpuMeter:
    def __init__(self, runtime):
        status = getattr(runtime, "status", None)
        rows = status() if callable(status) else []
        self.roots = [(row.pid, _part(row.node.kind, row.role)) for row in rows if row.pid]
        self.available = bool(self.roots)

    def snapshot(self) -> CpuSnapshot:
        processes: dict[int, tuple[str, float]] = {}
        for root, part in self.roots:
            for process in process_tree(root):
                try:
                    times = process.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                processes[process.pid] = (part, times.user + times.system)
        own = os.times()
        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return CpuSnapshot(processes, own.children_user + own.children_system, busy)


def per_request_us(before: CpuSnapshot, after: CpuSnapshot, requests: int) -> dict[str, float]:
    """µs of CPU per request for each part (a process new since `before` counts from zero), and the machine's."""
    if requests <= 0:
        return {}
    spent = dict.fromkeys(PARTS, 0.0)
    for pid, (part, cpu_s) in after.processes.items():
        earlier = before.processes.get(pid)
        spent[part] += cpu_s - (earlier[1] if earlier else 0.0)
    spent["generator"] = after.generator_s - before.generator_s
    spent["machine"] = after.machine_busy_s - before.machine_busy_s
    return {part: round(seconds / requests * 1e6, 1) for part, seconds in spent.items()}
