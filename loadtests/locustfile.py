"""sessionproof's Locust users: latency, bounce and concurrency.

`locust` in the repository root reads locust.conf (this file, the local nginx).
The scenario (`--scenario NAME` or $SCENARIO, default mixed) picks which users
run, their weights and their pacing; see loadtests/scenarios/.

Every request is paced on a fixed intended-start schedule and recorded twice in
HdrHistograms: service time (from the actual send) and latency from the
intended start (coordinated omission corrected).
"""

from __future__ import annotations

import random
import time
import uuid
from typing import NamedTuple

import gevent
from gevent.pool import Pool
from locust import FastHttpUser, constant, task

from sessionproof import settings
from sessionproof.analysis.checker import SessionModel, Verdict, lost_updates
from sessionproof.analysis.history import operation_of, outcome_type
from sessionproof.load.loadrun import note_event, recorder
from sessionproof.load.pacing import Pacer, exchange_only, paced, server_timing_us

REQUEST_TIMEOUT_S = 10.0
COOKIE_NAME = settings.get_str("SESSION_COOKIE_NAME")
CART_RESET_AT = 40  # below the app's CART_MAX_ITEMS (50): start a fresh session before the cart is full


class Reply(NamedTuple):
    body: dict | None  # the JSON body of a 200, else None
    at_s: float  # when the response ended (Unix time), as in the timeline
    store: str | None  # X-Store-Node: "<host>:<port>" of the Redis node that acknowledged the session write


def failure_kind(response) -> str:
    if response.status_code:
        return str(response.status_code)
    error = response.error
    # geventhttpclient wraps a read timeout: RetriesExceeded(..., original=timed out).
    text = f"{type(error).__name__} {error} {getattr(error, 'original', '')}".lower() if error else ""
    return "timeout" if "timeout" in text or "timed out" in text else "connection"


class SessionUser(FastHttpUser):
    """geventhttpclient, not python-requests: a smaller per-request cost, so less of the generator lands in the
    latency (make bench compares the harness with wrk and hey)."""

    abstract = True
    network_timeout = REQUEST_TIMEOUT_S
    connection_timeout = REQUEST_TIMEOUT_S
    concurrency = 10  # connections per user: the concurrency users send several requests at once
    kind = ""
    wait_time = constant(0)  # the Pacer, not Locust, decides when the next request goes out
    rate_per_user_per_s = 2.0
    latency_mix: dict[str, float] = {}  # noqa: RUF012 - set per scenario by loadrun
    concurrent_requests = 5

    def on_start(self) -> None:
        self.pacer = Pacer(self.rate_per_user_per_s)
        self.uid = uuid.uuid4().hex[:12]
        self.logins = 0
        self.model = SessionModel(user=None, item_prefix=f"i{self.uid}")

    def call(self, method: str, path: str, name: str, slot_s: float | None = None, **kwargs) -> dict | None:
        """One paced request; its JSON body when it succeeded (200), else None."""
        return self.call_noted(method, path, name, slot_s, **kwargs).body

    def call_noted(self, method: str, path: str, name: str, slot_s: float | None = None, **kwargs) -> Reply:
        """One paced request: its JSON body (None unless 200), when it ended and which Redis node stored it.

        Session operations also go into the run's history (history.py): an invoke as the request
        is sent, then its outcome with what the answer said of the session."""
        f = operation_of(name)
        value = path.rsplit("/", 1)[1] if f == "add" else (kwargs.get("json") or {}).get("user")
        session = (self.session_cookie() or "")[:16] or None

        def send():
            if f:
                recorder.operation("invoke", f, self.uid, self.kind, session, value=value)
            return self._send(method, path, name, **kwargs)

        (response, body), timing = paced(self.pacer, send, sleep=gevent.sleep, slot_s=slot_s)
        timing = exchange_only(timing, getattr(response, "request_meta", {}).get("response_time"))
        at_s = time.time()  # one time for the timeline and the ledger, so the two can be matched
        ok = body is not None
        kind = "ok" if ok else (failure_kind(response) if response.status_code != 200 else "bad_body")
        # The app names the Redis node that acknowledged the session write; absent when none did.
        store = response.headers.get("X-Store-Node") if response.status_code else None
        server_us = server_timing_us(response.headers.get("Server-Timing")) if response.status_code else None
        recorder.record(
            name, timing.service_us, timing.intended_us, ok, at_s=at_s, kind=kind, store=store, server_us=server_us
        )
        if not ok:
            recorder.failure(kind)
        recorder.served(response.headers.get("X-Served-By") if response.status_code else None)
        if f:
            state = (
                {"user": body.get("user"), "cart": body.get("cart", []), "version": body.get("version", 0)}
                if ok
                else None
            )
            recorder.operation(
                outcome_type(response.status_code or 0, ok), f, self.uid, self.kind, session,
                value=state["cart"] if f == "read" and ok else value, **({"state": state} if ok else {}),
            )  # fmt: skip
        return Reply(body, at_s, store)

    def _send(self, method: str, path: str, name: str, **kwargs):
        body = None
        if method == "POST":
            # A well-behaved client: one key per logical request, so a retry cannot apply it twice.
            kwargs["headers"] = {"Idempotency-Key": str(uuid.uuid4()), **kwargs.get("headers", {})}
        with self.client.request(method, path, name=name, catch_response=True, **kwargs) as response:
            if response.status_code != 200:
                # Keep the underlying error (reset, refused, ...) in Locust's failure table.
                detail = f": {response.error!r}"[:200] if not response.status_code and response.error else ""
                response.failure(f"HTTP {failure_kind(response)}{detail}")
            else:
                try:
                    body = response.json()
                except ValueError:
                    response.failure("200 without a JSON body")
        return response, body

    def session_cookie(self) -> str | None:
        return next((c.value for c in self.client.cookiejar if c.name == COOKIE_NAME), None)

    def needs_fresh_session(self, extra_items: int = 0) -> bool:
        return self.model.user is None or len(self.model.cart) + extra_items >= CART_RESET_AT

    def add_item(self) -> tuple[str, dict | None]:
        """POST one new item and note its outcome in the ledger (acknowledged or indeterminate)."""
        item = self.model.next_item()
        reply = self.call_noted("POST", f"/cart/{item}", "POST /cart/[item]")
        if reply.body is None:
            self.ledger_uncertain(item)
        else:
            self.ledger_acked(item, reply)
        return item, reply.body

    def on_stop(self) -> None:
        self.close_ledger_entry("running at the end")

    def fresh_login(self) -> None:
        if self.model.user is not None:
            self.call("POST", "/logout", "POST /logout")
            self.entry = None  # ended on purpose: nothing to find at the final read
        else:
            self.close_ledger_entry("lost during the run")
        self.logins += 1
        body = self.call("POST", "/login", "POST /login", json={"user": f"{self.kind}-{self.uid}-{self.logins}"})
        if body is not None:
            self.model.logged_in(body)
            sid = self.session_cookie()
            self.entry = (
                {"user": body.get("user"), "sid": sid, "acked": [], "acked_meta": [], "uncertain": []} if sid else None
            )
        else:
            self.model.user = None

    # The ledger: every session and the writes acknowledged in it, read back after the run.
    entry: dict | None = None

    def ledger_acked(self, item: str, reply: Reply) -> None:
        if self.entry is not None and item in reply.body.get("cart", []):
            self.entry["acked"].append(item)
            # When and where it was acknowledged: a loss can then be pinned on a master and a moment.
            self.entry["acked_meta"].append([item, round(reply.at_s, 4), reply.store])

    def ledger_uncertain(self, item: str) -> None:
        if self.entry is not None:
            self.entry["uncertain"].append(item)

    def close_ledger_entry(self, how: str) -> None:
        if self.entry is not None and (self.entry["acked"] or self.entry["uncertain"]):
            recorder.ledger.append({**self.entry, "ended": how})
        self.entry = None

    def judge(self, verdict: Verdict, endpoint: str, body: dict) -> None:
        recorder.count("checks")
        if verdict.ok:
            return
        for mismatch in verdict.mismatches:
            recorder.count(mismatch)
        note_event(
            "mismatch",
            classes=sorted(set(verdict.mismatches)),
            detail=verdict.detail,
            endpoint=endpoint,
            user=self.model.user,
            served_by=body.get("servedBy"),
        )
        if {"sessions_lost", "foreign_sessions"} & set(verdict.mismatches):
            self.model.user = None  # start over with a new session on the next step


