"""Which replicas must confirm a session write before no Sentinel failover can lose it (the hardened
layer's `SESSION_WAIT_REPLICAS=all`), and on which master. Why: docs/design.md ("`WAIT N` is not
consensus") and the README ("Wait for every replica Sentinel could promote")."""

from __future__ import annotations

import time
from typing import NamedTuple

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, ResponseError, TimeoutError
from redis.retry import Retry
from redis.sentinel import SentinelConnectionPool

from . import sentinel_answers, store
from .store import WriteNotReplicated

# Sentinel skips a replica whose link to the master has been down longer than this many times
# down-after-milliseconds (plus the master's own down time); any other replica it sees up may be promoted.
SENTINEL_LINK_DOWN_FACTOR = 10
# The Sentinel leading a failover may have seen the master down a few seconds before the one asked here.
LINK_DOWN_MARGIN_FACTOR = 5
WAIT_RECHECK_S = 0.002  # between looks at which replicas acknowledged a write, after WAIT returned
_DIRECT_CONNECTION_KWARGS = ("username", "password", "socket_timeout", "socket_connect_timeout")


Address = tuple[str, int]


class Confirmers(NamedTuple):
    """Who must confirm a write: each replica in `required` (by address, checked by its acknowledged offset, not
    counted), and it must go to `master`, the node the Sentinels name (None: not asked). `required` may be empty
    (no replica could be promoted): a write then still needs one replica's acknowledgement (`count`)."""

    required: frozenset[Address]
    master: Address | None
    online: frozenset[Address] = frozenset()  # the replicas the master listed in sync when asked

    @property
    def count(self) -> int:
        """How many replicas WAIT asks for first: every required one, and at least one."""
        return max(1, len(self.required))

    @property
    def ready(self) -> bool:
        """Whether, when asked, the master could take a write at once: every required replica (at least one replica)
        was in sync with it. Not a promise (a replica's acknowledgement may still lag): a moment to try again."""
        return bool(self.online) and self.required <= self.online


def replicas_that_must_confirm(client: Redis) -> Confirmers:
    """For the master the Sentinels name (the newest configuration among those that answer): every replica that
    any Sentinel could promote. Writes count only on that master.

    Which replicas, not how many: a replica the Sentinels cannot see (down in every Sentinel's view) may
    confirm a write while the one Sentinel will promote, whose link to the master broke, never gets it (20
    of 20 acknowledged writes were lost that way with WAIT counting). A replica is left out only when every
    Sentinel (all of them answered, whichever master each names) says Sentinel's own choice
    (sentinelSelectSlave) would skip it: seen down or disconnected, replica-priority 0, or a link to the master
    down longer than SENTINEL_LINK_DOWN_FACTOR x down-after-milliseconds (with a margin, and none while the
    master is down, when Sentinel adds the master's down time). A Sentinel that does not answer may be the one
    to lead a failover, with a view nobody asked: then every replica not ruled out by its own state
    (priority 0, a link down too long) must confirm. So one hung replica that every Sentinel has marked down
    (within down-after-milliseconds) no longer holds writes until the master's repl-timeout drops it.
    A replica that reports role master is either being promoted in this master's place (its replication
    history continues this master's: it must "confirm", which it never will, so the write waits for the
    new master) or a restarted old master Sentinel will convert (it need not). And once Sentinel has
    promoted another node, a write the old master's last replica confirms is lost when that replica
    resyncs: so it counts only on the master Sentinel names. A client that is not Sentinel-managed, or no
    Sentinel answering, requires the replicas online at the client's master.
    """
    pool = client.connection_pool
    views = _sentinel_views(pool) if isinstance(pool, SentinelConnectionPool) else None
    if not views:
        online = frozenset(_online(client.role()))
        return Confirmers(online, None, online)
    address = named_master(views)
    every_sentinel_answered = len(views) == len(pool.sentinel_manager.sentinels)
    master_info = _info_of(pool, address)  # unreachable: ConnectionError, retried like any store outage
    required = required_replicas(pool, views, address, every_sentinel_answered, master_info)
    return Confirmers(required, address, in_sync(master_info))


def in_sync(master_info: dict) -> frozenset[Address]:
    """The replicas a master's INFO replication lists as online (in sync; not waiting for or loading a full sync)."""
    return frozenset(
        (str(replica["ip"]), int(replica["port"]))
        for key, replica in master_info.items()
        if key.startswith("slave") and isinstance(replica, dict) and replica.get("state") == "online"
    )


def named_master(views: list[tuple[dict, list[dict]]]) -> Address:
    """The master of the newest configuration (highest config-epoch) among the Sentinels' views. Of two views
    with the same epoch, one whose master is not down and not being failed over: the Sentinel leading a failover
    takes the new epoch as soon as the promotion is seen, yet names the old master until its last replica is
    reconfigured (about 1 s later), while the others already name the promoted one under that same epoch.
    Taking the first of the tie, as before, sent every write to the dead old master for that second whenever
    the leader was asked first (a kill's longest stall 3.0-3.6 s instead of 1.7-2.5 s)."""

    def rank(view: tuple[dict, list[dict]]) -> tuple[int, bool]:
        master = view[0]
        settled = not (master.get("is_sdown") or master.get("is_odown") or _flagged(master, "failover_in_progress"))
        return store.config_epoch(master), settled

    newest = max(views, key=rank)[0]
    return newest["ip"], int(newest["port"])


