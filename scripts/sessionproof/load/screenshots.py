"""`make screenshots`: pictures of Locust's web UI during a test and of a rendered report, for a person to look at.

It starts Locust's web UI against the running stack (on a free loopback port, results in a
scratch folder that is removed afterwards), starts a test of SCENARIO (default mixed)
through the UI's HTTP API, and has Debian's headless Chromium photograph the page while
the load runs. Then it renders RUN's report.md (default results/latest) to HTML and
photographs that. Both PNGs land in results/<UTC-time>-screenshots/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import markdown
import requests

from sessionproof import REPO_ROOT, runs
from sessionproof.topology import StackConfig
from sessionproof.waiting import DeadlineExceeded, wait_until

CHROMIUM_NAMES = ("chromium", "chromium-browser")
UI_LOAD_S = 12.0  # long enough for the UI's charts to draw a few points
WINDOW = "1400,1000"
STYLE = """body{font-family:sans-serif;max-width:1100px;margin:24px auto;line-height:1.4}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px}
img{max-width:100%}code{background:#f3f3f3;padding:0 3px}"""


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("chromium is not installed; install it with `apt-get install chromium` (Debian's package)")


def screenshot(url: str, out: Path, timeout_s: float = 60) -> Path:
    """A PNG of url as headless Chromium renders it, after a virtual-time budget for scripts to draw."""
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--window-size={WINDOW}", "--virtual-time-budget=5000", f"--screenshot={out}", url,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    if result.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium could not photograph {url}: {result.stderr.strip()[-500:]}")
    return out


def render_report(run_dir: Path, out: Path) -> Path:
    """out (HTML) from run_dir/report.md: the tables and plots as a browser shows them; the run is not touched."""
    text = (run_dir / "report.md").read_text()
    body = markdown.markdown(text, extensions=["tables"])
    base = run_dir.as_uri() + "/"  # the report's links and plots are relative to its folder
    page = f"<!doctype html><meta charset=utf-8><base href='{base}'><title>{run_dir.name}</title>"
    out.write_text(page + f"<style>{STYLE}</style>{body}", encoding="utf-8")
    return out


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _test_running(ui: str) -> bool:
    stats = requests.get(f"{ui}/stats/requests", timeout=5).json()
    return stats.get("state") in ("running", "spawning") and stats.get("user_count", 0) > 0


def photograph_web_ui(scenario: str, out: Path, host: str) -> Path:
    port = free_port()
    scratch = Path(tempfile.mkdtemp(prefix="sessionproof-ui-"))
    locust = str(Path(sys.executable).parent / "locust")
    env = {**os.environ, "RESULTS_DIR": str(scratch)}
    command = [locust, "--host", host, "--web-port", str(port), "--scenario", scenario]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ui = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(ui, timeout=2).ok, 30, "Locust's web UI to answer")
        requests.post(f"{ui}/swarm", data={"scenario": scenario, "host": host}, timeout=10).raise_for_status()
        started = time.monotonic()
        wait_until(
            lambda: _test_running(ui) and time.monotonic() - started >= UI_LOAD_S,
            UI_LOAD_S + 30,
            f"the test to run {UI_LOAD_S:g} s in the UI, so its charts have points",
            interval_s=1.0,
        )
        return screenshot(ui, out)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sessionproof.load.screenshots", description=__doc__)
    parser.add_argument("--scenario", default=os.environ.get("SCENARIO") or "mixed")
    parser.add_argument("--run", type=Path, default=None, help="the run whose report to photograph (results/latest)")
    args = parser.parse_args(argv)
    run_dir = (args.run or runs.results_dir() / "latest").resolve()
    try:
        if not (run_dir / "report.md").is_file():
            raise RuntimeError(f"{run_dir} has no report.md; pass --run with a run folder (make demo makes one)")
        chromium()
        out_dir = runs.reserve_run_dir("screenshots")
        host = StackConfig.from_env().entry_url
        print(f"photographing Locust's web UI during a {args.scenario} test ({UI_LOAD_S:g} s of load)", flush=True)
        ui_png = photograph_web_ui(args.scenario, out_dir / "locust-web-ui.png", host)
        report_png = screenshot(render_report(run_dir, out_dir / "report.html").as_uri(), out_dir / "report.png")
    except (RuntimeError, DeadlineExceeded, requests.RequestException) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {ui_png} and {report_png} (the report of {run_dir})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
