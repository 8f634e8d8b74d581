"""Every Redis error has its place in the HTTP contract, never a 500: each reply, as redis-py raises it (alone and
inside a pipeline), raised by a view of the real app, for both layers. No Redis is needed: the view raises it.
The same replies from a real redis-server: test_store_replies.py."""

from __future__ import annotations

import logging

import pytest
import redis
from prometheus_client import REGISTRY
from redis._parsers.base import BaseParser
from redis.exceptions import DataError, InvalidResponse, ResponseError
from redis.sentinel import MasterNotFoundError

from sessionproof_app import create_app, store

RETRY_AFTER_S = "1"
UNAVAILABLE = "sessionproof_store_unavailable_total"

# Redis's replies as Redis 7.0 words them (the probe, the Redis source), and where each belongs:
# (the reply, its error code for the client, whether the hardened layer retries it, its retry reason).
REPLIES = [
    ("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", "store_busy", "busy"),
    ("MISCONF Errors writing to the AOF file: No space left on device", "store_cannot_persist", "misconf"),
    (
        "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands "
        "that may modify the data set are disabled, because this instance is configured to report errors during "
        "writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for "
        "details about the RDB error.",
        "store_cannot_persist",
        "misconf",
    ),
    ("NOREPLICAS Not enough good replicas to write.", "store_unavailable", "noreplicas"),
    (
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "store_unavailable",
        "masterdown",
    ),
    ("LOADING Redis is loading the dataset in memory", "store_unavailable", "loading"),
    ("READONLY You can't write against a read only replica.", "store_unavailable", "readonly"),
    ("TRYAGAIN Multiple keys request during rehashing of slot", "store_unavailable", "tryagain"),
    ("ERR max number of clients reached", "store_unavailable", "connection"),
    ("OOM command not allowed when used memory > 'maxmemory'.", "store_full", None),
    ("NOAUTH Authentication required.", "store_error", None),
    ("WRONGPASS invalid username-password pair or user is disabled.", "store_error", None),
    ("ERR invalid password", "store_error", None),
    ("NOPERM this user has no permissions to run the 'getex' command", "store_error", None),
    ("EXECABORT Transaction discarded because of previous errors.", "store_error", None),
    ("WRONGTYPE Operation against a key holding the wrong kind of value", "store_error", None),
    ("ERR unknown command 'GETEX', with args beginning with: 't:session:x' 'EX' '1800' ", "store_error", None),
    (
        "ERR Error running script (call to f_0), @user_script:3: Script attempted to access nonexistent global",
        "store_error",
        None,
    ),
    ("ERR unknown command 'NOREPLICASX', with args beginning with: ", "store_error", None),  # not NOREPLICAS
    ("NEWCODE a reply this app has never heard of", "store_error", None),
]
RETRIED = {"store_unavailable", "store_busy", "store_cannot_persist"}


def from_reply(reply: str) -> redis.RedisError:
    """The exception redis-py raises for this error reply (its parser picks the class and strips known codes)."""
    return BaseParser.parse_error(reply)


def in_pipeline(reply: str) -> redis.RedisError:
    """As a pipeline raises it: "Command # 1 (EVAL ...) of pipeline caused error: <reply>" (ResponseErrors only)."""
    error = from_reply(reply)
    with redis.Redis(port=1) as client:  # never connects: annotating needs no server
        client.pipeline().annotate_exception(error, 1, ("EVAL", "#!lua\nreturn redis.call('GET', KEYS[1])", 1, "k"))
    return error


