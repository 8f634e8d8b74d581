"""`make soak DURATION=30m`: the mixed scenario at its steady rate for a long time, judged on memory and drift.

While the harness runs, the Redis master's `used_memory` and its live keys (sessions, idempotency records)
are sampled every SAMPLE_S. The run is marked failed (exit 3) when

- memory grows beyond the sizing rule (docs/measurements.md, the sizing rule): the baseline before the run, plus the live
  sessions times their bytes, plus the write rate times IDEMPOTENCY_TTL_S times a record's bytes, with
  MEMORY_MARGIN on top. Bytes per key are measured on the keys themselves (`MEMORY USAGE`) at the end;
- p99 drifts upward: the intended-start p99 of the last third of the run (after WARMUP_FRACTION) is more
  than DRIFT_RATIO times, and DRIFT_FLOOR_US more than, that of the first third.

Writes results/<UTC-time>-soak/ (summary.json, report.md, plots/soak.png, the harness run under harness/).
Exit status 0 passed, 3 failed, 2 could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import redis
import requests

from sessionproof import runs, settings
from sessionproof.analysis.failover import latency_between
from sessionproof.load.loadtest import HarnessRunError, run_headless
from sessionproof.load.scale import master_client, memory_usage
from sessionproof.load.scenarios import duration_s as parse_duration_s
from sessionproof.runfiles import read_jsonl
from sessionproof.runtimes.factory import get_runtime
from sessionproof.waiting import DeadlineExceeded

SCENARIO = "mixed"
SAMPLE_S = 10.0
MEMORY_MARGIN = 0.25  # over the sizing rule's prediction
MEMORY_FLOOR_BYTES = 2 * 2**20  # allocator and buffer noise a small store shows either way
WARMUP_FRACTION = 0.1
DRIFT_RATIO = 1.25
DRIFT_FLOOR_US = 1000
KEY_SAMPLES = 200


def say(line: str) -> None:
    print(line, flush=True)


def _count(client: redis.Redis, pattern: str) -> int:
    return sum(1 for _ in client.scan_iter(match=pattern, count=10_000))


class MemorySampler(threading.Thread):
    """used_memory and live key counts of the master every SAMPLE_S, until stopped."""

    def __init__(self, client: redis.Redis, namespace: str):
        super().__init__(daemon=True)
        self.client, self.namespace = client, namespace
        self.samples: list[dict] = []
        self.stopped = threading.Event()

    def sample(self) -> dict:
        return {
            "t": round(time.time(), 1),
            "used_memory": int(self.client.info("memory")["used_memory"]),
            "sessions": _count(self.client, f"{self.namespace}:session:*"),
            "records": _count(self.client, f"{self.namespace}:idempotency:*"),
        }

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_S):
            try:
                self.samples.append(self.sample())
            except redis.RedisError as error:  # a sample missed is shown, not fatal
                self.samples.append({"t": round(time.time(), 1), "error": str(error)})


def _bytes_per_key(client: redis.Redis, pattern: str) -> float:
    keys = [k for _, k in zip(range(KEY_SAMPLES), client.scan_iter(match=pattern, count=1000), strict=False)]
    return memory_usage(client, keys)


def memory_verdict(baseline: int, samples: list[dict], bytes_per_session: float, bytes_per_record: float,
                   writes_per_s: float, record_ttl_s: int) -> dict:  # fmt: skip
    """The sizing rule's prediction for this run against the peak used_memory seen."""
    good = [s for s in samples if "used_memory" in s]
    peak_sessions = max((s["sessions"] for s in good), default=0)
    predicted = baseline + peak_sessions * bytes_per_session + writes_per_s * record_ttl_s * bytes_per_record
    allowed = predicted * (1 + MEMORY_MARGIN) + MEMORY_FLOOR_BYTES
    peak = max((s["used_memory"] for s in good), default=baseline)
    return {
        "baseline_bytes": baseline,
        "peak_bytes": peak,
        "peak_sessions": peak_sessions,
        "peak_records": max((s["records"] for s in good), default=0),
        "bytes_per_session": bytes_per_session,
        "bytes_per_record": bytes_per_record,
        "writes_per_s": round(writes_per_s, 1),
        "predicted_bytes": round(predicted),
        "allowed_bytes": round(allowed),
        "passed": peak <= allowed,
    }


