"""Locust wiring: every test, however started, is one complete results folder.

Imported by loadtests/locustfile.py. It adds `--scenario`, and makes each test (from
its start to its stop, headless or in the web UI) one run folder,
`results/<UTC-time>-<scenario>/`, reserved when the test starts and written when it stops:
raw data (histograms merged across workers, outcomes, timeline, history, .hlog exports),
Locust's CSVs and HTML report, meta.json; then the analysis, run as its own program
(load/finish.py), writes summary.json, report.md and plots, checks the scenario's SLOs and
gives the exit code Locust ends with (3 on a breach, 4 for an invalid run). Nothing is made
at start-up or by viewing the web UI. It samples the generator's CPU and prints a heartbeat
every HEARTBEAT_INTERVAL_S during load.

In the web UI the scenario picked in the form decides users, spawn rate and duration
(`ScenarioShape`); headless runs take -u, -r and -t as given (`make loadtest` passes the
scenario's).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import gevent
from locust import LoadTestShape, events
from locust import stats as locust_stats
from locust.html import get_html_report
from locust.runners import STATE_SPAWNING, MasterRunner, WorkerRunner

from sessionproof import runs, settings
from sessionproof.histograms import percentiles_us
from sessionproof.load import final_read, runinfo, scenarios, self_watch, server_metrics
from sessionproof.load.finish import finish_run
from sessionproof.load.priority import take_priority
from sessionproof.load.recorder import Recorder
from sessionproof.runfiles import LOCUST_HTML

log = logging.getLogger("sessionproof")
recorder = Recorder()
HEARTBEAT_INTERVAL_S = 5.0
MAX_EVENTS_PER_PROCESS = 2000
WORKER_REPORT_WAIT_S = 10.0  # how long a stopped test waits for every worker's last report


@dataclass
class OpenRun:
    """The test in progress (or stopped and not yet written), on the master or a single process."""

    dir: Path
    scenario: scenarios.Scenario
    started: dt.datetime
    stopped: dt.datetime | None = None
    csv_writer: locust_stats.StatsCSVFileWriter | None = None
    csv_greenlet: gevent.Greenlet | None = None
    finalizer: gevent.Greenlet | None = None
    reported_after_stop: set[str] = field(default_factory=set)
    reporting_workers: set[str] = field(default_factory=set)
    # The code the test ran, taken when it started: a commit made during a 2-hour run must not be named instead.
    git_sha: str = field(default_factory=runs.git_sha)


_state: dict = {
    "run": None,
    "finalizers": [],
    "all_user_classes": None,
    "handed_over": os.environ.get(runinfo.RUN_DIR_ENV),
    "writing": None,  # the run being written, after it left "run"
    "report": None,  # the report's process, while it runs
    "ctrl_c_pressed": False,
}
CTRL_C_EXIT_CODE = 130


def _scenario_from_argv(argv: list[str]) -> str:
    """The scenario named on the command line, before Locust has parsed its options."""
    for i, arg in enumerate(argv):
        if arg == "--scenario" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--scenario="):
            return arg.split("=", 1)[1]
    return os.environ.get("SCENARIO") or "mixed"


@events.init_command_line_parser.add_listener
def _add_arguments(parser) -> None:
    names = scenarios.available()
    parser.add_argument(
        "--scenario",
        default=_scenario_from_argv([]),  # $SCENARIO, else mixed
        choices=names or None,  # a drop-down in the web UI
        help=f"scenario in loadtests/scenarios/ ({', '.join(names)}); default: $SCENARIO or mixed",
    )
    try:  # -u and -r default to the scenario's, for a plain `locust --headless`
        scenario = scenarios.load(_scenario_from_argv(sys.argv))
        parser.set_defaults(num_users=scenario.users, spawn_rate=scenario.spawn_rate)
    except scenarios.ScenarioError:
        pass  # reported at init, where it stops the run


def apply_scenario(environment, scenario: scenarios.Scenario, keep_every_class: bool = False) -> None:
    """Give each user kind the scenario's weight and pacing; keep only the kinds it mixes (a worker keeps
    every kind: the master says how many of each to run)."""
    if _state["all_user_classes"] is None:
        _state["all_user_classes"] = list(environment.user_classes)
    selected = []
    for cls in _state["all_user_classes"]:
        weight = scenario.mix.get(getattr(cls, "kind", None), 0)
        cls.weight = max(weight, 0)
        cls.rate_per_user_per_s = scenario.rate_per_user_per_s
        cls.latency_mix = scenario.latency_mix
        cls.concurrent_requests = scenario.concurrent_requests
        cls.catch_up_factor = scenario.catch_up_factor
        if weight > 0 or keep_every_class:
            selected.append(cls)
    environment.user_classes = selected


def _scenario_of(environment) -> scenarios.Scenario:
    options = environment.parsed_options
    return scenarios.load(options.scenario if options else _scenario_from_argv(sys.argv))


class ScenarioShape(LoadTestShape):
    """The web UI's load: the users, spawn rate and duration of the scenario picked in the form."""

    use_common_options = False

    def __init__(self) -> None:
        super().__init__()
        self.scenario: scenarios.Scenario | None = None

    def reset_time(self) -> None:
        super().reset_time()
        self.scenario = None  # a new test: read the form's scenario at the first tick

    def tick(self):
        if self.scenario is None:
            self.scenario = _scenario_of(self.runner.environment)
            apply_scenario(self.runner.environment, self.scenario)  # before the first spawn picks the classes
        if self.get_run_time() >= self.scenario.duration_s:
            return None
        return self.scenario.users, self.scenario.spawn_rate


