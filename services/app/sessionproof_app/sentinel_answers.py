"""Which Sentinels did not answer lately. A request does not ask them: each would cost it a connect timeout
(REDIS_CONNECT_TIMEOUT_S) while the Sentinel is cut off. The hardened layer's background refresher
(confirmers_cache.py) asks them again, off the request path, and clears them once they answer.

Only the hardened layer lists a Sentinel here (its questions of who must confirm a write, and the refresher's
probes); master discovery (store.StoreSentinel) honours the list and clears a Sentinel that answers it."""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable

from redis import Redis
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

# A listed Sentinel is skipped for this long unless a probe hears from it sooner. The refresher probes each listed
# Sentinel every round (confirmers_cache.py: 0.5 s, 0.1 s while requests retry); the limit matters only when
# nothing probes (an idle app).
UNANSWERED_SKIP_S = 5.0
_unanswered_until: weakref.WeakKeyDictionary[Redis, float] = weakref.WeakKeyDictionary()  # -> monotonic time


def skipped(sentinel: Redis, now: float | None = None) -> bool:
    """Whether `sentinel` did not answer within the last UNANSWERED_SKIP_S (and no probe heard it since)."""
    return _unanswered_until.get(sentinel, 0.0) > (time.monotonic() if now is None else now)


def did_not_answer(sentinel: Redis) -> None:
    _unanswered_until[sentinel] = time.monotonic() + UNANSWERED_SKIP_S


def answered(sentinel: Redis) -> None:
    _unanswered_until.pop(sentinel, None)


def probe_skipped(sentinels: Iterable[Redis]) -> None:
    """PING every skipped Sentinel once: one that answers is asked again from now on, one that does not stays
    skipped for another UNANSWERED_SKIP_S. Costs up to a connect timeout per skipped Sentinel: call it off the
    request path."""
    for sentinel in list(sentinels):
        if not skipped(sentinel):
            continue
        try:
            sentinel.ping()
        except (ConnectionError, TimeoutError, ResponseError):
            did_not_answer(sentinel)
        else:
            answered(sentinel)
