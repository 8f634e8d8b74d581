"""Who must confirm a write (replication.replicas_that_must_confirm), kept fresh by a thread per app process, so
a request seldom asks the Sentinels itself and never waits on one that is cut off.

Why a thread: the answer may be at most ttl_s old. Asked on the request path, the request that found it too old
paid the Sentinels' round trips, and a connect timeout for each Sentinel that did not answer; in a burst every
thread that found it too old asked at once (isolate-sentinel: p99 0.26-0.51 s, against 10 ms without the fault).
The thread asks every ttl_s / 2 while requests come, and probes the Sentinels that did not answer
(sentinel_answers.py) before it asks, outside the lock requests wait on. A request asks itself only when the
answer is older than ttl_s (the thread is stuck or has just woken) or was forgotten (a retry after a store
error): one thread asks, the others wait for its answer. While requests retry after store errors the thread asks
every RETRYING_REFRESH_INTERVAL_S, and a retry's backoff ends as soon as an answer names another master or finds
the store ready again (pause)."""

from __future__ import annotations

import os
import threading
import time
import weakref
from contextvars import ContextVar

from redis import Redis
from redis.sentinel import SentinelConnectionPool

from . import metrics, replication, sentinel_answers
from .replication import Confirmers
from .store import WriteNotReplicated

# When this thread (gthread: this request) last forgot the answer.
_forgotten_at: ContextVar[float] = ContextVar("sessionproof_confirmers_forgotten_at", default=float("-inf"))
# The thread stops asking when no request has wanted the answer for this long; the next request wakes it.
IDLE_AFTER_S = 5.0
# While requests retry after store errors (and for this long after), the thread asks this often, and a retrying
# request wakes from its backoff as soon as the Sentinels name another master (pause).
RETRYING_REFRESH_INTERVAL_S = 0.1
RETRYING_FOR_S = 1.0


