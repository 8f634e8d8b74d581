"""The server side of a run, as Prometheus saw it: fetched once, when the load stops, into raw/server.json.

The report (analysis/server.py) reads that file, never Prometheus, so `make report` renders a
run again after its Prometheus data is gone. When Prometheus does not answer (OBSERVABILITY=off,
a stack without it, a generator on another machine) the file says why, and the report says so.

Each query is a range query over the run's window at the scrape interval. The report turns
counters into increases per series and adds them up per replica (resets included: a killed
replica starts from zero again).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import requests

from sessionproof import settings
from sessionproof.configs.observability import scrape_interval_s
from sessionproof.topology import StackConfig

SERVER_FILE = "server.json"
QUERY_TIMEOUT_S = 10.0
# After the load stops, how long to wait for Prometheus to scrape past its end.
LAST_SCRAPE_WAIT_S = 5.0
# Counters are fetched series by series, not summed in PromQL: a sum over a restarted replica's series would
# mix its old and new counter for a moment, and the report could not tell a reset from a rise.
QUERIES = {
    "requests": "sessionproof_requests_total",
    "retries": "sessionproof_store_retries_total",
    "conflicts": "sessionproof_session_conflicts_total",
    "replays": "sessionproof_idempotent_replays_total",
    "store_unavailable": "sessionproof_store_unavailable_total",
    "store_full": "sessionproof_store_full_total",
    "master_changes": "sessionproof_master_changes_total",
    "app_p99_s": "histogram_quantile(0.99, sum by (node, le) (rate(sessionproof_request_seconds_bucket[3s])))",
    "up": "up",
    "redis_up": "redis_up",
    "redis_role": "redis_instance_info",
    "redis_master_offset": "redis_master_repl_offset",
    "redis_replica_offset": "redis_connected_slave_offset_bytes",
    "redis_clients": "redis_connected_clients",
    "nginx_active": "nginx_connections_active",
}


class PrometheusError(RuntimeError):
    """Prometheus did not answer, or answered with an error; the message says which and where."""


def _get(url: str, path: str, params: dict) -> dict:
    try:
        answer = requests.get(f"{url}{path}", params=params, timeout=QUERY_TIMEOUT_S)
    except requests.RequestException as error:
        raise PrometheusError(f"Prometheus at {url} did not answer ({type(error).__name__})") from None
    try:
        body = answer.json()
    except ValueError:
        raise PrometheusError(f"Prometheus at {url} answered HTTP {answer.status_code} without JSON") from None
    if body.get("status") != "success":
        raise PrometheusError(f"Prometheus at {url}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]


def _wait_for_last_scrape(url: str, end_s: float) -> None:
    deadline = time.monotonic() + LAST_SCRAPE_WAIT_S
    while time.monotonic() < deadline:
        result = _get(url, "/api/v1/query", {"query": "min(timestamp(up))"})["result"]
        if result and float(result[0]["value"][1]) >= end_s:
            return
        time.sleep(0.25)


def fetch(url: str, start_s: float, end_s: float, step_s: float) -> dict:
    """Every QUERIES series over [start_s, end_s + 2 steps]: {name: [{"labels": {...}, "values": [[t, value]]}]}.

    Two steps past the end: a range query's point holds the last scrape before it, so without them the
    requests of the run's last second, counted after the last scrape before its end, would be missing."""
    end_s += 2 * step_s
    _wait_for_last_scrape(url, end_s - step_s)
    series = {}
    for name, query in QUERIES.items():
        data = _get(url, "/api/v1/query_range", {"query": query, "start": start_s, "end": end_s, "step": step_s})
        series[name] = [
            {"labels": item["metric"], "values": [[float(t), float(v)] for t, v in item["values"]]}
            for item in data["result"]
        ]
    return series


def record(raw_dir: Path, start_s: float, end_s: float, env=None, progress=print) -> dict:
    """Write raw_dir/server.json for the window [start_s, end_s]; never raises: a failure is written down."""
    recorded: dict = {"window": {"start_s": start_s, "end_s": end_s}}
    try:
        config = StackConfig.from_env(env)
        step_s = float(scrape_interval_s(config.env))
        recorded.update(prometheus_url=config.prometheus_url, step_s=step_s)
        if not config.observability:
            raise PrometheusError("OBSERVABILITY=off: the stack runs no Prometheus")
        recorded["series"] = fetch(config.prometheus_url, start_s, end_s, step_s)
        recorded["available"] = True
        progress(f"sessionproof: server-side metrics of the run recorded from {config.prometheus_url}")
    except (PrometheusError, settings.ConfigError) as error:
        recorded.update(available=False, reason=str(error))
        progress(f"sessionproof: no server-side metrics: {error}")
    raw_dir.mkdir(parents=True, exist_ok=True)
    (raw_dir / SERVER_FILE).write_text(json.dumps(recorded, separators=(",", ":")) + "\n")
    return recorded
