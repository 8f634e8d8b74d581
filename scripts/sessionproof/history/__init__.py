"""The history of a run, at the base of the harness: what the load writes and the one checker judges.

A history is one JSON line per event of a session operation, as in Jepsen: an `invoke` when a request
is sent, then its completion, `ok` (it happened), `fail` (refused with a 4xx: it did not happen) or
`info` (unknown: a 5xx, a timeout, a dropped connection; it may have happened, now or later).

    {"process": "3f2a9c1b7d0e", "kind": "bounce", "type": "invoke", "f": "add", "session": "Xk3…",
     "item": "i3f2a9c1b7d0e-7", "key": "5d0c…", "time_us": 1234567}
    {"process": "3f2a9c1b7d0e", "kind": "bounce", "type": "ok", "f": "add", "session": "Xk3…",
     "item": "i3f2a9c1b7d0e-7", "key": "5d0c…", "user": "bounce-3f2a9c1b7d0e-1",
     "cart": ["i3f2a9c1b7d0e-1", …, "i3f2a9c1b7d0e-7"], "store": "10.77.0.11:6379", "time_us": 1240112}

The faults are in the history too, as Jepsen's nemesis is: process `nemesis`, an `info` line when a fault
is in place (`f` = `start`) and one when it has ended (`stop`), with the fault and its target. The checker
judges session operations only; the nemesis lines say what was broken when.

    {"process": "nemesis", "kind": "nemesis", "type": "info", "f": "start", "fault": "kill-redis-master",
     "target": "redis-1", "time_us": 12003114}

One fact, one field (FIELDS says which). A process is one client doing one thing at a time: its
invoke and its completion are adjacent in its own order. Every verdict of a run (lost writes, the
final read's included, stale reads, duplicates, ...) is `checker.check(history)`.
"""

from __future__ import annotations

# What a session operation does. logout_all ends every session of the user (POST /logout-all).
OPERATIONS = ("login", "add", "read", "logout", "logout_all")
# The nemesis's operations (process NEMESIS_PROCESS, type info): a fault in place, a fault ended.
NEMESIS_PROCESS = "nemesis"
NEMESIS_OPERATIONS = ("start", "stop")
# How an operation completed, as in Jepsen.
TYPES = ("invoke", "ok", "fail", "info")
# The fields a history line may carry besides process, kind, type, f and time_us, and what each holds.
FIELDS = {
    "session": "invoke: the session id the request carried (null: none); an ok answer with state: the session it"
    " left the client in (a login's new one, or a fresh one the server gave for a session it no longer had)",
    "user": "login invoke: the user logging in; ok answers: the user the session named (null: anonymous)",
    "item": "add: the item added (both lines)",
    "key": "add: its Idempotency-Key (both lines); a re-send repeats item and key",
    "cart": "ok answers of login, add and read: the cart the answer showed",
    "store": "ok answers of writes: X-Store-Node, the Redis node that acknowledged it",
    "ended": "logout_all ok: how many sessions the answer said it ended",
    "error": "fail and info: the HTTP status, or timeout / connection",
    "fault": "nemesis: the fault (chaos/faults.py's name)",
    "target": "nemesis: the nodes it acted on, comma-separated",
}
# The process that reads every session back after the load (it is part of the history like any other).
FINAL_READ_PROCESS = "final-read"
# The anomaly classes the checker counts (history/checker.py says what each means), in Jepsen's words where
# they fit. Any of them makes `make check` exit 3.
ANOMALY_CLASSES = (
    "lost_writes",
    "lost_updates",
    "stale_reads",
    "duplicates",
    "resurrections",
    "sessions_lost",
    "foreign_sessions",
    "phantom_writes",
)
# What the checker counts besides the anomalies: what it judged, and what it could not.
TALLIES = (
    "checks",  # answers judged
    "sessions",
    "acknowledged_writes",
    "indeterminate_writes",  # adds that ended info and never ok: may have happened
    "indeterminate_took_effect",  # ... of which some answer showed the item
    "unread_writes",  # acknowledged, but no answer began after the acknowledgement: neither kept nor lost
)
CORRECTNESS_FIGURES = (*TALLIES, *ANOMALY_CLASSES)

__all__ = ["ANOMALY_CLASSES", "CORRECTNESS_FIGURES", "FIELDS", "FINAL_READ_PROCESS", "OPERATIONS", "TALLIES", "TYPES"]
