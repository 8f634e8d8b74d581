"""The run report: merged percentiles, session tax, SLOs, validity, exit codes and plots, from synthetic run folders."""

from __future__ import annotations

import json

import pytest
from run_folders import (
    CART_AND_PING,
    PNG_MAGIC,
    T0_S,
    hist_line,
    make_failover_run,
    make_run,
    summary_of,
)

from sessionproof.analysis import report
from sessionproof.analysis.markdown import render_markdown
from sessionproof.analysis.report import build_report, main
from sessionproof.analysis.rundata import load_run
from sessionproof.analysis.summary import summarize
from sessionproof.validity import INVALID_RUN_EXIT_CODE, SLO_BREACH_EXIT_CODE


def test_lines_of_the_same_second_endpoint_and_kind_are_merged(tmp_path):
    # Two worker processes report the same second: 600 fast and 600 slow requests.
    run_dir = make_run(
        tmp_path / "run",
        [hist_line(T0_S, "GET /cart", [1000] * 600), hist_line(T0_S, "GET /cart", [3000] * 600)],
    )
    p = summary_of(run_dir)["latency_us"]["GET /cart"]
    assert p["count"] == 1200
    assert p["p50"] == pytest.approx(1000, rel=1e-3)
    assert p["p99"] == pytest.approx(3000, rel=1e-3)
    assert p["p999"] == pytest.approx(3000, rel=1e-3)  # 1200 samples: enough for p99.9
    second = load_run(run_dir).latency.per_second["service"]["GET /cart"]
    assert [(s.count, s.p50_us) for s in second] == [(1200, p["p50"])]


def test_whole_run_latency_spans_seconds_and_keeps_kinds_apart(tmp_path):
    run_dir = make_run(
        tmp_path / "run",
        [
            hist_line(T0_S, "GET /cart", [1000] * 10),
            hist_line(T0_S + 1, "GET /cart", [2000] * 10),
            hist_line(T0_S + 1, "GET /cart", [50_000] * 20, kind="intended"),
        ],
    )
    summary = summary_of(run_dir)
    assert summary["latency_us"]["GET /cart"]["count"] == 20
    assert summary["latency_us"]["GET /cart"]["p999"] is None  # too few samples to claim it
    assert summary["latency_intended_us"]["GET /cart"]["p50"] == pytest.approx(50_000, rel=1e-3)


def test_session_tax_is_cart_minus_ping_per_kind(tmp_path):
    summary = summary_of(make_run(tmp_path / "run", CART_AND_PING))
    service, intended = summary["latency_us"], summary["latency_intended_us"]
    tax = summary["session_tax_us"]
    assert tax["service"] == {
        "p50": service["GET /cart"]["p50"] - service["GET /ping"]["p50"],
        "p99": service["GET /cart"]["p99"] - service["GET /ping"]["p99"],
    }
    assert tax["service"]["p50"] == pytest.approx(4000, rel=2e-3)
    assert tax["intended"]["p99"] == intended["GET /cart"]["p99"] - intended["GET /ping"]["p99"]
    assert tax["intended"]["p99"] == pytest.approx(7000, rel=2e-3)


def test_session_tax_is_null_without_ping(tmp_path):
    summary = summary_of(make_run(tmp_path / "run", [hist_line(T0_S, "GET /cart", [5000] * 10)]))
    assert summary["session_tax_us"] is None


def test_slo_pass_breach_and_missing_data(tmp_path):
    slo = [
        {"path": ["latency_us", "GET /cart", "p99"], "max": 50_000},
        {"path": ["latency_us", "GET /ping", "p99"], "max": 500},
        {"path": ["requests", "total"], "min": 1},
        {"path": ["latency_us", "GET /never", "p99"], "max": 50_000},
        {"path": ["latency_us", "GET /cart", "p999"], "max": 50_000},
    ]
    checks = summary_of(make_run(tmp_path / "run", CART_AND_PING, slo=slo))["slo"]["checks"]
    assert [c["passed"] for c in checks] == [True, False, True, False, False]
    assert checks[0]["actual"] == pytest.approx(5000, rel=1e-3)
    assert "max 500" in checks[1]["reason"]
    assert checks[3]["reason"] == checks[4]["reason"] == "no data"  # never hit; p99.9 from 100 samples
    assert checks[3]["actual"] is None


