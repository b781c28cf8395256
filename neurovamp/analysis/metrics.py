"""Model-agnostic metrics on spike counts: Poisson log-likelihood, bits per spike, PSTH R²,
and the scores of an imputation against its nulls (generic prediction, band coverage).

Conventions
-----------
*Rates are expected spike counts per bin*, not spikes per second: a unit firing at
20 Hz in 10 ms bins has rate ``0.2``. Convert a rate in Hz with ``rate_hz * bin_size``.

Arrays are ``(trial, unit, time)``. Every function accepts numpy arrays or
:class:`xarray.DataArray` objects. DataArrays are matched by dimension *name* (a
prediction with dims ``(trial, time, unit)`` is transposed to the observed order) and
their shared coordinates must agree exactly. Numpy arrays must have the observed shape;
their axis 0 is the trial axis and axis 1 the unit axis (a 2-D array is read as
``(sample, unit)``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np
import xarray as xr
from scipy.special import gammaln

from neurovamp.errors import ConfigError, DataError

__all__ = [
    "NULL_SMOOTH_S",
    "RATE_EPS",
    "poisson_log_likelihood",
    "bits_per_spike",
    "psth_r2",
    "psth_r2_by_condition",
    "condition_means",
    "smooth_psth",
    "generic_prediction",
    "condition_specific_score",
    "condition_scores",
    "band_coverage",
    "stacking_weights",
]

#: Smallest rate (expected counts per bin) used inside a logarithm.
RATE_EPS = 1e-9
#: Gaussian smoothing (s) of the PSTHs a null prediction and a reference are made of
#: (:func:`generic_prediction` in ``evaluate`` and ``loco``): trial-averaged counts of a
#: few dozen trials in 10-20 ms bins are mostly zeros for low-rate units, which makes an
#: unsmoothed PSTH a straw-man null (log of ~0 where a held-out spike falls) and a noisy
#: reference.
NULL_SMOOTH_S = 0.05

ArrayLike = np.ndarray | xr.DataArray | Sequence


# --------------------------------------------------------------------------- helpers
def _axis_of(da: xr.DataArray | None, dim: str, ndim: int, default: int) -> int:
    """Index of ``dim`` in a DataArray, or ``default`` for numpy input."""
    if isinstance(da, xr.DataArray):
        if dim not in da.dims:
            raise DataError(f"observed array has no {dim!r} dimension (dims {tuple(da.dims)})")
        return da.dims.index(dim)
    if ndim <= default:
        raise DataError(f"expected at least {default + 1} dimensions (trial, unit, ...), got {ndim}")
    return default


def _match(
    pred: ArrayLike, observed: ArrayLike, pred_name: str, obs_name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``pred`` and ``observed`` as float arrays in the observed axis order.

    Raises
    ------
    DataError
        If dims, coordinates or shapes disagree, or values are not finite.
    """
    if isinstance(observed, xr.DataArray) and isinstance(pred, xr.DataArray):
        if set(pred.dims) != set(observed.dims):
            raise DataError(
                f"{pred_name} dims {tuple(pred.dims)} do not match {obs_name} dims {tuple(observed.dims)}"
            )
        pred = pred.transpose(*observed.dims)
        try:
            pred, observed = xr.align(pred, observed, join="exact")
        except ValueError as err:
            raise DataError(f"{pred_name} and {obs_name} coordinates differ: {err}") from None
    p = np.asarray(pred, dtype=float)
    o = np.asarray(observed, dtype=float)
    if p.shape != o.shape:
        raise DataError(f"{pred_name} shape {p.shape} does not match {obs_name} shape {o.shape}")
    if o.size == 0:
        raise DataError(f"{obs_name} is empty")
    for name, arr in ((pred_name, p), (obs_name, o)):
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{name} contain NaN or infinite values")
    return p, o


def _check_counts_rates(rates: np.ndarray, counts: np.ndarray) -> None:
    if np.any(counts < 0):
        raise DataError("counts must be non-negative")
    if np.any(rates < 0):
        raise DataError("rates must be non-negative expected counts per bin")


def _ll_elements(rates: np.ndarray, counts: np.ndarray, eps: float) -> np.ndarray:
    lam = np.maximum(rates, eps)
    return counts * np.log(lam) - lam - gammaln(counts + 1.0)


