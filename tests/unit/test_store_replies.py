"""The store errors of test_store_errors.py, made for real on a redis-server of the test's own (lone_redis): a
script that keeps Redis busy, a snapshot that cannot be written, a master without its replicas, a stalled server,
an ACL and a password that do not fit. Every answer is JSON with Retry-After, never a 500, for both layers, and
nothing of the session is lost once the store serves again."""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time

import pytest
import redis
from prometheus_client import REGISTRY
from redis.backoff import NoBackoff
from redis.retry import Retry

from sessionproof.waiting import wait_until
from sessionproof_app import store
from unit.test_app import TEST_RETRY_BUDGET_S, make_app

pytestmark = pytest.mark.redis
LAYERS = ["hardened", "stock"]
COOKIE = "sp_session"
# What a session's client asks while the store is in trouble: reads, writes, a login, a logout, the probe.
REQUESTS = [
    ("GET", "/cart", None),
    ("POST", "/cart/pear", None),
    ("POST", "/login", {"user": "bob"}),
    ("POST", "/logout", None),
    ("GET", "/readyz", None),
]


@pytest.fixture
def app_of(lone_redis):
    """build(layer, **client_kwargs): the app of `layer` on lone_redis, its client retrying as connect_master's
    does (stock: REDIS_RETRIES with backoff; hardened: none, it retries whole requests), without Sentinel."""
    clients = []

    def build(layer: str, **client_kwargs):
        retries = 0 if layer == "hardened" else None
        client = redis.Redis(
            port=lone_redis["port"],
            socket_timeout=0.2,
            socket_connect_timeout=0.25,
            retry=store.make_retry({}, retries=retries),
            **client_kwargs,
        )
        clients.append(client)
        return make_app(client, layer=layer, env={"SESSION_WAIT_REPLICAS": "0"})  # no replica to wait for

    yield build
    for client in clients:
        client.close()


def logged_in(app):
    """A test client whose session holds alice with an apple."""
    client = app.test_client()
    assert client.post("/login", json={"user": "alice"}).status_code == 200
    assert client.post("/cart/apple").status_code == 200
    return client


def retries(reason: str) -> float:
    return REGISTRY.get_sample_value("sessionproof_store_retries_total", {"reason": reason}) or 0.0


def assert_every_answer_is(client, code: str) -> list[float]:
    """Each of REQUESTS answers 503 JSON `code` with Retry-After; returns how long each took (s)."""
    took = []
    for method, path, body in REQUESTS:
        started = time.monotonic()
        response = client.open(path, method=method, json=body)
        took.append(time.monotonic() - started)
        answer = f"{method} {path}: {response.status_code} {response.get_data(as_text=True)}"
        assert response.status_code == 503, answer
        assert response.is_json and response.get_json()["error"] == code, answer
        assert response.headers["Retry-After"] == "1", answer
    return took


def assert_session_intact(client) -> None:
    state = client.get("/cart").get_json()
    assert (state["user"], state["cart"]) == ("alice", ["apple"])


def busy_reply(admin: redis.Redis) -> bool:
    try:
        admin.ping()
    except redis.ResponseError as error:
        return str(error).startswith("BUSY")
    return False


def script_killed(admin: redis.Redis) -> bool:
    try:
        return admin.script_kill()
    except redis.ResponseError as error:
        if str(error).startswith("NOTBUSY"):  # no script runs (any more)
            return True
        raise


@contextlib.contextmanager
def busy_script(lone_redis):
    """A Lua script loops on the server from a second client until SCRIPT KILL (what Sentinel sends to a busy
    master): meanwhile Redis answers every other command BUSY, after busy-reply-threshold (10 ms here)."""
    admin = lone_redis["admin"]
    admin.config_set("busy-reply-threshold", 10)
    looper = redis.Redis(port=lone_redis["port"], socket_timeout=30)
    ended: list[BaseException] = []

    def loop():
        try:
            looper.eval("while true do end", 0)
        except redis.RedisError as error:
            ended.append(error)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        wait_until(lambda: busy_reply(admin), 10, "the looping script to make Redis answer BUSY")
        yield
    finally:
        wait_until(lambda: script_killed(admin), 10, "SCRIPT KILL to end the looping script")
        thread.join(timeout=10)
        looper.close()
    assert not thread.is_alive() and "killed" in str(ended[0]), ended


@pytest.mark.parametrize("layer", LAYERS)
def test_a_store_busy_with_a_script_answers_503_store_busy_never_500(lone_redis, app_of, layer):
    client = logged_in(app_of(layer))
    busy_before = retries("busy")
    with busy_script(lone_redis):
        took = assert_every_answer_is(client, "store_busy")
    if layer == "hardened":  # BUSY is retried within the budget: SCRIPT KILL or a failover may end it
        assert retries("busy") > busy_before
        assert min(took[:-1]) >= float(TEST_RETRY_BUDGET_S)  # the session requests spent it; /readyz does not retry
    else:
        assert retries("busy") == busy_before  # redis-py does not retry a reply
    assert_session_intact(client)