def test_all_slos_passing_passes(tmp_path):
    slo = [{"path": ["correctness", "lost_writes"], "max": 0}, {"path": ["requests", "total"], "min": 1}]
    assert summary_of(make_run(tmp_path / "run", CART_AND_PING, slo=slo))["slo"]["passed"] is True


def test_a_busy_load_generator_makes_the_run_invalid(tmp_path):
    summary = summary_of(make_run(tmp_path / "run", CART_AND_PING, cpu_percent=95.0))
    assert summary["valid"] is False
    assert summary["invalid_reasons"] == [
        "load generator CPU reached 95% (>90%): its timings are unreliable; use fewer users or --processes"
    ]


def test_a_healthy_run_is_valid(tmp_path):
    summary = summary_of(make_run(tmp_path / "run", CART_AND_PING))
    assert summary["valid"] is True
    assert summary["invalid_reasons"] == []


def test_no_requests_or_a_short_run_is_invalid(tmp_path):
    summary = summary_of(make_run(tmp_path / "run", outcomes=[], duration_s=2.0))
    assert summary["valid"] is False
    reasons = " ".join(summary["invalid_reasons"])
    assert "no requests" in reasons
    assert "2 s (<5 s)" in reasons


def test_outcomes_with_repeated_keys_are_summed(tmp_path):
    outcomes = [
        {"t": T0_S, "endpoint": "GET /cart", "ok": 10, "failed": 1},
        {"t": T0_S, "endpoint": "GET /cart", "ok": 5, "failed": 2},
        {"t": T0_S + 1, "endpoint": "GET /ping", "ok": 7, "failed": 0},
    ]
    requests = summary_of(make_run(tmp_path / "run", CART_AND_PING, outcomes))["requests"]
    assert (requests["total"], requests["ok"], requests["failed"]) == (25, 22, 3)
    assert requests["by_endpoint"]["GET /cart"] == {"ok": 15, "failed": 3}


def test_events_are_counted_by_type(tmp_path):
    events = [{"t": T0_S, "type": "kill"}, {"t": T0_S + 3, "type": "kill"}, {"t": T0_S + 5, "type": "failover"}]
    assert summary_of(make_run(tmp_path / "a", events=events))["events"] == {"failover": 1, "kill": 2}
    assert summary_of(make_run(tmp_path / "b"))["events"] == {}  # no events.jsonl at all


