"""The hardened layer's properties, each beside stock Flask-Session, against a real redis-server with a replica.

Races are made deterministic with a gated view: it reads the session, then waits
until the test lets it write, so the interleaving is the same on every run.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest
from flask import jsonify, session

from sessionproof_app import create_app
from sessionproof_app.session_layer import STORE_NODE_HEADER
from support import free_port_block
from unit.test_app import NAMESPACE, make_app, session_keys

pytestmark = pytest.mark.redis
COOKIE = "sp_session"


class GatedAdd:
    """POST /gated-add/<item>: reads the cart, then (first pass only) waits for the test before writing."""

    def __init__(self, app):
        self.read_done = threading.Event()
        self.release = threading.Event()
        self.passes = 0

        @app.post("/gated-add/<item>")
        def gated_add(item):
            cart = list(session.get("cart", []))
            self.passes += 1
            if self.passes == 1:
                self.read_done.set()
                assert self.release.wait(10), "the test never released the gated request"
            session["cart"] = [*cart, item]
            session["version"] = session.get("version", 0) + 1
            return jsonify(cart=session["cart"], user=session.get("user"))

    def start(self, client, item: str) -> tuple[threading.Thread, dict]:
        result: dict = {}

        def run():
            result["response"] = client.post(f"/gated-add/{item}")

        thread = threading.Thread(target=run)
        thread.start()
        assert self.read_done.wait(10), "the gated request never read its session"
        return thread, result


def twin_clients(app, source):
    """A second browser tab: another test client with the same session cookie."""
    twin = app.test_client()
    twin.set_cookie(COOKIE, source.get_cookie(COOKIE).value)
    return twin


@pytest.mark.parametrize(("layer", "expected_cart"), [("hardened", ["b", "a"]), ("stock", ["a"])])
def test_a_concurrent_add_is_kept_only_by_the_hardened_layer(redis_client, layer, expected_cart):
    app = make_app(redis_client, layer=layer)
    gate = GatedAdd(app)
    tab1 = app.test_client()
    tab1.post("/login", json={"user": "alice"})
    tab2 = twin_clients(app, tab1)

    thread, result = gate.start(tab1, "a")  # tab1 has read the empty cart
    assert tab2.post("/cart/b").status_code == 200  # tab2 adds b meanwhile
    gate.release.set()
    thread.join(10)

    assert result["response"].status_code == 200
    assert tab2.get("/cart").get_json()["cart"] == expected_cart  # stock: last write wins, b is lost
    assert gate.passes == (2 if layer == "hardened" else 1)  # hardened re-ran the view on the fresh session


def test_a_request_that_keeps_losing_the_race_gets_503_and_stores_nothing(redis_client):
    app = make_app(redis_client, env={"SESSION_CONFLICT_RETRIES": "0"})
    gate = GatedAdd(app)
    tab1 = app.test_client()
    tab1.post("/login", json={"user": "alice"})
    tab2 = twin_clients(app, tab1)

    thread, result = gate.start(tab1, "a")
    tab2.post("/cart/b")
    gate.release.set()
    thread.join(10)

    response = result["response"]
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json()["error"] == "service_unavailable"
    assert tab2.get("/cart").get_json()["cart"] == ["b"]


@pytest.mark.parametrize(("layer", "resurrected"), [("hardened", False), ("stock", True)])
def test_logout_during_a_slow_request_stays_logged_out_only_with_the_hardened_layer(redis_client, layer, resurrected):
    app = make_app(redis_client, layer=layer)
    gate = GatedAdd(app)
    tab1 = app.test_client()
    tab1.post("/login", json={"user": "alice"})
    old_sid = tab1.get_cookie(COOKIE).value
    tab2 = twin_clients(app, tab1)

    thread, result = gate.start(tab1, "a")  # a slow request holds alice's session
    assert tab2.post("/logout").get_json()["loggedOut"] is True
    gate.release.set()
    thread.join(10)

    assert result["response"].status_code == 200
    back = redis_client.exists(f"{NAMESPACE}:session:{old_sid}") == 1
    assert back is resurrected
    reader = app.test_client()
    reader.set_cookie(COOKIE, old_sid)
    assert (reader.get("/cart").get_json()["user"] == "alice") is resurrected
    if not resurrected:
        # The slow request's item went to a new anonymous session under a new id.
        assert result["response"].get_json() == {"cart": ["a"], "user": None}
        assert tab1.get_cookie(COOKIE).value != old_sid


def test_a_retried_post_with_the_same_idempotency_key_applies_once(redis_client):
    client = make_app(redis_client).test_client()
    client.post("/login", json={"user": "alice"})
    first = client.post("/cart/apple", headers={"Idempotency-Key": "key-1"})
    again = client.post("/cart/apple", headers={"Idempotency-Key": "key-1"})
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json() == {**first.get_json(), "cart": ["apple"], "version": 2}
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert client.get("/cart").get_json()["cart"] == ["apple"]
    fresh = client.post("/cart/apple", headers={"Idempotency-Key": "key-2"})
    assert fresh.get_json()["cart"] == ["apple", "apple"]  # a new key is a new request


def test_a_record_in_the_earlier_format_is_still_replayed_after_an_upgrade(redis_client):
    """Records the code before the compact format wrote (a map, a hex fingerprint) live up to 600 s."""
    import msgspec

    client = make_app(redis_client).test_client()
    client.post("/login", json={"user": "alice"})
    before = set(redis_client.keys(f"{NAMESPACE}:idempotency:*"))  # the login's own record
    first = client.post("/cart/apple", headers={"Idempotency-Key": "key-old"})
    (record_key,) = set(redis_client.keys(f"{NAMESPACE}:idempotency:*")) - before
    new = msgspec.msgpack.decode(redis_client.get(record_key))  # [fingerprint, status, headers, body]
    fingerprint_hex = new[0].hex() + "0" * 32  # the old format kept all 32 bytes; only the first 16 are compared
    old = {"fingerprint": fingerprint_hex, "status": new[1], "body": new[3],
           "headers": [["Content-Type", "application/json"], ["Vary", "Cookie"]]}  # fmt: skip
    redis_client.set(record_key, msgspec.msgpack.encode(old), keepttl=True)
    again = client.post("/cart/apple", headers={"Idempotency-Key": "key-old"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json() and again.headers["Content-Type"] == "application/json"
    assert client.get("/cart").get_json()["cart"] == ["apple"]


def test_a_record_read_that_the_master_does_not_hold_is_never_replayed(redis_client):
    """During a partition the record can be read from the old master over one connection while the next
    command goes to the new master, which never got it. The replay must not be acknowledged there."""
    app = make_app(redis_client)
    client = app.test_client()
    client.post("/login", json={"user": "alice"})
    before = set(redis_client.keys(f"{NAMESPACE}:idempotency:*"))
    assert client.post("/cart/apple", headers={"Idempotency-Key": "key-1"}).status_code == 200
    records = list(set(redis_client.keys(f"{NAMESPACE}:idempotency:*")) - before)
    assert len(records) == 1
    vanished = []

    def record_gone_from_the_master():  # runs after the session and record were read, before the replay
        if not vanished:
            vanished.append(redis_client.delete(*records))

    app.before_request_funcs[None].insert(0, record_gone_from_the_master)
    again = client.post("/cart/apple", headers={"Idempotency-Key": "key-1"})
    assert vanished == [1]
    assert again.status_code == 200 and "Idempotent-Replayed" not in again.headers  # run again, not replayed
    assert again.get_json()["cart"] == ["apple", "apple"], (again.get_json(), dict(again.headers))
    assert client.get("/cart").get_json()["cart"] == ["apple", "apple"]


def test_a_retry_of_a_request_that_started_the_session_applies_once(redis_client):
    app = make_app(redis_client)
    lost_response = app.test_client()  # its first answer (and so the cookie) never arrived
    first = lost_response.post("/cart/apple", headers={"Idempotency-Key": "key-1"})
    retry = app.test_client()
    again = retry.post("/cart/apple", headers={"Idempotency-Key": "key-1"})
    assert again.headers["Idempotent-Replayed"] == "true"
    assert retry.get_cookie(COOKIE).value == lost_response.get_cookie(COOKIE).value
    assert retry.get("/cart").get_json()["cart"] == ["apple"] == first.get_json()["cart"]
    assert len(session_keys(redis_client)) == 1


def test_stock_applies_a_retried_post_twice(redis_client):
    client = make_app(redis_client, layer="stock").test_client()
    for _ in range(2):
        client.post("/cart/apple", headers={"Idempotency-Key": "key-1"})
    assert client.get("/cart").get_json()["cart"] == ["apple", "apple"]


def test_a_key_reused_for_another_request_gets_422_and_a_malformed_key_400(redis_client):
    client = make_app(redis_client).test_client()
    client.post("/login", json={"user": "alice"})
    client.post("/cart/apple", headers={"Idempotency-Key": "key-1"})
    reused = client.post("/cart/pear", headers={"Idempotency-Key": "key-1"})
    assert reused.status_code == 422 and reused.get_json()["error"] == "idempotency_key_reused"
    malformed = client.post("/cart/pear", headers={"Idempotency-Key": "has spaces"})
    assert malformed.status_code == 400 and malformed.get_json()["error"] == "invalid_idempotency_key"
    assert client.get("/cart").get_json()["cart"] == ["apple"]


def test_idempotency_records_are_scoped_to_the_session(redis_client):
    app = make_app(redis_client)
    alice, bob = app.test_client(), app.test_client()
    alice.post("/login", json={"user": "alice"})
    bob.post("/login", json={"user": "bob"})
    alice.post("/cart/apple", headers={"Idempotency-Key": "shared"})
    response = bob.post("/cart/apple", headers={"Idempotency-Key": "shared"})
    assert response.get_json()["user"] == "bob" and "Idempotent-Replayed" not in response.headers


@pytest.mark.parametrize(("layer", "writes_on_read"), [("hardened", 0), ("stock", 3)])
def test_an_unchanged_session_is_touched_not_rewritten(redis_client, layer, writes_on_read):
    client = make_app(redis_client, layer=layer).test_client()
    client.post("/cart/apple")
    (key,) = session_keys(redis_client)
    redis_client.expire(key, 100)
    redis_client.config_resetstat()
    for _ in range(3):
        assert client.get("/cart").get_json()["cart"] == ["apple"]
    stats = redis_client.info("commandstats")
    writes = sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("set", "eval", "evalsha"))
    assert writes == writes_on_read
    assert redis_client.ttl(key) > 100  # the idle expiry slid all the same


def address_of(client) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs['host']}:{kwargs['port']}"


def sentinel_app(sentinels, layer="hardened", **env):
    """The app as the stack runs it: its client finds the master through these Sentinels (connect_master)."""
    return create_app(
        {"INSTANCE_ID": "test-app", "SESSION_NAMESPACE": NAMESPACE},
        env={
            "SENTINELS": ",".join(f"{host}:{port}" for host, port in sentinels),
            "SESSION_LAYER": layer,
            "SESSION_WAIT_REPLICAS": "0",  # the split-brain masters have no replicas
            **env,
        },
    )


def test_a_replica_that_reaches_no_sentinel_answers_502_at_once(split_brain_sentinels, caplog):
    paused = split_brain_sentinels["old"]["sentinel_process"]
    refused = ("127.0.0.1", free_port_block(1))  # nothing listens: connection refused
    # A paused Sentinel accepts TCP (the kernel does) but never answers: a timeout, as behind a partition.
    app = sentinel_app([refused, split_brain_sentinels["old"]["sentinel"]], STORE_RETRY_BUDGET_S="6")
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger=app.logger.name):
            response = app.test_client().post("/login", json={"user": "alice"})
        elapsed_s = time.monotonic() - started
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    assert elapsed_s < 3, (
        f"answered after {elapsed_s:.1f}s: a replica cut off from every Sentinel must answer 502 at once, so that "
        "nginx re-sends the request to another replica, not after its 6 s STORE_RETRY_BUDGET_S"
    )
    assert response.status_code == 502 and response.headers["Retry-After"] == "1"
    assert response.get_json()["error"] == "store_unreachable_from_replica"
    assert STORE_NODE_HEADER not in response.headers
    (record,) = [r for r in caplog.records if r.name == app.logger.name]
    assert "unreachable from this replica" in record.getMessage() and record.exc_info is None


@pytest.mark.parametrize(
    ("layer", "master_name", "error"),
    [
        # Sentinel answers but names no master (as mid-failover): the budget is spent, as before.
        ("hardened", "not-monitored", "store_unavailable"),
        # Stock keeps its one answer for an unreachable store.
        ("stock", None, "store_unavailable"),
    ],
)
def test_other_store_outages_keep_their_503(split_brain_sentinels, layer, master_name, error):
    brain = split_brain_sentinels
    sentinels = [brain["new"]["sentinel"]] if master_name else [("127.0.0.1", free_port_block(1))]
    app = sentinel_app(
        sentinels,
        layer,
        REDIS_MASTER_NAME=master_name or brain["name"],
        REDIS_PASSWORD=brain["password"],
        STORE_RETRY_BUDGET_S="0.5",
    )
    started = time.monotonic()
    response = app.test_client().post("/cart/apple")
    elapsed_s = time.monotonic() - started
    assert response.status_code == 503 and response.get_json()["error"] == error
    if layer == "hardened":
        assert elapsed_s >= 0.5, f"answered after {elapsed_s:.2f}s, before its retry budget was spent"


@pytest.mark.parametrize("layer", ["hardened", "stock"])
def test_an_acknowledged_write_names_the_master_sentinel_sent_it_to(split_brain_sentinels, redis_client, layer):
    brain = split_brain_sentinels
    app = sentinel_app(
        [brain["old"]["sentinel"], brain["new"]["sentinel"]],
        layer,
        REDIS_MASTER_NAME=brain["name"],
        REDIS_PASSWORD=brain["password"],
    )
    client = app.test_client()
    written = client.post("/cart/apple")
    assert written.status_code == 200
    # The newer configuration's master, although the Sentinel listed first names the other one.
    assert written.headers[STORE_NODE_HEADER] == f"127.0.0.1:{brain['new']['master_port']}"
    read = client.get("/cart")
    assert read.get_json()["cart"] == ["apple"]
    # Hardened does not rewrite an unchanged session; stock sets it again on every request.
    assert read.headers.get(STORE_NODE_HEADER) == (None if layer == "hardened" else written.headers[STORE_NODE_HEADER])
