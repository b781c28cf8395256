"""Figures for latents, decoding, alignment, imputed PSTHs, training curves and model comparisons.

Every plotting function returns a :class:`matplotlib.figure.Figure`. Figures are made
with :mod:`matplotlib.pyplot`, so they display in notebooks; close them
(``plt.close(fig)``) when producing many in a loop. Single-panel functions accept
``ax=`` to draw into an existing axes (the returned figure is then that axes' figure).
:func:`save_figure` writes a figure atomically and refuses to overwrite unless asked.

Colours: odors ``A``-``E`` always get the colours of :data:`ODOR_COLORS` (Okabe-Ito
colour-blind-safe hues; ``E``, often excluded, is grey); other labels get the seaborn
``colorblind`` palette in sorted label order.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from neurovamp._files import atomic_output
from neurovamp.analysis.alignment import condition_average
from neurovamp.errors import ConfigError, DataError

__all__ = [
    "ODOR_COLORS",
    "label_colors",
    "save_figure",
    "plot_latents",
    "plot_latent_trajectories",
    "plot_confusion",
    "plot_decoding_over_time",
    "plot_alignment_matrix",
    "plot_psth_comparison",
    "plot_training_curves",
    "plot_model_comparison",
]

#: Fixed colour of each odor, shared by every figure.
ODOR_COLORS: dict[str, str] = {
    "A": "#0072B2",
    "B": "#E69F00",
    "C": "#009E73",
    "D": "#CC79A7",
    "E": "#7F7F7F",
}

_SAVE_FORMATS = ("png", "pdf", "svg")


# --------------------------------------------------------------------------- shared helpers
def label_colors(values: Sequence[Hashable] | np.ndarray) -> dict[Hashable, str]:
    """Colour of each distinct label value.

    Parameters
    ----------
    values
        Label values (repeats allowed).

    Returns
    -------
    dict
        Label (plain Python scalar) → hex colour, in sorted label order. Odor letters
        ``A``-``E`` get :data:`ODOR_COLORS` when every label is one of them.
    """
    levels = [v.item() if isinstance(v, np.generic) else v for v in np.unique(np.asarray(values))]
    if levels and all(isinstance(v, str) and v in ODOR_COLORS for v in levels):
        return {v: ODOR_COLORS[v] for v in levels}
    palette = sns.color_palette("colorblind", len(levels)) if len(levels) <= 10 else sns.color_palette(
        "viridis", len(levels)
    )
    return {v: _hex(c) for v, c in zip(levels, palette)}


def _hex(rgb: Sequence[float]) -> str:
    return "#" + "".join(f"{int(round(255 * c)):02x}" for c in rgb[:3])


def _figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        return fig, ax
    return ax.figure, ax


def _grid(n: int, ncols: int | None, panel_size: float, **kwargs: Any) -> tuple[Figure, np.ndarray]:
    ncols = min(n, 5) if ncols is None else max(1, min(int(ncols), n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(panel_size * ncols + 1.2, panel_size * nrows),
        squeeze=False,
        layout="constrained",
        **kwargs,
    )
    for extra in axes.flat[n:]:
        extra.set_visible(False)
    return fig, axes.flat[:n]


def _check_mapping(arrays: Mapping[str, Any], name: str) -> None:
    if not isinstance(arrays, Mapping) or len(arrays) == 0:
        raise DataError(f"{name} must be a non-empty mapping animal → DataArray")
    for animal, da in arrays.items():
        if not isinstance(da, xr.DataArray):
            raise DataError(f"{name}[{animal!r}] must be an xarray.DataArray, got {type(da).__name__}")


def _latent_dim(da: xr.DataArray, animal: str) -> str:
    if "latent" in da.dims:
        return "latent"
    last = da.dims[-1]
    if last in ("trial", "time", "condition"):
        raise DataError(f"latents of {animal!r} have no latent dimension (dims {tuple(da.dims)})")
    return str(last)


def _project(
    blocks: list[np.ndarray], dims: tuple[int, int] | None, projection: str
) -> tuple[list[np.ndarray], tuple[str, str]]:
    """2-D coordinates of each block of ``(n, K)`` points, plus axis labels."""
    if projection not in ("joint", "per_animal"):
        raise ConfigError(f"projection must be 'joint' or 'per_animal', got {projection!r}")
    k = blocks[0].shape[1]
    if any(b.shape[1] != k for b in blocks):
        raise DataError(f"every animal needs the same number of latents, got {[b.shape[1] for b in blocks]}")
    if dims is not None:
        i, j = (int(d) for d in dims)
        if not (0 <= i < k and 0 <= j < k and i != j):
            raise ConfigError(f"dims must be two different latent indices below {k}, got {dims!r}")
        return [b[:, [i, j]] for b in blocks], (f"latent {i}", f"latent {j}")
    if k < 2:
        raise DataError(f"2-D plots need at least 2 latent dimensions, got {k}")
    if k == 2:
        return blocks, ("latent 0", "latent 1")

    def pca(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        var = s**2
        return mean, vt[:2].T, var[:2] / var.sum()

    if projection == "joint":
        mean, basis, ratio = pca(np.concatenate(blocks))
        return [(b - mean) @ basis for b in blocks], (f"PC1 ({ratio[0]:.0%})", f"PC2 ({ratio[1]:.0%})")
    out = []
    for b in blocks:
        mean, basis, _ = pca(b)
        out.append((b - mean) @ basis)
    return out, ("PC1", "PC2")


def _legend_handles(colors: Mapping[Hashable, str], marker: str = "o") -> list[Line2D]:
    return [
        Line2D([], [], color=c, marker=marker, linestyle="none" if marker else "-", label=str(v))
        for v, c in colors.items()
    ]


# --------------------------------------------------------------------------- saving
def save_figure(
    fig: Figure,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    dpi: int = 150,
    format: Literal["png", "pdf", "svg"] | None = None,
) -> Path:
    """Write a figure atomically.

    The figure is rendered to a temporary file beside ``path`` and moved into place, so
    ``path`` is never left half-written.

    Parameters
    ----------
    fig
        The figure.
    path
        Output file.
    overwrite
        Replace an existing ``path``.
    dpi
        Resolution of raster output.
    format
        ``"png"``, ``"pdf"`` or ``"svg"``; default: the suffix of ``path``, or PNG when it
        has none.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    ConfigError
        On an unsupported format.
    """
    path = Path(path)
    fmt = format or (path.suffix[1:].lower() if path.suffix else "png")
    if fmt not in _SAVE_FORMATS:
        raise ConfigError(f"{path}: figure format must be one of {_SAVE_FORMATS}, got {fmt!r}")
    with atomic_output(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    return path


# --------------------------------------------------------------------------- latents
def _latent_points(
    da: xr.DataArray, animal: str, color_by: str | None, time_average: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    latent = _latent_dim(da, animal)
    labels = None
    if color_by is not None:
        if color_by not in da.coords:
            raise DataError(f"latents of {animal!r} have no label coordinate {color_by!r}")
    if "time" in da.dims and time_average:
        da = da.mean("time")
    sample_dims = [d for d in da.dims if d != latent]
    da = da.transpose(*sample_dims, latent)
    points = np.asarray(da, dtype=float).reshape(-1, da.sizes[latent])
    if color_by is not None:
        template = da.isel({latent: 0}, drop=True)
        labels = np.asarray(da[color_by].broadcast_like(template).transpose(*sample_dims)).reshape(-1)
    keep = np.all(np.isfinite(points), axis=1)
    return points[keep], (labels[keep] if labels is not None else None)


def plot_latents(
    latents_by_animal: Mapping[str, xr.DataArray],
    color_by: str | None = "odor",
    *,
    dims: tuple[int, int] | None = None,
    projection: Literal["joint", "per_animal"] = "joint",
    time_average: bool = False,
    max_points: int | None = 5000,
    seed: int = 0,
    point_size: float = 8.0,
    alpha: float = 0.6,
    ncols: int | None = None,
    panel_size: float = 3.0,
    title: str | None = None,
) -> Figure:
    """Scatter of each animal's latents in 2-D, coloured by a trial label.

    Parameters
    ----------
    latents_by_animal
        Animal → latents with dims ``(trial, latent)`` or ``(trial, time, latent)``
        (each (trial, time) is one point, like the paper's sub-window samples) and the
        label coordinate ``color_by`` on ``trial``.
    color_by
        Trial label that colours the points (``None``: one colour).
    dims
        Two latent indices to plot directly. Default: the latents themselves when
        ``K == 2``, otherwise the first two principal components.
    projection
        With PCA, ``"joint"`` fits one projection on all animals' points (panels share
        axes, so aligned latent spaces look alike) and ``"per_animal"`` one per animal.
    time_average
        Average over ``time`` first (one point per trial).
    max_points
        Random subsample per animal (reproducible from ``seed``); ``None`` = all.
    seed
        Seed of the subsampling.
    point_size, alpha
        Marker size and opacity.
    ncols
        Panels per row (default up to 5).
    panel_size
        Panel edge in inches.
    title
        Figure title.

    Returns
    -------
    Figure
        One panel per animal, one legend.
    """
    _check_mapping(latents_by_animal, "latents_by_animal")
    animals = list(latents_by_animal)
    rng = np.random.default_rng(seed)
    blocks, labels = [], []
    for a in animals:
        pts, lab = _latent_points(latents_by_animal[a], a, color_by, time_average)
        if max_points is not None and pts.shape[0] > max_points:
            idx = np.sort(rng.choice(pts.shape[0], size=int(max_points), replace=False))
            pts, lab = pts[idx], (lab[idx] if lab is not None else None)
        if pts.shape[0] == 0:
            raise DataError(f"latents of {a!r} have no finite point")
        blocks.append(pts)
        labels.append(lab)
    xy, (xlabel, ylabel) = _project(blocks, dims, projection)
    colors = label_colors(np.concatenate(labels)) if color_by is not None else {}
    shared = projection == "joint" or dims is not None or blocks[0].shape[1] == 2
    fig, axes = _grid(len(animals), ncols, panel_size, sharex=shared, sharey=shared)
    for ax, a, pts, lab in zip(axes, animals, xy, labels):
        if lab is None:
            ax.scatter(pts[:, 0], pts[:, 1], s=point_size, alpha=alpha, color="#333333", linewidths=0)
        else:
            for value, color in colors.items():
                sel = lab == value
                if np.any(sel):
                    ax.scatter(pts[sel, 0], pts[sel, 1], s=point_size, alpha=alpha, color=color, linewidths=0)
        ax.set_title(str(a))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    if colors:
        fig.legend(handles=_legend_handles(colors), title=color_by, loc="outside right center", frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_latent_trajectories(
    latents_by_animal: Mapping[str, xr.DataArray],
    by: str = "odor",
    *,
    mode: Literal["time", "state"] = "time",
    dims: tuple[int, int] | None = None,
    projection: Literal["joint", "per_animal"] = "joint",
    conditions: Sequence[Hashable] | None = None,
    ncols: int | None = None,
    panel_size: float = 3.0,
    title: str | None = None,
    xlabel: str = "time from event (s)",
) -> Figure:
    """Condition-averaged latent trajectories of each animal.

    Parameters
    ----------
    latents_by_animal
        Animal → latents ``(trial, time, latent)`` with trial label ``by`` (averaged with
        :func:`~neurovamp.analysis.alignment.condition_average`), or already averaged
        ``(condition, time, latent)``.
    by
        Trial label defining the conditions.
    mode
        ``"time"``: each latent dimension against time (rows = latents, columns =
        animals; a dashed line marks time 0). ``"state"``: the path through a 2-D latent
        plane (one panel per animal; circle = first time point, triangle = last).
    dims, projection
        2-D plane for ``mode="state"``, as in :func:`plot_latents`.
    conditions
        Conditions to draw, in this order (default: all).
    ncols, panel_size
        Layout, as in :func:`plot_latents` (``ncols`` applies to ``mode="state"``).
    title
        Figure title.
    xlabel
        Label of the time axis (``mode="time"``).

    Returns
    -------
    Figure
    """
    _check_mapping(latents_by_animal, "latents_by_animal")
    if mode not in ("time", "state"):
        raise ConfigError(f"mode must be 'time' or 'state', got {mode!r}")
    animals = list(latents_by_animal)
    averaged = {}
    for a in animals:
        da = latents_by_animal[a]
        if "time" not in da.dims:
            raise DataError(f"latents of {a!r} have no 'time' dimension (dims {tuple(da.dims)})")
        if "condition" not in da.dims:
            da = condition_average(da, by, conditions=conditions)
        elif conditions is not None:
            da = da.reindex(condition=list(conditions))
        latent = _latent_dim(da, a)
        averaged[a] = da.transpose("condition", "time", latent)
    all_conditions = list(dict.fromkeys(c for da in averaged.values() for c in da["condition"].values.tolist()))
    colors = label_colors(all_conditions)
    k = next(iter(averaged.values())).shape[-1]

    if mode == "time":
        fig, axes = plt.subplots(
            k,
            len(animals),
            figsize=(panel_size * len(animals) + 1.2, 0.7 * panel_size * k + 0.4),
            squeeze=False,
            sharex=True,
            sharey="row",
            layout="constrained",
        )
        for col, a in enumerate(animals):
            da = averaged[a]
            times = np.asarray(da["time"], dtype=float)
            for row in range(k):
                ax = axes[row, col]
                for ci, cond in enumerate(da["condition"].values.tolist()):
                    ax.plot(times, np.asarray(da[ci, :, row]), color=colors[cond], lw=1.5)
                if times.min() <= 0 <= times.max():
                    ax.axvline(0, color="0.5", ls="--", lw=0.8)
                if row == 0:
                    ax.set_title(str(a))
                if col == 0:
                    ax.set_ylabel(f"latent {row} (a.u.)")
                if row == k - 1:
                    ax.set_xlabel(xlabel)
    else:
        names = [a for a in animals]
        blocks = [np.asarray(averaged[a]).reshape(-1, k) for a in names]
        finite = [np.all(np.isfinite(b), axis=1) for b in blocks]
        flat, (xlabel, ylabel) = _project([b[f] for b, f in zip(blocks, finite)], dims, projection)
        fig, axes = _grid(len(names), ncols, panel_size, sharex=True, sharey=True)
        for ax, a, b, f, pts in zip(axes, names, blocks, finite, flat):
            da = averaged[a]
            full = np.full((b.shape[0], 2), np.nan)
            full[f] = pts
            full = full.reshape(da.sizes["condition"], da.sizes["time"], 2)
            for ci, cond in enumerate(da["condition"].values.tolist()):
                path = full[ci]
                if not np.any(np.isfinite(path)):
                    continue
                color = colors[cond]
                ax.plot(path[:, 0], path[:, 1], color=color, lw=1.5)
                ax.plot(path[0, 0], path[0, 1], "o", color=color, ms=5)
                ax.plot(path[-1, 0], path[-1, 1], "^", color=color, ms=6)
            ax.set_title(str(a))
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
    fig.legend(handles=_legend_handles(colors, marker=""), title=by, loc="outside right center", frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


# --------------------------------------------------------------------------- decoding
def plot_confusion(
    result: Any,
    *,
    ax: Axes | None = None,
    annotate: bool = True,
    cmap: str = "Blues",
    title: str | None = None,
    label: str | None = None,
) -> Figure:
    """Row-normalised confusion matrix of a classification result.

    Parameters
    ----------
    result
        A :class:`~neurovamp.analysis.decode.DecodingResult` (attributes ``confusion``,
        ``classes``, ``score``, ``chance``).
    ax
        Axes to draw into.
    annotate
        Write each cell's fraction.
    cmap
        Colour map (0 to 1).
    title
        Title; default: the balanced accuracy and chance level.
    label
        Name of the decoded label for the axes (e.g. ``"odor"``: "true odor").

    Returns
    -------
    Figure
    """
    confusion = getattr(result, "confusion", None)
    if confusion is None:
        raise DataError("result has no confusion matrix (regression results have none)")
    cm = np.asarray(confusion, dtype=float)
    classes = [str(c) for c in result.classes]
    fig, ax = _figure_and_axes(ax, (0.55 * len(classes) + 2.2, 0.55 * len(classes) + 1.6))
    image = ax.imshow(np.ma.masked_invalid(cm), vmin=0.0, vmax=1.0, cmap=cmap)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel(f"predicted {label}" if label else "predicted class")
    ax.set_ylabel(f"true {label}" if label else "true class")
    if annotate:
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                if np.isfinite(cm[i, j]):
                    ax.text(j, i, f"{cm[i, j]:.2f}", ha="center", va="center",
                            color="white" if cm[i, j] > 0.6 else "black", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true-class trials")
    ax.set_title(title or f"balanced acc. {result.score:.2f} (chance {result.chance:.2f})", fontsize=10)
    return fig


def plot_decoding_over_time(
    results: Any | Mapping[str, Any],
    *,
    ax: Axes | None = None,
    event_time: float | None = 0.0,
    xlabel: str = "time from event (s)",
    title: str | None = None,
) -> Figure:
    """Decoding score against time, with a ±1 SD band over folds and each line's chance level.

    Parameters
    ----------
    results
        A :class:`~neurovamp.analysis.decode.TimeDecodingResult`, or a mapping name →
        result (e.g. per animal or per model) drawn as separate lines.
    ax
        Axes to draw into.
    event_time
        Draw a vertical line here when inside the time range (``None``: none).
    xlabel
        Label of the time axis.
    title
        Figure title.

    Returns
    -------
    Figure
        Chance is drawn once per distinct level and labelled with the lines it belongs
        to (animals with different numbers of classes have different chance levels).
    """
    named = dict(results) if isinstance(results, Mapping) else {"": results}
    if not named:
        raise DataError("results is empty")
    fig, ax = _figure_and_axes(ax, (5.0, 3.2))
    palette = sns.color_palette("colorblind", max(len(named), 1))
    chances: dict[float, list[str]] = {}
    metrics = set()
    t_min, t_max = np.inf, -np.inf
    for (name, res), color in zip(named.items(), palette):
        times = np.asarray(res.times, dtype=float)
        scores = np.asarray(res.scores, dtype=float)
        std = np.asarray(res.score_std, dtype=float)
        ax.plot(times, scores, color=color, lw=1.8, label=name or None)
        ax.fill_between(times, scores - std, scores + std, color=color, alpha=0.2, linewidth=0)
        chances.setdefault(round(float(res.chance), 12), []).append(str(name))
        metrics.add(res.metric)
        t_min, t_max = min(t_min, times.min()), max(t_max, times.max())
    for chance, names in sorted(chances.items()):
        who = ", ".join(n for n in names if n)
        ax.axhline(chance, color="0.4", ls="--", lw=1,
                   label=f"chance{' ' + who if who and len(chances) > 1 else ''} ({chance:.2f})")
    if event_time is not None and t_min <= event_time <= t_max:
        ax.axvline(event_time, color="0.7", ls=":", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(" / ".join(sorted(m.replace("_", " ") for m in metrics)) + " (0-1)")
    ax.legend(frameon=False, fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


# --------------------------------------------------------------------------- alignment
def plot_alignment_matrix(
    da: xr.DataArray,
    *,
    ax: Axes | None = None,
    annotate: bool = True,
    vmin: float = -1.0,
    vmax: float = 1.0,
    cmap: str = "RdBu_r",
    title: str | None = None,
    colorbar: bool = True,
) -> Figure:
    """Heat map of a source × target alignment matrix on a diverging colour scale.

    Negative R² (the mapped latents predict worse than the target's own mean) shows in
    the colour opposite to positive R²; 0 is white.

    Parameters
    ----------
    da
        Output of :func:`~neurovamp.analysis.alignment.alignment_matrix` (dims
        ``(source, target)``).
    ax
        Axes to draw into.
    annotate
        Write each value (the true value also where it lies outside the colour range).
    vmin, vmax
        Colour range (default -1 to 1, centred on 0); values beyond it get the end colours.
    cmap
        Colour map (diverging by default).
    title
        Axes title.
    colorbar
        Draw a colour bar (off when several panels share one).

    Returns
    -------
    Figure
    """
    if not isinstance(da, xr.DataArray) or da.ndim != 2:
        raise DataError("alignment matrix must be a 2-D xarray.DataArray (source, target)")
    rows, cols = da.dims
    values = np.asarray(da, dtype=float)
    row_names = [str(v) for v in da[rows].values] if rows in da.coords else [str(i) for i in range(values.shape[0])]
    col_names = [str(v) for v in da[cols].values] if cols in da.coords else [str(i) for i in range(values.shape[1])]
    n = max(values.shape)
    fig, ax = _figure_and_axes(ax, (0.7 * n + 2.5, 0.7 * n + 1.8))
    image = ax.imshow(np.ma.masked_invalid(values), vmin=vmin, vmax=vmax, cmap=cmap)
    ax.set_xticks(range(values.shape[1]), col_names, rotation=45, ha="right")
    ax.set_yticks(range(values.shape[0]), row_names)
    ax.set_xlabel(str(cols))
    ax.set_ylabel(str(rows))
    if annotate:
        centre, half = (vmin + vmax) / 2, (vmax - vmin) / 2
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                v = values[i, j]
                dark = np.isfinite(v) and abs(v - centre) > 0.6 * half
                ax.text(j, i, "nan" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center",
                        fontsize=8, color="white" if dark else "black")
    if colorbar:
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=alignment_label(da), extend="both")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def alignment_label(da: xr.DataArray) -> str:
    """Colour-bar label of an alignment matrix: the quantity and how it was held out.

    Parameters
    ----------
    da
        Alignment matrix; its ``scheme`` attribute (e.g. ``"leave-one-condition-out"``) is named.

    Returns
    -------
    str
        E.g. ``"R² of target latents from source latents (leave-one-condition-out)"``.
    """
    label = "R² of target latents from source latents"
    if da.attrs.get("scheme"):
        label += f" ({da.attrs['scheme']})"
    return label


# --------------------------------------------------------------------------- PSTHs
def plot_psth_comparison(
    real: xr.DataArray,
    imputed: xr.DataArray,
    units: Sequence[Hashable],
    by: str = "odor",
    *,
    uncertainty: xr.DataArray | None = None,
    conditions: Sequence[Hashable] | None = None,
    in_hz: bool = True,
    ncols: int = 4,
    panel_size: float = 2.8,
    smooth: float | None = None,
    baseline: bool = True,
    event_time: float = 0.0,
    xlabel: str = "time from event (s)",
    title: str | None = None,
) -> Figure:
    """Real vs imputed condition-averaged PSTHs of chosen units.

    Parameters
    ----------
    real
        Observed counts ``(trial, unit, time)`` with trial label ``by``.
    imputed
        Imputed expected counts per bin with the same dims (e.g. generated from another
        animal). Its own ``by`` labels are used when present; otherwise it must have the
        same trials as ``real`` and borrows its labels.
    units
        Unit ids (values of the ``unit`` coordinate) to draw, one panel each.
    by
        Trial label defining the conditions (one colour each).
    uncertainty
        Optional per-trial spread of the imputed rate (e.g. SD over posterior samples),
        dims like ``imputed`` (or already ``(condition, unit, time)``); drawn as the band
        ``mean ± condition-averaged uncertainty``.
    conditions
        Conditions to draw, in this order (default: all in ``real``).
    in_hz
        Show spikes/s (divide by ``real.attrs["bin_size"]``) instead of counts per bin.
    ncols, panel_size
        Layout.
    smooth
        SD in seconds of a Gaussian kernel the averaged real and imputed PSTHs are smoothed
        with (``None`` or 0: none). Averages of a few trials are noisy; 0.02-0.05 s is typical.
    baseline
        Mark the event with a vertical line and, when the window starts before it, draw each
        unit's mean pre-event rate (all conditions) as a grey dotted line.
    event_time
        Time of the event on the ``time`` axis.
    xlabel
        Label of the time axis.
    title
        Figure title (default: ``"<animal>: real vs imputed PSTHs"`` when the data name the animal).

    Returns
    -------
    Figure
        Solid lines = real, dashed = imputed.
    """
    for name, da in (("real", real), ("imputed", imputed)):
        if not isinstance(da, xr.DataArray) or not {"trial", "unit", "time"} <= set(da.dims):
            raise DataError(f"{name} must be an xarray.DataArray with dims (trial, unit, time)")
    if by not in real.coords:
        raise DataError(f"real has no trial label {by!r}")
    if by not in imputed.coords:
        if imputed.sizes["trial"] != real.sizes["trial"]:
            raise DataError(
                f"imputed has no trial label {by!r} and {imputed.sizes['trial']} trials instead of "
                f"real's {real.sizes['trial']}; add the label coordinate"
            )
        imputed = imputed.assign_coords({by: ("trial", np.asarray(real[by]))})
    units = list(units)
    if not units:
        raise DataError("units is empty; choose at least one unit id")
    for name, da in (("real", real), ("imputed", imputed)):
        missing = [u for u in units if u not in set(np.asarray(da["unit"]).tolist())]
        if missing:
            raise DataError(f"{name} has no unit(s) {missing}")
    levels = list(conditions) if conditions is not None else np.unique(np.asarray(real[by])).tolist()
    scale = 1.0
    if in_hz:
        bin_size = real.attrs.get("bin_size")
        if not bin_size:
            raise DataError("real has no 'bin_size' attribute; pass in_hz=False to plot counts per bin")
        scale = 1.0 / float(bin_size)
    real_avg = condition_average(real.sel(unit=units), by, conditions=levels)
    imp_avg = condition_average(imputed.sel(unit=units), by, conditions=levels)
    band = None
    if uncertainty is not None:
        if not isinstance(uncertainty, xr.DataArray):
            raise DataError("uncertainty must be an xarray.DataArray")
        if "condition" in uncertainty.dims:
            band = uncertainty.sel(unit=units).reindex(condition=levels)
        else:
            if by not in uncertainty.coords:
                uncertainty = uncertainty.assign_coords({by: ("trial", np.asarray(imputed[by]))})
            band = condition_average(uncertainty.sel(unit=units), by, conditions=levels)
        band = band.transpose("condition", "unit", "time")
    colors = label_colors(levels)
    fig, axes = _grid(len(units), ncols, panel_size, sharex=True)
    t_real = np.asarray(real["time"], dtype=float)
    t_imp = np.asarray(imputed["time"], dtype=float)
    if smooth is not None and smooth < 0:
        raise ConfigError(f"smooth must be a kernel SD in seconds >= 0 (or None), got {smooth}")
    width = float(np.median(np.diff(t_real))) if t_real.size > 1 else 1.0

    def smoothed(y: np.ndarray) -> np.ndarray:
        if not smooth:
            return y
        from scipy.ndimage import gaussian_filter1d

        return gaussian_filter1d(np.asarray(y, dtype=float), sigma=smooth / width, mode="nearest")

    pre = t_real < event_time
    for ui, (ax, unit) in enumerate(zip(axes, units)):
        for ci, cond in enumerate(levels):
            color = colors[cond.item() if isinstance(cond, np.generic) else cond]
            r = smoothed(np.asarray(real_avg.transpose("condition", "unit", "time")[ci, ui]) * scale)
            m = smoothed(np.asarray(imp_avg.transpose("condition", "unit", "time")[ci, ui]) * scale)
            ax.plot(t_real, r, color=color, lw=1.6)
            ax.plot(t_imp, m, color=color, lw=1.6, ls="--")
            if band is not None:
                s = np.asarray(band[ci, ui]) * scale
                ax.fill_between(t_imp, m - s, m + s, color=color, alpha=0.18, linewidth=0)
        if baseline:
            if t_real.min() <= event_time <= t_real.max():
                ax.axvline(event_time, color="0.5", ls=":", lw=1)
            if pre.any():
                rate = float(np.nanmean(np.asarray(real.sel(unit=unit).values, dtype=float)[..., pre])) * scale
                ax.axhline(rate, color="0.5", ls=":", lw=1.2)
        ax.set_title(f"unit {unit}", fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("rate (Hz)" if in_hz else "count / bin")
    handles = _legend_handles(colors, marker="") + [
        Line2D([], [], color="0.2", ls="-", label="real"),
        Line2D([], [], color="0.2", ls="--", label="imputed"),
    ]
    if baseline and pre.any():
        handles.append(Line2D([], [], color="0.5", ls=":", label="pre-event mean"))
    fig.legend(handles=handles, title=by, loc="outside right center", frameon=False)
    animal = imputed.attrs.get("animal") or real.attrs.get("animal")
    if title or animal:
        fig.suptitle(title or f"{animal}: real vs imputed PSTHs")
    return fig


# --------------------------------------------------------------------------- training / comparison
def plot_training_curves(
    history: pd.DataFrame | Mapping[str, Sequence[float]],
    *,
    x: str = "epoch",
    log_y: bool = False,
    title: str | None = None,
    ylabel: str = "loss per sample (negative ELBO)",
) -> Figure:
    """Training history: loss columns in one panel, the other numeric columns in another.

    Parameters
    ----------
    history
        A DataFrame or a mapping column → values, e.g. ``epoch``, ``train_loss``,
        ``val_loss``, ``rec``, ``reg``. Columns whose name contains ``"loss"`` go to the
        first panel; every other numeric column (except ``x``) to the second. NaN entries
        (e.g. validation every few epochs) are skipped.
    x
        Column used as the x axis (default ``epoch``; the row number when absent).
    log_y
        Logarithmic y axes.
    title
        Figure title.
    ylabel
        Label of the loss panel's y axis (the quantity and its unit).

    Returns
    -------
    Figure
    """
    try:
        df = history if isinstance(history, pd.DataFrame) else pd.DataFrame(dict(history))
    except ValueError as err:
        raise DataError(f"history columns must have equal lengths: {err}") from None
    if df.empty:
        raise DataError("history is empty")
    xs = df[x].to_numpy(dtype=float) if x in df.columns else np.arange(1, len(df) + 1, dtype=float)
    numeric = [c for c in df.columns if c != x and pd.api.types.is_numeric_dtype(df[c])]
    loss_cols = [c for c in numeric if "loss" in str(c)]
    other_cols = [c for c in numeric if c not in loss_cols]
    panels = [p for p in (loss_cols, other_cols) if p]
    if not panels:
        raise DataError("history has no numeric column to plot")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.2), squeeze=False, layout="constrained")
    palette = sns.color_palette("colorblind", max(len(numeric), 1))
    color_of = {c: palette[i % len(palette)] for i, c in enumerate(numeric)}
    for ax, cols, panel_title in zip(axes[0], panels, ("loss" if loss_cols else "terms", "terms")):
        for c in cols:
            y = df[c].to_numpy(dtype=float)
            ok = np.isfinite(y)
            ax.plot(xs[ok], y[ok], color=color_of[c], lw=1.5, marker="o" if ok.sum() < 30 else None, ms=3, label=str(c))
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel if cols is loss_cols else "value")
        ax.set_title(panel_title, fontsize=10)
        if log_y:
            ax.set_yscale("log")
        ax.legend(frameon=False, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_model_comparison(
    table: pd.DataFrame,
    *,
    metric: str | None = None,
    model: str = "model",
    seed: str = "seed",
    hue: str | None = None,
    errorbar: Literal["sd", "sem"] = "sd",
    order: Sequence[Hashable] | None = None,
    ax: Axes | None = None,
    highlight: Hashable | None = "mmvm",
    references: Sequence[tuple[str, float]] | None = None,
    ylabel: str | None = None,
    title: str | None = None,
) -> Figure:
    """Bar plot of a metric per model: mean over seeds, error bars, one dot per seed.

    Parameters
    ----------
    table
        Long table, one row per (model, seed[, hue]) with metric columns.
    metric
        Column to plot; default: the only numeric column other than ``seed``.
    model
        Column naming the model (one bar group each).
    seed
        Column of the seed (only used to pick the default metric).
    hue
        Optional column splitting each model's bar (e.g. animal or target).
    errorbar
        ``"sd"`` (standard deviation over rows) or ``"sem"`` (standard error).
    order
        Model order (default: order of first appearance).
    ax
        Axes to draw into.
    highlight
        Model drawn in a strong colour, the others in grey (without ``hue``; ``None``: all alike).
    references
        ``(label, value)`` horizontal reference lines, e.g. chance levels or the score
        from raw spike counts; each is labelled in a legend.
    ylabel
        y-axis label, the quantity and its unit (default: the metric's name).
    title
        Axes title (default: what the error bars are).

    Returns
    -------
    Figure
    """
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise DataError("table must be a non-empty pandas DataFrame")
    for name, col in (("model", model), ("hue", hue)):
        if col is not None and col not in table.columns:
            raise DataError(f"table has no {name} column {col!r}; columns: {list(table.columns)}")
    if metric is None:
        candidates = [
            c for c in table.columns if c not in (model, seed, hue) and pd.api.types.is_numeric_dtype(table[c])
        ]
        if len(candidates) != 1:
            raise ConfigError(f"pass metric=...; numeric columns to choose from: {candidates}")
        metric = candidates[0]
    if metric not in table.columns:
        raise DataError(f"table has no metric column {metric!r}; columns: {list(table.columns)}")
    if errorbar not in ("sd", "sem"):
        raise ConfigError(f"errorbar must be 'sd' or 'sem', got {errorbar!r}")
    models = list(order) if order is not None else list(dict.fromkeys(table[model].tolist()))
    hues = [None] if hue is None else list(dict.fromkeys(table[hue].tolist()))
    hue_colors = (
        {None: sns.color_palette("colorblind", 1)[0]}
        if hue is None
        else {h: c for h, c in label_colors(hues).items()}
    )
    fig, ax = _figure_and_axes(ax, (max(3.5, 0.9 * len(models) * len(hues) + 1.5), 3.4))
    width = 0.8 / len(hues)
    rng = np.random.default_rng(0)
    for hi, h in enumerate(hues):
        offsets = np.arange(len(models)) - 0.4 + width * (hi + 0.5)
        for mi, m in enumerate(models):
            rows = table[table[model] == m] if h is None else table[(table[model] == m) & (table[hue] == h)]
            vals = rows[metric].to_numpy(dtype=float)
            vals = vals[np.isfinite(vals)]
            if vals.size == 0:
                continue
            spread = vals.std(ddof=1) if vals.size > 1 else 0.0
            if errorbar == "sem" and vals.size > 1:
                spread /= np.sqrt(vals.size)
            color = hue_colors[h.item() if isinstance(h, np.generic) else h]
            if hue is None and highlight is not None and highlight in models:
                color = "#D55E00" if m == highlight else "0.65"
            ax.bar(offsets[mi], vals.mean(), width=width * 0.9, color=color, alpha=0.75,
                   yerr=spread, capsize=3, label=str(h) if (h is not None and mi == 0) else None)
            jitter = rng.uniform(-0.15, 0.15, vals.size) * width
            ax.scatter(offsets[mi] + jitter, vals, s=12, color="black", zorder=3, linewidths=0)
    ax.set_xticks(range(len(models)), [str(m) for m in models])
    ax.set_ylabel(ylabel or str(metric).replace("_", " "))
    ax.axhline(0, color="0.6", lw=0.8)
    styles = [("--", "0.25"), (":", "#0072B2"), ("-.", "#009E73"), ((0, (1, 3)), "0.45")]
    for (name, value), (ls, color) in zip(references or (), styles * 4):
        if value is not None and np.isfinite(value):
            ax.axhline(float(value), color=color, ls=ls, lw=1.2, label=name, zorder=4)
    ax.set_title(title or f"mean ± {errorbar.upper()} over seeds", fontsize=10)
    if hue is not None or references:
        ax.legend(title=hue, frameon=False, fontsize=7)
    return fig
