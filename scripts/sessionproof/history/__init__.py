"""The history's vocabulary, at the base of the harness: what the load writes and the checker judges.

One list of each: the operations (`f`), the completion types, and the anomaly classes the checker
counts. The load (load/recorder.py, loadtests/locustfile.py) and the analysis (analysis/history.py,
analysis/summary.py) both read them here, so a class added to the checker is counted, written and
summarised under one name.
"""

from __future__ import annotations

# What a session operation does: log in, add an item, read the cart, log out.
OPERATIONS = ("login", "add", "read", "logout")
# How an operation completed, as in Jepsen: invoke when sent, then ok (it happened), fail (refused: a 4xx,
# it did not happen) or info (unknown: a 5xx, a timeout, a dropped connection; it may have happened).
TYPES = ("invoke", "ok", "fail", "info")
# The anomaly classes the checker counts, each a count of violations (analysis/checker.py says what each means).
ANOMALY_CLASSES = ("lost_writes", "stale_reads", "sessions_lost", "foreign_sessions", "lost_updates")
# The correctness figures of a run: how many answers were judged, then each class.
CORRECTNESS_FIGURES = ("checks", *ANOMALY_CLASSES)

__all__ = ["ANOMALY_CLASSES", "CORRECTNESS_FIGURES", "OPERATIONS", "TYPES"]
