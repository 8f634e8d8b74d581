"""Who must confirm a write (SESSION_WAIT_REPLICAS=all), asked of real Sentinels."""

from __future__ import annotations

import socket
import threading
from types import SimpleNamespace

import pytest
from redis.exceptions import ConnectionError

from sessionproof_app import replication

pytestmark = pytest.mark.redis


def test_a_client_without_sentinel_requires_the_online_replicas(redis_client, redis_server):
    """The unit tests' plain client (one master, one replica): no Sentinel to ask, no master to compare."""
    confirmers = replication.replicas_that_must_confirm(redis_client)
    replica = frozenset({("127.0.0.1", redis_server["replica_port"])})
    assert confirmers == replication.Confirmers(replica, None, replica) and confirmers.ready


def test_in_sync_reads_the_replicas_a_master_lists_online(redis_client, redis_server):
    """From a real master's INFO replication (the answer's `online`, which says when a paused retry may wake)."""
    assert replication.in_sync(redis_client.info("replication")) == {("127.0.0.1", redis_server["replica_port"])}
    syncing = {"slave0": {"ip": "10.0.0.11", "port": 6380, "state": "wait_bgsave", "offset": 0, "lag": 0}}
    assert replication.in_sync({**syncing, "role": "master", "connected_slaves": 1}) == frozenset()
    required = frozenset({("10.0.0.11", 6380), ("10.0.0.12", 6380)})
    assert not replication.Confirmers(required, None, frozenset({("10.0.0.11", 6380)})).ready
    assert replication.Confirmers(required, None, required).ready
    assert not replication.Confirmers(frozenset(), None, frozenset()).ready  # a write needs one replica


def test_a_replica_being_promoted_must_confirm_even_when_every_sentinel_sees_it_down():
    """Sentinel's failover chose it (flag `promoted`, SLAVEOF NO ONE sent) and it was paused before it answered;
    the old master came back and acknowledged writes that only the other replica confirmed; the chosen one
    then resumed, became master, and those writes were gone (230 lost in the 50-minute campaign of seed 7)."""
    master = {"is_sdown": False, "is_odown": False, "down-after-milliseconds": 1000}
    chosen = {"ip": "10.0.0.11", "port": 6380, "role-reported": "slave", "flags": "slave,s_down,promoted",
              "is_sdown": True, "is_odown": False, "slave-priority": 100, "master-link-down-time": 0}  # fmt: skip
    assert replication._promotable(None, master, chosen, {}, own_state_only=False)
    seen_down = {**chosen, "flags": "slave,s_down"}  # the same replica, not chosen: every Sentinel sees it down
    assert not replication._promotable(None, master, seen_down, {}, own_state_only=False)


def _replica(ip: str, role: str = "slave", flags: str = "slave", **state) -> dict:
    """One entry of SENTINEL REPLICAS as redis-py parses it."""
    names = flags.split(",")
    return {"ip": ip, "port": 6379, "role-reported": role, "flags": flags, "slave-priority": 100,
            "runid": "5f" * 20, "master-link-down-time": 0, "is_sdown": "s_down" in names, "is_odown": "o_down" in names,
            "is_disconnected": "disconnected" in names, **state}  # fmt: skip


def _master(ip: str, down: bool = False) -> dict:
    return {"ip": ip, "port": 6379, "is_sdown": down, "is_odown": down, "down-after-milliseconds": 1000}


# A master kill as measured (make experiment SCENARIO=failover-redis-kill): 1.985 s after the kill two Sentinels
# had switched to the promoted .11, whose other replica .12 had been told to follow it; the leader, still
# reconfiguring .12, named the dead .13 until 2.947 s. The dead .13 is the new master's replica, disconnected.
LEADER_STILL_FAILING_OVER = (
    _master("10.0.0.13", down=True),
    [_replica("10.0.0.11", role="master", flags="slave,promoted"), _replica("10.0.0.12", flags="slave,reconf_sent")],
)
SWITCHED = (_master("10.0.0.11"), [_replica("10.0.0.12"), _replica("10.0.0.13", flags="slave,disconnected")])
NEW_MASTER = ("10.0.0.11", 6379)


def test_a_sentinel_still_finishing_a_failover_does_not_hold_writes_to_the_promoted_master():
    """Every Sentinel answered: each one's replicas are judged by its own flags, the lagging leader's too. The
    writes to .11 need .12 (a candidate in every view) and not the dead .13, which no Sentinel could promote:
    they count from the moment .12 follows .11, not a second later when the leader has finished."""
    views = [LEADER_STILL_FAILING_OVER, SWITCHED, SWITCHED]
    assert replication.required_replicas(None, views, NEW_MASTER, True, {}) == {("10.0.0.12", 6379)}


