"""The end of a load run, in its order: the raw data, then what must come before the report, then the report.

The report is the analysis's, run as its own program (`python -m sessionproof.analysis.report RUN_DIR`):
load never imports analysis, the producer of a run's data does not depend on its consumer. The load run
ends with the report's exit code (0 ok, 3 an SLO breached, 4 an invalid run, 2 the folder cannot be
read). `make bench`, `make scale` and `make soak` end the same way, with their own report programs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import sessionproof
from sessionproof import runs
from sessionproof.load.runinfo import REPORT_LATER_ENV

ANALYSIS_PACKAGE = "sessionproof.analysis"
RUN_REPORT = "report"  # the module of ANALYSIS_PACKAGE that reports a load run
REPORT_EXIT_CODES = (0, 2, 3, 4)  # what the report says of a run; any other code: the report itself failed


def report_command(module: str, folder: Path) -> list[str]:
    return [sys.executable, "-m", f"{ANALYSIS_PACKAGE}.{module}", str(folder)]


def report_env() -> dict[str, str]:
    """This process's environment, with the sessionproof it runs first on PYTHONPATH: the report is the same code."""
    scripts_dir = str(Path(sessionproof.__file__).resolve().parents[1])
    python_path = [scripts_dir, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(python_path)}


def start_report(module: str, folder: Path, *, own_process_group: bool = False) -> subprocess.Popen:
    """`python -m sessionproof.analysis.<module> FOLDER`, started; it prints where this process prints.

    own_process_group: a Ctrl-C at the terminal does not reach it (the caller says when it stops)."""
    return subprocess.Popen(
        report_command(module, folder), env=report_env(), process_group=0 if own_process_group else None
    )


def run_report(module: str, folder: Path) -> int:
    """The report program on FOLDER, to its end: its exit code."""
    return start_report(module, folder).wait()


def summary_header(out_dir: Path, env=None) -> dict:
    """What every bench-like summary.json opens with: when, the command, the machine and the settings in force."""
    return {
        "started_at": out_dir.name.split("-")[0],
        "command": runs.command_line(),
        "machine": runs.host_facts(),
        "config": runs.resolved_config(env),
    }


def report_and_point_latest(module: str, out_dir: Path) -> int:
    """The end of `make bench`, `make scale`, `make soak` and `make power-loss`: the report, then results/latest."""
    code = run_report(module, out_dir)
    runs.point_latest(out_dir)
    return code


def finish_run(
    run_dir: Path,
    steps: Sequence[Callable[[], None]],
    say: Callable[[str], None],
    report_started: Callable[[subprocess.Popen], None] = lambda _process: None,
) -> int | None:
    """The steps in order (the raw data first), then the report: the run's exit code, or None when an experiment
    reports the run later itself (REPORT_LATER_ENV).

    report_started gets the report's process (kept from Ctrl-C: the run's first Ctrl-C lets it finish)."""
    for step in steps:
        step()
    if os.environ.get(REPORT_LATER_ENV):
        say(f"sessionproof: load finished; raw data in {run_dir / 'raw'} (the experiment reads back every session, "
            "then reports)")  # fmt: skip
        return None
    say(f"\nsessionproof: load finished; its report: python -m {ANALYSIS_PACKAGE}.{RUN_REPORT} {run_dir}")
    process = start_report(RUN_REPORT, run_dir, own_process_group=True)
    report_started(process)
    code = process.wait()
    runs.point_latest(run_dir)
    if code not in REPORT_EXIT_CODES:
        say(f"sessionproof: the report failed (exit code {code}); `make report RUN={run_dir}` writes it again")
    return code
