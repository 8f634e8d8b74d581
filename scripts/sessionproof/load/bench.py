"""`make bench`: what the session path costs, measured by independent clients, and how far the harness is from them.

For each store engine (ENGINES, default the stack's) and configuration (LAYERS, default "hardened stock"), on
the running stack brought up with that engine and configuration, side by side in one run (hardened-waitaof is
skipped on Redis 7.0, which has no WAITAOF):

- capacity: saturated requests/s of GET /ping, GET /cart and POST /cart/<item> with wrk
  (closed loop, BENCH_CONNECTIONS connections), repeated BENCH_REPS times in alternating
  order; the ratios GET /cart ÷ GET /ping and POST ÷ GET /ping; and, where the runtime
  names its processes (local), the CPU each part of the stack spends per request;
- unloaded latency: p50, p99 and p99.9 of each endpoint with wrk on one connection, and
  the session tax (GET /cart minus GET /ping at p50);
- harness accuracy: the `latency` scenario (100 req/s) through the harness, then hey at the
  scenario's rates on GET /ping and GET /cart; the harness's p50 must be within 25% (or
  300 µs) of hey's, else its figures are marked inaccurate.

Writes results/<UTC-time>-bench/ (summary.json, the harness runs under harness-<configuration>/),
then runs its report (`python -m sessionproof.analysis.bench_report FOLDER`: report.md,
plots/bench.png). Exit status 0, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import requests

from sessionproof import runs, settings
from sessionproof.engines import requested_engines
from sessionproof.load import independent, scenarios
from sessionproof.load.cpu_split import PARTS, CpuMeter, per_request_us
from sessionproof.load.finish import report_and_point_latest, summary_header
from sessionproof.load.independent import GeneratorError, Target
from sessionproof.load.loadtest import HarnessRunError, run_headless
from sessionproof.runtimes.factory import get_runtime, run_versions, runtimes_in_turn
from sessionproof.topology import planned_runs
from sessionproof.waiting import DeadlineExceeded

ENDPOINTS = ("GET /ping", "GET /cart", "POST /cart/[item]")
CART_ITEMS = 5  # a read session holds a few items, as a shopper's would
READ_SESSIONS = 50
WRITE_SESSIONS_PER_RUN = 400  # 50 items each (CART_MAX_ITEMS): room for every POST of a saturated run
ACCURACY_SCENARIO = "latency"  # paced reads and writes with GET /ping beside them
ACCURACY_ENDPOINTS = ("GET /ping", "GET /cart")  # hey sends one fixed request: GETs only
ACCURACY_TOLERANCE = (0.25, 300)  # 25% or 300 µs, whichever is larger
TARGETS = {"cart_over_ping_min": 0.8, "session_tax_p50_max_us": 200, "post_over_cart_p50_max": 2.0}


def say(line: str) -> None:
    print(line, flush=True)


def _sessions(base_url: str, count: int, items: int, cookie_name: str) -> tuple[str, ...]:
    cookies = []
    for n in range(count):
        http = requests.Session()
        http.post(f"{base_url}/login", json={"user": f"bench-{time.time_ns()}-{n}"}, timeout=5).raise_for_status()
        for item in range(items):
            http.post(f"{base_url}/cart/seed{item}", timeout=5).raise_for_status()
        cookies.append(f"{cookie_name}={http.cookies.get(cookie_name)}")
    return tuple(cookies)


def _targets(base_url: str, cookie_name: str, writers: int) -> dict[str, Target]:
    return {
        "GET /ping": Target("GET /ping", "GET", "/ping"),
        "GET /cart": Target("GET /cart", "GET", "/cart", _sessions(base_url, READ_SESSIONS, CART_ITEMS, cookie_name)),
        "POST /cart/[item]": Target(
            "POST /cart/[item]", "POST", "/cart/", _sessions(base_url, writers, 0, cookie_name)
        ),
    }


def _rotated(rep: int) -> list[str]:
    """ENDPOINTS in a different order each repetition, so no endpoint always runs first (or on a warm cache)."""
    return [ENDPOINTS[(rep + i) % len(ENDPOINTS)] for i in range(len(ENDPOINTS))]


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "reps": values}


def measure_configuration(base_url: str, cookie_name: str, args, workdir: Path, meter: CpuMeter | None = None) -> dict:
    capacity: dict[str, list[dict]] = {name: [] for name in ENDPOINTS}
    unloaded: dict[str, list[dict]] = {name: [] for name in ENDPOINTS}
    cpu: dict[str, list[dict]] = {name: [] for name in ENDPOINTS}
    for rep in range(args.reps):
        targets = _targets(base_url, cookie_name, WRITE_SESSIONS_PER_RUN)  # fresh carts: a full one answers 409
        for name in _rotated(rep):
            before = meter.snapshot() if meter else None
            run = independent.wrk(base_url, targets[name], args.connections, args.capacity_s, 2, workdir)
            capacity[name].append(run)
            if meter and before:
                cpu[name].append(per_request_us(before, meter.snapshot(), run["requests"]))
            say(f"  [{rep + 1}/{args.reps}] capacity {name}: {run['rps']:.0f} req/s ({run['errors']} errors)")
        for name in _rotated(rep + 1):
            run = independent.wrk(base_url, targets[name], 1, args.unloaded_s, 1, workdir)
            unloaded[name].append(run)
            say(f"  [{rep + 1}/{args.reps}] unloaded {name}: p50 {run['p50_us']} µs, p99 {run['p99_us']} µs")
    rps = {name: _spread([r["rps"] for r in runs_]) for name, runs_ in capacity.items()}
    latency = {
        name: {key: _spread([r[f"{key}_us"] for r in runs_]) for key in ("p50", "p99", "p999")}
        for name, runs_ in unloaded.items()
    }
    ping, cart, post = (rps[name]["median"] for name in ENDPOINTS)
    p50 = {name: latency[name]["p50"]["median"] for name in ENDPOINTS}
    cpu_us = {
        name: {part: statistics.median(split[part] for split in splits) for part in PARTS}
        for name, splits in cpu.items()
        if splits
    }
    return {
        "capacity_rps": rps,
        # µs of CPU per request, per part of the stack, while saturated (median of the repetitions)
        "capacity_cpu_us_per_request": cpu_us,
        "capacity_errors": {name: sum(r["errors"] for r in runs_) for name, runs_ in capacity.items()},
        "ratios": {"GET /cart ÷ GET /ping": round(cart / ping, 3), "POST ÷ GET /ping": round(post / ping, 3)},
        "unloaded_us": latency,
        "session_tax_p50_us": p50["GET /cart"] - p50["GET /ping"],
        "post_over_cart_p50": round(p50["POST /cart/[item]"] / p50["GET /cart"], 3),
    }


def endpoint_rates(scenario) -> dict[str, float]:
    """Requests/s the scenario sends to each of ACCURACY_ENDPOINTS: its users' rate split by its latency mix."""
    total_per_s = scenario.users * scenario.rate_per_user_per_s
    weights = scenario.latency_mix
    return {name: round(total_per_s * weights.get(name, 0.0) / sum(weights.values()), 1) for name in ACCURACY_ENDPOINTS}


