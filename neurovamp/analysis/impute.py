"""Impute one animal's activity from the other animals' real activity.

The key use of a multi-animal model: predict what animal ``target`` would do in a
condition from the recordings of the *other* animals (the sources) in that condition,
including a condition the target never experienced (a rat never given odor E).

How a prediction is made
------------------------
Every selected source trial is encoded with the source's encoder (posterior mean per
sub-window) and decoded with the target's decoder, through
:meth:`neurovamp.models.estimator.MultiAnimalModel.generate`; overlapping sub-windows are
averaged per bin. This gives one predicted rate trace per *source trial*. Predictions
are then combined over sources:

``combine="mixture"``
    the arithmetic mean of the sources' predicted rates (the mixture of the unimodal
    conditional generations, as in the MMVM VAE);
``combine="geometric"``
    the geometric mean (mean of log-rates), a product-of-experts flavour for rates.

Samples
-------
:func:`impute` returns one row per *sample*, a set of source trials of one condition
(one trial per source at most):

* for a :class:`~neurovamp.data.pairing.PairedData`, the data's own pairs (of ``split``, or
  of every split in the order train, val, test), keeping the pairs in which at least one
  source trial matches ``condition``; a source whose paired trial does not match counts as
  missing in that pair. With ``strategy="index"`` (animals recorded together) a pair is
  one trial id, so ``target_trial`` names the target's real trial of the same id.
* for an :class:`xarray.DataTree`, the source trials matching ``condition`` are paired by
  condition value (``pair_by``) with :func:`~neurovamp.data.pairing.pair_trials`
  (``strategy="resample"``: the largest source sets the number of samples, smaller ones
  are drawn with replacement, balanced, so every trial is used).

:func:`impute_condition_mean` averages *every* selected source trial instead (not only
the paired ones) and is what the ``neurovamp impute`` command writes.

Posterior uncertainty (``n_samples``)
-------------------------------------
``rates`` decodes each source trial's posterior *mean* latent. With ``n_samples=K > 0``
(default 0: outputs exactly as without the option), :func:`impute` and
:func:`impute_condition_mean` also propagate the model's own uncertainty about the
latent: K latents per sub-window are drawn from each source trial's posterior q(z | x)
(:meth:`~neurovamp.models.estimator.MultiAnimalModel.generate` with ``n_samples``), every
draw is pushed through exactly the same averaging and ``combine`` as ``rates`` (draw k of
every trial together), and the K resulting imputed rates give

``rates_lo``, ``rates_hi``
    the equal-tailed posterior credible interval at ``level`` (default 0.95: the 2.5 %
    and 97.5 % quantiles over the draws), same dims as ``rates``, in Hz;
``rates_posterior_mean``
    the mean over the draws, E_q[rate]. For a nonlinear decoder or link it differs from
    ``rates`` (Jensen: with the exp link it is larger), and the interval is centred on
    it, not on ``rates``.

Dataset attributes ``n_samples``, ``credible_level`` and ``sample_seed`` record the
settings. Draws of different trials are independent, so the interval of
:func:`impute_condition_mean` (a mean over many trials) is narrower than a single trial's
and narrows as trials are added; the trial-to-trial spread stays in ``rates_sd``. Its
ends are Monte-Carlo estimates: use a few hundred draws for a 95 % interval.

What the band of the condition mean means
-----------------------------------------
The posterior over the latent alone says nothing about model misfit: averaged over dozens
of source trials it shrinks to a fraction of a hertz, while the imputation's real error
is dominated by what the decoder gets wrong, and in simulation such a band covers the
true rate in a few percent of the bins. :func:`impute_condition_mean` therefore returns,
when the data hold the target's own trials of conditions the sources also have,

``rates_lo``, ``rates_hi``
    a *predictive band for the target's expected rate* in the condition: the ``level``
    quantiles of posterior draws plus a model-error term. The model error of each unit is
    measured on the target's experienced conditions (excluding the imputed ones): each is
    imputed from the same sources exactly like the requested one and compared with the
    target's real PSTH there; the mean squared difference, minus the PSTH's own sampling
    variance (trial variance / trials), is the unit's error variance ``σ_u²``
    (``rates_model_error_sd``, Hz). Every posterior draw gets an independent
    ``N(0, σ_u²)`` error per bin (clipped at 0 Hz) before the quantiles are taken. The
    band says: "the true rate of this unit in this condition lies here with probability
    ``level``, if the model errs on the imputed condition as much as on the experienced
    ones". A condition far from every experienced one may be imputed worse: the band is
    then too narrow (measure it in simulation, ``benchmarks/impute_truth.py``);
``rates_posterior_lo``, ``rates_posterior_hi``
    the latent-posterior-only band (what ``rates_lo``/``rates_hi`` held before neurovamp
    0.2), a lower bound on the uncertainty.

Without such trials ``rates_lo``/``rates_hi`` are the posterior-only band; attribute
``band`` says which (``"predictive"`` or ``"posterior"``).

The calibrated band: model error out of sample (``band="predictive-loco"``)
---------------------------------------------------------------------------
The error measured on the experienced conditions is *in-sample* (the model was trained
on them) and several times smaller than the error on a condition the target never had:
in simulation that band covers the truth about 60 % of the time where 95 % is asked.
Given leave-one-condition-out results (``model_error=``, from
:func:`neurovamp.analysis.loco.leave_condition_out`, which ``neurovamp evaluate RUN
--leave-condition-out`` writes and ``neurovamp impute`` picks up), the model error is
measured *out of sample*: each experienced condition was hidden from the target, the
model refitted, the condition imputed from the sources like the requested one and
compared with the target's real trials of it. The error variance is pooled over the
target's units and held-out conditions and scaled by the imputed rate bin by bin,
``σ²(u, t) = k · max(rate(u, t), 0.1 Hz)``
(:mod:`neurovamp.analysis.calibration`, which gives the reasons); ``rates_model_error_sd``
is then ``(unit, time)``. The band says: "the true rate lies here with probability
``level``, if the model errs on the imputed condition as it erred on conditions it never
saw for this animal" (``benchmarks/impute_truth.py`` measures its coverage against
simulated truth). :func:`impute` (per sample)
returns the posterior-only band. Memory:
:func:`impute` keeps every source's draws of the selected trials (float32,
``4 * K * trials * units * bins`` bytes per source) and combines them in blocks of
about 64 MB; :func:`impute_condition_mean` draws trials in blocks of about 64 MB and keeps
only their running sum.

Units: rates are returned in **Hz** (expected spikes per second: expected count per bin
divided by the bin size); :mod:`neurovamp.analysis.metrics` wants expected counts per
bin (multiply by ``attrs["bin_size"]``). The ``time`` coordinate holds bin centres in
seconds from the alignment event (the data's ``time_from_event`` when the bins were
re-labelled by :func:`~neurovamp.data.pairing.select_window`). Every bin gets a
prediction: the model decodes the sub-windows at every offset, whatever the training
stride (see :mod:`neurovamp.data.subwindows`).
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from neurovamp._jsonfile import json_safe
from neurovamp.analysis.metrics import NULL_SMOOTH_S, generic_prediction
from neurovamp.data.dataset import animals as tree_animals
from neurovamp.data.dataset import get_modality, make_dataset
from neurovamp.data.labels import coerce_label_value, label_kind, matches, plain, sorted_values
from neurovamp.data.modality import label_names
from neurovamp.data.pairing import SPLITS, PairedData, pair_trials
from neurovamp.errors import ConfigError, DataError

__all__ = ["COMBINES", "impute", "impute_condition_mean", "generic_rates", "source_predictions", "select_trials"]

#: Ways to combine the predictions of several sources.
COMBINES: tuple[str, ...] = ("mixture", "geometric")

_LOG_EPS = 1e-6  # Hz, floor of the geometric mean's logarithm
_DRAW_BUDGET = 2**24  # values per block of posterior draws (64 MB as float32)


# --------------------------------------------------------------------------- input handling
def _data_modalities(data: Any) -> tuple[dict[str, xr.DataArray], PairedData | None]:
    """``{animal: modality}`` of the data and the PairedData itself (or None)."""
    if isinstance(data, PairedData):
        return {a: data.modalities[a] for a in data.animals}, data
    if isinstance(data, xr.DataTree):
        names = tree_animals(data)
        if not names:
            raise DataError("the DataTree has no animal nodes; expected one child node per animal")
        return {str(a): get_modality(data, a) for a in names}, None
    raise DataError(
        f"data must be a PairedData (from pair_trials) or a multi-animal xarray.DataTree, got {type(data).__name__}"
    )


def _model_animals(model: Any) -> tuple[str, ...]:
    animals = tuple(getattr(model, "animals_", ()) or ())
    if not getattr(model, "is_fitted", False) or not animals:
        raise ConfigError("the model is not fitted; fit it or load a saved model first")
    return animals


def _check_animal(animal: Any, known: Sequence[str], what: str = "animal") -> str:
    if animal not in known:
        raise DataError(f"unknown {what} {animal!r}; known animals: {', '.join(known)}")
    return str(animal)


def _resolve_sources(
    model_animals: Sequence[str], data_animals: Sequence[str], target: str, sources: Sequence[str] | None
) -> list[str]:
    if sources is None:
        chosen = [a for a in data_animals if a != target and a in model_animals]
        if not chosen:
            raise DataError(
                f"no source animal: the data hold {list(data_animals)}, the model knows {list(model_animals)} "
                f"and the target is {target!r}"
            )
        return chosen
    if isinstance(sources, str):
        sources = [sources]
    chosen = []
    for source in sources:
        _check_animal(source, model_animals, "source animal")
        if source not in data_animals:
            raise DataError(f"source animal {source!r} is not in the data; the data hold {', '.join(data_animals)}")
        if source not in chosen:
            chosen.append(str(source))
    if not chosen:
        raise ConfigError("sources must name at least one animal (or be None for every other animal)")
    return chosen


def _resolve_condition(
    condition: Mapping[str, Any] | None, mods: Mapping[str, xr.DataArray], sources: Sequence[str]
) -> dict[str, list[Any]]:
    """Check labels and values of ``condition`` against the data; values typed like the labels."""
    if condition is None:
        return {}
    if not isinstance(condition, Mapping):
        raise ConfigError(f"condition must be a mapping label -> value(s), e.g. {{'odor': 'E'}}, got {condition!r}")
    resolved: dict[str, list[Any]] = {}
    for label, wanted in condition.items():
        label = str(label)
        missing = [s for s in sources if label not in label_names(mods[s])]
        if missing:
            available = sorted(set.intersection(*(set(label_names(mods[s])) for s in sources)))
            raise DataError(
                f"unknown condition column {label!r} (missing in {', '.join(missing)}); "
                f"available labels: {', '.join(available) or 'none'}"
            )
        every = np.concatenate([np.asarray(mods[a][label].values) for a in mods if label in label_names(mods[a])])
        wanted_list = list(wanted) if isinstance(wanted, (list, tuple, set, frozenset, np.ndarray)) else [wanted]
        if not wanted_list:
            raise ConfigError(f"condition {label!r} lists no value")
        typed = [coerce_label_value(v, label_kind(every), label, error=DataError) for v in wanted_list]
        known = sorted_values(every.tolist())
        for value, text in zip(typed, wanted_list):
            if not matches(every, [value]).any():
                raise DataError(
                    f"unknown value {text!r} of condition column {label!r}; values in the data: "
                    f"{', '.join(map(str, known))}"
                )
        source_values = np.concatenate([np.asarray(mods[s][label].values) for s in sources])
        if not matches(source_values, typed).any():
            present = sorted_values(source_values.tolist())
            raise DataError(
                f"no source animal ({', '.join(sources)}) has trials with {label}={', '.join(map(str, wanted_list))}; "
                f"their values: {', '.join(map(str, present))}"
            )
        resolved[label] = typed
    return resolved


def select_trials(
    modality: xr.DataArray,
    condition: Mapping[str, Sequence[Any]],
    split_of: np.ndarray | None = None,
    split: str | None = None,
) -> np.ndarray:
    """Rows of a modality whose labels match ``condition`` (and whose split is ``split``).

    Parameters
    ----------
    modality
        One animal's modality.
    condition
        Label → allowed values (already typed like the labels).
    split_of
        Split of every row (``PairedData.trial_split[animal]``), or None.
    split
        Split to keep, or None for every row.

    Returns
    -------
    numpy.ndarray
        Row indices (int64), in data order.
    """
    keep = np.ones(modality.sizes["trial"], dtype=bool)
    for label, allowed in condition.items():
        keep &= matches(np.asarray(modality[label].values), list(allowed))
    if split is not None and split_of is not None:
        keep &= np.asarray(split_of) == split
    return np.flatnonzero(keep)


def _check_split(split: str | None, paired: PairedData | None) -> str | None:
    if split is None:
        return None
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)} or None, got {split!r}")
    if paired is None:
        raise ConfigError("split applies to PairedData input only (a DataTree has no train/val/test split)")
    return split


def _check_combine(combine: str) -> str:
    if combine not in COMBINES:
        raise ConfigError(f"combine must be one of {', '.join(COMBINES)}, got {combine!r}")
    return combine


def _combine(stack: np.ndarray, combine: str, axis: int = 0) -> np.ndarray:
    if combine == "geometric":
        return np.exp(np.log(np.maximum(stack, _LOG_EPS)).mean(axis=axis))
    return stack.mean(axis=axis)


def _check_sampling(n_samples: Any, level: Any, seed: Any) -> tuple[int, float]:
    """Validate the posterior-band options; return ``n_samples`` and ``level``."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 0 or n_samples == 1:
        raise ConfigError(
            f"n_samples must be 0 (no credible band) or an integer >= 2 (posterior draws), got {n_samples!r}"
        )
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 < float(level) < 1.0:
        raise ConfigError(f"level must be a number strictly between 0 and 1 (e.g. 0.95), got {level!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    return int(n_samples), float(level)


def _draw_seed(seed: int, *keys: int) -> int:
    """Independent seed of the posterior draws of one source (and chunk), from ``seed``."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def _band(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed ``level`` interval over the first axis (NaN where the draws are NaN)."""
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(draws, [tail, 1.0 - tail], axis=0)
    return lo, hi


def _combine_present(stack: np.ndarray, present: np.ndarray, combine: str) -> np.ndarray:
    """Combine ``stack`` ``(source, K, sample, ...)`` over the sources present per sample.

    ``present`` is ``(source, sample)`` bool; rows of absent sources are ignored (any
    finite filler).
    """
    weight = present.reshape(present.shape[:1] + (1,) + present.shape[1:] + (1,) * (stack.ndim - 3))
    count = present.sum(axis=0).reshape((1,) + present.shape[1:] + (1,) * (stack.ndim - 3))
    if combine == "geometric":
        return np.exp(np.where(weight, np.log(np.maximum(stack, _LOG_EPS)), 0.0).sum(axis=0) / count)
    return np.where(weight, stack, 0.0).sum(axis=0) / count


def _band_variables(
    lo: np.ndarray, hi: np.ndarray, mean: np.ndarray, dims: tuple[str, ...], level: float
) -> dict[str, xr.DataArray]:
    """``rates_lo``, ``rates_hi`` and ``rates_posterior_mean`` DataArrays (Hz)."""
    pct = f"{100 * level:g} %"
    return {
        "rates_lo": xr.DataArray(lo, dims=dims, attrs={
            "units": "Hz", "credible_level": level,
            "long_name": f"lower end of the {pct} posterior credible interval of the imputed rate"}),
        "rates_hi": xr.DataArray(hi, dims=dims, attrs={
            "units": "Hz", "credible_level": level,
            "long_name": f"upper end of the {pct} posterior credible interval of the imputed rate"}),
        "rates_posterior_mean": xr.DataArray(mean, dims=dims, attrs={
            "units": "Hz", "long_name": "posterior mean of the imputed rate (mean over posterior draws)"}),
    }


def _band_attrs(n_samples: int, level: float, seed: int) -> dict[str, Any]:
    return {"n_samples": n_samples, "credible_level": level, "sample_seed": seed}


# --------------------------------------------------------------------------- predictions
def source_predictions(
    model: Any,
    data: PairedData | xr.DataTree,
    *,
    target: str,
    sources: Sequence[str] | None = None,
    condition: Mapping[str, Any] | None = None,
    split: str | None = None,
) -> dict[str, xr.DataArray]:
    """Target rates (Hz) predicted from every selected trial of each source.

    Parameters
    ----------
    model
        A fitted :class:`~neurovamp.models.estimator.MultiAnimalModel`.
    data
        :class:`~neurovamp.data.pairing.PairedData` or a multi-animal DataTree.
    target
        Animal to predict.
    sources
        Source animals (default: every other animal of the data the model knows).
    condition
        Label → value or list of values selecting source trials, e.g. ``{"odor": "E"}``;
        text values are converted to the label's type (``"3"`` → 3). None: every trial.
    split
        ``"train"``, ``"val"`` or ``"test"`` to keep that split's trials (PairedData only).

    Returns
    -------
    dict
        Source → ``rates`` DataArray ``(trial, unit, time)`` in Hz with the source's trial
        ids and labels, the target's units and ``time`` in seconds from the event. Sources
        without any selected trial are left out.

    Raises
    ------
    DataError
        Unknown target/source (lists the known animals), unknown condition column or
        value (lists what exists), no selected trial.
    ConfigError
        Invalid ``split``, unfitted model.
    """
    mods, paired, sources, resolved, split = _prepare(model, data, target, sources, condition, split)
    return _source_predictions(model, mods, paired, target, sources, resolved, split, condition)


def _source_predictions(
    model: Any, mods: Mapping[str, xr.DataArray], paired: PairedData | None, target: str,
    sources: Sequence[str], resolved: Mapping[str, list[Any]], split: str | None, condition: Any,
) -> dict[str, xr.DataArray]:
    preds = {}
    for source in sources:
        rows = _selected_rows(mods, paired, source, resolved, split)
        if rows.size:
            preds[source] = _generate_hz(model, mods[source].isel(trial=rows), source, target)
    if not preds:
        raise DataError(_nothing_selected(sources, condition, split))
    return preds


def _selected_rows(
    mods: Mapping[str, xr.DataArray], paired: PairedData | None, source: str,
    resolved: Mapping[str, list[Any]], split: str | None,
) -> np.ndarray:
    """Rows of ``source``'s modality matching the condition (and split)."""
    split_of = paired.trial_split[source] if paired is not None else None
    return select_trials(mods[source], resolved, split_of, split)


def _nothing_selected(sources: Sequence[str], condition: Mapping[str, Any] | None, split: str | None) -> str:
    what = ", ".join(f"{k}={v}" for k, v in (condition or {}).items()) or "any condition"
    where = f" in split {split!r}" if split else ""
    return f"no trial of the source animals ({', '.join(sources)}) with {what}{where}"


def _prepare(
    model: Any,
    data: Any,
    target: str,
    sources: Sequence[str] | None,
    condition: Mapping[str, Any] | None,
    split: str | None,
) -> tuple[dict[str, xr.DataArray], PairedData | None, list[str], dict[str, list[Any]], str | None]:
    known = _model_animals(model)
    mods, paired = _data_modalities(data)
    target = _check_animal(target, known, "target animal")
    split = _check_split(split, paired)
    chosen = _resolve_sources(known, list(mods), target, sources)
    resolved = _resolve_condition(condition, mods, chosen)
    return mods, paired, chosen, resolved, split


def _generate_hz(
    model: Any, modality: xr.DataArray, source: str, target: str, n_samples: int = 0, seed: int = 0
) -> xr.DataArray:
    """``model.generate`` in Hz with ``time`` in seconds from the event.

    With ``n_samples > 0``: posterior draws, dims ``(sample, trial, unit, time)``.
    """
    if n_samples:
        expected = model.generate(modality, source, target, n_samples=n_samples, seed=seed)
    else:
        expected = model.generate(modality, source, target)
    bin_size = float(expected.attrs.get("bin_size") or modality.attrs["bin_size"])
    if n_samples:  # posterior draws stay float32: there are K of them per trial
        rates = expected / np.float32(bin_size)
    else:
        rates = expected.astype(np.float64) / bin_size
    if "time_from_event" in rates.coords and rates["time_from_event"].dims == ("time",):
        rates = rates.assign_coords(time=np.asarray(rates["time_from_event"].values, dtype=float)).drop_vars(
            "time_from_event"
        )
    rates.name = "rates"
    rates.attrs = {
        "units": "Hz",
        "animal": target,
        "source": source,
        "bin_size": bin_size,
        "model": str(expected.attrs.get("model", "")),
    }
    return rates


def _shared_labels(mods: Mapping[str, xr.DataArray], animals: Sequence[str]) -> list[str]:
    names = [label_names(mods[a]) for a in animals]
    return [n for n in names[0] if all(n in other for other in names[1:])]


def _unit_coords(pred: xr.DataArray) -> dict[str, Any]:
    coords: dict[str, Any] = {"unit": pred["unit"].values}
    for name, coord in pred.coords.items():
        if name != "unit" and coord.dims == ("unit",):
            coords[name] = ("unit", coord.values)
    coords["time"] = ("time", np.asarray(pred["time"].values, dtype=float), {"units": "s", "long_name": "bin centre from the event"})
    return coords


def _attrs(model: Any, target: str, sources: Sequence[str], condition: Mapping[str, list[Any]], split: str | None,
           combine: str, bin_size: float) -> dict[str, Any]:
    return {
        "units": "Hz",
        "target": target,
        "sources": ",".join(sources),
        "condition": json.dumps(json_safe({k: list(vals) for k, vals in condition.items()}, default=str)),
        "split": split or "all",
        "combine": combine,
        "bin_size": float(bin_size),
        "model": str(getattr(getattr(model, "config", None), "model", "")),
    }


# --------------------------------------------------------------------------- pairing
def _paired_samples(
    paired: PairedData, sources: Sequence[str], target: str, selected: Mapping[str, np.ndarray], split: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows per sample and source (``-1`` = missing), target rows and sample splits."""
    columns = [paired.animals.index(s) for s in sources]
    t_col = paired.animals.index(target) if target in paired.animals else None
    rows, target_rows, splits = [], [], []
    for s in ([split] if split is not None else list(SPLITS)):
        pairs = np.asarray(paired.epoch_pairs(s, 0))
        if pairs.shape[0] == 0:
            continue
        block = pairs[:, columns].copy()
        for j, source in enumerate(sources):
            ok = np.isin(block[:, j], selected[source])
            block[~ok, j] = -1
        keep = (block >= 0).any(axis=1)
        rows.append(block[keep])
        target_rows.append(pairs[keep, t_col] if t_col is not None else np.full(int(keep.sum()), -1))
        splits.append(np.full(int(keep.sum()), s, dtype="<U5"))
    if not rows:
        return np.empty((0, len(sources)), dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0, dtype="<U5")
    return np.concatenate(rows), np.concatenate(target_rows), np.concatenate(splits)


def _tree_samples(
    mods: Mapping[str, xr.DataArray], sources: Sequence[str], selected: Mapping[str, np.ndarray],
    pair_by: str, seed: int,
) -> np.ndarray:
    """Pair the selected source trials by ``pair_by`` (resample strategy, one split)."""
    present = [s for s in sources if selected[s].size]
    sub = make_dataset([mods[s].isel(trial=selected[s]) for s in present])
    sub_paired = pair_trials(sub, by=pair_by, strategy="resample", split=(1.0, 0.0, 0.0), seed=seed)
    pairs = np.asarray(sub_paired.pairs["train"])
    rows = np.full((pairs.shape[0], len(sources)), -1, dtype=np.int64)
    for j, source in enumerate(sources):
        if source in present:
            k = present.index(source)
            ok = pairs[:, k] >= 0
            rows[ok, j] = selected[source][pairs[ok, k]]
    return rows


# --------------------------------------------------------------------------- posterior draws
def _trial_chunk(n_samples: int, modality: xr.DataArray, n_units: int) -> int:
    """Trials per block of draws so that a block holds about ``_DRAW_BUDGET`` values."""
    return max(1, _DRAW_BUDGET // (n_samples * n_units * modality.sizes["time"]))


def _mean_draws(
    model: Any, modality: xr.DataArray, source: str, target: str, n_units: int, n_samples: int, seed: int
) -> np.ndarray:
    """Per draw, the target's rates (Hz) averaged over the trials of ``modality``: ``(K, unit, time)``.

    Trials are drawn in blocks (seeded by ``seed`` and the block number) to bound memory.
    """
    n_trials = modality.sizes["trial"]
    step = _trial_chunk(n_samples, modality, n_units)
    total = None
    for block, lo in enumerate(range(0, n_trials, step)):
        part = modality.isel(trial=slice(lo, lo + step))
        draws = _generate_hz(model, part, source, target, n_samples, _draw_seed(seed, block)).values
        block_sum = draws.astype(np.float64).sum(axis=1)
        total = block_sum if total is None else total + block_sum
    return total / n_trials


def _sample_band(
    draws: Mapping[str, np.ndarray], position: Mapping[str, np.ndarray], rows: np.ndarray,
    sources: Sequence[str], combine: str, level: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Credible band and posterior mean of every sample's combined rate.

    ``draws[source]`` is ``(K, n_used, unit, time)`` for the source's used trials and
    ``position[source]`` maps a data row to its index there. Samples are processed in
    blocks to bound memory. Returns ``lo``, ``hi`` and the mean, each ``(sample, unit, time)``.
    """
    first = next(iter(draws.values()))
    k, shape = first.shape[0], first.shape[2:]
    n = rows.shape[0]
    lo, hi, mean = (np.empty((n,) + shape) for _ in range(3))
    step = max(1, _DRAW_BUDGET // (k * int(np.prod(shape)) * len(sources)))
    for a in range(0, n, step):
        block = rows[a : a + step]
        present = (block >= 0).T  # (source, sample)
        stack = np.zeros((len(sources), k, block.shape[0]) + shape, dtype=np.float32)
        for j, source in enumerate(sources):
            has = present[j]
            if has.any():
                stack[j][:, has] = draws[source][:, position[source][block[has, j]]]
        combined = _combine_present(stack, present, combine)  # (K, sample, unit, time)
        lo[a : a + step], hi[a : a + step] = _band(combined, level)
        mean[a : a + step] = combined.mean(axis=0)
    return lo, hi, mean


# --------------------------------------------------------------------------- generic null
def generic_rates(
    modality: xr.DataArray, label: str | None, *, exclude: Mapping[str, Sequence[Any]] | None = None,
    rows: np.ndarray | None = None,
) -> xr.DataArray:
    """An animal's generic prediction in Hz: its mean response over the conditions it has.

    Every condition (value of ``label``) of the animal's trials is averaged, then the
    conditions are averaged with equal weight
    (:func:`~neurovamp.analysis.metrics.generic_prediction`) and smoothed in time by
    :data:`~neurovamp.analysis.metrics.NULL_SMOOTH_S` (as ``evaluate``'s and ``loco``'s
    generic null, so that it is a fair null on sparse counts); trials matching ``exclude``
    (the condition being imputed) are left out. It is the null an imputation must beat to
    add information: what the animal does on average, whatever the condition.

    Parameters
    ----------
    modality
        The animal's counts ``(trial, unit, time)``.
    label
        Condition label (e.g. ``"odor"``); None: the plain mean over trials.
    exclude
        Label → values whose trials are left out (typed like the labels).
    rows
        Rows of ``modality`` to use (default: all).

    Returns
    -------
    xarray.DataArray
        ``rates_generic`` ``(unit, time)`` in Hz.

    Raises
    ------
    DataError
        If no trial remains.
    """
    keep = np.arange(modality.sizes["trial"]) if rows is None else np.asarray(rows)
    if exclude:
        matched = select_trials(modality.isel(trial=keep), exclude)
        keep = np.delete(keep, matched)
    if keep.size == 0:
        raise DataError(f"animal {modality.attrs.get('animal', '?')!r} has no trial outside the imputed condition")
    da = modality.isel(trial=keep).transpose("trial", "unit", "time")
    labels = np.asarray(da[label].values) if label is not None else np.zeros(keep.size)
    bin_size = float(modality.attrs["bin_size"])
    hz = generic_prediction(np.asarray(da.values, dtype=float), labels, sigma_bins=NULL_SMOOTH_S / bin_size) / bin_size
    return xr.DataArray(hz, dims=("unit", "time"), name="rates_generic", attrs={
        "units": "Hz", "long_name": "generic prediction: the animal's mean rate over the conditions it has",
        "condition_label": label or "", "smoothing_s": NULL_SMOOTH_S})


def _generic_variable(
    mods: Mapping[str, xr.DataArray], paired: PairedData | None, target: str,
    resolved: Mapping[str, list[Any]], template: xr.DataArray,
) -> xr.DataArray | None:
    """The target's generic rates for an imputation, on the template's units (None if the data lack it)."""
    if target not in mods:
        return None
    label = next(iter(resolved)) if resolved else (paired.pair_by if paired is not None else None)
    tmod = mods[target]
    if label is not None and label not in label_names(tmod):
        return None
    units = np.asarray(template["unit"].values)
    if not np.isin(units, np.asarray(tmod["unit"].values)).all() or tmod.sizes["time"] != template.sizes["time"]:
        return None
    try:
        generic = generic_rates(tmod.sel(unit=units), label, exclude=resolved)
    except DataError:
        return None
    return generic


# --------------------------------------------------------------------------- public API
def impute(
    model: Any,
    data: PairedData | xr.DataTree,
    *,
    target: str,
    sources: Sequence[str] | None = None,
    condition: Mapping[str, Any] | None = None,
    split: str | None = None,
    combine: str = "mixture",
    pair_by: str | None = None,
    seed: int = 0,
    n_samples: int = 0,
    level: float = 0.95,
) -> xr.Dataset:
    """Predict ``target``'s activity from the other animals' real activity, per sample.

    Parameters
    ----------
    model
        A fitted :class:`~neurovamp.models.estimator.MultiAnimalModel`.
    data
        :class:`~neurovamp.data.pairing.PairedData` (its pairs define the samples) or a
        multi-animal :class:`xarray.DataTree` (source trials paired by ``pair_by``).
    target
        Animal to predict; it may lack the condition entirely (the key use case).
    sources
        Source animals (default: every other animal of the data the model knows).
    condition
        Label → value or list of values selecting source trials, e.g. ``{"odor": "E"}``
        (text is converted to the label's type). None: every trial.
    split
        ``"train"``, ``"val"`` or ``"test"`` (PairedData only): that split's pairs; None:
        every split, in the order train, val, test.
    combine
        ``"mixture"`` (mean rate over sources) or ``"geometric"`` (geometric mean).
    pair_by
        DataTree input only: label to pair source trials on (default: the first label of
        ``condition``, else ``"odor"``).
    seed
        Seed of the pairing (DataTree input) and of the posterior draws.
    n_samples
        Posterior draws per source sub-window for the credible band (see the module
        docstring); 0 (default): no band, or at least 2.
    level
        Credible level of the band (``n_samples > 0``), strictly between 0 and 1.

    Returns
    -------
    xarray.Dataset
        ``rates`` ``(trial, unit, time)`` in Hz (attribute ``units="Hz"``): the combined
        prediction of each sample; ``rates_sd`` the standard deviation of the sources'
        predictions in the sample (Hz; 0 when one source contributes). With
        ``n_samples > 0`` also ``rates_lo``, ``rates_hi`` (the sample's posterior credible
        interval at ``level``) and ``rates_posterior_mean``, same dims, Hz. Coordinates:
        ``trial`` = sample number; the trial labels shared by the sources (odor, position,
        ...) taken from the sample's first contributing source trial; ``source_trial``
        ``(trial, source)`` the contributing trial id of every source (-1 = none);
        ``n_sources`` ``(trial,)``; for PairedData ``split`` and ``target_trial`` (the
        target's trial in the pair, -1 = none); ``unit`` (and unit coordinates) of the
        target; ``time`` = bin centres in seconds from the event. Attributes: ``target``,
        ``sources``, ``condition`` (JSON), ``split``, ``combine``, ``bin_size``, ``model``
        (and ``n_samples``, ``credible_level``, ``sample_seed`` with ``n_samples > 0``).

    Raises
    ------
    DataError
        Unknown target/source (lists the known animals), unknown condition column or value
        (lists what exists), no source trial matching.
    ConfigError
        Invalid ``split``/``combine``/``n_samples``/``level``/``seed``, split with DataTree
        input, unfitted model.
    """
    combine = _check_combine(combine)
    n_draws, level = _check_sampling(n_samples, level, seed)
    mods, paired, sources, resolved, split = _prepare(model, data, target, sources, condition, split)
    selected = {s: _selected_rows(mods, paired, s, resolved, split) for s in sources}
    if not any(rows.size for rows in selected.values()):
        raise DataError(_nothing_selected(sources, condition, split))
    if paired is not None:
        rows, target_rows, sample_split = _paired_samples(paired, sources, target, selected, split)
        if rows.shape[0] == 0:
            raise DataError(
                f"{_nothing_selected(sources, condition, split)} among the data's pairs "
                "(use impute_condition_mean to average every selected trial)"
            )
    else:
        by = pair_by or (next(iter(resolved)) if resolved else "odor")
        missing = [s for s in sources if by not in label_names(mods[s])]
        if missing:
            raise DataError(f"cannot pair source trials by {by!r}: animals {missing} have no such label")
        rows = _tree_samples(mods, sources, selected, by, seed)
        target_rows = sample_split = None

    preds: dict[str, np.ndarray] = {}
    draws: dict[str, np.ndarray] = {}
    position: dict[str, np.ndarray] = {}
    template = None
    for j, source in enumerate(sources):
        used = np.unique(rows[:, j][rows[:, j] >= 0])
        if used.size == 0:
            continue
        pred = _generate_hz(model, mods[source].isel(trial=used), source, target)
        template = pred if template is None else template
        full = np.full((mods[source].sizes["trial"],) + pred.shape[1:], np.nan, dtype=np.float64)
        full[used] = pred.values
        preds[source] = full
        if n_draws:
            sampled = _generate_hz(model, mods[source].isel(trial=used), source, target, n_draws, _draw_seed(seed, j))
            draws[source] = sampled.values
            position[source] = np.full(mods[source].sizes["trial"], -1, dtype=np.int64)
            position[source][used] = np.arange(used.size)
    n_rows = rows.shape[0]
    n_units, n_bins = template.sizes["unit"], template.sizes["time"]
    rates = np.empty((n_rows, n_units, n_bins))
    spread = np.empty_like(rates)
    n_sources = (rows >= 0).sum(axis=1)
    for count in np.unique(n_sources):
        # samples with the same number of contributing sources are combined at once
        idx = np.flatnonzero(n_sources == count)
        stack = np.empty((count, idx.size, n_units, n_bins))
        filled = np.zeros(idx.size, dtype=np.int64)
        for j, source in enumerate(sources):
            r = rows[idx, j]
            has = r >= 0
            if not has.any():
                continue
            stack[filled[has], np.flatnonzero(has)] = preds[source][r[has]]
            filled[has] += 1
        rates[idx] = _combine(stack, combine)
        spread[idx] = stack.std(axis=0)

    coords: dict[str, Any] = {"trial": np.arange(n_rows)}
    first = np.argmax(rows >= 0, axis=1)
    for label in _shared_labels(mods, [s for s in sources if s in preds]):
        per_source = [np.asarray(mods[s][label].values) for s in sources]
        values = [per_source[first[i]][rows[i, first[i]]] for i in range(n_rows)]
        coords[label] = ("trial", np.asarray(values))
    ids = np.full(rows.shape, -1, dtype=np.int64)
    for j, source in enumerate(sources):
        has = rows[:, j] >= 0
        ids[has, j] = np.asarray(mods[source]["trial"].values, dtype=np.int64)[rows[has, j]]
    coords["source"] = list(sources)
    coords["source_trial"] = (("trial", "source"), ids)
    coords["n_sources"] = ("trial", n_sources.astype(np.int64))
    if paired is not None:
        coords["split"] = ("trial", sample_split)
        tid = np.full(n_rows, -1, dtype=np.int64)
        if target in mods:
            has = target_rows >= 0
            tid[has] = np.asarray(mods[target]["trial"].values, dtype=np.int64)[target_rows[has]]
        coords["target_trial"] = ("trial", tid)
    coords.update(_unit_coords(template))
    bin_size = float(template.attrs["bin_size"])
    attrs = _attrs(model, target, sources, resolved, split, combine, bin_size)
    dims = ("trial", "unit", "time")
    variables = {
        "rates": xr.DataArray(rates, dims=dims, attrs={"units": "Hz", "long_name": f"imputed rate of {target}"}),
        "rates_sd": xr.DataArray(
            spread, dims=dims, attrs={"units": "Hz", "long_name": "standard deviation over sources"}
        ),
    }
    if n_draws:
        lo, hi, mean = _sample_band(draws, position, rows, sources, combine, level)
        variables.update(_band_variables(lo, hi, mean, dims, level))
        attrs.update(_band_attrs(n_draws, level, int(seed)))
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def _model_error_sd(
    model: Any, mods: Mapping[str, xr.DataArray], paired: PairedData | None, target: str,
    sources: Sequence[str], resolved: Mapping[str, list[Any]], split: str | None, combine: str,
    units: np.ndarray,
) -> np.ndarray | None:
    """Per-unit sd (Hz) of the imputation's error on the target's experienced conditions.

    See the module docstring ("What the band of the condition mean means"). None when the
    data hold no target trial of a condition (other than the imputed ones) that a source has.
    """
    if target not in mods or not resolved:
        return None
    label = next(iter(resolved))
    tmod = mods[target]
    if label not in label_names(tmod) or not np.isin(units, np.asarray(tmod["unit"].values)).all():
        return None
    tmod = tmod.sel(unit=units).transpose("trial", "unit", "time")
    bin_size = float(tmod.attrs["bin_size"])
    target_values = np.asarray(tmod[label].values)
    imputed = set(plain(v) for v in resolved[label])
    levels = [v for v in sorted_values(target_values.tolist()) if v not in imputed]
    squared, noise, n_points = 0.0, 0.0, 0
    for level in levels:
        rows = np.flatnonzero(matches(target_values, [level]))
        if rows.size < 2:
            continue
        cond = {label: [level]}
        try:
            preds = _source_predictions(model, mods, paired, target, sources, cond, split, cond)
        except DataError:
            continue
        means = np.stack([p.values.mean(axis=0) for p in preds.values()])
        imputed_rate = _combine(means, combine)  # (unit, time) Hz
        hz = np.asarray(tmod.values[rows], dtype=float) / bin_size
        if imputed_rate.shape != hz.shape[1:]:
            return None
        squared = squared + ((imputed_rate - hz.mean(axis=0)) ** 2).sum(axis=1)
        noise = noise + (hz.var(axis=0, ddof=1) / rows.size).sum(axis=1)
        n_points += hz.shape[2]
    if n_points == 0:
        return None
    return np.sqrt(np.maximum(squared - noise, 0.0) / n_points)


def _given_model_error(
    model_error: Any, target: str, template: xr.DataArray, rates: np.ndarray
) -> tuple[np.ndarray, str, str, dict[str, Any]]:
    """The error sd ``(unit,)`` or ``(unit, time)``, band kind, description and attributes."""
    from neurovamp.analysis.calibration import LocoErrorModel, model_error_from_loco

    units = np.asarray(template["unit"].values)
    if isinstance(model_error, Mapping) or (isinstance(model_error, Sequence) and model_error
                                            and isinstance(model_error[0], Mapping)):
        found = model_error_from_loco(model_error, target, units)
        if found is None:
            raise DataError(f"the leave-one-condition-out results hold no fit of {target!r} with error sums "
                            "(re-run `neurovamp evaluate RUN --leave-condition-out`)")
        model_error = found
    if isinstance(model_error, LocoErrorModel):
        if model_error.target != target:
            raise ConfigError(f"model_error was measured on {model_error.target!r}, not on the target {target!r}")
        return (model_error.sd(rates), "predictive-loco",
                "sd of the imputation error on conditions held out of the target (leave-one-condition-out)",
                model_error.attrs())
    sd = np.asarray(model_error, dtype=np.float64)
    if sd.shape not in (rates.shape[:1], rates.shape) or not np.isfinite(sd).all() or (sd < 0).any():
        raise ConfigError(f"model_error must be finite sds >= 0 of shape {rates.shape[:1]} or {rates.shape} "
                          f"(unit[, time]), got shape {sd.shape}")
    return sd, "predictive-given", "sd of the imputation error (given)", {}


def impute_condition_mean(
    model: Any,
    data: PairedData | xr.DataTree,
    *,
    target: str,
    sources: Sequence[str] | None = None,
    condition: Mapping[str, Any] | None = None,
    split: str | None = None,
    combine: str = "mixture",
    n_samples: int = 0,
    level: float = 0.95,
    seed: int = 0,
    model_error: Any = None,
) -> xr.Dataset:
    """Condition-averaged imputed rates of ``target`` ``(unit, time)`` with uncertainty.

    Every selected source trial (not only the paired ones) is mapped to the target; each
    source's predictions are averaged over its trials and the sources' averages are
    combined (``mixture``: equal weight per source).

    Parameters
    ----------
    model, data, target, sources, condition, split, combine
        As in :func:`impute`.
    n_samples
        Posterior draws per source sub-window for the credible band of the condition
        mean (see the module docstring); 0 (default): no band, or at least 2.
    level
        Credible level of the band, strictly between 0 and 1.
    seed
        Seed of the posterior draws.
    model_error
        The model error of the band (``n_samples > 0``). None (default): measured
        in-sample on the target's experienced conditions (band ``"predictive"``, see the
        module docstring). Out of sample, from leave-one-condition-out fits (band
        ``"predictive-loco"``, the calibrated one): a
        :class:`~neurovamp.analysis.calibration.LocoErrorModel` or a
        :func:`~neurovamp.analysis.loco.leave_condition_out` result holding fits of
        ``target`` (:func:`~neurovamp.analysis.calibration.model_error_from_loco`). Or
        the error sd in Hz, ``(unit,)`` or ``(unit, time)`` (band ``"predictive-given"``).

    Returns
    -------
    xarray.Dataset
        ``rates`` ``(unit, time)`` in Hz (attribute ``units="Hz"``);
        ``rates_sd`` ``(unit, time)``: standard deviation of the single-trial predictions
        pooled over sources and trials (how much the prediction depends on the source
        trial, Hz); ``rates_sem`` ``(unit, time)``: standard error of ``rates``
        (``sqrt(Σ_s var_s / n_s) / n_sources``, Hz); ``rates_by_source``
        ``(source, unit, time)`` each source's average (Hz). Coordinates ``unit`` (and unit
        coordinates), ``time`` (bin centres, s from the event), ``source`` and
        ``n_trials`` ``(source,)``. With ``n_samples > 0`` also ``rates_lo``,
        ``rates_hi`` ``(unit, time)``: the posterior credible interval at ``level`` of the
        imputed condition mean (each draw averaged over trials and combined over sources
        like ``rates``; with the model error added when the data allow, see the module
        docstring), ``rates_posterior_lo``/``rates_posterior_hi`` (latent posterior only),
        ``rates_posterior_mean``, all in Hz, and ``rates_model_error_sd`` (Hz; ``(unit,)``
        in-sample, ``(unit, time)`` from LOCO); attribute ``band`` = ``"predictive-loco"``,
        ``"predictive"``, ``"predictive-given"`` or ``"posterior"`` (LOCO bands also carry
        the ``model_error_*`` attributes of
        :meth:`~neurovamp.analysis.calibration.LocoErrorModel.attrs`). When the data hold the
        target's own trials outside the condition, ``rates_generic`` ``(unit, time)``:
        the target's generic prediction (:func:`generic_rates` over the condition label's
        values, equal weight per value, the imputed values excluded), Hz, the null an
        imputation must beat to add information. Attributes as :func:`impute`.

    Raises
    ------
    DataError, ConfigError
        As :func:`impute`.
    """
    combine = _check_combine(combine)
    n_draws, level = _check_sampling(n_samples, level, seed)
    if model_error is not None and not n_draws:
        raise ConfigError("model_error is the model error of the band: pass n_samples > 0 with it")
    mods, paired, sources, resolved, split = _prepare(model, data, target, sources, condition, split)
    preds = _source_predictions(model, mods, paired, target, sources, resolved, split, condition)
    used = [s for s in sources if s in preds]
    means = np.stack([preds[s].values.mean(axis=0) for s in used])
    variances = np.stack([preds[s].values.var(axis=0) for s in used])
    n_trials = np.array([preds[s].sizes["trial"] for s in used])
    pooled = np.concatenate([preds[s].values for s in used])
    rates = _combine(means, combine)
    sem = np.sqrt(np.sum(variances / n_trials[:, None, None], axis=0)) / len(used)
    template = preds[used[0]]
    coords = _unit_coords(template)
    coords["source"] = used
    coords["n_trials"] = ("source", n_trials.astype(np.int64))
    attrs = _attrs(model, target, used, resolved, split, combine, float(template.attrs["bin_size"]))
    attrs["n_trials_total"] = int(n_trials.sum())
    dims = ("unit", "time")
    variables = {
        "rates": xr.DataArray(rates, dims=dims, attrs={"units": "Hz", "long_name": f"imputed mean rate of {target}"}),
        "rates_sd": xr.DataArray(
            pooled.std(axis=0), dims=dims,
            attrs={"units": "Hz", "long_name": "standard deviation of single-trial predictions"},
        ),
        "rates_sem": xr.DataArray(sem, dims=dims, attrs={"units": "Hz", "long_name": "standard error of the mean"}),
        "rates_by_source": xr.DataArray(
            means, dims=("source",) + dims, attrs={"units": "Hz", "long_name": "mean prediction from each source"}
        ),
    }
    generic = _generic_variable(mods, paired, target, resolved, template)
    if generic is not None:
        variables["rates_generic"] = generic
    if n_draws:
        n_units = template.sizes["unit"]
        per_draw = np.stack([
            _mean_draws(model, mods[s].isel(trial=_selected_rows(mods, paired, s, resolved, split)), s, target,
                        n_units, n_draws, _draw_seed(seed, sources.index(s)))
            for s in used
        ])  # (source, K, unit, time)
        combined = _combine(per_draw, combine)  # (K, unit, time)
        post_lo, post_hi = _band(combined, level)
        variables.update(_band_variables(post_lo, post_hi, combined.mean(axis=0), dims, level))
        attrs.update(_band_attrs(n_draws, level, int(seed)))
        if model_error is None:
            error_sd = _model_error_sd(model, mods, paired, target, used, resolved, split, combine,
                                       np.asarray(template["unit"].values))
            kind, what = "predictive", "sd of the imputation error on the target's experienced conditions (in-sample)"
        else:
            error_sd, kind, what, extra = _given_model_error(model_error, target, template, rates)
            attrs.update(extra)
        pct = f"{100 * level:g} %"
        variables["rates_posterior_lo"] = variables["rates_lo"].copy()
        variables["rates_posterior_hi"] = variables["rates_hi"].copy()
        for end in ("lo", "hi"):
            variables[f"rates_posterior_{end}"].attrs["long_name"] = (
                f"{'lower' if end == 'lo' else 'upper'} end of the {pct} band of the latent posterior alone")
        attrs["band"] = "posterior"
        if error_sd is not None:
            rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x6D6F64656C]))
            scale = error_sd[None, :, None] if error_sd.ndim == 1 else error_sd[None]
            noisy = np.maximum(combined + rng.normal(size=combined.shape) * scale, 0.0)
            lo, hi = _band(noisy, level)
            variables["rates_lo"] = variables["rates_lo"].copy(data=lo)
            variables["rates_hi"] = variables["rates_hi"].copy(data=hi)
            for end in ("lo", "hi"):
                variables[f"rates_{end}"].attrs["long_name"] = (
                    f"{'lower' if end == 'lo' else 'upper'} end of the {pct} predictive band of the rate "
                    "(latent posterior + model error)")
            variables["rates_model_error_sd"] = xr.DataArray(error_sd, dims=dims[: error_sd.ndim], attrs={
                "units": "Hz", "long_name": what})
            attrs["band"] = kind
    return xr.Dataset(variables, coords=coords, attrs=attrs)

