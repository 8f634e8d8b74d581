"""sessionproof's reference app: Flask + Flask-Session on Redis through Sentinel."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask, request

from . import errors, metrics, settings, store, views
from .hardened_layer import HardenedSessionInterface
from .session_layer import LAYERS, REPLAYED_HEADER, SESSIONLESS_PATHS, STORE_NODE_HEADER, StockSessionInterface


def config_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "INSTANCE_ID": settings.get_str("INSTANCE_ID", env),
        "SESSION_NAMESPACE": settings.get_str("SESSION_NAMESPACE", env),
        "SESSION_IDLE_TTL_S": settings.get_int("SESSION_IDLE_TTL_S", env, minimum=1),
        "SESSION_ABSOLUTE_LIFETIME_S": settings.get_int("SESSION_ABSOLUTE_LIFETIME_S", env, minimum=1),
        "SESSION_COOKIE_NAME": settings.get_str("SESSION_COOKIE_NAME", env),
        "SESSION_COOKIE_SECURE": settings.get_bool("SESSION_COOKIE_SECURE", env),
        "RETRY_AFTER_S": settings.get_int("RETRY_AFTER_S", env, minimum=1),
        "CART_MAX_ITEMS": settings.get_int("CART_MAX_ITEMS", env, minimum=1),
        "ITEM_MAX_LEN": settings.get_int("ITEM_MAX_LEN", env, minimum=1),
        "USER_MAX_LEN": settings.get_int("USER_MAX_LEN", env, minimum=1),
        "MAX_CONTENT_LENGTH": settings.get_int("REQUEST_MAX_BYTES", env, minimum=64),
        "SESSION_LAYER": settings.get_choice("SESSION_LAYER", LAYERS, env),
        "REQUEST_LOG": settings.get_choice("REQUEST_LOG", ("json", "off"), env) == "json",
    }


SERVER_TIMING_HEADER = "Server-Timing"
_STARTED_NS = "sessionproof.started_ns"


class SessionproofFlask(Flask):
    def wsgi_app(self, environ, start_response):
        environ[_STARTED_NS] = time.perf_counter_ns()
        store.reset_store_time()
        metrics.reset_request()
        return super().wsgi_app(environ, start_response)

    def process_response(self, response):
        response = super().process_response(response)  # after_request and the session's save included
        started_ns = request.environ.get(_STARTED_NS)
        if started_ns is None or request.path == "/metrics":
            return response
        app_ms = (time.perf_counter_ns() - started_ns) / 1e6
        store_ms = store.store_time_ns() / 1e6
        # The W3C Server-Timing header: the app's own time and the part of it spent waiting on Redis, in ms.
        response.headers[SERVER_TIMING_HEADER] = f"app;dur={app_ms:.3f}, store;dur={store_ms:.3f}"
        rule = request.url_rule.rule if request.url_rule is not None else None
        endpoint = metrics.endpoint_label(request.method, rule)
        metrics.observe(endpoint, response.status_code, app_ms / 1e3)
        if self.config["REQUEST_LOG"]:
            metrics.log_request(
                {
                    "request_id": request.headers.get("X-Request-ID"),
                    "replica": self.config["INSTANCE_ID"],
                    "method": request.method,
                    "endpoint": endpoint,
                    "status": response.status_code,
                    "duration_ms": round(app_ms, 3),
                    "store_ms": round(store_ms, 3),
                    "retries": metrics.request_retries(),
                    "replayed": response.headers.get(REPLAYED_HEADER) == "true",
                    "store_node": response.headers.get(STORE_NODE_HEADER),
                }
            )
        return response

    def full_dispatch_request(self):
        # The hardened layer runs a request again after a session conflict or an unavailable store.
        return self.session_interface.run_request(self, super().full_dispatch_request)

    def log_exception(self, exc_info) -> None:
        # Every store error is answered (errors.py): one line each, with Redis's reply, no traceback.
        error = exc_info[1]
        if not isinstance(error, store.RedisError):
            super().log_exception(exc_info)
            return
        condition = store.store_condition(error)
        if condition == store.STORE_ERROR:  # not a state of a live store: credentials, ACL, a bug
            self.logger.error("session store answered with an error (%s): %s", condition, store.describe(error))
        elif condition == store.STORE_FULL:
            self.logger.warning("session store full, write refused: %s", store.describe(error))
        elif store.sentinels_unreachable(error) is not None:
            self.logger.warning("session store unreachable from this replica: %s", error)
        else:
            self.logger.warning("session store unavailable (%s): %s", condition, store.describe(error))


def _wait_replicas(env: Mapping[str, str] | None) -> int | None:
    """SESSION_WAIT_REPLICAS: None for `all` (every replica online or promotable), else the number."""
    if settings.get_str("SESSION_WAIT_REPLICAS", env).lower() == "all":
        return None
    return settings.get_int("SESSION_WAIT_REPLICAS", env, minimum=0)


def create_app(test_config: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Flask:
    """Defaults, then the environment, then `test_config` (which may pass SESSION_REDIS)."""
    app = SessionproofFlask(__name__)
    app.config.update(config_from_env(env))
    app.config.update(
        CLOCK=time.time,
        SESSIONLESS_PATHS=SESSIONLESS_PATHS,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # A RedisError must reach the InternalServerError handler, also under test.
        PROPAGATE_EXCEPTIONS=False,
    )
    if test_config:
        app.config.update(test_config)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=app.config["SESSION_IDLE_TTL_S"])

    layer = app.config["SESSION_LAYER"]
    # The hardened layer retries whole requests within its budget, so its client does not retry commands.
    client = app.config.get("SESSION_REDIS") or store.connect_master(env, retries=0 if layer == "hardened" else None)
    common = {
        "client": client,
        "key_prefix": f"{app.config['SESSION_NAMESPACE']}:session:",
        "permanent": True,
    }
    if layer == "stock":
        app.session_interface = StockSessionInterface(app, **common)
    else:
        app.session_interface = HardenedSessionInterface(
            app,
            retry_budget_s=settings.get_float("STORE_RETRY_BUDGET_S", env),
            backoff=store.make_backoff(env),
            wait_replicas=_wait_replicas(env),
            wait_timeout_ms=settings.get_int("SESSION_WAIT_TIMEOUT_MS", env, minimum=1),
            wait_aof=settings.get_bool("SESSION_WAIT_AOF", env),
            idempotency_ttl_s=settings.get_int("IDEMPOTENCY_TTL_S", env, minimum=1),
            max_conflict_retries=settings.get_int("SESSION_CONFLICT_RETRIES", env, minimum=0),
            namespace=app.config["SESSION_NAMESPACE"],
            **common,
        )
    errors.init_app(app)
    views.init_app(app)
    return app
