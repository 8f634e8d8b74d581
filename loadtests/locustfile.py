"""sessionproof's Locust users: latency, bounce and concurrency.

`locust` in the repository root reads locust.conf (this file, the local nginx).
The scenario (`--scenario NAME` or $SCENARIO, default mixed) picks which users
run, their weights and their pacing; see loadtests/scenarios/.

Every request is paced on a fixed intended-start schedule and recorded twice in
HdrHistograms: service time (from the actual send) and latency from the
intended start (coordinated omission corrected). Every session operation also
goes into the run's history (scripts/sessionproof/history/): the users judge
nothing themselves; after the run, one checker judges the history.
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
from sessionproof.load.loadrun import recorder
from sessionproof.load.pacing import Pacer, exchange_only, paced, server_timing_us

REQUEST_TIMEOUT_S = 10.0
COOKIE_NAME = settings.get_str("SESSION_COOKIE_NAME")
CART_RESET_AT = 40  # below the app's CART_MAX_ITEMS (50): start a fresh session before the cart is full
# A careful client re-sends a write whose outcome it does not know (a 5xx, a timeout) with the same
# Idempotency-Key; this share of such writes is re-sent once, so duplicate protection is exercised.
RESEND_SHARE = 0.5
# Every this many logins, the user also logs in from a second device and later ends both with logout-all.
SECOND_DEVICE_EVERY = 3


class Reply(NamedTuple):
    body: dict | None  # the JSON body of a 200, else None
    type: str  # the history's completion: ok, fail (a 4xx: it did not happen) or info (unknown)


def failure_kind(response) -> str:
    if response.status_code:
        return str(response.status_code)
    error = response.error
    # geventhttpclient wraps a read timeout: RetriesExceeded(..., original=timed out).
    text = f"{type(error).__name__} {error} {getattr(error, 'original', '')}".lower() if error else ""
    return "timeout" if "timeout" in text or "timed out" in text else "connection"


def completion_type(status: int, ok: bool) -> str:
    """ok (200 with a body), fail (4xx: refused, so it did not happen) or info (anything else: unknown)."""
    if ok:
        return "ok"
    return "fail" if 400 <= status < 500 else "info"


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
    catch_up_factor: float | None = None

    def on_start(self) -> None:
        self.pacer = Pacer(self.rate_per_user_per_s, catch_up_factor=self.catch_up_factor)
        self.uid = uuid.uuid4().hex[:12]
        self.logins = 0
        self.written = 0
        self.user: str | None = None  # logged in as, or None
        self.cart_size = 0  # items in the cart, as the last answer said
        self.second_sid: str | None = None  # the session of a second device, ended by the next logout-all

    # ------------------------------------------------------------ requests
    def call(self, method: str, path: str, name: str, f: str | None = None, **options) -> Reply:
        """One paced request; a session operation (f) also goes into the history, an invoke as it is sent and
        its completion with what the answer said. Options: process (default the user), sid (send this session
        id instead of the cookie jar's), slot_s (a shared intended start), json, and the history's item/key/user."""
        process = options.pop("process", self.uid)
        sid = options.pop("sid", None)
        slot_s = options.pop("slot_s", None)
        fields = {k: options.pop(k) for k in ("item", "key", "user") if k in options}
        headers = {}
        if method == "POST":  # one key per logical request: a re-send reuses it, so it cannot apply twice
            headers["Idempotency-Key"] = fields.get("key") or str(uuid.uuid4())
        if sid is not None:  # an explicit Cookie header wins over the jar's
            headers["Cookie"] = f"{COOKIE_NAME}={sid}"
        session = sid if sid is not None else self.session_cookie()

        def send():
            if f:
                recorder.operation("invoke", f, process, self.kind, session=session, **fields)
            return self._send(method, path, name, headers=headers, **options)

        (response, body), timing = paced(self.pacer, send, sleep=gevent.sleep, slot_s=slot_s)
        timing = exchange_only(timing, getattr(response, "request_meta", {}).get("response_time"))
        ok = body is not None
        kind = "ok" if ok else (failure_kind(response) if response.status_code != 200 else "bad_body")
        # The app names the Redis node that acknowledged the session write; absent when none did.
        store = response.headers.get("X-Store-Node") if response.status_code else None
        server_us = server_timing_us(response.headers.get("Server-Timing")) if response.status_code else None
        recorder.record(
            name, timing.service_us, timing.intended_us, ok, at_s=time.time(), kind=kind, store=store,
            server_us=server_us,
        )  # fmt: skip
        if not ok:
            recorder.failure(kind)
        recorder.served(response.headers.get("X-Served-By") if response.status_code else None)
        type_ = completion_type(response.status_code or 0, ok)
        if f:
            self._complete(f, type_, process, session, fields, body, store, kind, from_jar=sid is None)
        return Reply(body, type_)

    def _complete(self, f, type_, process, session, fields, body, store, kind, from_jar) -> None:
        answer = {}
        if type_ == "ok":
            if "cart" in body:
                answer = {"user": body.get("user"), "cart": body.get("cart", [])}
                # The session the answer left the client in: a login's new one, or a fresh session the server
                # gave instead of one it no longer had (stock Flask-Session does, for a write): the answer's
                # state is that session's, and the history must say so.
                if from_jar and self.session_cookie():
                    session = self.session_cookie()
            if f in ("login", "add"):
                answer["store"] = store
            if f == "logout_all":
                answer["ended"] = body.get("sessionsEnded")
        else:
            answer["error"] = kind
        recorder.operation(type_, f, process, self.kind, session=session, **{**fields, **answer})

    def _send(self, method: str, path: str, name: str, **kwargs):
        body = None
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

    # ----------------------------------------------------------- sessions
    def needs_fresh_session(self, extra_items: int = 0) -> bool:
        return self.user is None or self.cart_size + extra_items >= CART_RESET_AT

    def next_item(self) -> str:
        self.written += 1
        return f"i{self.uid}-{self.written}"

    def seen(self, reply: Reply) -> None:
        """What an answer says of the session: still logged in, and how full the cart is."""
        if reply.body is not None and "cart" in reply.body:
            self.cart_size = len(reply.body["cart"])
            if reply.body.get("user") != self.user:
                self.user = None  # not our session any more: start over (the checker judges what happened)

    def add_item(self, name: str = "POST /cart/[item]") -> Reply:
        """POST one new item; a write of unknown outcome is re-sent once, with the same key, by RESEND_SHARE."""
        item, key = self.next_item(), str(uuid.uuid4())
        reply = self.call("POST", f"/cart/{item}", name, "add", item=item, key=key)
        if reply.type == "info" and random.random() < RESEND_SHARE:
            reply = self.call("POST", f"/cart/{item}", "POST /cart/[item] (re-send)", "add", item=item, key=key)
        self.seen(reply)
        return reply

    def read_cart(self) -> Reply:
        reply = self.call("GET", "/cart", "GET /cart", "read")
        self.seen(reply)
        return reply

    def fresh_login(self) -> None:
        """End the session (logout, or logout-all when a second device is logged in), read the ended sessions
        again (each must read as gone), then log in as a new user."""
        ended = [self.session_cookie()]
        if self.user is not None:
            if self.second_sid:
                self.call("POST", "/logout-all", "POST /logout-all", "logout_all")
                ended.append(self.second_sid)
            else:
                self.call("POST", "/logout", "POST /logout", "logout")
            for sid in filter(None, ended):
                self.call("GET", "/cart", "GET /cart (after logout)", "read", sid=sid)
        self.client.cookiejar.clear()  # whatever the logout's answer was, the next login starts afresh
        self.second_sid = None
        self.logins += 1
        user = f"{self.kind}-{self.uid}-{self.logins}"
        reply = self.call("POST", "/login", "POST /login", "login", json={"user": user}, user=user)
        self.user, self.cart_size = (user, 0) if reply.body is not None else (None, 0)
        if self.user is not None and self.logins % SECOND_DEVICE_EVERY == 0:
            self.second_sid = self.login_second_device(user)

    def login_second_device(self, user: str) -> str | None:
        """Log the same user in from a second device (its own session, beside the jar's); its session id."""
        kept = list(self.client.cookiejar)
        self.client.cookiejar.clear()
        try:
            reply = self.call(
                "POST", "/login", "POST /login", "login", json={"user": user}, user=user, process=f"{self.uid}/device"
            )
            return self.session_cookie() if reply.body is not None else None
        finally:
            self.client.cookiejar.clear()
            for cookie in kept:
                self.client.cookiejar.set_cookie(cookie)


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
            self.read_cart()
        else:
            self.add_item()


class BounceUser(SessionUser):
    """Write, then read back, bouncing between replicas (round robin); the checker judges every answer."""

    kind = "bounce"

    @task
    def step(self) -> None:
        if self.needs_fresh_session():
            self.fresh_login()
            return
        self.add_item()
        if self.user is not None:
            self.read_cart()


class ConcurrencyUser(SessionUser):
    """Several adds of one session in flight at once (many tabs), then a read; each add is its own process in
    the history, so the checker sees them overlap (lost updates)."""

    kind = "concurrency"

    @task
    def step(self) -> None:
        if self.needs_fresh_session(extra_items=self.concurrent_requests - 1):
            self.fresh_login()
            return
        slot_s = self.pacer.take_slot()  # the whole burst shares one intended start
        gevent.sleep(self.pacer.delay_until(slot_s))  # once for the burst: its adds then go out together
        items = [(k, self.next_item()) for k in range(self.concurrent_requests)]
        pool = Pool(self.concurrent_requests)
        try:
            pool.map(
                lambda k_item: self.call(
                    "POST", f"/cart/{k_item[1]}", "POST /cart/[item] (concurrent)", "add",
                    item=k_item[1], key=str(uuid.uuid4()), process=f"{self.uid}/{k_item[0]}", slot_s=slot_s,
                ),
                items,
            )  # fmt: skip
        finally:
            # Locust stops a user by killing its greenlet, here inside map; the adds must die with it. Left
            # alone they were sent after the run had written its history, and the final read found their items
            # with no add in the history (phantom writes). Killed in flight, an add stays an invoke without a
            # completion: indeterminate, as it should be.
            pool.kill()
        self.read_cart()
