"""What a campaign's events say the nemesis did: injections and their overlaps, failed injections, steps, Sentinel
failovers counted once, aborted failovers and split-brain episodes (analysis/campaign_faults.py)."""

from __future__ import annotations

from campaign_fixture import LOSSY, MATRIX, campaign_events, fault, step

from sessionproof.analysis import campaign_faults as nemesis
from sessionproof.analysis import failover
from sessionproof.runfiles import read_jsonl

T0 = 1_800_000_000.0


def injections_of(steps):
    runs, failed = nemesis.injections(campaign_events(T0, steps))
    nemesis.mark_overlaps(runs, T0 + 600)
    return runs, failed


def test_two_overlapping_injections_and_one_apart():
    runs, _ = injections_of([
        step(0, 10, fault("kill-redis-master", 0, 8, heal_s=1), fault("pause-app", 3, 2)),  # 10-19 and 13-15.5
        step(1, 30, fault("kill-sentinel", 0, 5)),  # 30-35.5: alone
    ])  # fmt: skip
    assert [(i.fault, i.overlaps) for i in runs] == [
        ("kill-redis-master", [1]),
        ("pause-app", [0]),
        ("kill-sentinel", []),
    ]
    figures = nemesis.overlap_figures(runs)
    assert figures == {
        "injections": 3, "overlapping_injections": 2, "overlapping_share": 0.6667,
        "overlapping_another_step_injections": 0,
    }  # fmt: skip


def test_overlap_across_steps_and_a_shared_instant_count():
    """Active intervals are closed: a fault injected the instant another ends overlaps it; a step injected while
    the one before still heals overlaps across steps."""
    runs, _ = injections_of([
        step(0, 10, fault("kill-redis-master", 0, 8, heal_s=4)),  # active 10-22
        step(1, 20, fault("pause-app", 0, 2)),  # 20-22.5: still inside step 0's heal
        step(2, 22.5, fault("kill-sentinel", 0, 1)),  # injected at 22.5, when step 1 ends
    ])  # fmt: skip
    assert [i.overlaps for i in runs] == [[1], [0, 2], [1]]
    assert nemesis.overlap_figures(runs)["overlapping_another_step_injections"] == 3


def test_a_failed_injection_is_no_injection_and_keeps_its_error():
    runs, failed = injections_of(
        [
            step(0, 10, fault("kill-redis-master", 0, 8, fail="no master to target")),
            step(1, 20, fault("kill-app", 0, 2)),
        ]
    )
    assert [i.fault for i in runs] == ["kill-app"]
    assert failed == [{"t": T0 + 10, "step": 0, "fault": "kill-redis-master", "error": "no master to target"}]
    started_then_failed = [
        {"t": T0, "type": "fault_start", "fault": "kill-redis-master", "step": 0, "target": "redis-1"},
        {"t": T0 + 1, "type": "fault_failed", "fault": "kill-redis-master", "step": 0, "error": "refused"},
    ]
    assert nemesis.injections(started_then_failed)[0] == []


def test_an_injection_never_healed_lasts_to_the_end_of_the_run():
    events = [e for e in campaign_events(T0, [step(0, 10, fault("fill-redis", 0, 5))]) if e["type"] != "fault_end"]
    (injection,), _ = nemesis.injections(events)
    assert injection.end_t is None and injection.active_to(T0 + 99) == T0 + 99


def test_steps_by_kind_and_combination_from_the_plan_or_their_faults():
    plan_steps = [
        step(0, 10, fault("kill-redis-master", 0, 8), fault("pause-app", 3, 2)),
        step(1, 30, fault("kill-sentinel", 0, 5), fault("kill-app", 0, 1), fault("pause-redis-replica", 1, 1)),
    ]
    events = campaign_events(T0, plan_steps)
    runs, _ = nemesis.injections(events)
    steps = nemesis.steps_run(runs, nemesis.nemesis_plan(events))
    assert [(s["step"], s["name"], s["kind"]) for s in steps] == [
        (0, "kill-redis-master+pause-app", "pair"),
        (1, "kill-sentinel+kill-app+pause-redis-replica", "triple"),
    ]
    # An experiment's events (no plan, no step): each fault is a single step named after it.
    experiment = [e for e in read_jsonl(LOSSY / "raw" / "events.jsonl") if e["type"].startswith("fault")]
    runs, _ = nemesis.injections(experiment)
    assert [(s["name"], s["kind"]) for s in nemesis.steps_run(runs, None)] == [("partition-redis-master", "single")]


def sentinel(t, channel, message, name):
    return {"t": T0 + t, "type": "sentinel", "channel": channel, "message": message, "sentinel": name}


