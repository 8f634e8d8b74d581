"""The final read: after the load, every session the history names is read back through nginx, and each
read goes into the same history (process `final-read`), where the one checker judges it like any other.

It reads the logged-out sessions too (each must read as gone: a resurrection otherwise). A read that
fails is tried again until FINAL_READ_TIMEOUT_S has passed for that session or FINAL_READ_BUDGET_S for
all; every attempt is in the history, and a session never read is left to the checker's unread tally.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path

import requests

from sessionproof import settings
from sessionproof.history import FINAL_READ_PROCESS
from sessionproof.history.checker import final_read_sessions
from sessionproof.history.files import append_history, history_path, operation, read_history
from sessionproof.load.runinfo import REPORT_LATER_ENV
from sessionproof.waiting import DeadlineExceeded, wait_until

FINAL_READ_TIMEOUT_S = 30.0  # per session: a store just healed may need a failover first
FINAL_READ_BUDGET_S = 300.0  # for the whole read: a store that stays down must not hold the run for hours
RETRY_INTERVAL_S = 0.5
KIND = "final"


def read_back(
    run_dir: Path,
    base_url: str,
    cookie_name: str,
    run_start_s: float,
    progress: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, int]:
    """Read back every session of RUN_DIR's history and append the reads to it; {sessions, read, unread}."""
    path = history_path(run_dir)
    sessions = final_read_sessions(read_history(path))
    origin_us = int(run_start_s * 1_000_000)
    budget_end = clock() + FINAL_READ_BUDGET_S
    with requests.Session() as http:
        # Keep no cookie an answer sets (stock Flask-Session refreshes it on every read): each read must carry
        # only the session it reads, or it reads the one an earlier answer left in the jar.
        http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        ops: list[dict] = []
        read = 0
        for number, sid in enumerate(sessions, 1):
            timeout_s = max(0.0, min(FINAL_READ_TIMEOUT_S, budget_end - clock()))
            # A session never read: every attempt is in the history, and the checker counts its writes as unread.
            with contextlib.suppress(DeadlineExceeded):
                read += wait_until(
                    lambda sid=sid: _read_once(http, base_url, cookie_name, sid, origin_us, ops),
                    timeout_s, f"a final read of session {sid[:8]}…", interval_s=RETRY_INTERVAL_S,
                )  # fmt: skip
            if number % 500 == 0:
                progress(f"final read: {number} of {len(sessions)} sessions")
    append_history(path, ops)
    return {"sessions": len(sessions), "read": read, "unread": len(sessions) - read}


def after_load(run_dir: Path, host: str | None, run_start_s: float, say: Callable[[str], None]) -> None:
    """The final read at the end of a load run (loadrun), unless an experiment does it itself after its heal."""
    if os.environ.get(REPORT_LATER_ENV) or not host:
        return
    say("sessionproof: final read: every session in the history, read back into it")
    result = read_back(
        run_dir, host.rstrip("/"), settings.get_str("SESSION_COOKIE_NAME"), run_start_s,
        progress=lambda line: say(f"sessionproof: {line}"),
    )  # fmt: skip
    if result["unread"]:
        say(f"sessionproof: {result['unread']} of {result['sessions']} sessions could not be read back")


def _read_once(http: requests.Session, base_url: str, cookie_name: str, sid: str, origin_us: int, ops: list) -> bool:
    def now_us() -> int:
        return time.time_ns() // 1000 - origin_us

    ops.append(operation("invoke", "read", FINAL_READ_PROCESS, KIND, now_us(), session=sid))
    try:
        response = http.get(f"{base_url}/cart", headers={"Cookie": f"{cookie_name}={sid}"}, timeout=5)
        body = response.json() if response.status_code == 200 else None
        error = str(response.status_code)
    except (requests.RequestException, ValueError) as failure:
        body, error = None, "timeout" if "timed out" in str(failure).lower() else "connection"
    if isinstance(body, dict) and "cart" in body:
        ops.append(
            operation("ok", "read", FINAL_READ_PROCESS, KIND, now_us(), session=sid, user=body.get("user"),
                      cart=body.get("cart", []))
        )  # fmt: skip
        return True
    type_ = "fail" if error.startswith("4") else "info"
    ops.append(operation(type_, "read", FINAL_READ_PROCESS, KIND, now_us(), session=sid, error=error))
    return False
