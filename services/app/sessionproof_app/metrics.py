"""What one app replica counts, served at /metrics for Prometheus, and its one JSON log line per request.

Under gunicorn every worker is a process of its own, so prometheus-client runs in
multiprocess mode: each worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR
(gunicorn.conf.py gives every replica a fresh one) and /metrics adds up the files of
all workers. Without that variable (the Flask test client, `flask run`) the process's
own registry serves. Names and meanings: docs/design.md, "Server-side metrics".
"""

from __future__ import annotations

import json
import os
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

# Seconds; spans the unloaded p50 (~1 ms) up to a request that spent the whole retry budget (6 s).
REQUEST_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("sessionproof_requests", "Requests answered by this replica.", ["endpoint", "status"])
REQUEST_SECONDS = Histogram(
    "sessionproof_request_seconds",
    "Time from the request reaching the app to its response, retries included.",
    ["endpoint"],
    buckets=REQUEST_BUCKETS_S,
)
STORE_RETRIES = Counter(
    "sessionproof_store_retries",
    "Attempts run again after a store error or a session conflict (hardened: whole requests; stock: "
    "redis-py's command retries), by what caused them.",
    ["reason"],
)
SESSION_CONFLICTS = Counter(
    "sessionproof_session_conflicts", "Commits refused because the session changed since it was read (hardened)."
)
IDEMPOTENT_REPLAYS = Counter(
    "sessionproof_idempotent_replays", "Requests answered from the record of an earlier one with the same key."
)
STORE_UNAVAILABLE = Counter(
    "sessionproof_store_unavailable",
    "Requests the store did not serve, by the error they were answered with: 503 store_unavailable, store_busy, "
    "store_cannot_persist or store_error, 502 store_unreachable_from_replica (store_full counts apart).",
    ["error"],
)
STORE_FULL = Counter("sessionproof_store_full", "Writes refused with 503 store_full (Redis at maxmemory).")
MASTER_CHANGES = Counter(
    "sessionproof_master_changes",
    "Times a worker of this replica found Sentinel naming another master than the one it used before.",
)
CONFIRMERS_REFRESH_FAILURES = Counter(
    "sessionproof_confirmers_refresh_failures",
    "Background refreshes of which replicas must confirm a write that failed, by error type (hardened; a request "
    "finding the answer too old then asks itself).",
    ["error"],
)

# This thread's (gthread: this request's) retries, for its log line.
_request_retries: ContextVar[int] = ContextVar("sessionproof_request_retries", default=0)


def reset_request() -> None:
    _request_retries.set(0)


def count_retry(reason: str) -> None:
    STORE_RETRIES.labels(reason=reason).inc()
    _request_retries.set(_request_retries.get() + 1)


def request_retries() -> int:
    return _request_retries.get()


def endpoint_label(method: str, rule: str | None) -> str:
    """`POST /cart/<item>`: the route, never the path, so the label set stays small; `unmatched` for a 404 or 405."""
    return f"{method} {rule}" if rule else "unmatched"


def observe(endpoint: str, status: int, seconds: float) -> None:
    REQUESTS.labels(endpoint=endpoint, status=str(status)).inc()
    REQUEST_SECONDS.labels(endpoint=endpoint).observe(seconds)


def exposition() -> tuple[bytes, str]:
    """The body and content type of /metrics: every worker's samples under gunicorn, this process's otherwise."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def log_request(fields: dict) -> None:
    """One JSON line on stdout (the replica's log): one write, so lines of concurrent threads never interleave."""
    now = datetime.now(UTC).isoformat(timespec="microseconds")  # as nginx's ts ($time_iso8601), finer
    line = json.dumps({"ts": now, **fields}, separators=(",", ":"))
    sys.stdout.write(line + "\n")