def harness_accuracy(base_url: str, cookie_name: str, env: dict, out_dir: Path, duration_s: float) -> dict:
    """The latency scenario through the harness, then hey at its rates: p50 and p99 of both, per endpoint."""
    scenario = scenarios.load(ACCURACY_SCENARIO)
    try:
        summary = run_headless(ACCURACY_SCENARIO, base_url, env, out_dir, duration_s)
    except HarnessRunError as error:
        raise GeneratorError(str(error)) from None
    targets = {
        "GET /ping": Target("GET /ping", "GET", "/ping"),
        "GET /cart": Target("GET /cart", "GET", "/cart", _sessions(base_url, 1, CART_ITEMS, cookie_name)),
    }
    rates = endpoint_rates(scenario)
    started = {
        name: independent.hey(base_url, target, rates[name], duration_s) for name, target in targets.items()
    }  # side by side, as the harness sent them
    figures = {}
    for name, process in started.items():
        theirs = independent.hey_result(process, name, duration_s + 60)
        ours = summary["latency_us"].get(name) or {}
        allowed_us = max(ACCURACY_TOLERANCE[0] * theirs["p50_us"], ACCURACY_TOLERANCE[1])
        diff_us = (ours.get("p50") or 0) - theirs["p50_us"]
        figures[name] = {
            "harness": {"p50_us": ours.get("p50"), "p99_us": ours.get("p99"), "count": ours.get("count")},
            "independent": theirs,
            "p50_diff_us": diff_us,
            "p99_diff_us": (ours.get("p99") or 0) - theirs["p99_us"],
            "p50_allowed_us": round(allowed_us),
            "rate_per_s": rates[name],
            "accurate": abs(diff_us) <= allowed_us,
        }
    return {"endpoints": figures, "harness_run": os.path.relpath((out_dir / "latest").resolve(), out_dir.parent)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.load.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--layers", default="hardened stock", help="configurations, in order (default: hardened stock)")
    parser.add_argument(
        "--engines", default=None, help="store engines, in order (default: the ENGINES setting, else the stack's)"
    )
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--capacity-s", type=float, default=5.0)
    parser.add_argument("--unloaded-s", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--accuracy-s", type=float, default=20.0)
    args = parser.parse_args(argv)
    try:
        independent.require("wrk")
        independent.require("hey")
        layers = args.layers.split()
        engines = requested_engines(args.engines)
        base = get_runtime()
        planned, skipped = planned_runs(layers, engines or [base.config.store_engine])
        out_dir = runs.reserve_run_dir("bench")
        (out_dir / "raw").mkdir(parents=True, exist_ok=True)  # the wrk scripts (with their session cookies)
        results = {}
        for label, overrides, runtime in runtimes_in_turn(base, planned, say, get_runtime):
            say(f"== {label}: bringing the stack up with {overrides}")
            runtime.up(progress=lambda *_: None)
            base_url, cookie = runtime.config.entry_url, runtime.config.get("SESSION_COOKIE_NAME")
            meter = CpuMeter(runtime)
            results[label] = measure_configuration(
                base_url, cookie, args, out_dir / "raw", meter if meter.available else None
            )
            say(f"  harness accuracy: the latency scenario for {args.accuracy_s:g} s, then hey at its rates")
            env = {**os.environ, **runtime.config.env}
            results[label]["accuracy"] = harness_accuracy(
                base_url, cookie, env, out_dir / f"harness-{label.replace(' ', '-')}", args.accuracy_s
            )
        summary = {
            **summary_header(out_dir),
            "versions": run_versions(),
            "settings": vars(args),
            "targets": TARGETS,
            "configurations": results,
            "skipped": skipped,
        }
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    except (GeneratorError, settings.ConfigError, DeadlineExceeded, requests.RequestException, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return report_and_point_latest("bench_report", out_dir)


if __name__ == "__main__":
    sys.exit(main())
