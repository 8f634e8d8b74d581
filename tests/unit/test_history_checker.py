"""The checker on small written histories: each anomaly class, and its innocent twin that must pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionproof.history import ANOMALY_CLASSES, FINAL_READ_PROCESS, NEMESIS_PROCESS
from sessionproof.history.checker import check, final_read_sessions
from sessionproof.history.files import (
    append_history,
    nemesis_operations,
    operation,
    read_history,
    session_operations,
    write_history,
)

U, V = "bounce-a-1", "bounce-b-1"
S1, S2 = "sid-one-" + "x" * 35, "sid-two-" + "y" * 35


class History:
    """Lines written the way the load writes them; each call is an invoke and (unless open) its completion."""

    def __init__(self) -> None:
        self.lines: list[dict] = []
        self.t = 0

    def tick(self) -> int:
        self.t += 10
        return self.t

    def call(self, process, f, session, done="ok", *, invoke=None, answer=None, open_until=None, kind="bounce"):
        """invoke, then its completion of type `done` (None: never completed); answer = fields of an ok."""
        self.lines.append(operation("invoke", f, process, kind, self.tick(), session=session, **(invoke or {})))
        return lambda: self.complete(process, f, session, done, invoke, answer, kind)

    def complete(self, process, f, session, done, invoke, answer, kind):
        if done is not None:
            fields = {**(invoke or {}), **(answer or {})} if done == "ok" else {**(invoke or {}), "error": "503"}
            fields.setdefault("session", session)
            self.lines.append(operation(done, f, process, kind, self.tick(), **fields))

    # One-liners: invoke and complete at once.
    def login(self, process, user, sid, from_sid=None):
        self.lines.append(operation("invoke", "login", process, "bounce", self.tick(), session=from_sid, user=user))
        self.lines.append(operation("ok", "login", process, "bounce", self.tick(), session=sid, user=user, cart=[]))

    def add(self, process, sid, item, done="ok", cart=None, user=U):
        answer = {"user": user, "cart": cart if cart is not None else [item]}
        self.call(process, "add", sid, done, invoke={"item": item, "key": f"k-{item}"}, answer=answer)()

    def read(self, process, sid, cart, user=U):
        self.call(process, "read", sid, "ok", answer={"user": user, "cart": cart})()

    def logout(self, process, sid, done="ok", f="logout"):
        self.call(process, f, sid, done)()


def anomalies(history: History) -> dict[str, int]:
    return check(history.lines).violations


def test_a_clean_history_has_no_anomaly_and_counts_what_it_judged():
    h = History()
    h.login("p", U, S1)
    h.add("p", S1, "ip-1")
    h.read("p", S1, ["ip-1"])
    h.add("p", S1, "ip-2", cart=["ip-1", "ip-2"])
    h.read(FINAL_READ_PROCESS, S1, ["ip-1", "ip-2"])
    verdict = check(h.lines)
    assert verdict.violations == {}
    figures = verdict.figures
    assert (figures["checks"], figures["acknowledged_writes"], figures["unread_writes"], figures["sessions"]) == (
        5, 2, 0, 1,
    )  # fmt: skip


def test_lost_write_an_acknowledged_item_missing_from_the_final_read():
    h = History()
    h.login("p", U, S1)
    h.add("p", S1, "ip-1")
    h.read(FINAL_READ_PROCESS, S1, [])
    verdict = check(h.lines)
    assert verdict.violations == {"lost_writes": 1}
    assert verdict.lost_items == [
        {"session": S1[:12], "item": "ip-1", "class": "lost_writes", "acked_us": 40, "store": None}
    ]


def test_lost_write_in_its_own_answer():
    h = History()
    h.login("p", U, S1)
    h.add("p", S1, "ip-1", cart=[])
    assert anomalies(h) == {"lost_writes": 1}


def test_stale_read_misses_an_item_a_later_read_shows():
    h = History()
    h.login("p", U, S1)
    h.add("p", S1, "ip-1")
    h.read("p", S1, [])
    h.read(FINAL_READ_PROCESS, S1, ["ip-1"])
    assert anomalies(h) == {"stale_reads": 1}


def test_a_read_concurrent_with_the_add_may_miss_it():
    h = History()
    h.login("p", U, S1)
    finish_add = h.call("p", "add", S1, invoke={"item": "ip-1", "key": "k"}, answer={"user": U, "cart": ["ip-1"]})
    h.read("q", S1, [])  # invoked before the add was acknowledged
    finish_add()
    h.read(FINAL_READ_PROCESS, S1, ["ip-1"])
    assert anomalies(h) == {}


def test_duplicate_a_resent_add_applied_twice():
    h = History()
    h.login("p", U, S1)
    h.add("p", S1, "ip-1", done="info")  # timed out: the client re-sends it with the same key
    h.add("p", S1, "ip-1", cart=["ip-1", "ip-1"])
    h.read(FINAL_READ_PROCESS, S1, ["ip-1", "ip-1"])
    assert anomalies(h) == {"duplicates": 1}


def test_resurrection_after_an_acknowledged_logout():
    h = History()
    h.login("p", U, S1)
    h.add("p", S1, "ip-1")
    h.logout("p", S1)
    h.read("p", S1, [], user=None)  # gone, as it should be
    assert anomalies(h) == {}
    h.read(FINAL_READ_PROCESS, S1, ["ip-1"])  # ... and back
    assert anomalies(h) == {"resurrections": 1}


def test_resurrection_after_logout_all_of_another_session():
    h = History()
    h.login("p", U, S1)
    h.login("p2", U, S2)  # a second device
    h.add("p", S1, "ip-1")
    h.logout("p2", S2, f="logout_all")
    h.read(FINAL_READ_PROCESS, S2, [], user=None)
    assert anomalies(h) == {}
    h.read(FINAL_READ_PROCESS, S1, ["ip-1"])
    assert anomalies(h) == {"resurrections": 1}


def test_a_logout_of_unknown_outcome_may_or_may_not_have_ended_the_session():
    h = History()
    h.login("p", U, S1)
    h.add("p", S1, "ip-1")
    h.logout("p", S1, done="info")
    h.read("p", S1, ["ip-1"])
    h.read(FINAL_READ_PROCESS, S1, [], user=None)
    assert anomalies(h) == {}


def test_lost_update_concurrent_adds_to_one_session():
    h = History()
    h.login("p", U, S1)
    first = h.call("p/0", "add", S1, invoke={"item": "ip-1", "key": "k1"}, answer={"user": U, "cart": ["ip-1"]})
    second = h.call("p/1", "add", S1, invoke={"item": "ip-2", "key": "k2"}, answer={"user": U, "cart": ["ip-2"]})
    first()
    second()  # both acknowledged; the second overwrote the first (last write wins)
    h.read("p", S1, ["ip-2"])
    assert anomalies(h) == {"lost_updates": 1}


def test_foreign_session_another_users_name_or_items():
    h = History()
    h.login("p", U, S1)
    h.login("q", V, S2)
    h.add("q", S2, "iq-1", user=V)
    h.read("p", S1, [], user=V)
    assert anomalies(h) == {"foreign_sessions": 1}
    h.read("p", S1, ["iq-1"])
    assert anomalies(h) == {"foreign_sessions": 2}


def test_session_lost_the_latest_answers_are_anonymous():
    h = History()
    h.login("p", U, S1)
    h.add("p", S1, "ip-1")
    h.read("p", S1, [], user=None)
    h.read(FINAL_READ_PROCESS, S1, [], user=None)
    assert anomalies(h) == {"sessions_lost": 1, "lost_writes": 1}


def test_an_anonymous_answer_followed_by_the_session_is_a_stale_read():
    h = History()
    h.login("p", U, S1)
    h.read("p", S1, [], user=None)
    h.read(FINAL_READ_PROCESS, S1, [])
    assert anomalies(h) == {"stale_reads": 1}


def test_unread_at_the_end_is_counted_not_taken_as_kept():
    h = History()
    h.login("p", U, S1)
    h.add("p", S1, "ip-1")
    h.read("p", S1, ["ip-1"])
    h.add("p", S1, "ip-2", cart=["ip-1", "ip-2"])
    h.add("p", S1, "ip-3", done="info")  # the last answer of the run, no read after it
    verdict = check(h.lines)
    assert verdict.violations == {}
    # ip-2's own answer showed it, but nothing read the session after it was acknowledged: unread, not kept.
    assert verdict.figures["unread_writes"] == 1
    h.read(FINAL_READ_PROCESS, S1, ["ip-1", "ip-2"])
    assert check(h.lines).figures["unread_writes"] == 0


def test_indeterminate_writes_may_appear_but_then_must_stay():
    h = History()
    h.login("p", U, S1)
    h.add("p", S1, "ip-1", done="info")
    h.add("p", S1, "ip-2", done="info")
    h.read(FINAL_READ_PROCESS, S1, ["ip-2"])
    verdict = check(h.lines)
    assert verdict.violations == {}
    assert (verdict.figures["indeterminate_writes"], verdict.figures["indeterminate_took_effect"]) == (2, 1)
    h.read(FINAL_READ_PROCESS, S1, [])  # shown once, then gone: lost
    assert anomalies(h) == {"lost_writes": 1}


def test_an_invoke_never_completed_is_indeterminate():
    h = History()
    h.login("p", U, S1)
    h.call("p", "add", S1, done=None, invoke={"item": "ip-1", "key": "k"})
    h.read(FINAL_READ_PROCESS, S1, ["ip-1"])
    verdict = check(h.lines)
    assert verdict.violations == {} and verdict.figures["indeterminate_took_effect"] == 1


def test_phantom_write_a_refused_add_that_took_effect():
    h = History()
    h.login("p", U, S1)
    h.add("p", S1, "ip-1", done="fail")
    h.read("p", S1, [])
    assert anomalies(h) == {}
    h.read(FINAL_READ_PROCESS, S1, ["ip-1"])
    assert anomalies(h) == {"phantom_writes": 1}


def test_every_class_has_a_test_here():
    source = Path(__file__).read_text()
    assert [name for name in ANOMALY_CLASSES if f'"{name}"' not in source] == []


def test_a_completion_without_its_invoke_is_a_damaged_history():
    h = History()
    h.login("p", U, S1)
    del h.lines[0]
    with pytest.raises(ValueError, match="without its invoke"):
        check(h.lines)


def test_the_final_read_reads_every_session_named_logged_out_ones_too():
    h = History()
    h.login("p", U, S1)
    h.logout("p", S1)
    h.login("p", U, S2)
    h.read(FINAL_READ_PROCESS, S2, [])
    assert final_read_sessions(h.lines) == [S1, S2]


def test_a_history_of_the_earlier_format_is_judged_again():
    """results/reference/bounce was recorded before issue 24 (value and state fields): read in today's fields."""
    from sessionproof import REPO_ROOT
    from sessionproof.history.files import read_history

    ops = read_history(REPO_ROOT / "results" / "reference" / "bounce" / "raw" / "history.jsonl")
    verdict = check(ops)
    assert verdict.violations == {}
    # Its users judged 2320 answers live (adds and reads); the checker also judges the 40 logins' answers.
    assert (verdict.figures["checks"], verdict.figures["acknowledged_writes"]) == (2360, 1160)
    last_read = next(op for op in reversed(ops) if op["f"] == "read" and op["type"] == "ok" and op["cart"])
    last_read["cart"] = last_read["cart"][1:]
    assert check(ops).violations == {"lost_writes": 1}


