"""Claims about the running stack, each checked through nginx with real processes."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from sessionproof.runtimes import probes
from sessionproof.runtimes.local import LocalRuntime
from sessionproof.topology import StackConfig
from sessionproof.waiting import wait_until
from support import observe, wait_for_new_master

pytestmark = pytest.mark.stack


def test_a_cart_survives_bouncing_between_replicas(new_user):
    user = new_user()
    for item in ("apple", "pear", "plum"):
        assert user.post(f"/cart/{item}").status_code == 200
    reads = [user.get("/cart") for _ in range(9)]
    assert all(r.json()["cart"] == ["apple", "pear", "plum"] and r.json()["version"] == 3 for r in reads)
    served_by = [r.json()["servedBy"] for r in reads]
    assert set(served_by) == {"app-1", "app-2", "app-3"}
    assert all(a != b for a, b in itertools.pairwise(served_by)), served_by
    assert all(r.headers["X-Served-By"] == r.json()["servedBy"] for r in reads)


def test_a_second_client_never_sees_the_first_clients_cart(new_user):
    alice, bob = new_user(), new_user()
    alice.post("/login", json={"user": "alice"})
    bob.post("/login", json={"user": "bob"})
    for i in range(6):
        alice.post(f"/cart/a{i}")
        bob.post(f"/cart/b{i}")
        assert all(item.startswith("a") for item in alice.get("/cart").json()["cart"])
        assert all(item.startswith("b") for item in bob.get("/cart").json()["cart"])
    assert bob.get("/cart").json() | {"servedBy": None} == {
        "servedBy": None,
        "user": "bob",
        "cart": [f"b{i}" for i in range(6)],
        "version": 7,
    }


def test_logout_all_ends_every_session_of_that_user(new_user):
    laptop, phone, tablet = new_user(), new_user(), new_user()
    for device in (laptop, phone, tablet):
        device.post("/login", json={"user": "carol"})
        device.post("/cart/book")
    assert tablet.post("/logout-all").json()["sessionsEnded"] == 3
    for device in (laptop, phone, tablet):
        for _ in range(3):  # on every replica
            assert device.get("/cart").json()["user"] is None


def test_a_replica_killed_with_sigkill_is_routed_around(healthy_stack, new_user):
    user = new_user()
    user.post("/login", json={"user": "dave"})
    healthy_stack.kill("app-2")
    responses = []
    for i in range(30):
        responses.append(user.post(f"/cart/i{i}") if i % 3 == 0 else user.get("/cart"))
    assert [r.status_code for r in responses] == [200] * 30
    assert {r.json()["servedBy"] for r in responses} == {"app-1", "app-3"}
    assert responses[-1].json()["cart"] == [f"i{i}" for i in range(0, 30, 3)]

    healthy_stack.start("app-2")
    wait_until(lambda: user.get("/cart").json()["servedBy"] == "app-2", 20, "nginx to send requests to app-2 again")


def test_a_killed_redis_master_is_replaced_by_sentinel_and_replicated_sessions_survive(healthy_stack, new_user):
    users = [new_user() for _ in range(10)]
    expected = {}
    for i, user in enumerate(users):
        user.post("/login", json={"user": f"user{i}"})
        for item in ("apple", "pear", f"only-{i}"):
            user.post(f"/cart/{item}")
        expected[i] = user.get("/cart").json()
    old_master = healthy_stack.master_node()
    host = old_master.host
    with probes.redis_client(host, old_master.port, healthy_stack.password) as master:
        assert master.execute_command("WAIT", 2, 2000) == 2, "writes not confirmed on both replicas"

    outcomes: list[tuple[float, int]] = []
    stop = threading.Event()

    def watch() -> None:  # one reader, bounded in time and count
        watcher = users[0]
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline and len(outcomes) < 3000:
            try:
                status = watcher.get("/cart").status_code
            except Exception:
                status = 0
            outcomes.append((time.monotonic(), status))
            time.sleep(0.01)

    watcher_thread = threading.Thread(target=watch)
    watcher_thread.start()
    try:
        time.sleep(0.5)  # a baseline of successful reads before the fault
        killed_at = time.monotonic()
        healthy_stack.kill(old_master.name)
        new_master = wait_for_new_master(healthy_stack, old_master)
        promoted_at = time.monotonic()
        wait_until(
            lambda: outcomes and outcomes[-1][1] == 200 and outcomes[-1][0] > promoted_at, 20, "reads to succeed"
        )
    finally:
        stop.set()
        watcher_thread.join()

    for i, user in enumerate(users):
        response = wait_until(lambda u=user: (r := u.get("/cart")).status_code == 200 and r, 20, "a read to succeed")
        body = response.json()
        assert (body["user"], body["cart"], body["version"]) == (
            expected[i]["user"],
            expected[i]["cart"],
            expected[i]["version"],
        ), f"session of user{i} changed across the failover"

    errors = [t for t, status in outcomes if status != 200 and t >= killed_at]
    window = (errors[-1] - errors[0]) if errors else 0.0
    observe(
        f"master kill: {old_master.name} -> {new_master.name} promoted after {promoted_at - killed_at:.2f}s; "
        f"{len(errors)} of {len(outcomes)} reads failed (status {sorted({s for t, s in outcomes if s != 200})}), "
        f"error window {window:.2f}s"
    )

    healthy_stack.start(old_master.name)
    wait_until(
        lambda: (probes.redis_replication(host, old_master.port, healthy_stack.password) or {}).get("role") == "slave",
        30,
        "the old master to rejoin as a replica",
    )


def test_an_unreachable_store_answers_503_json_with_retry_after_through_nginx(healthy_stack, new_user):
    user = new_user()
    user.post("/cart/apple")
    for node in healthy_stack.config.redis_nodes:
        healthy_stack.kill(node.name)
    response = user.get("/cart")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"] == "store_unavailable"
    assert user.get("/ping").status_code == 200

    healthy_stack.up(progress=lambda *_: None)
    assert user.get("/cart").json()["cart"] == ["apple"], "the session did not come back from the AOF"


def test_nginx_errors_are_json_too(healthy_stack, new_user):
    user = new_user()
    response = user.post("/login", data="x" * 10_000, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"
    assert response.headers["X-Served-By"] == "nginx"


def test_up_is_safe_to_rerun(healthy_stack):
    before = {row.node.name: row.pid for row in healthy_stack.status()}
    healthy_stack.up(progress=lambda *_: None)
    after = {row.node.name: row.pid for row in healthy_stack.status()}
    assert before == after
    assert all(pid for pid in after.values())


def test_the_unloaded_probe_measures_both_endpoints(healthy_stack):
    from sessionproof.load.unloaded import measure

    histograms = measure(healthy_stack.config.entry_url, requests_per_endpoint=20, warmup=2)
    assert {name: h.get_total_count() for name, h in histograms.items()} == {"GET /ping": 20, "GET /cart": 20}
    assert all(0 < h.get_value_at_percentile(50) <= h.get_max_value() for h in histograms.values())


def test_up_applies_min_replicas_to_the_running_redis_nodes(healthy_stack):
    """make experiments switches REDIS_MIN_REPLICAS_TO_WRITE between configurations without `make clean`."""

    def settings_on_nodes() -> set[str]:
        values = set()
        for node in healthy_stack.nodes("redis"):
            with probes.redis_client(node.host, node.port, healthy_stack.password) as client:
                values.add(client.config_get("min-replicas-to-write")["min-replicas-to-write"])
        return values

    assert settings_on_nodes() == {"1"}
    unguarded = LocalRuntime(StackConfig.from_env({**healthy_stack.config.env, "REDIS_MIN_REPLICAS_TO_WRITE": "0"}))
    try:
        unguarded.up(progress=lambda *_: None)
        assert settings_on_nodes() == {"0"}
    finally:
        healthy_stack.up(progress=lambda *_: None)
    assert settings_on_nodes() == {"1"}
