"""The Redis client the session layer uses: Sentinel-discovered master with timeouts and retries."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from contextvars import ContextVar

from redis import Redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ConnectionError,
    ExternalAuthProviderError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool, SentinelManagedConnection

from . import metrics, sentinel_answers, settings


class WriteNotReplicated(RedisError):
    """WAIT: fewer replicas than required confirmed a write in time, so it is not acknowledged."""


class SentinelsUnreachable(MasterNotFoundError):
    """No Sentinel answered at all: this process is cut off from every one of them (not: no master)."""


def sentinels_unreachable(error: BaseException | None) -> SentinelsUnreachable | None:
    """`error` itself or the SentinelsUnreachable it was raised from or during, if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, SentinelsUnreachable):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def config_epoch(state: dict) -> int:
    """A Sentinel master state's config-epoch (-1 when absent or unparsable)."""
    # RESP2 parsing makes it an int; RESP3 (or an unparsable value) may leave a str.
    try:
        return int(state.get("config-epoch", -1))
    except (TypeError, ValueError):
        return -1


class StoreSentinel(Sentinel):
    """A Sentinel client whose master is the one named with the highest config-epoch.

    Why: redis-py takes the master named by the first Sentinel that answers. In a
    partition, a minority Sentinel still names the old master (now without replicas,
    refusing writes with NOREPLICAS) while the majority has failed over under a higher
    config-epoch; asking every Sentinel and taking the newest configuration sends the
    app to the new master whichever Sentinel is listed first. Each Sentinel is asked
    once per discovery: retrying is the caller's policy (the connection's Retry, or the
    hardened layer's budget), so sentinel clients should be built without retries.
    """

    def discover_master(self, service_name):
        errors: list[str] = []
        answered = 0
        best = None  # (config epoch, the Sentinel, its state)
        for sentinel in list(self.sentinels):  # a copy: other threads may reorder the list meanwhile
            if sentinel_answers.skipped(sentinel):  # a connect timeout per new connection while it is cut off
                errors.append(_describe(sentinel, "did not answer lately"))
                continue
            try:
                masters = sentinel.sentinel_masters()
            except (ConnectionError, TimeoutError) as error:
                errors.append(_describe(sentinel, error))
                continue
            except ResponseError as error:  # it answered, with an error: it names no master
                answered += 1
                errors.append(_describe(sentinel, error))
                continue
            answered += 1
            sentinel_answers.answered(sentinel)
            state = masters.get(service_name)
            if state and self.check_master_state(state, service_name):
                epoch = config_epoch(state)
                if best is None or epoch > best[0]:  # a tie keeps the first that answered
                    best = (epoch, sentinel, state)
        if best is None:
            detail = f": {'; '.join(errors)}" if errors else ""
            if self.sentinels and not answered:
                raise SentinelsUnreachable(f"No Sentinel answered for {service_name!r}{detail}")
            raise MasterNotFoundError(f"No master found for {service_name!r}{detail}")
        _, chosen, state = best
        master = (state["ip"], state["port"])
        if getattr(self, "_last_master", None) not in (None, master):
            metrics.MASTER_CHANGES.inc()
        self._last_master = master
        # As redis-py does: the Sentinel that named the master comes first next time (wins a tie).
        if chosen in self.sentinels:
            sentinel_no = self.sentinels.index(chosen)
            self.sentinels[0], self.sentinels[sentinel_no] = chosen, self.sentinels[0]
        ip = self._force_master_ip if self._force_master_ip is not None else state["ip"]
        return ip, state["port"]


def _describe(sentinel: Redis, error: RedisError | str) -> str:
    # redis-py 8's repr of its errors drops the message ("network:ConnectionError").
    kwargs = sentinel.connection_pool.connection_kwargs
    what = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return f"{kwargs.get('host')}:{kwargs.get('port')} {what}"


# The Redis node (host, port) this thread's (gthread: each request's) last command was sent to.
_last_node: ContextVar[tuple[str, int] | None] = ContextVar("sessionproof_last_node", default=None)


# Nanoseconds this thread's request has spent sending to and reading from Redis (for Server-Timing).
_store_ns: ContextVar[int] = ContextVar("sessionproof_store_ns", default=0)


class NodeRecordingConnection(SentinelManagedConnection):
    """A Sentinel-managed connection that records which node each command goes to (for X-Store-Node) and how long
    the request waits on Redis (for Server-Timing)."""

    def send_packed_command(self, command, check_health=True):
        started_ns = time.perf_counter_ns()
        try:
            super().send_packed_command(command, check_health)
            _last_node.set((self.host, self.port))
        finally:
            _store_ns.set(_store_ns.get() + time.perf_counter_ns() - started_ns)

    def read_response(self, *args, **kwargs):
        started_ns = time.perf_counter_ns()
        try:
            return super().read_response(*args, **kwargs)
        finally:
            _store_ns.set(_store_ns.get() + time.perf_counter_ns() - started_ns)


