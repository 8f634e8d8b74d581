"""The hardened session layer (the stack's default) through nginx, with real Redis, Sentinel and gunicorn."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from sessionproof.runtimes import probes
from sessionproof.waiting import wait_until
from support import observe, wait_for_new_master

pytestmark = pytest.mark.stack
COOKIE = "sp_session"


def tab_of(user, base_url: str) -> requests.Session:
    """Another tab of the same browser: its own connection, the same session cookie."""
    tab = requests.Session()
    tab.cookies.set(COOKIE, user.http.cookies.get(COOKIE))
    tab.base_url = base_url
    return tab


def test_the_stack_runs_the_hardened_layer(healthy_stack):
    assert healthy_stack.config.get("SESSION_LAYER") == "hardened"
    assert "non_idempotent" in (healthy_stack.state_dir / "nginx" / "nginx.conf").read_text()


def test_concurrent_adds_on_one_session_keep_every_item(healthy_stack, new_user):
    user = new_user()
    user.post("/login", json={"user": "erin"})
    base = healthy_stack.config.entry_url
    items = [f"c{i}" for i in range(24)]
    tabs = [tab_of(user, base) for _ in items]
    try:
        with ThreadPoolExecutor(max_workers=len(items)) as pool:
            responses = list(pool.map(lambda tab, item: tab.post(f"{base}/cart/{item}", timeout=15), tabs, items))
    finally:
        for tab in tabs:
            tab.close()
    assert [r.status_code for r in responses] == [200] * len(items)
    body = user.get("/cart").json()
    assert sorted(body["cart"]) == sorted(items)
    assert body["version"] == 1 + len(items)
    assert len({r.json()["servedBy"] for r in responses}) == 3  # the adds ran on every replica at once


def test_logout_racing_writes_of_the_same_session_always_stays_logged_out(healthy_stack, new_user):
    """Any interleaving of a logout with in-flight adds: the old session never comes back."""
    base = healthy_stack.config.entry_url
    password = healthy_stack.password
    master = healthy_stack.master_node()
    with (
        probes.redis_client(master.host, master.port, password) as redis_master,
        ThreadPoolExecutor(max_workers=6) as pool,
    ):
        for round_ in range(15):
            user = new_user()
            user.post("/login", json={"user": f"frank{round_}"})
            old_sid = user.http.cookies.get(COOKIE)
            tabs = [tab_of(user, base) for _ in range(6)]
            try:
                calls = [pool.submit(tab.post, f"{base}/cart/r{i}", timeout=15) for i, tab in enumerate(tabs[:5])]
                logout = pool.submit(tabs[5].post, f"{base}/logout", timeout=15)
                assert logout.result().status_code == 200
                assert all(call.result().status_code == 200 for call in calls)
            finally:
                for tab in tabs:
                    tab.close()
            assert redis_master.exists(f"sp:session:{old_sid}") == 0, f"round {round_}: the session came back"
            reader = requests.Session()
            reader.cookies.set(COOKIE, old_sid)
            try:
                assert reader.get(f"{base}/cart", timeout=15).json()["user"] is None
            finally:
                reader.close()


def test_a_retried_post_with_the_same_idempotency_key_applies_once(healthy_stack, new_user):
    user = new_user()
    user.post("/login", json={"user": "gina"})
    key = str(uuid.uuid4())
    attempts = [user.post("/cart/once", headers={"Idempotency-Key": key}) for _ in range(3)]
    assert [r.status_code for r in attempts] == [200, 200, 200]
    assert len({r.headers["X-Served-By"] for r in attempts}) == 3  # the retries reached other replicas
    assert [r.headers.get("Idempotent-Replayed") for r in attempts] == [None, "true", "true"]
    assert {r.text for r in attempts} == {attempts[0].text}
    assert user.get("/cart").json()["cart"] == ["once"]


def test_nginx_gives_every_request_without_a_key_its_own(healthy_stack, new_user):
    user = new_user()
    user.post("/login", json={"user": "hugo"})
    for _ in range(3):
        assert user.post("/cart/same").status_code == 200  # no key: three distinct requests
    assert user.get("/cart").json()["cart"] == ["same"] * 3


def test_a_redis_master_sigkill_during_writes_yields_no_error_and_loses_no_acknowledged_write(healthy_stack, new_user):
    writers = [new_user() for _ in range(6)]
    for i, writer in enumerate(writers):
        writer.post("/login", json={"user": f"writer{i}"})
    acknowledged: dict[int, list[str]] = {i: [] for i in range(len(writers))}
    failures: list[tuple[int, str, object]] = []
    latencies_s: list[float] = []
    stop = threading.Event()

    def write(i: int) -> None:  # bounded in time and count; a fresh session before the cart fills up
        writer = writers[i]
        deadline = time.monotonic() + 40
        n = 0
        while not stop.is_set() and time.monotonic() < deadline and n < 2000:
            if len(acknowledged[i]) >= 45:  # CART_MAX_ITEMS is 50
                break
            item = f"w{i}-{n}"
            n += 1
            started = time.monotonic()
            try:
                response = writer.post(f"/cart/{item}", headers={"Idempotency-Key": str(uuid.uuid4())})
            except requests.RequestException as error:
                failures.append((i, item, repr(error)))
                continue
            latencies_s.append(time.monotonic() - started)
            if response.status_code == 200:
                acknowledged[i].append(item)
            else:
                failures.append((i, item, response.status_code))
            time.sleep(0.2)

    old_master = healthy_stack.master_node()
    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(writers))]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: all(len(a) >= 3 for a in acknowledged.values()), 20, "writes to flow before the fault")
        killed_at = time.monotonic()
        healthy_stack.kill(old_master.name)
        new_master = wait_for_new_master(healthy_stack, old_master)
        promoted_after_s = time.monotonic() - killed_at
        before = sum(map(len, acknowledged.values()))
        wait_until(lambda: sum(map(len, acknowledged.values())) >= before + 12, 20, "writes to go on after promotion")
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    assert failures == []
    for i, writer in enumerate(writers):
        cart = writer.get("/cart").json()["cart"]
        assert cart == acknowledged[i], f"writer{i}: acknowledged writes missing: {set(acknowledged[i]) - set(cart)}"
    observe(
        f"hardened master kill: {old_master.name} -> {new_master.name} after {promoted_after_s:.2f}s; "
        f"{sum(map(len, acknowledged.values()))} writes acknowledged, 0 failed; "
        f"slowest write {max(latencies_s):.2f}s"
    )
    healthy_stack.start(old_master.name)
    healthy_stack.up(progress=lambda *_: None)
