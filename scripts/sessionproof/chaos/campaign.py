"""A nemesis campaign: the mixed load with every operation kind for DURATION while the nemesis injects and heals
random, overlapping faults drawn from SEED; then the final read, the one checker, and the campaign report.

    python -m sessionproof.chaos.campaign --duration 2h --seed 7 --layers hardened      (make campaign)
    python -m sessionproof.chaos.campaign --duration 5m --seed 1 --plan-only            (the schedule, as JSON)

One run folder per configuration, results/<UTC-time>-campaign-<configuration>/, an ordinary run (history,
events, timeline, report.md) plus campaign.md, campaign.json and plots/campaign.png. The same seed gives the
same schedule (--plan-only prints it; the run's events hold it as `nemesis_plan`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from sessionproof import settings
from sessionproof.chaos.experiment import run_experiment, say
from sessionproof.chaos.faults import FAULTS, refusal
from sessionproof.chaos.nemesis import Nemesis, heal_everything, plan, plan_event
from sessionproof.load import scenarios
from sessionproof.runtimes.factory import get_runtime
from sessionproof.runtimes.interface import Runtime
from sessionproof.settings import CONFIGURATIONS
from sessionproof.topology import check_configurations
from sessionproof.waiting import DeadlineExceeded

SCENARIO = "campaign"
END_MARGIN_S = 20.0  # the nemesis stops this long before the load does: the last heal is done under load


def _duration(text: str) -> tuple[str, float]:
    """DURATION as Locust takes it ("2h", "30m", "90s", a bare number of hours) and in seconds."""
    text = text.strip()
    if text.replace(".", "", 1).isdigit():
        text = f"{round(float(text) * 3600)}s"
    seconds = scenarios.duration_s(text)
    if seconds < 60:
        raise settings.ConfigError(f"DURATION={text!r}: a campaign lasts at least a minute (e.g. 5m, 2h)")
    return text, seconds


def campaign_plan(seed: int, seconds: float, runtime: Runtime) -> list:
    """The nemesis's steps from the faults this runtime can inject (the disk fault needs the AOF on this host):
    same seed and runtime, same plan."""
    return plan(seed, seconds - END_MARGIN_S, tuple(name for name in FAULTS if refusal(name, runtime) is None))


def run_campaign(
    configuration: str, duration: str, seed: int, progress=say, base: Runtime | None = None
) -> tuple[Path, int]:
    """One campaign on one configuration (of the stack `base`, default the one the settings name); returns its
    run folder and the exit code of its report (0, 3 anomalies or SLO breached, 4 invalid)."""
    text, seconds = _duration(duration)
    runtime = get_runtime({**(base or get_runtime()).config.env, **CONFIGURATIONS[configuration]})
    engine = runtime.config.store_engine
    engine_suffix = "" if engine == "redis" else f"-{engine}"  # results/<time>-campaign-hardened-valkey
    reason = runtime.network_refusal()
    if reason is not None:
        raise RuntimeError(f"a campaign needs network faults: {reason}")
    steps = campaign_plan(seed, seconds, runtime)
    progress(f"== campaign {configuration}: {text}, seed {seed}, {len(steps)} steps planned")
    runtime.up(progress=lambda *_: None)

    def drive(run_dir: Path, log, started: float, alive) -> None:
        log.write("nemesis_plan", **plan_event(seed, seconds, configuration, steps))
        (run_dir / "raw" / "nemesis-plan.json").write_text(
            json.dumps(plan_event(seed, seconds, configuration, steps), indent=1) + "\n"
        )
        try:  # run_experiment's watchers record Sentinel's events and split brains meanwhile
            ran = Nemesis(runtime, log, steps, lambda line: progress(f"[{configuration}] {line}")).run(
                started, started + seconds - END_MARGIN_S, alive
            )
            log.write("nemesis_done", steps_run=ran)
            progress(f"[{configuration}] nemesis: {ran} of {len(steps)} planned steps ran; load continues to the end")
        finally:
            heal_everything(runtime)

    run_dir, code = run_experiment(
        SCENARIO, runtime, progress, duration=text, drive=drive, run_name=f"campaign-{configuration}{engine_suffix}"
    )
    report = subprocess.run([sys.executable, "-m", "sessionproof.analysis.campaign_report", str(run_dir)], check=False)
    if report.returncode not in (0, 3, 4):
        progress(f"[{configuration}] campaign report failed (exit {report.returncode}); the run is in {run_dir}")
        return run_dir, max(code, 2)
    progress(f"[{configuration}] campaign report: {run_dir / 'campaign.md'}")
    return run_dir, max(code, report.returncode)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sessionproof.chaos.campaign",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", default="10m", help="how long the load runs: 2h, 30m, 300s (default 10m)")
    parser.add_argument("--seed", type=int, default=1, help="the nemesis's seed (default 1)")
    parser.add_argument(
        "--layers", default="hardened", help=f"configurations, in turn, of: {', '.join(CONFIGURATIONS)}"
    )
    parser.add_argument("--plan-only", action="store_true", help="print the schedule as JSON and exit")
    args = parser.parse_args(argv)
    try:
        text, seconds = _duration(args.duration)
        configurations = args.layers.split()
        check_configurations(configurations)
        if args.plan_only:
            steps = campaign_plan(
                args.seed, seconds, get_runtime({**get_runtime().config.env, **CONFIGURATIONS[configurations[0]]})
            )
            print(json.dumps(plan_event(args.seed, seconds, configurations[0], steps), indent=1))
            return 0
        worst = 0
        for configuration in configurations:
            started = time.monotonic()
            run_dir, code = run_campaign(configuration, text, args.seed)
            say(f"[{configuration}] done in {(time.monotonic() - started) / 60:.1f} min: {run_dir}")
            worst = max(worst, code)
        return worst
    except (scenarios.ScenarioError, settings.ConfigError, DeadlineExceeded, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
