"""Who must confirm a write, kept fresh off the request path (confirmers_cache.py), and the Sentinels a request
does not wait on (sentinel_answers.py), against real Sentinels where it matters."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from sessionproof.waiting import wait_until
from sessionproof_app import replication, sentinel_answers, store
from sessionproof_app.confirmers_cache import ConfirmersCache

pytestmark = pytest.mark.redis

OLD, NEW = ("10.0.0.11", 6379), ("10.0.0.13", 6379)


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
    confirmers = ConfirmersCache(client, ttl_s=60)
    try:
        # The new side's master has no replica: none online, none Sentinel could promote.
        assert confirmers.get() == replication.Confirmers(frozenset(), new_master)
        confirmers.require_master(new_master)
        confirmers.require_master(None)  # a client that does not record its node: nothing to compare
        with pytest.raises(store.WriteNotReplicated, match=f"but Sentinel names 127.0.0.1:{new_master[1]}"):
            confirmers.require_master(old_master)
    finally:
        confirmers.close()
        client.close()


def test_with_no_sentinel_answering_the_last_answer_still_binds(monkeypatch):
    """The apps cut from every Sentinel, the master's link to .11 congested so only .12 is online: a 2-hour campaign
    lost 10 writes that .12 alone confirmed when Sentinel promoted .11. The last answer (.11 and .12, on .13) holds."""
    master = ("10.0.0.13", 6379)
    answers = iter(
        [
            replication.Confirmers(frozenset({("10.0.0.11", 6379), ("10.0.0.12", 6379)}), master),
            replication.Confirmers(frozenset({("10.0.0.12", 6379)}), None),  # no Sentinel: the online replicas
        ]
    )
    monkeypatch.setattr(replication, "replicas_that_must_confirm", lambda client: next(answers))
    cache = ConfirmersCache(client=None, ttl_s=60)
    assert cache.get().master == master
    held = cache.get(fresh=True)
    assert held == replication.Confirmers(frozenset({("10.0.0.11", 6379), ("10.0.0.12", 6379)}), master)


def test_without_any_sentinel_answer_ever_the_online_replicas_are_required(monkeypatch):
    online = replication.Confirmers(frozenset({("127.0.0.1", 6380)}), None)
    monkeypatch.setattr(replication, "replicas_that_must_confirm", lambda client: online)
    assert ConfirmersCache(client=None, ttl_s=60).get() == online


def test_threads_that_find_the_answer_too_old_ask_once(monkeypatch):
    """A burst of requests after the answer expired: before, each asked the Sentinels itself (and each paid a connect
    timeout for a Sentinel cut off). One asks; the others wait for its answer."""
    asked = []

    def slow_answer(client):
        asked.append(threading.get_ident())
        time.sleep(0.05)  # a Sentinel round trip, long enough for every thread to find the answer missing
        return replication.Confirmers(frozenset({OLD}), NEW)

    monkeypatch.setattr(replication, "replicas_that_must_confirm", slow_answer)
    cache = ConfirmersCache(client=None, ttl_s=60)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(cache.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(asked) == 1 and len(answers) == 8 and set(answers) == {replication.Confirmers(frozenset({OLD}), NEW)}


def test_an_answer_asked_before_forget_is_not_used(monkeypatch):
    """A retry after a store error forgets the answer (it may name the old master). One whose question was already
    under way when forget() came must not be used either: the refresher's, finishing just after a failover."""
    release, answers = threading.Event(), iter([OLD, NEW])

    def answer(client):
        master = next(answers)
        if master == OLD:
            release.wait(5)  # the question began before forget() and ends after it
        return replication.Confirmers(frozenset(), master)

    monkeypatch.setattr(replication, "replicas_that_must_confirm", answer)
    cache = ConfirmersCache(client=None, ttl_s=60)
    asking = threading.Thread(target=cache.get)
    asking.start()
    wait_until(lambda: cache._asking.locked(), 5, "the first question to begin")
    cache.forget()
    release.set()
    asking.join(5)
    assert cache.get().master == NEW


def sentinel_client(brain, sentinels):
    return store.connect_master(
        {
            "SENTINELS": ",".join(f"{host}:{port}" for host, port in sentinels),
            "REDIS_MASTER_NAME": brain["name"],
            "REDIS_PASSWORD": brain["password"],
        }
    )


def test_a_paused_sentinel_costs_one_question_then_is_probed_off_the_request_path(split_brain_sentinels):
    """isolate-sentinel: every request that asked who must confirm (and every new connection's discovery) waited
    for the cut-off Sentinel's timeout, once per 5 s per process and in bursts (p99 0.26-0.51 s). Now the first
    question pays it, the refresher keeps the answer fresh and probes the Sentinel, and nothing on the request path
    waits on it; once it answers again it is asked again."""
    brain = split_brain_sentinels
    paused = brain["old"]["sentinel_process"]
    client = sentinel_client(brain, [brain["old"]["sentinel"], brain["new"]["sentinel"]])
    cache = ConfirmersCache(client, ttl_s=1.0)
    new_master = ("127.0.0.1", brain["new"]["master_port"])
    old_sentinel = client.connection_pool.sentinel_manager.sentinels[0]
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        assert cache.get().master == new_master  # pays the paused Sentinel's socket timeout once
        assert sentinel_answers.skipped(old_sentinel)
        first_asked = cache._cached[1]
        wait_until(lambda: cache._cached[1] > first_asked, 3, "the refresher to ask again")  # no get() meanwhile
        started = time.monotonic()
        assert cache.get(fresh=True).master == new_master
        discovered = client.connection_pool.sentinel_manager.discover_master(brain["name"])
        elapsed_s = time.monotonic() - started
        assert discovered == new_master
        assert elapsed_s < 0.2, f"a question and a discovery took {elapsed_s:.3f} s: they waited on the paused Sentinel"
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    try:
        wait_until(
            lambda: not sentinel_answers.skipped(old_sentinel), 3, "the probe to hear it again"
        )  # < the 5 s skip
    finally:
        cache.close()
        client.close()
    assert not cache._refresher.is_alive()


