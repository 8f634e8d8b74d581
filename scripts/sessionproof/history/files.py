"""Reading and writing a run's history: RUN_DIR/raw/history.jsonl (gzipped in slimmed reference runs).

Times are µs since the run's start (meta.json's started_at), so a history's times and the run's
other files (timeline, events: Unix seconds) meet at `started_unix_s + time_us / 1e6`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from sessionproof.history import FIELDS, NEMESIS_OPERATIONS, NEMESIS_PROCESS, OPERATIONS, TYPES
from sessionproof.runfiles import RunFileError, iter_jsonl, run_file_exists

HISTORY_FILE = "history.jsonl"
REQUIRED = ("process", "type", "f", "time_us")
_KNOWN = {*REQUIRED, "kind", *FIELDS}


def history_path(run_dir: Path) -> Path:
    return Path(run_dir) / "raw" / HISTORY_FILE


def has_history(run_dir: Path) -> bool:
    return run_file_exists(history_path(run_dir))


def operation(type_: str, f: str, process: str, kind: str, time_us: int, **fields) -> dict:
    """One history line; fields with a None value other than session and user are left out."""
    nemesis = process == NEMESIS_PROCESS
    if type_ not in TYPES or f not in (NEMESIS_OPERATIONS if nemesis else OPERATIONS) or (nemesis and type_ != "info"):
        raise ValueError(
            f"a history line needs type in {TYPES} and f in {OPERATIONS} (the nemesis: info and f in "
            f"{NEMESIS_OPERATIONS}), not {type_!r}, {f!r}"
        )
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown history fields {sorted(unknown)}; known: {', '.join(FIELDS)}")
    kept = {k: v for k, v in fields.items() if v is not None or k in ("session", "user")}
    return {"process": process, "kind": kind, "type": type_, "f": f, "time_us": int(time_us), **kept}


def read_history(path: Path) -> list[dict]:
    """Every line of a history file, checked for the fields the checker needs; RunFileError names a bad line."""
    ops = []
    for line_no, op in iter_jsonl(path, REQUIRED):
        known_f = NEMESIS_OPERATIONS if op["process"] == NEMESIS_PROCESS else OPERATIONS
        if op["type"] not in TYPES or op["f"] not in known_f or not isinstance(op["time_us"], int):
            raise RunFileError(
                f"{path}:{line_no}: type must be one of {', '.join(TYPES)}, f one of {', '.join(OPERATIONS)} "
                f"(the nemesis's: {', '.join(NEMESIS_OPERATIONS)}) and time_us an integer; the history is damaged "
                "(was it edited?)"
            )
        unknown = set(op) - _KNOWN - set(_EARLIER_FIELDS)
        if unknown:
            raise RunFileError(
                f"{path}:{line_no}: unknown fields {sorted(unknown)}; known: {', '.join(sorted(_KNOWN))}"
            )
        ops.append(op)
    return upgrade_earlier_format(ops) if any(set(_EARLIER_FIELDS) & set(op) for op in ops) else ops


# The format before issue 24 carried an operation's argument or result in `value` and an answer's state in
# `state` ({user, cart, version}), and a login's completion named the session it was sent from.
_EARLIER_FIELDS = ("value", "state")


def upgrade_earlier_format(ops: list[dict]) -> list[dict]:
    """Lines of the earlier format in today's fields, so the reference runs recorded then are judged again: `value`
    becomes item (an add) or user (a login's invoke), `state` becomes user and cart (its version had no field of
    its own to keep), and a login's ok names the session it made (the session of its process's next line)."""
    upgraded = []
    next_session: dict[str, str | None] = {}
    for op in reversed(ops):  # from the end, so each login sees its process's next session
        new = {k: v for k, v in op.items() if k not in _EARLIER_FIELDS}
        if op["f"] == "add":
            new["item"] = op.get("value")
        elif op["f"] == "login" and op["type"] == "invoke":
            new["user"] = op.get("value")
        if op["type"] == "ok" and op["f"] in ("login", "add", "read") and isinstance(op.get("state"), dict):
            new["user"], new["cart"] = op["state"].get("user"), list(op["state"].get("cart", []))
        if op["f"] == "login" and op["type"] == "ok":
            new["session"] = next_session.get(op["process"])
        next_session[op["process"]] = op.get("session")
        upgraded.append(new)
    return upgraded[::-1]


def write_history(path: Path, ops: Iterable[dict], origin_us: int = 0) -> int:
    """Write ops sorted by time (stable: one process's order is kept), times made relative to origin_us."""
    ordered = sorted(ops, key=lambda op: op["time_us"])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for op in ordered:
            out.write(json.dumps({**op, "time_us": op["time_us"] - origin_us}) + "\n")
    return len(ordered)


def append_history(path: Path, ops: Iterable[dict]) -> int:
    """Append ops (times already run-relative) to a plain history file, e.g. the final read's."""
    count = 0
    with path.open("a") as out:
        for op in ops:
            out.write(json.dumps(op) + "\n")
            count += 1
    return count


def session_operations(history: list[dict]) -> list[dict]:
    """The history without the nemesis's lines: what the checker judges."""
    return [line for line in history if line["process"] != NEMESIS_PROCESS]


def nemesis_operations(events: list[dict], origin_unix_s: float) -> list[dict]:
    """The nemesis's history lines from a run's fault events (fault_injected: start, fault_end: stop); times in
    µs since origin_unix_s, the history's own origin."""
    kinds = {"fault_injected": "start", "fault_end": "stop"}
    return [
        operation(
            "info",
            kinds[event["type"]],
            NEMESIS_PROCESS,
            NEMESIS_PROCESS,
            round((float(event["t"]) - origin_unix_s) * 1_000_000),
            fault=event.get("fault"),
            target=event.get("target") or None,
        )
        for event in events
        if event.get("type") in kinds
    ]
