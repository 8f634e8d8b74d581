"""The app's /metrics and its JSON request log, against a real redis-server (one process: the default registry)."""

from __future__ import annotations

import json

import pytest
import redis
from prometheus_client import REGISTRY

from sessionproof_app import metrics
from sessionproof_app.store import WriteNotReplicated, retry_reason
from tests.unit.test_app import make_app

pytestmark = pytest.mark.redis


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def request_lines(captured: str) -> list[dict]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("layer", ["hardened", "stock"])
def test_requests_are_counted_by_route_and_status_and_served_at_metrics(redis_client, layer):
    client = make_app(redis_client, layer=layer).test_client()
    endpoint = "POST /cart/<item>"
    before = sample("sessionproof_requests_total", endpoint=endpoint, status="200")
    before_latency = sample("sessionproof_request_seconds_count", endpoint=endpoint)
    for item in ("apple", "pear"):
        assert client.post(f"/cart/{item}").status_code == 200
    assert client.get("/no-such-page").status_code == 404

    assert sample("sessionproof_requests_total", endpoint=endpoint, status="200") == before + 2
    assert sample("sessionproof_request_seconds_count", endpoint=endpoint) == before_latency + 2
    assert sample("sessionproof_requests_total", endpoint="unmatched", status="404") >= 1
    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["Content-Type"].startswith("text/plain")
    body = scraped.get_data(as_text=True)
    assert 'sessionproof_requests_total{endpoint="POST /cart/<item>",status="200"}' in body
    assert "sessionproof_request_seconds_bucket" in body
    # A scrape neither counts itself nor touches a session.
    assert "GET /metrics" not in body
    assert "Set-Cookie" not in scraped.headers


def test_each_request_logs_one_json_line_with_its_request_id(redis_client, capsys):
    client = make_app(redis_client).test_client()
    capsys.readouterr()
    response = client.post("/cart/apple", headers={"X-Request-ID": "abc123"})
    client.get("/metrics")  # not logged
    lines = request_lines(capsys.readouterr().out)
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "abc123"
    assert line["replica"] == "test-app"
    assert (line["method"], line["endpoint"], line["status"]) == ("POST", "POST /cart/<item>", 200)
    assert line["retries"] == 0 and line["replayed"] is False
    assert 0 <= line["store_ms"] <= line["duration_ms"]  # 0 here: a plain client does not time its round trips
    assert line["store_node"] == response.headers["X-Store-Node"]


def test_request_log_off_writes_nothing(redis_client, capsys):
    client = make_app(redis_client, env={"REQUEST_LOG": "off"}).test_client()
    capsys.readouterr()
    client.post("/cart/apple")
    assert request_lines(capsys.readouterr().out) == []


def test_a_replayed_write_counts_as_a_replay(redis_client, capsys):
    client = make_app(redis_client).test_client()
    client.post("/cart/pear")  # the session (its cookie scopes the key) exists before both tries
    before = sample("sessionproof_idempotent_replays_total")
    first = client.post("/cart/apple", headers={"Idempotency-Key": "k-1"})
    again = client.post("/cart/apple", headers={"Idempotency-Key": "k-1"})
    assert again.get_json() == first.get_json()
    assert sample("sessionproof_idempotent_replays_total") == before + 1
    assert request_lines(capsys.readouterr().out)[-1]["replayed"] is True


@pytest.mark.parametrize("layer", ["hardened", "stock"])
def test_an_unreachable_store_counts_retries_and_503s(unreachable_store, layer, capsys):
    client = make_app(unreachable_store, layer=layer).test_client()
    retries_before = sample("sessionproof_store_retries_total", reason="connection")
    unavailable_before = sample("sessionproof_store_unavailable_total", error="store_unavailable")
    capsys.readouterr()
    assert client.post("/cart/apple", headers={"X-Request-ID": "r-1"}).status_code == 503

    retried = sample("sessionproof_store_retries_total", reason="connection") - retries_before
    # stock: redis-py's REDIS_RETRIES (3) per command; hardened: whole requests within the budget.
    assert retried >= (3 if layer == "stock" else 1)
    assert sample("sessionproof_store_unavailable_total", error="store_unavailable") == unavailable_before + 1
    line = request_lines(capsys.readouterr().out)[-1]
    assert (line["request_id"], line["status"], line["retries"]) == ("r-1", 503, retried)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (redis.ConnectionError("refused"), "connection"),
        (redis.TimeoutError("timed out"), "timeout"),
        (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), "readonly"),
        (redis.ResponseError("NOREPLICAS Not enough good replicas to write."), "noreplicas"),
        (redis.exceptions.BusyLoadingError("Redis is loading"), "loading"),
        (WriteNotReplicated("WAIT: 0 of 2"), "not_replicated"),
    ],
)
def test_retry_reasons_are_short_and_bounded(error, reason):
    assert retry_reason(error) == reason


def test_endpoint_label_is_the_route_not_the_path():
    assert metrics.endpoint_label("POST", "/cart/<item>") == "POST /cart/<item>"
    assert metrics.endpoint_label("TRACE", None) == "unmatched"
