"""Every figure builds from small simulated inputs and saves as a valid image, atomically."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from neurovamp.analysis.alignment import alignment_matrix, condition_average  # noqa: E402
from neurovamp.analysis.decode import decode_labels, decode_over_time  # noqa: E402
from neurovamp.analysis.plots import (  # noqa: E402
    ODOR_COLORS,
    label_colors,
    plot_alignment_matrix,
    plot_confusion,
    plot_decoding_over_time,
    plot_latent_trajectories,
    plot_latents,
    plot_model_comparison,
    plot_psth_comparison,
    plot_training_curves,
    save_figure,
)
from neurovamp.errors import ConfigError, DataError, OutputExistsError  # noqa: E402

ODORS = np.array(["A", "B", "C", "D"])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _latents(animal: str, seed: int, k: int = 2, n_trials: int = 24, n_time: int = 8) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    odor = np.tile(ODORS, n_trials // 4)
    centre = 2 * np.eye(max(k, 4))[:, :k][np.searchsorted(ODORS, odor)]
    t = np.linspace(0, 0.25, n_time)
    values = centre[:, None, :] * t[None, :, None] * 4 + 0.3 * rng.normal(size=(n_trials, n_time, k))
    return xr.DataArray(
        values,
        dims=("trial", "time", "latent"),
        coords={"trial": np.arange(n_trials), "time": t, "odor": ("trial", odor)},
        attrs={"animal": animal},
    )


def _check_png(path) -> None:
    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_MAGIC
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert image[..., :3].std() > 0.01  # not a blank canvas


def test_save_figure_png_atomic_and_no_overwrite(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    out = save_figure(fig, tmp_path / "line.png", dpi=50)
    _check_png(out)
    with pytest.raises(OutputExistsError):
        save_figure(fig, out)
    save_figure(fig, out, overwrite=True, dpi=50)
    _check_png(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["line.png"]  # no temporary left behind
    pdf = save_figure(fig, tmp_path / "line.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ConfigError, match="format"):
        save_figure(fig, tmp_path / "line.jpg")


def test_label_colors_are_consistent_for_odors():
    assert label_colors(["C", "A", "A"]) == {"A": ODOR_COLORS["A"], "C": ODOR_COLORS["C"]}
    positions = label_colors(np.array([3, 1, 2, 1]))
    assert list(positions) == [1, 2, 3] and len(set(positions.values())) == 3


def test_plot_latents_2d_and_pca(tmp_path):
    lat = {"rat1": _latents("rat1", 0), "rat2": _latents("rat2", 1)}
    fig = plot_latents(lat, color_by="odor")
    assert isinstance(fig, Figure)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["rat1", "rat2"]
    # one scatter collection per odor per panel, coloured with the odor palette
    colors = {tuple(np.round(c.get_facecolor()[0][:3], 3)) for c in visible[0].collections}
    expected = {tuple(np.round(matplotlib.colors.to_rgb(ODOR_COLORS[o]), 3)) for o in ODORS}
    assert colors == expected
    _check_png(save_figure(fig, tmp_path / "latents.png", dpi=60))

    lat3 = {"rat1": _latents("rat1", 0, k=3), "rat2": _latents("rat2", 1, k=3)}
    fig = plot_latents(lat3, time_average=True)
    assert visible and fig.axes[0].get_xlabel().startswith("PC1")
    with pytest.raises(DataError, match="position"):
        plot_latents(lat, color_by="position")


def test_plot_latent_trajectories_both_modes(tmp_path):
    lat = {"rat1": _latents("rat1", 0), "rat2": _latents("rat2", 1)}
    fig = plot_latent_trajectories(lat, by="odor")
    assert len(fig.axes) == 4  # 2 latents x 2 animals
    _check_png(save_figure(fig, tmp_path / "traj_time.png", dpi=60))
    averaged = {a: condition_average(da, "odor") for a, da in lat.items()}
    fig = plot_latent_trajectories(averaged, mode="state")
    _check_png(save_figure(fig, tmp_path / "traj_state.png", dpi=60))


def test_plot_confusion_and_decoding_over_time(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(ODORS, 15)
    x = np.eye(4)[np.searchsorted(ODORS, y)] * 2 + rng.normal(size=(60, 4))
    fig = plot_confusion(decode_labels(x, y))
    assert "chance 0.25" in fig.axes[0].get_title()
    _check_png(save_figure(fig, tmp_path / "confusion.png", dpi=60))

    lat = _latents("rat1", 2, n_trials=40)
    res = decode_over_time(lat, "odor", folds=4)
    fig, ax = plt.subplots()
    assert plot_decoding_over_time({"rat1": res}, ax=ax) is fig
    chance_lines = [ln for ln in ax.lines if np.allclose(ln.get_ydata(), 0.25)]
    assert chance_lines
    _check_png(save_figure(fig, tmp_path / "over_time.png", dpi=60))


def test_plot_alignment_matrix(tmp_path):
    rng = np.random.default_rng(0)
    lat = {a: condition_average(_latents(a, s), "odor") for s, a in enumerate(("rat1", "rat2", "rat3"))}
    lat["rat3"] = lat["rat3"].copy(data=rng.normal(size=lat["rat3"].shape))
    fig = plot_alignment_matrix(alignment_matrix(lat))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("1.00") >= 3 and len(texts) == 9
    _check_png(save_figure(fig, tmp_path / "alignment.png", dpi=60))


def test_plot_psth_comparison_with_uncertainty(tmp_path):
    rng = np.random.default_rng(0)
    n_trials, n_units, n_time = 20, 5, 30
    odor = np.tile(ODORS, n_trials // 4)
    t = 0.01 * (np.arange(n_time) + 0.5)
    peak = 0.05 * (1 + np.searchsorted(ODORS, odor))[:, None, None]  # odor-specific peak time
    rates = 0.1 + 0.3 * np.exp(-((t[None, None, :] - peak) ** 2) / 0.002)
    rates = np.broadcast_to(rates, (n_trials, n_units, n_time))
    coords = {"trial": np.arange(n_trials), "unit": np.arange(n_units) + 100, "time": t, "odor": ("trial", odor)}
    real = xr.DataArray(rng.poisson(rates).astype(float), dims=("trial", "unit", "time"), coords=coords,
                        attrs={"animal": "rat2", "bin_size": 0.01})
    no_labels = {k: v for k, v in coords.items() if k != "odor"}  # imputed borrows real's labels
    imputed = xr.DataArray(rates, dims=("trial", "unit", "time"), coords=no_labels)
    fig = plot_psth_comparison(real, imputed, units=[100, 103], uncertainty=imputed * 0.2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["unit 100", "unit 103"]
    assert len(visible[0].lines) == 8  # 4 odors x (real, imputed)
    assert visible[0].get_ylabel() == "rate (Hz)"
    _check_png(save_figure(fig, tmp_path / "psth.png", dpi=60))
    with pytest.raises(DataError, match="unit"):
        plot_psth_comparison(real, imputed, units=[7])


def test_plot_training_curves(tmp_path):
    epochs = np.arange(1, 21)
    history = {
        "epoch": epochs,
        "train_loss": 100 / epochs,
        "val_loss": np.where(epochs % 2 == 0, 110 / epochs, np.nan),
        "rec": 90 / epochs,
        "reg": 10 - 5 / epochs,
    }
    fig = plot_training_curves(history)
    loss_ax, term_ax = fig.axes
    assert [ln.get_label() for ln in loss_ax.lines] == ["train_loss", "val_loss"]
    assert [ln.get_label() for ln in term_ax.lines] == ["rec", "reg"]
    assert len(loss_ax.lines[1].get_xdata()) == 10  # NaN validation epochs skipped
    _check_png(save_figure(fig, tmp_path / "training.png", dpi=60))
    with pytest.raises(DataError, match="empty"):
        plot_training_curves(pd.DataFrame())


def test_plot_model_comparison(tmp_path):
    table = pd.DataFrame(
        {
            "model": np.repeat(["mmvm", "independent", "poe"], 3),
            "seed": np.tile([0, 1, 2], 3),
            "bits_per_spike": [0.30, 0.32, 0.31, 0.20, 0.22, 0.18, 0.25, 0.27, 0.26],
        }
    )
    fig = plot_model_comparison(table)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, [0.31, 0.20, 0.26])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["mmvm", "independent", "poe"]
    _check_png(save_figure(fig, tmp_path / "models.png", dpi=60))
    with pytest.raises(ConfigError, match="metric"):
        plot_model_comparison(table.assign(psth_r2=1.0))
    with pytest.raises(DataError, match="no metric column"):
        plot_model_comparison(table, metric="co_bps")
