"""The end of a load run: its steps in order, then the analysis's report as its own program, whose exit code the
run ends with (the report program itself runs here; the Locust wiring around it is the stack tests')."""

from __future__ import annotations

from run_folders import CART_AND_PING, make_run

from sessionproof.load.finish import finish_run
from sessionproof.load.runinfo import REPORT_LATER_ENV
from sessionproof.validity import SLO_BREACH_EXIT_CODE

BREACHED = [{"path": ["latency_us", "GET /cart", "p99"], "max": 1000}]


def test_the_run_ends_with_the_report_programs_exit_code_after_its_steps(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv(REPORT_LATER_ENV, raising=False)
    run_dir = tmp_path / "20261123T120000Z-bounce"
    done, said = [], []
    steps = [lambda: done.append(make_run(run_dir, CART_AND_PING, slo=BREACHED)), lambda: done.append("second")]
    started = []
    code = finish_run(run_dir, steps, said.append, started.append)
    assert code == SLO_BREACH_EXIT_CODE == 3, capfd.readouterr()
    assert done == [run_dir, "second"], "the steps did not run in order, before the report"
    assert started[0].returncode == 3, "the report's process was not handed over while it ran"
    assert (run_dir / "summary.json").is_file() and (run_dir / "report.md").is_file()
    assert (tmp_path / "latest").resolve() == run_dir.resolve()
    assert said == [f"\nsessionproof: load finished; its report: python -m sessionproof.analysis.report {run_dir}"]
    printed = capfd.readouterr().out.splitlines()
    assert printed[0].startswith("sessionproof: valid run") and printed[1].endswith(f"results in {run_dir}")
    assert printed[-1].startswith("  SLOs BREACHED (exit code 3)")


def test_a_run_an_experiment_reports_later_ends_at_its_raw_data(tmp_path, monkeypatch):
    monkeypatch.setenv(REPORT_LATER_ENV, "1")
    run_dir, said = tmp_path / "run", []
    assert finish_run(run_dir, [lambda: make_run(run_dir, CART_AND_PING)], said.append) is None
    assert (run_dir / "raw").is_dir() and not (run_dir / "summary.json").exists()
    assert said == [
        f"sessionproof: load finished; raw data in {run_dir / 'raw'} (the experiment reads back every session, "
        "then reports)"
    ]