@events.init.add_listener
def _on_init(environment, runner, **_kwargs) -> None:
    try:
        scenario = _scenario_of(environment)
    except scenarios.ScenarioError as error:
        log.error("%s", error)
        sys.exit(2)
    worker = isinstance(runner, WorkerRunner)
    apply_scenario(environment, scenario, keep_every_class=worker)
    _state["nice"] = take_priority(settings.get_int("LOADGEN_NICE", minimum=-20))
    self_watch.start(recorder)
    if worker:
        events.report_to_master.add_listener(_ship_to_master)
        return
    if isinstance(runner, MasterRunner):
        events.worker_report.add_listener(_merge_from_worker)
    options = environment.parsed_options
    if options is not None and not options.headless and not options.autostart:
        environment.shape_class = ScenarioShape()
        environment.shape_class.runner = runner
        log.info("sessionproof: web UI; each test writes its own folder in %s when it stops", runs.results_dir())
    _route_ctrl_c_to(gevent.getcurrent())
    gevent.spawn(_heartbeat, environment)


def _route_ctrl_c_to(main) -> None:
    """Ctrl-C stops Locust through its main greenlet only, never by killing a folder half-written.

    Python raises KeyboardInterrupt in whatever code runs when SIGINT arrives. Under gevent that is
    often the greenlet writing a stopped test's folder (plots, report): it died half-way and Locust
    still quit with 0. Here the gevent loop takes SIGINT and throws KeyboardInterrupt into the main
    greenlet (MAIN, where Locust catches it), whose quitting waits for the folder. A second Ctrl-C
    quits at once, without it.
    """
    hub = gevent.get_hub()

    def on_ctrl_c() -> None:
        run: OpenRun | None = _state["run"] or _state["writing"]
        if _state["ctrl_c_pressed"]:
            _say(f"sessionproof: Ctrl-C again: quitting; {run.dir if run else 'the run folder'} left unfinished")
            if _state["report"] is not None and _state["report"].poll() is None:
                _state["report"].kill()  # in its own process group: no Ctrl-C reaches it
            hub.loop.run_callback(main.throw, SystemExit(CTRL_C_EXIT_CODE))
            return
        _state["ctrl_c_pressed"] = True
        if run is not None:
            _say(f"sessionproof: Ctrl-C: writing {run.dir} before quitting (Ctrl-C again to quit without it)")
        hub.loop.run_callback(main.throw, KeyboardInterrupt)

    gevent.signal_handler(signal.SIGINT, on_ctrl_c)