def test_discovery_with_every_sentinel_silent_lately_says_unreachable_at_once(split_brain_sentinels):
    """A cut-off app answers 502 at once (nginx re-sends to another app) instead of a connect timeout per Sentinel."""
    brain = split_brain_sentinels
    client = sentinel_client(brain, [brain["old"]["sentinel"], brain["new"]["sentinel"]])
    manager = client.connection_pool.sentinel_manager
    try:
        for sentinel in manager.sentinels:
            sentinel_answers.did_not_answer(sentinel)
        with pytest.raises(store.SentinelsUnreachable, match="did not answer lately"):
            manager.discover_master(brain["name"])
        sentinel_answers.probe_skipped(manager.sentinels)  # both answer: both are asked again
        assert manager.discover_master(brain["name"]) == ("127.0.0.1", brain["new"]["master_port"])
    finally:
        client.close()


def test_a_plain_client_gets_no_refresher(redis_client):
    """Without Sentinel the question is ROLE on the node written to: nothing to keep off the request path."""
    cache = ConfirmersCache(redis_client, ttl_s=1.0)
    cache.get()
    assert cache._refresher is None


def test_forgetting_is_per_request(monkeypatch):
    """Each retrying request forgets the answer; had that been for every thread, each retry would discard the answer
    the one before it had just waited for, and the asks would run one after another through the lock."""
    asked = []
    monkeypatch.setattr(
        replication,
        "replicas_that_must_confirm",
        lambda client: asked.append(1) or replication.Confirmers(frozenset(), NEW),
    )
    cache = ConfirmersCache(client=None, ttl_s=60)
    cache.get()
    other = threading.Thread(target=cache.forget)
    other.start()
    other.join(5)
    cache.get()
    assert len(asked) == 1  # another request's forget() did not make this one ask
    cache.forget()
    cache.get()
    assert len(asked) == 2


def test_a_retry_wakes_from_its_backoff_when_another_master_is_named(monkeypatch):
    """After a kill, requests slept out up to their whole backoff (0.5 s) after the new master took writes: the
    p99 during the fault was that tail. A pause ends when an answer names another master; without one it lasts."""
    answers = iter([OLD, OLD, NEW])
    monkeypatch.setattr(
        replication, "replicas_that_must_confirm", lambda client: replication.Confirmers(frozenset(), next(answers))
    )
    cache = ConfirmersCache(client=None, ttl_s=60)
    assert cache.get().master == OLD
    started = time.monotonic()
    cache.pause(0.2)
    unchanged_s = time.monotonic() - started
    cache.get(fresh=True)  # the same master again: no wake
    asker = threading.Timer(0.05, lambda: cache.get(fresh=True))  # the refresher's next answer names NEW
    asker.start()
    started = time.monotonic()
    cache.pause(5)
    woken_s = time.monotonic() - started
    asker.join(5)
    assert unchanged_s >= 0.2 and woken_s < 1, (unchanged_s, woken_s)


def test_a_retry_wakes_when_the_store_is_ready_again(monkeypatch):
    """Every Redis node restarted: the same master comes back, the replicas resync, and requests slept out up to
    their whole backoff after that (the p99 during the fault was that tail). A pause ends at the first answer that
    finds every required replica in sync after one that did not or failed; ready after ready wakes nobody."""
    syncing = replication.Confirmers(frozenset({OLD}), NEW, frozenset())
    synced = replication.Confirmers(frozenset({OLD}), NEW, frozenset({OLD}))
    sequence = iter([synced, synced, None, syncing, synced])

    def ask(client):
        answer = next(sequence)
        if answer is None:
            raise RedisConnectionError("the master is restarting")
        return answer

    monkeypatch.setattr(replication, "replicas_that_must_confirm", ask)
    cache = ConfirmersCache(client=None, ttl_s=60)
    cache.get()
    started = time.monotonic()
    cache.pause(0.2)
    unchanged_s = time.monotonic() - started
    cache.get(fresh=True)  # ready after ready: no wake
    for answer_after_s in (0.05, 0.1, 0.15):  # failed, not ready (resyncing), ready: the third wakes the pause
        threading.Timer(answer_after_s, _ask_ignoring_errors, (cache,)).start()
    started = time.monotonic()
    cache.pause(5)
    woken_s = time.monotonic() - started
    assert unchanged_s >= 0.2 and 0.14 <= woken_s < 1, (unchanged_s, woken_s)


def _ask_ignoring_errors(cache: ConfirmersCache) -> None:
    with contextlib.suppress(RedisConnectionError):
        cache.get(fresh=True)
