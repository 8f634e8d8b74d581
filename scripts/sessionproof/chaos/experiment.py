"""Failover experiments: steady state, load, a scheduled fault, heal, read back, steady state again.

    python -m sessionproof.chaos.experiment failover-redis-kill      (make experiment SCENARIO=...)
    python -m sessionproof.chaos.experiment --all --layers "hardened stock stock-min-replicas-0"
                                                (make experiments LAYERS="hardened stock stock-min-replicas-0")

The scenario file (loadtests/scenarios/<name>.yaml) holds the load and a
`faults:` schedule ({fault, at_s, hold_s}). Heal always runs, also when the
run fails. After the load, every session in the run's history is read back
through nginx, and the reads join the history (load/final_read.py); the one
checker (history/checker.py) then judges it all: an acknowledged write absent
from the final read is lost, a logged-out session that reads as present came
back, and so on. Each experiment writes one results folder; --all also writes
results/<UTC-time>-matrix/report.md.

--all runs, for each configuration in turn (the stack is brought up again with
its settings: see CONFIGURATIONS), every fault experiment and then the load
scenarios without faults (latency, concurrency), so one report holds them side
by side, measured on the same machine in the same run. An experiment whose
fault this runtime cannot inject (a network fault on a loopback stack) is
skipped, and the matrix says why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from sessionproof import REPO_ROOT, runs, settings
from sessionproof.analysis import report
from sessionproof.analysis.rundata import started_unix_s
from sessionproof.analysis.summary import anomaly_text, validity_line
from sessionproof.chaos import faults as chaos
from sessionproof.chaos.faults import FAULTS, heal, inject
from sessionproof.chaos.watchers import start_watchers, stop_watchers
from sessionproof.engines import requested_engines
from sessionproof.history.files import append_history, history_path, nemesis_operations
from sessionproof.load import scenarios
from sessionproof.load.final_read import read_back
from sessionproof.load.loadtest import headless_command
from sessionproof.load.runinfo import HEARTBEAT_PREFIX, REPORT_LATER_ENV, RUN_DIR_ENV
from sessionproof.runfiles import read_jsonl
from sessionproof.runs import EventLog
from sessionproof.runtimes.factory import get_runtime, runtimes_in_turn
from sessionproof.runtimes.interface import Runtime
from sessionproof.settings import CONFIGURATIONS
from sessionproof.topology import check_configurations, planned_runs
from sessionproof.waiting import DeadlineExceeded

EXPERIMENTS = (
    "failover-app-kill",
    "failover-app-pause",
    "rolling-restart",
    "failover-redis-kill",
    "failover-redis-pause",
    "sentinel-kill",
    "redis-full-restart",
    "fill-redis",  # a full store: in-band (CONFIG SET), so any runtime
    # Network faults: they need a runtime that can cut links (NETWORK=netns); others skip them.
    "partition-redis-master",
    "partition-app",
    "isolate-sentinel",
    "partition-sentinels-minority",
    "congest-redis-master",
)
# Run after the faults, per layer: the session tax and read p50 at low load, and lost updates.
LOAD_SCENARIOS = ("latency", "concurrency")


def say(line: str) -> None:
    """A progress line, flushed: `make experiments` runs for many minutes, often piped through tee."""
    print(line, flush=True)


def run_experiment(
    name: str, runtime: Runtime, progress=say, *, duration: str | None = None, drive=None, run_name: str | None = None
) -> tuple[Path, int]:
    """One experiment; returns its run folder and exit code (report.exit_code: 0 ok, 3 SLO breached, 4 invalid).

    A scenario without a faults: schedule runs the same way, minus the faults. `duration` overrides the
    scenario's; `drive(run_dir, log, started, alive)`, when given, injects the faults instead of the schedule
    (the nemesis of a campaign) and must heal what it broke; `run_name` names the results folder."""
    scenario = scenarios.load(name)
    schedule = scenario.raw.get("faults") or []
    unknown = [f.get("fault") for f in schedule if f.get("fault") not in FAULTS]
    if unknown:
        raise scenarios.ScenarioError(f"{name}: unknown faults {unknown}; known: {', '.join(FAULTS)}")
    reason = refusal(name, runtime)
    if reason:
        raise RuntimeError(f"{name} cannot run on this stack: {reason}")

    progress(f"[{name}] steady state before: bringing every node up")
    runtime.up(progress=lambda *_: None)
    run_dir = runs.reserve_run_dir(run_name or name)
    log = EventLog(run_dir / "raw" / "events.jsonl")
    log.write("steady_state", phase="before", healthy=runtime.healthy())
    stop, watchers = start_watchers(runtime, log)
    # The runtime's env carries SESSION_LAYER, so meta.json names the layer this run measured.
    # The run writes raw data only: the report waits for the final read below.
    env = {**os.environ, **runtime.config.env, RUN_DIR_ENV: str(run_dir), REPORT_LATER_ENV: "1", "SCENARIO": name}
    command = headless_command(scenario, runtime.config.entry_url, duration=duration)
    progress(f"[{name}] load: {' '.join(command[1:])}")
    injected: list[tuple] = []
    with (run_dir / "raw" / "locust.log").open("w") as locust_log:
        locust = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        relay = threading.Thread(target=_relay, args=(locust.stdout, locust_log, name, progress), daemon=True)
        relay.start()
        started = time.monotonic()
        try:
            if drive is not None:
                drive(run_dir, log, started, lambda: locust.poll() is None)
            for step in [] if drive is not None else sorted(schedule, key=lambda s: float(s.get("at_s", 0))):
                fault = FAULTS[step["fault"]]
                _sleep_until(started + float(step.get("at_s", 0)), locust)
                targets = inject(fault, runtime, log, [step["target"]] if step.get("target") else None)
                injected.append((fault, targets))
                progress(f"[{name}] t={time.monotonic() - started:.1f}s injected {fault.name} on {', '.join(targets)}")
                _sleep_until(time.monotonic() + float(step.get("hold_s", fault.default_hold_s)), locust)
                heal(fault, runtime, log, targets)
                injected.pop()
                progress(f"[{name}] t={time.monotonic() - started:.1f}s healed {fault.name}")
        finally:
            for fault, targets in injected:  # heal always runs
                heal(fault, runtime, log, targets)
            exit_code = _wait_for_locust(locust, scenario, duration)
            relay.join(timeout=10)
            locust.stdout.close()
            stop_watchers(stop, watchers)

    if not (run_dir / "meta.json").exists():
        raise RuntimeError(
            f"locust exited {exit_code} without writing its results; see {run_dir / 'raw' / 'locust.log'}"
        )
    # The faults join the history as the nemesis's lines (what was broken when), before the final read's.
    append_history(
        history_path(run_dir),
        nemesis_operations(read_jsonl(run_dir / "raw" / "events.jsonl"), started_unix_s(run_dir)),
    )
    progress(f"[{name}] final read: every session in the history, read back into it")
    final = read_back(
        run_dir,
        runtime.config.entry_url,
        runtime.config.get("SESSION_COOKIE_NAME"),
        started_unix_s(run_dir),
        progress=lambda line: progress(f"[{name}] {line}"),
    )
    runtime.up(progress=lambda *_: None)
    log.write("steady_state", phase="after", healthy=runtime.healthy())
    summary = report.build_report(run_dir)
    runs.point_latest(run_dir)
    failover = summary.get("failover")
    if failover:
        outcome = f"client errors {failover.get('client_errors')}, error window {failover.get('error_window_s')}s"
    else:
        requests_ = summary.get("requests") or {}
        outcome = (
            f"{requests_.get('failed')} of {requests_.get('total')} requests failed, "
            f"lost updates {(summary.get('correctness') or {}).get('lost_updates')}"
        )
    progress(f"[{name}] {validity_line(summary)}")
    figures = summary.get("correctness") or {}
    progress(
        f"[{name}] {outcome}; {anomaly_text(figures)}; {figures.get('acknowledged_writes')} acknowledged writes, "
        f"{final['unread']} of {final['sessions']} sessions unread at the end; report: {run_dir / 'report.md'}"
    )
    return run_dir, report.exit_code(summary)


def _relay(lines, log_file, name: str, progress) -> None:
    """Copy Locust's output to raw/locust.log, and its heartbeat (every 5 s of load) to the terminal."""
    for line in lines:
        log_file.write(line)
        log_file.flush()
        if line.startswith(HEARTBEAT_PREFIX):
            progress(f"[{name}] load {line[len(HEARTBEAT_PREFIX) :].strip()}")


