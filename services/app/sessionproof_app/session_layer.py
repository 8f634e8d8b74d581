"""The two session layers, both Flask-Session 0.8's Redis interface underneath; SESSION_LAYER picks one.

This module holds `stock` and what both share; hardened_layer.py holds `hardened`.
`stock` is Flask-Session as documented, plus sessionless probes, no write-back of
failed requests and the `X-Store-Node` header. `hardened` adds a retry budget,
compare-and-set commits, WAIT for every replica Sentinel could promote, touch without
rewrite and Idempotency-Key replays. Each property and why it is there: docs/design.md,
"Session layers".

Views must be deterministic in (request, session) and keep their other Redis
effects idempotent, because the hardened layer may run them more than once.
"""

from __future__ import annotations

from flask import Flask, Request, Response, request
from flask_session.redis import RedisSessionInterface

from . import settings, store

SESSIONLESS_PATHS = frozenset({"/ping", "/healthz", "/readyz", "/openapi.json", "/metrics"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
STORE_NODE_HEADER = "X-Store-Node"
LAYERS = settings.SESSION_LAYERS

_STORE_NODE = "sessionproof.store_node"


class StockSessionInterface(RedisSessionInterface):
    """Flask-Session 0.8 as documented, plus sessionless probes and no write-back of failed requests."""

    layer = "stock"

    def open_session(self, app: Flask, request: Request):
        store.forget_last_node()  # a new request: no node from this thread's previous one
        if request.path in SESSIONLESS_PATHS:
            return None  # Flask substitutes a NullSession and never saves it
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response: Response) -> None:
        # session is None when open_session itself failed (store unreachable).
        if session is None or response.status_code >= 500:
            return
        request.environ.pop(_STORE_NODE, None)
        super().save_session(app, session, response)
        # Set by _upsert_session/_delete_session once Redis acknowledged the write (nothing written: absent).
        set_store_node_header(response, request.environ.pop(_STORE_NODE, None))

    # Flask-Session's save writes through these two; each returns only once Redis replied OK.
    def _upsert_session(self, session_lifetime, session, store_id: str) -> None:
        store.forget_last_node()
        super()._upsert_session(session_lifetime, session, store_id)
        request.environ[_STORE_NODE] = store.last_node(self.client)

    def _delete_session(self, store_id: str) -> None:
        store.forget_last_node()
        super()._delete_session(store_id)
        request.environ[_STORE_NODE] = store.last_node(self.client)

    def store_key(self, sid: str) -> str:
        return self._get_store_id(sid)

    def run_request(self, app: Flask, dispatch):
        """Run the request once (`dispatch` is Flask's full_dispatch_request)."""
        return dispatch()


def set_store_node_header(response: Response, node: tuple[str, int] | None) -> None:
    if node is not None:
        response.headers[STORE_NODE_HEADER] = f"{node[0]}:{node[1]}"
