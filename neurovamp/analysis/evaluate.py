"""Evaluate a fitted multi-animal model: decoding, alignment and imputation, as JSON-safe metrics.

Every function takes a fitted :class:`~neurovamp.models.estimator.MultiAnimalModel` and the
:class:`~neurovamp.data.pairing.PairedData` it was trained on (same trials and splits),
and composes the finished pure functions of :mod:`neurovamp.analysis.decode`,
:mod:`~neurovamp.analysis.alignment`, :mod:`~neurovamp.analysis.metrics` and
:mod:`~neurovamp.analysis.impute`.

Samples and splits
------------------
A *sample* is one (trial, sub-window): the model's latent mean of that sub-window, or, for
the raw reference, the spike counts of each unit summed over the sub-window. Held-out
scores train on the ``train`` trials and score the ``test`` trials (all sub-windows of a
trial stay on one side). Cross-validated scores (the paper's way) use every trial in
stratified group k-fold with the trial as the group.

Metrics (see ``DESIGN.md``)
---------------------------
decoding
    per animal and label: ``balanced_accuracy`` (held-out, latents), ``chance``,
    ``raw_balanced_accuracy`` (held-out, raw counts), ``cv_balanced_accuracy`` and
    ``raw_cv_balanced_accuracy`` (k-fold on all trials), confusion matrix. Continuous
    labels (float values that are not whole numbers) are regressed and scored by ``r2``.
shared_decoding
    one classifier for all animals: trained on the *other* animals' train-split latents,
    scored on this animal's test-split latents (``balanced_accuracy``); plus the
    all-trials leave-one-animal-out and pooled scores of
    :func:`~neurovamp.analysis.decode.decode_shared`.
alignment
    animal × animal held-out R² of a linear map between condition-averaged latent
    trajectories (:func:`~neurovamp.analysis.alignment.alignment_matrix`).
imputation
    leave-one-animal-out: each animal's test-split trials are predicted from the other
    animals' trials of the same condition (mixture of the sources' condition-mean
    predictions) and scored by ``bits_per_spike`` and ``psth_r2`` (condition-averaged,
    pooled over units and time), each beside the *generic* null (the animal's own
    train-split mean over its conditions): ``generic_bits_per_spike``,
    ``bits_per_spike_vs_generic`` and the condition-specific ``condition_specific_r`` /
    ``condition_specific_r2``; ``cross_generation_accuracy`` (cross-animal generation
    accuracy, called "coherence" in the MMVM paper and in metrics.json files before
    neurovamp 0.2): a classifier trained on the animal's real train-split activity
    (per-unit rates in a few time chunks) decodes the label of the activity generated from
    each source trial; classes the animal never experienced are left out of it.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurovamp._jsonfile import json_safe as _json_safe
from neurovamp._jsonfile import read_json, write_json
from neurovamp.analysis.alignment import alignment_matrix, condition_average, identity_alignment_matrix
from neurovamp.analysis.decode import (
    DecodingResult,
    TimeDecodingResult,
    decode_labels,
    decode_over_time,
    decode_shared,
    transfer_decode,
)
from neurovamp.analysis.impute import _source_predictions, select_trials
from neurovamp.analysis.metrics import (
    NULL_SMOOTH_S,
    bits_per_spike,
    condition_specific_score,
    generic_prediction,
    psth_r2,
    smooth_psth,
    psth_r2_by_condition,
    stacking_weights,
)
from neurovamp.data.modality import label_names
from neurovamp.data.pairing import SPLITS, PairedData
from neurovamp.errors import ConfigError, DataError, NeurovampError

__all__ = [
    "METRICS_FORMAT",
    "model_latents",
    "evaluate_decoding",
    "evaluate_decoding_over_time",
    "evaluate_alignment",
    "alignment_entry",
    "evaluate_imputation",
    "evaluate_model",
    "json_safe",
    "write_metrics",
    "read_metrics",
    "upgrade_metrics",
    "upgrade_entry",
]

#: Value of ``metrics["format"]``.
METRICS_FORMAT = "neurovamp-metrics"
METRICS_VERSION = 1
#: Time chunks of the cross-generation classifier's features (per-unit mean rate in each).
COHERENCE_CHUNKS = 3
#: Old metrics.json key → new key (``read_metrics`` maps them; evaluate writes both for now).
RENAMED_KEYS = {
    "coherence": "cross_generation_accuracy",
    "coherence_chance": "cross_generation_chance",
    "coherence_metric": "cross_generation_metric",
    "coherence_by_source": "cross_generation_by_source",
}


# --------------------------------------------------------------------------- helpers
def json_safe(value: Any) -> Any:
    """A JSON-serialisable copy: numpy → Python, NaN/inf → None, tuples → lists, other objects → text.

    :func:`neurovamp._jsonfile.json_safe` with ``default=str`` (the one numpy → JSON rule).

    Parameters
    ----------
    value
        Nested dicts, lists, numpy arrays and scalars.

    Returns
    -------
    Any
        Plain Python data that :func:`json.dumps` accepts with ``allow_nan=False``.
    """
    return _json_safe(value, default=str)


def _check_inputs(model: Any, paired: Any) -> PairedData:
    if not isinstance(paired, PairedData):
        raise DataError(f"paired must be a PairedData (from pair_trials or load_run), got {type(paired).__name__}")
    if not getattr(model, "is_fitted", False):
        raise ConfigError("the model is not fitted; fit it or load a saved model first")
    missing = [a for a in paired.animals if a not in model.animals_]
    if missing:
        raise DataError(
            f"the data hold animals {missing} the model was not fitted on; model animals: {', '.join(model.animals_)}"
        )
    return paired


def _labels_list(labels: str | Sequence[str]) -> list[str]:
    if isinstance(labels, str):
        return [labels]
    out = list(dict.fromkeys(str(label) for label in labels))
    if not out:
        raise ConfigError("labels must name at least one trial label (e.g. ['odor'])")
    return out


def _check_labels(paired: PairedData, labels: Sequence[str]) -> None:
    for animal in paired.animals:
        have = label_names(paired.modalities[animal])
        missing = [label for label in labels if label not in have]
        if missing:
            raise DataError(
                f"animal {animal!r} has no trial label {missing[0]!r}; available labels: {', '.join(have) or 'none'}"
            )


def _score_key(metric: str) -> str:
    return "balanced_accuracy" if metric == "balanced_accuracy" else "r2"


def _is_continuous(values: np.ndarray) -> bool:
    values = np.asarray(values)
    return values.dtype.kind == "f" and not np.all(np.equal(np.mod(values, 1), 0))


def _flatten(latents: xr.DataArray) -> np.ndarray:
    z = latents.transpose("trial", "time", ...)
    return np.asarray(z.values, dtype=float).reshape(z.sizes["trial"] * z.sizes["time"], -1)


def _window_sums(paired: PairedData, m: int) -> np.ndarray:
    """Raw per-sample features: each unit's counts summed over each sub-window, (trial*window, unit)."""
    counts = np.asarray(paired.counts[m], dtype=float)
    csum = np.concatenate([np.zeros(counts.shape[:2] + (1,)), np.cumsum(counts, axis=2)], axis=2)
    starts = np.asarray(paired.window_starts)
    sums = csum[:, :, starts + paired.window] - csum[:, :, starts]  # (trial, unit, window)
    return sums.transpose(0, 2, 1).reshape(-1, counts.shape[1])


