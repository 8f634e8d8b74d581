"""What a fault did to the Redis side: promotion, two masters at once, whose writes were lost, stale reads.

The summary's `partition` block, built for every run with a fault (network partitions are where it
matters most, but a killed or paused master can split the same way). Pure functions over the run's
raw inputs, so each figure is testable on synthetic data:

- events.jsonl: fault_start / fault_end, Sentinel's "+switch-master", the watcher's split_brain /
  split_brain_end (each with "masters": [node names]), the load's "mismatch" events;
- timeline.jsonl: each request's end time, outcome and "store" (X-Store-Node: the "host:port" of the
  Redis node that acknowledged its session write; absent in runs recorded before it existed);
- the checker's lost items: every lost acknowledged write with when (t) and where (store);
- meta.json topology: which node listens on a "host:port"; counters.json: the run's stale reads.

All times in the block are seconds since the run start (t_rel_s) unless named otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from sessionproof.analysis.failover import LOST_CLASSES, fault_periods, iso_utc

if TYPE_CHECKING:
    from sessionproof.analysis.rundata import RunData

HEAL_WINDOW_S = 10.0  # stale reads right after heal are still the fault's doing (replicas catching up)
UNKNOWN_STORE = "unknown"  # a write acknowledged without an X-Store-Node header
WRITE_PREFIX = "POST /cart/"  # the adds the final read judges; logins and logouts are not in the ledger


def store_names(meta: dict) -> dict[str, str]:
    """ "host:port" -> Redis node name, from meta.json's topology; a node without a host matches by ":port"."""
    names = {}
    for node in (meta.get("topology") or {}).get("nodes") or []:
        if node.get("kind") != "redis" or node.get("port") is None:
            continue
        host = node.get("host")
        names[f"{host}:{node['port']}" if host else f":{node['port']}"] = node["name"]
    return names


def node_name(address: str | None, names: dict[str, str]) -> str:
    """The node behind an address; the raw address when the topology does not know it."""
    if not address:
        return UNKNOWN_STORE
    if address in names:
        return names[address]
    port = address.rsplit(":", 1)[-1]
    return names.get(f":{port}", address)  # runs whose topology predates hosts (loopback: ports tell apart)


def two_master_windows(events: list[dict], fault_end_t: float | None, run_end_t: float) -> list[dict]:
    """Spans (Unix times) in which two or more nodes claimed role:master, from the watcher's events.

    A split_brain opens a window (a later one with other masters widens it), split_brain_end closes it. One
    never closed lasts until the fault's heal, or the run's end when it began after the heal."""
    windows: list[dict] = []
    current: dict | None = None
    for event in sorted(events, key=lambda e: e["t"]):
        if event.get("type") == "split_brain":
            if current is None:
                current = {"start_t": event["t"], "masters": set(), "closed_by": None}
                windows.append(current)
            current["masters"] |= set(event.get("masters") or [])
        elif event.get("type") == "split_brain_end" and current is not None:
            current.update(end_t=event["t"], closed_by="split_brain_end")
            current = None
    if current is not None:
        healed_after = fault_end_t is not None and fault_end_t >= current["start_t"]
        current.update(
            end_t=fault_end_t if healed_after else max(run_end_t, current["start_t"]),
            closed_by="fault_end" if healed_after else "run_end",
        )
    for window in windows:
        window["masters"] = sorted(window["masters"])
    return windows


def _within(t: float | None, spans: list[tuple[float, float]]) -> bool:
    return t is not None and any(start <= t <= end for start, end in spans)


