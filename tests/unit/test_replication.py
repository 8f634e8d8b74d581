"""Who must confirm a write (SESSION_WAIT_REPLICAS=all), asked of real Sentinels."""

from __future__ import annotations

import pytest

from sessionproof_app import replication, store

pytestmark = pytest.mark.redis


def test_a_write_counts_only_on_the_master_sentinel_names(split_brain_sentinels):
    """An old master's last replica can confirm a write that its resync from the promoted master then drops."""
    brain = split_brain_sentinels
    client = store.connect_master(
        {
            "SENTINELS": "{}:{}".format(*brain["new"]["sentinel"]),
            "REDIS_MASTER_NAME": brain["name"],
            "REDIS_PASSWORD": brain["password"],
        }
    )
    new_master, old_master = ("127.0.0.1", brain["new"]["master_port"]), ("127.0.0.1", brain["old"]["master_port"])
    try:
        confirmers = replication.ConfirmersCache(client, ttl_s=60)
        # The new side's master has no replica: none online, none Sentinel could promote.
        assert confirmers.get() == replication.Confirmers(frozenset(), new_master)
        confirmers.require_master(new_master)
        confirmers.require_master(None)  # a client that does not record its node: nothing to compare
        with pytest.raises(store.WriteNotReplicated, match=f"but Sentinel names 127.0.0.1:{new_master[1]}"):
            confirmers.require_master(old_master)
    finally:
        client.close()


def test_a_client_without_sentinel_requires_the_online_replicas(redis_client, redis_server):
    """The unit tests' plain client (one master, one replica): no Sentinel to ask, no master to compare."""
    confirmers = replication.replicas_that_must_confirm(redis_client)
    assert confirmers == replication.Confirmers(frozenset({("127.0.0.1", redis_server["replica_port"])}), None)


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