def _sleep_until(deadline: float, locust: subprocess.Popen) -> None:
    while time.monotonic() < deadline:
        if locust.poll() is not None:
            raise RuntimeError(f"locust exited early with code {locust.returncode}")
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def _wait_for_locust(locust: subprocess.Popen, scenario: scenarios.Scenario, duration: str | None = None) -> int:
    try:
        return locust.wait(timeout=(scenarios.duration_s(duration) if duration else scenario.duration_s) + 120)
    except subprocess.TimeoutExpired:
        locust.kill()
        return locust.wait()


EXPERIMENT_OVERHEAD_S = 25.0  # steady state, final read, report: measured 15-30 s per experiment here


def estimate_s(name: str) -> float:
    """How long one experiment should take: its load plus the overhead around it."""
    try:
        return scenarios.load(name).duration_s + EXPERIMENT_OVERHEAD_S
    except scenarios.ScenarioError:
        return EXPERIMENT_OVERHEAD_S


class ProgressClock:
    """Elapsed time and an ETA for a list of steps with estimated lengths, corrected by how long the done ones took."""

    def __init__(self, estimates_s: list[float], now=time.monotonic):
        self.estimates_s = estimates_s
        self.now = now
        self.started = now()

    def status(self, done: int) -> str:
        elapsed_s = self.now() - self.started
        estimated_done_s = sum(self.estimates_s[:done])
        pace = elapsed_s / estimated_done_s if done and estimated_done_s else 1.0
        remaining_s = sum(self.estimates_s[done:]) * pace
        return f"elapsed {_clock(elapsed_s)}, ETA {_clock(remaining_s)}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def _schedule(name: str) -> list[dict]:
    """The scenario's faults: schedule; [] when it cannot be read (run_experiment then fails, saying why)."""
    try:
        return scenarios.load(name).raw.get("faults") or []
    except scenarios.ScenarioError:
        return []