def test_cli_exits_0_when_slos_pass_and_writes_everything(tmp_path, capsys):
    slo = [{"path": ["latency_us", "GET /cart", "p99"], "max": 50_000}]
    run_dir = make_run(tmp_path / "run", CART_AND_PING, slo=slo)
    assert main([str(run_dir)]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert list(summary)[:6] == ["scenario", "started_at", "duration_s", "stack", "valid", "invalid_reasons"]
    assert list(summary)[-1] == "slo"
    for name in ("latency.png", "errors.png", "replicas.png"):
        data = (run_dir / "plots" / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
    markdown = (run_dir / "report.md").read_text()
    assert "![latency and throughput over time](plots/latency.png)" in markdown
    assert "0 anomalies (" in markdown
    assert "make report RUN=<folder>" in markdown
    assert "make load SCENARIO=bounce" in markdown
    assert "n/a (<1000 samples)" in markdown
    assert "INVALID" not in markdown


def test_cli_exits_3_on_a_breach(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(report, "write_plots", lambda *_: None)  # plots are checked elsewhere; they are the slow part
    slo = [{"path": ["latency_us", "GET /cart", "p99"], "max": 1000}]
    run_dir = make_run(tmp_path / "run", CART_AND_PING, slo=slo)
    assert main([str(run_dir)]) == SLO_BREACH_EXIT_CODE == 3
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("sessionproof: valid run") and lines[1] == f"sessionproof: bounce results in {run_dir}"
    assert any(line.startswith("  GET /cart ") and "p99=" in line and "from intended start" in line for line in lines)
    assert "  SLO FAILED: latency_us → GET /cart → p99: " in "\n".join(lines)
    assert lines[-1] == f"  SLOs BREACHED (exit code 3) (1 checked); report: {run_dir / 'report.md'}"
    (run_dir / "locust.html").write_text("<html></html>")
    main([str(run_dir)])
    assert capsys.readouterr().out.splitlines()[-1].endswith(f"; Locust's report: {run_dir / 'locust.html'}")


def test_cli_exits_4_on_an_invalid_run_before_3_and_says_so_first(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(report, "write_plots", lambda *_: None)
    breached = [{"path": ["latency_us", "GET /cart", "p99"], "max": 1000}]
    run_dir = make_run(tmp_path / "run", CART_AND_PING, cpu_percent=95.0, slo=breached)
    assert main([str(run_dir)]) == INVALID_RUN_EXIT_CODE == 4
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(
        "sessionproof: INVALID run, do not trust its figures (exit code 4): load generator CPU reached 95%"
    )
    passing = make_run(tmp_path / "passing", CART_AND_PING, cpu_percent=95.0)
    assert main([str(passing)]) == 4, "an invalid run that met its SLOs passed"
    capsys.readouterr()
    assert main([str(make_run(tmp_path / "valid", CART_AND_PING))]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("sessionproof: valid run: the load generator stayed")


def test_exit_code_orders_invalid_then_breach_then_ok():
    def summary(valid, passed):
        return {"valid": valid, "slo": {"passed": passed}}

    assert [
        report.exit_code(summary(v, p)) for v, p in [(False, False), (False, True), (True, False), (True, True)]
    ] == [4, 4, 3, 0]


def test_cli_exits_2_on_a_missing_folder_or_damaged_data(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert "not a folder; pass a run folder such as results/latest" in capsys.readouterr().err
    run_dir = make_run(tmp_path / "run")
    (run_dir / "raw" / "histograms.jsonl").write_text('{"t": 1, "endpoint"\n')
    assert main([str(run_dir)]) == 2
    assert "histograms.jsonl:1 is not valid JSON" in capsys.readouterr().err
    (run_dir / "meta.json").unlink()
    assert main([str(run_dir)]) == 2
    assert "meta.json is missing" in capsys.readouterr().err


def test_an_invalid_run_with_no_data_still_renders(tmp_path):
    run_dir = make_run(tmp_path / "run", outcomes=[], served_by={}, cpu_percent=95.0, correctness={"checks": 0})
    summary = build_report(run_dir)
    assert summary["valid"] is False
    for name in ("latency.png", "errors.png", "replicas.png"):
        assert (run_dir / "plots" / name).read_bytes().startswith(PNG_MAGIC), name
    markdown = (run_dir / "report.md").read_text()
    assert "**INVALID**" in markdown
    assert "load generator CPU reached 95%" in markdown
    assert "No answer was judged" in markdown


def test_nonzero_correctness_classes_are_listed(tmp_path):
    # A class this report does not know about is kept and counted, never dropped.
    correctness = {"checks": 80, "lost_writes": 2, "stale_reads": 0, "sessions_lost": 1, "ghost_reads": 4}
    run = load_run(make_run(tmp_path / "run", CART_AND_PING, correctness=correctness))
    summary = summarize(run)
    assert summary["correctness"]["foreign_sessions"] == 0  # not reported by the harness: present, as 0
    markdown = render_markdown(summary, run.meta)
    assert "7 anomalies:" in markdown
    assert "- ghost reads: 4" in markdown
    assert "- lost writes: 2" in markdown
    assert "- sessions lost: 1" in markdown
    assert "stale reads" not in markdown


def test_a_plain_run_has_empty_failover_keys(tmp_path):
    summary = summary_of(make_run(tmp_path / "run", CART_AND_PING))
    assert (summary["faults"], summary["failover"], summary["sentinel_timeline"], summary["split_brain"]) == (
        [],
        None,
        [],
        [],
    )
    assert summary["partition"] is None
    markdown = render_markdown(summary, {})
    assert "## Failover" not in markdown
    assert "## Partition" not in markdown
    assert "Split brain" not in markdown


def test_a_failover_run_reports_its_figures_faults_and_slos(tmp_path):
    slo = [
        {"path": ["failover", "lost_acknowledged_writes"], "max": 0},
        {"path": ["failover", "time_to_recover_s"], "max": 5},
    ]
    run_dir = make_failover_run(tmp_path / "run", slo=slo)
    assert main([str(run_dir)]) == SLO_BREACH_EXIT_CODE
    summary = json.loads((run_dir / "summary.json").read_text())
    assert list(summary)[-7:] == [
        "faults",
        "failover",
        "sentinel_timeline",
        "split_brain",
        "partition",
        "server",
        "slo",
    ]
    assert summary["faults"] == [
        {
            "fault": "kill-redis-master",
            "target": "redis-1",
            "started_at": "2026-11-23T12:00:10.000Z",
            "heal_started_at": "2026-11-23T12:00:18.000Z",
            "ended_at": "2026-11-23T12:00:20.000Z",
            "duration_s": 10,
        }
    ]
    figures = summary["failover"]
    assert figures["client_errors"] == {"502": 1, "503": 2, "504": 0, "timeout": 0, "other": 0}
    # Longest gap: 14 s to 21 s, the first success after the heal at 20 s bounding the fault period.
    assert (figures["error_window_s"], figures["longest_gap_s"], figures["time_to_recover_s"]) == (2, 7, 4)
    assert summary["sentinel_timeline"] == [
        {
            "t_rel_s": 12.0,
            "event": "+switch-master",
            "detail": "sessionproof 127.0.0.1 6380 127.0.0.1 6381",
            "sentinel": "sentinel-1",
            "sentinels": 3,
        }
    ]
    assert summary["split_brain"] == [{"t_rel_s": 13.0, "masters": ["redis-1", "redis-2"]}]
    split = summary["partition"]
    # No split_brain_end: the window lasts until the heal. No topology in meta.json: addresses stay raw.
    assert (split["two_masters_s"], split["promotion"]["t_rel_s"], split["promotion"]["from"]) == (
        7,
        12,
        "127.0.0.1:6380",
    )
    assert split["stale_reads"] == {"run": 0, "during_fault": 0, "heal_window_s": 10.0}
    assert split["lost_without_time"] == 2  # this read-back predates lost_items
    lost, recover = summary["slo"]["checks"]
    assert (lost["actual"], lost["passed"], lost["reason"]) == (2, False, "2 > max 0")
    assert (recover["actual"], recover["passed"]) == (4, True)

    markdown = (run_dir / "report.md").read_text()
    assert "## Failover" in markdown
    assert "| client errors | 3 (502: 1, 503: 2, 504: 0, timeout: 0, other: 0) |" in markdown
    assert "| **lost acknowledged writes** | **2** |" in markdown
    assert "| indeterminate writes (took effect) | 4 (1) |" in markdown
    assert "| time to recover | 4 s |" in markdown
    assert (
        "| kill-redis-master | redis-1 | 2026-11-23T12:00:10.000Z | 2026-11-23T12:00:18.000Z | 2026-11-23T12:00:20.000Z | 10 |"
        in markdown
    )
    assert "| 12.0 | `+switch-master` | sessionproof 127.0.0.1 6380 127.0.0.1 6381 | 3 |" in markdown
    assert "Split brain (two Redis nodes claiming role:master): 13.0 s: redis-1, redis-2." in markdown
    assert "Lost, for example: plum-3 (user-7)." in markdown
    assert "## Partition" in markdown
    assert "Two masters coexisted for 7 s in all: 13.0 to 20.0 s (redis-1, redis-2, no end observed)." in markdown
    assert "| failover → lost_acknowledged_writes | ≤ 0 | 2 | **FAIL** (2 > max 0) |" in markdown
    for name in ("latency.png", "errors.png"):
        assert (run_dir / "plots" / name).read_bytes().startswith(PNG_MAGIC), name
