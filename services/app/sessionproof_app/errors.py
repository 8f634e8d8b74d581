"""Every error leaves the app as JSON; an unreachable or full store is a 503 with Retry-After."""

from __future__ import annotations

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError

from . import metrics
from .store import RedisError, is_store_full, is_store_unavailable, sentinels_unreachable


def error_response(status: int, code: str, message: str, **extra):
    body = {"error": code, "message": message, "servedBy": current_app.config["INSTANCE_ID"], **extra}
    response = jsonify(body)
    response.status_code = status
    if status in (502, 503):
        response.headers["Retry-After"] = str(current_app.config["RETRY_AFTER_S"])
    return response


def _store_error_response(error: BaseException):
    if is_store_full(error):
        metrics.STORE_FULL.inc()
        # Full (maxmemory with noeviction): a write is refused whole, reads still work. Not retried
        # inside the request: memory frees only as keys expire, so the client is told when to come back.
        return error_response(
            503,
            "store_full",
            "The session store is full and refused this write; nothing of it was stored. Reads still work. "
            "Retry later.",
        )
    if is_store_unavailable(error):
        # The hardened layer stops at once when this replica reaches no Sentinel (see session_layer).
        # 502, not 503: nginx re-sends a 502 to another replica and counts it against this one
        # (max_fails), which is what a cut-off replica deserves; a 503 (a store outage every replica
        # sees) is passed to the client as it is, so it cannot take every replica out of rotation.
        # Stock keeps its one answer.
        if current_app.session_interface.layer == "hardened" and sentinels_unreachable(error) is not None:
            metrics.STORE_UNAVAILABLE.labels(error="store_unreachable_from_replica").inc()
            return error_response(
                502,
                "store_unreachable_from_replica",
                "This replica cannot reach any Sentinel, so it cannot reach the session store; the request "
                "was not acknowledged. Send it to another replica (with the same Idempotency-Key), or retry shortly.",
            )
        metrics.STORE_UNAVAILABLE.labels(error="store_unavailable").inc()
        return error_response(503, "store_unavailable", "The session store is unreachable; retry shortly.")
    current_app.logger.error("unexpected Redis error: %r", error)
    return error_response(500, "store_error", "The session store answered with an error.")


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
