"""The load generator's scheduling priority (LOADGEN_NICE), taken when a Locust process starts."""

from __future__ import annotations

import os


def take_priority(nice: int) -> dict:
    """Give this process the scheduling priority NICE (LOADGEN_NICE): on 2 cores shared with the stack, a
    generator at the stack's priority waits in the run queue when it should wake, and that wait is in every
    latency it measures. What it got (and why not, without root) goes to meta.json."""
    wanted = max(-20, min(19, nice))
    try:
        os.setpriority(os.PRIO_PROCESS, 0, wanted)
    except PermissionError:
        return {
            "wanted": wanted,
            "got": os.getpriority(os.PRIO_PROCESS, 0),
            "note": "a priority below 0 needs root or CAP_SYS_NICE",
        }
    return {"wanted": wanted, "got": os.getpriority(os.PRIO_PROCESS, 0)}