def _ship_to_master(client_id, data) -> None:
    data["sessionproof"] = recorder.drain()


def _merge_from_worker(client_id, data) -> None:
    run: OpenRun | None = _state["run"]
    if "sessionproof" in data:
        recorder.merge(data["sessionproof"])
        if run is not None:
            run.reporting_workers.add(client_id)
            if run.stopped is not None:
                run.reported_after_stop.add(client_id)


# ----------------------------------------------------------------- a test's life
@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        recorder.reset()  # what a previous test left unsent belongs to no run
        apply_scenario(environment, _scenario_of(environment), keep_every_class=True)
        return
    previous: OpenRun | None = _state["run"]
    if previous is not None:  # a test started before the last one was written: write that one first
        if previous.finalizer is not None:
            previous.finalizer.join()
        else:
            previous.stopped = dt.datetime.now(dt.UTC)
            _finalize(environment)
    scenario = _scenario_of(environment)
    handed_over = _state.pop("handed_over", None)
    run_dir = Path(handed_over) if handed_over else runs.reserve_run_dir(scenario.name)
    (run_dir / "raw").mkdir(parents=True, exist_ok=True)
    recorder.reset()
    run = OpenRun(dir=run_dir, scenario=scenario, started=dt.datetime.now(dt.UTC))
    # Locust's own CSVs, with the per-second history, written by its writer while the test runs.
    run.csv_writer = locust_stats.StatsCSVFileWriter(
        environment, locust_stats.PERCENTILES_TO_REPORT, str(run_dir / "raw" / "locust"), full_history=True
    )
    run.csv_greenlet = gevent.spawn(run.csv_writer.stats_writer)
    _state["run"] = run
    runs.mark_current(run_dir)
    _say(f"sessionproof: test started, scenario {scenario.name}, results in {run_dir}")


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    run: OpenRun | None = _state["run"]
    if isinstance(environment.runner, WorkerRunner) or run is None or run.stopped is not None:
        return
    run.stopped = dt.datetime.now(dt.UTC)
    # Written in its own greenlet: the web UI's stop request returns at once, and workers' last reports can arrive.
    run.finalizer = gevent.spawn(_finalize, environment)
    _state["finalizers"].append(run.finalizer)


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    run: OpenRun | None = _state["run"]
    if run is not None and run.stopped is None and environment.runner is not None:
        # Quit while the test ran (Ctrl-C, SIGTERM, the web UI's quit). Locust fires `quitting` before it stops
        # the users: left running, they went on writing after the history was written, and the final read
        # found their items with no add in the history (74 phantom writes in a campaign stopped with Ctrl-C).
        # So stop them first, as the end of a test does (test_stop then writes the run).
        environment.runner.stop()
    for finalizer in _state["finalizers"]:  # a stopped test still being written
        finalizer.join()
    run = _state["run"]
    if run is not None:  # still open (a runner that fired no test_stop): write what there is
        run.stopped = run.stopped or dt.datetime.now(dt.UTC)
        _finalize(environment)