def refusal(name: str, runtime: Runtime) -> str | None:
    """Why this runtime cannot run experiment `name` (a fault it cannot inject), or None."""
    reasons = [reason for step in _schedule(name) if (reason := chaos.refusal(str(step.get("fault")), runtime))]
    return "; ".join(dict.fromkeys(reasons)) or None


def run_all(
    names: list[str],
    runtime: Runtime,
    progress=say,
    configurations: list[str] | None = None,
    load_scenarios: tuple[str, ...] = LOAD_SCENARIOS,
    engines: list[str] | None = None,
) -> Path:
    """Every named experiment, then the load scenarios, for each store engine and configuration; then the matrix
    report, with each fault's runs of every engine and configuration in adjacent rows."""
    from sessionproof.analysis.matrix import Skipped, build_matrix

    configurations = configurations or [runtime.config.get("SESSION_LAYER")]
    check_configurations(configurations)
    engines = engines or [runtime.config.store_engine]
    experiments = [*names, *load_scenarios]
    runs_planned, not_run = planned_runs(configurations, engines)
    for label, why in not_run.items():
        progress(f"== {label}: not run ({why})")
    total, done = len(runs_planned) * len(experiments), 0
    clock = ProgressClock([estimate_s(name) for _ in runs_planned for name in experiments])
    entries: list[Path | Skipped] = []
    for configuration, overrides, config_runtime in runtimes_in_turn(runtime, runs_planned, progress, get_runtime):
        settings_text = " ".join(f"{k}={v}" for k, v in overrides.items())
        progress(f"== configuration {configuration}: bringing the stack up with {settings_text}")
        config_runtime.up(progress=lambda *_: None)
        for name in experiments:
            progress(f"[{done + 1}/{total}] {configuration}: {name} ({clock.status(done)})")
            done += 1
            reason = refusal(name, config_runtime)
            if reason:
                progress(f"[{configuration}] [{name}] skipped: {reason}")
                schedule = _schedule(name)  # the row is filed with that fault's runs of other configurations
                entries.append(Skipped(name, configuration, reason, schedule[0].get("fault") if schedule else name))
                continue
            try:
                run_dir, _ = run_experiment(
                    name, config_runtime, lambda line, c=configuration: progress(f"[{c}] {line}")
                )
                entries.append(run_dir)
            except Exception as error:  # one failed experiment must not stop the matrix
                progress(f"[{configuration}] [{name}] FAILED: {error}")
                config_runtime.up(progress=lambda *_: None)
    progress(f"[{total}/{total}] done ({clock.status(total)})")
    out_dir = runs.reserve_run_dir("matrix")
    title = "Failover matrix" + (
        f": {' against '.join(configurations)}" if len(configurations) > 1 else f" ({configurations[0]})"
    )
    if engines != ["redis"]:
        title += f", on {' and '.join(engines)}"
    build_matrix(out_dir, entries, title)
    runs.point_latest(out_dir)
    invalid = invalid_rows(out_dir)
    if invalid:
        progress(
            f"matrix: INVALID runs, do not trust their figures (exit code {report.INVALID_RUN_EXIT_CODE}): {', '.join(invalid)}"
        )
    else:
        progress(f"matrix: every run valid (the load generator stayed within its bounds in {len(entries)} entries)")
    progress(f"matrix: {out_dir / 'report.md'}")
    return out_dir


