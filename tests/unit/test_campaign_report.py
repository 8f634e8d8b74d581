"""The campaign report on real runs wrapped in a nemesis's events (tests/campaign_fixture.py): the operations and
faults around an anomaly, and the program writing campaign.md, campaign.json and plots/campaign.png."""

from __future__ import annotations

import gzip
import json

import pytest
from campaign_fixture import CLEAN, campaign_run, clean_campaign, fault, lossy_campaign, step
from planting import plant
from run_folders import PNG_MAGIC

from sessionproof.analysis import campaign_report
from sessionproof.history import ANOMALY_CLASSES
from sessionproof.history.files import history_path, read_history
from sessionproof.runfiles import gzipped


# ---------------------------------------------------------------- anomalies
def test_a_planted_lost_write_shows_its_operations_and_the_faults_active(tmp_path):
    """A lost write planted in a real hardened history: the example shows the add that acknowledged it (the item
    in its cart), the final read without it, and the fault the nemesis had active when it was acknowledged."""
    source = CLEAN
    history = read_history(history_path(source))
    planted = plant(history, "lost_writes")
    final_before = {
        line["session"]: line for line in history if line["process"] == "final-read" and line["type"] == "ok"
    }
    changed = next(line for line in planted if line["process"] == "final-read" and line["type"] == "ok"
                   and line["cart"] != final_before[line["session"]]["cart"])  # fmt: skip
    lost_item = next(i for i in final_before[changed["session"]]["cart"] if i not in changed["cart"])
    ack = next(
        line for line in planted if line["type"] == "ok" and line["f"] == "add" and line.get("item") == lost_item
    )
    ack_s = ack["time_us"] / 1e6
    run_dir = campaign_run(source, tmp_path, [step(0, ack_s - 1, fault("kill-app", 0, 3, target="app-3"))])
    gzipped(history_path(run_dir)).unlink()
    history_path(run_dir).write_text("".join(json.dumps(line) + "\n" for line in planted))

    figures = campaign_report.write_campaign_report(run_dir)
    assert figures["anomalies"] == {name: int(name == "lost_writes") for name in ANOMALY_CLASSES}
    (example,) = figures["anomaly_examples"]
    assert example["detail"]["item"] == lost_item and example["moment_rel_s"] == pytest.approx(ack_s, abs=1e-3)
    assert example["faults_active"] == ["kill-app on app-3 (step 0 kill-app)"]
    ops = example["operations"]
    acked = next(op for op in ops if op["dt_s"] == 0 and op["type"] == "ok")
    assert acked["f"] == "add" and acked["item"] == lost_item and acked["has_item"] is True
    final = ops[-1]
    assert (final["process"], final["type"], final["has_item"]) == ("final-read", "ok", False)
    assert all(abs(op["dt_s"]) <= 3 for op in ops[:-2]) and len(ops) <= 10
    markdown = (run_dir / "campaign.md").read_text()
    assert f"item={lost_item}" in markdown and "faults active: kill-app on app-3" in markdown


# ------------------------------------------------------------ the program
def test_the_program_writes_the_three_files_of_a_lossy_campaign(tmp_path, capsys):
    run_dir = lossy_campaign(tmp_path)
    assert campaign_report.main([str(run_dir)]) == 3  # the checker found anomalies
    assert "VIOLATED: 720 lost (300 lost_writes + 420 lost_updates) of 1748" in capsys.readouterr().out
    assert (run_dir / "plots" / "campaign.png").read_bytes().startswith(PNG_MAGIC)
    figures = json.loads((run_dir / "campaign.json").read_text())
    assert (figures["configuration"], figures["seed"], figures["valid"]) == ("stock-min-replicas-0", 7, True)
    assert figures["reproduce"] == "make campaign DURATION=45s SEED=7 LAYERS=stock-min-replicas-0"
    faults = figures["faults"]
    assert (faults["injections"], faults["overlapping_injections"], faults["steps_run"], faults["steps_planned"]) == (
        3, 2, 2, 3)  # fmt: skip
    assert faults["steps_by_kind"] == {"pair": 1, "single": 1}
    assert [f["error"] for f in faults["failed_injections"]] == ["no master to target"]
    assert figures["sentinel"]["failovers"] == 1 and figures["sentinel"]["split_brain_episodes"] == 1
    assert figures["load"]["acknowledged_writes"] == 1748 and figures["load"]["operations"]["add"]["ok"] == 1748
    bound = figures["bound"]
    assert bound["violated"] and bound["lost"] == 720 and bound["upper_95"] == pytest.approx(0.4354, abs=1e-4)
    assert bound["lost_by_fault_active"]["partition-redis-master"] == 472
    assert figures["availability"]["by_fault"]["partition-redis-master"]["active_s"] == pytest.approx(21.4, abs=0.1)
    markdown = (run_dir / "campaign.md").read_text()
    for heading in ("## Faults and combinations", "## Failovers", "## The load", "## Anomalies", "## Availability",
                    "## The bound", "**HTTP 500: 0 requests**", "plots/campaign.png"):  # fmt: skip
        assert heading in markdown
    assert all(f"| {name} |" in markdown for name in ANOMALY_CLASSES)  # every class, 0 shown too


def test_a_clean_campaign_states_the_rule_of_three_and_reads_gzipped_events(tmp_path, capsys):
    run_dir = clean_campaign(tmp_path)
    events = run_dir / "raw" / "events.jsonl"
    gzipped(events).write_bytes(gzip.compress(events.read_bytes()))
    events.unlink()
    assert campaign_report.main([str(run_dir)]) == 0
    figures = json.loads((run_dir / "campaign.json").read_text())
    assert not any(figures["anomalies"].values())
    assert figures["bound"]["sentence"].startswith(
        "0 lost of 1498 acknowledged writes across 1 failover: loss rate below 3/1498 at 95 % confidence"
    )
    assert figures["faults"]["overlapping_injections"] == 2 and figures["faults"]["steps_by_kind"] == {
        "pair": 1, "single": 1}  # fmt: skip
    bound = figures["bound"]
    assert (bound["steps"], bound["steps_with_lost_writes"]) == (2, 0)
    assert bound["steps_upper_95"] == pytest.approx(1 - 0.05**0.5)  # 0 of 2 steps: the rule over steps
    assert "0 lost of 1498" in capsys.readouterr().out


def test_a_folder_without_a_history_is_refused(tmp_path, capsys):
    run_dir = clean_campaign(tmp_path)
    gzipped(history_path(run_dir)).unlink()
    assert campaign_report.main([str(run_dir)]) == 2
    assert "history.jsonl is missing" in capsys.readouterr().err


def test_the_configuration_and_the_command_come_from_the_plan_or_meta():
    plan = {"seed": 7, "duration_s": 7200, "configuration": "hardened"}
    assert (
        campaign_report.reproduce_command({}, plan, "hardened") == "make campaign DURATION=7200s SEED=7 LAYERS=hardened"
    )
    stock_0 = {"config": {"SESSION_LAYER": "stock", "REDIS_MIN_REPLICAS_TO_WRITE": "0"}}
    assert campaign_report.configuration_of(stock_0, None) == "stock-min-replicas-0"
    assert campaign_report.configuration_of({"config": {"SESSION_LAYER": "stock"}}, None) == "stock"
    meta = {"duration_s": 60.5, "campaign": {"seed": 3}}
    assert campaign_report.reproduce_command(meta, None, None) == "make campaign DURATION=60.5s SEED=3 LAYERS=?"