def test_a_fresh_session_given_for_a_lost_one_is_the_new_sessions_not_foreign():
    """Stock Flask-Session answers a write to a session it no longer has with a fresh anonymous session: the
    answer's state is the new session's (its completion names it), and the old session is lost."""
    h = History()
    h.login("p", U, S1)
    h.add("p", S1, "ip-1")
    h.call(
        "p", "add", S1, invoke={"item": "ip-2", "key": "k2"}, answer={"session": S2, "user": None, "cart": ["ip-2"]}
    )()
    h.read("p", S2, ["ip-2"], user=None)
    h.read(FINAL_READ_PROCESS, S1, [], user=None)
    h.read(FINAL_READ_PROCESS, S2, ["ip-2"], user=None)
    assert anomalies(h) == {"sessions_lost": 1, "lost_writes": 1}


def test_the_nemesis_is_in_the_history_and_the_checker_judges_around_it():
    """Faults join the history as Jepsen's nemesis does (info lines, start and stop); they are not operations of
    a session, so the verdict is the one without them, and a lost write stays lost with them in between."""
    h = History()
    h.login("p", U, S1)
    h.add("p", S1, "ip-1")
    events = [
        {"t": 100.000020, "type": "fault_start", "fault": "kill-redis-master", "target": "redis-1"},
        {"t": 100.000030, "type": "fault_injected", "fault": "kill-redis-master", "target": "redis-1"},
        {"t": 100.000050, "type": "fault_end", "fault": "kill-redis-master", "target": "redis-1"},
    ]
    nemesis = nemesis_operations(events, origin_unix_s=100.0)
    assert [(op["f"], op["time_us"], op["fault"], op["target"]) for op in nemesis] == [
        ("start", 30, "kill-redis-master", "redis-1"),
        ("stop", 50, "kill-redis-master", "redis-1"),
    ]
    final_read = [
        operation("invoke", "read", FINAL_READ_PROCESS, "final-read", 80, session=S1),
        operation("ok", "read", FINAL_READ_PROCESS, "final-read", 90, session=S1, user=U, cart=[]),
    ]
    without = check([*h.lines, *final_read])
    with_nemesis = check([*h.lines, *nemesis, *final_read])
    assert with_nemesis.figures == without.figures and with_nemesis.violations == {"lost_writes": 1}
    assert session_operations([*h.lines, *nemesis]) == h.lines
    with pytest.raises(ValueError, match="nemesis"):
        operation("info", "add", NEMESIS_PROCESS, NEMESIS_PROCESS, 1)
    with pytest.raises(ValueError, match="nemesis"):
        operation("ok", "start", NEMESIS_PROCESS, NEMESIS_PROCESS, 1, fault="kill-app")


def test_a_history_file_with_the_nemesis_reads_back(tmp_path):
    """The experiment appends the nemesis's lines to the history file; the reader takes them (a campaign's final
    read failed on them once: the reader knew only the session operations)."""
    h = History()
    h.login("p", U, S1)
    path = tmp_path / "history.jsonl"
    write_history(path, h.lines)
    events = [{"t": 1.5, "type": "fault_injected", "fault": "kill-app", "target": "app-1"}]
    append_history(path, nemesis_operations(events, origin_unix_s=1.0))
    lines = read_history(path)
    assert lines[-1] == {"process": NEMESIS_PROCESS, "kind": NEMESIS_PROCESS, "type": "info", "f": "start",
                         "time_us": 500000, "fault": "kill-app", "target": "app-1"}  # fmt: skip
    assert final_read_sessions(lines) == [S1]
