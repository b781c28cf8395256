"""Scoring an imputation against a simulation's ground truth (the true rates, not data).

On simulated data the rates behind the spikes are known (:class:`neurovamp.simulate.GroundTruth`,
passed in as the object :func:`neurovamp.simulate.load_ground_truth` returns; nothing here
imports the simulator). :func:`true_condition_rates` puts them on an analysis grid;
:func:`imputation_vs_truth` scores an animal's imputed condition means against them, every
score beside its null (the animal's generic prediction: its mean over the conditions it has),
reusing the scorers of :mod:`neurovamp.analysis.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from neurovamp.errors import DataError

__all__ = ["true_condition_rates", "pooled_r2", "pooled_correlation", "imputation_vs_truth", "band_vs_truth",
           "generic_null_scores"]


def true_condition_rates(
    ground_truth: Any, rat: str, odor: str, time: np.ndarray, bin_size: float, position: int | None = None
) -> np.ndarray:
    """The simulator's expected rates of a rat in a condition, on an analysis grid.

    Parameters
    ----------
    ground_truth
        :class:`neurovamp.simulate.GroundTruth` of the simulation.
    rat, odor, position
        Condition (see :meth:`~neurovamp.simulate.GroundTruth.condition_rate`); the rat
        need not have experienced it.
    time
        Bin centres (s from odor onset) of the analysis grid.
    bin_size
        Width (s) of the analysis bins; a multiple of the simulator's bin size.

    Returns
    -------
    numpy.ndarray
        ``(n_units, n_bins)`` rates in Hz: the mean of the simulator's bins whose centres
        fall inside each analysis bin.

    Raises
    ------
    DataError
        If an analysis bin holds no simulator bin (grids that do not line up).
    """
    fine = ground_truth.condition_rate(rat, odor, position)  # (units, sim bins), Hz
    sim_time = np.asarray(ground_truth.time, dtype=float)
    out = np.empty((fine.shape[0], len(time)))
    for j, centre in enumerate(np.asarray(time, dtype=float)):
        inside = (sim_time >= centre - bin_size / 2 - 1e-9) & (sim_time < centre + bin_size / 2 - 1e-9)
        if not inside.any():
            raise DataError(f"no simulator bin inside the analysis bin centred at {centre:g} s")
        out[:, j] = fine[:, inside].mean(axis=1)
    return out


def _finite_pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred, dtype=float), np.asarray(truth, dtype=float)
    ok = np.isfinite(pred) & np.isfinite(truth)
    return pred[ok], truth[ok]


def pooled_r2(pred: np.ndarray, truth: np.ndarray) -> float:
    """R² of ``pred`` against ``truth`` over every finite element (1 - SS_res / SS_tot).

    :func:`~neurovamp.analysis.metrics.condition_specific_score` with the truth's mean
    as the generic prediction; NaN without finite elements or when ``truth`` is constant.
    """
    from neurovamp.analysis.metrics import condition_specific_score

    p, t = _finite_pair(pred, truth)
    if p.size == 0:
        return float("nan")
    return condition_specific_score(p, t, float(t.mean()))["r2"]


def pooled_correlation(pred: np.ndarray, truth: np.ndarray) -> float:
    """Pearson correlation of ``pred`` and ``truth`` over every finite element (NaN when either is constant).

    :func:`~neurovamp.analysis.metrics.condition_specific_score` with a zero generic prediction.
    """
    from neurovamp.analysis.metrics import condition_specific_score

    p, t = _finite_pair(pred, truth)
    if p.size < 2:
        return float("nan")
    return condition_specific_score(p, t, 0.0)["r"]


def imputation_vs_truth(model: Any, paired: Any, ground_truth: Any, odors: Sequence[str], *, target: str,
                        missing_odor: str) -> dict[str, Any]:
    """The imputation of ``target`` from the other animals vs the true rates, for every odor.

    Parameters
    ----------
    model
        A fitted :class:`~neurovamp.models.estimator.MultiAnimalModel`.
    paired
        The paired data it was fitted on.
    ground_truth
        The simulation's :class:`~neurovamp.simulate.GroundTruth`.
    odors
        The odors to score.
    target
        The animal imputed.
    missing_odor
        The odor ``target`` never experienced: scored beside the generic nulls too
        (:func:`generic_null_scores`), and its curves are returned for a figure.

    Returns
    -------
    dict
        ``{"target", "missing_odor", "by_odor": {odor: {"r2", "r2_modulation",
        "correlation", "seen"}}, "_curves": the imputed/true rates of the missing odor}``.
    """
    from neurovamp.analysis.impute import impute_condition_mean

    seen = set(np.asarray(paired.modalities[target]["odor"].values).tolist())
    by_odor: dict[str, dict[str, Any]] = {}
    curves: dict[str, Any] = {}
    for odor in odors:
        imputed = impute_condition_mean(model, paired, target=target, condition={"odor": odor})
        rates = np.asarray(imputed["rates"].values, dtype=float)
        time = np.asarray(imputed["time"].values, dtype=float)
        truth = true_condition_rates(ground_truth, target, odor, time, float(imputed.attrs["bin_size"]))
        centred_pred = rates - rates.mean(axis=1, keepdims=True)
        centred_true = truth - truth.mean(axis=1, keepdims=True)
        by_odor[odor] = {
            "r2": pooled_r2(rates, truth),
            "r2_modulation": pooled_r2(centred_pred, centred_true),
            "correlation": pooled_correlation(rates, truth),
            "seen": odor in seen,
        }
        if odor == missing_odor:
            by_odor[odor].update(generic_null_scores(paired, target, imputed, ground_truth, odors, seen,
                                                     missing_odor=missing_odor))
            curves = {
                "time": time,
                "unit": np.asarray(imputed["unit"].values),
                "imputed": rates,
                "imputed_sem": np.asarray(imputed["rates_sem"].values, dtype=float),
                "truth": truth,
            }
    return {"target": target, "missing_odor": missing_odor, "by_odor": by_odor, "_curves": curves}


def band_vs_truth(model: Any, paired: Any, ground_truth: Any, *, target: str, odor: str, model_error: Any,
                  n_samples: int = 200, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """The imputation's predictive band for ``target`` in ``odor`` against the true rates.

    Parameters
    ----------
    model, paired, ground_truth, target, odor
        As in :func:`imputation_vs_truth` (``odor`` one condition).
    model_error
        The band's model error (:func:`~neurovamp.analysis.impute.impute_condition_mean`'s
        ``model_error``: leave-one-condition-out results or a
        :class:`~neurovamp.analysis.calibration.LocoErrorModel`).
    n_samples, level, seed
        Posterior draws, level and seed of the band.

    Returns
    -------
    dict
        ``level``, ``coverage`` (:func:`~neurovamp.analysis.metrics.band_coverage` of the
        true rates), ``median_width_hz``, ``band`` (the band's kind), ``conditions`` (those
        its model error was measured on) and ``_curves`` (``time``, ``unit``, ``lo``,
        ``hi``, ``truth``: Hz, for a figure).
    """
    from neurovamp.analysis.impute import impute_condition_mean
    from neurovamp.analysis.metrics import band_coverage

    banded = impute_condition_mean(model, paired, target=target, condition={"odor": odor}, n_samples=n_samples,
                                   level=level, seed=seed, model_error=model_error)
    lo, hi = (np.asarray(banded[k].values, dtype=float) for k in ("rates_lo", "rates_hi"))
    time = np.asarray(banded["time"].values, dtype=float)
    truth = true_condition_rates(ground_truth, target, odor, time, float(banded.attrs["bin_size"]))
    conditions = str(banded.attrs.get("model_error_conditions", ""))
    return {
        "level": float(level), "coverage": band_coverage(lo, hi, truth),
        "median_width_hz": float(np.nanmedian(hi - lo)), "band": str(banded.attrs.get("band")),
        "conditions": [c for c in conditions.split(",") if c],
        "_curves": {"time": time, "unit": np.asarray(banded["unit"].values), "lo": lo, "hi": hi, "truth": truth},
    }


def generic_null_scores(paired: Any, target: str, imputed: Any, ground_truth: Any, odors: Sequence[str],
                        seen: set, *, missing_odor: str) -> dict[str, Any]:
    """The imputed unseen odor against the target's generic prediction (its mean over the seen odors).

    ``condition_r`` / ``condition_r2``: (imputed - true generic) vs (true rate - true
    generic), the true generic being the mean of the true rates over the seen odors;
    ``bps_generic``: bits/spike of the imputed rates against the data's generic prediction
    (smoothed PSTH mean over the seen odors) on Poisson draws of the true rate (200 trials,
    fixed seed), ``bps_flat`` the same against a flat rate per unit, ``generic_bps_flat``
    the generic prediction against the flat rate; ``generic_correlation`` the generic
    prediction's correlation with the true rate (beside the imputation's).

    Parameters
    ----------
    paired
        The paired data (the target's trials give the data's generic prediction).
    target
        The imputed animal.
    imputed
        :func:`~neurovamp.analysis.impute.impute_condition_mean` of ``missing_odor``.
    ground_truth
        The simulation's ground truth.
    odors, seen
        Every odor scored, and those the target has.
    missing_odor
        The odor imputed.

    Returns
    -------
    dict
        The scores named above.
    """
    from neurovamp.analysis.metrics import NULL_SMOOTH_S
    from neurovamp.analysis.metrics import condition_scores, generic_prediction

    bin_size = float(imputed.attrs["bin_size"])
    time = np.asarray(imputed["time"].values, dtype=float)
    rates = np.asarray(imputed["rates"].values, dtype=float) * bin_size
    mod = paired.modalities[target]
    if "unit" in mod.coords and "unit" in imputed.coords:
        mod = mod.sel(unit=imputed["unit"].values)
    mod = mod.sel(time=time, method="nearest")
    generic = generic_prediction(np.asarray(mod.values), np.asarray(mod["odor"].values),
                                 sigma_bins=NULL_SMOOTH_S / bin_size)
    truth = true_condition_rates(ground_truth, target, missing_odor, time, bin_size) * bin_size
    true_generic = np.mean([true_condition_rates(ground_truth, target, o, time, bin_size)
                            for o in odors if o in seen], axis=0) * bin_size
    ok = np.isfinite(rates).all(axis=0) & np.isfinite(generic).all(axis=0)
    draws = np.random.default_rng(0).poisson(np.broadcast_to(truth, (200, *truth.shape))).astype(float)
    scores = condition_scores(rates[:, ok], generic[:, ok], draws[:, :, ok], observed=truth[:, ok],
                              generic_pred=true_generic[:, ok], generic_obs=true_generic[:, ok])
    return {
        "condition_r": scores["r"], "condition_r2": scores["r2"], "bps_generic": scores["bps_generic"],
        "bps_flat": scores["bps_flat"], "generic_bps_flat": scores["generic_bps_flat"],
        "generic_correlation": pooled_correlation(generic[:, ok], truth[:, ok]),
    }
