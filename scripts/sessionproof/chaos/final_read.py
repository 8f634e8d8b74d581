"""The final read of an experiment: every session the users wrote, read back through nginx after heal.

An acknowledged write that is absent is a lost acknowledged write; a write that failed or
timed out is indeterminate, and the read tells whether it took effect.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import requests

from sessionproof.runfiles import read_jsonl
from sessionproof.waiting import DeadlineExceeded, wait_until

FINAL_READ_TIMEOUT_S = 30.0
MAX_LOST_EXAMPLES = 20


def judge_final_read(ledger: list[dict], read_session: Callable[[str], dict | None]) -> dict:
    """Compare every session's acknowledged and indeterminate writes with what a final read finds.

    `read_session(sid)` returns the session's JSON state, or None when it could not be read at all.
    A session that comes back anonymous (user None) lost every acknowledged write in it.
    lost_items lists every lost write with when (t, Unix time) and where (store, "host:port") it was
    acknowledged, from the ledger's acked_meta; both None for a ledger written before it existed.
    """
    result = {
        "sessions": 0,
        "acknowledged_writes": 0,
        "lost_acknowledged_writes": 0,
        "lost_examples": [],
        "lost_items": [],
        "indeterminate_writes": 0,
        "indeterminate_took_effect": 0,
        "unreadable_sessions": 0,
    }
    for entry in ledger:
        result["sessions"] += 1
        acked, uncertain = entry.get("acked", []), entry.get("uncertain", [])
        result["acknowledged_writes"] += len(acked)
        result["indeterminate_writes"] += len(uncertain)
        state = read_session(entry["sid"])
        if state is None:
            result["unreadable_sessions"] += 1
            continue
        cart = set(state.get("cart", [])) if state.get("user") == entry.get("user") else set()
        lost = [item for item in acked if item not in cart]
        result["lost_acknowledged_writes"] += len(lost)
        room = MAX_LOST_EXAMPLES - len(result["lost_examples"])
        result["lost_examples"] += [{"user": entry.get("user"), "item": item} for item in lost[:room]]
        acked_at = {meta[0]: meta[1:3] for meta in entry.get("acked_meta", [])}
        for item in lost:
            t, store = acked_at.get(item, (None, None))
            result["lost_items"].append({"user": entry.get("user"), "item": item, "t": t, "store": store})
        result["indeterminate_took_effect"] += sum(item in cart for item in uncertain)
    return result


def session_reader(base_url: str, cookie_name: str) -> Callable[[str], dict | None]:
    def read(sid: str) -> dict | None:
        def attempt():
            response = requests.get(f"{base_url}/cart", cookies={cookie_name: sid}, timeout=5)
            return response.json() if response.status_code == 200 else None

        try:
            return wait_until(attempt, FINAL_READ_TIMEOUT_S, f"a final read of session {sid[:8]}…", interval_s=0.5)
        except DeadlineExceeded:
            return None

    return read


def load_ledger(raw_dir: Path) -> list[dict]:
    return read_jsonl(raw_dir / "ledger.jsonl", ())