def drift_verdict(histogram_lines: list[dict], start_s: int, end_s: int) -> dict:
    """Intended-start p99 (every endpoint) of the first and last third after the warm-up."""
    first = start_s + int((end_s - start_s) * WARMUP_FRACTION)
    third = (end_s - first) // 3
    intended_by_second: dict[int, list[str]] = {}
    for line in histogram_lines:
        if line["kind"] == "intended":
            intended_by_second.setdefault(line["t"], []).append(line["hist"])
    early = latency_between(intended_by_second, first, first + third - 1)
    late = latency_between(intended_by_second, end_s - third + 1, end_s)
    early_us, late_us = early["p99_us"], late["p99_us"]
    drifted = (
        early_us is not None and late_us is not None
        and late_us > early_us * DRIFT_RATIO and late_us - early_us > DRIFT_FLOOR_US
    )  # fmt: skip
    return {"first_third_p99_us": early_us, "last_third_p99_us": late_us, "passed": not drifted}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.load.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--duration", default="30m", help="how long the mixed scenario runs (30m, 90s, ...)")
    args = parser.parse_args(argv)
    from sessionproof.analysis.soak_report import write_report

    try:
        duration_s = parse_duration_s(args.duration)
        runtime = get_runtime()
        runtime.up(progress=lambda *_: None)
        env = runtime.config.env
        namespace = settings.get_str("SESSION_NAMESPACE", env)
        client = master_client(runtime)
        out_dir = runs.reserve_run_dir("soak")
        sampler = MemorySampler(client, namespace)
        baseline = sampler.sample()
        say(f"soak: the {SCENARIO} scenario for {args.duration}; Redis sampled every {SAMPLE_S:g} s")
        sampler.start()
        try:
            summary = run_headless(SCENARIO, runtime.config.entry_url, {**os.environ, **env}, out_dir / "harness",
                                   duration_s, progress=say)  # fmt: skip
        finally:
            sampler.stopped.set()
            sampler.join()
        run_dir = (out_dir / "harness" / "latest").resolve()
        posts = sum(v.get("ok", 0) for k, v in summary["requests"]["by_endpoint"].items() if k.startswith("POST"))
        memory = memory_verdict(
            baseline["used_memory"], sampler.samples,
            _bytes_per_key(client, f"{namespace}:session:*"),
            _bytes_per_key(client, f"{namespace}:idempotency:*"),
            posts / duration_s, settings.get_int("IDEMPOTENCY_TTL_S", env, minimum=1),
        )  # fmt: skip
        lines = read_jsonl(run_dir / "raw" / "histograms.jsonl", ("t", "kind", "hist"))
        seconds = [line["t"] for line in lines] or [0]
        drift = drift_verdict(lines, min(seconds), max(seconds))
        result = {
            "started_at": out_dir.name.split("-")[0],
            "command": runs.command_line(),
            "machine": runs.host_facts(),
            "config": runs.resolved_config(env),
            "duration_s": duration_s,
            "harness_run": os.path.relpath(run_dir, out_dir),
            "harness_valid": summary.get("valid"),
            "memory": memory,
            "drift": drift,
            "samples": [baseline, *sampler.samples],
            "passed": memory["passed"] and drift["passed"] and bool(summary.get("valid")),
        }
        (out_dir / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
        write_report(result, out_dir)
        runs.point_latest(out_dir)
    except (settings.ConfigError, DeadlineExceeded, RuntimeError, HarnessRunError, redis.RedisError,
            requests.RequestException, ValueError) as error:  # fmt: skip
        print(f"error: {error}", file=sys.stderr)
        return 2
    say(f"soak: {'passed' if result['passed'] else 'FAILED'}; {out_dir / 'report.md'}")
    return 0 if result["passed"] else 3


if __name__ == "__main__":
    sys.exit(main())
