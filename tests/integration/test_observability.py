"""The server side of the live stack: Prometheus scrapes every node, and one request's logs join up by its id."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys

import pytest
import requests

from sessionproof import REPO_ROOT
from sessionproof.runtimes import probes
from sessionproof.waiting import wait_until

pytestmark = pytest.mark.stack


def prometheus_query(runtime, query: str) -> list[dict]:
    answer = requests.get(f"{runtime.config.prometheus_url}/api/v1/query", params={"query": query}, timeout=5)
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def test_prometheus_scrapes_every_app_the_redis_exporter_and_the_nginx_exporter(healthy_stack):
    targets = probes.prometheus_targets(healthy_stack.config.prometheus_url)
    by_job: dict[str, list[str]] = {}
    for target in targets:
        assert target["health"] == "up", target
        by_job.setdefault(target["job"], []).append(target["node"])
    assert sorted(by_job["app"]) == ["app-1", "app-2", "app-3"]
    assert sorted(by_job["redis"]) == ["redis-1", "redis-2", "redis-3"]  # all through the one exporter
    assert by_job["redis-exporter"] == ["redis-exporter"]
    assert by_job["nginx"] == ["nginx"]
    # Ordinary nodes of the stack, listed by status, and never a fault's target.
    assert {r.node.name: r.state for r in healthy_stack.status()}["prometheus"] == "RUNNING"
    assert not {"prometheus", "redis-exporter", "nginx-exporter"} & {n.name for n in healthy_stack.nodes()}


def test_the_exporters_report_the_redis_master_and_nginx_connections(healthy_stack):
    master = healthy_stack.master_node().name

    def master_seen() -> bool:
        series = prometheus_query(healthy_stack, 'redis_instance_info{role="master"}')
        return [s["metric"]["node"] for s in series] == [master]

    wait_until(master_seen, 10, "Prometheus to have the Redis exporter's role of every node")
    connected = prometheus_query(healthy_stack, "redis_connected_slaves")
    assert {s["metric"]["node"]: s["value"][1] for s in connected}[master] == "2"
    assert prometheus_query(healthy_stack, "nginx_up")[0]["value"][1] == "1"


def test_each_replica_serves_the_requests_of_all_its_workers_at_metrics(healthy_stack):
    app = healthy_stack.config.app_nodes[0]
    line = 'sessionproof_requests_total{endpoint="GET /ping",status="200"}'

    def count() -> float:
        text = requests.get(f"http://{app.address}/metrics", timeout=5).text
        return next((float(x.split()[-1]) for x in text.splitlines() if x.startswith(line)), 0.0)

    before = count()
    for _ in range(20):
        requests.get(f"http://{app.address}/ping", timeout=5).raise_for_status()
    assert count() == before + 20
    # Not through the entry point: only Prometheus reads a replica's metrics.
    through_nginx = requests.get(f"{healthy_stack.config.entry_url}/metrics", timeout=5)
    assert through_nginx.status_code == 404 and through_nginx.json()["servedBy"] == "nginx"


def test_one_requests_log_lines_join_from_nginx_into_the_app_by_request_id(healthy_stack, new_user):
    response = new_user().post("/cart/apple")
    assert response.status_code == 200
    request_id = response.headers["X-Request-ID"]
    replica = response.headers["X-Served-By"]
    env = {**os.environ, **healthy_stack.config.env, "PYTHONPATH": str(REPO_ROOT / "scripts")}
    command = [sys.executable, "-m", "sessionproof.runtimes.stack", "logs", "--request-id", request_id]

    def both_logged() -> list[tuple[str, dict]] | None:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=30, check=False)
        rows = [line.split(None, 1) for line in done.stdout.splitlines()]
        found = [(node, json.loads(entry)) for node, entry in rows if entry.startswith("{")]
        return found if len(found) == 2 else None  # nginx flushes its access log once a second

    found = wait_until(both_logged, 10, f"nginx and {replica} to log request {request_id}")
    (first_node, nginx_line), (app_node, app_line) = found
    assert (first_node, app_node) == ("nginx", replica)
    assert nginx_line["request_id"] == app_line["request_id"] == request_id
    assert (nginx_line["uri"], nginx_line["status"], app_line["status"]) == ("/cart/apple", 200, 200)
    app = healthy_stack.config.node(replica)
    assert nginx_line["upstream_addr"] == app.address
    assert app_line["endpoint"] == "POST /cart/<item>" and app_line["store_ms"] > 0
    assert app_line["store_node"] == response.headers["X-Store-Node"]


def test_nginx_logs_valid_json_whatever_the_uri_holds(healthy_stack):
    connection = http.client.HTTPConnection(healthy_stack.config.bind_host, healthy_stack.config.nginx_port, timeout=9)
    try:
        connection.request("GET", '/cart/"quoted"\\back?x=1')  # sent as is: a quote and a backslash
        response = connection.getresponse()
        response.read()
        request_id = response.headers["X-Request-ID"]
    finally:
        connection.close()
    log = healthy_stack.state_dir / "logs" / "nginx-access.log"

    def logged() -> dict | None:
        for line in log.read_text().splitlines():
            if request_id in line:
                return json.loads(line)
        return None

    entry = wait_until(logged, 10, "nginx to log the request")
    assert entry["uri"].startswith("/cart/") and '"quoted"' in entry["uri"]