SWITCH = "sessionproof 10.0.0.1 6380 10.0.0.2 6381"


def test_one_failover_published_by_three_sentinels_over_a_second_is_one():
    """The real partition of a stock master: the third Sentinel published +switch-master 1.05 s after the others,
    which the report's 1 s collapse of Sentinel events counts as a second entry; one epoch, one failover."""
    events = read_jsonl(LOSSY / "raw" / "events.jsonl")
    found = nemesis.failovers(events, {"10.199.0.12:6381": "redis-2", "10.199.0.13:6382": "redis-3"})
    assert [(f["epoch"], f["from"], f["to"], f["sentinels"]) for f in found] == [(61, "redis-2", "redis-3", 3)]
    timeline = failover.sentinel_timeline(events, 0)
    assert sum(entry["event"] == "+switch-master" for entry in timeline) == 2


def test_a_double_failover_is_two_even_when_a_sentinel_reports_the_first_late():
    """notable/failover-redis-kill-double-failover: sentinel-1 published the first switch (epoch 4) a second late,
    after the others had begun epoch 5; the second switch (epoch 5) went another way."""
    events = read_jsonl(MATRIX.parent / "notable" / "failover-redis-kill-double-failover" / "raw" / "events.jsonl")
    found = nemesis.failovers(events)
    assert [(f["epoch"], f["from"], f["to"], f["sentinels"]) for f in found] == [
        (4, "127.0.0.1:6380", "127.0.0.1:6382", 3),
        (5, "127.0.0.1:6382", "127.0.0.1:6381", 3),
    ]


def test_a_sentinel_cut_off_reports_the_switch_when_it_rejoins_in_the_same_epoch():
    events = [sentinel(1, "+new-epoch", "7", s) for s in ("s1", "s2")]
    events += [sentinel(2, "+switch-master", SWITCH, s) for s in ("s1", "s2")]
    events += [sentinel(40, "+new-epoch", "7", "s3"), sentinel(40.1, "+switch-master", SWITCH, "s3")]
    assert [(f["epoch"], f["sentinels"]) for f in nemesis.failovers(events)] == [(7, 3)]


def test_without_epochs_a_switch_counts_once_within_five_seconds():
    close = [sentinel(0, "+switch-master", SWITCH, "s1"), sentinel(4, "+switch-master", SWITCH, "s2")]
    assert len(nemesis.failovers(close)) == 1
    apart = [sentinel(0, "+switch-master", SWITCH, "s1"), sentinel(30, "+switch-master", SWITCH, "s2")]
    assert len(nemesis.failovers(apart)) == 2


def test_aborted_failovers_once_per_sentinel_and_epoch():
    events = [
        sentinel(0, "+new-epoch", "3", "s1"),
        sentinel(1, "-failover-abort-no-good-slave", "master sessionproof 10.0.0.1 6380", "s1"),
        sentinel(1.5, "-failover-abort-no-good-slave", "master sessionproof 10.0.0.1 6380", "s1"),
        sentinel(9, "+new-epoch", "4", "s2"),
        sentinel(10, "-failover-abort-not-elected", "master sessionproof 10.0.0.1 6380", "s2"),
    ]
    found = nemesis.aborted_failovers(events)
    assert [(a["reason"], a["epoch"]) for a in found] == [("failover-abort-no-good-slave", 3),
                                                          ("failover-abort-not-elected", 4)]  # fmt: skip
    assert nemesis.failovers(events) == []


def test_split_brain_episodes_from_repeated_reports_to_their_end():
    events = [
        {"t": T0 + 1, "type": "split_brain", "masters": ["redis-1", "redis-2"]},
        {"t": T0 + 2, "type": "split_brain", "masters": ["redis-1", "redis-2"]},
        {"t": T0 + 5, "type": "split_brain_end", "masters": ["redis-2"]},
        {"t": T0 + 20, "type": "split_brain", "masters": ["redis-2", "redis-3"]},
    ]
    episodes = nemesis.split_brains(events, T0 + 30)
    assert [(e["start_t"] - T0, e["end_t"] - T0, e["reports"], e["ended"]) for e in episodes] == [
        (1, 5, 2, True), (20, 30, 1, False)
    ]  # fmt: skip


def test_interval_helpers():
    merged = nemesis.merge([(5, 8), (0, 2), (1, 3), (8, 9)])
    assert merged == [(0, 3), (5, 9)]
    assert nemesis.length(merged) == 7
    assert [nemesis.covers(merged, t) for t in (-1, 0, 3, 4, 9, 10)] == [False, True, True, False, True, False]