def test_the_promoted_master_is_named_though_the_leader_names_the_old_one_under_the_same_epoch():
    """The leader takes the failover's epoch when it sees the promotion, and keeps naming the old master until it
    has reconfigured the last replica; the two others name the promoted master under that epoch. Whichever
    Sentinel answers first, the writes go to the promoted master (not to the dead one for a second)."""
    leader = ({**LEADER_STILL_FAILING_OVER[0], "config-epoch": 8, "flags": "s_down,o_down,master,failover_in_progress"},
              LEADER_STILL_FAILING_OVER[1])  # fmt: skip
    switched = ({**SWITCHED[0], "config-epoch": 8, "flags": "master,disconnected"}, SWITCHED[1])
    assert replication.named_master([leader, switched, switched]) == NEW_MASTER
    assert replication.named_master([switched, leader]) == NEW_MASTER
    # A newer epoch wins even when its master is down: it is the newest configuration.
    newer_down = ({**leader[0], "config-epoch": 9}, leader[1])
    assert replication.named_master([switched, newer_down]) == ("10.0.0.13", 6379)


def test_a_replica_a_sentinel_never_had_an_info_reply_from_is_not_required_by_that_sentinels_view():
    """After a partitioned master's failover, the switched Sentinels list it as the new master's replica: no INFO
    from it yet (empty run id), neither down nor disconnected while their connects hang. Sentinel would not
    promote it (sentinelSelectSlave: INFO too old), so writes to the new master need only .12."""
    unreached = _replica("10.0.0.13", runid="")  # as SENTINEL REPLICAS lists it before its first INFO reply
    switched = (SWITCHED[0], [_replica("10.0.0.12"), unreached])
    views = [LEADER_STILL_FAILING_OVER, switched, switched]
    assert replication.required_replicas(None, views, NEW_MASTER, True, {}) == {("10.0.0.12", 6379)}
    # A Sentinel that did not answer may have had INFO from it: then it is required.
    assert ("10.0.0.13", 6379) in replication.required_replicas(None, [switched], NEW_MASTER, False, {})


def test_a_lagging_sentinel_that_could_still_promote_a_replica_makes_it_required():
    """A replica the switched Sentinels see down, but the lagging one does not: the lagging one could promote it."""
    seen_down = (SWITCHED[0], [_replica("10.0.0.12", flags="slave,s_down"), SWITCHED[1][1]])
    views = [seen_down, seen_down, LEADER_STILL_FAILING_OVER]
    assert replication.required_replicas(None, views, NEW_MASTER, True, {}) == {("10.0.0.12", 6379)}
    assert replication.required_replicas(None, [seen_down, seen_down, seen_down], NEW_MASTER, True, {}) == set()


def test_when_a_sentinel_does_not_answer_only_a_replicas_own_state_rules_it_out():
    """The Sentinel nobody asked may see the dead .13 up (it is not: but its view is unknown), so .13 is required
    too and the writes wait; a replica at priority 0 is out in any Sentinel's view."""
    views = [SWITCHED, SWITCHED]
    assert replication.required_replicas(None, views, NEW_MASTER, False, {}) == {
        ("10.0.0.12", 6379),
        ("10.0.0.13", 6379),
    }
    priority_0 = (
        SWITCHED[0],
        [SWITCHED[1][0], _replica("10.0.0.13", flags="slave,disconnected", **{"slave-priority": 0})],
    )
    assert replication.required_replicas(None, [priority_0], NEW_MASTER, False, {}) == {("10.0.0.12", 6379)}


def test_a_node_that_refuses_is_asked_once_not_retried_for_seconds():
    """replicas_that_must_confirm asks the named master (and a replica reporting role master) for INFO directly.
    A dead node must fail that question at once: with redis-py's default retries (10, with backoff) every
    request that refreshed the confirmers during a failover waited about 4.5 s on the dead master."""
    connections = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(32)
        listener.settimeout(0.05)
        address = listener.getsockname()

        def accept_and_close(stop):
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                connections.append(conn)
                conn.close()  # as a node that died mid-handshake: the client's connect fails

        stop = threading.Event()
        acceptor = threading.Thread(target=accept_and_close, args=(stop,))
        acceptor.start()
        try:
            pool = SimpleNamespace(connection_kwargs={"socket_connect_timeout": 0.25, "socket_timeout": 0.25})
            with pytest.raises(ConnectionError):
                replication._info_of(pool, address)
        finally:
            stop.set()
            acceptor.join()
    assert len(connections) == 1
