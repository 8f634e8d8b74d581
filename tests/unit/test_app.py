"""The app against a real redis-server (no Sentinel): the session contract and its error paths."""

from __future__ import annotations

import pytest
import redis

from sessionproof_app import create_app
from sessionproof_app.session_layer import STORE_NODE_HEADER

pytestmark = pytest.mark.redis
NAMESPACE = "t"


class FakeClock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


# A short budget keeps the unreachable-store tests quick; the stack uses STORE_RETRY_BUDGET_S's default.
TEST_RETRY_BUDGET_S = "0.3"


def make_app(client, clock=None, layer="hardened", env=None, **overrides):
    config = {"SESSION_REDIS": client, "INSTANCE_ID": "test-app", "SESSION_NAMESPACE": NAMESPACE}
    if clock is not None:
        config["CLOCK"] = clock
    config.update(overrides)
    env = {"SESSION_LAYER": layer, "STORE_RETRY_BUDGET_S": TEST_RETRY_BUDGET_S, **(env or {})}
    return create_app(config, env=env)


@pytest.fixture(params=["hardened", "stock"])
def layer(request):
    return request.param


@pytest.fixture
def app(redis_client, clock, layer):
    return make_app(redis_client, clock, layer)


@pytest.fixture
def client(app):
    return app.test_client()


def session_keys(redis_client) -> list[bytes]:
    return sorted(redis_client.keys(f"{NAMESPACE}:session:*"))


def cookie(client) -> str | None:
    found = client.get_cookie("sp_session")
    return found.value if found else None


def test_added_items_are_kept_and_each_write_bumps_the_version(client, redis_client):
    first = client.post("/cart/apple").get_json()
    second = client.post("/cart/pear").get_json()
    assert first["cart"] == ["apple"] and first["version"] == 1
    assert second["cart"] == ["apple", "pear"] and second["version"] == 2
    assert client.get("/cart").get_json()["cart"] == ["apple", "pear"]
    (key,) = session_keys(redis_client)
    assert 0 < redis_client.ttl(key) <= 1800


def test_reading_without_a_session_creates_none(client, redis_client):
    response = client.get("/cart")
    assert response.get_json() == {"servedBy": "test-app", "user": None, "cart": [], "version": 0}
    assert "Set-Cookie" not in response.headers
    assert session_keys(redis_client) == []


def test_every_response_names_the_replica(client):
    for response in (client.get("/ping"), client.get("/cart"), client.post("/cart/no%20spaces"), client.get("/nope")):
        assert response.headers["X-Served-By"] == "test-app"
        assert response.get_json()["servedBy"] == "test-app"


def test_a_response_names_the_node_that_acknowledged_its_session_write(redis_client, redis_server, layer):
    by_ip = redis.Redis(host="127.0.0.1", port=redis_server["port"], socket_timeout=1)
    try:
        client = make_app(by_ip, layer=layer).test_client()
        # Without a session nothing is written: neither a read nor a refused (400) write.
        assert STORE_NODE_HEADER not in client.get("/cart").headers
        assert STORE_NODE_HEADER not in client.post("/cart/no%20spaces").headers
        written = client.post("/cart/apple")
        assert written.status_code == 200
        assert written.headers[STORE_NODE_HEADER] == f"127.0.0.1:{redis_server['port']}"
        assert STORE_NODE_HEADER not in client.get("/ping").headers
        read = client.get("/cart")
        # Hardened does not rewrite an unchanged session; stock sets it again on every request.
        assert (STORE_NODE_HEADER in read.headers) is (layer == "stock")
        assert client.post("/logout").headers[STORE_NODE_HEADER] == f"127.0.0.1:{redis_server['port']}"
    finally:
        by_ip.close()