def writes_by_master(
    timeline: list[dict], lost_items: list[dict], spans: list[tuple[float, float]], names: dict[str, str]
) -> dict[str, dict[str, int]]:
    """Per node: writes it acknowledged within the spans, and how many of those the final read missed."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"acked": 0, "lost": 0})
    for row in timeline:
        store = row.get("store")  # absent in older runs: such writes cannot be placed on a node
        if (
            store
            and row.get("ok")
            and str(row.get("endpoint", "")).startswith(WRITE_PREFIX)
            and _within(row["t"], spans)
        ):
            counts[node_name(store, names)]["acked"] += 1
    for item in lost_items:
        if _within(item.get("t"), spans):
            counts[node_name(item.get("store"), names)]["lost"] += 1
    return {name: counts[name] for name in sorted(counts)}


def promotion(events: list[dict], fault_start_t: float, run_start_t: float, names: dict[str, str]) -> dict | None:
    """Sentinel's first "+switch-master" after the fault started: when, and from which node to which."""
    switches = sorted(
        (e for e in events if e.get("type") == "sentinel" and e.get("channel") == "+switch-master"),
        key=lambda e: e["t"],
    )
    first = next((e for e in switches if e["t"] >= fault_start_t), None)
    if first is None:
        return None
    message = str(first.get("message") or "")
    parts = message.split()  # "<master-name> <old-ip> <old-port> <new-ip> <new-port>"
    from_node, to_node = (
        (node_name(f"{parts[1]}:{parts[2]}", names), node_name(f"{parts[3]}:{parts[4]}", names))
        if len(parts) == 5
        else (None, None)
    )
    return {
        "t_rel_s": round(first["t"] - run_start_t, 3),
        "after_fault_start_s": round(first["t"] - fault_start_t, 3),
        "message": message,
        "from": from_node,
        "to": to_node,
    }


def stale_reads_during(events: list[dict], start_t: float, end_t: float) -> int:
    """Mismatch events classed stale_reads in [start_t, end_t] (each load process notes at most 2000 events)."""
    return sum(
        1
        for e in events
        if e.get("type") == "mismatch" and "stale_reads" in (e.get("classes") or []) and start_t <= e["t"] <= end_t
    )


def partition_block(
    events: list[dict],
    timeline: list[dict],
    final_read: dict,
    meta: dict,
    counters: dict,
    run_start_t: float,
    run_end_t: float,
    stale_reads_between: Callable[[float, float], int] | None = None,
) -> dict[str, Any] | None:
    """The summary's partition block; None for a run without a fault. stale_reads_between(start_t, end_t) counts
    the stale reads seen in that span (Unix s); by default the users' mismatch events of runs before histories."""
    periods = fault_periods(events)
    if not periods:
        return None
    names = store_names(meta)
    fault_start_t = min(p["start_t"] for p in periods)
    ends = [p["end_t"] for p in periods if p["end_t"] is not None]
    fault_end_t = max(ends) if ends else None
    fault_until_t = fault_end_t if fault_end_t is not None else max(run_end_t, fault_start_t)
    windows = two_master_windows(events, fault_end_t, run_end_t)
    spans = [(w["start_t"], w["end_t"]) for w in windows]
    lost_items = final_read.get("lost_items") or []
    lost_total = final_read.get("lost_acknowledged_writes")
    timed = sum(1 for item in lost_items if item.get("t") is not None)
    promoted = promotion(events, fault_start_t, run_start_t, names)
    first = periods[0]
    redis_nodes = set(names.values())
    # The master the fault hit: whom Sentinel promoted away from, else the fault's own Redis target.
    old_master = (promoted or {}).get("from") or (first["target"] if first["target"] in redis_nodes else None)

    def moment(t: float | None) -> dict | None:
        return None if t is None else {"t_rel_s": round(t - run_start_t, 3), "at": iso_utc(t)}

    stale_total = (counters.get("correctness") or {}).get("stale_reads")
    return {
        "fault": first["fault"],
        "target": first["target"],
        "fault_start": moment(fault_start_t),
        "fault_end": moment(fault_end_t),
        "old_master": old_master,
        "promotion": promoted,
        "two_masters_s": round(sum(end - start for start, end in spans), 3),
        "two_masters_windows": [
            {
                "start_t_rel_s": round(w["start_t"] - run_start_t, 3),
                "end_t_rel_s": round(w["end_t"] - run_start_t, 3),
                "duration_s": round(w["end_t"] - w["start_t"], 3),
                "masters": w["masters"],
                "closed_by": w["closed_by"],
            }
            for w in windows
        ],
        "writes_while_two_masters": writes_by_master(timeline, lost_items, spans, names),
        "writes_during_fault": writes_by_master(timeline, lost_items, [(fault_start_t, fault_until_t)], names),
        # Lost writes without an acknowledgement time (ledgers written before acked_meta): not placed above.
        "lost_without_time": None if lost_total is None else max(0, int(lost_total) - timed),
        "stale_reads": {
            "run": None if stale_total is None else int(stale_total),
            "during_fault": (stale_reads_between or partial(stale_reads_during, events))(
                fault_start_t, fault_until_t + HEAL_WINDOW_S
            ),
            "heal_window_s": HEAL_WINDOW_S,
        },
    }


