"""Plant one anomaly of a class into a history (a list of its lines), as an adversary editing the file would.

Each planting edits or adds lines around one session that has an acknowledged write and a final read, so
the checker must see it on any real run's history (tests/integration) and on a written one (tests/unit).
"""

from __future__ import annotations

import copy

from sessionproof.history import FINAL_READ_PROCESS


def _target(ops: list[dict]) -> tuple[dict, dict, str]:
    """(an ok add, the ok final read of its session, the session's user) for a session that has both."""
    finals = {op["session"]: op for op in ops if op["process"] == FINAL_READ_PROCESS and op["type"] == "ok"}
    for op in ops:
        final = finals.get(op.get("session"))
        if op["f"] == "add" and op["type"] == "ok" and final and op["item"] in final["cart"] and final["user"]:
            return op, final, final["user"]
    raise ValueError("no session with an acknowledged add and an ok final read to plant into")


def _pair(process: str, f: str, session: str, invoke_us: int, done_us: int, **answer) -> list[dict]:
    invoke = {"process": process, "kind": "planted", "type": "invoke", "f": f, "session": session, "time_us": invoke_us}
    item = {k: answer[k] for k in ("item", "key") if k in answer}
    return [{**invoke, **item}, {**invoke, "type": "ok", "time_us": done_us, **answer}]


def plant(history: list[dict], name: str) -> list[dict]:
    ops = copy.deepcopy(history)
    add, final, user = _target(ops)
    session, acked_us = add["session"], add["time_us"]
    if name == "lost_writes":
        final["cart"].remove(add["item"])
    elif name == "stale_reads":  # a read begun after the acknowledgement, without the item; the final read has it
        cart = [i for i in add["cart"] if i != add["item"]]  # the cart as acknowledged, less the item
        ops += _pair("planted-reader", "read", session, acked_us + 1, acked_us + 2, user=user, cart=cart)
    elif name == "duplicates":
        final["cart"].append(add["item"])
    elif name == "resurrections":  # an acknowledged logout before the final read, which still shows the session
        invoked_us = max(
            op["time_us"] for op in ops
            if op["process"] == FINAL_READ_PROCESS and op["type"] == "invoke" and op["session"] == session
            and op["time_us"] < final["time_us"]
        )  # fmt: skip
        ops += _pair("planted-logout", "logout", session, invoked_us - 3, invoked_us - 2)
    elif name == "lost_updates":  # an add overlapping the acknowledged one, acknowledged, absent at the end
        ops += _pair(
            "planted-tab", "add", session, acked_us - 1, acked_us + 1, item="planted-item", key="planted-key",
            user=user, cart=[*add["cart"], "planted-item"],
        )  # fmt: skip
    elif name == "sessions_lost":
        final["user"], final["cart"] = None, []
    elif name == "foreign_sessions":
        final["user"] = f"{user}-someone-else"
    elif name == "phantom_writes":
        final["cart"].append("planted-never-sent")
    else:
        raise ValueError(f"no planting for {name}")
    return ops
