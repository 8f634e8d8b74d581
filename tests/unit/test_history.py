"""The history checker: one small written history per mismatch class, and `make check` on a run folder."""

from __future__ import annotations

import json

import pytest

from sessionproof.analysis import history
from sessionproof.history import ANOMALY_CLASSES

P = "abc123"  # a process id; its items are i<P>-N


class Writer:
    """Writes a process's history as a user would produce it: invoke, then the outcome."""

    def __init__(self, kind: str = "bounce", process: str = P):
        self.ops: list[dict] = []
        self.kind, self.process, self.time_us = kind, process, 0

    def _op(self, type_: str, f: str, value=None, state=None) -> None:
        self.time_us += 1000
        op = {"process": self.process, "kind": self.kind, "session": "s1", "type": type_, "f": f,
              "time_us": self.time_us, "value": value}  # fmt: skip
        if state is not None:
            op["state"] = state
        self.ops.append(op)

    def call(self, f: str, value, outcome: str = "ok", state: dict | None = None) -> Writer:
        self._op("invoke", f, value)
        self._op(outcome, f, value if f != "read" or outcome != "ok" else state["cart"], state)
        return self

    def login(self, user: str = "u1") -> Writer:
        return self.call("login", user, state={"user": user, "cart": [], "version": 0})

    def add(self, n: int, cart: list[str], version: int, outcome: str = "ok", user: str = "u1") -> Writer:
        state = {"user": user, "cart": cart, "version": version} if outcome == "ok" else None
        return self.call("add", item(n), outcome, state)

    def read(self, cart: list[str], version: int, user: str | None = "u1") -> Writer:
        return self.call("read", cart, state={"user": user, "cart": cart, "version": version})


def item(n: int, process: str = P) -> str:
    return f"i{process}-{n}"


def violations(ops: list[dict]) -> dict[str, int]:
    figures = history.check(ops)
    return {name: count for name, count in figures.items() if name != "checks" and count}


def test_a_correct_history_has_no_violation_and_counts_every_judged_answer():
    ops = Writer().login().add(1, [item(1)], 1).read([item(1)], 1).add(2, [item(1), item(2)], 2).ops
    assert history.check(ops) == {"checks": 3, **dict.fromkeys(ANOMALY_CLASSES, 0)}


def test_a_read_missing_an_acknowledged_item_is_a_lost_write():
    ops = Writer().login().add(1, [item(1)], 1).add(2, [item(1), item(2)], 2).read([item(2)], 2).ops
    assert violations(ops) == {"lost_writes": 1}


def test_a_read_older_than_an_acknowledged_version_is_a_stale_read():
    ops = Writer().login().add(1, [item(1)], 1).add(2, [item(1), item(2)], 2).read([item(1)], 1).ops
    assert violations(ops) == {"stale_reads": 1}


def test_an_anonymous_answer_to_a_logged_in_user_is_a_lost_session():
    ops = Writer().login().add(1, [item(1)], 1).read([], 0, user=None).ops
    assert violations(ops) == {"sessions_lost": 1}


def test_another_users_data_is_a_foreign_session():
    ops = Writer().login().add(1, [item(1)], 1).read([item(1), "iother-1"], 2).ops
    assert violations(ops) == {"foreign_sessions": 1}


def test_an_acknowledged_concurrent_add_missing_after_the_burst_is_a_lost_update():
    w = Writer(kind="concurrency").login()
    for n in (1, 2, 3):
        w.add(n, [item(n)], n)  # each answer shows only its own add: last write wins
    w.read([item(3)], 3)
    assert violations(w.ops) == {"lost_updates": 2}


def test_an_indeterminate_write_may_appear_or_not_without_a_violation():
    ops = (
        Writer().login().add(1, [item(1)], 1).add(2, None, 0, outcome="info")
        .read([item(1), item(2)], 2).add(3, None, 0, outcome="fail").read([item(1), item(2)], 2).ops
    )  # fmt: skip
    assert violations(ops) == {}


def test_latency_users_are_not_judged_as_live():
    ops = Writer(kind="latency").login().add(1, [item(1)], 1).read([], 0, user=None).ops
    assert history.check(ops)["checks"] == 0


@pytest.fixture
def run_dir(tmp_path):
    ops = (
        Writer()
        .login()
        .add(1, [item(1)], 1)
        .read([item(1)], 1)
        .add(2, [item(1), item(2)], 2)
        .read([item(1), item(2)], 2)
        .ops
    )
    raw = tmp_path / "run" / "raw"
    raw.mkdir(parents=True)
    (raw / "history.jsonl").write_text("".join(json.dumps(op) + "\n" for op in ops))
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"correctness": {"checks": 0, "lost_writes": 9}}))
    return tmp_path / "run"


def test_make_check_judges_a_run_and_rewrites_its_correctness(run_dir, capsys):
    assert history.main([str(run_dir)]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["correctness"]["lost_writes"] == 0
    assert "4 checks" in capsys.readouterr().out


def test_an_edited_history_whose_later_read_misses_an_acknowledged_item_exits_3(run_dir, capsys):
    path = run_dir / "raw" / "history.jsonl"
    ops = [json.loads(line) for line in path.read_text().splitlines()]
    last_read = next(op for op in reversed(ops) if op["f"] == "read" and op["type"] == "ok")
    last_read["state"]["cart"] = [item(2)]  # item 1 was acknowledged before this read
    last_read["value"] = [item(2)]
    path.write_text("".join(json.dumps(op) + "\n" for op in ops))
    assert history.main([str(run_dir)]) == history.VIOLATION_EXIT_CODE
    assert "lost_writes 1" in capsys.readouterr().out
    assert json.loads((run_dir / "summary.json").read_text())["correctness"]["lost_writes"] == 1


def test_a_run_without_a_history_or_with_a_damaged_one_cannot_be_judged(tmp_path, run_dir, capsys):
    assert history.main([str(tmp_path)]) == history.CANNOT_JUDGE_EXIT_CODE
    assert "history.jsonl is missing" in capsys.readouterr().err
    (run_dir / "raw" / "history.jsonl").write_text('{"process": "x"\n')
    assert history.main([str(run_dir)]) == history.CANNOT_JUDGE_EXIT_CODE
    assert "not valid JSON" in capsys.readouterr().err
