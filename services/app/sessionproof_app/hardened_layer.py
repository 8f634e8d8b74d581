"""The hardened session layer: a retry budget, compare-and-set commits, WAIT for every replica
Sentinel could promote, touch without rewrite and Idempotency-Key replays, over the stock layer
(session_layer.py). Each property and why it is there: docs/design.md, "Session layers".

Views must be deterministic in (request, session) and keep their other Redis
effects idempotent, because this layer may run them more than once.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
import uuid
from datetime import UTC, datetime

import msgspec
from flask import Flask, Request, Response, request
from flask.globals import request_ctx
from redis.backoff import ExponentialWithJitterBackoff
from werkzeug.exceptions import ServiceUnavailable

from . import metrics, replication, store
from .confirmers_cache import ConfirmersCache
from .errors import error_response
from .records import DEFAULT_HEADERS, FINGERPRINT_BYTES, RECORDED_HEADERS, Record, decode_record
from .session_layer import (
    IDEMPOTENCY_HEADER,
    REPLAYED_HEADER,
    SAFE_METHODS,
    SESSIONLESS_PATHS,
    StockSessionInterface,
    set_store_node_header,
)
from .store import RedisError, WriteNotReplicated, is_store_unavailable

# Printable ASCII without spaces, as in draft-ietf-httpapi-idempotency-key-header; a UUID fits.
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")
_STATE = "sessionproof.hardened"
CONFIRMING_REPLICAS_TTL_S = 1.0  # how old the list of replicas that must confirm (SESSION_WAIT_REPLICAS=all) may be


class SessionConflict(Exception):
    """The session changed (or a duplicate committed) between this request's read and its commit."""


class SessionContended(ServiceUnavailable):
    description = (
        "Too many requests of this session changed it at once; nothing of this request was stored. Retry shortly."
    )


class RecordNotOnMaster(WriteNotReplicated):
    """A write's record was read from a node that is no longer (or not) the master: re-run on the master."""


# KEYS: [1] the session key as read (may be absent), [2] the key to write, [3] the idempotency record.
# ARGV: [1] bytes read from KEYS[1] ('' = it did not exist), [2] new session bytes ('' = delete),
#       [3] session TTL s, [4] the idempotency record, [5] its TTL s.
# The shebang makes Redis 7 refuse the whole script up front when it is at maxmemory (OOM), instead of
# failing at its first SET after a DEL already ran: a login must not delete the old session and
# then fail to write the new one.
_COMMIT_LUA = """#!lua
if redis.call('EXISTS', KEYS[3]) == 1 then return 'DUPLICATE' end
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if current then return 'CONFLICT' end
elseif current ~= ARGV[1] then
  return 'CONFLICT'
end
if KEYS[1] ~= KEYS[2] then redis.call('DEL', KEYS[1]) end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
end
redis.call('SET', KEYS[3], ARGV[4], 'EX', ARGV[5])
return 'OK'
"""