def invalid_rows(matrix_dir: Path) -> list[str]:
    """The matrix's runs whose generator crossed its bounds, as 'configuration/scenario' (skipped rows are not runs)."""
    rows = json.loads((matrix_dir / "matrix.json").read_text()).get("rows") or []
    return [f"{row.get('configuration')}/{row.get('scenario')}" for row in rows if row.get("valid") is False]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sessionproof.chaos.experiment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenario", nargs="?", help=f"one of: {', '.join(EXPERIMENTS)}")
    parser.add_argument("--all", action="store_true", help="run every experiment and write the matrix report")
    parser.add_argument(
        "--layers",
        default=None,
        help=f"configurations to run --all for, space-separated, of: {', '.join(CONFIGURATIONS)} "
        '(default: the LAYERS setting, e.g. "hardened stock")',
    )
    parser.add_argument(
        "--engines",
        default=None,
        help="store engines to run --all for, space-separated, of: redis valkey (default: the ENGINES setting; "
        "empty: the stack's STORE_ENGINE)",
    )
    parser.add_argument(
        "--only",
        default=None,
        help="with --all: run only these scenarios (space-separated), e.g. the network faults; no load scenarios "
        "unless named",
    )
    args = parser.parse_args(argv)
    if not args.all and not args.scenario:
        parser.error("name a scenario or pass --all")
    try:
        if args.all:
            configurations = (args.layers or settings.get_str("LAYERS")).split()
            check_configurations(configurations)  # before the runtime: a typo is reported at once
            engines = requested_engines(args.engines)
            if args.only:
                names = args.only.split()
                known = (*EXPERIMENTS, *LOAD_SCENARIOS)
                unknown = [n for n in names if n not in known]
                if unknown:
                    raise settings.ConfigError(f"--only: unknown {unknown}; known: {', '.join(known)}")
                out_dir = run_all(
                    [n for n in names if n in EXPERIMENTS],
                    get_runtime(),
                    configurations=configurations,
                    load_scenarios=tuple(n for n in names if n in LOAD_SCENARIOS),
                    engines=engines,
                )
            else:
                out_dir = run_all(list(EXPERIMENTS), get_runtime(), configurations=configurations, engines=engines)
            # A matrix's SLO breaches are findings (stock breaches by design); an invalid run is not.
            return report.INVALID_RUN_EXIT_CODE if invalid_rows(out_dir) else 0
        _, code = run_experiment(args.scenario, get_runtime())
        return code
    except (scenarios.ScenarioError, settings.ConfigError, DeadlineExceeded, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
