"""Lost-write accounting on synthetic histories, indeterminate outcomes included."""

from __future__ import annotations

import pytest

from sessionproof import scenarios
from sessionproof.experiment import EXPERIMENTS, _duration_s, judge_final_read


def reader(states: dict):
    return lambda sid: states.get(sid)


def entry(sid, acked, uncertain=(), user="u1"):
    return {"sid": sid, "user": user, "acked": list(acked), "uncertain": list(uncertain), "ended": "running at the end"}


def test_every_acknowledged_write_found_means_none_lost():
    result = judge_final_read([entry("s1", ["a", "b"])], reader({"s1": {"user": "u1", "cart": ["a", "b"]}}))
    assert result["acknowledged_writes"] == 2 and result["lost_acknowledged_writes"] == 0


def test_an_acknowledged_write_absent_at_the_final_read_is_lost():
    result = judge_final_read([entry("s1", ["a", "b", "c"])], reader({"s1": {"user": "u1", "cart": ["a"]}}))
    assert result["lost_acknowledged_writes"] == 2
    assert result["lost_examples"] == [{"user": "u1", "item": "b"}, {"user": "u1", "item": "c"}]


def test_a_session_gone_loses_every_acknowledged_write_in_it():
    result = judge_final_read([entry("s1", ["a", "b"])], reader({"s1": {"user": None, "cart": []}}))
    assert result["lost_acknowledged_writes"] == 2


def test_a_session_answered_for_another_user_counts_nothing_of_ours_as_present():
    result = judge_final_read([entry("s1", ["a"])], reader({"s1": {"user": "someone-else", "cart": ["a"]}}))
    assert result["lost_acknowledged_writes"] == 1


def test_indeterminate_writes_are_never_lost_and_are_counted_when_they_took_effect():
    ledger = [entry("s1", ["a"], uncertain=["x", "y"]), entry("s2", [], uncertain=["z"], user="u2")]
    states = {"s1": {"user": "u1", "cart": ["a", "x"]}, "s2": {"user": "u2", "cart": []}}
    result = judge_final_read(ledger, reader(states))
    assert result["indeterminate_writes"] == 3
    assert result["indeterminate_took_effect"] == 1
    assert result["lost_acknowledged_writes"] == 0


def test_an_unreadable_session_is_reported_not_counted_as_lost():
    result = judge_final_read([entry("s1", ["a"])], reader({}))
    assert result["unreadable_sessions"] == 1 and result["lost_acknowledged_writes"] == 0


def test_durations_parse_like_locusts():
    assert _duration_s("40s") == 40 and _duration_s("2m") == 120 and _duration_s("1m30s") == 90


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_has_a_fault_schedule_and_slos(name):
    scenario = scenarios.load(name)
    assert scenario.raw["faults"] and scenario.slo


class FakeRuntime:
    def __init__(self, env: dict):
        self.config = type("Config", (), {"env": env, "get": lambda _self, name: env.get(name, "hardened")})()
        self.ups = 0

    def up(self, progress=print) -> None:
        self.ups += 1


def test_all_runs_every_experiment_and_load_scenario_once_per_layer(tmp_path, monkeypatch):
    from sessionproof import experiment

    ran: list[tuple[str, str]] = []
    runtimes: list[FakeRuntime] = []

    def fake_get_runtime(env):
        runtimes.append(FakeRuntime(dict(env)))
        return runtimes[-1]

    def fake_run(name, runtime, progress):
        ran.append((runtime.config.env["SESSION_LAYER"], name))
        run_dir = tmp_path / f"{runtime.config.env['SESSION_LAYER']}-{name}"
        run_dir.mkdir()
        return run_dir, 0

    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(experiment, "get_runtime", fake_get_runtime)
    monkeypatch.setattr(experiment, "run_experiment", fake_run)
    out_dir = experiment.run_all(
        ["failover-redis-kill"], FakeRuntime({"STATE_DIR": "x"}), lambda *_: None, layers=["stock", "hardened"]
    )
    assert ran == [
        ("stock", "failover-redis-kill"), ("stock", "latency"), ("stock", "concurrency"),
        ("hardened", "failover-redis-kill"), ("hardened", "latency"), ("hardened", "concurrency"),
    ]  # fmt: skip
    assert [r.config.env["STATE_DIR"] for r in runtimes] == ["x", "x"] and all(r.ups == 1 for r in runtimes)
    assert (out_dir / "report.md").read_text().startswith("# Failover matrix: stock against hardened")


def test_all_refuses_an_unknown_layer(capsys):
    from sessionproof import experiment

    assert experiment.main(["--all", "--layers", "stock turbo"]) == 2
    assert "'turbo' is not one of: hardened, stock" in capsys.readouterr().err