def _wait_for_workers(environment, run: OpenRun) -> None:
    """Until every worker that reported in this test has reported after it stopped (or has gone)."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    deadline = gevent.Timeout(WORKER_REPORT_WAIT_S)
    deadline.start()
    try:
        while True:
            connected = {client.id for client in runner.clients.all}
            pending = (run.reporting_workers & connected) - run.reported_after_stop
            if not pending or len(runner.greenlet) == 0:  # done, or the master no longer listens
                return
            gevent.sleep(0.2)
    except gevent.Timeout:
        log.warning("sessionproof: no last report from workers %s; their final seconds are missing", pending)
    finally:
        deadline.cancel()


def _finalize(environment) -> None:
    run: OpenRun | None = _state["run"]
    if run is None:
        return
    _wait_for_workers(environment, run)
    if _state["run"] is not run:  # written meanwhile by another caller
        return
    _state["run"] = None
    _state["writing"] = run
    try:
        _finish_run(environment, run)
    finally:
        _state["writing"] = None
        _state["report"] = None


def _finish_run(environment, run: OpenRun) -> None:
    """The raw data, then the report (finish_run runs the report after the steps); its exit code is Locust's."""
    steps = [
        lambda: _write_raw(environment, run),
        lambda: final_read.after_load(run.dir, environment.host, run.started.timestamp(), _say),
    ]
    code = finish_run(run.dir, steps, _say, lambda process: _state.update(report=process))
    if code is not None:
        environment.process_exit_code = code


def _write_raw(environment, run: OpenRun) -> None:
    """raw/, Locust's files and meta.json."""
    run.stopped = run.stopped or dt.datetime.now(dt.UTC)
    raw = run.dir / "raw"
    recorder.write_raw(raw, run_start_s=run.started.timestamp())
    recorder.write_hlogs(raw / "hlog", run_start_s=run.started.timestamp())
    recorder.reset()
    server_metrics.record(raw, run.started.timestamp(), run.stopped.timestamp(), progress=_say)
    _write_locust_files(environment, run)
    web_ui = isinstance(environment.shape_class, ScenarioShape)
    meta = {**runinfo.meta(environment, run, web_ui), "generator_priority": _state.get("nice")}
    (run.dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    runs.unmark_current(run.dir)


def _write_locust_files(environment, run: OpenRun) -> None:
    """raw/locust_*.csv (the history as Locust's writer kept it, the rest with the final figures) and locust.html."""
    if run.csv_greenlet is not None:
        run.csv_greenlet.kill(block=True)
    if run.csv_writer is not None:
        run.csv_writer.close_files()
    final = locust_stats.StatsCSV(environment, locust_stats.PERCENTILES_TO_REPORT)
    for suffix, write in (("stats", final.requests_csv), ("failures", final.failures_csv)):
        with (run.dir / "raw" / f"locust_{suffix}.csv").open("w", newline="") as out:
            write(csv.writer(out))
    with (run.dir / "raw" / "locust_exceptions.csv").open("w", newline="") as out:
        final.exceptions_csv(csv.writer(out))
    (run.dir / LOCUST_HTML).write_text(get_html_report(environment, show_download_link=False), encoding="utf-8")


# ------------------------------------------------------------------ progress
def _say(line: str) -> None:
    print(line, flush=True)


def _heartbeat(environment) -> None:
    """A flushed progress line every HEARTBEAT_INTERVAL_S while a test runs: long runs are never silent."""
    while True:
        gevent.sleep(HEARTBEAT_INTERVAL_S)
        run: OpenRun | None = _state["run"]
        runner = environment.runner
        if run is None or run.stopped is not None or runner is None or runner.state not in ("running", STATE_SPAWNING):
            continue
        elapsed_s = (dt.datetime.now(dt.UTC) - run.started).total_seconds()
        options = environment.parsed_options
        duration_s = getattr(options, "run_time", None) or run.scenario.duration_s
        generator = {
            "loop_lag_window_us": recorder.take_loop_lag_window(),
            "loop_lag_us": percentiles_us(recorder.loop_lag),
            "cpu_max_percent": recorder.cpu_max_percent,
        }
        _say(runinfo.heartbeat_line(elapsed_s, duration_s, runner.stats.total, runner.user_count, generator))


def note_event(type_: str, **fields) -> None:
    if len(recorder.events) < MAX_EVENTS_PER_PROCESS:
        recorder.event(type_, **fields)
