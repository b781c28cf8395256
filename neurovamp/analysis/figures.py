"""The standard evaluation figures of a fitted model, written into one folder.

:func:`write_figures` composes :mod:`neurovamp.analysis.plots` into the figures that
``neurovamp evaluate`` writes to ``RUN/figures/`` (and the demo reuses):

=========================  ===============================================================
``latents.png``            every animal's latents (one point per trial and sub-window),
                           coloured by the label
``trajectories.png``       condition-averaged latent trajectories against time
``confusion.png``          held-out confusion matrix of the label, one panel per animal
``decoding_over_time.png`` decoding score per sub-window time, one line per animal
``alignment.png``          animal × animal linear-alignment R²
``psth_<animal>.png``      real vs imputed (from the other animals) PSTHs of a few units
``training_curves.png``    training and validation losses (when the model has a history)
=========================  ===============================================================

Scores are taken from ``metrics`` (the output of
:func:`~neurovamp.analysis.evaluate.evaluate_model`) when given, and computed otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import xarray as xr

from neurovamp._files import atomic_output
from neurovamp.analysis.alignment import condition_average
from neurovamp.analysis.evaluate import (
    alignment_entry,
    evaluate_alignment,
    evaluate_decoding,
    evaluate_decoding_over_time,
    model_latents,
)
from neurovamp.analysis.impute import impute
from neurovamp.data.pairing import PairedData
from neurovamp.errors import ConfigError, DataError

__all__ = ["FIGURE_NAMES", "write_figures", "choose_units", "confound_note"]

#: Figures written for every run (``psth_<animal>`` come on top, one per animal).
FIGURE_NAMES = ("latents", "trajectories", "confusion", "decoding_over_time", "alignment", "training_curves")


def confound_note(label: str) -> str:
    """The caveat to print wherever ``label`` is decoded ("" when there is none).

    Parameters
    ----------
    label
        Decoded trial label.

    Returns
    -------
    str
        For ``position``: that on in-sequence trials the position fixes the odor.
    """
    if label == "position":
        return ("position is confounded with odor on in-sequence trials (odor k is presented at position k); "
                "compare out-of-sequence trials")
    return ""


def choose_units(imputed: xr.DataArray, by: str, n: int) -> list[Any]:
    """The ``n`` units whose condition-averaged imputed rate varies most across conditions.

    Parameters
    ----------
    imputed
        Imputed rates ``(trial, unit, time)`` with trial label ``by``.
    by
        Condition label.
    n
        Number of units.

    Returns
    -------
    list
        Unit ids, most condition-dependent first.
    """
    avg = condition_average(imputed, by).transpose("condition", "unit", "time")
    spread = np.nan_to_num(np.asarray(avg.values, dtype=float)).var(axis=0).mean(axis=1)
    order = np.argsort(-spread, kind="stable")[: max(1, int(n))]
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(avg["unit"].values)[order]]


def _time_results(metrics: Mapping[str, Any] | None, animals: Sequence[str], label: str) -> dict[str, Any] | None:
    if metrics is None:
        return None
    out = {}
    for animal in animals:
        entry = metrics.get("animals", {}).get(animal, {}).get("decoding_over_time", {}).get(label)
        if not entry or entry.get("score") is None:
            return None
        scores = np.asarray([np.nan if v is None else v for v in entry["score"]], dtype=float)
        std = np.asarray([np.nan if v is None else v for v in entry.get("score_std", [0.0] * scores.size)], dtype=float)
        out[animal] = SimpleNamespace(
            times=np.asarray(entry["time"], dtype=float), scores=scores, score_std=np.nan_to_num(std),
            chance=float(entry.get("chance") or 0.0), metric=entry.get("metric", "balanced_accuracy"),
        )
    return out


def _confusions(metrics: Mapping[str, Any] | None, animals: Sequence[str], label: str) -> dict[str, Any] | None:
    if metrics is None:
        return None
    out = {}
    for animal in animals:
        entry = metrics.get("animals", {}).get(animal, {}).get("decoding", {}).get(label)
        if not entry:
            return None
        if entry.get("confusion") is None:
            continue
        cm = np.asarray([[np.nan if v is None else v for v in row] for row in entry["confusion"]], dtype=float)
        out[animal] = SimpleNamespace(
            confusion=cm, classes=tuple(entry["classes"]),
            score=float(entry.get("balanced_accuracy") or 0.0), chance=float(entry.get("chance") or 0.0),
        )
    return out


def _alignment_da(metrics: Mapping[str, Any] | None) -> xr.DataArray | None:
    if metrics is None or "alignment" not in metrics:
        return None
    entry = metrics["alignment"]
    values = np.asarray([[np.nan if v is None else v for v in row] for row in entry["r2"]], dtype=float)
    animals = list(entry["animals"])
    scheme = entry.get("scheme") or ""
    if not entry.get("cross_validated", True):  # an in-sample R² of a map fits anything: not drawn
        values[~np.eye(len(animals), dtype=bool)] = np.nan
        scheme = "not cross-validated: too few points"
    return xr.DataArray(values, dims=("source", "target"), coords={"source": animals, "target": animals},
                        attrs={"scheme": scheme})


def _recorded_counts(modality: xr.DataArray, recorded: xr.DataArray | None) -> xr.DataArray | None:
    """``recorded`` restricted to ``modality``'s trials and units, or None when it lacks some."""
    if recorded is None:
        return None
    trials, units = np.asarray(modality["trial"].values), np.asarray(modality["unit"].values)
    if not (np.isin(trials, recorded["trial"].values).all() and np.isin(units, recorded["unit"].values).all()):
        return None
    return recorded.sel(trial=trials, unit=units)


