"""`make power-loss`: what a power loss of every data node at once takes from acknowledged writes, per durability
setting and store engine, side by side in one run.

There is no VM to pull the plug on here, so a stand-in, applied the same way to every configuration:
1. every data node's writes and fsyncs of its AOF are traced (strace, chaos/aof_trace.py) while writers add items
   to carts through nginx, recording each acknowledged (200) item;
2. at a random moment (from --seed) every data node gets SIGKILL at once;
3. each node's AOF is cut back to what its last completed fsync covered: the bytes after it were in the page cache
   only, which a power loss takes (the worst case POSIX allows: the kernel may have written some of them back);
4. every node starts again from what is left, and every acknowledged item is read back through the app.

A lost item is one the app acknowledged that no cart holds afterwards. The Sentinels and the apps keep running,
as if they were on other machines. Local runtime only (it needs the nodes' pids and data folders).

Configurations (LAYERS, default "hardened hardened-fsync-always hardened-waitaof"; settings.CONFIGURATIONS):
appendfsync everysec with WAIT; appendfsync always with WAIT; and with WAITAOF (engines that have it).
Writes results/<UTC-time>-power-loss/ (summary.json, report.md, traces/). Exit status 0, 2 when it could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from sessionproof import runs, settings
from sessionproof.chaos import aof_trace
from sessionproof.engines import requested_engines
from sessionproof.load.finish import report_and_point_latest, summary_header
from sessionproof.runtimes.factory import get_runtime, run_versions, running_store, runtimes_in_turn
from sessionproof.topology import planned_runs
from sessionproof.waiting import DeadlineExceeded, wait_until

DEFAULT_LAYERS = "hardened hardened-fsync-always hardened-waitaof"
ITEMS_PER_SESSION = 40  # below CART_MAX_ITEMS (50): a full cart would answer 409
READ_BACK_TIMEOUT_S = 90
REQUEST_TIMEOUT_S = 3


def say(line: str) -> None:
    print(f"[power-loss] {line}", flush=True)


@dataclass
class Writers:
    """Threads that add items to carts through nginx and record every acknowledged one, with when."""

    base_url: str
    cookie_name: str
    count: int
    prefix: str
    acked: list[tuple[str, str, float]] = field(default_factory=list)  # (session cookie, item, ack unix s)
    latencies_ms: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._write, args=(n,), daemon=True) for n in range(self.count)]
        for thread in threads:
            thread.start()
        return threads

    def _write(self, writer: int) -> None:
        sent = 0
        http, cookie = None, None
        while not self.stop.is_set():
            try:
                if cookie is None or (sent % ITEMS_PER_SESSION == 0 and sent):
                    http = requests.Session()
                    user = f"{self.prefix}-{writer}-{sent}"
                    http.post(f"{self.base_url}/login", json={"user": user}, timeout=REQUEST_TIMEOUT_S)
                    cookie = http.cookies.get(self.cookie_name)
                    if cookie is None:
                        self.stop.wait(0.05)
                        continue
                item = f"{self.prefix}-{writer}-{sent}"
                began = time.monotonic()
                response = http.post(f"{self.base_url}/cart/{item}", timeout=REQUEST_TIMEOUT_S)
                sent += 1
                if response.status_code == 200:
                    with self._lock:
                        self.acked.append((cookie, item, time.time()))
                        self.latencies_ms.append((time.monotonic() - began) * 1000)
                else:
                    self.stop.wait(0.05)  # the store refuses (503): do not spin
            except requests.RequestException:
                self.stop.wait(0.05)


@dataclass
class Tracer:
    node: str
    pid: int
    fd: int
    aof: Path
    output: Path
    process: subprocess.Popen


def _incr_aof_fd(pid: int) -> tuple[int, Path]:
    """The descriptor the node appends its AOF through (the manifest's last *.incr.aof file)."""
    found = []
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(entry)
        if target.endswith(".incr.aof"):
            found.append((int(entry.name), Path(target)))
    if len(found) != 1:
        raise RuntimeError(f"pid {pid} holds {len(found)} incremental AOF files open, not 1 (a rewrite running?)")
    return found[0]


def _traced(pid: int) -> bool:
    """Every thread of pid is under a tracer (strace -f attached to all of them)."""
    tasks = list(Path(f"/proc/{pid}/task").iterdir())
    return bool(tasks) and all(
        int(line.split()[1]) != 0
        for task in tasks
        for line in (task / "status").read_text().splitlines()
        if line.startswith("TracerPid:")
    )


def attach(runtime, node: str, output: Path) -> Tracer:
    pid = runtime.pid(node)
    if pid is None:
        raise RuntimeError(f"{node} is not running")
    return trace_aof(node, pid, output)


def trace_aof(node: str, pid: int, output: Path) -> Tracer:
    """strace on every thread of the server `pid`, writing to `output`; returns once every thread is traced."""
    fd, aof = _incr_aof_fd(pid)
    argv = ["strace", "-f", "-ttt", "-qq", "-s", "0", "-e", "trace=write,fdatasync,fsync", "-e", "signal=none"]
    process = subprocess.Popen([*argv, "-o", str(output), "-p", str(pid)], stderr=subprocess.DEVNULL)
    wait_until(lambda: _traced(pid), 10, f"strace to attach to every thread of {node} (pid {pid})")
    return Tracer(node, pid, fd, aof, output, process)


def power_loss(tracers: list[Tracer]) -> float:
    """SIGKILL every data node (and what it forked) at once; the moment, as unix seconds."""
    victims = []
    for tracer in tracers:
        with_children = [tracer.pid, *(child.pid for child in psutil.Process(tracer.pid).children(recursive=True))]
        victims += with_children
    at = time.time()
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for tracer in tracers:
        tracer.process.wait(timeout=30)  # strace ends with its tracee
    return at


def cut_to_last_fsync(tracer: Tracer, at: float) -> dict:
    """Truncate the node's AOF to what its last completed fsync covered; what was cut, and why it was valid."""
    trace = aof_trace.parse(tracer.output.read_text(errors="replace").splitlines(), tracer.fd)
    if not tracer.aof.exists():  # a rewrite replaced it while traced: which bytes survive is not known
        return {"aof": tracer.aof.name, "size_bytes": 0, "cut_bytes": 0, "fsyncs": trace.fsyncs,
                "last_fsync_before_ms": None, "problems": ["the AOF was rewritten during the round"]}  # fmt: skip
    final_size = tracer.aof.stat().st_size
    surviving = trace.surviving_size(final_size)
    problems = []
    if trace.fsyncs == 0:
        problems.append("no fsync traced: what was on disk before tracing began is not known")
    if trace.unfinished_write:
        problems.append("a write was in progress when the node died: its bytes are not known")
    if not 0 <= surviving <= final_size:
        problems.append(f"the trace does not match the file ({surviving} of {final_size} bytes)")
    if not problems:
        os.truncate(tracer.aof, surviving)
    return {
        "aof": tracer.aof.name,
        "size_bytes": final_size,
        "cut_bytes": trace.unsynced_bytes,
        "fsyncs": trace.fsyncs,
        "last_fsync_before_ms": None
        if trace.last_fsync_unix_s is None
        else round((at - trace.last_fsync_unix_s) * 1e3),
        "problems": problems,
    }


def read_back(base_url: str, cookie_name: str, cookies: set[str]) -> dict[str, set[str]]:
    """Every session's cart, retried while the store comes back (503) until READ_BACK_TIMEOUT_S."""
    carts = {}
    deadline = time.monotonic() + READ_BACK_TIMEOUT_S
    for cookie in sorted(cookies):

        def cart(cookie=cookie):  # in a tuple: an empty cart (every item lost) is an answer too
            response = requests.get(f"{base_url}/cart", cookies={cookie_name: cookie}, timeout=REQUEST_TIMEOUT_S)
            return (set(response.json()["cart"]),) if response.status_code == 200 else None

        (carts[cookie],) = wait_until(cart, max(deadline - time.monotonic(), 1), "the cart to be read back")
    return carts


def one_round(runtime, rng: random.Random, args, traces_dir: Path, name: str) -> dict:
    runtime.up(progress=lambda *_: None)
    config = runtime.config
    nodes = [node.name for node in config.redis_nodes]
    traces_dir.mkdir(parents=True, exist_ok=True)
    tracers = [attach(runtime, node, traces_dir / f"{name}-{node}.strace") for node in nodes]
    cookie_name = config.get("SESSION_COOKIE_NAME")
    writers = Writers(config.entry_url, cookie_name, args.writers, f"pl{time.time_ns() % 10**12}")  # short: names ≤ 64
    kill_after_s = rng.uniform(args.write_min_s, args.write_max_s)
    threads = writers.start()
    writers.stop.wait(kill_after_s)  # the moment the plug is pulled, drawn from the seed
    at = power_loss(tracers)
    writers.stop.set()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S + 2)
    cut = {tracer.node: cut_to_last_fsync(tracer, at) for tracer in tracers}
    for node in nodes:
        runtime.start(node)
    runtime.up(progress=lambda *_: None)
    carts = read_back(config.entry_url, cookie_name, {cookie for cookie, _, _ in writers.acked})
    lost = [(item, at - acked_at) for cookie, item, acked_at in writers.acked if item not in carts[cookie]]
    ages_ms = sorted(round(age * 1e3) for _, age in lost)
    latencies = sorted(writers.latencies_ms)
    return {
        "kill_after_s": round(kill_after_s, 3),
        "acknowledged": len(writers.acked),
        "lost": len(lost),
        "lost_items": [item for item, _ in lost],
        "lost_acked_before_ms": [ages_ms[0], ages_ms[-1]] if ages_ms else None,
        "post_ms_under_strace": {
            "p50": round(statistics.median(latencies), 2) if latencies else None,
            "p99": round(latencies[int(0.99 * (len(latencies) - 1))], 2) if latencies else None,
        },
        "nodes": cut,
        "valid": not any(node["problems"] for node in cut.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.chaos.power_loss", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument(
        "--layers", default=DEFAULT_LAYERS, help=f"configurations, in order (default: {DEFAULT_LAYERS})"
    )
    parser.add_argument(
        "--engines", default=None, help="store engines (default: the ENGINES setting, else the stack's)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="power losses per engine and configuration (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="draws each power loss's moment (default 1)")
    parser.add_argument("--writers", type=int, default=4, help="threads adding items (default 4)")
    parser.add_argument("--write-min-s", type=float, default=3.0)
    parser.add_argument("--write-max-s", type=float, default=6.0)
    args = parser.parse_args(argv)
    try:
        if settings.get_str("STACK") != "local":
            raise settings.ConfigError("make power-loss needs STACK=local (the nodes' pids and data folders)")
        if not shutil.which("strace"):
            raise settings.ConfigError("strace is not installed; `make deps` installs it (apt-get install strace)")
        layers = args.layers.split()
        base = get_runtime()
        planned, skipped = planned_runs(layers, requested_engines(args.engines) or [base.config.store_engine])
        out_dir = runs.reserve_run_dir("power-loss")
        rng = random.Random(args.seed)
        results = {}
        for label, overrides, runtime in runtimes_in_turn(base, planned, say, get_runtime):
            say(f"== {label}: {overrides}")
            results[label] = {"settings": overrides, "rounds": []}
            for n in range(args.rounds):
                outcome = one_round(runtime, rng, args, out_dir / "traces", f"{label.replace(' ', '-')}-{n + 1}")
                results[label]["rounds"].append(outcome)
                cut = ", ".join(f"{node} -{v['cut_bytes']} B" for node, v in outcome["nodes"].items())
                say(f"[{label}] round {n + 1}/{args.rounds}: power loss after {outcome['kill_after_s']:.1f} s: "
                    f"{outcome['lost']} of {outcome['acknowledged']} acknowledged writes lost (AOF cut: {cut})"
                    + ("" if outcome["valid"] else " INVALID"))  # fmt: skip
            results[label]["store"] = running_store(runtime.config.env)  # what the nodes report, now up
        summary = {
            **summary_header(out_dir),
            "versions": run_versions(),
            "settings": vars(args),
            "configurations": results,
            "skipped": skipped,
        }
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    except (settings.ConfigError, DeadlineExceeded, RuntimeError, OSError, requests.RequestException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return report_and_point_latest("power_loss_report", out_dir)


if __name__ == "__main__":
    sys.exit(main())
