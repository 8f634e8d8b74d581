"""`make demo`: what the project is for, in one command and under 3 minutes.

It brings the stack up if needed, runs the mixed load for 60 s, SIGKILLs the Redis master
halfway and heals it (loadtests/scenarios/demo.yaml), reads every session back, and prints
the headline figures: first whether the run is valid, then latency per endpoint, errors,
lost writes and the failover window. It leaves one run folder, results/<UTC-time>-demo/.
Exit status: 0, 3 when an SLO was breached, 4 when the run is invalid (the load generator
crossed its own bounds), 2 when the demo could not run.
"""

from __future__ import annotations

import sys
import time

from sessionproof.analysis.markdown import ms_short, or_na
from sessionproof.analysis.summary import validity_line
from sessionproof.chaos.experiment import run_experiment, say
from sessionproof.load import scenarios
from sessionproof.runfiles import read_json_object
from sessionproof.runtimes.factory import get_runtime
from sessionproof.settings import ConfigError
from sessionproof.waiting import DeadlineExceeded

DEMO_SCENARIO = "demo"


def _ms_or_na(value_us: int | None) -> str:
    return "n/a" if value_us is None else f"{ms_short(value_us)} ms"


def headline(summary: dict) -> list[str]:
    """The figures a newcomer asks for first, as terminal lines."""
    lines = [
        "",
        validity_line(summary),
        "",
        f"{'endpoint':<30} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'p99 ms from intended start':>28}",
    ]
    for endpoint, p in summary["latency_us"].items():
        intended = summary["latency_intended_us"].get(endpoint) or {}
        lines.append(
            f"{endpoint:<30} {p['count']:>6} {ms_short(p['p50']):>8} {ms_short(p['p99']):>8} "
            f"{ms_short(intended.get('p99')):>28}"
        )
    requests = summary["requests"]
    figures = summary.get("failover") or {}
    errors = figures.get("client_errors") or {}
    seen = ", ".join(f"{name}: {count}" for name, count in errors.items() if count) or "none"
    promotion = (summary.get("partition") or {}).get("promotion") or {}
    lines += [
        "",
        f"requests: {requests['total']}, failed {requests['failed']} (by class: {seen})",
        f"acknowledged writes: {or_na(figures.get('acknowledged_writes'))}, "
        f"LOST: {or_na(figures.get('lost_acknowledged_writes'))}",
        f"failover: Sentinel promoted {or_na(promotion.get('to'))} "
        f"{or_na(promotion.get('after_fault_start_s'))} s after the kill; "
        f"errors for {or_na(figures.get('error_window_s'))} s, longest time without a success "
        f"{or_na(figures.get('longest_gap_s'))} s",
        f"p99 during the fault (intended start): {_ms_or_na((figures.get('latency') or {}).get('during', {}).get('p99_us'))}",
        f"SLOs: {'passed' if summary['slo']['passed'] else 'BREACHED'}",
    ]
    return lines


def main() -> int:
    started = time.monotonic()
    try:
        runtime = get_runtime()
        say("demo: bringing the stack up (nothing to do if it is already up)")
        runtime.up(progress=lambda line: say(f"  {line}"))
        run_dir, code = run_experiment(DEMO_SCENARIO, runtime, say)
    except (scenarios.ScenarioError, ConfigError, DeadlineExceeded, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = read_json_object(run_dir / "summary.json")
    for line in headline(summary):
        say(line)
    say(f"\nreport: {run_dir / 'report.md'} (plots in {run_dir / 'plots'}; Locust's report: {run_dir / 'locust.html'})")
    say(f"demo took {time.monotonic() - started:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
