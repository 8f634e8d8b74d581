"""The plots of a run, inspected as matplotlib figures before they become PNGs."""

from __future__ import annotations

import math

import pytest
from run_folders import CART_AND_PING, T0_S, hist_line, make_failover_run, make_run

from sessionproof.analysis import plots
from sessionproof.analysis.rundata import load_run


@pytest.fixture
def figures(monkeypatch):
    from matplotlib.figure import Figure

    saved = []
    monkeypatch.setattr(Figure, "savefig", lambda figure, path: saved.append(figure))  # inspect, skip the PNG
    return saved


def spans(figure, label: str) -> list[tuple[float, float]]:
    return [
        (patch.get_x(), patch.get_x() + patch.get_width())
        for axes in figure.axes
        for patch in axes.patches
        if patch.get_label() == label
    ]


def test_the_fault_band_ends_where_the_heal_starts_and_the_heal_is_drawn_apart(tmp_path, figures):
    run = load_run(make_failover_run(tmp_path / "run"))
    plots.plot_errors(run, tmp_path / "errors.png")
    plots.plot_latency(run, tmp_path / "latency.png")
    errors, latency = figures
    assert spans(errors, "fault") == [(10, 18)] and spans(errors, "heal") == [(18, 20)]
    assert spans(latency, "fault") == [(10, 18)] * 3  # service, intended, throughput
    assert spans(latency, "heal") == [(18, 20)] * 3
    named = [text.get_text() for text in latency.axes[0].texts]
    assert "kill-redis-master (redis-1)" in named


def test_sentinel_failover_is_marked_once_however_many_sentinels_saw_it(tmp_path, figures):
    run = load_run(make_failover_run(tmp_path / "run"))
    assert plots.sentinel_marks(run) == [(12, "+switch-master")]  # three Sentinels within 0.4 s
    plots.plot_latency(run, tmp_path / "latency.png")
    (latency,) = figures
    legend = [text.get_text() for text in latency.axes[0].get_legend().get_texts()]
    assert "+switch-master" in legend and "two masters" in legend and "fault" in legend and "heal" in legend


def test_a_second_without_samples_is_a_gap_not_a_ramp(tmp_path, figures):
    histograms = [hist_line(T0_S + t, "GET /cart", [5000] * 10) for t in (0, 1, 4)]
    run = load_run(make_run(tmp_path / "run", histograms, duration_s=5))
    plots.plot_latency(run, tmp_path / "latency.png")
    p50 = figures[0].axes[0].lines[0]
    assert list(p50.get_xdata()) == [0.5, 1.5, 2.5, 3.5, 4.5]
    ys = list(p50.get_ydata())
    assert ys[:2] == pytest.approx([5.0, 5.0], rel=0.01) and ys[4] == pytest.approx(5.0, rel=0.01)
    assert math.isnan(ys[2]) and math.isnan(ys[3])


def test_each_endpoint_the_scenario_is_about_has_its_own_lines(tmp_path, figures):
    endpoints = ["GET /cart", "GET /ping", "POST /cart/[item]", "POST /login", "POST /logout"]
    histograms = [hist_line(T0_S, name, [1000 * (i + 1)] * 20) for i, name in enumerate(endpoints)]
    run_dir = make_run(tmp_path / "run", histograms)
    run = load_run(run_dir)
    assert plots.plotted_endpoints(run) == endpoints[:4]  # the most requested, then by name: at most four
    run.meta["scenario_config"]["latency_mix"] = {"GET /cart": 0.5, "GET /ping": 0.5}
    assert plots.plotted_endpoints(run) == ["GET /cart", "GET /ping"]
    plots.plot_latency(run, tmp_path / "latency.png")
    labels = [line.get_label() for line in figures[0].axes[0].lines]
    assert labels == ["GET /cart p50", "GET /cart p99", "GET /ping p50", "GET /ping p99"]


def test_latency_axes_are_logarithmic_with_several_labelled_ticks(tmp_path, figures):
    histograms = [hist_line(T0_S + t, "GET /cart", [2000 * (t + 1) ** 3] * 20) for t in range(5)]
    run = load_run(make_run(tmp_path / "run", histograms, duration_s=5))
    plots.plot_latency(run, tmp_path / "latency.png")
    axes = figures[0].axes[0]
    assert axes.get_yscale() == "log"
    figures[0].canvas.draw()
    labelled = [t.get_text() for t in axes.get_yticklabels() if t.get_text()]
    low, high = axes.get_ylim()
    shown = [t for t in labelled if low <= float(t) <= high]
    assert len(shown) >= 4, labelled  # 2 to 250 ms: 2, 5, 10, 20, 50, 100, 200


def test_the_percentile_plot_draws_service_against_intended_per_endpoint(tmp_path, figures):
    run = load_run(make_run(tmp_path / "run", CART_AND_PING))
    plots.plot_percentiles(run, tmp_path / "percentiles.png")
    panels = [axes for axes in figures[0].axes if axes.get_visible()]
    assert [axes.get_title() for axes in panels] == [
        "GET /cart: latency by percentile",
        "GET /ping: latency by percentile",
    ]
    cart = panels[0]
    assert [line.get_label() for line in cart.lines] == ["service (n=100)", "intended (n=100)"]
    assert cart.get_xscale() == "log"
    # 100 samples tell nothing beyond p99: the curve stops there.
    assert max(cart.lines[0].get_xdata()) == pytest.approx(plots.distribution_x(99.0))
    assert cart.lines[1].get_ydata()[-1] == pytest.approx(9.0, rel=0.01)  # intended: 9 ms


def test_every_plot_is_written_as_a_png(tmp_path):
    from sessionproof.analysis.report import build_report

    run_dir = make_failover_run(tmp_path / "run")
    build_report(run_dir)
    for name in ("latency", "errors", "percentiles", "replicas"):
        assert (run_dir / "plots" / f"{name}.png").read_bytes().startswith(b"\x89PNG"), name
