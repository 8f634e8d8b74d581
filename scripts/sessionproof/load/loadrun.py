"""Locust wiring: every run, however started, writes its own results folder.

Imported by loadtests/locustfile.py. It adds `--scenario`, points Locust's CSV
output (with full history) into `results/<UTC-time>-<scenario>/raw/`, merges
the workers' HdrHistograms on the master, samples the generator's CPU, and at
the end writes raw data, meta.json, summary.json, report.md and plots, checks
the scenario's SLOs and sets the exit code (3 on a breach).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path

import gevent
import psutil
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from sessionproof import runs, settings
from sessionproof.analysis import report
from sessionproof.load import scenarios
from sessionproof.load.recorder import Recorder
from sessionproof.topology import StackConfig

log = logging.getLogger("sessionproof")
recorder = Recorder()
CPU_SAMPLE_INTERVAL_S = 1.0
MAX_EVENTS_PER_PROCESS = 2000
RUN_DIR_ENV = "SESSIONPROOF_RUN_DIR"

_run: dict = {"dir": None, "scenario": None, "started_at": None, "test_started": None, "test_stopped": None}


def _scenario_from_argv(argv: list[str]) -> str:
    """The scenario name before Locust has parsed its options (the run folder is named after it)."""
    for i, arg in enumerate(argv):
        if arg == "--scenario" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--scenario="):
            return arg.split("=", 1)[1]
    return os.environ.get("SCENARIO") or "mixed"


def _is_worker_invocation(argv: list[str]) -> bool:
    return "--worker" in argv


@events.init_command_line_parser.add_listener
def _add_arguments(parser) -> None:
    parser.add_argument(
        "--scenario",
        default=os.environ.get("SCENARIO") or "mixed",
        help=f"scenario in loadtests/scenarios/ ({', '.join(scenarios.available())}); default: $SCENARIO or mixed",
    )
    if _is_worker_invocation(sys.argv):
        return
    name = _scenario_from_argv(sys.argv)
    # An experiment reserves the folder itself and hands it over.
    given = os.environ.get(RUN_DIR_ENV)
    run_dir = Path(given) if given else runs.reserve_run_dir(name)
    _run.update(dir=run_dir, scenario=name, started_at=dt.datetime.now(dt.UTC))
    # Locust's own CSVs, with the windowed history, land in the run's raw/ folder.
    parser.set_defaults(csv_prefix=str(run_dir / "raw" / "locust"), stats_history_enabled=True)


def configure_user_classes(environment, scenario: scenarios.Scenario) -> None:
    """Keep the user kinds the scenario mixes, with its weights and pacing."""
    selected = []
    for cls in environment.user_classes:
        kind = getattr(cls, "kind", None)
        weight = scenario.mix.get(kind, 0)
        if weight > 0:
            cls.weight = weight
            cls.rate_per_user_per_s = scenario.rate_per_user_per_s
            cls.latency_mix = scenario.latency_mix
            cls.concurrent_requests = scenario.concurrent_requests
            selected.append(cls)
    environment.user_classes = selected


@events.init.add_listener
def _on_init(environment, runner, **_kwargs) -> None:
    name = environment.parsed_options.scenario if environment.parsed_options else _scenario_from_argv(sys.argv)
    try:
        scenario = scenarios.load(name)
    except scenarios.ScenarioError as error:
        log.error("%s", error)
        sys.exit(2)
    _run["scenario_obj"] = scenario
    configure_user_classes(environment, scenario)
    gevent.spawn(_sample_cpu)
    if isinstance(runner, WorkerRunner):
        events.report_to_master.add_listener(_ship_to_master)
        return
    if isinstance(runner, MasterRunner):
        events.worker_report.add_listener(_merge_from_worker)
    if _run["dir"] is None:  # e.g. a library user who built the Environment by hand
        _run.update(dir=runs.reserve_run_dir(name), scenario=name, started_at=dt.datetime.now(dt.UTC))
    (_run["dir"] / "raw").mkdir(parents=True, exist_ok=True)
    runs.mark_current(_run["dir"])
    log.info("sessionproof: scenario %s, results in %s", name, _run["dir"])


def _sample_cpu() -> None:
    process = psutil.Process()
    process.cpu_percent(None)
    while True:
        gevent.sleep(CPU_SAMPLE_INTERVAL_S)
        recorder.cpu(process.cpu_percent(None))


def _ship_to_master(client_id, data) -> None:
    data["sessionproof"] = recorder.drain()


def _merge_from_worker(client_id, data) -> None:
    if "sessionproof" in data:
        recorder.merge(data["sessionproof"])


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    if _run["test_started"] is None:
        _run["test_started"] = dt.datetime.now(dt.UTC)


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    _run["test_stopped"] = dt.datetime.now(dt.UTC)


def note_event(type_: str, **fields) -> None:
    if len(recorder.events) < MAX_EVENTS_PER_PROCESS:
        recorder.event(type_, **fields)


def _meta(environment) -> dict:
    scenario = _run["scenario_obj"]
    started = _run["test_started"] or _run["started_at"]
    stopped = _run["test_stopped"] or dt.datetime.now(dt.UTC)
    options = environment.parsed_options
    stack = settings.get_str("STACK")
    try:
        config = StackConfig.from_env()
        # Each node's host and port: the report maps a response's X-Store-Node ("host:port") to a node name.
        topology = {
            "runtime": stack,
            "network": config.network if stack == "local" else None,
            "apps": config.apps,
            "nodes": [{"name": n.name, "kind": n.kind, "host": n.host, "port": n.port} for n in config.nodes],
        }
    except ValueError as error:
        topology = {"error": str(error)}
    return {
        "scenario": scenario.name,
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ended_at": stopped.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round((stopped - started).total_seconds(), 3),
        "stack": stack,
        "host_url": environment.host,
        "command": runs.command_line(),
        "locust": {
            "users": getattr(options, "num_users", None),
            "spawn_rate": getattr(options, "spawn_rate", None),
            "run_time": getattr(options, "run_time", None),
            "processes": getattr(options, "processes", None),
            "mode": type(environment.runner).__name__,
        },
        "scenario_config": scenario.raw,
        "git_sha": runs.git_sha(),
        "versions": runs.versions(),
        "config": runs.resolved_config(),
        "topology": topology,
        "host": runs.host_facts(),
    }


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner) or _run["dir"] is None:
        return
    run_dir: Path = _run["dir"]
    runs.unmark_current(run_dir)
    started = _run["test_started"] or _run["started_at"]
    recorder.write_raw(run_dir / "raw", run_start_s=started.timestamp() if started else None)
    (run_dir / "meta.json").write_text(json.dumps(_meta(environment), indent=2) + "\n")
    summary = report.build_report(run_dir)
    runs.point_latest(run_dir)
    _print_summary(run_dir, summary)
    environment.process_exit_code = 0 if summary["slo"]["passed"] else report.SLO_BREACH_EXIT_CODE


def _print_summary(run_dir: Path, summary: dict) -> None:
    lines = [f"\nsessionproof: {summary['scenario']} results in {run_dir}"]
    for endpoint, p in summary["latency_us"].items():
        intended = summary["latency_intended_us"].get(endpoint, {})
        lines.append(
            f"  {endpoint:<32} n={p['count']:<7} p50={p['p50']}us p99={p['p99']}us "
            f"(from intended start: p99={intended.get('p99')}us)"
        )
    correctness = summary["correctness"]
    lines.append("  correctness: " + ", ".join(f"{k}={v}" for k, v in correctness.items()))
    lines.append("  served by: " + ", ".join(f"{k}={v}" for k, v in summary["served_by"].items()))
    if not summary["valid"]:
        lines.append("  INVALID run: " + "; ".join(summary["invalid_reasons"]))
    verdict = "passed" if summary["slo"]["passed"] else "BREACHED (exit code 3)"
    lines.append(f"  SLOs {verdict}; report: {run_dir / 'report.md'}")
    print("\n".join(lines), flush=True)
