"""Experiments: their scenarios, the matrix's configurations, what a runtime refuses, the ETA."""

from __future__ import annotations

import json

import pytest

from sessionproof import settings
from sessionproof.chaos.experiment import CONFIGURATIONS, EXPERIMENTS
from sessionproof.engines import check_engines
from sessionproof.load import scenarios
from sessionproof.load.scenarios import duration_s as _duration_s


def test_durations_parse_like_locusts():
    assert _duration_s("40s") == 40 and _duration_s("2m") == 120 and _duration_s("1m30s") == 90


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_has_a_fault_schedule_and_slos(name):
    scenario = scenarios.load(name)
    assert scenario.raw["faults"] and scenario.slo
    # Every fault runs concurrent writers too (issue 24), and every anomaly class breaches its SLOs.
    assert scenario.mix.get("concurrency", 0) > 0 and scenario.concurrent_requests > 1
    assert {"path": ["correctness", "anomalies"], "max": 0} in scenario.slo


def test_the_campaign_bounds_its_catch_up_and_other_scenarios_keep_theirs_unbounded():
    assert scenarios.load("campaign").catch_up_factor == 2
    assert scenarios.load("demo").catch_up_factor is None  # the matrix's and the demo's figures stay comparable


def test_a_catch_up_factor_that_never_drains_is_refused(tmp_path):
    text = (scenarios.scenario_dir() / "campaign.yaml").read_text().replace("catch_up_factor: 2", "catch_up_factor: 1")
    (tmp_path / "slow.yaml").write_text(text)
    with pytest.raises(scenarios.ScenarioError, match="catch_up_factor must be over 1"):
        scenarios.load("slow", tmp_path)


class FakeRuntime:
    def __init__(self, env: dict):
        self.config = type(
            "Config",
            (),
            {
                "env": env,
                "get": lambda _self, name: env.get(name, "hardened"),
                "store_engine": env.get("STORE_ENGINE", "redis"),
            },
        )()
        self.ups = self.downs = 0

    def up(self, progress=print) -> None:
        self.ups += 1

    def down(self, progress=print) -> None:
        self.downs += 1


def fake_stack(tmp_path, monkeypatch, refused: dict[str, str] | None = None):
    """run_all with fake runtimes and experiments: what ran (configuration's env, name) and what it printed."""
    from sessionproof.chaos import experiment

    ran: list[tuple[dict, str]] = []
    runtimes: list[FakeRuntime] = []

    def fake_get_runtime(env):
        runtimes.append(FakeRuntime(dict(env)))
        return runtimes[-1]

    def fake_run(name, runtime, progress):
        ran.append((runtime.config.env, name))
        layer = runtime.config.env["SESSION_LAYER"]
        engine = runtime.config.env.get("STORE_ENGINE", "")
        run_dir = (
            tmp_path / "runs" / f"{engine}{layer}-{runtime.config.env.get('REDIS_MIN_REPLICAS_TO_WRITE', '')}-{name}"
        )
        run_dir.mkdir(parents=True)
        return run_dir, 0

    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(experiment, "get_runtime", fake_get_runtime)
    monkeypatch.setattr(experiment, "run_experiment", fake_run)
    # The runtime's refusals are the chaos module's business; here a fixed answer per experiment.
    monkeypatch.setattr(experiment, "refusal", lambda name, runtime: (refused or {}).get(name))
    return ran, runtimes


def test_all_runs_every_experiment_and_load_scenario_once_per_configuration(tmp_path, monkeypatch):
    from sessionproof.chaos import experiment

    ran, runtimes = fake_stack(tmp_path, monkeypatch)
    lines: list[str] = []
    out_dir = experiment.run_all(
        ["failover-redis-kill"],
        FakeRuntime({"STATE_DIR": "x", "REDIS_MIN_REPLICAS_TO_WRITE": "2"}),
        lines.append,
        configurations=["stock", "hardened", "stock-min-replicas-0"],
    )
    assert [(env["SESSION_LAYER"], env["REDIS_MIN_REPLICAS_TO_WRITE"], name) for env, name in ran] == [
        ("stock", "2", "failover-redis-kill"), ("stock", "2", "latency"), ("stock", "2", "concurrency"),
        ("hardened", "2", "failover-redis-kill"), ("hardened", "2", "latency"), ("hardened", "2", "concurrency"),
        ("stock", "0", "failover-redis-kill"), ("stock", "0", "latency"), ("stock", "0", "concurrency"),
    ]  # fmt: skip
    assert [r.config.env["STATE_DIR"] for r in runtimes] == ["x"] * 3 and all(r.ups == 1 for r in runtimes)
    progress = [line for line in lines if line.startswith("[") and "/9]" in line]
    assert progress[0].startswith("[1/9] stock: failover-redis-kill (elapsed 0m00s, ETA ")
    assert progress[-2].startswith("[9/9] stock-min-replicas-0: concurrency (elapsed")
    assert progress[-1].startswith("[9/9] done (elapsed") and progress[-1].endswith("ETA 0m00s)")
    report = (out_dir / "report.md").read_text()
    assert report.startswith("# Failover matrix: stock against hardened against stock-min-replicas-0")