def _captured(fn, *args: Any, **kwargs: Any) -> tuple[Any, list[str], str | None]:
    """Run ``fn``; return (result or None, warning texts, error text or None)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn(*args, **kwargs)
            error = None
        except NeurovampError as exc:
            result, error = None, str(exc)
    return result, [str(w.message) for w in caught], error


# --------------------------------------------------------------------------- latents
def model_latents(model: Any, paired: PairedData, *, split: str | None = None) -> dict[str, xr.DataArray]:
    """Every animal's latent means per trial and sub-window.

    Parameters
    ----------
    model
        A fitted :class:`~neurovamp.models.estimator.MultiAnimalModel`.
    paired
        The data (usually the :class:`PairedData` the model was trained on).
    split
        ``"train"``, ``"val"`` or ``"test"`` to keep one split's trials; None: all.

    Returns
    -------
    dict
        Animal → ``latents`` DataArray ``(trial, time, latent)``: ``time`` = sub-window
        centre (s), trial labels and a ``split`` trial coordinate.
    """
    paired = _check_inputs(model, paired)
    if split is not None and split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)} or None, got {split!r}")
    return {a: model.latents(paired, a, split=split) for a in paired.animals}


# --------------------------------------------------------------------------- decoding
def _decoding_one(
    z: np.ndarray, raw: np.ndarray, y: np.ndarray, groups: np.ndarray, split: np.ndarray, *, folds: int, seed: int
) -> dict[str, Any]:
    train, test = split == "train", split == "test"
    entry: dict[str, Any] = {}
    notes: list[str] = []
    if not train.any() or not test.any():
        notes.append("no train or no test trials; held-out scores are missing")
        held = raw_held = None
    else:
        held, w1, e1 = _captured(transfer_decode, z[train], y[train], z[test], y[test])
        raw_held, w2, e2 = _captured(transfer_decode, raw[train], y[train], raw[test], y[test])
        notes += w1 + w2 + [e for e in (e1, e2) if e]
    cv, w3, e3 = _captured(decode_labels, z, y, folds=folds, seed=seed, groups=groups)
    raw_cv, w4, e4 = _captured(decode_labels, raw, y, folds=folds, seed=seed, groups=groups)
    notes += w3 + w4 + [e for e in (e3, e4) if e]
    ref = held or cv or raw_held or raw_cv
    metric = ref.metric if ref is not None else ("r2" if _is_continuous(y) else "balanced_accuracy")
    key = _score_key(metric)
    entry["metric"] = metric
    entry[key] = held.score if held is not None else None
    entry["chance"] = (held or cv).chance if (held or cv) is not None else None
    entry[f"raw_{key}"] = raw_held.score if raw_held is not None else None
    entry[f"cv_{key}"] = cv.score if cv is not None else None
    entry[f"cv_{key}_std"] = cv.score_std if cv is not None else None
    entry[f"raw_cv_{key}"] = raw_cv.score if raw_cv is not None else None
    if key != "balanced_accuracy":
        entry["balanced_accuracy"] = None
    entry["n_train_samples"] = int(train.sum())
    entry["n_test_samples"] = int(test.sum())
    if held is not None and held.confusion is not None:
        entry["classes"] = list(held.classes)
        entry["confusion"] = held.confusion
        entry["accuracy"] = held.accuracy
    if cv is not None and cv.confusion is not None:
        entry["cv_classes"] = list(cv.classes)
        entry["cv_confusion"] = cv.confusion
    if notes:
        entry["notes"] = list(dict.fromkeys(notes))
    return entry


def evaluate_decoding(
    model: Any,
    paired: PairedData,
    labels: str | Sequence[str],
    *,
    seed: int = 0,
    folds: int = 5,
    latents: Mapping[str, xr.DataArray] | None = None,
) -> dict[str, dict[str, Any]]:
    """Decode trial labels from each animal's latents, alone and with one shared classifier.

    Parameters
    ----------
    model
        A fitted :class:`~neurovamp.models.estimator.MultiAnimalModel`.
    paired
        The :class:`PairedData` the model was trained on (its ``train``/``test`` split).
    labels
        Trial label(s) to decode, e.g. ``["odor", "position"]``. Float labels with
        non-integer values are regressed (ridge, R²).
    seed
        Seed of the cross-validation folds.
    folds
        Folds of the all-trials cross-validation.
    latents
        Precomputed :func:`model_latents` (all trials), to save time.

    Returns
    -------
    dict
        Animal → ``{"decoding": {label: entry}, "shared_decoding": {label: entry}}``.
        A decoding entry holds ``metric``, ``balanced_accuracy`` (held-out: trained on
        train-split samples, scored on test-split samples; ``r2`` instead for regression,
        with ``balanced_accuracy`` None), ``chance``, ``raw_balanced_accuracy`` (the same
        from raw counts), ``cv_balanced_accuracy`` (+ ``_std``) and
        ``raw_cv_balanced_accuracy`` (k-fold on all trials), sample counts, ``classes``,
        ``confusion`` (row-normalised, held-out) and ``notes`` (warnings, errors). A
        shared entry holds ``balanced_accuracy`` (classifier trained on the other animals'
        train-split latents, scored on this animal's test-split latents), ``chance``,
        ``leave_one_animal_out_all_trials`` and ``pooled_cv`` (from
        :func:`~neurovamp.analysis.decode.decode_shared`). A score that cannot be
        computed (e.g. a class with a single trial) is None with the reason in ``notes``.

    Raises
    ------
    DataError
        A label missing in an animal (lists the available labels).
    """
    paired = _check_inputs(model, paired)
    labels = _labels_list(labels)
    _check_labels(paired, labels)
    latents = dict(latents) if latents is not None else model_latents(model, paired)
    n_windows = {a: latents[a].sizes["time"] for a in paired.animals}
    feats, raws, groups, splits, ys = {}, {}, {}, {}, {}
    for m, animal in enumerate(paired.animals):
        z = latents[animal]
        w = n_windows[animal]
        feats[animal] = _flatten(z)
        raws[animal] = _window_sums(paired, m)
        if raws[animal].shape[0] != feats[animal].shape[0]:
            raise DataError(
                f"animal {animal!r}: the latents have {z.sizes['trial']} trials x {w} sub-windows but the data "
                f"{paired.counts[m].shape[0]} trials x {paired.n_windows}; pass latents of this PairedData"
            )
        groups[animal] = np.repeat(np.asarray(z["trial"].values), w)
        splits[animal] = np.repeat(np.asarray(paired.trial_split[animal]), w)
        ys[animal] = {label: np.repeat(np.asarray(z[label].values), w) for label in labels}

    out: dict[str, dict[str, Any]] = {a: {"decoding": {}, "shared_decoding": {}} for a in paired.animals}
    for animal in paired.animals:
        for label in labels:
            out[animal]["decoding"][label] = _decoding_one(
                feats[animal], raws[animal], ys[animal][label], groups[animal], splits[animal], folds=folds, seed=seed
            )
    if len(paired.animals) >= 2:
        for label in labels:
            shared, notes, error = _captured(
                decode_shared,
                feats,
                {a: ys[a][label] for a in paired.animals},
                folds=folds,
                seed=seed,
                groups_by_animal=groups,
                within=False,
            )
            for animal in paired.animals:
                others = [a for a in paired.animals if a != animal]
                x_train = np.concatenate([feats[a][splits[a] == "train"] for a in others])
                y_train = np.concatenate([ys[a][label][splits[a] == "train"] for a in others])
                test = splits[animal] == "test"
                entry: dict[str, Any] = {}
                held, w, e = (None, [], "no test trials") if not test.any() else _captured(
                    transfer_decode, x_train, y_train, feats[animal][test], ys[animal][label][test]
                )
                metric = held.metric if held is not None else (shared.metric if shared is not None else "balanced_accuracy")
                key = _score_key(metric)
                entry["metric"] = metric
                entry[key] = held.score if held is not None else None
                if key != "balanced_accuracy":
                    entry["balanced_accuracy"] = None
                entry["chance"] = held.chance if held is not None else None
                if shared is not None:
                    entry["leave_one_animal_out_all_trials"] = shared.leave_one_out[animal]
                    entry["pooled_cv"] = shared.pooled_by_animal[animal]
                all_notes = list(dict.fromkeys(notes + w + [x for x in (error, e) if x]))
                if all_notes:
                    entry["notes"] = all_notes
                out[animal]["shared_decoding"][label] = entry
    return out


def evaluate_decoding_over_time(
    model: Any,
    paired: PairedData,
    labels: str | Sequence[str],
    *,
    seed: int = 0,
    folds: int = 5,
    split: str | None = None,
    latents: Mapping[str, xr.DataArray] | None = None,
) -> dict[str, dict[str, TimeDecodingResult]]:
    """Decoding score at each sub-window time, from the per-time latent.

    Parameters
    ----------
    model, paired, labels, seed, folds
        As in :func:`evaluate_decoding`.
    split
        Trials to use (None: all), cross-validated over trials at each time.
    latents
        Precomputed :func:`model_latents` with the same ``split``.

    Returns
    -------
    dict
        Animal → label → :class:`~neurovamp.analysis.decode.TimeDecodingResult` (plot
        with :func:`~neurovamp.analysis.plots.plot_decoding_over_time`). Labels that cannot
        be decoded for an animal (e.g. a class with one trial) are left out.
    """
    paired = _check_inputs(model, paired)
    labels = _labels_list(labels)
    _check_labels(paired, labels)
    latents = dict(latents) if latents is not None else model_latents(model, paired, split=split)
    out: dict[str, dict[str, TimeDecodingResult]] = {}
    for animal in paired.animals:
        out[animal] = {}
        for label in labels:
            result, _, error = _captured(decode_over_time, latents[animal], label, folds=folds, seed=seed)
            if result is not None:
                out[animal][label] = result
    return out


def _time_result_dict(result: TimeDecodingResult) -> dict[str, Any]:
    return {
        "metric": result.metric,
        "time": result.times,
        "score": result.scores,
        "score_std": result.score_std,
        "chance": result.chance,
    }


# --------------------------------------------------------------------------- alignment
def _conditions_for(paired: PairedData, latents: Mapping[str, xr.DataArray], by: str) -> list[Hashable]:
    if by == paired.pair_by:
        return list(paired.conditions)
    values: dict[Any, None] = {}
    for z in latents.values():
        for v in np.asarray(z[by].values).tolist():
            values.setdefault(v, None)
    try:
        return sorted(values)
    except TypeError:
        return list(values)


def evaluate_alignment(
    model: Any,
    paired: PairedData,
    *,
    by: str = "odor",
    split: str | None = None,
    latents: Mapping[str, xr.DataArray] | None = None,
) -> xr.DataArray:
    """Cross-animal alignment: R² of linear maps between condition-averaged latent trajectories.

    Parameters
    ----------
    model, paired
        As in :func:`evaluate_decoding`.
    by
        Trial label defining the conditions (e.g. ``"odor"``).
    split
        Trials averaged (None: all).
    latents
        Precomputed :func:`model_latents` with the same ``split``.

    Returns
    -------
    xarray.DataArray
        ``alignment_r2`` with dims ``(source, target)`` (see
        :func:`~neurovamp.analysis.alignment.alignment_matrix`): held-out
        (leave-one-condition-out) R² where possible, in-sample otherwise (attribute
        ``cross_validated``); conditions an animal lacks are dropped pairwise. Attribute
        ``by`` names the label; ``identity_r2`` (numpy array, same layout) the map-free
        R² of :func:`~neurovamp.analysis.alignment.identity_alignment_matrix` when the
        animals' latents have the same size.
    """
    paired = _check_inputs(model, paired)
    _check_labels(paired, [by])
    latents = dict(latents) if latents is not None else model_latents(model, paired, split=split)
    conditions = _conditions_for(paired, latents, by)
    trajectories = {a: condition_average(latents[a], by, conditions=conditions) for a in paired.animals}
    matrix = alignment_matrix(trajectories, cv="auto")
    matrix.attrs["by"] = by
    try:
        identity = identity_alignment_matrix(trajectories)
        matrix.attrs["identity_r2"] = np.asarray(identity.values, dtype=float)
    except DataError:  # latent sizes differ: no identity map
        pass
    return matrix


def alignment_entry(matrix: xr.DataArray) -> dict[str, Any]:
    """JSON entry of an alignment matrix (``metrics["alignment"]``); ``mean_r2`` only for held-out scores.

    An in-sample R² (too few condition x time points for a held-out map, e.g. whole-trial
    windows with few conditions) can reach 1 for any latents, so it is kept in ``r2``
    (flagged by ``cross_validated``) but not summarised.
    """
    values = np.asarray(matrix.values, dtype=float)
    off = values[~np.eye(values.shape[0], dtype=bool)]
    off = off[np.isfinite(off)]
    held_out = bool(matrix.attrs.get("cross_validated", 0))
    entry = {
        "by": matrix.attrs.get("by"),
        "animals": [str(a) for a in matrix["source"].values],
        "r2": values,
        "mean_r2": float(off.mean()) if off.size and held_out else None,
        "cross_validated": held_out,
        "scheme": matrix.attrs.get("scheme"),
    }
    if "identity_r2" in matrix.attrs:
        identity = np.asarray(matrix.attrs["identity_r2"], dtype=float)
        off_id = identity[~np.eye(identity.shape[0], dtype=bool)]
        off_id = off_id[np.isfinite(off_id)]
        entry["identity_r2"] = identity
        entry["identity_mean_r2"] = float(off_id.mean()) if off_id.size else None
    if not held_out:
        entry["note"] = (
            "too few condition x time points for a held-out linear map (use sub-windows or more conditions); "
            "r2 is in-sample and not summarised"
        )
    return entry


_alignment_dict = alignment_entry  # the name used before 0.2


# --------------------------------------------------------------------------- imputation
def _chunk_features(values: np.ndarray, n_chunks: int) -> np.ndarray:
    """(trial, unit, time) → (trial, unit * chunks): mean per unit in contiguous time chunks."""
    n_bins = values.shape[2]
    edges = np.linspace(0, n_bins, min(n_chunks, n_bins) + 1).round().astype(int)
    chunks = [values[:, :, lo:hi].mean(axis=2) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]
    return np.stack(chunks, axis=2).reshape(values.shape[0], -1)


def _imputation_one(
    model: Any, paired: PairedData, target: str, *, split: str, source_split: str | None, label: str
) -> dict[str, Any]:
    mods = {a: paired.modalities[a] for a in paired.animals}
    sources = [a for a in paired.animals if a != target]
    t = paired.animals.index(target)
    bin_size = paired.bin_size
    entry: dict[str, Any] = {"split": split, "source_split": source_split or "all", "sources": sources, "label": label}
    rows = select_trials(mods[target], {}, paired.trial_split[target], split)
    if rows.size == 0:
        entry.update(bits_per_spike=None, psth_r2=None, cross_generation_accuracy=None,
                     notes=[f"{target!r} has no {split!r} trials"])
        return _with_old_keys(entry)
    preds = _source_predictions(model, mods, paired, target, sources, {}, source_split, None)
    target_labels = np.asarray(mods[target][label].values)[rows]
    observed = np.asarray(paired.counts[t], dtype=float)[rows]  # (trial, unit, time)

    # condition means of each source's predictions, mixed over sources (expected counts per bin)
    levels = list(dict.fromkeys(target_labels.tolist()))
    by_source = _condition_means_by_source(preds, label, levels, bin_size)
    cond_mean = _mix_sources(by_source, levels)
    scored = np.array([lab in cond_mean for lab in target_labels.tolist()])
    notes: list[str] = []
    if not scored.all():
        skipped = sorted({str(v) for v, ok in zip(target_labels.tolist(), scored) if not ok})
        notes.append(f"no source trial of {label}={', '.join(skipped)}; {int((~scored).sum())} trials not scored")
    entry["n_trials"] = int(scored.sum())
    if not scored.any():
        entry.update(bits_per_spike=None, psth_r2=None)
    else:
        pred_counts = np.stack([cond_mean[lab] for lab in target_labels[scored].tolist()])
        obs = observed[scored]
        valid = np.all(np.isfinite(pred_counts), axis=(0, 1))
        pred_counts, obs = pred_counts[:, :, valid], obs[:, :, valid]
        labs = target_labels[scored]
        bps, w1, e1 = _captured(bits_per_spike, pred_counts, obs)
        r2, w2, e2 = _captured(psth_r2, pred_counts, obs, labs)
        by_cond, _, _ = _captured(psth_r2_by_condition, pred_counts, obs, labs)
        notes += w1 + w2 + [e for e in (e1, e2) if e]
        entry["bits_per_spike"] = bps
        entry["psth_r2"] = r2
        entry["psth_r2_by_condition"] = by_cond
        # reference: the animal's own train-split condition means (PSTHs) as the prediction
        train_rows = select_trials(mods[target], {}, paired.trial_split[target], "train")
        train_labels = np.asarray(mods[target][label].values)[train_rows]
        train_counts = np.asarray(paired.counts[t], dtype=float)[train_rows][:, :, valid]
        sigma = NULL_SMOOTH_S / paired.bin_size
        own = {lev: smooth_psth(train_counts[train_labels == lev].mean(axis=0), sigma) for lev in set(labs.tolist())
               if np.any(train_labels == lev)}
        if len(own) == len(set(labs.tolist())):
            ref = np.stack([own[lab] for lab in labs.tolist()])
            entry["own_psth_bits_per_spike"], _, _ = _captured(bits_per_spike, ref, obs)
        generic = generic_prediction(train_counts, train_labels, sigma_bins=sigma) if train_rows.size else None
        entry.update(_generic_scores(pred_counts, obs, labs, generic, notes))
        entry.update(_weighted_scores(model, mods, paired, target, label, by_source, labs, obs, valid, generic, notes))

    # cross-animal generation accuracy: classifier trained on real train-split activity of the target
    train_rows = select_trials(mods[target], {}, paired.trial_split[target], "train")
    train_y = np.asarray(mods[target][label].values)[train_rows]
    first = next(iter(preds.values()))
    valid_t = np.all(np.isfinite(first.values), axis=(0, 1))
    train_x = _chunk_features(np.asarray(paired.counts[t], dtype=float)[train_rows][:, :, valid_t], COHERENCE_CHUNKS)
    known = set(train_y.tolist())
    xs, ys, by_source = [], [], {}
    for source, pred in preds.items():
        y = np.asarray(pred[label].values)
        keep = np.array([v in known for v in y.tolist()], dtype=bool)
        if not keep.any():
            continue
        x = _chunk_features(pred.values[keep][:, :, valid_t] * bin_size, COHERENCE_CHUNKS)
        xs.append(x)
        ys.append(y[keep])
        res, _, _ = _captured(transfer_decode, train_x, train_y, x, y[keep])
        by_source[source] = res.score if res is not None else None
    if xs:
        res, w3, e3 = _captured(transfer_decode, train_x, train_y, np.concatenate(xs), np.concatenate(ys))
        notes += w3 + ([e3] if e3 else [])
        entry["cross_generation_accuracy"] = res.score if res is not None else None
        entry["cross_generation_chance"] = res.chance if res is not None else None
        entry["cross_generation_metric"] = res.metric if res is not None else None
    else:
        entry["cross_generation_accuracy"] = None
        notes.append(f"no generated trial of a {label} value {target!r} was trained on")
    entry["cross_generation_by_source"] = by_source
    if notes:
        entry["notes"] = list(dict.fromkeys(notes))
    return _with_old_keys(entry)


def _condition_means_by_source(preds: Mapping[str, xr.DataArray], label: str, levels: Sequence[Any],
                               bin_size: float) -> dict[str, dict[Any, np.ndarray]]:
    """Each source's predictions averaged per condition: source -> level -> ``(unit, time)`` expected counts."""
    out: dict[str, dict[Any, np.ndarray]] = {}
    for source, pred in preds.items():
        values = np.asarray(pred[label].values)
        out[source] = {level: pred.values[values == level].mean(axis=0) * bin_size
                       for level in levels if np.any(values == level)}
    return out


def _mix_sources(by_source: Mapping[str, Mapping[Any, np.ndarray]], levels: Sequence[Any],
                 weights: Mapping[str, float] | None = None, generic: np.ndarray | None = None,
                 generic_weight: float = 0.0) -> dict[Any, np.ndarray]:
    """Per condition, the mixture of the sources that have it: equal weights, or ``weights``
    (and ``generic`` with ``generic_weight``) renormalised over what the condition has."""
    mixed: dict[Any, np.ndarray] = {}
    for level in levels:
        have = [s for s, means in by_source.items() if level in means]
        if not have:
            continue
        stack = np.stack([by_source[s][level] for s in have])
        if weights is None:
            mixed[level] = stack.mean(axis=0)
            continue
        w = np.array([weights[s] for s in have])
        if generic is not None and generic_weight > 0:
            stack = np.concatenate([stack, generic[None]])
            w = np.append(w, generic_weight)
        if w.sum() > 0:
            mixed[level] = np.tensordot(w / w.sum(), stack, axes=1)
    return mixed


def _weighted_scores(
    model: Any, mods: Mapping[str, xr.DataArray], paired: PairedData, target: str, label: str,
    by_source: Mapping[str, Mapping[Any, np.ndarray]], labs: np.ndarray, obs: np.ndarray, valid: np.ndarray,
    generic: np.ndarray | None, notes: list[str],
) -> dict[str, Any]:
    """The imputation stacked on the target's *validation* trials: sources and the generic prediction weighted.

    On the validation split (trials neither the weights' scores nor the model's test scores
    use), each source's validation trials are mapped to the target and averaged per
    condition; with the target's generic prediction (``generic``, ``(unit, valid bin)``
    expected counts: its smoothed train-split mean over conditions) as one more component,
    :func:`~neurovamp.analysis.metrics.stacking_weights` finds the mixture that best
    predicts the target's validation trials. The scored trials are then predicted by the
    sources' condition means (``by_source``) and the generic prediction mixed with those
    weights (renormalised over the sources that have the trial's condition).
    """
    none = {"bits_per_spike_weighted": None, "source_weights": None, "generic_weight": None}
    if len(by_source) < 2 and generic is None:
        return none
    t = paired.animals.index(target)
    rows = select_trials(mods[target], {}, paired.trial_split[target], "val")
    if rows.size == 0:
        notes.append(f"{target!r} has no 'val' trials: no validation weights of the sources")
        return none
    val_labels = np.asarray(mods[target][label].values)[rows]
    levels = list(dict.fromkeys(val_labels.tolist()))
    try:
        preds = _source_predictions(model, mods, paired, target, list(by_source), {}, "val", None)
    except DataError as exc:
        notes.append(f"no validation weights of the sources: {exc}")
        return none
    val_means = _condition_means_by_source(preds, label, levels, paired.bin_size)
    names = [s for s in by_source if s in val_means]
    keep = np.array([all(lab in val_means[s] for s in names) for lab in val_labels.tolist()])
    if len(names) + (generic is not None) < 2 or not names or not keep.any():
        notes.append("no validation trial of a condition every source has: no validation weights of the sources")
        return none
    stack = np.stack([np.stack([val_means[s][lab] for lab in val_labels[keep].tolist()]) for s in names])[..., valid]
    val_obs = np.asarray(paired.counts[t], dtype=float)[rows][keep][..., valid]
    if generic is not None:
        stack = np.concatenate([stack, np.broadcast_to(generic, val_obs.shape)[None]])
    ok = np.all(np.isfinite(stack), axis=(0, 1, 2))
    fitted = stacking_weights(stack[..., ok], val_obs[..., ok]).tolist()
    weights = dict(zip(names, fitted))
    generic_weight = fitted[-1] if generic is not None else None
    mixed = _mix_sources({s: by_source[s] for s in names}, list(dict.fromkeys(labs.tolist())), weights,
                         generic=None if generic is None else _full_bins(generic, valid), generic_weight=generic_weight or 0.0)
    out = {"bits_per_spike_weighted": None, "source_weights": weights, "generic_weight": generic_weight}
    if not all(lab in mixed for lab in labs.tolist()):
        return out
    pred = np.stack([mixed[lab] for lab in labs.tolist()])[:, :, valid]
    bps, w, e = _captured(bits_per_spike, pred, obs)
    notes += w + ([e] if e else [])
    out["bits_per_spike_weighted"] = bps
    return out


def _full_bins(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(unit, valid bin)`` values put back on every bin (NaN where ``valid`` is False)."""
    full = np.full(values.shape[:-1] + valid.shape, np.nan)
    full[..., valid] = values
    return full


def _with_old_keys(entry: dict[str, Any]) -> dict[str, Any]:
    """Add the pre-0.2 ``coherence*`` aliases of the ``cross_generation*`` keys (deprecated)."""
    for old, new in RENAMED_KEYS.items():
        if new in entry:
            entry[old] = entry[new]
    return entry


def _generic_scores(
    pred: np.ndarray, obs: np.ndarray, labels: np.ndarray, generic: np.ndarray | None, notes: list[str],
) -> dict[str, Any]:
    """Scores of an imputation beside the generic null (the animal's train-split mean over conditions).

    ``pred`` and ``obs`` are ``(trial, unit, time)`` expected counts / counts of the scored
    trials, ``labels`` their conditions, ``generic`` the generic prediction ``(unit, time)``
    (:func:`~neurovamp.analysis.metrics.generic_prediction`, smoothed by
    :data:`~neurovamp.analysis.metrics.NULL_SMOOTH_S` in ``evaluate`` so that it is a fair
    null on sparse counts; None without train-split trials). The condition-specific score
    compares each condition's imputed mean and held-out PSTH with the generic prediction, pooled.
    """
    if generic is None:
        notes.append("no train-split trial of the target: no generic null")
        return {"generic_bits_per_spike": None, "bits_per_spike_vs_generic": None,
                "condition_specific_r": None, "condition_specific_r2": None}
    flat_generic = np.broadcast_to(generic, obs.shape)
    out: dict[str, Any] = {}
    out["generic_bits_per_spike"], _, _ = _captured(bits_per_spike, flat_generic, obs)
    out["bits_per_spike_vs_generic"], _, _ = _captured(bits_per_spike, pred, obs, null_rates=flat_generic)
    levels = list(dict.fromkeys(labels.tolist()))
    sel = [labels == lev for lev in levels]
    imputed = np.stack([pred[m].mean(axis=0) for m in sel])
    held_out = np.stack([obs[m].mean(axis=0) for m in sel])
    score, _, err = _captured(condition_specific_score, imputed, held_out, generic)
    if err:
        notes.append(err)
    out["condition_specific_r"] = score["r"] if score else None
    out["condition_specific_r2"] = score["r2"] if score else None
    return out


def evaluate_imputation(
    model: Any,
    paired: PairedData,
    *,
    split: str = "test",
    label: str = "odor",
    seed: int = 0,
    source_split: str | None = "same",
    animals: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Leave-one-animal-out imputation of every animal's held-out trials from the others.

    For target animal ``t`` and each condition (value of ``label``) of its ``split``
    trials, the other animals' trials of that condition are mapped to ``t`` and averaged
    (per source, then over sources: the mixture); every held-out trial of ``t`` is
    predicted by its condition's imputed mean (the animals were not recorded together, so
    only the condition is shared).

    Parameters
    ----------
    model
        A fitted :class:`~neurovamp.models.estimator.MultiAnimalModel`.
    paired
        The :class:`PairedData` the model was trained on.
    split
        Target trials scored (default the held-out ``"test"`` split).
    label
        Condition label (e.g. ``"odor"``).
    seed
        Unused (the evaluation is deterministic); kept for a uniform signature.
    source_split
        Source trials used: ``"same"`` (default: the same split as the target), a split
        name, or None for every source trial.
    animals
        Targets to evaluate (default: every animal).

    Returns
    -------
    dict
        Animal → ``bits_per_spike`` (Poisson, vs each unit's flat mean rate over the
        scored trials, :func:`~neurovamp.analysis.metrics.bits_per_spike` on expected
        counts per bin), ``psth_r2`` (condition-averaged, pooled),
        ``psth_r2_by_condition``, ``own_psth_bits_per_spike`` (reference: the animal's own (smoothed)
        train-split PSTHs as the prediction), ``generic_bits_per_spike`` (the animal's
        train-split mean over its conditions, :func:`~neurovamp.analysis.metrics.generic_prediction`,
        as the prediction, vs flat), ``bits_per_spike_vs_generic`` (the imputation with that
        generic prediction as the null), ``condition_specific_r`` / ``condition_specific_r2``
        (:func:`~neurovamp.analysis.metrics.condition_specific_score` of each condition's
        imputed mean against its held-out PSTH, relative to the generic prediction, pooled),
        ``cross_generation_accuracy`` (balanced accuracy of a classifier trained on the
        animal's real train-split activity, applied to the activity generated from each
        source trial; classes the animal never experienced are left out; alias
        ``coherence``), ``cross_generation_chance``, ``cross_generation_by_source``,
        ``bits_per_spike_weighted``, ``source_weights`` and ``generic_weight`` (the
        imputation stacked: the sources and the animal's generic prediction mixed by
        weights fitted on the animal's validation trials,
        :func:`~neurovamp.analysis.metrics.stacking_weights`; the weights sum to 1; None
        without validation trials), ``n_trials``, ``sources`` and ``notes``.
    """
    del seed
    paired = _check_inputs(model, paired)
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if source_split == "same":
        source_split = split
    elif source_split is not None and source_split not in SPLITS:
        raise ConfigError(f"source_split must be 'same', one of {', '.join(SPLITS)} or None, got {source_split!r}")
    _check_labels(paired, [label])
    if len(paired.animals) < 2:
        raise DataError("imputation needs at least two animals")
    targets = list(paired.animals) if animals is None else list(animals)
    for a in targets:
        if a not in paired.animals:
            raise DataError(f"unknown animal {a!r}; known animals: {', '.join(paired.animals)}")
    out = {}
    for target in targets:
        try:
            out[target] = _imputation_one(model, paired, target, split=split, source_split=source_split, label=label)
        except DataError as exc:
            out[target] = _with_old_keys({"bits_per_spike": None, "psth_r2": None, "cross_generation_accuracy": None,
                                          "notes": [str(exc)]})
    return out


# --------------------------------------------------------------------------- everything
def _mean(values: Sequence[Any]) -> float | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(finite)) if finite else None


def evaluate_model(
    model: Any,
    paired: PairedData,
    *,
    labels: str | Sequence[str] | None = None,
    seed: int = 0,
    folds: int = 5,
    over_time: bool = True,
    alignment_by: str | None = None,
) -> dict[str, Any]:
    """All metrics of a fitted model, as the JSON-safe dictionary written to ``metrics.json``.

    Parameters
    ----------
    model
        A fitted :class:`~neurovamp.models.estimator.MultiAnimalModel`.
    paired
        The :class:`PairedData` the model was trained on.
    labels
        Trial labels to decode (default: the pairing label, e.g. ``["odor"]``).
    seed
        Seed of the cross-validation folds.
    folds
        Folds of the cross-validated scores.
    over_time
        Also decode at every sub-window time (``decoding_over_time`` per animal).
    alignment_by
        Label of the alignment conditions and the imputation (default: the pairing label).

    Returns
    -------
    dict
        The stable schema (more keys may be added)::

            {"format": "neurovamp-metrics", "version": 1,
             "model": "mmvm", "labels": [...], "seed": 0,
             "animals": {"<animal>": {
                 "decoding": {"<label>": {"balanced_accuracy", "chance", "raw_balanced_accuracy", ...}},
                 "shared_decoding": {"<label>": {"balanced_accuracy", ...}},
                 "imputation": {"bits_per_spike", "psth_r2", "cross_generation_accuracy",
                                "generic_bits_per_spike", "bits_per_spike_vs_generic",
                                "condition_specific_r", "condition_specific_r2",
                                "bits_per_spike_weighted", "source_weights", "generic_weight", ...},
                 "decoding_over_time": {"<label>": {"time", "score", "chance", ...}},
                 "trials": {"train": n, "val": n, "test": n}}},
             "alignment": {"animals": [...], "r2": [[...]], "by", "mean_r2", "cross_validated",
                           "identity_r2", "identity_mean_r2", ...},
             "summary": {"alignment_r2", "bits_per_spike", "psth_r2", "cross_generation_accuracy",
                         "generic_bits_per_spike", "bits_per_spike_vs_generic", "bits_per_spike_weighted",
                         "condition_specific_r",
                         "balanced_accuracy": {label: mean}, "shared_balanced_accuracy": {...}}}

        NaN is written as None. ``coherence`` (animals' imputation and summary) is the
        deprecated alias of ``cross_generation_accuracy``.
    """
    paired = _check_inputs(model, paired)
    labels = _labels_list(labels if labels is not None else [paired.pair_by])
    by = alignment_by or paired.pair_by
    _check_labels(paired, list(dict.fromkeys([*labels, by])))
    latents = model_latents(model, paired)
    decoding = evaluate_decoding(model, paired, labels, seed=seed, folds=folds, latents=latents)
    alignment = evaluate_alignment(model, paired, by=by, latents=latents)
    imputation = evaluate_imputation(model, paired, split="test", label=by, seed=seed)
    over = evaluate_decoding_over_time(model, paired, labels, seed=seed, folds=folds, latents=latents) if over_time else {}
    counts = paired.trial_counts()
    animals_out: dict[str, Any] = {}
    for animal in paired.animals:
        entry = {
            "decoding": decoding[animal]["decoding"],
            "shared_decoding": decoding[animal]["shared_decoding"],
            "imputation": imputation[animal],
            "trials": counts[animal],
        }
        if over_time:
            entry["decoding_over_time"] = {label: _time_result_dict(r) for label, r in over[animal].items()}
        animals_out[animal] = entry
    summary = {
        "alignment_r2": alignment_entry(alignment)["mean_r2"],
        "bits_per_spike": _mean([imputation[a].get("bits_per_spike") for a in paired.animals]),
        "psth_r2": _mean([imputation[a].get("psth_r2") for a in paired.animals]),
        "cross_generation_accuracy": _mean([imputation[a].get("cross_generation_accuracy") for a in paired.animals]),
        "generic_bits_per_spike": _mean([imputation[a].get("generic_bits_per_spike") for a in paired.animals]),
        "bits_per_spike_vs_generic": _mean([imputation[a].get("bits_per_spike_vs_generic") for a in paired.animals]),
        "bits_per_spike_weighted": _mean([imputation[a].get("bits_per_spike_weighted") for a in paired.animals]),
        "condition_specific_r": _mean([imputation[a].get("condition_specific_r") for a in paired.animals]),
        "balanced_accuracy": {
            label: _mean([decoding[a]["decoding"][label].get("balanced_accuracy") for a in paired.animals])
            for label in labels
        },
        "raw_balanced_accuracy": {
            label: _mean([decoding[a]["decoding"][label].get("raw_balanced_accuracy") for a in paired.animals])
            for label in labels
        },
        "shared_balanced_accuracy": {
            label: _mean([decoding[a]["shared_decoding"].get(label, {}).get("balanced_accuracy")
                          for a in paired.animals])
            for label in labels
        },
    }
    summary["coherence"] = summary["cross_generation_accuracy"]  # deprecated alias (pre-0.2 name)
    import neurovamp

    metrics = {
        "format": METRICS_FORMAT,
        "version": METRICS_VERSION,
        "neurovamp_version": neurovamp.__version__,
        "model": model.config.model,
        "labels": labels,
        "seed": seed,
        "folds": folds,
        "pair_by": paired.pair_by,
        "animals": animals_out,
        "alignment": alignment_entry(alignment),
        "summary": summary,
    }
    return json_safe(metrics)


# --------------------------------------------------------------------------- files
def write_metrics(metrics: Mapping[str, Any], path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write metrics as JSON, atomically.

    Parameters
    ----------
    metrics
        Output of :func:`evaluate_model` (NaN and numpy values are converted).
    path
        Output file (``metrics.json``).
    overwrite
        Replace an existing file.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    if not isinstance(metrics, Mapping):
        raise DataError(f"metrics must be a mapping (from evaluate_model), got {type(metrics).__name__}")
    return write_json(path, metrics, overwrite=overwrite, default=str)


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """Read a metrics file written by :func:`write_metrics`.

    Parameters
    ----------
    path
        The JSON file.

    Returns
    -------
    dict
        The metrics.

    Raises
    ------
    DataError
        If the file is missing, not JSON or not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: metrics file not found (write it with `neurovamp evaluate RUN`)")
    data = read_json(path, what="metrics file (from `neurovamp evaluate RUN`)")
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of metrics, got {type(data).__name__}")
    return upgrade_metrics(data)


def upgrade_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Give metrics written by an older neurovamp the current key names (in place).

    ``coherence`` (and ``coherence_chance``, ``coherence_metric``, ``coherence_by_source``)
    of every animal's ``imputation`` and of ``summary`` are copied to their new names
    (:data:`RENAMED_KEYS`: ``cross_generation_accuracy`` etc.) where those are absent; the
    old keys stay.

    Parameters
    ----------
    metrics
        Parsed metrics.json.

    Returns
    -------
    dict
        ``metrics``.
    """
    entries = [metrics.get("summary")]
    animals = metrics.get("animals")
    if isinstance(animals, dict):
        entries += [a.get("imputation") for a in animals.values() if isinstance(a, dict)]
    for entry in entries:
        upgrade_entry(entry)
    return metrics


def upgrade_entry(entry: Any) -> Any:
    """Copy the old keys of one dict (:data:`RENAMED_KEYS`) to their new names where absent (in place).

    Parameters
    ----------
    entry
        A dict of scores (e.g. an animal's ``imputation``); anything else is left alone.

    Returns
    -------
    Any
        ``entry``.
    """
    if isinstance(entry, dict):
        for old, new in RENAMED_KEYS.items():
            if old in entry and new not in entry:
                entry[new] = entry[old]
    return entry