def write_figures(
    model: Any,
    paired: PairedData,
    metrics: Mapping[str, Any] | None,
    out_dir: str | os.PathLike,
    *,
    label: str | None = None,
    overwrite: bool = False,
    seed: int = 0,
    n_units: int = 4,
    format: str = "png",
    smooth: float | None = 0.03,
    recorded: Mapping[str, xr.DataArray] | None = None,
) -> dict[str, Path]:
    """Write the standard evaluation figures into ``out_dir`` (atomically, as one folder).

    Parameters
    ----------
    model
        A fitted :class:`~neurovamp.models.estimator.MultiAnimalModel`.
    paired
        The :class:`~neurovamp.data.pairing.PairedData` it was trained on.
    metrics
        Output of :func:`~neurovamp.analysis.evaluate.evaluate_model` (or
        :func:`~neurovamp.analysis.evaluate.read_metrics`) to take scores from; None
        computes what the figures need.
    out_dir
        Folder to create (e.g. ``RUN/figures``).
    label
        Trial label for colours, confusion matrices and PSTH conditions (default: the
        pairing label, e.g. ``"odor"``).
    overwrite
        Replace an existing ``out_dir``.
    seed
        Seed of the point subsampling and of any decoding computed here.
    n_units
        Units per PSTH figure (the most condition-dependent imputed units).
    format
        ``"png"``, ``"pdf"`` or ``"svg"``.
    smooth
        SD in seconds of the Gaussian kernel the PSTHs are smoothed with (``None``: raw bins).
    recorded
        Animal → its recorded counts ``(trial, unit, time)`` over a longer window than the
        model's, e.g. starting before the event (``psth_recordings`` of the fit pipeline
        reads them as a run recorded them): the recorded PSTHs are drawn from
        these, so the figure shows each unit's pre-event baseline beside the imputed window.
        Default (or an animal whose trials or units differ): the paired modalities.

    Returns
    -------
    dict
        Figure name → final path.

    Raises
    ------
    OutputExistsError
        If ``out_dir`` exists and ``overwrite`` is false.
    """
    import matplotlib.pyplot as plt

    from neurovamp.analysis import plots

    if not isinstance(paired, PairedData):
        raise DataError(f"paired must be a PairedData, got {type(paired).__name__}")
    if format not in ("png", "pdf", "svg"):
        raise ConfigError(f"format must be 'png', 'pdf' or 'svg', got {format!r}")
    label = label or paired.pair_by
    out_dir = Path(out_dir)
    animals = list(paired.animals)
    latents = model_latents(model, paired)
    event = str(paired.modalities[animals[0]].attrs.get("event") or "event").replace("_", " ")
    time_axis = f"time from {event} (s)"
    model_name = str(getattr(getattr(model, "config", None), "model", "") or "model")
    written: dict[str, Path] = {}

    with atomic_output(out_dir, overwrite=overwrite, directory=True) as tmp:

        def save(name: str, fig: Any) -> None:
            try:
                plots.save_figure(fig, tmp / f"{name}.{format}", overwrite=True, format=format)
            finally:
                plt.close(fig)
            written[name] = out_dir / f"{name}.{format}"

        save("latents", plots.plot_latents(
            latents, color_by=label, max_points=3000, seed=seed,
            title=f"{model_name} latents of every trial and sub-window (first two principal components), by {label}"))
        save("trajectories", plots.plot_latent_trajectories(
            latents, by=label, xlabel=f"sub-window centre, {time_axis}",
            title=f"{model_name} latents averaged per {label}, against sub-window time"))

        confusions = _confusions(metrics, animals, label)
        if confusions is None:
            decoded = evaluate_decoding(model, paired, [label], seed=seed, latents=latents)
            confusions = _confusions({"animals": decoded}, animals, label) or {}
        if confusions:
            fig, axes = plt.subplots(1, len(confusions), figsize=(3.6 * len(confusions), 3.4),
                                     squeeze=False, layout="constrained")
            for ax, (animal, result) in zip(axes[0], confusions.items()):
                plots.plot_confusion(result, ax=ax, label=label,
                                     title=f"{animal}: bal. acc. {result.score:.2f} (chance "
                                           + (f"1/{len(result.classes)} = " if np.isclose(
                                               result.chance, 1 / max(len(result.classes), 1)) else "")
                                           + f"{result.chance:.2f})")
            fig.suptitle(f"decoding {label} from {model_name} latents (held-out trials)", fontsize=11)
            save("confusion", fig)

        over = _time_results(metrics, animals, label)
        if over is None:
            computed = evaluate_decoding_over_time(model, paired, [label], seed=seed, latents=latents)
            over = {a: r[label] for a, r in computed.items() if label in r}
        if over:
            save("decoding_over_time", plots.plot_decoding_over_time(
                over, xlabel=f"sub-window centre, {time_axis}",
                title=f"decoding {label} from {model_name} latents per sub-window (±1 SD over folds)"
                      + (confound_note(label) and "\n" + confound_note(label))))

        if len(animals) >= 2:
            matrix = _alignment_da(metrics)
            if matrix is None:
                computed = evaluate_alignment(model, paired, by=label, latents=latents)
                matrix = _alignment_da({"alignment": alignment_entry(computed)})
            save("alignment", plots.plot_alignment_matrix(
                matrix, title=f"cross-animal alignment of {model_name} latents"))
            for animal in animals:
                imputed = impute(model, paired, target=animal)
                bin_size = float(imputed.attrs["bin_size"])
                real = _recorded_counts(paired.modalities[animal], (recorded or {}).get(animal))
                if real is None:
                    real = paired.modalities[animal].assign_coords(time=np.asarray(imputed["time"].values))
                expected = (imputed["rates"] * bin_size).assign_attrs(animal=animal)
                units = choose_units(expected, label, n_units)
                levels = sorted(set(np.asarray(imputed[label].values).tolist()) | set(np.asarray(real[label].values).tolist()))
                fig = plots.plot_psth_comparison(
                    real, expected, units, by=label, uncertainty=imputed["rates_sd"] * bin_size, conditions=levels,
                    smooth=smooth, xlabel=time_axis,
                    title=f"{animal}: recorded vs imputed from the other animals (mean over trials"
                          + (f", smoothed {1000 * smooth:g} ms)" if smooth else ")"),
                )
                save(f"psth_{animal}", fig)

        history = getattr(model, "history_", None)
        if history is not None and len(history) > 0:
            columns = [c for c in history.columns if c == "epoch" or c in ("train/loss", "val/loss")]
            save("training_curves", plots.plot_training_curves(
                history[columns], title=f"{model_name} training: loss on training and validation samples"))
    return written
