"""Run folders are never overwritten; `latest` points at the newest; scenarios load or fail clearly."""

from __future__ import annotations

import datetime as dt

import pytest

from sessionproof import runs
from sessionproof.load import scenarios


def test_two_runs_in_the_same_second_get_two_folders(tmp_path):
    now = dt.datetime(2026, 11, 23, 12, 0, 0, tzinfo=dt.UTC)
    first = runs.reserve_run_dir("bounce", tmp_path, now)
    second = runs.reserve_run_dir("bounce", tmp_path, now)
    assert first.name == "20261123T120000Z-bounce"
    assert second.name == "20261123T120000Z-bounce-2"
    assert first.is_dir() and second.is_dir()


def test_latest_points_at_the_newest_run(tmp_path):
    older = runs.reserve_run_dir("bounce", tmp_path)
    newer = runs.reserve_run_dir("latency", tmp_path)
    runs.point_latest(older)
    runs.point_latest(newer)
    assert (tmp_path / "latest").resolve() == newer.resolve()
    assert not (tmp_path / "latest").readlink().is_absolute()


def test_a_bad_scenario_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="lower-case"):
        runs.reserve_run_dir("../etc", tmp_path)


def test_the_password_never_reaches_meta():
    assert runs.resolved_config({"REDIS_PASSWORD": "s3cret"})["REDIS_PASSWORD"] == "***"


@pytest.mark.parametrize("name", ["latency", "bounce", "concurrency", "mixed"])
def test_every_shipped_scenario_loads_and_has_slos(name):
    scenario = scenarios.load(name)
    assert scenario.users > 0 and scenario.rate_per_user_per_s > 0 and scenario.slo


def test_an_unknown_scenario_names_the_choices():
    with pytest.raises(scenarios.ScenarioError, match="bounce"):
        scenarios.load("nope")


def test_a_broken_scenario_file_says_which_field(tmp_path):
    (tmp_path / "broken.yaml").write_text("users: 1\nmix: {latency: 1}\n")
    with pytest.raises(scenarios.ScenarioError, match="spawn_rate"):
        scenarios.load("broken", tmp_path)
    (tmp_path / "typo.yaml").write_text(
        "users: 1\nspawn_rate: 1\nduration: 1s\nrate_per_user_per_s: 1\nmix: {latencyy: 1}\n"
    )
    with pytest.raises(scenarios.ScenarioError, match="latencyy"):
        scenarios.load("typo", tmp_path)


def test_the_current_run_marker_names_a_live_run_only(tmp_path):
    run_dir = runs.reserve_run_dir("bounce", tmp_path)
    assert runs.current_run(tmp_path) is None
    runs.mark_current(run_dir)
    assert runs.current_run(tmp_path) == run_dir
    marker = runs.current_marker(tmp_path)
    marker.write_text(f"{run_dir}\n999999999\n")  # a crashed run's process is gone
    assert runs.current_run(tmp_path) is None
    runs.unmark_current(run_dir)
    assert not marker.exists()
