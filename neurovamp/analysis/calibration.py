"""The imputation's model error measured out of sample, from leave-one-condition-out fits.

A band for an imputed condition must hold the error the model makes on a condition the
target animal never experienced. The error on the target's *experienced* conditions is
in-sample (the model was trained on them) and several times smaller; the error on a
condition hidden from the target while the model is fitted
(:mod:`neurovamp.analysis.loco`) is the out-of-sample one. Every LOCO fit records, per
unit, the squared difference of the imputation from the target's held-out PSTH and the
PSTH's sampling variance (:func:`~neurovamp.analysis.loco.calibration_sums`).

The error model
---------------
The squared difference of imputation ``m`` from PSTH ``p`` is, on average, the squared
error against the true rate plus the PSTH's sampling variance ``var_trials / n_trials``,
so their difference estimates the squared error. On a few dozen trials of a condition
the sampling variance is most of the squared difference (80-90 % in the simulations of
``benchmarks/impute_truth.py``), too much to estimate a variance per unit from a handful
of conditions (the per-unit estimate, clipped at zero, covered the truth in 76-86 % of
bins where 95 % was wanted). The error variance is therefore pooled over the target's
units and held-out conditions with one scale ``k`` (Hz) and taken proportional to the
imputed rate, bin by bin:

``σ²(u, t) = k · max(m(u, t), floor)``,  ``k = Σ (sq_error - noise) / Σ m``

(sums over units, bins and held-out conditions). Proportional to the rate because the
squared error grows with the unit's rate (across units in simulation, log σ² rises
~1.4-2 times log rate) and is an order of magnitude smaller in the pre-odor baseline
than during the response, where the rates are highest. ``floor`` (default
:data:`RATE_FLOOR_HZ`) keeps a unit imputed at 0 Hz from getting a zero-width band.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from neurovamp.data.labels import plain as _plain
from neurovamp.errors import DataError

__all__ = ["CALIBRATION_KEY", "RATE_FLOOR_HZ", "RATE_POWER", "LocoErrorModel", "calibration_sums",
           "model_error_from_loco"]

#: Key of a leave-one-condition-out fit's per-unit error sums (:func:`calibration_sums`).
CALIBRATION_KEY = "calibration"

#: Lowest rate (Hz) the error variance is scaled by.
RATE_FLOOR_HZ = 0.1
#: Default scaling of the error variance with the imputed rate (see the module docstring).
RATE_POWER = 1


def calibration_sums(imputed_hz: np.ndarray, trials_hz: np.ndarray, units: Sequence[Any],
                     floor_hz: float = RATE_FLOOR_HZ) -> dict[str, Any]:
    """Per-unit sums of one held-out condition from which the error model follows.

    The squared difference of an imputed condition mean ``m`` (unit x bin) from the
    animal's PSTH ``p`` of its real trials is, on average, ``(m - λ)²`` (the error
    against the true rate ``λ``) plus the PSTH's sampling variance, estimated without bias
    by ``var_trials / n_trials``.

    Parameters
    ----------
    imputed_hz
        Imputed rates ``(unit, time)``, Hz.
    trials_hz
        The held-out trials ``(trial, unit, time)`` as rates (count / bin size), Hz.
    units
        Unit ids, in the order of the unit axis.
    floor_hz
        Lowest rate summed in ``rate_sum_hz``.

    Returns
    -------
    dict
        ``unit`` (ids), ``sq_error`` (Σ_bins (m - p)², Hz²), ``noise`` (Σ_bins
        var_trials / n_trials, ddof 1, Hz²; NaN with one trial), ``rate_sum_hz``
        (Σ_bins max(m, floor), Hz), ``rate_sq_sum_hz2`` (Σ_bins max(m, floor)², Hz²),
        ``rate_floor_hz``, ``n_bins``, ``n_trials``.
    """
    imputed_hz = np.asarray(imputed_hz, dtype=np.float64)
    trials_hz = np.asarray(trials_hz, dtype=np.float64)
    if trials_hz.ndim != 3 or trials_hz.shape[1:] != imputed_hz.shape:
        raise DataError(f"held-out trials {trials_hz.shape} do not match the imputed rates {imputed_hz.shape} "
                        "(expected trial x unit x time and unit x time)")
    n_trials = trials_hz.shape[0]
    psth = trials_hz.mean(axis=0)
    noise = trials_hz.var(axis=0, ddof=1) / n_trials if n_trials > 1 else np.full_like(psth, np.nan)
    return {
        "unit": [_plain(u) for u in np.asarray(units).tolist()],
        "sq_error": ((imputed_hz - psth) ** 2).sum(axis=1).tolist(),
        "noise": noise.sum(axis=1).tolist(),
        "rate_sum_hz": np.maximum(imputed_hz, floor_hz).sum(axis=1).tolist(),
        "rate_sq_sum_hz2": (np.maximum(imputed_hz, floor_hz) ** 2).sum(axis=1).tolist(),
        "rate_floor_hz": float(floor_hz),
        "n_bins": int(psth.shape[1]),
        "n_trials": int(n_trials),
    }


class LocoErrorModel:
    """Error variance of an imputation, ``k · max(rate, floor) ** power`` (see the module docstring).

    Attributes
    ----------
    target : str
        The animal it was measured on.
    scale : float
        ``k`` (Hz² per Hz**power of imputed rate).
    power : int
        How the variance scales with the imputed rate: 0 (one sd for every unit and
        bin), 1 (variance proportional to the rate) or 2 (sd proportional to the rate).
    floor_hz : float
        The lowest rate used.
    conditions : list
        The held-out conditions it was measured on.
    units : list
        The target's units that took part.
    n_points : int
        Unit x bin x condition values pooled.
    noise_share : float
        Fraction of the squared differences that is PSTH sampling variance.
    """

    def __init__(self, target: str, scale: float, power: int, floor_hz: float, conditions: Sequence[Any],
                 units: Sequence[Any], n_points: int, noise_share: float) -> None:
        self.target = target
        self.scale = float(scale)
        self.power = int(power)
        self.floor_hz = float(floor_hz)
        self.conditions = list(conditions)
        self.units = list(units)
        self.n_points = int(n_points)
        self.noise_share = float(noise_share)

    def sd(self, rates_hz: np.ndarray) -> np.ndarray:
        """The error sd (Hz) of imputed rates ``rates_hz`` (any shape), bin by bin."""
        rates = np.maximum(np.nan_to_num(np.asarray(rates_hz, dtype=np.float64), nan=0.0), self.floor_hz)
        return np.sqrt(self.scale * rates**self.power)

    def attrs(self) -> dict[str, Any]:
        """Dataset attributes describing the error model (NetCDF-safe)."""
        return {
            "model_error_source": "leave-condition-out",
            "model_error_scale": self.scale,
            "model_error_rate_power": self.power,
            "model_error_floor_hz": self.floor_hz,
            "model_error_conditions": ",".join(map(str, self.conditions)),
            "model_error_n_points": self.n_points,
            "model_error_noise_share": self.noise_share,
        }

    def __repr__(self) -> str:
        return (f"LocoErrorModel(target={self.target!r}, scale={self.scale:.4g}, power={self.power}, "
                f"conditions={self.conditions}, n_points={self.n_points})")


def _fits(loco: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if isinstance(loco, Mapping):
        if "fits" not in loco:
            raise DataError("leave-one-condition-out results hold no 'fits' (expected the result of "
                            "neurovamp.analysis.loco.leave_condition_out)")
        return list(loco["fits"])
    return list(loco)


_RATE_SUMS = {1: "rate_sum_hz", 2: "rate_sq_sum_hz2"}


def model_error_from_loco(
    loco: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    target: str,
    units: Sequence[Any] | None = None,
    *,
    power: int = RATE_POWER,
    exclude: Sequence[Any] = (),
) -> LocoErrorModel | None:
    """The out-of-sample error model of ``target``'s imputations, from LOCO fits.

    ``k = Σ (sq_error - noise) / Σ max(m, floor) ** power`` over the target's fits,
    ``units`` and bins (clipped at 0; see the module docstring).

    Parameters
    ----------
    loco
        :func:`~neurovamp.analysis.loco.leave_condition_out`'s result (or its ``fits``):
        each fit's ``calibration`` entry (:func:`calibration_sums`).
    target
        The animal whose held-out conditions are used.
    units
        Use only these units (default: every unit of the fits).
    power
        0, 1 or 2: how the error variance scales with the imputed rate.
    exclude
        Held-out conditions to leave aside.

    Returns
    -------
    LocoErrorModel or None
        None when no fit of ``target`` carries the sums (e.g. fits made before neurovamp
        recorded them).

    Raises
    ------
    ConfigError
        If ``power`` is not 0, 1 or 2.
    DataError
        If a fit lacks some of ``units``, or the fits used different rate floors.
    """
    from neurovamp.errors import ConfigError

    if isinstance(power, bool) or power not in (0, 1, 2):
        raise ConfigError(f"power must be 0, 1 or 2, got {power!r}")
    keep = None if units is None else [_plain(u) for u in units]
    excluded = {str(c) for c in exclude}
    excess = rate = squared = noise = 0.0
    conditions: list[Any] = []
    floors: set[float] = set()
    n_points, used_units = 0, []
    for fit in _fits(loco):
        sums = fit.get(CALIBRATION_KEY)
        if fit.get("animal") != target or not sums or str(fit.get("condition")) in excluded:
            continue
        ids = list(sums["unit"])
        if keep is None:
            rows = np.arange(len(ids))
        else:
            where = {str(u): i for i, u in enumerate(ids)}
            missing = [u for u in keep if str(u) not in where]
            if missing:
                raise DataError(f"leave-one-condition-out fit {target}/{fit.get('condition')}: has no unit(s) "
                                f"{missing[:5]}; was it made on another data set?")
            rows = np.array([where[str(u)] for u in keep], dtype=int)
        sq = np.asarray(sums["sq_error"], dtype=float)[rows]
        nz = np.asarray(sums["noise"], dtype=float)[rows]
        if not (np.isfinite(sq).all() and np.isfinite(nz).all()):
            continue  # a single held-out trial: no sampling variance
        n_bins = int(sums["n_bins"])
        excess += float((sq - nz).sum())
        squared += float(sq.sum())
        noise += float(nz.sum())
        rate += float(rows.size * n_bins if power == 0 else np.asarray(sums[_RATE_SUMS[power]], dtype=float)[rows].sum())
        floors.add(float(sums["rate_floor_hz"]))
        n_points += rows.size * n_bins
        conditions.append(fit.get("condition"))
        used_units = [ids[i] for i in rows]
    if not conditions or rate <= 0:
        return None
    if len(floors) > 1:
        raise DataError(f"leave-one-condition-out fits of {target} used different rate floors {sorted(floors)}")
    return LocoErrorModel(target, max(excess, 0.0) / rate, power, floors.pop(), conditions, used_units, n_points,
                          noise / squared if squared > 0 else float("nan"))