def test_login_rotates_the_session_id_and_keeps_the_anonymous_cart(client, redis_client):
    client.post("/cart/apple")
    anonymous_sid = cookie(client)
    body = client.post("/login", json={"user": "alice"}).get_json()
    assert body["user"] == "alice" and body["cart"] == ["apple"] and body["version"] == 2
    assert cookie(client) != anonymous_sid
    assert session_keys(redis_client) == [f"{NAMESPACE}:session:{cookie(client)}".encode()]
    assert redis_client.smembers(f"{NAMESPACE}:user:alice:sessions") == {cookie(client).encode()}


def test_login_as_another_user_starts_from_an_empty_cart(client):
    client.post("/login", json={"user": "alice"})
    client.post("/cart/apple")
    body = client.post("/login", json={"user": "bob"}).get_json()
    assert body["user"] == "bob" and body["cart"] == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"data": "not json", "content_type": "application/json"}, "invalid_json"),
        ({"json": ["alice"]}, "invalid_json"),
        ({"json": {}}, "invalid_user"),
        ({"json": {"user": ""}}, "invalid_user"),
        ({"json": {"user": "a" * 65}}, "invalid_user"),
        ({"json": {"user": "al ice"}}, "invalid_user"),
        ({"json": {"user": 42}}, "invalid_user"),
    ],
)
def test_bad_login_input_gets_a_400_json_error(client, kwargs, error):
    response = client.post("/login", **kwargs)
    assert response.status_code == 400
    assert response.get_json()["error"] == error


@pytest.mark.parametrize("item", ["a" * 65, "semi;colon", "%C3%A9t%C3%A9", "a%00b"])
def test_bad_item_names_get_a_400_json_error(client, item, redis_client):
    response = client.post(f"/cart/{item}")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_item"
    assert session_keys(redis_client) == []


def test_a_full_cart_refuses_more_items_with_409(redis_client, layer):
    client = make_app(redis_client, layer=layer, CART_MAX_ITEMS=2).test_client()
    client.post("/cart/a")
    client.post("/cart/b")
    response = client.post("/cart/c")
    assert response.status_code == 409
    assert response.get_json()["error"] == "cart_full"
    assert client.get("/cart").get_json() == {"servedBy": "test-app", "user": None, "cart": ["a", "b"], "version": 2}


