"""Intended-start schedules: the cure for coordinated omission.

A closed-loop generator that waits for each response before sending the next
request hides a stall: the requests that *would* have been sent during the
stall are never sent, so the stall shows up as one slow sample. A Pacer gives
each request a slot on a fixed schedule (next = previous + 1/rate) that is
never reset after a stall; latency measured from the slot counts the stall in
full for every request that should have gone out during it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


def check_catch_up_factor(catch_up_factor: float | None) -> None:
    if catch_up_factor is not None and catch_up_factor <= 1:
        raise ValueError("catch_up_factor must be over 1 (at 1 a backlog never drains), or left out")


class Pacer:
    """A user's intended-start schedule. After a stall the missed slots still go out, each timed from its own
    slot; `catch_up_factor` (a scenario's, default unbounded) caps how fast: a backlog is sent at most at
    that many times the rate. Unbounded, a minute's stall came back as a burst at the stack's full speed
    (2 to 156 requests/s in the 2-hour campaign), which took the generator's CPU past its validity bound.
    Bounded, the backlog drains over a while, and each late request's wait for its turn is in its latency."""

    def __init__(
        self,
        rate_per_s: float,
        clock: Callable[[], float] = time.perf_counter,
        jitter: bool = True,
        catch_up_factor: float | None = None,
    ):
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        check_catch_up_factor(catch_up_factor)
        self.interval_s = 1.0 / rate_per_s
        self.clock = clock
        # Spread users over one interval so they do not fire in lockstep.
        self.next_slot_s = clock() + (random.uniform(0, self.interval_s) if jitter else 0.0)
        self.catch_up_interval_s = self.interval_s / catch_up_factor if catch_up_factor else 0.0
        self.released_s = -math.inf  # when the last request went out (or is due to)

    def take_slot(self) -> float:
        """The intended start of the next request; the schedule advances regardless of lateness."""
        slot = self.next_slot_s
        self.next_slot_s += self.interval_s
        return slot

    def delay_until(self, slot_s: float) -> float:
        """Seconds to wait before the request of `slot_s` goes out: until its slot, and, when late, at least
        catch_up_interval_s after the previous one (0: at once)."""
        now = self.clock()
        release_s = max(slot_s, self.released_s + self.catch_up_interval_s)
        self.released_s = max(now, release_s)
        return max(0.0, release_s - now)


@dataclass(frozen=True)
class Timing:
    service_us: int  # from the actual send to the end of the response
    intended_us: int  # from the intended start (slot) to the end of the response


def timing_of(slot_s: float, sent_s: float, done_s: float) -> Timing:
    return Timing(
        service_us=max(1, round((done_s - sent_s) * 1e6)),
        intended_us=max(1, round((done_s - min(slot_s, sent_s)) * 1e6)),
    )


def paced(
    pacer: Pacer,
    send: Callable[[], T],
    sleep: Callable[[float], object] = time.sleep,
    slot_s: float | None = None,
) -> tuple[T, Timing]:
    """Wait for the request's slot (taking the next one unless given), send, and time it both ways. A given slot
    is shared by a burst whose caller waited for it (delay_until) once: each request goes out at once."""
    if slot_s is None:
        slot_s = pacer.take_slot()
        sleep(pacer.delay_until(slot_s))
    else:
        sleep(max(0.0, slot_s - pacer.clock()))
    sent_s = pacer.clock()
    result = send()
    done_s = pacer.clock()
    return result, timing_of(slot_s, sent_s, done_s)


def exchange_only(timing: Timing, exchange_ms: float | None) -> Timing:
    """The request's times without the generator's own work around it: Locust times the HTTP exchange alone
    (from the send to the last byte of the body), before its event handlers, our JSON parsing and recording.
    The intended time loses the same amount: the response was in hand that much earlier."""
    if exchange_ms is None:
        return timing
    exchange_us = max(1, round(exchange_ms * 1000))
    overhead_us = timing.service_us - exchange_us
    if overhead_us <= 0:
        return timing
    return Timing(service_us=exchange_us, intended_us=max(exchange_us, timing.intended_us - overhead_us))


def server_timing_us(header: str | None) -> dict[str, int] | None:
    """{"app": µs, "store": µs} from the app's `Server-Timing: app;dur=1.234, store;dur=0.456` (ms); None if absent."""
    if not header:
        return None
    found = {}
    for metric in header.split(","):
        name, _, params = metric.strip().partition(";")
        if name in ("app", "store") and params.startswith("dur="):
            try:
                found[name] = round(float(params[4:].split(";")[0]) * 1000)
            except ValueError:
                continue
    return found or None