def _stale_reads_judged(run: RunData, first_t: float, last_t: float) -> int:
    """The checker's stale reads seen between two Unix times."""
    return run.verdict.count_between("stale_reads", run.history_us(first_t), run.history_us(last_t))


def partition_for_run(run: RunData) -> dict[str, Any] | None:
    """partition_block of a loaded run: its lost writes and stale reads are the checker's verdict on its history
    (a run recorded before histories: its final read's lost items and its users' mismatch events)."""
    if not fault_periods(run.events):
        return None
    start_t, end_t = run.started_unix_s, run.started_unix_s + run.duration_s
    lost, stale_reads_between = run.legacy_final_read, None
    if run.verdict is not None:
        verdict = run.verdict
        lost = {
            "lost_acknowledged_writes": sum(verdict.figures[name] for name in LOST_CLASSES),
            "lost_items": [
                {**item, "t": None if item["acked_us"] is None else run.unix_s(item["acked_us"])}
                for item in verdict.lost_items
            ],
        }
        stale_reads_between = partial(_stale_reads_judged, run)
    return partition_block(run.events, run.timeline, lost, run.meta, run.counters, start_t, end_t, stale_reads_between)


# --------------------------------------------------------------------- report.md


def _or(value: Any, none_text: str = "n/a") -> str:
    return none_text if value is None else str(value)


def _per_master_rows(block: dict[str, Any]) -> list[str]:
    during, split = block["writes_during_fault"], block["writes_while_two_masters"]
    if not during and not split:
        return ["No write in the run names the Redis node that acknowledged it (X-Store-Node).", ""]
    lines = [
        "| master | acknowledged during the fault | lost of those | acknowledged while two masters | lost of those |",
        "|---|--:|--:|--:|--:|",
    ]
    for name in sorted(during.keys() | split.keys()):
        d, s = during.get(name, {"acked": 0, "lost": 0}), split.get(name, {"acked": 0, "lost": 0})
        label = f"{name} (old master)" if name == block["old_master"] else name
        lines.append(f"| {label} | {d['acked']} | **{d['lost']}** | {s['acked']} | **{s['lost']}** |")
    return [*lines, ""]


def markdown_lines(block: dict[str, Any] | None) -> list[str]:
    """The report's Partition section: plain sentences and one table; nothing for a run without a fault."""
    if not block:
        return []
    start, end = block["fault_start"], block["fault_end"]
    healed = f"healed at {end['t_rel_s']} s ({end['at']})" if end else "never healed within the run"
    lines = [
        "## Partition",
        "",
        f"Seconds since the run start. {block['fault']} on {block['target']} began at {start['t_rel_s']} s "
        f"({start['at']}) and {healed}.",
    ]
    promoted = block["promotion"]
    if promoted:
        move = f" ({_or(promoted['from'], '?')} to {_or(promoted['to'], '?')})" if promoted["from"] else ""
        lines.append(
            f"Sentinel promoted a new master{move} at {promoted['t_rel_s']} s, "
            f"{promoted['after_fault_start_s']} s after the fault began."
        )
    else:
        lines.append("Sentinel promoted no new master after the fault began.")
    windows = block["two_masters_windows"]
    if windows:
        spans = "; ".join(
            f"{w['start_t_rel_s']} to {w['end_t_rel_s']} s ({', '.join(w['masters'])}"
            + (", no end observed" if w["closed_by"] != "split_brain_end" else "")
            + ")"
            for w in windows
        )
        lines.append(f"Two masters coexisted for {block['two_masters_s']} s in all: {spans}.")
    else:
        lines.append("Two masters never coexisted (as the watcher saw it).")
    stale = block["stale_reads"]
    lines.append(
        f"Stale reads: {stale['during_fault']} during the fault and the {stale['heal_window_s']:g} s after its heal, "
        f"{_or(stale['run'])} in the whole run."
    )
    if block["lost_without_time"]:
        lines.append(f"{block['lost_without_time']} lost writes have no acknowledgement time (older ledger).")
    return [*lines, "", *_per_master_rows(block)]
