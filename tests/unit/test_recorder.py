"""Histograms and counters merged across Locust workers equal those of one process."""

from __future__ import annotations

import json

import pytest

from sessionproof.load.recorder import SEAL_AFTER_S, Recorder


def fill(recorder: Recorder, offset: int) -> None:
    for i in range(1, 501):
        recorder.record("GET /cart", i + offset, i + offset + 10, ok=i % 100 != 0, at_s=1000 + i % 3)
    recorder.served("app-1")
    recorder.cpu(42.0)


def test_drained_workers_merge_to_the_same_histograms_as_one_process():
    single, worker_a, worker_b, master = Recorder(), Recorder(), Recorder(), Recorder()
    fill(single, 0)
    fill(single, 1000)
    fill(worker_a, 0)
    fill(worker_b, 1000)
    master.merge(json.loads(json.dumps(worker_a.drain())))  # through JSON, as over the wire
    master.merge(json.loads(json.dumps(worker_b.drain())))
    assert master.histograms.keys() == single.histograms.keys()
    for key in single.histograms:
        histogram, merged = single.histogram(key), master.histogram(key)
        assert merged.get_total_count() == histogram.get_total_count()
        assert merged.get_value_at_percentile(99) == histogram.get_value_at_percentile(99)
    assert dict(master.outcomes) == dict(single.outcomes)
    assert master.served_by == single.served_by
    assert worker_a.histograms == {}  # drained


def test_raw_files_hold_every_bucket(tmp_path):
    recorder = Recorder()
    fill(recorder, 0)
    recorder.event("mismatch", detail="x")
    recorder.write_raw(tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "histograms.jsonl").read_text().splitlines()]
    assert {(line["t"], line["kind"]) for line in lines} == {
        (t, k) for t in (1000, 1001, 1002) for k in ("service", "intended")
    }
    counters = json.loads((tmp_path / "counters.json").read_text())
    assert "correctness" not in counters  # the verdict is the checker's, over the history
    assert counters["cpu"] == {"max_percent": 42.0, "samples": 1}
    outcomes = [json.loads(line) for line in (tmp_path / "outcomes.jsonl").read_text().splitlines()]
    assert sum(o["failed"] for o in outcomes) == 5
    assert json.loads((tmp_path / "events.jsonl").read_text())["type"] == "mismatch"


def test_the_timeline_keeps_which_node_acknowledged_each_request(tmp_path):
    worker, master = Recorder(), Recorder()
    # Same time, one row with a store and one without: sorting must not compare None with a string.
    worker.record("POST /cart/[item]", 900, 1000, ok=True, at_s=1000.5, store="127.0.0.1:6380")
    worker.record("POST /cart/[item]", 900, 1000, ok=False, at_s=1000.5, kind="503")
    worker.record("GET /cart", 900, 1000, ok=True, at_s=1000.25)
    master.merge(json.loads(json.dumps(worker.drain())))
    master.timeline.append([1000.75, "GET /ping", True, "ok"])  # a row of a worker from before the store field
    master.write_raw(tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "timeline.jsonl").read_text().splitlines()]
    assert lines == [
        {"t": 1000.25, "endpoint": "GET /cart", "ok": True, "kind": "ok"},
        {"t": 1000.5, "endpoint": "POST /cart/[item]", "ok": True, "kind": "ok", "store": "127.0.0.1:6380"},
        {"t": 1000.5, "endpoint": "POST /cart/[item]", "ok": False, "kind": "503"},
        {"t": 1000.75, "endpoint": "GET /ping", "ok": True, "kind": "ok"},
    ]


def test_a_history_line_with_an_unknown_field_is_refused_when_written():
    recorder = Recorder()
    with pytest.raises(ValueError, match="unknown history fields"):
        recorder.operation("invoke", "add", "p1", "bounce", value="ip1-1")