def cases():
    for reply, code, reason in REPLIES:
        name = reply.split(" ")[0] if not reply.startswith("ERR") else reply[:24].strip().replace(" ", "-")
        yield pytest.param(lambda reply=reply: from_reply(reply), code, reason, id=name)
        if isinstance(from_reply(reply), ResponseError):
            yield pytest.param(lambda reply=reply: in_pipeline(reply), code, reason, id=f"pipeline-{name}")
    # Errors Redis did not send as a reply.
    others = [
        (lambda: redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."), "connection"),
        (lambda: redis.TimeoutError("Timeout reading from socket"), "timeout"),  # DEBUG SLEEP, a paused master
        (lambda: store.WriteNotReplicated("WAIT: 0 of 2 replicas confirmed within 300 ms"), "not_replicated"),
        (lambda: MasterNotFoundError("No master found for 'sessionproof'"), "no_master"),
    ]
    for make, reason in others:
        yield pytest.param(make, "store_unavailable", reason, id=type(make()).__name__)
    yield pytest.param(lambda: InvalidResponse("Protocol Error: b'?'"), "store_error", None, id="InvalidResponse")
    yield pytest.param(lambda: DataError("Invalid input of type: 'NoneType'"), "store_error", None, id="DataError")


@pytest.mark.parametrize(("make_error", "code", "reason"), list(cases()))
def test_each_store_error_is_classified(make_error, code, reason):
    error = make_error()
    assert store.store_condition(error) == code
    assert store.is_store_unavailable(error) is (code in RETRIED)
    assert store.is_store_full(error) is (code == "store_full")
    if reason is not None:
        assert store.retry_reason(error) == reason


def raising_app(layer: str, make_error):
    """The real app (either layer) with GET /raise, whose every run raises `make_error()`. The request has no
    session cookie and changes no session, so nothing else touches the store (its client has no server)."""
    app = create_app(
        {"SESSION_REDIS": redis.Redis(port=1), "INSTANCE_ID": "test-app", "SESSION_NAMESPACE": "t"},
        env={"SESSION_LAYER": layer, "STORE_RETRY_BUDGET_S": "0.15", "REDIS_RETRY_BACKOFF_BASE_S": "0.001"},
    )
    app.runs = 0

    @app.get("/raise")
    def raise_store_error():
        app.runs += 1
        raise make_error()

    return app


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("layer", ["hardened", "stock"])
@pytest.mark.parametrize(("make_error", "code", "reason"), list(cases()))
def test_each_store_error_answers_json_with_retry_after_never_500(layer, make_error, code, reason, caplog):
    app = raising_app(layer, make_error)
    name, labels = ("sessionproof_store_full_total", {}) if code == "store_full" else (UNAVAILABLE, {"error": code})
    counted_before = sample(name, **labels)
    retries_before = sample("sessionproof_store_retries_total", reason=reason) if reason else 0.0
    with caplog.at_level(logging.WARNING, logger=app.logger.name):
        response = app.test_client().get("/raise")
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == RETRY_AFTER_S
    body = response.get_json()
    assert body["error"] == code and body["message"] and body["servedBy"] == "test-app"
    assert "Traceback" not in response.get_data(as_text=True)
    assert sample(name, **labels) == counted_before + 1
    # The hardened layer runs the request again only for what a retry (or Sentinel) can mend, under its reason.
    retried = layer == "hardened" and code in RETRIED
    assert (app.runs > 1) is retried
    if retried:
        assert sample("sessionproof_store_retries_total", reason=reason) == retries_before + app.runs - 1
    # One log line, with Redis's reply, without a traceback; an unexpected reply is an error.
    (record,) = [r for r in caplog.records if r.name == app.logger.name]
    assert record.exc_info is None
    assert record.levelno == (logging.ERROR if code == "store_error" else logging.WARNING)
    code_word = store.reply_code(make_error())
    if code_word and code_word != "ERR":
        assert code_word in record.getMessage()


def test_a_cut_off_hardened_replica_still_answers_502_at_once():
    """SentinelsUnreachable is an unavailable store, but a hardened replica sends it to nginx as a 502 to re-send."""
    app = raising_app("hardened", lambda: store.SentinelsUnreachable("No Sentinel answered for 'sessionproof'"))
    response = app.test_client().get("/raise")
    assert response.status_code == 502 and response.headers["Retry-After"] == RETRY_AFTER_S
    assert response.get_json()["error"] == "store_unreachable_from_replica" and app.runs == 1


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("BUSY Redis is busy running a script.", "BUSY"),
        ("Command # 2 (WAIT 1 300) of pipeline caused error: MISCONF Errors writing to the AOF file", "MISCONF"),
        # A command text that looks like a reply does not fool it: the code follows the first such prefix.
        ("Command # 1 (GET k) NOREPLICAS) of pipeline caused error: WRONGTYPE Operation", "WRONGTYPE"),
        ("Wrong number of response items from pipeline execution", None),
    ],
)
def test_the_reply_code_is_read_from_the_message_when_redis_py_keeps_it_there(message, code):
    assert store.reply_code(ResponseError(message)) == code


def test_a_reply_whose_code_redis_py_stripped_keeps_its_code_in_the_log_line():
    error = from_reply("NOPERM this user has no permissions to run the 'set' command")
    assert str(error) == "this user has no permissions to run the 'set' command"  # why describe() exists
    assert store.describe(error) == "NoPermissionError: NOPERM this user has no permissions to run the 'set' command"