def test_all_runs_each_engine_in_turn_stopping_the_stack_between_them(tmp_path, monkeypatch):
    """ENGINES="redis valkey": one engine at a time on the stack's ports; the matrix labels the Valkey rows."""
    from sessionproof.chaos import experiment

    ran, runtimes = fake_stack(tmp_path, monkeypatch, refused={"partition-app": "needs netns"})
    lines: list[str] = []
    first = FakeRuntime({"STORE_ENGINE": "redis"})
    out_dir = experiment.run_all(
        ["failover-redis-kill", "partition-app"],
        first,
        lines.append,
        configurations=["hardened", "stock"],
        load_scenarios=(),
        engines=["redis", "valkey"],
    )
    assert [(env["STORE_ENGINE"], env["SESSION_LAYER"]) for env, _ in ran] == [
        ("redis", "hardened"), ("redis", "stock"), ("valkey", "hardened"), ("valkey", "stock"),
    ]  # fmt: skip
    assert first.downs == 0 and [r.downs for r in runtimes] == [0, 1, 0, 0]  # redis's last stack, before valkey
    assert "== stopping the redis stack for valkey" in lines
    assert "[stock on valkey] [partition-app] skipped: needs netns" in lines
    report = (out_dir / "report.md").read_text()
    assert report.startswith("# Failover matrix: hardened against stock, on redis and valkey")
    with pytest.raises(settings.ConfigError, match="ENGINES: 'keydb' is not one of: redis, valkey"):
        check_engines(["redis", "keydb"])
    assert check_engines([]) is None


def test_all_skips_what_the_runtime_refuses_and_the_matrix_says_why(tmp_path, monkeypatch):
    from sessionproof.chaos import experiment

    reason = "network faults need NETWORK=netns (this stack runs on loopback)"
    ran, _ = fake_stack(tmp_path, monkeypatch, refused={"partition-redis-master": reason})
    lines: list[str] = []
    out_dir = experiment.run_all(
        ["partition-redis-master", "failover-redis-kill"],
        FakeRuntime({}),
        lines.append,
        configurations=["hardened"],
        load_scenarios=(),
    )
    assert [name for _, name in ran] == ["failover-redis-kill"]
    assert f"[hardened] [partition-redis-master] skipped: {reason}" in lines
    rows = json.loads((out_dir / "matrix.json").read_text())["rows"]
    skipped = next(row for row in rows if row["scenario"] == "partition-redis-master")
    assert (skipped["configuration"], skipped["note"], skipped["report"]) == ("hardened", f"skipped: {reason}", None)


def test_configurations_set_the_layer_and_only_the_third_sets_min_replicas():
    """Both stock configurations start Redis nodes as Redis does on its own (no catch-up before promotion)."""
    assert CONFIGURATIONS == {
        "hardened": {"SESSION_LAYER": "hardened"},
        "stock": {"SESSION_LAYER": "stock", "REDIS_CATCH_UP_BEFORE_PROMOTION": "no"},
        "stock-min-replicas-0": {
            "SESSION_LAYER": "stock",
            "REDIS_MIN_REPLICAS_TO_WRITE": "0",
            "REDIS_CATCH_UP_BEFORE_PROMOTION": "no",
        },
        "hardened-fsync-always": {"SESSION_LAYER": "hardened", "REDIS_APPENDFSYNC": "always", "SESSION_WAIT_AOF": "no"},
        "hardened-waitaof": {"SESSION_LAYER": "hardened", "REDIS_APPENDFSYNC": "always", "SESSION_WAIT_AOF": "yes"},
    }


def test_all_refuses_an_unknown_configuration(capsys, monkeypatch):
    from sessionproof.chaos import experiment

    monkeypatch.setattr(experiment, "get_runtime", lambda *_: pytest.fail("checked before any runtime"))
    assert experiment.main(["--all", "--layers", "stock turbo"]) == 2
    assert (
        "LAYERS: 'turbo' is not one of: hardened, stock, stock-min-replicas-0, hardened-fsync-always, hardened-waitaof"
        in capsys.readouterr().err
    )
    assert experiment.main(["--all", "--layers", " "]) == 2
    assert "LAYERS is empty" in capsys.readouterr().err


def test_new_experiments_follow_the_process_faults():
    assert EXPERIMENTS[-5:] == (
        "partition-redis-master", "partition-app", "isolate-sentinel", "partition-sentinels-minority",
        "congest-redis-master",
    )  # fmt: skip
    assert EXPERIMENTS.index("fill-redis") == len(EXPERIMENTS) - 6
    assert EXPERIMENTS.index("redis-full-restart") == len(EXPERIMENTS) - 7


class LoopbackRuntime(FakeRuntime):
    def network_refusal(self) -> str | None:
        return "this stack runs NETWORK=loopback"


def test_a_network_fault_is_refused_on_a_stack_that_cannot_cut_links():
    from sessionproof.chaos import experiment

    runtime = LoopbackRuntime({})
    assert "NETWORK=loopback" in experiment.refusal("partition-redis-master", runtime)
    assert experiment.refusal("failover-redis-kill", runtime) is None
    with pytest.raises(RuntimeError, match="partition-app cannot run on this stack"):
        experiment.run_experiment("partition-app", runtime, lambda *_: None)
    assert runtime.ups == 0  # refused before touching the stack


def test_the_eta_follows_the_pace_of_the_steps_done():
    from sessionproof.chaos.experiment import ProgressClock

    now = [100.0]
    clock = ProgressClock([60.0, 60.0, 120.0], now=lambda: now[0])
    assert clock.status(0) == "elapsed 0m00s, ETA 4m00s"  # the estimates alone
    now[0] += 90.0  # the first step took 1.5 times its estimate: the rest will too
    assert clock.status(1) == "elapsed 1m30s, ETA 4m30s"
    now[0] += 90.0
    assert clock.status(3) == "elapsed 3m00s, ETA 0m00s"