def reset_store_time() -> None:
    _store_ns.set(0)


def store_time_ns() -> int:
    """Time spent on Redis round trips since reset_store_time() in this thread (0 for a plain test client)."""
    return _store_ns.get()


def forget_last_node() -> None:
    _last_node.set(None)


def last_node(client: Redis) -> tuple[str, int] | None:
    """The node the last command since forget_last_node() went to.

    A Sentinel-managed client with NodeRecordingConnection records it; a plain client
    (SESSION_REDIS under test) has one address, so that is it."""
    node = _last_node.get()
    pool = client.connection_pool
    if node is None and not isinstance(pool, SentinelConnectionPool):
        kwargs = pool.connection_kwargs
        if "host" in kwargs and "port" in kwargs:
            node = (kwargs["host"], kwargs["port"])
    return node


def get_and_touch(client: Redis, key: str, ttl_s: int) -> bytes | None:
    """GETEX key EX ttl_s: the value, with its expiry slid, in one round trip on one pooled connection.

    What `client.getex(key, ex=ttl_s)` does for a client without command retries (the
    hardened layer retries whole requests instead), minus redis-py 8's per-command
    wrapping: the retry closure, observability hooks and response callbacks (GETEX has
    none). That wrapping cost about 20 µs of CPU per read here, as much as the socket
    calls themselves. The pool, its connection checks, Sentinel discovery and parsing
    stay redis-py's.
    """
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_command("GETEX", key, "EX", ttl_s)
        return connection.read_response()
    except ResponseError:
        raise  # Redis answered: the connection is in step
    except BaseException:
        connection.disconnect()  # a half-sent command or half-read reply must not reach the next user
        raise
    finally:
        pool.release(connection)


# Where each Redis error goes in the HTTP contract (errors.py answers it; docs/session-contract.md lists the codes).
# The hardened layer retries the RETRIED conditions within its budget: each clears on its own or by a
# Sentinel failover (a master that is busy or cannot persist refuses Sentinel's PING too, so Sentinel
# takes it for down and fails over). Every other error is answered at once.
STORE_UNAVAILABLE = "store_unavailable"
STORE_BUSY = "store_busy"  # BUSY: a script runs past busy-reply-threshold (Sentinel sends SCRIPT KILL, or fails over)
STORE_CANNOT_PERSIST = "store_cannot_persist"  # MISCONF: the master cannot write its AOF or RDB, refuses writes
STORE_FULL = "store_full"  # OOM: maxmemory with noeviction; frees only as keys expire, so not retried
STORE_ERROR = "store_error"  # any other reply or error: not a state of a live store, so not retried
RETRIED = frozenset({STORE_UNAVAILABLE, STORE_BUSY, STORE_CANNOT_PERSIST})

# Redis's reply codes. redis-py strips the code from the message of the replies it has a class for
# (MASTERDOWN, READONLY, OOM, ...) and keeps it in `status_code`; others (BUSY, MISCONF, NOREPLICAS)
# stay in the message, behind "Command # 1 (EVAL ...) of pipeline caused error: " in a pipeline.
_REPLY_CONDITIONS = {
    "NOREPLICAS": STORE_UNAVAILABLE,
    "MASTERDOWN": STORE_UNAVAILABLE,
    "LOADING": STORE_UNAVAILABLE,
    "TRYAGAIN": STORE_UNAVAILABLE,
    "READONLY": STORE_UNAVAILABLE,
    "BUSY": STORE_BUSY,
    "MISCONF": STORE_CANNOT_PERSIST,
    "OOM": STORE_FULL,
}
_REPLY_CODE = re.compile(r"(?:Command # \d+ \(.*?\) of pipeline caused error: )?([A-Z][A-Z0-9_]*)(?=\s|$)", re.DOTALL)
# The same conditions as redis-py raises them without a code (built by hand, or by older redis-py).
_UNAVAILABLE_TYPES = (
    ConnectionError,
    TimeoutError,
    ReadOnlyError,
    BusyLoadingError,
    MasterDownError,
    TryAgainError,
    WriteNotReplicated,
)
# ConnectionErrors that no retry or failover mends: the app's credentials or ACL do not fit the store.
_CONFIGURATION_TYPES = (AuthenticationError, AuthorizationError, ExternalAuthProviderError)


def reply_code(error: BaseException) -> str | None:
    """The code of the Redis reply behind `error` (`BUSY`, `NOPERM`, ...), or None for an error Redis did not send."""
    code = getattr(error, "status_code", None)
    if code:
        return code
    if isinstance(error, ResponseError):
        match = _REPLY_CODE.match(str(error))
        if match:
            return match.group(1)
    return None


