"""The plots of a run, inspected as matplotlib figures before they become PNGs."""

from __future__ import annotations

from run_folders import make_failover_run

from sessionproof.analysis import plots
from sessionproof.analysis.rundata import load_run


def test_fault_periods_are_shaded_on_the_plots(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    saved = []
    monkeypatch.setattr(Figure, "savefig", lambda figure, path: saved.append(figure))  # inspect, skip the PNG
    run = load_run(make_failover_run(tmp_path / "run"))
    plots.plot_errors(run, tmp_path / "errors.png")
    plots.plot_latency(run, tmp_path / "latency.png")
    spans = [
        (patch.get_x(), patch.get_x() + patch.get_width())
        for figure in saved
        for axes in figure.axes
        for patch in axes.patches
        if patch.get_label() == "fault"
    ]
    assert spans == [(10, 20)] * 4  # the errors panel, then latency: service, intended, throughput
