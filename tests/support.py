"""Helpers shared by the tests (imported as `support`; tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import os
import random
import socket

from sessionproof.waiting import wait_until

OBSERVATIONS: list[str] = []


def observe(line: str) -> None:
    """A figure a test measured; printed in the summary so CI logs show it."""
    OBSERVATIONS.append(line)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port_block(size: int, low: int = 20000, high: int = 32000) -> int:
    """First port of `size` consecutive free ports (ports below 32768 stay clear of ephemeral ones)."""
    rng = random.Random(os.getpid())
    for _ in range(200):
        base = rng.randrange(low, high - size)
        if all(port_is_free(p) for p in range(base, base + size)):
            return base
    raise RuntimeError("no block of free ports found")


def wait_for_new_master(stack, old_master, timeout_s: float = 30):
    """The Redis node Sentinel promotes in place of old_master (waits with a deadline)."""
    return wait_until(
        lambda: (m := stack.master_node()) is not None and m != old_master and m,
        timeout_s,
        f"Sentinel to promote a replica in place of {old_master.name}",
    )
