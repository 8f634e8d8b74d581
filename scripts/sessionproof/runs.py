"""Run folders: results/<UTC-time>-<scenario>/, never overwritten, with results/latest pointing at the newest."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil

from sessionproof import REPO_ROOT, settings
from sessionproof.runfiles import RunFileError, read_json_object
from sessionproof.validity import BAD_INPUT_EXIT_CODE

_SCENARIO_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
PACKAGES = ("flask", "flask-session", "redis", "gunicorn", "locust", "hdrhistogram", "supervisor")


def results_dir(env=None) -> Path:
    path = Path(settings.get_str("RESULTS_DIR", env))
    return path if path.is_absolute() else REPO_ROOT / path


def utc_stamp(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")


def reserve_run_dir(scenario: str, base: Path | None = None, now: dt.datetime | None = None) -> Path:
    """A run folder name nobody has used; created at once so no other run can take it."""
    if not _SCENARIO_NAME.fullmatch(scenario):
        raise ValueError(f"scenario name {scenario!r} must be lower-case letters, digits, - and _")
    base = base or results_dir()
    base.mkdir(parents=True, exist_ok=True)
    stem = f"{utc_stamp(now)}-{scenario}"
    for attempt in range(1, 1000):
        candidate = base / (stem if attempt == 1 else f"{stem}-{attempt}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run folder name under {base} for {stem}")


def point_latest(run_dir: Path) -> Path:
    """Atomically repoint <results>/latest at run_dir (a relative link)."""
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)
    return link


def current_marker(base: Path | None = None) -> Path:
    return (base or results_dir()) / ".current-run"


def mark_current(run_dir: Path) -> None:
    """Tell chaos scripts started by hand which run's events.jsonl to write to (and which process owns it)."""
    current_marker(run_dir.parent).write_text(f"{run_dir}\n{os.getpid()}\n")


def unmark_current(run_dir: Path) -> None:
    marker = current_marker(run_dir.parent)
    if marker.exists() and marker.read_text().split("\n")[0] == str(run_dir):
        marker.unlink()


def current_run(base: Path | None = None) -> Path | None:
    """The run in progress, or None; a marker left by a crashed run (its process gone) does not count."""
    try:
        path_text, pid_text, *_ = current_marker(base).read_text().split("\n")
        path, pid = Path(path_text), int(pid_text)
    except (OSError, ValueError):
        return None
    return path if path.is_dir() and psutil.pid_exists(pid) else None


def git_sha() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def _program_version(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return (result.stdout or result.stderr).strip().splitlines()[0] if (result.stdout or result.stderr) else "unknown"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    found["redis-server"] = _program_version(["redis-server", "--version"])
    found["nginx"] = _program_version(["nginx", "-v"])
    return found


def resolved_config(env=None) -> dict[str, str]:
    """Every setting's effective value; the password is never written down. STORE_ENGINE unset is the engine the
    state folder's stack last ran (topology.resolve_store_engine), not the registry's default."""
    from sessionproof.topology import resolve_store_engine

    resolved = {
        s.name: ("***" if s.name == "REDIS_PASSWORD" else settings.get_str(s.name, env)) for s in settings.SETTINGS
    }
    try:
        state_dir = Path(resolved["STATE_DIR"])
        resolved["STORE_ENGINE"] = resolve_store_engine(os.environ if env is None else env, REPO_ROOT / state_dir)
    except ValueError:
        pass  # a bad STORE_ENGINE is reported where the stack is made; meta.json keeps what was set
    return resolved


def host_facts() -> dict:
    return {"cores": os.cpu_count(), "platform": platform.platform(), "machine": platform.machine()}


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


class EventLog:
    """Appends events to a run's raw/events.jsonl (one JSON object per line)."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, type_: str, **fields) -> dict:
        event = {"t": time.time(), "type": type_, **fields}
        with self.path.open("a") as out:
            out.write(json.dumps(event) + "\n")
        return event


def write_report_files(out_dir: Path, lines: list[str], plot_name: str, plot) -> None:
    """A run folder's report.md and its one plot, plots/<plot_name> (written by `plot(path)`)."""
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    plot(out_dir / "plots" / plot_name)
    (out_dir / "report.md").write_text("\n".join(lines))


def folder_report_main(argv: list[str] | None, name: str, write_report) -> int:
    """The program of a `make <name>` report (`python -m sessionproof.analysis.<name>_report FOLDER`):
    FOLDER/summary.json in, `write_report(summary, FOLDER)` out; 0, or 2 when FOLDER has no readable summary."""
    parser = argparse.ArgumentParser(
        prog=f"python -m sessionproof.analysis.{name}_report",
        description=f"report.md and the plot of a `make {name}` run, from its summary.json",
    )
    parser.add_argument("folder", type=Path, metavar="FOLDER", help=f"a {name} folder, e.g. results/<UTC-time>-{name}")
    args = parser.parse_args(argv)
    try:
        summary = read_json_object(args.folder / "summary.json")
    except RunFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT_EXIT_CODE
    write_report(summary, args.folder)
    print(f"{name}: {args.folder / 'report.md'}", flush=True)
    return 0