@contextlib.contextmanager
def snapshots_failing(lone_redis):
    """Redis cannot write its RDB snapshot (its folder is gone), so it refuses writes and PING with MISCONF, as a
    master does whose AOF disk is full ("MISCONF Errors writing to the AOF file: No space left on device", seen on
    a full tmpfs, which a test cannot mount)."""
    admin = lone_redis["admin"]
    admin.config_set("save", "3600 1")  # snapshots on: a failed one stops writes (stop-writes-on-bgsave-error yes)
    shutil.rmtree(lone_redis["dir"])  # the server's working folder: the snapshot's temp file cannot be created
    admin.bgsave()
    wait_until(lambda: admin.info("persistence")["rdb_last_bgsave_status"] == "err", 10, "the snapshot to fail")
    try:
        yield
    finally:
        admin.config_set("save", "")  # no snapshots, none failed: writes are taken again


@pytest.mark.parametrize("layer", LAYERS)
def test_a_store_that_cannot_persist_answers_503_store_cannot_persist(lone_redis, app_of, layer):
    client = logged_in(app_of(layer))
    misconf_before = retries("misconf")
    with snapshots_failing(lone_redis):
        with pytest.raises(redis.ResponseError, match=r"^MISCONF"):
            lone_redis["admin"].set("probe", "x")
        assert_every_answer_is(client, "store_cannot_persist")  # hardened reads too: GETEX is a write
    # Retried within the budget by the hardened layer: Sentinel takes a master refusing PING for down.
    assert (retries("misconf") > misconf_before) is (layer == "hardened")
    assert_session_intact(client)


@pytest.mark.parametrize("layer", LAYERS)
def test_a_master_without_its_replicas_refuses_reads_too_with_503(lone_redis, app_of, layer):
    """NOREPLICAS refuses writes; the hardened read is GETEX (a write), stock's read rewrites the session (SET)."""
    client = logged_in(app_of(layer))
    admin = lone_redis["admin"]
    noreplicas_before = retries("noreplicas")
    admin.config_set("min-replicas-to-write", 1)  # a lone server has none
    try:
        read = client.get("/cart")
        write = client.post("/cart/pear")
    finally:
        admin.config_set("min-replicas-to-write", 0)
    for response in (read, write):
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert response.get_json()["error"] == "store_unavailable"
    assert (retries("noreplicas") > noreplicas_before) is (layer == "hardened")
    assert_session_intact(client)


def stalled(probe: redis.Redis) -> bool:
    try:
        probe.ping()
    except redis.TimeoutError:
        return True
    return False


@pytest.mark.parametrize("layer", LAYERS)
def test_a_stalled_store_answers_503_store_unavailable(lone_redis, app_of, layer):
    """DEBUG SLEEP (as a paused or overloaded master): commands time out."""
    client = logged_in(app_of(layer))
    sleeper = redis.Redis(port=lone_redis["port"], socket_timeout=10)
    probe = redis.Redis(port=lone_redis["port"], socket_timeout=0.05, retry=Retry(NoBackoff(), 0))
    thread = threading.Thread(target=sleeper.execute_command, args=("DEBUG", "SLEEP", "2"), daemon=True)
    thread.start()
    try:
        wait_until(lambda: stalled(probe), 5, "DEBUG SLEEP to stall the server")
        response = client.get("/cart")
    finally:
        thread.join(timeout=10)
        sleeper.close()
        probe.close()
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json()["error"] == "store_unavailable"
    assert_session_intact(client)


@pytest.mark.parametrize("layer", LAYERS)
def test_an_acl_or_password_that_does_not_fit_answers_503_store_error_at_once(lone_redis, app_of, layer, caplog):
    admin = lone_redis["admin"]
    admin.acl_setuser("app", enabled=True, passwords=["+app-password"], keys=["*"], commands=["+@all"])
    app = app_of(layer, username="app", password="app-password")
    client = logged_in(app)
    admin.acl_setuser("app", commands=["-@write"])  # NOPERM for every write, GETEX included
    with caplog.at_level(logging.WARNING, logger=app.logger.name):
        read = client.get("/cart")
    assert read.status_code == 503 and read.headers["Retry-After"] == "1"
    assert read.get_json()["error"] == "store_error"
    (record,) = [r for r in caplog.records if r.name == app.logger.name]  # logged once, with the reply
    assert record.levelno == logging.ERROR and "NOPERM" in record.getMessage() and record.exc_info is None

    wrong = app_of(layer, username="app", password="not-the-password").test_client()  # WRONGPASS at connect
    wrong.set_cookie(COOKIE, client.get_cookie(COOKIE).value)  # the same session, read with the wrong password
    started = time.monotonic()
    answers = [wrong.get("/cart"), wrong.post("/cart/pear"), wrong.get("/readyz")]
    took_s = time.monotonic() - started
    for response in answers:
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert response.get_json()["error"] == "store_error"
    if layer == "hardened":  # not retried within the budget: no retry mends a password
        assert took_s < 3 * float(TEST_RETRY_BUDGET_S)
    admin.acl_setuser("app", commands=["+@all"])
    assert_session_intact(client)
