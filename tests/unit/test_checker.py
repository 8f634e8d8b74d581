"""The bounce checker on synthetic histories: every mismatch class is caught, a correct history raises none."""

from __future__ import annotations

from sessionproof.analysis.checker import SessionModel, lost_updates


def logged_in(user: str = "alice") -> SessionModel:
    model = SessionModel(user=None, item_prefix="ia")
    model.logged_in({"user": user, "cart": [], "version": 1})
    return model


def state(cart, version, user="alice") -> dict:
    return {"user": user, "cart": list(cart), "version": version, "servedBy": "app-1"}


def test_a_correct_history_raises_no_alarm():
    model = logged_in()
    cart = []
    for version in range(2, 12):
        item = model.next_item()
        cart.append(item)
        assert model.observe_write(item, state(cart, version)).ok
        assert model.observe_read(state(cart, version)).ok
    assert model.version == 11 and model.cart == cart


def test_a_missing_acknowledged_item_is_a_lost_write_counted_once():
    model = logged_in()
    a, b = model.next_item(), model.next_item()
    model.observe_write(a, state([a], 2))
    model.observe_write(b, state([a, b], 3))
    verdict = model.observe_read(state([b], 3))
    assert verdict.mismatches == ["lost_writes"]
    assert model.observe_read(state([b], 3)).ok  # the server's state is adopted: not counted again


def test_an_acknowledged_write_missing_from_its_own_answer_is_a_lost_write():
    model = logged_in()
    item = model.next_item()
    assert model.observe_write(item, state([], 2)).mismatches == ["lost_writes"]


def test_an_older_version_than_acknowledged_is_a_stale_read():
    model = logged_in()
    a, b = model.next_item(), model.next_item()
    model.observe_write(a, state([a], 2))
    model.observe_write(b, state([a, b], 3))
    assert model.observe_read(state([a], 2)).mismatches == ["stale_reads"]
    assert model.version == 3  # a stale answer does not lower what was acknowledged


def test_being_logged_out_is_a_lost_session():
    model = logged_in()
    model.observe_write(model.next_item(), state([model.item_prefix + "-1"], 2))
    assert model.observe_read({"user": None, "cart": [], "version": 0}).mismatches == ["sessions_lost"]


def test_a_fresh_empty_session_is_a_lost_session_even_for_an_anonymous_user():
    model = SessionModel(user=None, item_prefix="ia")
    item = model.next_item()
    model.observe_write(item, {"user": None, "cart": [item], "version": 1})
    assert model.observe_read({"user": None, "cart": [], "version": 0}).mismatches == ["sessions_lost"]


def test_another_users_name_is_a_foreign_session():
    model = logged_in()
    assert model.observe_read(state([], 1, user="bob")).mismatches == ["foreign_sessions"]


def test_another_users_item_is_a_foreign_session():
    model = logged_in()
    assert model.observe_read(state(["ib-1"], 2)).mismatches == ["foreign_sessions"]


def test_an_indeterminate_write_may_appear_or_not_without_alarm():
    model = logged_in()
    unsure = model.next_item()
    model.write_indeterminate(unsure)
    assert model.observe_read(state([], 1)).ok  # it did not happen
    assert model.observe_read(state([unsure], 2)).ok  # or it did
    assert unsure not in model.uncertain


def test_lost_updates_are_the_acknowledged_items_missing_from_the_cart():
    assert lost_updates(["a", "b", "c"], ["c", "x"]) == ["a", "b"]
    assert lost_updates(["a", "b"], ["b", "a"]) == []
