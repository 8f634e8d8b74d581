"""CPU per request of the app alone: its WSGI callable called in this process against a real redis-server.

    python -m sessionproof.load.cpu_inprocess            # both layers, 5 repetitions of 2000 requests
    PYTHONPATH=<other tree>/services/app python -m sessionproof.load.cpu_inprocess hardened

No HTTP server, no nginx, no network namespace: what is left is Flask, the session layer and one
Redis round trip on loopback. `GET /ping` and `GET /cart` (a logged-in session with a one-item cart)
alternate within each repetition; the session's cost is `GET /cart` minus `GET /ping`, CPU
(process time) and wall. Used to compare session-path changes below the noise of `make bench`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import redis

from sessionproof.waiting import wait_until

PATHS = ("/ping", "/cart")


def _start_redis(port: int, data_dir: str) -> subprocess.Popen:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; `make deps` installs it")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", data_dir]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def measure(layer: str, port: int, requests_per_rep: int, reps: int) -> dict[str, dict[str, float]]:
    from werkzeug.test import EnvironBuilder

    from sessionproof_app import create_app

    app = create_app({"SESSION_REDIS": redis.Redis(port=port), "SESSION_LAYER": layer},
                     env={"SESSION_LAYER": layer, "SESSION_WAIT_REPLICAS": "0"})  # fmt: skip
    client = app.test_client()
    client.post("/login", json={"user": "cpu"})
    client.post("/cart/apple")
    name = app.config["SESSION_COOKIE_NAME"]
    cookie = f"{name}={client.get_cookie(name).value}"
    environs = {path: EnvironBuilder(path=path, headers={"Cookie": cookie}).get_environ() for path in PATHS}

    def start_response(*_args):
        return None

    cpu: dict[str, list[float]] = {path: [] for path in PATHS}
    wall: dict[str, list[float]] = {path: [] for path in PATHS}
    for _ in range(reps):
        for path, environ in environs.items():
            cpu_0, wall_0 = time.process_time(), time.perf_counter()
            for _ in range(requests_per_rep):
                b"".join(app(dict(environ), start_response))
            cpu[path].append((time.process_time() - cpu_0) / requests_per_rep * 1e6)
            wall[path].append((time.perf_counter() - wall_0) / requests_per_rep * 1e6)
    return {path: {"cpu_us": statistics.median(cpu[path]), "cpu_min_us": min(cpu[path]),
                   "cpu_max_us": max(cpu[path]), "wall_us": statistics.median(wall[path])}
            for path in PATHS}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.load.cpu_inprocess", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("layers", nargs="*", default=["hardened", "stock"])
    parser.add_argument("--requests", type=int, default=2000, help="requests per endpoint and repetition")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--port", type=int, default=6399, help="port of the redis-server this starts")
    args = parser.parse_args(argv)
    data_dir = tempfile.mkdtemp(prefix="sessionproof-cpu-")
    server = _start_redis(args.port, data_dir)
    try:
        probe = redis.Redis(port=args.port)
        wait_until(probe.ping, 10, f"redis-server on port {args.port}", 0.02)
        for layer in args.layers:
            figures = measure(layer, args.port, args.requests, args.reps)
            for path, f in figures.items():
                print(f"{layer:9} {path:6} CPU {f['cpu_us']:5.0f} µs ({f['cpu_min_us']:.0f} to "
                      f"{f['cpu_max_us']:.0f}), wall {f['wall_us']:5.0f} µs per request")  # fmt: skip
            session_cpu = figures["/cart"]["cpu_us"] - figures["/ping"]["cpu_us"]
            session_wall = figures["/cart"]["wall_us"] - figures["/ping"]["wall_us"]
            print(f"{layer:9} session: CPU {session_cpu:.0f} µs, wall {session_wall:.0f} µs per request")
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
