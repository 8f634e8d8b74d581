"""`make loadtest SCENARIO=bounce DURATION=60s`: headless Locust with the scenario's defaults.

Flags given here override the scenario file; the exit code is Locust's (0 ok,
3 SLO breached, other non-zero: the harness failed).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import threading
from pathlib import Path

from sessionproof import REPO_ROOT
from sessionproof.load import scenarios
from sessionproof.load.runinfo import HEARTBEAT_PREFIX
from sessionproof.topology import StackConfig


class HarnessRunError(RuntimeError):
    """A headless harness run left no summary; the message has Locust's exit code and why."""


def run_headless(scenario_name: str, base_url: str, env: dict, out_dir: Path, duration_s: float, progress=None) -> dict:
    """A headless run of the scenario for duration_s, its run folder under out_dir: the run's summary.json.

    `progress`, if given, gets the run's heartbeat (every 5 s of load)."""
    from sessionproof.runfiles import RunFileError, read_json_object

    command = headless_command(scenarios.load(scenario_name), base_url, duration=f"{duration_s:g}s")
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env={**env, "RESULTS_DIR": str(out_dir)}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    watchdog = threading.Timer(duration_s + 120, process.kill)  # a hung run ends; its folder then says so
    watchdog.start()
    tail: collections.deque[str] = collections.deque(maxlen=5)
    try:
        for line in process.stdout:
            tail.append(line.rstrip())
            if progress and line.startswith(HEARTBEAT_PREFIX):
                progress(f"load {line[len(HEARTBEAT_PREFIX) :].strip()}")
        returncode = process.wait()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    try:
        return read_json_object((out_dir / "latest").resolve() / "summary.json")
    except RunFileError as error:
        raise HarnessRunError(f"the harness run failed ({returncode}): {error}; last lines: {list(tail)}") from None


def headless_command(
    scenario: scenarios.Scenario,
    host: str,
    *,
    users: int | None = None,
    spawn_rate: float | None = None,
    duration: str | None = None,
    processes: int | None = None,
) -> list[str]:
    """The one headless Locust command line: the scenario's users, rate and duration unless given."""
    command = [
        str(Path(sys.executable).parent / "locust"),
        "--headless",
        "--scenario", scenario.name,
        "--host", host,
        "-u", str(users or scenario.users),
        "-r", str(spawn_rate or scenario.spawn_rate),
        "-t", duration or scenario.duration,
        "--stop-timeout", "15",
        "--only-summary",
    ]  # fmt: skip
    if processes:
        command += ["--processes", str(processes)]
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.load.loadtest", description=__doc__)
    parser.add_argument("--scenario", default=os.environ.get("SCENARIO") or "mixed")
    parser.add_argument("--duration", help="e.g. 30s, 2m (default: the scenario's)")
    parser.add_argument("--users", type=int, help="default: the scenario's")
    parser.add_argument("--spawn-rate", type=float, help="default: the scenario's")
    parser.add_argument("--processes", type=int, help="Locust worker processes (default: one process)")
    parser.add_argument("--host", help="default: the local stack's nginx")
    args = parser.parse_args(argv)
    try:
        scenario = scenarios.load(args.scenario)
    except scenarios.ScenarioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    host = args.host or StackConfig.from_env().entry_url
    command = headless_command(
        scenario, host, users=args.users, spawn_rate=args.spawn_rate, duration=args.duration, processes=args.processes
    )
    print("running: " + " ".join(command), flush=True)
    os.chdir(REPO_ROOT)
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