class ConfirmersCache:
    """replicas_that_must_confirm(client), at most ttl_s old (measured from when its question began)."""

    def __init__(self, client: Redis, ttl_s: float):
        self.client, self.ttl_s = client, ttl_s
        self.refresh_interval_s = ttl_s / 2  # one refresh may be slow (a probe's connect timeout) and still in time
        self._cached: tuple[Confirmers, float] | None = None  # (the answer, when its question began)
        self._last_from_sentinels: Confirmers | None = None
        self._asking = threading.Lock()  # one question at a time; the others wait for its answer
        self._wanted_at = float("-inf")
        self._wanted = threading.Event()  # set when a request wants the answer: wakes an idle refresher
        self._refresher: threading.Thread | None = None
        self._refresher_pid: int | None = None
        self._starting = threading.Lock()
        self._stop = threading.Event()
        self._poke = threading.Event()  # wakes the refresher between rounds (a retry began; close)
        self._retrying_until = float("-inf")
        self._ready = False  # whether the last question was answered, with the master's replicas in sync (ready)
        self._wakes = 0  # answers a paused retry wakes for: another master named, or the store ready again
        self._woken = threading.Condition()  # notified with each of them

    def get(self, fresh: bool = False) -> Confirmers:
        """The answer, asked now if `fresh`, forgotten or too old."""
        now = self._want()
        asked_since = now if fresh else max(now - self.ttl_s, _forgotten_at.get())
        if not fresh and self._usable(self._cached, asked_since):
            return self._cached[0]
        with self._asking:
            if self._usable(self._cached, asked_since):  # another thread asked while this one waited
                return self._cached[0]
            return self._ask_now()

    def pause(self, timeout_s: float) -> None:
        """A retrying request's backoff: sleep up to timeout_s, and wake as soon as an answer names another master
        than the last one, or finds the store ready (Confirmers.ready) after a question that failed or found it not
        ready. Why: clients waited out up to their whole backoff (REDIS_RETRY_BACKOFF_CAP_S, 0.5 s) after the store
        could take writes again, and the p99 during a fault is those sleeps' tail: completions spread over 0.5 s
        after +switch-master (a kill), or after the replicas had resynced (every Redis node restarted)."""
        now = self._want()
        self._retrying_until = now + RETRYING_FOR_S
        self._poke.set()
        wakes = self._wakes
        with self._woken:
            self._woken.wait_for(lambda: self._wakes != wakes, timeout_s)

    def forget(self) -> None:
        """This thread (request) uses no answer whose question began before now: after a store error the master or
        its replicas may have changed. Other threads keep the answer until they see an error themselves (every
        answer is at most ttl_s old either way): forgetting it for all of them made each retrying thread discard
        the answer the one before it had just waited for."""
        _forgotten_at.set(time.monotonic())

    def require_master(self, node: tuple[str, int] | None) -> None:
        """Raise WriteNotReplicated if the write went to `node` while Sentinel names another master: an old
        master's last replica confirmed it, and will resync from the promoted one. Asked afresh before
        refusing, as after any failover the cached answer still names the old master."""
        if node is None or self.get().master in (None, node):
            return
        named = self.get(fresh=True).master
        if named not in (None, node):
            raise WriteNotReplicated(f"written to {node[0]}:{node[1]}, but Sentinel names {named[0]}:{named[1]}")

    def _want(self) -> float:
        """Note that a request wants the answer (wakes an idle refresher, starts one in a new process); now."""
        now = time.monotonic()
        self._wanted_at = now
        if not self._wanted.is_set():
            self._wanted.set()
        self._start_refresher()
        return now

    def _named(self) -> replication.Address | None:
        """The master the kept answer names (None: no answer yet, or none named)."""
        cached = self._cached  # read once: another thread may replace it
        return cached[0].master if cached else None

    def _usable(self, cached: tuple[Confirmers, float] | None, asked_since: float) -> bool:
        return cached is not None and cached[1] >= asked_since

    def _ask_now(self) -> Confirmers:
        """Ask (the caller holds _asking) and keep the answer with the time its question began; wake the paused
        retries if it names another master or finds the store ready again."""
        began, named, was_ready = time.monotonic(), self._named(), self._ready
        try:
            answer = self._ask()
        except Exception:
            self._ready = False
            raise
        self._cached, self._ready = (answer, began), answer.ready
        if answer.master != named or (answer.ready and not was_ready):
            with self._woken:
                self._wakes += 1
                self._woken.notify_all()
        return answer

    def _ask(self) -> Confirmers:
        """The Sentinels' answer; when none answers, the last one they gave, with the replicas online at the master
        added. Not the online replicas alone: with the apps cut from every Sentinel and the master's link to one
        replica congested, the one replica still online confirmed writes, and Sentinel promoted the other (10 of
        213,737 acknowledged writes lost in a 2-hour campaign). Held to the last answer, such writes wait (503)."""
        answer = replication.replicas_that_must_confirm(self.client)
        if answer.master is not None:
            self._last_from_sentinels = answer
            return answer
        last = self._last_from_sentinels
        if last is None:  # not Sentinel-managed, or no Sentinel has answered yet: the online replicas are all we know
            return answer
        return Confirmers(answer.required | last.required, last.master, answer.online)

    def _start_refresher(self) -> None:
        """One refresher per process (gunicorn forks its workers after the app is made), and only for a
        Sentinel-managed client: a plain client's question (ROLE) is one round trip to the node it writes to."""
        if self._refresher_pid == os.getpid() or self._stop.is_set():
            return
        if not isinstance(getattr(self.client, "connection_pool", None), SentinelConnectionPool):
            return
        with self._starting:
            if self._refresher_pid == os.getpid():
                return
            self._refresher_pid = os.getpid()
            self._refresher = threading.Thread(
                target=_refresh_while_wanted, args=(weakref.ref(self), self._stop), name="confirmers", daemon=True
            )
            self._refresher.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop this process's refresher (tests; the app's lives as long as its process)."""
        self._stop.set()
        self._wanted.set()
        self._poke.set()
        if self._refresher is not None and self._refresher_pid == os.getpid():
            self._refresher.join(timeout_s)

    def refresh(self) -> None:
        """The refresher's round: probe the Sentinels that did not answer, then ask (waiting for no request)."""
        sentinel_answers.probe_skipped(self.client.connection_pool.sentinel_manager.sentinels)
        with self._asking:
            self._ask_now()


def _refresh_while_wanted(cache_ref: weakref.ref, stop: threading.Event) -> None:
    """Refresh every refresh_interval_s while requests want the answer, and sleep while they do not, until the
    cache is closed or dropped (the thread holds no reference to it between rounds)."""
    while not stop.is_set() and (cache := cache_ref()) is not None:
        began = time.monotonic()
        if began - cache._wanted_at > IDLE_AFTER_S:
            wanted = cache._wanted
            wanted.clear()
            # A request between the check and the clear set _wanted_at, and not the event: look again.
            idle = time.monotonic() - cache._wanted_at > IDLE_AFTER_S
            del cache
            if idle:
                wanted.wait(IDLE_AFTER_S)  # until a request wants it (the timeout notices a dropped cache)
            continue
        try:
            cache.refresh()
        except Exception as error:  # the thread must outlive any error; a request asks itself, and sees it
            metrics.CONFIRMERS_REFRESH_FAILURES.labels(type(error).__name__).inc()
        retrying = time.monotonic() < cache._retrying_until
        interval_s, poke = RETRYING_REFRESH_INTERVAL_S if retrying else cache.refresh_interval_s, cache._poke
        del cache
        if poke.wait(max(0.0, interval_s - (time.monotonic() - began))):  # a retry began: ask again now
            poke.clear()