def required_replicas(
    pool, views: list[tuple[dict, list[dict]]], address: Address, every_sentinel_answered: bool, master_info: dict
) -> frozenset[Address]:
    """The replicas any of these Sentinel views could promote, writing to the master at `address`.

    Every view counts, also one that still names an older master: the Sentinel leading a failover names the
    old master until its last replica is reconfigured (measured: 1 s after the other two Sentinels switched,
    and writes waited for it), and a Sentinel that lags could lead the next failover, from its own list of
    replicas. So each view's replicas are judged by that Sentinel's own flags, as it would judge them; the
    node written to is no candidate. Only when a Sentinel did not answer, whose view nobody knows, are the
    replicas judged by their own state alone (own_state_only)."""
    required: set[Address] = set()
    for master, replicas in views:
        for replica in replicas:
            key = (replica["ip"], int(replica["port"]))
            if key == address or key in required:
                continue
            if _promotable(pool, master, replica, master_info, own_state_only=not every_sentinel_answered):
                required.add(key)
    return frozenset(required)


def _promotable(pool, master: dict, replica: dict, master_info: dict, own_state_only: bool) -> bool:
    """Whether the Sentinel whose view this is could promote `replica`; own_state_only: whether any Sentinel
    could, judged only by the replica's own state, which every Sentinel reads alike from its INFO (for a
    Sentinel that did not answer)."""
    if _flagged(replica, "promoted"):
        # The replica this Sentinel's failover has chosen: it is being promoted (SLAVEOF NO ONE sent), whether it
        # is seen down or not, and once it answers it becomes the master. A write it has not confirmed is lost
        # then: a campaign lost 230 of 87,435 when the chosen replica was paused mid-promotion and the old master
        # came back meanwhile and acknowledged writes the promoted one never got.
        return True
    if master["is_sdown"] or master["is_odown"]:
        # Sentinel adds the master's down time to the limit: while it may be failing over, any link age.
        longest_link_down_ms = float("inf")
    else:
        longest_link_down_ms = (SENTINEL_LINK_DOWN_FACTOR + LINK_DOWN_MARGIN_FACTOR) * master["down-after-milliseconds"]
    if replica.get("slave-priority", 100) == 0 or replica.get("master-link-down-time", 0) > longest_link_down_ms:
        return False
    if not own_state_only and (replica["is_sdown"] or replica["is_odown"] or replica.get("is_disconnected")):
        return False
    if not own_state_only and not replica.get("runid"):
        # This Sentinel has had no INFO reply from it since it listed it (the run id comes with the first), and
        # sentinelSelectSlave skips a replica whose last INFO is older than a few seconds, so one never answered
        # always. After a failover the old master is listed as the new master's replica: partitioned, it is
        # neither seen down nor disconnected for down-after-milliseconds (its connect hangs), and writes waited
        # for it until the request's budget ran out (partition-redis-master: p99 5.9 s, 2 x 503).
        return False
    return replica.get("role-reported") == "slave" or _promoted_from(pool, replica, master_info)


def _flagged(state: dict, flag: str) -> bool:
    """Whether a Sentinel's state of an instance lists `flag` (redis-py parses only some flags into is_* keys)."""
    return flag in str(state.get("flags", "")).split(",")


def execute_confirmed(
    client: Redis, confirmers_cache, pipe, writes: int, check, timeout_ms: int, wait_aof: bool = False
) -> list:
    """Run `pipe`, whose first `writes` commands are a write, and return their replies once the write counts:
    `check(replies)` raised nothing, and every replica that must confirm it (replicas_that_must_confirm) has.

    ROLE right after the write gives the master's offset, WAIT asks the replicas to acknowledge, and ROLE
    after it says which did: each replica that must confirm must have acknowledged that offset, on the same
    master. A count is not enough: the replica that confirmed may be one Sentinel would never promote.
    wait_aof (SESSION_WAIT_AOF): WAITAOF, on the same connection, must also report the write fsynced on the master
    and on as many replicas as could have to confirm it (aof_replicas)."""
    confirmers = confirmers_cache.get()
    deadline = time.monotonic() + timeout_ms / 1000
    pipe.role()
    pipe.wait(confirmers.count, timeout_ms)
    pipe.role()
    if wait_aof:
        pipe.execute_command("WAITAOF", 1, aof_replicas(confirmers), timeout_ms)
    replies = pipe.execute()
    check(replies)
    if wait_aof:
        require_fsynced(replies[writes + 3], aof_replicas(confirmers), timeout_ms)
    node = store.last_node(client)
    offset, role = master_offset(replies[writes]), replies[writes + 2]
    # WAIT returns once `count` replicas acknowledged, maybe not the required ones: their answers to the
    # same GETACK follow within moments, so look again (on the same node) until the wait's deadline.
    while not _confirmed(confirmers, role, offset) and time.monotonic() < deadline:
        time.sleep(WAIT_RECHECK_S)
        store.forget_last_node()
        role = client.role()
        if store.last_node(client) != node:
            break  # another node answered: its offsets say nothing of this write
    if not _confirmed(confirmers, role, offset):
        confirmers_cache.forget()  # the master or its replicas may have changed: look again
        lacking = missing(confirmers, role, offset)
        raise WriteNotReplicated(
            f"not confirmed within {timeout_ms} ms by "
            + (", ".join(f"{ip}:{port}" for ip, port in lacking) if lacking else "any replica")
        )
    confirmers_cache.require_master(node)
    return replies[:writes]


