"""Figures a reader understands without the text: references, signs, units, smoothing, titles."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from types import SimpleNamespace  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from neurovamp.analysis.figures import confound_note  # noqa: E402
from neurovamp.analysis.plots import (  # noqa: E402
    plot_alignment_matrix,
    plot_decoding_over_time,
    plot_model_comparison,
    plot_psth_comparison,
)
from neurovamp.errors import ConfigError  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_alignment_colours_show_negative_r2():
    da = xr.DataArray([[1.0, -0.5], [0.0, 0.5]], dims=("source", "target"),
                      coords={"source": ["a", "b"], "target": ["a", "b"]}, attrs={"scheme": "leave-one-condition-out"})
    fig = plot_alignment_matrix(da, title="t")
    ax = fig.axes[0]
    image = ax.images[0]
    rgba = image.cmap(image.norm(image.get_array()))
    negative, zero, positive = rgba[0, 1], rgba[1, 0], rgba[1, 1]
    assert not np.allclose(negative, zero)  # -0.5 is not drawn as 0
    assert negative[2] > negative[0] and positive[0] > positive[2]  # blue below 0, red above
    assert np.allclose(zero[:3], 1.0, atol=0.1)  # 0 is (nearly) white
    assert ax.get_title() == "t"
    assert "R²" in fig.axes[1].get_ylabel() and "leave-one-condition-out" in fig.axes[1].get_ylabel()


def test_decoding_over_time_labels_each_animals_chance():
    t = np.linspace(0.1, 0.9, 5)
    results = {name: SimpleNamespace(times=t, scores=np.full(5, 0.6), score_std=np.zeros(5), chance=chance,
                                     metric="balanced_accuracy")
               for name, chance in (("rat1", 0.2), ("rat2", 0.2), ("rat3", 0.25))}
    fig = plot_decoding_over_time(results, title="odor")
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert "chance rat1, rat2 (0.20)" in labels and "chance rat3 (0.25)" in labels
    levels = sorted(line.get_ydata()[0] for line in ax.lines if line.get_label().startswith("chance"))
    assert levels == [0.2, 0.25]
    assert "(s)" in ax.get_xlabel() and "balanced accuracy" in ax.get_ylabel() and ax.get_title() == "odor"


def test_model_comparison_draws_references_and_highlights_mmvm():
    table = pd.DataFrame({"model": ["mmvm", "mmvm", "independent", "independent"], "unit": ["r1", "r2"] * 2,
                          "value": [0.8, 0.7, 0.3, 0.4]})
    fig = plot_model_comparison(table, metric="value", references=[("chance r1, r2 (0.20)", 0.2),
                                                                   ("raw spike counts", 0.6)],
                                ylabel="balanced accuracy (0-1)", title="odor decoding")
    ax = fig.axes[0]
    refs = {line.get_label(): line.get_ydata()[0] for line in ax.lines if not line.get_label().startswith("_")}
    assert refs == {"chance r1, r2 (0.20)": 0.2, "raw spike counts": 0.6}
    bars = [p for p in ax.patches]
    assert len(bars) == 2 and not np.allclose(bars[0].get_facecolor(), bars[1].get_facecolor())
    assert ax.get_ylabel() == "balanced accuracy (0-1)" and ax.get_title() == "odor decoding"


def _psth_data(pre: bool):
    rng = np.random.default_rng(1)
    t = np.arange(-0.5 if pre else 0.0, 1.0, 0.02) + 0.01
    rate = 5 + 20 * np.exp(-((t - 0.3) ** 2) / 0.01) * (t > 0)
    counts = rng.poisson(np.broadcast_to(rate * 0.02, (8, 2, t.size))).astype(float)
    coords = {"trial": np.arange(8), "unit": [0, 1], "time": t, "odor": ("trial", ["A"] * 8)}
    real = xr.DataArray(counts, dims=("trial", "unit", "time"), coords=coords, attrs={"bin_size": 0.02})
    imputed = xr.DataArray(np.broadcast_to(rate * 0.02, counts.shape).copy(), dims=real.dims, coords=coords)
    return real, imputed, rate


def test_psth_smoothing_reduces_noise_and_baseline_is_the_pre_event_rate():
    real, imputed, rate = _psth_data(pre=True)
    raw = plot_psth_comparison(real, imputed, [0], smooth=None)
    smooth = plot_psth_comparison(real, imputed, [0], smooth=0.04, title="mine")
    y_raw, y_smooth = (f.axes[0].lines[0].get_ydata() for f in (raw, smooth))
    assert np.std(np.diff(y_smooth)) < 0.5 * np.std(np.diff(y_raw))
    assert smooth._suptitle.get_text() == "mine"
    ax = smooth.axes[0]
    horizontal = [line for line in ax.lines if np.ptp(line.get_ydata()) == 0 and len(line.get_xdata()) == 2
                  and line.get_xdata()[0] == 0]
    pre = real.sel(unit=0).values[:, real["time"].values < 0].mean() / 0.02
    assert any(np.isclose(line.get_ydata()[0], pre) for line in horizontal)
    assert any(np.allclose(line.get_xdata(), 0.0) for line in ax.lines)  # the event line
    with pytest.raises(ConfigError, match="smooth"):
        plot_psth_comparison(real, imputed, [0], smooth=-1)


def test_no_baseline_line_without_pre_event_bins():
    real, imputed, _ = _psth_data(pre=False)
    fig = plot_psth_comparison(real, imputed, [0])
    assert len(fig.axes[0].lines) == 2  # real and imputed only: no pre-event bins, the event is the window edge


def test_position_decoding_carries_the_confound_note():
    assert "confounded with odor" in confound_note("position")
    assert confound_note("odor") == ""
