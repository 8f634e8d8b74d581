"""A short nemesis campaign on the real stack (NETWORK=netns): overlapping faults from a fixed seed, one
history, the checker, the campaign report. The long campaigns are `make campaign` targets, not tests."""

from __future__ import annotations

import json
import os

import pytest

from sessionproof.chaos import campaign, nemesis
from sessionproof.history import ANOMALY_CLASSES
from sessionproof.runfiles import read_jsonl

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(os.geteuid() != 0, reason="a campaign's network faults need NETWORK=netns (root)"),
]

SEED = 15  # its first steps: a replica fault during a master kill, a busy master with a replica killed, ...
DURATION = "2m"


def test_a_short_hardened_campaign_runs_its_seeds_schedule_and_loses_nothing(healthy_stack, tmp_path, monkeypatch):
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path))
    run_dir, code = campaign.run_campaign("hardened", DURATION, SEED, progress=lambda line: None, base=healthy_stack)
    events = read_jsonl(run_dir / "raw" / "events.jsonl")
    report = json.loads((run_dir / "campaign.json").read_text())

    # The schedule is the seed's: the plan in the events is plan(SEED), and the steps ran in its order.
    (recorded,) = [e for e in events if e["type"] == "nemesis_plan"]
    _, seconds = campaign._duration(DURATION)
    expected = nemesis.plan_event(SEED, seconds, "hardened", nemesis.plan(SEED, seconds - campaign.END_MARGIN_S))
    assert {k: recorded[k] for k in expected} == expected
    ran = [e["combination"] for e in events if e["type"] == "nemesis_step"]
    assert len(ran) >= 3 and ran == [s["name"] for s in expected["steps"][: len(ran)]]
    injected = [e for e in events if e["type"] == "fault_injected"]
    assert len(injected) >= 4
    # Every injection was ended, and every overlapping pair's faults were active at once.
    assert sorted(e["fault"] for e in events if e["type"] == "fault_end") == sorted(e["fault"] for e in injected)

    assert code == 0, (run_dir / "campaign.md").read_text()
    assert report["valid"], report["invalid_reasons"]
    assert all(report["anomalies"][name] == 0 for name in ANOMALY_CLASSES), report["anomaly_examples"]
    assert report["load"]["acknowledged_writes"] > 500, report["load"]
    assert report["load"]["unread_writes"] == 0
    assert report["availability"]["status"]["requests_500"] == 0
    assert report["sentinel"]["failovers"] >= 1
    assert report["bound"]["violated"] is False
