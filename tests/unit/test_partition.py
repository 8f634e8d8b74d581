"""The partition block on synthetic inputs: windows of two masters, node names, writes and losses per master."""

from __future__ import annotations

from sessionproof.analysis import partition

T0 = 1_000_000.0  # the run starts here; the fault lasts from +10 s to +20 s; the run ends at +40 s
RUN_END = T0 + 40
FAULT = [
    {"t": T0 + 10, "type": "fault_start", "fault": "partition-redis-master", "target": "redis-1"},
    {"t": T0 + 20, "type": "fault_end", "fault": "partition-redis-master", "target": "redis-1"},
]
# Loopback: every node on 127.0.0.1, ports tell them apart.
META = {
    "topology": {
        "network": "loopback",
        "nodes": [{"name": f"redis-{i}", "kind": "redis", "host": "127.0.0.1", "port": 6379 + i} for i in (1, 2, 3)]
        + [{"name": "sentinel-1", "kind": "sentinel", "host": "127.0.0.1", "port": 26380}],
    }
}
R1, R2 = "127.0.0.1:6380", "127.0.0.1:6381"


def split(t: float, *masters: str) -> dict:
    return {"t": T0 + t, "type": "split_brain", "masters": list(masters)}


def split_end(t: float) -> dict:
    return {"t": T0 + t, "type": "split_brain_end", "masters": ["redis-2"]}


def write(t: float, store: str | None, ok: bool = True, endpoint: str = "POST /cart/[item]") -> dict:
    row = {"t": T0 + t, "endpoint": endpoint, "ok": ok, "kind": "ok" if ok else "503"}
    return row if store is None else row | {"store": store}


def lost(t: float | None, store: str | None) -> dict:
    return {"user": "u", "item": f"i{t}", "t": None if t is None else T0 + t, "store": store}


def block(events=(), timeline=(), final_read=None, meta=META, counters=None) -> dict | None:
    return partition.partition_block(
        [*FAULT, *events], list(timeline), final_read or {}, meta, counters or {}, T0, RUN_END
    )


def test_no_fault_means_no_partition_block():
    assert partition.partition_block([split(12, "redis-1", "redis-2")], [], {}, META, {}, T0, RUN_END) is None


def test_addresses_map_to_node_names_and_unknown_ones_stay_raw():
    names = partition.store_names(META)
    assert names == {R1: "redis-1", R2: "redis-2", "127.0.0.1:6382": "redis-3"}  # Sentinels are no store
    assert partition.node_name(R2, names) == "redis-2"
    assert partition.node_name("10.199.0.99:6380", names) == "10.199.0.99:6380"
    assert partition.node_name(None, names) == "unknown"
    # Namespaces: one address per node, the same port everywhere.
    netns = {
        "topology": {
            "nodes": [{"name": f"redis-{i}", "kind": "redis", "host": f"10.199.0.1{i}", "port": 6380} for i in (1, 2)]
        }
    }
    assert partition.node_name("10.199.0.12:6380", partition.store_names(netns)) == "redis-2"
    # A topology recorded before nodes had a host: the port alone names the node.
    old = {"topology": {"nodes": [{"name": "redis-1", "kind": "redis", "port": 6380}]}}
    assert partition.node_name(R1, partition.store_names(old)) == "redis-1"


def test_windows_open_at_split_brain_and_close_at_its_end():
    events = [split(12, "redis-1", "redis-2"), split(13, "redis-1", "redis-2", "redis-3"), split_end(15.5)]
    events += [split(30, "redis-1", "redis-3"), split_end(31)]
    windows = partition.two_master_windows(events, T0 + 20, RUN_END)
    assert [(w["start_t"] - T0, w["end_t"] - T0, w["masters"], w["closed_by"]) for w in windows] == [
        (12, 15.5, ["redis-1", "redis-2", "redis-3"], "split_brain_end"),  # a third master widens the window
        (30, 31, ["redis-1", "redis-3"], "split_brain_end"),
    ]
    result = block(events)
    assert result["two_masters_s"] == 4.5
    assert result["two_masters_windows"][0] == {
        "start_t_rel_s": 12.0,
        "end_t_rel_s": 15.5,
        "duration_s": 3.5,
        "masters": ["redis-1", "redis-2", "redis-3"],
        "closed_by": "split_brain_end",
    }


