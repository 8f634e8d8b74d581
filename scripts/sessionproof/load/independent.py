"""Independent load generators written in C and Go, from Debian's packages: wrk (closed loop) and hey (fixed rate).

They measure the stack without the harness's own cost, so `make bench` can say what the
stack does and how far the harness's figures are from it. wrk reports µs percentiles from
its own HdrHistogram through a Lua `done()` hook; hey's per-request CSV has 0.1 ms
resolution, which is recorded into an HdrHistogram here.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sessionproof.histograms import HIGHEST_US, LOWEST_US, new_histogram, percentiles_us

WRK_MARK = "SESSIONPROOF_WRK "

# Every request carries one of the given cookies, in turn; a POST adds an item unique to its thread and count.
WRK_SCRIPT = """
local cookies = {%(cookies)s}
local method, path, counter, thread_id = "%(method)s", "%(path)s", 0, 0
local threads = {}
setup = function(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end
request = function()
  counter = counter + 1
  local headers = {}
  if #cookies > 0 then headers["Cookie"] = cookies[(counter %% #cookies) + 1] end
  local target = path
  if method == "POST" then target = path .. "b" .. thread_id .. "x" .. counter end
  return wrk.format(method, target, headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests":%%d,"duration_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d,' ..
    '"p50":%%d,"p90":%%d,"p99":%%d,"p999":%%d,"max":%%d,"mean":%%.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
"""


class GeneratorError(RuntimeError):
    """An independent generator is missing or failed; the message says how to fix it."""


def require(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise GeneratorError(f"{name} is not installed; `make deps` installs it (apt-get install wrk hey)")
    return path


@dataclass(frozen=True)
class Target:
    """One endpoint as the generators send it: method, path, and the session cookies to use in turn."""

    name: str  # e.g. "GET /cart", as the reports name endpoints
    method: str
    path: str  # for a POST, the prefix of a fresh item name per request
    cookies: tuple[str, ...] = ()


def wrk(base_url: str, target: Target, connections: int, duration_s: float, threads: int, workdir: Path) -> dict:
    """A closed-loop wrk run: requests/s, errors, and µs percentiles of its latency (p50 ... p99.9, max)."""
    slug = "-".join("".join(c if c.isalnum() else " " for c in target.name.lower()).split())
    script = workdir / f"wrk-{slug}.lua"
    cookies = ", ".join(json.dumps(c) for c in target.cookies)
    script.write_text(WRK_SCRIPT % {"cookies": cookies, "method": target.method, "path": target.path, "mark": WRK_MARK})
    command = [require("wrk"), f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "-s", str(script),
               "--timeout", "5s", base_url]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith(WRK_MARK)), None)
    if result.returncode != 0 or line is None:
        raise GeneratorError(f"wrk failed on {target.name} ({result.returncode}): {result.stderr.strip()[-400:]}")
    figures = json.loads(line[len(WRK_MARK) :])
    seconds = figures["duration_us"] / 1e6
    errors = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "requests": figures["requests"],
        "errors": errors,
        "rps": round(figures["requests"] / seconds, 1) if seconds else 0.0,
        "p50_us": figures["p50"],
        "p90_us": figures["p90"],
        "p99_us": figures["p99"],
        "p999_us": figures["p999"],
        "max_us": figures["max"],
        "mean_us": figures["mean"],
        "connections": connections,
        "duration_s": duration_s,
    }


def hey(base_url: str, target: Target, rate_per_s: float, duration_s: float) -> subprocess.Popen:
    """Start hey at a fixed rate on one connection; `hey_result` reads it. Several run side by side.
    GETs only: hey sends the same request each time, and the same item added again would fill the cart."""
    if target.method != "GET":
        raise GeneratorError(f"hey sends one fixed request; {target.name} would add the same item each time")
    command = [require("hey"), "-z", f"{duration_s:g}s", "-q", f"{rate_per_s:g}", "-c", "1", "-m", target.method,
               "-o", "csv", "-t", "5", "-disable-keepalive=false"]  # fmt: skip
    if target.cookies:
        command += ["-H", f"Cookie: {target.cookies[0]}"]
    return subprocess.Popen(
        [*command, base_url + target.path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def hey_result(process: subprocess.Popen, name: str, timeout_s: float) -> dict:
    """Percentiles (µs, from hey's 0.1 ms resolution) and status counts of a hey run."""
    out, err = process.communicate(timeout=timeout_s)
    if process.returncode != 0:
        raise GeneratorError(f"hey failed on {name} ({process.returncode}): {err.strip()[-400:]}")
    histogram = new_histogram()
    statuses: dict[str, int] = {}
    for row in csv.DictReader(io.StringIO(out)):
        value_us = round(float(row["response-time"]) * 1_000_000)
        histogram.record_value(min(max(value_us, LOWEST_US), HIGHEST_US))
        statuses[row["status-code"]] = statuses.get(row["status-code"], 0) + 1
    figures = percentiles_us(histogram)
    return {"count": figures["count"], "p50_us": figures["p50"], "p99_us": figures["p99"], "statuses": statuses}