def test_a_too_large_body_gets_a_413_json_error(client):
    response = client.post("/login", data="x" * 5000, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_entity_too_large"


def test_unknown_paths_and_methods_get_json_errors(client):
    assert client.get("/nope").get_json()["error"] == "not_found"
    response = client.delete("/cart")
    assert response.status_code == 405 and response.get_json()["error"] == "method_not_allowed"


def test_logout_deletes_the_session(client, redis_client):
    client.post("/login", json={"user": "alice"})
    client.post("/cart/apple")
    assert client.post("/logout").get_json()["loggedOut"] is True
    assert session_keys(redis_client) == []
    assert redis_client.smembers(f"{NAMESPACE}:user:alice:sessions") == set()
    assert client.get("/cart").get_json()["cart"] == []


def test_logout_all_ends_every_session_of_that_user_only(app, redis_client):
    laptop, phone, other = app.test_client(), app.test_client(), app.test_client()
    laptop.post("/login", json={"user": "alice"})
    phone.post("/login", json={"user": "alice"})
    other.post("/login", json={"user": "bob"})
    for c in (laptop, phone, other):
        c.post("/cart/apple")
    body = phone.post("/logout-all").get_json()
    assert body["sessionsEnded"] == 2
    assert laptop.get("/cart").get_json()["user"] is None
    assert phone.get("/cart").get_json()["user"] is None
    assert other.get("/cart").get_json() == {"servedBy": "test-app", "user": "bob", "cart": ["apple"], "version": 2}
    assert len(session_keys(redis_client)) == 1


def test_logout_all_needs_a_logged_in_session(client):
    response = client.post("/logout-all")
    assert response.status_code == 401 and response.get_json()["error"] == "not_logged_in"


def test_a_session_ends_at_its_absolute_lifetime_however_active(redis_client, clock, layer):
    client = make_app(redis_client, clock, layer, SESSION_ABSOLUTE_LIFETIME_S=100).test_client()
    client.post("/login", json={"user": "alice"})
    clock.now += 60
    assert client.post("/cart/apple").get_json()["user"] == "alice"
    clock.now += 60
    assert client.get("/cart").get_json() == {"servedBy": "test-app", "user": None, "cart": [], "version": 0}
    assert session_keys(redis_client) == []
    assert redis_client.smembers(f"{NAMESPACE}:user:alice:sessions") == set()


def test_the_cookie_is_httponly_lax_and_secure_when_configured(redis_client):
    for secure in (True, False):
        client = make_app(redis_client, SESSION_COOKIE_SECURE=secure).test_client()
        header = client.post("/cart/apple").headers["Set-Cookie"]
        assert "HttpOnly" in header and "SameSite=Lax" in header
        assert ("Secure" in header) is secure


def test_hardened_reads_send_no_cookie_because_it_lasts_the_absolute_lifetime(redis_client, clock):
    from email.utils import parsedate_to_datetime

    client = make_app(redis_client, clock).test_client()
    written = client.post("/cart/apple")
    expires = parsedate_to_datetime(written.headers["Set-Cookie"].split("Expires=")[1].split(";")[0])
    assert expires.timestamp() == clock.now + 43200  # created_at + SESSION_ABSOLUTE_LIFETIME_S's default
    clock.now += 600
    read = client.get("/cart")
    assert read.get_json()["cart"] == ["apple"]
    assert "Set-Cookie" not in read.headers and "Cookie" in read.headers["Vary"]
    (key,) = session_keys(redis_client)
    assert redis_client.ttl(key) > 1790  # the read slid the idle TTL in Redis (GETEX), where it is enforced


def test_the_cookie_is_secure_by_default():
    from sessionproof_app import config_from_env

    assert config_from_env({})["SESSION_COOKIE_SECURE"] is True


def test_probes_and_ping_do_not_touch_the_session_store(client, redis_client):
    client.post("/cart/apple")
    before = redis_client.info("stats")["total_commands_processed"]
    for path in ("/ping", "/healthz"):
        assert client.get(path).status_code == 200
    after = redis_client.info("stats")["total_commands_processed"]
    assert after - before == 1  # the INFO call itself


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/cart"), ("post", "/cart/apple"), ("post", "/logout"), ("get", "/readyz")],
)
def test_an_unreachable_store_gets_503_json_with_retry_after(unreachable_store, method, path, layer):
    client = make_app(unreachable_store, layer=layer, RETRY_AFTER_S=2).test_client()
    client.set_cookie("sp_session", "some-session-id")
    response = getattr(client, method)(path)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"
    body = response.get_json()
    assert body["error"] == "store_unavailable"
    assert "Traceback" not in response.get_data(as_text=True)
    assert STORE_NODE_HEADER not in response.headers


def test_an_unreachable_store_fails_a_login_with_503(unreachable_store, layer):
    client = make_app(unreachable_store, layer=layer).test_client()
    response = client.post("/login", json={"user": "alice"})
    assert response.status_code == 503
    assert response.get_json()["error"] == "store_unavailable"


def test_liveness_and_ping_answer_while_the_store_is_unreachable(unreachable_store, layer):
    client = make_app(unreachable_store, layer=layer).test_client()
    client.set_cookie("sp_session", "some-session-id")
    assert client.get("/healthz").status_code == 200
    assert client.get("/ping").get_json()["pong"] is True


def test_every_response_says_the_apps_time_and_its_store_time_in_server_timing(client):
    import re

    for response in (client.get("/ping"), client.post("/cart/apple"), client.get("/cart"), client.get("/nowhere")):
        timing = response.headers["Server-Timing"]
        match = re.fullmatch(r"app;dur=(\d+\.\d{3}), store;dur=(\d+\.\d{3})", timing)
        assert match, timing
        app_ms, store_ms = float(match[1]), float(match[2])
        assert 0 < app_ms < 5000 and 0 <= store_ms <= app_ms
