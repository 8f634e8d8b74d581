"""How the app's Redis client is wired: Sentinel discovery, timeouts, retries, error classes."""

from __future__ import annotations

import pytest
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from sessionproof_app import store
from support import free_port_block


def test_the_master_client_has_timeouts_and_a_retry_policy():
    client = store.connect_master({"REDIS_RETRIES": "4", "REDIS_SOCKET_TIMEOUT_S": "0.3"})
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.3
    assert kwargs["socket_connect_timeout"] == 0.25
    assert kwargs["retry"].get_retries() == 4
    assert client.connection_pool.service_name == "sessionproof"
    assert client.connection_pool.connection_class is store.NodeRecordingConnection
    sentinels = client.connection_pool.sentinel_manager
    assert isinstance(sentinels, store.StoreSentinel)
    # Each Sentinel is asked once per discovery; the master connection's Retry re-runs discovery.
    assert all(s.get_retry().get_retries() == 0 for s in sentinels.sentinels)


def store_sentinel(addresses, password, cls=store.StoreSentinel):
    # As connect_master builds it: short timeouts, one try per Sentinel.
    kwargs = {"password": password, "socket_timeout": 0.5, "socket_connect_timeout": 0.25}
    return cls(addresses, sentinel_kwargs={**kwargs, "retry": Retry(NoBackoff(), 0)})


@pytest.mark.redis
@pytest.mark.parametrize("order", [("old", "new"), ("new", "old")])
def test_store_sentinel_takes_the_master_with_the_highest_config_epoch(split_brain_sentinels, order):
    brain = split_brain_sentinels
    addresses = [brain[side]["sentinel"] for side in order]
    with store_sentinel(addresses, brain["password"]) as sentinel:
        assert sentinel.discover_master(brain["name"]) == ("127.0.0.1", brain["new"]["master_port"])
    # redis-py's own Sentinel takes whichever Sentinel answers first: the reason StoreSentinel exists.
    with store_sentinel(addresses, brain["password"], cls=Sentinel) as plain:
        assert plain.discover_master(brain["name"]) == ("127.0.0.1", brain[order[0]]["master_port"])


@pytest.mark.redis
def test_store_sentinel_skips_an_unreachable_sentinel(split_brain_sentinels):
    brain = split_brain_sentinels
    nobody = ("127.0.0.1", free_port_block(1))
    with store_sentinel([nobody, brain["old"]["sentinel"]], brain["password"]) as sentinel:
        assert sentinel.discover_master(brain["name"]) == ("127.0.0.1", brain["old"]["master_port"])
        assert sentinel.sentinels[0].connection_pool.connection_kwargs["port"] == brain["old"]["sentinel_port"]


@pytest.mark.redis
def test_store_sentinel_honours_force_master_ip(split_brain_sentinels):
    brain = split_brain_sentinels
    sentinel = store.StoreSentinel(
        [brain["new"]["sentinel"]], sentinel_kwargs={"password": brain["password"]}, force_master_ip="10.9.8.7"
    )
    with sentinel:
        assert sentinel.discover_master(brain["name"]) == ("10.9.8.7", brain["new"]["master_port"])


def test_no_sentinel_answering_raises_sentinels_unreachable_naming_each():
    base = free_port_block(2)
    addresses = [("127.0.0.1", base), ("127.0.0.1", base + 1)]
    with store_sentinel(addresses, "x") as sentinel, pytest.raises(store.SentinelsUnreachable) as raised:
        sentinel.discover_master("sessionproof")
    assert isinstance(raised.value, MasterNotFoundError)
    for _, port in addresses:
        assert f"127.0.0.1:{port} ConnectionError: Error 111 connecting" in str(raised.value)


@pytest.mark.redis
def test_sentinels_that_answer_without_a_healthy_master_raise_master_not_found(split_brain_sentinels):
    brain = split_brain_sentinels
    nobody = ("127.0.0.1", free_port_block(1))
    sentinel = store_sentinel([nobody, brain["new"]["sentinel"]], brain["password"])
    with sentinel, pytest.raises(MasterNotFoundError) as raised:
        sentinel.discover_master("not-monitored")
    assert not isinstance(raised.value, store.SentinelsUnreachable)
    assert f"127.0.0.1:{nobody[1]}" in str(raised.value)


def test_sentinels_unreachable_is_found_behind_the_error_it_caused():
    cause = store.SentinelsUnreachable("No Sentinel answered")
    try:
        try:
            raise cause
        except store.SentinelsUnreachable as error:
            raise ConnectionError("wrapped") from error
    except ConnectionError as wrapped:
        assert store.sentinels_unreachable(wrapped) is cause
    assert store.sentinels_unreachable(cause) is cause
    assert store.sentinels_unreachable(MasterNotFoundError("No master found")) is None
    assert store.sentinels_unreachable(None) is None
