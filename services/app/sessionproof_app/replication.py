"""Which replicas must confirm a session write before no Sentinel failover can lose it (the hardened
layer's `SESSION_WAIT_REPLICAS=all`), and on which master. Why: docs/design.md ("`WAIT N` is not
consensus") and the README ("Wait for every replica Sentinel could promote")."""

from __future__ import annotations

import contextlib
import time
from typing import NamedTuple

from redis import Redis
from redis.exceptions import ConnectionError, ResponseError, TimeoutError
from redis.sentinel import SentinelConnectionPool

from .store import WriteNotReplicated

# Sentinel skips a replica whose link to the master has been down longer than this many times
# down-after-milliseconds (plus the master's own down time); any other replica it sees up may be promoted.
SENTINEL_LINK_DOWN_FACTOR = 10
# The Sentinel leading a failover may have seen the master down a few seconds before the one asked here.
LINK_DOWN_MARGIN_FACTOR = 5
_DIRECT_CONNECTION_KWARGS = ("username", "password", "socket_timeout", "socket_connect_timeout")


class Confirmers(NamedTuple):
    """Who must confirm a write: `count` replicas (WAIT), and it must go to `master`, the node the Sentinel
    asked names master (None: not asked)."""

    count: int
    master: tuple[str, int] | None


def replicas_that_must_confirm(client: Redis) -> Confirmers:
    """For the master the first Sentinel that answers names: every replica it has online, and every one
    that Sentinel could promote, whichever is more. Writes count only on that master.

    Online alone is not enough. A replica whose link broke (a congested master, a lost connection) is
    no longer online to the master, so WAIT counts without it; but Sentinel, from INFO up to 10 s old
    and offsets up to a second old, may still promote it, and then the writes only the online replica
    confirmed are gone (README, "Wait for every replica Sentinel could promote"). Sentinel skips
    replicas it sees down (not merely disconnected: the leading Sentinel may not be) or with a link
    down for longer than SENTINEL_LINK_DOWN_FACTOR x down-after-milliseconds plus the master's own
    down time; those need not confirm (with a margin, and none while the master is down).
    A replica that reports role master is either being promoted in this master's place (its replication
    history continues this master's: it must "confirm", which it never will, so the write waits for the
    new master) or a restarted old master Sentinel will convert (it need not). And once Sentinel has
    promoted another node, a write the old master's last replica confirms is lost when that replica
    resyncs: so it counts only on the master Sentinel names. The master's INFO is asked of that node
    itself, not through the client's pool, whose connections can point at the old and the new master at
    once during a failover. A client that is not Sentinel-managed, or no Sentinel answering, leaves the
    online count of the client's master.
    """
    pool = client.connection_pool
    view = _sentinel_view(pool) if isinstance(pool, SentinelConnectionPool) else None
    if view is None:
        return Confirmers(_online(client.info("replication")), None)
    master, replicas = view
    address = (master["ip"], master["port"])
    info = _info_of(pool, address)  # unreachable: ConnectionError, retried like any store outage
    if master["is_sdown"] or master["is_odown"]:
        # Sentinel adds the master's down time to the limit: while it may be failing over, any replica.
        longest_link_down_ms = float("inf")
    else:
        longest_link_down_ms = (SENTINEL_LINK_DOWN_FACTOR + LINK_DOWN_MARGIN_FACTOR) * master["down-after-milliseconds"]
    promotable = sum(
        1 for replica in replicas
        if not (replica["is_sdown"] or replica["is_odown"])  # disconnected from this Sentinel: maybe not the leader
        and replica.get("master-link-down-time", 0) <= longest_link_down_ms
        and (replica.get("role-reported") == "slave" or _promoted_from(pool, replica, info))
    )  # fmt: skip
    return Confirmers(max(_online(info), promotable), address)


class ConfirmersCache:
    """replicas_that_must_confirm(client), asked at most once per ttl_s (not a Sentinel round trip per write)."""

    def __init__(self, client: Redis, ttl_s: float):
        self.client, self.ttl_s = client, ttl_s
        self._cached: tuple[Confirmers, float] | None = None  # (the answer, when asked); threads share it

    def get(self, fresh: bool = False) -> Confirmers:
        cached = self._cached
        if fresh or cached is None or time.monotonic() - cached[1] > self.ttl_s:
            cached = self._cached = (replicas_that_must_confirm(self.client), time.monotonic())
        return cached[0]

    def forget(self) -> None:
        self._cached = None

    def require_master(self, node: tuple[str, int] | None) -> None:
        """Raise WriteNotReplicated if the write went to `node` while Sentinel names another master: an old
        master's last replica confirmed it, and will resync from the promoted one. Asked afresh before
        refusing, as after any failover the cached answer still names the old master."""
        if node is None or self.get().master in (None, node):
            return
        named = self.get(fresh=True).master
        if named not in (None, node):
            raise WriteNotReplicated(f"written to {node[0]}:{node[1]}, but Sentinel names {named[0]}:{named[1]}")


def _online(info: dict) -> int:
    return sum(
        1 for key, value in info.items() if key.startswith("slave") and isinstance(value, dict)
        and value.get("state") == "online"
    )  # fmt: skip


def _sentinel_view(pool: SentinelConnectionPool) -> tuple[dict, list[dict]] | None:
    """SENTINEL MASTER and SENTINEL REPLICAS from the first Sentinel that answers (the one that named the
    master comes first); None if none does."""
    sentinels = pool.sentinel_manager.sentinels
    for sentinel in list(sentinels):  # a copy: other threads may reorder the list meanwhile
        pipe = sentinel.pipeline(transaction=False)
        pipe.sentinel_master(pool.service_name)
        pipe.sentinel_slaves(pool.service_name)
        try:
            master, replicas = pipe.execute()
            return master, replicas
        except (ConnectionError, TimeoutError, ResponseError):
            # Last next time: an unreachable Sentinel costs a connect timeout per question, and the question
            # is asked within a request (measured: isolate-sentinel's p99 went from 10 ms to 281 ms without this).
            with contextlib.suppress(ValueError):  # another thread moved it first
                sentinels.remove(sentinel)
                sentinels.append(sentinel)
    return None


def _info_of(pool: SentinelConnectionPool, address: tuple[str, int]) -> dict:
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k in _DIRECT_CONNECTION_KWARGS}
    with Redis(host=address[0], port=address[1], **kwargs) as node:
        return node.info("replication")


def _promoted_from(pool: SentinelConnectionPool, replica: dict, master_info: dict) -> bool:
    """Whether a replica Sentinel last saw reporting role master must confirm: yes if it was promoted out
    of this master's history (PSYNC2: a promoted replica keeps its old master's replication id as
    master_replid2), so a failover is replacing this master; yes if it is a replica again by now (Sentinel
    turns a stray master back); no for a restarted old master, which has a history of its own.
    Unreachable from here: yes (the write then waits, it is not lost)."""
    try:
        info = _info_of(pool, (replica["ip"], replica["port"]))
    except (ConnectionError, TimeoutError, ResponseError):
        return True
    return info.get("role") != "master" or str(info.get("master_replid2")) == str(master_info.get("master_replid"))
