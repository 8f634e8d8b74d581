"""Failover experiments: steady state, load, a scheduled fault, heal, read back, steady state again.

    python -m sessionproof.chaos.experiment failover-redis-kill      (make experiment SCENARIO=...)
    python -m sessionproof.chaos.experiment --all --layers "hardened stock stock-min-replicas-0"
                                                (make experiments LAYERS="hardened stock stock-min-replicas-0")

The scenario file (loadtests/scenarios/<name>.yaml) holds the load and a
`faults:` schedule ({fault, at_s, hold_s}). Heal always runs, also when the
run fails. After the load, every session the users wrote is read back through
nginx: an acknowledged write that is absent is a lost acknowledged write; a
write that failed or timed out is indeterminate, and the read tells whether it
took effect. Each experiment writes one results folder; --all also writes
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
import time
from collections.abc import Callable
from pathlib import Path

import requests

from sessionproof import REPO_ROOT, runs, settings
from sessionproof.analysis import report
from sessionproof.analysis.runfiles import read_jsonl
from sessionproof.chaos import faults as chaos
from sessionproof.chaos.faults import FAULTS, heal, inject
from sessionproof.chaos.watchers import start_watchers, stop_watchers
from sessionproof.load import scenarios
from sessionproof.runs import EventLog
from sessionproof.runtimes.interface import Runtime, get_runtime
from sessionproof.settings import CONFIGURATIONS
from sessionproof.waiting import DeadlineExceeded, wait_until

EXPERIMENTS = (
    "failover-app-kill",
    "failover-app-pause",
    "rolling-restart",
    "failover-redis-kill",
    "failover-redis-pause",
    "sentinel-kill",
    "redis-full-restart",
    # Network faults: they need a runtime that can cut links (NETWORK=netns); others skip them.
    "partition-redis-master",
    "partition-app",
    "isolate-sentinel",
    "partition-sentinels-minority",
    "congest-redis-master",
)
# Run after the faults, per layer: the session tax and read p50 at low load, and lost updates.
LOAD_SCENARIOS = ("latency", "concurrency")
FINAL_READ_TIMEOUT_S = 30.0
MAX_LOST_EXAMPLES = 20


def judge_final_read(ledger: list[dict], read_session: Callable[[str], dict | None]) -> dict:
    """Compare every session's acknowledged and indeterminate writes with what a final read finds.

    `read_session(sid)` returns the session's JSON state, or None when it could not be read at all.
    A session that comes back anonymous (user None) lost every acknowledged write in it.
    lost_items lists every lost write with when (t, Unix time) and where (store, "host:port") it was
    acknowledged, from the ledger's acked_meta; both None for a ledger written before it existed.
    """
    result = {
        "sessions": 0,
        "acknowledged_writes": 0,
        "lost_acknowledged_writes": 0,
        "lost_examples": [],
        "lost_items": [],
        "indeterminate_writes": 0,
        "indeterminate_took_effect": 0,
        "unreadable_sessions": 0,
    }
    for entry in ledger:
        result["sessions"] += 1
        acked, uncertain = entry.get("acked", []), entry.get("uncertain", [])
        result["acknowledged_writes"] += len(acked)
        result["indeterminate_writes"] += len(uncertain)
        state = read_session(entry["sid"])
        if state is None:
            result["unreadable_sessions"] += 1
            continue
        cart = set(state.get("cart", [])) if state.get("user") == entry.get("user") else set()
        lost = [item for item in acked if item not in cart]
        result["lost_acknowledged_writes"] += len(lost)
        room = MAX_LOST_EXAMPLES - len(result["lost_examples"])
        result["lost_examples"] += [{"user": entry.get("user"), "item": item} for item in lost[:room]]
        acked_at = {meta[0]: meta[1:3] for meta in entry.get("acked_meta", [])}
        for item in lost:
            t, store = acked_at.get(item, (None, None))
            result["lost_items"].append({"user": entry.get("user"), "item": item, "t": t, "store": store})
        result["indeterminate_took_effect"] += sum(item in cart for item in uncertain)
    return result


def session_reader(base_url: str, cookie_name: str) -> Callable[[str], dict | None]:
    def read(sid: str) -> dict | None:
        def attempt():
            response = requests.get(f"{base_url}/cart", cookies={cookie_name: sid}, timeout=5)
            return response.json() if response.status_code == 200 else None

        try:
            return wait_until(attempt, FINAL_READ_TIMEOUT_S, f"a final read of session {sid[:8]}…", interval_s=0.5)
        except DeadlineExceeded:
            return None

    return read


def _load_ledger(raw_dir: Path) -> list[dict]:
    return read_jsonl(raw_dir / "ledger.jsonl", ())


def _locust_command(scenario: scenarios.Scenario, host: str) -> list[str]:
    locust = str(Path(sys.executable).parent / "locust")
    return [
        locust, "--headless", "--scenario", scenario.name, "--host", host,
        "-u", str(scenario.users), "-r", str(scenario.spawn_rate), "-t", scenario.duration,
        "--stop-timeout", "15", "--only-summary",
    ]  # fmt: skip


def say(line: str) -> None:
    """A progress line, flushed: `make experiments` runs for many minutes, often piped through tee."""
    print(line, flush=True)


def run_experiment(name: str, runtime: Runtime, progress=say) -> tuple[Path, int]:
    """One experiment; returns its run folder and exit code (0 ok, 3 SLO breached).

    A scenario without a faults: schedule runs the same way, minus the faults."""
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
    run_dir = runs.reserve_run_dir(name)
    log = EventLog(run_dir / "raw" / "events.jsonl")
    log.write("steady_state", phase="before", healthy=runtime.healthy())
    stop, watchers = start_watchers(runtime, log)
    # The runtime's env carries SESSION_LAYER, so meta.json names the layer this run measured.
    env = {**os.environ, **runtime.config.env, "SESSIONPROOF_RUN_DIR": str(run_dir), "SCENARIO": name}
    command = _locust_command(scenario, runtime.config.entry_url)
    progress(f"[{name}] load: {' '.join(command[1:])}")
    injected: list[tuple] = []
    with (run_dir / "raw" / "locust.log").open("w") as locust_log:
        locust = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=locust_log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        try:
            for step in sorted(schedule, key=lambda s: float(s.get("at_s", 0))):
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
            exit_code = _wait_for_locust(locust, scenario)
            stop_watchers(stop, watchers)

    progress(f"[{name}] reading back every session written")
    final = judge_final_read(
        _load_ledger(run_dir / "raw"),
        session_reader(runtime.config.entry_url, runtime.config.get("SESSION_COOKIE_NAME")),
    )
    (run_dir / "raw" / "final_read.json").write_text(json.dumps(final, indent=2) + "\n")
    runtime.up(progress=lambda *_: None)
    log.write("steady_state", phase="after", healthy=runtime.healthy())
    if not (run_dir / "meta.json").exists():
        raise RuntimeError(
            f"locust exited {exit_code} without writing its results; see {run_dir / 'raw' / 'locust.log'}"
        )
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
    progress(
        f"[{name}] {outcome}, lost acknowledged writes {final['lost_acknowledged_writes']} of "
        f"{final['acknowledged_writes']}; report: {run_dir / 'report.md'}"
    )
    return run_dir, 0 if summary["slo"]["passed"] else report.SLO_BREACH_EXIT_CODE


def _sleep_until(deadline: float, locust: subprocess.Popen) -> None:
    while time.monotonic() < deadline:
        if locust.poll() is not None:
            raise RuntimeError(f"locust exited early with code {locust.returncode}")
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def _wait_for_locust(locust: subprocess.Popen, scenario: scenarios.Scenario) -> int:
    try:
        return locust.wait(timeout=_duration_s(scenario.duration) + 120)
    except subprocess.TimeoutExpired:
        locust.kill()
        return locust.wait()


def _duration_s(text: str) -> float:
    # Not locust.util.timespan: importing locust monkey-patches this process (threads, sockets) with gevent.
    units = {"s": 1, "m": 60, "h": 3600}
    total, number = 0.0, ""
    for char in text.strip():
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total += float(number) * units[char]
            number = ""
    return total + (float(number) if number else 0.0)


def check_configurations(names: list[str]) -> None:
    if not names:
        raise settings.ConfigError(f"LAYERS is empty; name one or more of: {', '.join(CONFIGURATIONS)}")
    for name in names:
        if name not in CONFIGURATIONS:
            raise settings.ConfigError(f"LAYERS: {name!r} is not one of: {', '.join(CONFIGURATIONS)}")


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
) -> Path:
    """Every named experiment, then the load scenarios, for each configuration; then the matrix report."""
    from sessionproof.analysis.matrix import Skipped, build_matrix

    configurations = configurations or [runtime.config.get("SESSION_LAYER")]
    check_configurations(configurations)
    experiments = [*names, *load_scenarios]
    total, done = len(configurations) * len(experiments), 0
    entries: list[Path | Skipped] = []
    for configuration in configurations:
        overrides = CONFIGURATIONS[configuration]
        config_runtime = get_runtime({**runtime.config.env, **overrides})
        settings_text = " ".join(f"{k}={v}" for k, v in overrides.items())
        progress(f"== configuration {configuration}: bringing the stack up with {settings_text}")
        config_runtime.up(progress=lambda *_: None)
        for name in experiments:
            done += 1
            progress(f"[{done}/{total}] {configuration}: {name}")
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
    out_dir = runs.reserve_run_dir("matrix")
    title = "Failover matrix" + (
        f": {' against '.join(configurations)}" if len(configurations) > 1 else f" ({configurations[0]})"
    )
    build_matrix(out_dir, entries, title)
    runs.point_latest(out_dir)
    progress(f"matrix: {out_dir / 'report.md'}")
    return out_dir


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
            if args.only:
                names = args.only.split()
                known = (*EXPERIMENTS, *LOAD_SCENARIOS)
                unknown = [n for n in names if n not in known]
                if unknown:
                    raise settings.ConfigError(f"--only: unknown {unknown}; known: {', '.join(known)}")
                run_all(
                    [n for n in names if n in EXPERIMENTS],
                    get_runtime(),
                    configurations=configurations,
                    load_scenarios=tuple(n for n in names if n in LOAD_SCENARIOS),
                )
                return 0
            run_all(list(EXPERIMENTS), get_runtime(), configurations=configurations)
            return 0
        _, code = run_experiment(args.scenario, get_runtime())
        return code
    except (scenarios.ScenarioError, settings.ConfigError, DeadlineExceeded, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