def test_a_split_brain_without_an_end_lasts_until_the_heal_or_the_run_end():
    (healed,) = partition.two_master_windows([split(14, "redis-1", "redis-2")], T0 + 20, RUN_END)
    assert (healed["end_t"] - T0, healed["closed_by"]) == (20, "fault_end")
    # Seen only after the heal (the old master back, not yet demoted): the run's end bounds it.
    (late,) = partition.two_master_windows([split(21, "redis-1", "redis-2")], T0 + 20, RUN_END)
    assert (late["end_t"] - T0, late["closed_by"]) == (40, "run_end")
    (never_healed,) = partition.two_master_windows([split(14, "redis-1", "redis-2")], None, RUN_END)
    assert (never_healed["end_t"] - T0, never_healed["closed_by"]) == (40, "run_end")
    assert partition.two_master_windows([split_end(5)], T0 + 20, RUN_END) == []  # an end without a start


def test_writes_and_losses_per_master_while_two_masters_and_during_the_fault():
    events = [split(12, "redis-1", "redis-2"), split_end(16)]
    timeline = [
        write(9, R1),  # before the fault: counted nowhere
        write(11, R1),  # in the fault, before two masters
        write(12, R1),
        write(13, R1),
        write(14, R2),
        write(15, None),  # no header (not acknowledged by a node): not placed
        write(15, R2, ok=False),  # failed: not acknowledged
        write(15, R1, endpoint="GET /cart"),  # a read
        write(15.5, R1, endpoint="POST /login"),  # not a cart add: the final read judges adds only
        write(17, "10.0.0.9:6380"),  # an address the topology does not know
        write(25, R2),  # after the heal
    ]
    final_read = {"lost_acknowledged_writes": 4, "lost_items": [lost(12, R1), lost(13, R1), lost(11, R1), lost(9, R1)]}
    result = block(events, timeline, final_read)
    assert result["writes_while_two_masters"] == {
        "redis-1": {"acked": 2, "lost": 2},
        "redis-2": {"acked": 1, "lost": 0},
    }
    assert result["writes_during_fault"] == {
        "10.0.0.9:6380": {"acked": 1, "lost": 0},
        "redis-1": {"acked": 3, "lost": 3},
        "redis-2": {"acked": 1, "lost": 0},
    }
    assert result["lost_without_time"] == 0


def test_losses_are_found_on_the_old_master_even_when_the_watcher_saw_no_split():
    timeline = [write(12, R1), write(13, R1), write(14, R2)]
    final_read = {"lost_acknowledged_writes": 2, "lost_items": [lost(12, R1), lost(13, R1)]}
    result = block([], timeline, final_read)
    assert (result["two_masters_s"], result["two_masters_windows"], result["writes_while_two_masters"]) == (0, [], {})
    assert result["writes_during_fault"]["redis-1"] == {"acked": 2, "lost": 2}
    assert result["old_master"] == "redis-1"  # no promotion seen: the fault's own Redis target


def test_an_old_run_without_store_fields_gives_zeros_and_counts_untimed_losses():
    timeline = [{"t": T0 + 12, "endpoint": "POST /cart/[item]", "ok": True, "kind": "ok"}]
    final_read = {"lost_acknowledged_writes": 3, "lost_examples": [{"user": "u", "item": "a"}]}  # no lost_items
    result = block([split(12, "redis-1", "redis-2")], timeline, final_read, meta={})
    assert (result["writes_while_two_masters"], result["writes_during_fault"]) == ({}, {})
    assert result["lost_without_time"] == 3
    assert result["stale_reads"] == {"run": None, "during_fault": 0, "heal_window_s": 10.0}
    assert result["old_master"] is None  # the topology is unknown, so the target cannot be told a Redis node
    assert block()["lost_without_time"] is None  # no read-back at all


