"""Waiting on conditions with deadlines, instead of bare sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    pass


def wait_until(
    condition: Callable[[], T],
    timeout_s: float,
    what: str,
    interval_s: float = 0.1,
    hint: str = "",
) -> T:
    """Return the first truthy value of `condition()`; raise DeadlineExceeded after `timeout_s`.

    Exceptions raised by `condition` count as "not yet" until the deadline, and
    the last one is named in the error.
    """
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:
            last_error = error
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            suffix = f"; {hint}" if hint else ""
            raise DeadlineExceeded(f"timed out after {timeout_s:g}s waiting for {what}{detail}{suffix}")
        time.sleep(interval_s)