def test_history_lines_merge_across_workers_and_are_written_in_time_order_relative_to_the_run_start(tmp_path):
    from sessionproof.load.recorder import Recorder

    worker_a, worker_b, master = Recorder(), Recorder(), Recorder()
    worker_a.operation("invoke", "add", "p1", "bounce", session="s", item="ip1-1", key="k")
    worker_b.operation("invoke", "read", "p2", "bounce", session="s")
    worker_a.operation("ok", "add", "p1", "bounce", session="s", item="ip1-1", key="k", user="u", cart=["ip1-1"])
    start_s = min(op["time_us"] for op in worker_a.history + worker_b.history) / 1_000_000 - 1
    master.merge(worker_b.drain())
    master.merge(worker_a.drain())
    master.write_raw(tmp_path, run_start_s=start_s)
    lines = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [(op["process"], op["type"]) for op in lines if op["process"] == "p1"] == [("p1", "invoke"), ("p1", "ok")]
    assert [op["time_us"] for op in lines] == sorted(op["time_us"] for op in lines)
    assert all(1_000_000 <= op["time_us"] < 60_000_000 for op in lines)  # µs since the run start


def test_hlogs_hold_one_interval_a_second_that_hdrhistogram_reads_back(tmp_path):
    from hdrh.log import HistogramLogReader

    from sessionproof.histograms import new_histogram

    recorder = Recorder()
    start_s = 1_800_000_000.0
    for second, value_us in ((0, 1_000), (0, 3_000), (1, 2_000), (3, 50_000)):
        recorder.record("POST /cart/[item]", value_us, value_us * 2, True, at_s=start_s + second + 0.5)
    written = recorder.write_hlogs(tmp_path / "hlog", run_start_s=start_s)
    assert sorted(p.name for p in written) == ["intended-post-cart-item.hlog", "service-post-cart-item.hlog"]
    reader = HistogramLogReader(str(tmp_path / "hlog" / "service-post-cart-item.hlog"), new_histogram())
    intervals = []
    while (histogram := reader.get_next_interval_histogram()) is not None:
        intervals.append((histogram.get_total_count(), histogram.get_max_value()))
    reader.close()
    assert [count for count, _ in intervals] == [2, 1, 1]  # seconds 0, 1 and 3: an empty second has no line
    assert [round(top, -2) for _, top in intervals] == [3_000, 2_000, 50_000]
    assert reader.get_start_time_sec() == start_s
    lines = (tmp_path / "hlog" / "service-post-cart-item.hlog").read_text().splitlines()
    assert lines[-1].startswith("3.000000,1.000000,50.000000,")  # start s, length s, max in ms (µs / 1000)


def test_a_long_run_keeps_only_its_last_seconds_histograms_live_and_loses_no_sample(tmp_path):
    """A 136 KiB histogram per second, endpoint and kind held a 2-hour campaign's generator at 3 MB/s (21 GB by its
    end); seconds that can no longer get a sample are kept encoded."""
    recorder = Recorder()
    for second in range(600):
        for i in range(20):
            recorder.record("GET /cart", 100 + i, 200 + i, ok=True, at_s=1000 + second + i / 20)
    live = [key for key, value in recorder.histograms.items() if not isinstance(value, str)]
    assert len(recorder.histograms) == 600 * 2 and len(live) <= 2 * (SEAL_AFTER_S + 2), len(live)
    recorder.record("GET /cart", 5000, 5000, ok=True, at_s=1000 + 10.5)  # late, for a sealed second: still counted
    assert recorder.histogram((1010, "GET /cart", "service")).get_total_count() == 21
    recorder.write_raw(tmp_path / "raw")
    lines = [json.loads(line) for line in (tmp_path / "raw" / "histograms.jsonl").read_text().splitlines()]
    assert len(lines) == 1200
    written = recorder.write_hlogs(tmp_path / "raw" / "hlog", run_start_s=1000)
    assert len(written) == 2 and all(path.stat().st_size > 0 for path in written)
