"""Cross-animal alignment of latent spaces: condition averages and linear-map R².

Score
-----
:func:`linear_alignment_r2` fits a linear map ``Y ≈ X W + b`` from one animal's
condition-averaged latent trajectories ``X`` (points = condition × time, columns = its
``K`` latents) to another animal's ``Y`` (``K'`` latents), by least squares or ridge, and
reports

    R² = 1 - Σ ||Y - Ŷ||² / Σ ||Y - Ȳ||²

pooled over points and target dimensions, with ``Ȳ`` the per-dimension mean of ``Y``
over all points (a variance-weighted R², like CEBRA's consistency score). An exact
affine relation gives 1; unrelated trajectories give about 0 in-sample, and at or below 0
out of sample.

Cross-validation
----------------
Trajectories are few, smooth points, so an in-sample R² flatters any map with enough
parameters. By default (``cv=True``) the score is leave-one-condition-out: the map is
fitted on every other condition's trajectory and predicts the held-out condition's whole
trajectory; ``Ŷ`` collects those held-out predictions (``Ȳ`` stays the mean over all
points, i.e. ``1 - PRESS / SS_tot``). For ``(sample, K)`` input each sample is its own
group unless ``groups`` says otherwise. ``cv=True`` raises :class:`ConfigError` when
held-out prediction is impossible (a single condition, or fewer training points than
parameters of an unregularised map); ``cv="auto"`` then falls back to the in-sample R²
and says so through :attr:`AlignmentFit.cross_validated` (and the ``cross_validated``
attribute of :func:`alignment_matrix`).

Map-free score
--------------
:func:`identity_alignment_matrix` scores the identity map, ``Ŷ = X``: are the animals'
latents the *same* coordinates, not merely linearly related? It fits nothing, so it
cannot overfit however few points there are (whole-trial latents of a few conditions
included), and it is what a shared representation (MMVM's pull towards the mixture of the
animals' posteriors, a joint model's single latent) promises; independent VAEs have no
reason to score above 0.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr

from neurovamp.errors import ConfigError, DataError

__all__ = [
    "AlignmentFit",
    "linear_alignment",
    "linear_alignment_r2",
    "alignment_matrix",
    "identity_alignment_matrix",
    "condition_average",
]

ArrayLike = np.ndarray | xr.DataArray | Sequence
CVOption = bool | Literal["auto"]


@dataclass(frozen=True)
class AlignmentFit:
    """A linear map between two animals' trajectories and its R².

    Attributes
    ----------
    r2
        Held-out (``cross_validated``) or in-sample R².
    cross_validated
        Whether ``r2`` is out of sample.
    scheme
        ``"leave-one-condition-out"``, ``"leave-one-group-out"`` or ``"in-sample"``.
    n_points
        Number of (condition, time) points or samples used.
    n_groups
        Number of conditions (groups).
    weights
        ``(K, K')`` map fitted on all points.
    intercept
        ``(K',)`` offset fitted on all points (zeros without intercept).
    """

    r2: float
    cross_validated: bool
    scheme: str
    n_points: int
    n_groups: int
    weights: np.ndarray
    intercept: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (NaN → ``None``).

        Returns
        -------
        dict
        """
        r2 = float(self.r2)
        return {
            "r2": r2 if np.isfinite(r2) else None,
            "cross_validated": bool(self.cross_validated),
            "scheme": self.scheme,
            "n_points": int(self.n_points),
            "n_groups": int(self.n_groups),
            "weights": np.asarray(self.weights, dtype=float).tolist(),
            "intercept": np.asarray(self.intercept, dtype=float).tolist(),
        }


# --------------------------------------------------------------------------- helpers
def _align_dataarrays(source: xr.DataArray, target: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Keep the conditions both animals have, in the source's order."""
    if "condition" in source.dims and "condition" in target.dims:
        tgt_conditions = set(np.asarray(target["condition"]).tolist())
        common = [c for c in np.asarray(source["condition"]).tolist() if c in tgt_conditions]
        if not common:
            raise DataError("source and target share no condition")
        source = source.sel(condition=common)
        target = target.sel(condition=common)
    return source, target


def _trajectory_order(arr: ArrayLike) -> ArrayLike:
    """Put a DataArray's ``condition`` and ``time`` dims first, the latent dim last."""
    if isinstance(arr, xr.DataArray) and arr.ndim == 3 and {"condition", "time"} <= set(arr.dims):
        return arr.transpose("condition", "time", ...)
    return arr


def _points(arr: ArrayLike, name: str) -> np.ndarray:
    x = np.asarray(arr, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim not in (2, 3):
        raise DataError(f"{name} must be (condition, time, latent) or (sample, latent), got shape {x.shape}")
    if 0 in x.shape:
        raise DataError(f"{name} is empty (shape {x.shape})")
    if np.any(np.isinf(x)):
        raise DataError(f"{name} contains infinite values")
    return x


def _fit(x: np.ndarray, y: np.ndarray, fit_intercept: bool, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares (``alpha == 0``) or ridge map ``y ≈ x @ w + b``."""
    if fit_intercept:
        x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    else:
        x_mean, y_mean = np.zeros(x.shape[1]), np.zeros(y.shape[1])
    xc, yc = x - x_mean, y - y_mean
    if alpha > 0:
        w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc)
    else:
        w = np.linalg.lstsq(xc, yc, rcond=None)[0]
    return w, y_mean - x_mean @ w


def linear_alignment(
    source: ArrayLike,
    target: ArrayLike,
    *,
    fit_intercept: bool = True,
    cv: CVOption = True,
    alpha: float = 0.0,
    groups: ArrayLike | None = None,
) -> AlignmentFit:
    """Fit a linear map from ``source`` to ``target`` trajectories and score it by R².

    Parameters
    ----------
    source
        ``(condition, time, K)`` condition-averaged latent trajectories of one animal
        (e.g. from :func:`condition_average`), or ``(sample, K)`` points.
    target
        The other animal's trajectories, same leading shape, ``K'`` latents (``K'`` may
        differ from ``K``). When both are DataArrays with a ``condition`` dimension only
        the shared conditions are used; conditions holding NaN in either array (an
        animal that never experienced them) are dropped.
    fit_intercept
        Fit an offset ``b`` (otherwise the map is purely linear).
    cv
        ``True``: held-out R² (leave-one-condition-out, see the module docstring);
        ``False``: in-sample R²; ``"auto"``: held-out when possible, in-sample otherwise.
    alpha
        Ridge strength (``0`` = ordinary least squares). Ridge is not scale invariant:
        standardise latents first if their scales differ a lot.
    groups
        For ``(sample, K)`` input only: group id per sample for leave-one-group-out
        (default: each sample its own group).

    Returns
    -------
    AlignmentFit

    Raises
    ------
    DataError
        On mismatched shapes, infinite values, or no usable point.
    ConfigError
        On invalid ``cv``/``alpha``, or ``cv=True`` when held-out prediction is impossible.
    """
    if cv not in (True, False, "auto"):
        raise ConfigError(f"cv must be True, False or 'auto', got {cv!r}")
    if not (np.isfinite(alpha) and alpha >= 0):
        raise ConfigError(f"alpha must be a non-negative number, got {alpha!r}")
    if isinstance(source, xr.DataArray) and isinstance(target, xr.DataArray):
        source, target = _align_dataarrays(source, target)
    source, target = _trajectory_order(source), _trajectory_order(target)
    x = _points(source, "source")
    y = _points(target, "target")
    if x.ndim != y.ndim or x.shape[:-1] != y.shape[:-1]:
        raise DataError(f"source shape {x.shape} and target shape {y.shape} differ before the latent axis")
    if x.ndim == 3:
        if groups is not None:
            raise ConfigError("groups applies to (sample, K) input; (condition, time, K) input is grouped by condition")
        keep = ~(np.isnan(x).any(axis=(1, 2)) | np.isnan(y).any(axis=(1, 2)))
        x, y = x[keep], y[keep]
        g = np.repeat(np.arange(x.shape[0]), x.shape[1])
        x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        group_scheme = "leave-one-condition-out"
    else:
        g = np.arange(x.shape[0]) if groups is None else np.asarray(groups)
        if g.shape != (x.shape[0],):
            raise DataError(f"groups must hold one id per sample ({x.shape[0]}), got shape {g.shape}")
        keep = ~(np.isnan(x).any(axis=1) | np.isnan(y).any(axis=1))
        x, y, g = x[keep], y[keep], g[keep]
        group_scheme = "leave-one-group-out"
    if x.shape[0] == 0:
        raise DataError("no point without NaN is shared by source and target")
    group_ids, g_inv = np.unique(g, return_inverse=True)
    n_params = x.shape[1] + int(fit_intercept)
    smallest_train = x.shape[0] - np.bincount(g_inv).max()
    feasible = group_ids.size >= 2 and (alpha > 0 or smallest_train >= n_params)
    if cv is True and not feasible:
        raise ConfigError(
            f"held-out alignment needs at least 2 conditions (groups) and, without ridge, at least {n_params} "
            f"training points per fold; got {group_ids.size} groups and {smallest_train} training points. "
            "Use cv='auto' or cv=False for an in-sample R², or alpha > 0"
        )
    use_cv = bool(cv) and feasible
    w, b = _fit(x, y, fit_intercept, alpha)
    if use_cv:
        pred = np.empty_like(y)
        for k in range(group_ids.size):
            test = g_inv == k
            wk, bk = _fit(x[~test], y[~test], fit_intercept, alpha)
            pred[test] = x[test] @ wk + bk
    else:
        pred = x @ w + b
    ss_tot = float(np.sum((y - y.mean(axis=0)) ** 2))
    ss_res = float(np.sum((y - pred) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    return AlignmentFit(
        r2=r2,
        cross_validated=use_cv,
        scheme=group_scheme if use_cv else "in-sample",
        n_points=int(x.shape[0]),
        n_groups=int(group_ids.size),
        weights=w,
        intercept=b,
    )


def linear_alignment_r2(
    source: ArrayLike,
    target: ArrayLike,
    *,
    fit_intercept: bool = True,
    cv: CVOption = True,
    alpha: float = 0.0,
    groups: ArrayLike | None = None,
) -> float:
    """R² of a linear map from one animal's trajectories to another's.

    Shorthand for ``linear_alignment(...).r2``; see :func:`linear_alignment` for the
    parameters and the module docstring for the definition and the cross-validation.

    Parameters
    ----------
    source, target, fit_intercept, cv, alpha, groups
        As in :func:`linear_alignment`.

    Returns
    -------
    float
        R² (held-out unless ``cv=False``, or ``cv="auto"`` could not hold out).
    """
    return linear_alignment(source, target, fit_intercept=fit_intercept, cv=cv, alpha=alpha, groups=groups).r2


def alignment_matrix(
    trajectories: Mapping[str, ArrayLike],
    *,
    fit_intercept: bool = True,
    cv: CVOption = True,
    alpha: float = 0.0,
) -> xr.DataArray:
    """Linear-alignment R² between every ordered pair of animals.

    Parameters
    ----------
    trajectories
        Animal → ``(condition, time, K)`` trajectories (see :func:`condition_average`).
    fit_intercept, cv, alpha
        As in :func:`linear_alignment`.

    Returns
    -------
    xarray.DataArray
        Named ``alignment_r2``, dims ``("source", "target")`` with the animal ids as
        coordinates; entry ``[i, j]`` is the R² of predicting animal ``j``'s trajectories
        from animal ``i``'s (not symmetric). The diagonal is 1.0 by definition (the
        identity map). Attributes: ``metric``, ``cross_validated`` (1 when every
        off-diagonal entry is held out, else 0), ``scheme``, ``fit_intercept``, ``alpha``.
    """
    animals = list(trajectories)
    if len(animals) < 2:
        raise DataError(f"alignment_matrix needs at least two animals, got {animals}")
    n = len(animals)
    values = np.eye(n)
    schemes = set()
    for i, a in enumerate(animals):
        for j, b in enumerate(animals):
            if i == j:
                continue
            fit = linear_alignment(
                trajectories[a], trajectories[b], fit_intercept=fit_intercept, cv=cv, alpha=alpha
            )
            values[i, j] = fit.r2
            schemes.add(fit.scheme)
    scheme = schemes.pop() if len(schemes) == 1 else "mixed"
    return xr.DataArray(
        values,
        dims=("source", "target"),
        coords={"source": animals, "target": animals},
        name="alignment_r2",
        attrs={
            "metric": "linear_alignment_r2",
            "cross_validated": int("in-sample" not in schemes and scheme != "in-sample"),
            "scheme": scheme,
            "fit_intercept": int(fit_intercept),
            "alpha": float(alpha),
        },
    )


def identity_alignment_matrix(trajectories: Mapping[str, ArrayLike]) -> xr.DataArray:
    """R² of predicting each animal's trajectories with another's as they are (no map).

    ``R² = 1 - Σ ||Y - X||² / Σ ||Y - Ȳ||²`` pooled over the shared (condition, time)
    points and latent dimensions, ``Ȳ`` the per-dimension mean of ``Y``; conditions
    holding NaN in either animal are dropped pairwise.

    Parameters
    ----------
    trajectories
        Animal → ``(condition, time, K)`` trajectories with the same ``K``.

    Returns
    -------
    xarray.DataArray
        ``identity_r2`` ``(source, target)``, diagonal 1 (may be very negative off it).

    Raises
    ------
    DataError
        Fewer than two animals, or latent sizes that differ.
    """
    animals = list(trajectories)
    if len(animals) < 2:
        raise DataError(f"identity_alignment_matrix needs at least two animals, got {animals}")
    values = np.eye(len(animals))
    for i, a in enumerate(animals):
        for j, b in enumerate(animals):
            if i == j:
                continue
            src, tgt = trajectories[a], trajectories[b]
            if isinstance(src, xr.DataArray) and isinstance(tgt, xr.DataArray):
                src, tgt = _align_dataarrays(src, tgt)
            x = _points(_trajectory_order(src), "source")
            y = _points(_trajectory_order(tgt), "target")
            if x.shape != y.shape:
                raise DataError(f"animals {a!r} and {b!r} have trajectories of shapes {x.shape} and {y.shape}")
            x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
            keep = ~(np.isnan(x).any(axis=1) | np.isnan(y).any(axis=1))
            x, y = x[keep], y[keep]
            ss_tot = float(np.sum((y - y.mean(axis=0)) ** 2)) if y.size else 0.0
            values[i, j] = 1.0 - float(np.sum((y - x) ** 2)) / ss_tot if ss_tot > 0 else np.nan
    return xr.DataArray(values, dims=("source", "target"), coords={"source": animals, "target": animals},
                        name="identity_r2", attrs={"metric": "identity_alignment_r2", "scheme": "no map"})


def condition_average(
    latents: xr.DataArray, by: str, *, conditions: Sequence[Hashable] | None = None
) -> xr.DataArray:
    """Average trials within each condition.

    Parameters
    ----------
    latents
        DataArray with a ``trial`` dimension and a ``(trial,)`` label coordinate ``by``,
        e.g. latents ``(trial, time, latent)`` or counts ``(trial, unit, time)``.
    by
        Name of the label coordinate (``"odor"``, ``"position"``, ...).
    conditions
        Conditions to return, in this order (default: the sorted distinct labels). A
        condition without trials gets NaN and ``n_trials`` 0, so animals missing a
        condition keep a common condition axis.

    Returns
    -------
    xarray.DataArray
        Dims ``("condition", <other dims>)`` (``(condition, time, latent)`` for latents)
        with coordinates ``condition`` and ``n_trials`` (trials averaged per condition),
        the non-trial coordinates of ``latents``, its attributes plus ``condition_by``.
        NaN values in ``latents`` propagate into their condition's mean.
    """
    if not isinstance(latents, xr.DataArray):
        raise DataError(f"condition_average needs an xarray.DataArray, got {type(latents).__name__}")
    if "trial" not in latents.dims:
        raise DataError(f"latents have no 'trial' dimension (dims {tuple(latents.dims)})")
    if by not in latents.coords or latents[by].dims != ("trial",):
        available = [str(n) for n, c in latents.coords.items() if c.dims == ("trial",) and n != "trial"]
        raise DataError(f"latents have no trial label {by!r}; available labels: {available}")
    labels = np.asarray(latents[by])
    if labels.dtype.kind in "fc" and np.any(np.isnan(labels)):
        raise DataError(f"trial label {by!r} contains NaN")
    levels = list(np.unique(labels).tolist()) if conditions is None else list(conditions)
    if len(set(levels)) != len(levels):
        raise ConfigError(f"conditions contain duplicates: {levels}")
    other = [d for d in latents.dims if d != "trial"]
    values = np.asarray(latents.transpose("trial", *other), dtype=float)
    out = np.full((len(levels),) + values.shape[1:], np.nan)
    n_trials = np.zeros(len(levels), dtype=int)
    for k, level in enumerate(levels):
        mask = labels == level
        n_trials[k] = int(mask.sum())
        if n_trials[k]:
            out[k] = values[mask].mean(axis=0)
    coords: dict[str, Any] = {"condition": levels, "n_trials": ("condition", n_trials)}
    for name, coord in latents.coords.items():
        if "trial" not in coord.dims:
            coords[name] = coord
    attrs = dict(latents.attrs)
    attrs["condition_by"] = by
    return xr.DataArray(out, dims=("condition", *other), coords=coords, name=latents.name, attrs=attrs)