class LatencyUser(SessionUser):
    """Paced session reads and writes, and the no-session baseline GET /ping."""

    kind = "latency"

    @task
    def step(self) -> None:
        if self.needs_fresh_session():
            self.fresh_login()
            return
        mix = self.latency_mix or {"GET /cart": 0.4, "POST /cart/[item]": 0.2, "GET /ping": 0.4}
        choice = random.choices(list(mix), weights=list(mix.values()))[0]
        if choice == "GET /ping":
            self.call("GET", "/ping", "GET /ping")
        elif choice == "GET /cart":
            body = self.call("GET", "/cart", "GET /cart")
            if body is not None:
                self.model.cart = body.get("cart", [])
        else:
            _item, body = self.add_item()
            if body is not None:
                self.model.cart = body.get("cart", [])


class BounceUser(SessionUser):
    """Write, read back, check every answer against this user's model of its session."""

    kind = "bounce"

    @task
    def step(self) -> None:
        if self.needs_fresh_session():
            self.fresh_login()
            return
        item, body = self.add_item()
        if body is None:
            self.model.write_indeterminate(item)
        else:
            self.judge(self.model.observe_write(item, body), "POST /cart/[item]", body)
        if self.model.user is None:
            return
        body = self.call("GET", "/cart", "GET /cart")
        if body is not None:
            self.judge(self.model.observe_read(body), "GET /cart", body)


class ConcurrencyUser(SessionUser):
    """Several adds of one session in flight at once (many tabs); counts the lost updates."""

    kind = "concurrency"

    @task
    def step(self) -> None:
        if self.needs_fresh_session(extra_items=self.concurrent_requests - 1):
            self.fresh_login()
            return
        slot_s = self.pacer.take_slot()  # the whole burst shares one intended start
        items = [self.model.next_item() for _ in range(self.concurrent_requests)]
        pool = Pool(self.concurrent_requests)
        bodies = pool.map(
            lambda item: self.call("POST", f"/cart/{item}", "POST /cart/[item] (concurrent)", slot_s=slot_s), items
        )
        acknowledged = [item for item, body in zip(items, bodies, strict=True) if body is not None]
        body = self.call("GET", "/cart", "GET /cart")
        if body is None:
            return
        recorder.count("checks")
        lost = lost_updates(acknowledged, body.get("cart", []))
        if lost:
            recorder.count("lost_updates", len(lost))
            note_event("lost_update", lost=lost, acknowledged=len(acknowledged), user=self.model.user)
        self.model.cart = body.get("cart", [])
        if body.get("user") != self.model.user:
            self.model.user = None