def _check_eps(eps: float) -> float:
    if not (np.isfinite(eps) and eps > 0):
        raise ConfigError(f"eps must be a positive number, got {eps!r}")
    return float(eps)


# --------------------------------------------------------------------------- likelihoods
def poisson_log_likelihood(rates: ArrayLike, counts: ArrayLike, *, eps: float = RATE_EPS) -> float:
    """Poisson log-likelihood of ``counts`` under ``rates``, summed over every element.

    ``sum(k * log(lam) - lam - log(k!))`` with ``lam = max(rates, eps)``. Clipping keeps a
    zero predicted rate finite: an observed spike where the model predicts ``0`` costs
    about ``log(eps)`` ≈ -20.7 nats instead of ``-inf``.

    Parameters
    ----------
    rates
        Expected counts per bin (not Hz), same shape as ``counts``.
    counts
        Observed spike counts, ``(trial, unit, time)`` (any shape for numpy input).
    eps
        Lower clip of the rates, in expected counts per bin.

    Returns
    -------
    float
        Log-likelihood in nats.

    Raises
    ------
    DataError
        On shape/coordinate mismatch, NaNs, negative counts or negative rates.
    """
    eps = _check_eps(eps)
    r, k = _match(rates, counts, "rates", "counts")
    _check_counts_rates(r, k)
    return float(np.sum(_ll_elements(r, k, eps)))


def bits_per_spike(
    rates: ArrayLike,
    counts: ArrayLike,
    *,
    null_rates: ArrayLike | None = None,
    eps: float = RATE_EPS,
) -> float:
    """Bits per spike of predicted rates relative to a null model (NLB "co-bps").

    ``(LL(rates) - LL(null)) / (n_spikes * ln 2)``, with the Poisson log-likelihood of
    :func:`poisson_log_likelihood` summed over all evaluated counts and ``n_spikes`` the
    total observed count. By default the null model gives each unit its mean count per
    bin over the evaluated data (all trials and bins of ``counts``). Positive values mean
    the prediction beats a flat per-unit rate.

    Parameters
    ----------
    rates
        Predicted expected counts per bin (not Hz: multiply Hz by the bin size), same
        shape as ``counts``.
    counts
        Observed (held-out) spike counts ``(trial, unit, time)``; numpy arrays are read
        with the unit on axis 1, DataArrays by the ``unit`` dimension name.
    null_rates
        Optional null model in expected counts per bin: either one value per unit
        (length ``n_units``; a DataArray with dim ``unit``) or an array broadcastable to
        ``counts``.
    eps
        Lower clip of both the predicted and the null rates, in counts per bin.

    Returns
    -------
    float
        Bits per spike.

    Raises
    ------
    DataError
        On mismatched shapes, NaNs, negative values, or when ``counts`` has no spikes
        (the normalisation is undefined).
    """
    eps = _check_eps(eps)
    unit_axis = _axis_of(counts if isinstance(counts, xr.DataArray) else None, "unit", np.ndim(counts), 1)
    r, k = _match(rates, counts, "rates", "counts")
    _check_counts_rates(r, k)
    n_spikes = float(k.sum())
    if n_spikes <= 0:
        raise DataError("counts contain no spikes; bits per spike is undefined")
    if null_rates is None:
        other = tuple(a for a in range(k.ndim) if a != unit_axis)
        null = np.broadcast_to(k.mean(axis=other, keepdims=True), k.shape)
    else:
        null = _null_like(null_rates, counts, k, unit_axis)
        _check_counts_rates(null, k)
    ll_model = np.sum(_ll_elements(r, k, eps))
    ll_null = np.sum(_ll_elements(null, k, eps))
    return float((ll_model - ll_null) / (n_spikes * np.log(2.0)))