def test_the_promotion_is_the_first_switch_master_after_the_fault_began():
    switch = {"type": "sentinel", "channel": "+switch-master", "sentinel": "sentinel-1"}
    events = [
        switch | {"t": T0 + 5, "message": "sessionproof 127.0.0.1 6382 127.0.0.1 6380"},  # an earlier failover
        switch | {"t": T0 + 13.25, "message": "sessionproof 127.0.0.1 6380 127.0.0.1 6381"},
        switch | {"t": T0 + 13.5, "message": "sessionproof 127.0.0.1 6380 127.0.0.1 6381"},
    ]
    result = block(events)
    assert result["promotion"] == {
        "t_rel_s": 13.25,
        "after_fault_start_s": 3.25,
        "message": "sessionproof 127.0.0.1 6380 127.0.0.1 6381",
        "from": "redis-1",
        "to": "redis-2",
    }
    assert result["old_master"] == "redis-1"
    assert block()["promotion"] is None
    odd = block([switch | {"t": T0 + 14, "message": "garbled"}])["promotion"]
    assert (odd["from"], odd["to"], odd["message"]) == (None, None, "garbled")


def test_fault_times_and_stale_reads_in_the_fault_and_heal_window():
    def mismatch(t, *classes):
        return {"t": T0 + t, "type": "mismatch", "classes": list(classes)}

    events = [mismatch(5, "stale_reads"), mismatch(11, "stale_reads"), mismatch(12, "lost_writes")]
    events += [mismatch(29.5, "lost_writes", "stale_reads"), mismatch(30.5, "stale_reads")]  # heal + 10 s = 30
    result = block(events, counters={"correctness": {"stale_reads": 7}})
    assert result["stale_reads"] == {"run": 7, "during_fault": 2, "heal_window_s": 10.0}
    assert result["fault_start"] == {"t_rel_s": 10.0, "at": "1970-01-12T13:46:50.000Z"}
    assert result["fault_end"] == {"t_rel_s": 20.0, "at": "1970-01-12T13:47:00.000Z"}
    assert (result["fault"], result["target"]) == ("partition-redis-master", "redis-1")
    unhealed = partition.partition_block(FAULT[:1], [], {}, META, {}, T0, RUN_END)
    assert unhealed["fault_end"] is None


def test_the_report_section_in_plain_sentences_and_a_table():
    switch = {"type": "sentinel", "channel": "+switch-master", "message": "sessionproof 127.0.0.1 6380 127.0.0.1 6381"}
    events = [switch | {"t": T0 + 13}, split(13, "redis-1", "redis-2")]
    timeline = [write(12, R1), write(14, R1), write(15, R2)]
    final_read = {"lost_acknowledged_writes": 1, "lost_items": [lost(14, R1)]}
    lines = partition.markdown_lines(block(events, timeline, final_read, counters={"correctness": {"stale_reads": 1}}))
    text = "\n".join(lines)
    assert lines[0] == "## Partition"
    assert "partition-redis-master on redis-1 began at 10.0 s (1970-01-12T13:46:50.000Z)" in text
    assert "healed at 20.0 s" in text
    assert "Sentinel promoted a new master (redis-1 to redis-2) at 13.0 s, 3.0 s after the fault began." in text
    assert "Two masters coexisted for 7.0 s in all: 13.0 to 20.0 s (redis-1, redis-2, no end observed)." in text
    assert "Stale reads: 0 during the fault and the 10 s after its heal, 1 in the whole run." in text
    assert "| redis-1 (old master) | 2 | **1** | 1 | **1** |" in lines
    assert "| redis-2 | 1 | **0** | 1 | **0** |" in lines
    quiet = "\n".join(partition.markdown_lines(block()))
    assert "Sentinel promoted no new master" in quiet and "Two masters never coexisted" in quiet
    assert "No write in the run names the Redis node" in quiet
    assert partition.markdown_lines(None) == []
