"""Every error leaves the app as JSON; every store error is a 503 (or 502) with Retry-After, never a 500."""

from __future__ import annotations

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError

from . import metrics, store
from .store import RedisError


def error_response(status: int, code: str, message: str, **extra):
    body = {"error": code, "message": message, "servedBy": current_app.config["INSTANCE_ID"], **extra}
    response = jsonify(body)
    response.status_code = status
    if status in (502, 503):
        response.headers["Retry-After"] = str(current_app.config["RETRY_AFTER_S"])
    return response


# Each store condition's answer (store.store_condition), all 503 with Retry-After. Not 502, not even store_error
# ("bad gateway" by the letter): an error reply is one every replica gets (credentials, ACL, a Redis version) or
# one of this request alone, so re-sending it to another replica (what nginx does with a 502, below) mends nothing
# and takes every replica out of rotation.
_STORE_ANSWERS = {
    store.STORE_UNAVAILABLE: "The session store is unreachable; retry shortly.",
    store.STORE_BUSY: "The session store is busy running a script and served nothing of this request; retry shortly.",
    store.STORE_CANNOT_PERSIST: "The session store cannot write to its disk and refused this request; nothing of it "
    "was stored. Retry shortly.",
    # Not retried inside the request: memory frees only as keys expire, so the client is told when to come back.
    store.STORE_FULL: "The session store is full and refused this write; nothing of it was stored. Reads still work. "
    "Retry later.",
    # Not a state of a live store (credentials, ACL, a bug): logged, not retried; no write of it was acknowledged.
    store.STORE_ERROR: "The session store answered with an error; the request was not acknowledged. Retry later.",
}


def _store_error_response(error: BaseException):
    condition = store.store_condition(error)
    if condition == store.STORE_FULL:
        metrics.STORE_FULL.inc()
        return error_response(503, condition, _STORE_ANSWERS[condition])
    # The hardened layer stops at once when this replica reaches no Sentinel (see session_layer).
    # 502, not 503: nginx re-sends a 502 to another replica and counts it against this one
    # (max_fails), which is what a cut-off replica deserves; a 503 (a store outage every replica
    # sees) is passed to the client as it is, so it cannot take every replica out of rotation.
    # Stock keeps its one answer.
    if (
        condition == store.STORE_UNAVAILABLE
        and current_app.session_interface.layer == "hardened"
        and store.sentinels_unreachable(error) is not None
    ):
        metrics.STORE_UNAVAILABLE.labels(error="store_unreachable_from_replica").inc()
        return error_response(
            502,
            "store_unreachable_from_replica",
            "This replica cannot reach any Sentinel, so it cannot reach the session store; the request "
            "was not acknowledged. Send it to another replica (with the same Idempotency-Key), or retry shortly.",
        )
    metrics.STORE_UNAVAILABLE.labels(error=condition).inc()
    return error_response(503, condition, _STORE_ANSWERS[condition])


def _handle_http_exception(error: HTTPException):
    code = (error.name or "error").lower().replace(" ", "_")
    return error_response(error.code or 500, code, error.description or error.name)


def _handle_internal_error(error: InternalServerError):
    # Flask-Session opens and saves the session outside view dispatch, so a
    # RedisError there reaches only this handler, wrapped as original_exception.
    original = getattr(error, "original_exception", None)
    if isinstance(original, RedisError):
        return _store_error_response(original)
    return error_response(500, "internal_error", "The request failed inside the app; see its log.")


def init_app(app: Flask) -> None:
    # No RedisError handler: a store error must leave the view, so that the hardened layer can
    # retry the request; once it is not retried, Flask wraps it in InternalServerError.
    app.register_error_handler(InternalServerError, _handle_internal_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