def _null_like(null_rates: ArrayLike, counts: ArrayLike, k: np.ndarray, unit_axis: int) -> np.ndarray:
    if isinstance(null_rates, xr.DataArray) and isinstance(counts, xr.DataArray):
        extra = set(null_rates.dims) - set(counts.dims)
        if extra:
            raise DataError(f"null_rates has dims {sorted(map(str, extra))} that counts lacks")
        try:
            null_rates, _ = xr.align(null_rates, counts, join="exact")
        except ValueError as err:
            raise DataError(f"null_rates and counts coordinates differ: {err}") from None
        null = np.asarray(null_rates.broadcast_like(counts).transpose(*counts.dims), dtype=float)
    else:
        null = np.asarray(null_rates, dtype=float)
        if null.ndim == 1 and null.shape[0] == k.shape[unit_axis] and k.ndim > 1:
            shape = [1] * k.ndim
            shape[unit_axis] = null.shape[0]
            null = null.reshape(shape)
        try:
            null = np.broadcast_to(null, k.shape)
        except ValueError:
            raise DataError(
                f"null_rates shape {np.shape(null_rates)} fits neither n_units={k.shape[unit_axis]} "
                f"nor the counts shape {k.shape}"
            ) from None
    if not np.all(np.isfinite(null)):
        raise DataError("null_rates contain NaN or infinite values")
    return null


# --------------------------------------------------------------------------- PSTH R²
def _conditions_of(conditions: ArrayLike | str, arrays: Sequence[ArrayLike], n_trials: int) -> np.ndarray:
    if isinstance(conditions, str):
        for arr in arrays:
            if isinstance(arr, xr.DataArray) and conditions in arr.coords:
                values = np.asarray(arr[conditions])
                break
        else:
            raise DataError(f"no trial coordinate named {conditions!r} on the observed or predicted array")
    else:
        values = np.asarray(conditions)
    if values.shape != (n_trials,):
        raise DataError(f"conditions must have one label per trial ({n_trials}), got shape {values.shape}")
    if values.dtype.kind in "fc" and np.any(np.isnan(values)):
        raise DataError("conditions contain NaN labels")
    return values


