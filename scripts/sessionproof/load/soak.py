"""`make soak DURATION=30m`: the mixed scenario at its steady rate for a long time, judged on memory and drift.

While the harness runs, the Redis master's `used_memory` and its live keys (sessions, idempotency records)
are sampled every SAMPLE_S; at the end, the bytes of a session and of an idempotency record are measured on
the keys themselves (`MEMORY USAGE`). These go to raw/soak.json; then the analysis, run as its own program
(`python -m sessionproof.analysis.soak_report FOLDER`), judges them with the harness run (memory against the
sizing rule, p99 drift: see analysis/soak_report.py) and writes summary.json, report.md and plots/soak.png.

Writes results/<UTC-time>-soak/ (raw/soak.json, the harness run under harness/, and the report's files).
Exit status the report's: 0 passed, 3 failed; 2 could not run.
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
from sessionproof.load.finish import report_and_point_latest, summary_header
from sessionproof.load.loadtest import HarnessRunError, run_headless
from sessionproof.load.scale import master_client, memory_usage
from sessionproof.load.scenarios import duration_s as parse_duration_s
from sessionproof.runtimes.factory import get_runtime
from sessionproof.waiting import DeadlineExceeded

SCENARIO = "mixed"
SAMPLE_S = 10.0
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.load.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--duration", default="30m", help="how long the mixed scenario runs (30m, 90s, ...)")
    args = parser.parse_args(argv)
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
            run_headless(SCENARIO, runtime.config.entry_url, {**os.environ, **env}, out_dir / "harness", duration_s,
                         progress=say)  # fmt: skip
        finally:
            sampler.stopped.set()
            sampler.join()
        measured = {
            **summary_header(out_dir, env),
            "duration_s": duration_s,
            "harness_run": os.path.relpath((out_dir / "harness" / "latest").resolve(), out_dir),
            "samples": [baseline, *sampler.samples],  # the first before the load
            "bytes_per_session": _bytes_per_key(client, f"{namespace}:session:*"),
            "bytes_per_record": _bytes_per_key(client, f"{namespace}:idempotency:*"),
            "record_ttl_s": settings.get_int("IDEMPOTENCY_TTL_S", env, minimum=1),
        }
        (out_dir / "raw").mkdir(exist_ok=True)
        (out_dir / "raw" / "soak.json").write_text(json.dumps(measured, indent=2) + "\n")
    except (settings.ConfigError, DeadlineExceeded, RuntimeError, HarnessRunError, redis.RedisError,
            requests.RequestException, ValueError) as error:  # fmt: skip
        print(f"error: {error}", file=sys.stderr)
        return 2
    return report_and_point_latest("soak_report", out_dir)


if __name__ == "__main__":
    sys.exit(main())