def describe(error: BaseException) -> str:
    """`error`'s class, reply code and message, for a log line (redis-py 8's repr drops the message)."""
    code = reply_code(error)
    message = str(error)
    shown = f"{code} {message}" if code and code not in message else message
    return f"{type(error).__name__}: {shown}"


def store_condition(error: BaseException) -> str:
    """The error code a client gets for this store error (STORE_UNAVAILABLE, STORE_BUSY, ...)."""
    condition = _REPLY_CONDITIONS.get(reply_code(error) or "")
    if condition is not None:
        return condition
    if isinstance(error, OutOfMemoryError):
        return STORE_FULL
    if isinstance(error, _CONFIGURATION_TYPES):
        return STORE_ERROR
    if isinstance(error, _UNAVAILABLE_TYPES):
        return STORE_UNAVAILABLE
    return STORE_ERROR


def is_store_full(error: BaseException) -> bool:
    """Redis refused a write because it is at maxmemory: an expected state of a live store, not a bug."""
    return store_condition(error) == STORE_FULL


def is_store_unavailable(error: BaseException) -> bool:
    """The store cannot serve now (unreachable, no master, busy, cannot persist, ...) but may soon: worth a retry."""
    return store_condition(error) in RETRIED


def retry_reason(error: BaseException) -> str:
    """A short, bounded name for why a store call is tried again (the `reason` label of store retries)."""
    if isinstance(error, WriteNotReplicated):
        return "not_replicated"
    if isinstance(error, MasterNotFoundError):
        return "no_master"
    code = reply_code(error)
    if code in _REPLY_CONDITIONS:
        return code.lower()
    return {ReadOnlyError: "readonly", BusyLoadingError: "loading", TimeoutError: "timeout"}.get(
        type(error), "connection" if isinstance(error, ConnectionError) else type(error).__name__.lower()
    )


class CountingRetry(Retry):
    """redis-py's command Retry (the stock layer's), counting each retry it makes in the replica's metrics."""

    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        failures = 0

        def counted_fail(error, *count):
            nonlocal failures
            failures += 1
            if self.get_retries() < 0 or failures <= self.get_retries():
                metrics.count_retry(retry_reason(error))
            return fail(error, *count)

        return super().call_with_retry(do, counted_fail, is_retryable, with_failure_count)


def make_backoff(env: Mapping[str, str] | None = None) -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(
        base=settings.get_float("REDIS_RETRY_BACKOFF_BASE_S", env),
        cap=settings.get_float("REDIS_RETRY_BACKOFF_CAP_S", env),
    )


def make_retry(env: Mapping[str, str] | None = None, retries: int | None = None) -> CountingRetry:
    # Without an explicit Retry, Sentinel-managed connections do not retry at all
    # (redis-py's Sentinel-managed connections); with it, a retried command reconnects and so re-asks
    # Sentinel for the master.
    return CountingRetry(
        make_backoff(env),
        retries=settings.get_int("REDIS_RETRIES", env, minimum=0) if retries is None else retries,
        supported_errors=(ConnectionError, TimeoutError, ReadOnlyError),
    )


def connect_master(env: Mapping[str, str] | None = None, retries: int | None = None) -> Redis:
    """A client for the current master, as named by Sentinel; follows failovers.

    `retries` overrides REDIS_RETRIES: the hardened layer passes 0 and retries whole
    requests within its own budget instead."""
    password = settings.redis_password(env)
    socket_timeout = settings.get_float("REDIS_SOCKET_TIMEOUT_S", env)
    connect_timeout = settings.get_float("REDIS_CONNECT_TIMEOUT_S", env)
    sentinel = StoreSentinel(
        settings.get_addresses("SENTINELS", env),
        sentinel_kwargs={
            "password": password,
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
            # One try per Sentinel and discovery (redis-py's default is 10 with backoff, seconds per
            # Sentinel that is down): the master connection's Retry or the hardened budget re-discovers.
            "retry": Retry(NoBackoff(), 0),
        },
        password=password,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
    )
    return sentinel.master_for(
        settings.get_str("REDIS_MASTER_NAME", env),
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=make_retry(env, retries),
        health_check_interval=5,
        connection_class=NodeRecordingConnection,
    )


__all__ = [
    "MasterNotFoundError",
    "NodeRecordingConnection",
    "RedisError",
    "SentinelsUnreachable",
    "StoreSentinel",
    "WriteNotReplicated",
    "connect_master",
    "describe",
    "forget_last_node",
    "get_and_touch",
    "is_store_full",
    "is_store_unavailable",
    "last_node",
    "make_backoff",
    "make_retry",
    "reply_code",
    "retry_reason",
    "sentinels_unreachable",
    "store_condition",
]