def condition_means(values: np.ndarray, conditions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average a trial-first array within each condition.

    Parameters
    ----------
    values
        Array with trials on axis 0, ``(trial, ...)``.
    conditions
        One label per trial.

    Returns
    -------
    levels : numpy.ndarray
        The sorted distinct conditions, ``(n_conditions,)``.
    means : numpy.ndarray
        ``(n_conditions, ...)`` the mean over each condition's trials.
    """
    values = np.asarray(values, dtype=float)
    levels, inverse = np.unique(np.asarray(conditions), return_inverse=True)
    onehot = np.zeros((levels.size, values.shape[0]))
    onehot[inverse, np.arange(values.shape[0])] = 1.0
    onehot /= onehot.sum(axis=1, keepdims=True)
    means = (onehot @ values.reshape(values.shape[0], -1)).reshape((levels.size,) + values.shape[1:])
    return levels, means


def _r2(pred: np.ndarray, obs: np.ndarray, center: str, unit_axis: int) -> float:
    if center == "pooled":
        ref = obs.mean()
    else:
        other = tuple(a for a in range(obs.ndim) if a != unit_axis)
        ref = obs.mean(axis=other, keepdims=True)
    ss_tot = float(np.sum((obs - ref) ** 2))
    ss_res = float(np.sum((obs - pred) ** 2))
    if ss_tot == 0.0:
        return float("nan")
    return 1.0 - ss_res / ss_tot


def _psth_inputs(
    pred: ArrayLike, observed: ArrayLike, conditions: ArrayLike | str, center: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    if center not in ("pooled", "unit"):
        raise ConfigError(f"center must be 'pooled' or 'unit', got {center!r}")
    obs_da = observed if isinstance(observed, xr.DataArray) else None
    trial_axis = _axis_of(obs_da, "trial", np.ndim(observed), 0)
    unit_axis = _axis_of(obs_da, "unit", np.ndim(observed), 1)
    p, o = _match(pred, observed, "pred", "observed")
    labels = _conditions_of(conditions, (observed, pred), o.shape[trial_axis])
    p = np.moveaxis(p, trial_axis, 0)
    o = np.moveaxis(o, trial_axis, 0)
    # unit axis position after moving the trial axis to the front
    unit_axis = unit_axis + 1 if unit_axis < trial_axis else unit_axis
    levels, p_mean = condition_means(p, labels)
    _, o_mean = condition_means(o, labels)
    return levels, p_mean, o_mean, unit_axis


def psth_r2(
    pred: ArrayLike,
    observed: ArrayLike,
    conditions: ArrayLike | str,
    *,
    center: Literal["pooled", "unit"] = "pooled",
) -> float:
    """R² between condition-averaged predicted rates and condition-averaged observations.

    Both arrays are averaged over the trials of each condition, giving PSTHs
    ``(condition, unit, time)``. Then ``R² = 1 - SS_res / SS_tot`` pooled over
    conditions, units and time bins, with ``SS_res = Σ (psth_pred - psth_obs)²`` and
    ``SS_tot = Σ (psth_obs - mean)²``. With ``center="pooled"`` (default) ``mean`` is the
    single grand mean of all observed PSTH values, so differences in firing rate between
    units count as explained variance; ``center="unit"`` subtracts each unit's own mean
    instead (a stricter score that only credits within-unit modulation).

    Parameters
    ----------
    pred
        Predicted expected counts per bin, ``(trial, unit, time)``.
    observed
        Observed counts (or, in simulation, the true rates), same shape as ``pred``.
    conditions
        One label per trial, or the name of a trial coordinate (e.g. ``"odor"``) of
        ``observed`` (or ``pred``).
    center
        Reference of ``SS_tot``: ``"pooled"`` or ``"unit"``.

    Returns
    -------
    float
        R² (``1`` is perfect, ``0`` no better than the reference mean, may be negative;
        NaN when the observed PSTHs are constant).
    """
    _, p_mean, o_mean, unit_axis = _psth_inputs(pred, observed, conditions, center)
    return _r2(p_mean, o_mean, center, unit_axis)


def psth_r2_by_condition(
    pred: ArrayLike,
    observed: ArrayLike,
    conditions: ArrayLike | str,
    *,
    center: Literal["pooled", "unit"] = "pooled",
) -> dict[Hashable, float]:
    """:func:`psth_r2` computed separately for each condition.

    For condition ``c``, ``R²_c = 1 - Σ (psth_pred_c - psth_obs_c)² / Σ (psth_obs_c - mean_c)²``
    over units and time, where ``mean_c`` is the grand mean of ``psth_obs_c``
    (``center="pooled"``) or each unit's mean within condition ``c`` (``center="unit"``).

    Parameters
    ----------
    pred, observed, conditions, center
        As in :func:`psth_r2`.

    Returns
    -------
    dict
        Condition label (a plain Python scalar) → R², in sorted label order.
    """
    levels, p_mean, o_mean, unit_axis = _psth_inputs(pred, observed, conditions, center)
    return {
        levels[i].item() if hasattr(levels[i], "item") else levels[i]: _r2(p_mean[i], o_mean[i], center, unit_axis - 1)
        for i in range(levels.size)
    }


# --------------------------------------------------------------------------- imputation nulls
def smooth_psth(values: ArrayLike, sigma_bins: float) -> np.ndarray:
    """Gaussian smoothing along the last (time) axis, normalised at the edges.

    Each bin becomes ``Σ_k w_k v[t + k] / Σ_k w_k`` over the offsets ``|k| <= ceil(3 σ)``
    that stay inside the window, with ``w_k = exp(-k² / 2σ²)``: a constant stays
    constant up to the edges. Trial-averaged counts of a few dozen trials in 10-20 ms bins
    are mostly zeros for low-rate units; smoothing makes their PSTH a usable null.

    Parameters
    ----------
    values
        ``(..., time)`` array.
    sigma_bins
        Standard deviation of the kernel in bins; 0 returns ``values`` unchanged.

    Returns
    -------
    numpy.ndarray
        Same shape, float64.
    """
    values = np.asarray(values, dtype=np.float64)
    if sigma_bins <= 0:
        return values
    half = int(np.ceil(3 * sigma_bins))
    offsets = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (offsets / sigma_bins) ** 2)
    n = values.shape[-1]
    out = np.zeros_like(values)
    weight = np.zeros(n)
    for k, w in zip(offsets, kernel):
        lo, hi = max(0, -k), min(n, n - k)
        out[..., lo:hi] += w * values[..., lo + k:hi + k]
        weight[lo:hi] += w
    return out / weight


def _excluded(exclude: Hashable | Sequence[Hashable] | None) -> list[Hashable]:
    if exclude is None:
        return []
    if isinstance(exclude, (str, bytes)) or not isinstance(exclude, (Sequence, np.ndarray)):
        return [exclude]
    return list(exclude)


def generic_prediction(
    values: ArrayLike,
    conditions: ArrayLike,
    *,
    exclude: Hashable | Sequence[Hashable] | None = (),
    half: int | None = None,
    sigma_bins: float = 0.0,
) -> np.ndarray:
    """The "generic" prediction: an animal's mean response over the conditions it has.

    Each condition's trials are averaged first (a PSTH per condition), then the PSTHs are
    averaged with equal weight, so a condition with many trials does not dominate. This is
    what a lab can predict for a condition without any model: an imputation adds
    information only where it beats it (see ``DESIGN.md``, "Metrics").

    Parameters
    ----------
    values
        ``(trial, ...)`` counts or rates of one animal, e.g. ``(trial, unit, time)``.
    conditions
        One label per trial.
    exclude
        A condition, or conditions, left out of the average (the one being imputed, when
        the animal has it); None or ``()`` keeps all.
    half
        0 or 1: average only the even- (0) or odd-numbered (1) trials of every condition
        (in trial order; a condition with a single trial keeps it in both halves). The two
        halves are estimates from disjoint trials, for :func:`condition_specific_score`'s
        ``generic_truth``. None (default): all trials.
    sigma_bins
        Gaussian smoothing of the result along its last (time) axis, in bins
        (:func:`smooth_psth`; 0, the default: none).

    Returns
    -------
    numpy.ndarray
        ``values.shape[1:]``, in the units of ``values``.

    Raises
    ------
    DataError
        If no trial remains, the labels do not match the trials, or ``half`` is not
        None, 0 or 1.
    """
    v = np.asarray(values, dtype=float)
    labels = np.asarray(conditions)
    if v.ndim < 1 or labels.shape != (v.shape[0],):
        raise DataError(f"conditions must have one label per trial ({v.shape[0] if v.ndim else 0}), got shape {labels.shape}")
    if half not in (None, 0, 1):
        raise DataError(f"half must be None, 0 or 1, got {half!r}")
    excluded = _excluded(exclude)
    keep = ~np.isin(labels, excluded) if excluded else np.ones(labels.size, dtype=bool)
    if not keep.any():
        raise DataError(
            f"no trial left for the generic prediction: no trials of a condition other than {excluded} "
            "(every condition excluded)"
        )
    if half is not None:
        for level in np.unique(labels[keep]):
            rows = np.flatnonzero(keep & (labels == level))
            if rows.size > 1:
                keep[rows[1 - int(half)::2]] = False
    _, means = condition_means(v[keep], labels[keep])
    return smooth_psth(means.mean(axis=0), sigma_bins)


def condition_specific_score(
    imputed: ArrayLike, truth: ArrayLike, generic: ArrayLike, *, generic_truth: ArrayLike | None = None
) -> dict[str, float]:
    """How well an imputation recovers the condition-specific part of a response.

    With ``a = imputed - generic`` and ``b = truth - generic_truth`` (``generic_truth``
    defaults to ``generic``), pooled over every element (units and bins, and conditions
    if stacked):

    * ``r``: Pearson correlation of ``a`` and ``b`` (NaN when either is constant);
    * ``r2``: ``1 - Σ (b - a)² / Σ b²`` (with one generic: ``1 - Σ (truth - imputed)² /
      Σ (truth - generic)²``), the fraction of the condition-specific variance explained.
      0 means no better than the generic prediction itself, negative worse, 1 perfect.

    Parameters
    ----------
    imputed
        Imputed rates, e.g. ``(unit, time)``.
    truth
        The rates to recover, same shape: ground truth in simulation, the held-out
        condition's PSTH on real data.
    generic
        The generic prediction (:func:`generic_prediction`), broadcastable to ``truth``.
    generic_truth
        A second estimate of the generic prediction subtracted from ``truth`` instead of
        ``generic``. When ``generic`` is estimated from noisy trials, the same estimate on
        both sides puts its noise into ``a`` and ``b`` alike and inflates ``r``; estimates
        from disjoint trials (``generic_prediction(..., half=0)`` and ``half=1``) do not.

    Returns
    -------
    dict
        ``{"r": float, "r2": float}``.

    Raises
    ------
    DataError
        On mismatched shapes or non-finite values.
    """
    p = np.asarray(imputed, dtype=float)
    t = np.asarray(truth, dtype=float)
    gens = []
    for name, value in (("generic", generic), ("generic_truth", generic if generic_truth is None else generic_truth)):
        try:
            gens.append(np.broadcast_to(np.asarray(value, dtype=float), t.shape))
        except ValueError:
            raise DataError(f"{name} shape {np.shape(value)} does not broadcast to the truth's {t.shape}") from None
    g, g_truth = gens
    if p.shape != t.shape:
        raise DataError(f"imputed shape {p.shape} does not match truth shape {t.shape}")
    if not (np.isfinite(p).all() and np.isfinite(t).all() and np.isfinite(g).all() and np.isfinite(g_truth).all()):
        raise DataError("imputed, truth or generic contain NaN or infinite values")
    a = (p - g).ravel()
    b = (t - g_truth).ravel()
    ss = float(np.sum(b**2))
    r2 = 1.0 - float(np.sum((b - a) ** 2)) / ss if ss > 0 else float("nan")
    ac, bc = a - a.mean(), b - b.mean()
    denom = float(np.sqrt(np.sum(ac**2) * np.sum(bc**2)))
    r = float(np.sum(ac * bc) / denom) if denom > 0 else float("nan")
    return {"r": r, "r2": r2}


def condition_scores(
    imputed: ArrayLike,
    generic: ArrayLike,
    counts: ArrayLike,
    observed: ArrayLike | None = None,
    *,
    generic_pred: ArrayLike | None = None,
    generic_obs: ArrayLike | None = None,
    sigma_bins: float = 0.0,
) -> dict[str, float]:
    """Every score of one imputed condition beside its nulls (flat rate and generic prediction).

    Parameters
    ----------
    imputed
        ``(unit, time)`` imputed expected counts per bin for the condition.
    generic
        ``(unit, time)`` the generic prediction (:func:`generic_prediction`), same units:
        the null of ``bps_generic``.
    counts
        ``(trial, unit, time)`` the animal's held-out counts in that condition (in
        simulation: Poisson draws of the true rate).
    observed
        ``(unit, time)`` the reference of the condition-specific scores; the trial mean of
        ``counts`` smoothed by ``sigma_bins`` (:func:`smooth_psth`) when None (pass the
        true rate in simulation).
    generic_pred, generic_obs
        The generic predictions subtracted from ``imputed`` and from ``observed`` for
        ``r`` and ``r2`` (default: ``generic`` for both); see ``generic_truth`` of
        :func:`condition_specific_score`.
    sigma_bins
        Smoothing (bins) of the trial mean of ``counts`` when ``observed`` is None.

    Returns
    -------
    dict
        ``bps_flat`` / ``bps_generic``: :func:`bits_per_spike` of ``imputed`` on ``counts``
        against a flat per-unit rate / against ``generic``; ``generic_bps_flat``: the
        generic prediction against the flat rate (the null beside ``bps_flat``); ``r`` and
        ``r2``: :func:`condition_specific_score`; ``n_trials``. The bits/spike are NaN when
        ``counts`` holds no spike.

    Raises
    ------
    DataError
        On mismatched shapes or non-finite values.
    """
    imputed = np.asarray(imputed, dtype=np.float64)
    generic = np.asarray(generic, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    if imputed.shape != generic.shape or counts.shape[1:] != imputed.shape:
        raise DataError(
            f"condition_scores: imputed {imputed.shape}, generic {generic.shape} and counts "
            f"{counts.shape[1:]} (per trial) must have the same (unit, time) shape"
        )
    if observed is None:
        observed = smooth_psth(counts.mean(axis=0), sigma_bins)
    out: dict[str, float] = {"n_trials": int(counts.shape[0])}
    if counts.sum() > 0:
        pred = np.broadcast_to(imputed, counts.shape)
        out["bps_flat"] = bits_per_spike(pred, counts)
        out["bps_generic"] = bits_per_spike(pred, counts, null_rates=generic)
        out["generic_bps_flat"] = bits_per_spike(np.broadcast_to(generic, counts.shape), counts)
    else:
        out.update(bps_flat=float("nan"), bps_generic=float("nan"), generic_bps_flat=float("nan"))
    out.update(condition_specific_score(imputed, observed, generic if generic_pred is None else generic_pred,
                                        generic_truth=generic if generic_obs is None else generic_obs))
    return out


def band_coverage(lo: ArrayLike, hi: ArrayLike, truth: ArrayLike) -> float:
    """Fraction of true values inside a band: mean of ``lo <= truth <= hi``.

    A calibrated 95 % credible band covers about 0.95 of the true rates (simulation).

    Parameters
    ----------
    lo, hi
        Lower and upper ends of the band, same shape as ``truth``.
    truth
        The true values.

    Returns
    -------
    float
        Coverage in [0, 1].

    Raises
    ------
    DataError
        On mismatched shapes, non-finite values or ``lo > hi`` anywhere.
    """
    lo_, hi_, t = (np.asarray(x, dtype=float) for x in (lo, hi, truth))
    if not lo_.shape == hi_.shape == t.shape:
        raise DataError(f"band ends {lo_.shape}/{hi_.shape} and truth {t.shape} must have the same shape")
    if t.size == 0:
        raise DataError("band_coverage of an empty array")
    if not (np.isfinite(lo_).all() and np.isfinite(hi_).all() and np.isfinite(t).all()):
        raise DataError("band ends or truth contain NaN or infinite values")
    if np.any(lo_ > hi_):
        raise DataError("band lower end exceeds its upper end")
    return float(np.mean((lo_ <= t) & (t <= hi_)))


def stacking_weights(predictions: ArrayLike, counts: ArrayLike, *, eps: float = RATE_EPS) -> np.ndarray:
    """Weights of several predictions whose mixture best predicts ``counts`` (Poisson).

    The non-negative weights ``w`` summing to 1 that maximise the Poisson log-likelihood of
    ``counts`` under the mixed rate ``Σ_s w_s · predictions[s]``. The log-likelihood is
    concave in ``w``, so the maximum on the simplex is found by any local method (SLSQP
    here, from equal weights). Fitted on data the scores are not computed on (a validation
    split), the weights say how much to trust each source of an imputation.

    Parameters
    ----------
    predictions
        ``(source, ...)`` expected counts per bin, each ``predictions[s]`` shaped like
        ``counts``.
    counts
        Observed spike counts.
    eps
        Lower clip of the mixed rate inside the logarithm.

    Returns
    -------
    numpy.ndarray
        ``(source,)`` float64, non-negative, summing to 1 (``[1.0]`` for one source).

    Raises
    ------
    DataError
        On mismatched shapes, NaNs, negative values, or no prediction at all.
    """
    from scipy.optimize import minimize

    eps = _check_eps(eps)
    p = np.asarray(predictions, dtype=np.float64)
    k = np.asarray(counts, dtype=np.float64)
    if p.ndim < 1 or p.shape[0] == 0 or p.shape[1:] != k.shape:
        raise DataError(f"predictions {p.shape} must be (source, *counts.shape) with counts {k.shape}")
    if not (np.isfinite(p).all() and np.isfinite(k).all()) or (p < 0).any() or (k < 0).any():
        raise DataError("predictions and counts must be finite and non-negative")
    n = p.shape[0]
    if n == 1:
        return np.ones(1)
    flat = p.reshape(n, -1)
    obs = k.reshape(-1)
    totals = flat.sum(axis=1)

    def negative_ll(w: np.ndarray) -> tuple[float, np.ndarray]:
        lam = np.maximum(w @ flat, eps)
        return float(lam.sum() - obs @ np.log(lam)), totals - flat @ (obs / lam)

    result = minimize(negative_ll, np.full(n, 1.0 / n), jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * n,
                      constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}])
    w = np.clip(result.x, 0.0, None)
    return w / w.sum() if w.sum() > 0 else np.full(n, 1.0 / n)

