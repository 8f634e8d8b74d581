"""The final read against a small real HTTP server: every session of the history read back into it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sessionproof.history import FINAL_READ_PROCESS
from sessionproof.history.checker import check
from sessionproof.history.files import history_path, operation, read_history, write_history
from sessionproof.load import final_read

COOKIE = "sp_session"


def serve(states: dict):
    """GET /cart answers states[sid]: a dict (200 with it as JSON) or an int (that status)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            sid = (self.headers.get("Cookie") or "").partition(f"{COOKIE}=")[2].split(";")[0]
            state = states.get(sid, {"user": None, "cart": [], "version": 0})
            status, body = (state, b"{}") if isinstance(state, int) else (200, json.dumps(state).encode())
            self.send_response(status)
            if status == 200:  # stock Flask-Session refreshes the cookie on every answer
                self.send_header("Set-Cookie", f"{COOKIE}={sid}; Path=/; HttpOnly")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def run_dir(tmp_path):
    t = iter(range(10, 10_000, 10))
    ops = []
    for process, user, sid, items in (("p", "u1", "s-kept", ["a", "b"]), ("q", "u2", "s-down", ["c"])):
        ops.append(operation("invoke", "login", process, "bounce", next(t), session=None, user=user))
        ops.append(operation("ok", "login", process, "bounce", next(t), session=sid, user=user, cart=[]))
        for n, item in enumerate(items, 1):
            ops.append(operation("invoke", "add", process, "bounce", next(t), session=sid, item=item, key=item))
            ops.append(
                operation(
                    "ok", "add", process, "bounce", next(t), session=sid, item=item, key=item, user=user, cart=items[:n]
                )
            )
    ops.append(operation("invoke", "logout", "p", "bounce", next(t), session="s-kept"))
    ops.append(operation("ok", "logout", "p", "bounce", next(t), session="s-kept"))
    write_history(history_path(tmp_path), ops)
    return tmp_path


def test_every_session_is_read_back_into_the_history_and_judged_there(run_dir, monkeypatch):
    monkeypatch.setattr(final_read, "FINAL_READ_TIMEOUT_S", 0.3)
    monkeypatch.setattr(final_read, "RETRY_INTERVAL_S", 0.1)
    server = serve({"s-kept": {"user": "u1", "cart": ["a", "b"]}, "s-down": 503})
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        result = final_read.read_back(run_dir, url, COOKIE, run_start_s=0.0, progress=lambda _: None)
    finally:
        server.shutdown()
        server.server_close()
    assert result == {"sessions": 2, "read": 1, "unread": 1}
    history = read_history(history_path(run_dir))
    reads = [op for op in history if op["process"] == FINAL_READ_PROCESS]
    assert {op["session"] for op in reads} == {"s-kept", "s-down"}
    assert {op["type"] for op in reads if op["session"] == "s-down"} == {"invoke", "info"}
    verdict = check(history)
    # s-kept was logged out, yet its final read shows it: a resurrection. s-down never answered: c is unread.
    assert verdict.violations == {"resurrections": 1}, verdict.examples
    assert verdict.figures["unread_writes"] == 1


def test_each_session_is_read_by_its_own_id_whatever_cookie_an_answer_set(run_dir):
    """A read must carry only the session it reads: a cookie an earlier answer set must not come along (it did,
    in a requests.Session, and the stock layer's final reads all read the first session's data)."""
    server = serve({"s-kept": {"user": "u1", "cart": ["a", "b"]}, "s-down": {"user": "u2", "cart": ["c"]}})
    try:
        final_read.read_back(run_dir, f"http://127.0.0.1:{server.server_port}", COOKIE, 0.0, progress=lambda _: None)
    finally:
        server.shutdown()
        server.server_close()
    reads = [op for op in read_history(history_path(run_dir)) if op["process"] == FINAL_READ_PROCESS]
    assert {op["session"]: op["user"] for op in reads if op["type"] == "ok"} == {"s-kept": "u1", "s-down": "u2"}
