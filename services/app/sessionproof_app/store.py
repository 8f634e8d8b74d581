"""The Redis client the session layer uses: Sentinel-discovered master with timeouts and retries."""

from __future__ import annotations

import re
from collections.abc import Mapping

from redis import Redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    BusyLoadingError,
    ConnectionError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError,
)
from redis.retry import Retry
from redis.sentinel import Sentinel

from . import settings


class WriteNotReplicated(RedisError):
    """WAIT: fewer replicas than required confirmed a write in time, so it is not acknowledged."""


# Errors that mean "the store is (briefly) not there", as opposed to a bug.
_UNAVAILABLE_TYPES = (ConnectionError, TimeoutError, ReadOnlyError, BusyLoadingError, WriteNotReplicated)
_UNAVAILABLE_REPLIES = ("NOREPLICAS", "MASTERDOWN", "LOADING", "TRYAGAIN", "READONLY")


# A pipeline prefixes the reply: "Command # 1 (GETEX ...) of pipeline caused error: NOREPLICAS ...".
_UNAVAILABLE_REPLY = re.compile(rf"(?:^|of pipeline caused error: )(?:{'|'.join(_UNAVAILABLE_REPLIES)})\b")


def is_store_unavailable(error: BaseException) -> bool:
    if isinstance(error, _UNAVAILABLE_TYPES):
        return True
    return isinstance(error, ResponseError) and _UNAVAILABLE_REPLY.search(str(error)) is not None


def make_backoff(env: Mapping[str, str] | None = None) -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(
        base=settings.get_float("REDIS_RETRY_BACKOFF_BASE_S", env),
        cap=settings.get_float("REDIS_RETRY_BACKOFF_CAP_S", env),
    )


def make_retry(env: Mapping[str, str] | None = None, retries: int | None = None) -> Retry:
    # Without an explicit Retry, Sentinel-managed connections do not retry at all
    # (see DESIGN.md); with it, a retried command reconnects and so re-asks
    # Sentinel for the master.
    return Retry(
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
    sentinel = Sentinel(
        settings.get_addresses("SENTINELS", env),
        sentinel_kwargs={
            "password": password,
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
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
    )


__all__ = ["RedisError", "WriteNotReplicated", "connect_master", "is_store_unavailable", "make_backoff", "make_retry"]
