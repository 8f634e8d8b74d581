"""The session contract (README, "The session contract"): login, cart, logout, logout-all, probes."""

from __future__ import annotations

import re
from importlib import resources

from flask import Blueprint, Flask, current_app, jsonify, request, session

from . import metrics
from .errors import error_response

bp = Blueprint("contract", __name__)

_NAME_CHARS = re.compile(r"[A-Za-z0-9_.\-]+")


def _valid_name(value: object, max_len: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= max_len and _NAME_CHARS.fullmatch(value) is not None


def _redis():
    return current_app.session_interface.client


def _session_key(sid: str) -> str:
    return current_app.session_interface.store_key(sid)


def _user_index_key(user: str) -> str:
    return f"{current_app.config['SESSION_NAMESPACE']}:user:{user}:sessions"


def _state(**extra):
    body = {
        "servedBy": current_app.config["INSTANCE_ID"],
        "user": session.get("user"),
        "cart": list(session.get("cart", [])),
        "version": session.get("version", 0),
    }
    body.update(extra)
    return jsonify(body)


def _clock() -> float:
    return current_app.config["CLOCK"]()


@bp.before_app_request
def _end_sessions_past_absolute_lifetime():
    if request.path in current_app.config["SESSIONLESS_PATHS"]:
        return None
    created_at = session.get("created_at")
    if created_at is not None and _clock() - created_at > current_app.config["SESSION_ABSOLUTE_LIFETIME_S"]:
        user = session.get("user")
        if user:
            _redis().srem(_user_index_key(user), session.sid)
        session.clear()  # cleared + modified: Flask-Session deletes it and the cookie
    return None


def _begin_write() -> None:
    session.setdefault("created_at", _clock())
    session["version"] = session.get("version", 0) + 1


@bp.post("/login")
def login():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error_response(400, "invalid_json", 'Send a JSON object like {"user": "alice"}.')
    user = body.get("user")
    max_len = current_app.config["USER_MAX_LEN"]
    if not _valid_name(user, max_len):
        return error_response(400, "invalid_user", f"user must be 1-{max_len} characters of A-Z a-z 0-9 _ . -")
    previous_user = session.get("user")
    if previous_user:
        _redis().srem(_user_index_key(previous_user), session.sid)
    # Fixation defence: the session gets a new id; the anonymous cart moves along.
    current_app.session_interface.regenerate(session)
    if previous_user and previous_user != user:
        session.clear()
    session["user"] = user
    session["created_at"] = _clock()
    session.setdefault("cart", [])
    session["version"] = session.get("version", 0) + 1
    index = _user_index_key(user)
    pipe = _redis().pipeline(transaction=True)
    pipe.sadd(index, session.sid)
    pipe.expire(index, current_app.config["SESSION_ABSOLUTE_LIFETIME_S"])
    pipe.execute()
    return _state()


@bp.post("/cart/<item>")
def add_to_cart(item: str):
    max_len = current_app.config["ITEM_MAX_LEN"]
    if not _valid_name(item, max_len):
        return error_response(400, "invalid_item", f"item must be 1-{max_len} characters of A-Z a-z 0-9 _ . -")
    cart = list(session.get("cart", []))
    max_items = current_app.config["CART_MAX_ITEMS"]
    if len(cart) >= max_items:
        return error_response(409, "cart_full", f"the cart already holds {max_items} items (CART_MAX_ITEMS)")
    cart.append(item)
    _begin_write()
    session["cart"] = cart
    return _state()


@bp.get("/cart")
def read_cart():
    return _state()


@bp.post("/logout")
def logout():
    user = session.get("user")
    if user:
        _redis().srem(_user_index_key(user), session.sid)
    session.clear()
    return jsonify({"servedBy": current_app.config["INSTANCE_ID"], "loggedOut": True})


@bp.post("/logout-all")
def logout_all():
    user = session.get("user")
    if not user:
        return error_response(401, "not_logged_in", "POST /login first; logout-all ends the sessions of a user.")
    index = _user_index_key(user)
    client = _redis()
    others = {sid.decode() if isinstance(sid, bytes) else sid for sid in client.smembers(index)} - {session.sid}
    pipe = client.pipeline(transaction=True)
    if others:
        pipe.delete(*(_session_key(sid) for sid in others))
    pipe.delete(index)
    pipe.execute()
    session.clear()  # this session is deleted by the session layer, like any logout
    return jsonify({"servedBy": current_app.config["INSTANCE_ID"], "loggedOut": True, "sessionsEnded": len(others) + 1})


@bp.get("/ping")
def ping():
    return jsonify({"servedBy": current_app.config["INSTANCE_ID"], "pong": True})


@bp.get("/healthz")
def healthz():
    return jsonify({"servedBy": current_app.config["INSTANCE_ID"], "status": "alive"})


_OPENAPI = resources.files(__package__).joinpath("openapi.json").read_bytes()


@bp.get("/openapi.json")
def openapi():
    """The session contract as OpenAPI 3.0 (kept in openapi.json; `make test` fuzzes the live stack with it)."""
    return current_app.response_class(_OPENAPI, mimetype="application/json")


@bp.get("/metrics")
def prometheus_metrics():
    """This replica's counters and latency histogram for Prometheus (nginx does not pass /metrics on)."""
    body, content_type = metrics.exposition()
    return current_app.response_class(body, content_type=content_type)


@bp.get("/readyz")
def readyz():
    _redis().ping()  # a RedisError becomes 503 with Retry-After
    return jsonify({"servedBy": current_app.config["INSTANCE_ID"], "status": "ready"})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.after_request
    def _served_by(response):
        response.headers["X-Served-By"] = app.config["INSTANCE_ID"]
        return response