def aof_replicas(confirmers: Confirmers) -> int:
    """How many replicas WAITAOF asks for: every replica that must confirm and every one the master listed in sync.
    WAITAOF counts (which replicas fsynced is not reported): counting all in sync, the required ones are among
    them. A replica in sync but not required then holds the write (503 on its timeout), never the reverse."""
    return max(confirmers.count, len(confirmers.online | confirmers.required))


def require_fsynced(reply: list, replicas: int, timeout_ms: int) -> None:
    """WAITAOF's reply [local, replicas]: raise WriteNotReplicated unless the master and `replicas` fsynced."""
    local, fsynced = int(reply[0]), int(reply[1])
    if local < 1 or fsynced < replicas:
        raise WriteNotReplicated(
            f"not fsynced within {timeout_ms} ms: the master {'has' if local else 'has not'}, "
            f"{fsynced} of {replicas} replicas have (WAITAOF)"
        )


def execute_counted(pipe, writes: int, check, count: int, timeout_ms: int) -> list:
    """SESSION_WAIT_REPLICAS=N: WAIT N, a count (which replicas is not checked)."""
    pipe.wait(count, timeout_ms)
    replies = pipe.execute()
    check(replies)
    if replies[writes] < count:
        raise WriteNotReplicated(f"WAIT: {replies[writes]} of {count} replicas confirmed within {timeout_ms} ms")
    return replies[:writes]


def _confirmed(confirmers: Confirmers, role: list, offset: int) -> bool:
    if confirmers.required:
        return not missing(confirmers, role, offset)
    return acknowledged_count(role, offset) >= 1


def _online(role: list) -> dict[Address, int]:
    """ROLE of a master: [b"master", offset, [[ip, port, acknowledged offset], ...]] (online replicas only) ->
    {(ip, port): acknowledged offset}. Of a replica (a client pointed at a demoted master): {}."""
    if not role or _text(role[0]) != "master":
        return {}
    return {(_text(ip), int(port)): int(offset) for ip, port, offset in role[2]}


def master_offset(role: list) -> int:
    """The master's replication offset in a ROLE reply (0 for a node that is not a master)."""
    return int(role[1]) if role and _text(role[0]) == "master" else 0


def missing(confirmers: Confirmers, role: list, offset: int) -> list[Address]:
    """The required replicas whose acknowledged offset in `role` (a ROLE reply taken after WAIT) is below
    `offset` (the master's offset right after the write): those that have not confirmed it."""
    acknowledged = _online(role)
    return sorted(r for r in confirmers.required if acknowledged.get(r, -1) < offset)


def acknowledged_count(role: list, offset: int) -> int:
    """How many replicas (required or not) have acknowledged `offset`."""
    return sum(1 for acked in _online(role).values() if acked >= offset)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _sentinel_views(pool: SentinelConnectionPool) -> list[tuple[dict, list[dict]]]:
    """SENTINEL MASTER and SENTINEL REPLICAS from every Sentinel that answers (one round trip each). A Sentinel that
    did not answer lately is not asked (sentinel_answers.py): it counts as not answering."""
    views = []
    now = time.monotonic()
    for sentinel in list(pool.sentinel_manager.sentinels):  # a copy: other threads may reorder the list
        if sentinel_answers.skipped(sentinel, now):
            continue  # without a connect timeout per ask (isolate-sentinel's p99 went from 10 ms to 281 ms)
        pipe = sentinel.pipeline(transaction=False)
        pipe.sentinel_master(pool.service_name)
        pipe.sentinel_slaves(pool.service_name)
        try:
            master, replicas = pipe.execute()
        except (ConnectionError, TimeoutError, ResponseError):
            sentinel_answers.did_not_answer(sentinel)
            continue
        sentinel_answers.answered(sentinel)
        views.append((master, replicas))
    return views


def _info_of(pool: SentinelConnectionPool, address: tuple[str, int]) -> dict:
    """INFO replication of one node, asked once. Without retries: redis-py's default client retries a refused
    connect 10 times with backoff, and a dead master then held every request that refreshed the confirmers
    for about 4.5 s (a single kill-redis-master's p99 went from 2.9 s to 5.8 s). The caller's retry (the
    request's budget) asks again, of whichever node Sentinel names by then."""
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k in _DIRECT_CONNECTION_KWARGS}
    with Redis(host=address[0], port=address[1], retry=Retry(NoBackoff(), 0), **kwargs) as node:
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
