"""A full store (maxmemory with noeviction) against a real redis-server: 503 with Retry-After, one log line,
reads still served, and nothing of a refused write stored."""

from __future__ import annotations

import contextlib
import logging

import pytest

from tests.unit.test_app import make_app

pytestmark = pytest.mark.redis


@contextlib.contextmanager
def full(redis_client):
    """maxmemory just below what Redis uses now: every write that needs memory is refused (OOM)."""
    before = redis_client.config_get("maxmemory")["maxmemory"]
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", max(1, redis_client.info("memory")["used_memory"] - 1024 * 1024))
    try:
        yield
    finally:
        redis_client.config_set("maxmemory", before)


@pytest.mark.parametrize("layer", ["hardened", "stock"])
def test_a_full_store_answers_503_never_500_and_hardened_keeps_serving_reads(redis_client, layer, caplog):
    client = make_app(redis_client, layer=layer).test_client()
    assert client.post("/login", json={"user": "alice"}).status_code == 200
    assert client.post("/cart/apple").status_code == 200
    redis_client.set("filler", b"x" * 2 * 1024 * 1024)  # room to go below
    stock_reads: list[int] = []
    with full(redis_client), caplog.at_level(logging.WARNING):
        for method, path, body in (("POST", "/cart/pear", None), ("POST", "/login", {"user": "bob"})):
            refused = client.open(path, method=method, json=body)
            assert refused.status_code == 503, refused.get_data(as_text=True)
            assert refused.get_json()["error"] == "store_full" and refused.headers["Retry-After"] == "1"
            read = client.get("/cart")
            if layer == "hardened":  # reads keep working (GETEX needs no memory), and see nothing of the refusal
                assert read.status_code == 200 and read.get_json()["cart"] == ["apple"]
                assert read.get_json()["user"] == "alice"
            else:
                stock_reads.append(read.status_code)
    if layer == "stock":
        # Flask-Session rewrites the session on every read (SET), so a full store refuses reads too (503);
        # the second read finds no session at all (see below), so there is nothing to write.
        assert stock_reads == [503, 200]
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert records and all(r.exc_info is None and "full" in r.getMessage() for r in records)
    after = client.post("/cart/pear").get_json()  # room again
    if layer == "hardened":
        assert after["cart"] == ["apple", "pear"] and after["user"] == "alice"  # nothing was lost
    else:
        # Flask-Session's regenerate deletes the old session before the login's writes, which the full
        # store refused: stock's refused login logged the user out and emptied the cart.
        assert after["cart"] == ["pear"] and after["user"] is None


def test_a_login_refused_by_a_full_store_keeps_the_old_session(redis_client):
    """The commit script is refused whole: the old session is not deleted before the new one fails to be written."""
    client = make_app(redis_client).test_client()
    client.post("/cart/apple")  # an anonymous session with a cart
    redis_client.set("filler", b"x" * 2 * 1024 * 1024)
    with full(redis_client):
        assert client.post("/login", json={"user": "carol"}).status_code == 503
    assert client.get("/cart").get_json()["cart"] == ["apple"]
