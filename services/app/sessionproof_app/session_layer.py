"""Flask-Session's Redis interface, with the two things the harness needs around it.

- Paths without a session (`/ping`, `/healthz`, `/readyz`) never touch Redis,
  so `/ping` is an honest no-session baseline and the probes work while the
  store is down.
- A response that failed (5xx) does not write the session back: the request's
  change was not accepted, so it must not be stored.

Everything else is Flask-Session 0.8 as documented: one msgpack blob per
session, GET on open, SET EX on save.
"""

from __future__ import annotations

from flask import Flask, Request, Response
from flask_session.redis import RedisSessionInterface

SESSIONLESS_PATHS = frozenset({"/ping", "/healthz", "/readyz"})


class SessionproofRedisSessionInterface(RedisSessionInterface):
    def open_session(self, app: Flask, request: Request):
        if request.path in SESSIONLESS_PATHS:
            return None  # Flask substitutes a NullSession and never saves it
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response: Response) -> None:
        # session is None when open_session itself failed (store unreachable).
        if session is None or response.status_code >= 500:
            return
        super().save_session(app, session, response)

    def store_key(self, sid: str) -> str:
        return self._get_store_id(sid)