class HardenedSessionInterface(StockSessionInterface):
    layer = "hardened"

    def __init__(
        self,
        app: Flask,
        *,
        retry_budget_s: float,
        backoff: ExponentialWithJitterBackoff,
        wait_replicas: int | None,
        wait_timeout_ms: int,
        wait_aof: bool = False,
        idempotency_ttl_s: int,
        max_conflict_retries: int,
        namespace: str,
        **kwargs,
    ):
        super().__init__(app, **kwargs)
        self.namespace = namespace
        self.retry_budget_s, self.backoff = retry_budget_s, backoff
        # None: every replica online or promotable (replication.replicas_that_must_confirm). WAIT 1 with two
        # replicas is not enough: the replica that confirmed may not be the one Sentinel promotes.
        self.wait_all = wait_replicas is None
        self.wait_replicas = 1 if wait_replicas is None else wait_replicas
        self._confirmers = ConfirmersCache(self.client, CONFIRMING_REPLICAS_TTL_S)
        self.wait_timeout_ms, self.wait_aof = wait_timeout_ms, wait_aof and self.wait_all  # WAITAOF: design.md
        self.idempotency_ttl_s, self.max_conflict_retries = idempotency_ttl_s, max_conflict_retries
        app.before_request_funcs.setdefault(None, []).insert(0, self._replay_recorded_response)

    # ------------------------------------------------------------ per request
    def _state(self) -> dict:
        """This request's budget and idempotency key, kept across its retries."""
        state = request.environ.get(_STATE)
        if state is None:
            key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
            state = {
                "deadline": time.monotonic() + self.retry_budget_s,
                "client_key": key,
                "key": key or None,  # made by _record_key on first use: a read without a key needs none
                "record": None,
                "replayed": False,
            }
            request.environ[_STATE] = state
        return state

    def _record_key(self, state: dict) -> str:
        # Scoped by the incoming session cookie: one client's key never reaches another's record.
        scope = request.cookies.get(self.app.config["SESSION_COOKIE_NAME"]) or "-"
        if state["key"] is None:
            # Without a key (nginx always sends one) the app's own retries still apply a write once.
            state["key"] = f"internal-{uuid.uuid4()}"
        digest = hashlib.sha256(f"{scope}\n{state['key']}".encode()).hexdigest()[:40]
        return f"{self.namespace}:idempotency:{digest}"

    @staticmethod
    def _fingerprint() -> bytes:
        body = request.get_data(cache=True)
        return hashlib.sha256(f"{request.method} {request.full_path}\n".encode() + body).digest()[:FINGERPRINT_BYTES]

    def _ttl_s(self, app: Flask) -> int:
        return int(app.permanent_session_lifetime.total_seconds())

    # -------------------------------------------------------------- retrying
    def run_request(self, app: Flask, dispatch):
        if request.path in SESSIONLESS_PATHS:
            return dispatch()
        conflicts = failures = 0
        while True:
            try:
                return dispatch()
            except SessionConflict:
                conflicts += 1
                if conflicts > self.max_conflict_retries or time.monotonic() >= self._state()["deadline"]:
                    rv = app.handle_user_exception(SessionContended())
                    return app.finalize_request(rv, from_error_handler=True)
                metrics.count_retry("conflict")
                time.sleep(random.uniform(0, 0.001 * min(conflicts, 10)))  # de-synchronise the contenders
            except RedisError as error:
                failures += 1
                self._pause_before_retry(error, failures)
            # The next attempt starts from the store's current session (Flask 3.1 keeps it in _session).
            request_ctx._session = self.open_session(app, request)

    def _pause_before_retry(self, error: RedisError, failures: int) -> None:
        """Back off, then make the next command ask Sentinel for the master; re-raise once the budget is spent."""
        if not is_store_unavailable(error):
            raise error  # a full store or an error reply: no retry mends it (store.RETRIED says which do)
        if store.sentinels_unreachable(error) is not None:
            # Why stop now: this replica reaches no Sentinel (it is cut off, e.g. partitioned), while the other
            # replicas may well reach the store. Its 502 (store_unreachable_from_replica) makes nginx re-send the
            # request to another replica at once, instead of the client waiting out the budget here for the same
            # 503. Nothing was acknowledged: this error is raised before a command is sent on a new connection, and
            # a write that may have landed earlier in the request is found by its Idempotency-Key record when re-sent.
            raise error
        remaining_s = self._state()["deadline"] - time.monotonic()
        if remaining_s <= 0:
            raise error
        metrics.count_retry(store.retry_reason(error))
        pause = self._confirmers.pause if self.wait_all else time.sleep  # pause: wakes when the store is ready again
        pause(min(self.backoff.compute(failures), remaining_s))  # the last attempt falls on the deadline
        # Idle connections may point at a dead, paused or demoted master; new ones re-discover it.
        self.client.connection_pool.disconnect(inuse_connections=False)
        # And so may the cached answer of who must confirm: kept, it names the old master after a failover,
        # and the first write on the new one waited out WAIT's timeout for a "replica" that is now its master.
        self._confirmers.forget()

    def _within_budget(self, operation):
        failures = 0
        while True:
            try:
                return operation()
            except RedisError as error:
                failures += 1
                self._pause_before_retry(error, failures)

    # ------------------------------------------------------------------ open
    def open_session(self, app: Flask, request: Request):
        store.forget_last_node()  # a new request (or attempt): no node from this thread's previous one
        if request.path in SESSIONLESS_PATHS:
            return None
        return self._within_budget(lambda: self._open(app, request))

    def _open(self, app: Flask, request: Request):
        state = self._state()
        sid = request.cookies.get(app.config["SESSION_COOKIE_NAME"]) or None
        wants_record = request.method not in SAFE_METHODS
        raw = record = None
        if sid and (wants_record or self.wait_replicas):
            pipe = self.client.pipeline(transaction=False)
            pipe.getex(self.store_key(sid), ex=self._ttl_s(app))  # read and slide the expiry: one round trip
            if wants_record:
                pipe.get(self._record_key(state))
            replies = self._read_confirmed(pipe, reads=len(pipe))
            raw, record = replies[0], replies[1] if wants_record else None
        elif sid:  # not confirmed (SESSION_WAIT_REPLICAS=0): one command, without a pipeline's cost
            raw = store.get_and_touch(self.client, self.store_key(sid), self._ttl_s(app))
        elif wants_record:
            record = self.client.get(self._record_key(state))
        state["record"] = decode_record(record) if record else None
        if raw is None:
            # No such session (never was, expired or logged out): a new id, never the old one again.
            session = self.session_class(sid=self._generate_sid(self.sid_length), permanent=self.permanent)
            session.read_key, session.read_bytes = None, b""
        else:
            session = self.session_class(self.serializer.decode(raw), sid=sid)
            session.read_key, session.read_bytes = self.store_key(sid), raw
        return session

    def _read_confirmed(self, pipe, reads: int) -> list:
        """`pipe`'s replies (GETEX first) once the replicas that must confirm a write have all the master had:
        GETEX slides the expiry, a write, so WAIT covers the master's stream up to this read. Otherwise a write
        answered 503 (no replica confirmed it) could be shown, then lost in a failover (docs/design.md)."""
        return self._execute_confirmed(pipe, writes=reads, check=lambda replies: None)

    def regenerate(self, session) -> None:
        # A new id now; the old key is deleted by the commit, atomically with the write under the new one.
        session.sid = self._generate_sid(self.sid_length)
        session.modified = True

    # --------------------------------------------------------------- replay
    def _replay_recorded_response(self):
        """before_request: a request whose Idempotency-Key has a record gets the recorded response."""
        if request.path in SESSIONLESS_PATHS:
            return None
        state = self._state()
        if state["client_key"] and not _IDEMPOTENCY_KEY.fullmatch(state["client_key"]):
            return error_response(
                400, "invalid_idempotency_key", "Idempotency-Key must be 1-128 printable ASCII characters, e.g. a UUID."
            )
        record = state["record"]
        # Decided afresh on every attempt: an attempt whose replay failed (record not on the master, no
        # replica confirmed) must not leave this set, or the next attempt's view would answer 200 and
        # skip the commit of its session: an acknowledged write stored nowhere.
        state["replayed"] = False
        if record is None:
            return None
        if record.fingerprint != self._fingerprint():
            state["replayed"] = True  # answered from the record: nothing of this request is stored
            return error_response(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was already used for a different request; send a new key per request.",
            )
        # Say so only once the record is on the current master AND a replica has it (EXPIRE gives WAIT an
        # offset). The record was read on another connection, which during a partition can still point at
        # the old master: there it may be a write no replica ever got. EXPIRE answers 0 where the record is
        # absent, and then propagates nothing, so WAIT would confirm an older offset: never replay on that.
        pipe = self.client.pipeline(transaction=False)
        pipe.expire(self._record_key(state), self.idempotency_ttl_s)
        store.forget_last_node()
        self._execute_confirmed(pipe, writes=1, check=self._record_on_master)
        state["replayed"] = True
        response = self.app.response_class(record.body, status=record.status)
        for name, value in DEFAULT_HEADERS:
            response.headers[name] = value
        for name, value in record.headers:
            if name == "Set-Cookie":
                response.headers.add(name, value)
            else:
                response.headers[name] = value
        response.headers[REPLAYED_HEADER] = "true"
        # The node the record's EXPIRE and WAIT went to: the master that holds the write now.
        set_store_node_header(response, store.last_node(self.client))
        metrics.IDEMPOTENT_REPLAYS.inc()
        return response

    @staticmethod
    def _record_on_master(replies: list) -> None:
        if not replies[0]:
            raise RecordNotOnMaster("the idempotency record read is not on the current master")

    def _execute_confirmed(self, pipe, writes: int, check) -> list:
        """Run `pipe`, whose first `writes` commands are a write; their replies once it counts (replication.py)."""
        if not self.wait_replicas:
            replies = pipe.execute()
            check(replies)
            return replies
        if self.wait_all:
            return replication.execute_confirmed(
                self.client, self._confirmers, pipe, writes, check, self.wait_timeout_ms, self.wait_aof
            )
        return replication.execute_counted(pipe, writes, check, self.wait_replicas, self.wait_timeout_ms)

    # ------------------------------------------------------------------ save
    def save_session(self, app: Flask, session, response: Response) -> None:
        if session is None or response.status_code >= 500:
            return
        state = self._state()
        if state["replayed"]:
            return
        if session.accessed:
            response.vary.add("Cookie")
        name, domain, path = self.get_cookie_name(app), self.get_cookie_domain(app), self.get_cookie_path(app)
        if not session.modified:
            # Unchanged: GETEX at open already slid the expiry, and the cookie, which lasts the session's
            # absolute lifetime (_set_cookie), needs no refresh: a read sends no Set-Cookie.
            return
        if session:
            write_key, new_bytes = self.store_key(session.sid), self.serializer.encode(session)
            if write_key != session.read_key:
                # A new or regenerated id. An unchanged id needs no Set-Cookie: the client sent it, and its
                # cookie lasts the absolute lifetime (keeps responses and idempotency records small too).
                self._set_cookie(app, session, response)
            else:
                response.vary.add("Cookie")
        else:
            write_key, new_bytes = session.read_key or self.store_key(session.sid), b""
            response.delete_cookie(key=name, domain=domain, path=path)
            response.vary.add("Cookie")
            if session.read_key is None:
                return  # an empty session that was never stored: nothing to delete
        self._commit(app, session, write_key, new_bytes, response)

    @staticmethod
    def _committed(replies: list) -> None:
        outcome = replies[0].decode() if isinstance(replies[0], bytes) else replies[0]
        if outcome != "OK":
            if outcome == "CONFLICT":
                metrics.SESSION_CONFLICTS.inc()
            raise SessionConflict(outcome)  # DUPLICATE too: the retry finds the record and replays it

    def _set_cookie(self, app: Flask, session, response: Response) -> None:
        response.set_cookie(
            key=self.get_cookie_name(app),
            value=self._sign(app, session.sid) if self.use_signer else session.sid,
            expires=self._cookie_expires(app, session),
            httponly=self.get_cookie_httponly(app),
            domain=self.get_cookie_domain(app),
            path=self.get_cookie_path(app),
            secure=self.get_cookie_secure(app),
            samesite=self.get_cookie_samesite(app),
        )
        response.vary.add("Cookie")

    def _cookie_expires(self, app: Flask, session) -> datetime:
        """The end of the session's absolute lifetime: the cookie outlives every request the session can serve.

        Flask-Session's default, now + the idle TTL, must be re-sent on every request to slide, which
        costs a Set-Cookie per read. The idle timeout is enforced where it has to be anyway, in Redis
        (the key's EX, slid by GETEX), so the browser keeps the cookie as long as the session may live.
        """
        created_at = session.get("created_at")
        if created_at is None:  # not written by the views' write path: the default
            return self.get_expiration_time(app, session)
        return datetime.fromtimestamp(created_at + app.config["SESSION_ABSOLUTE_LIFETIME_S"], tz=UTC)

    def _commit(self, app: Flask, session, write_key: str, new_bytes: bytes, response: Response) -> None:
        state = self._state()
        record = msgspec.msgpack.encode(
            Record(
                self._fingerprint(),
                response.status_code,
                [
                    (k, v)
                    for k, v in response.headers.items()
                    if k in RECORDED_HEADERS and (k, v) not in DEFAULT_HEADERS
                ],
                response.get_data(),
            )
        )
        pipe = self.client.pipeline(transaction=False)
        pipe.eval(
            _COMMIT_LUA,
            3,
            session.read_key or write_key,
            write_key,
            self._record_key(state),
            session.read_bytes,
            new_bytes,
            self._ttl_s(app),
            record,
            self.idempotency_ttl_s,
        )
        store.forget_last_node()
        self._execute_confirmed(pipe, writes=1, check=self._committed)
        # Committed and acknowledged: name the node the script and WAIT went to (one connection).
        set_store_node_header(response, store.last_node(self.client))
