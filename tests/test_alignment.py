"""Linear alignment R², alignment matrices and condition averages on trajectories with known relations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from neurovamp.analysis.alignment import (
    alignment_matrix,
    condition_average,
    identity_alignment_matrix,
    linear_alignment,
    linear_alignment_r2,
)
from neurovamp.errors import ConfigError, DataError

N_COND, N_TIME = 4, 25


def _trajectories(rng: np.random.Generator, k: int = 2) -> np.ndarray:
    """Smooth (condition, time, k) trajectories: loops with condition-specific phase and radius."""
    t = np.linspace(0, 1, N_TIME)
    phase = rng.uniform(0, 2 * np.pi, size=(N_COND, 1, k))
    radius = rng.uniform(0.5, 2.0, size=(N_COND, 1, k))
    freq = np.arange(1, k + 1)[None, None, :]
    return radius * np.sin(2 * np.pi * freq * t[None, :, None] + phase)


def _as_da(values: np.ndarray, conditions=("A", "B", "C", "D")) -> xr.DataArray:
    return xr.DataArray(
        values,
        dims=("condition", "time", "latent"),
        coords={"condition": list(conditions), "time": np.arange(values.shape[1]) * 0.01},
    )


def test_known_linear_transform_gives_r2_near_one():
    rng = np.random.default_rng(0)
    source = _trajectories(rng)
    a = np.array([[1.5, -0.3, 0.2], [0.4, 0.9, -1.1]])  # 2 → 3 latents
    b = np.array([0.5, -2.0, 1.0])
    target = source @ a + b + 0.01 * rng.normal(size=(N_COND, N_TIME, 3))
    fit = linear_alignment(source, target)
    assert fit.cross_validated and fit.scheme == "leave-one-condition-out"
    assert fit.n_groups == N_COND and fit.n_points == N_COND * N_TIME
    assert fit.r2 > 0.999
    np.testing.assert_allclose(fit.weights, a, atol=0.02)
    np.testing.assert_allclose(fit.intercept, b, atol=0.02)
    json.dumps(fit.to_dict())
    # without the intercept the offset b cannot be explained
    assert linear_alignment_r2(source, target, fit_intercept=False) < 0.9


def test_independent_trajectories_give_r2_at_or_below_zero():
    scores_cv, scores_in = [], []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        source, target = rng.normal(size=(N_COND, N_TIME, 2)), rng.normal(size=(N_COND, N_TIME, 2))
        scores_cv.append(linear_alignment_r2(source, target))
        scores_in.append(linear_alignment_r2(source, target, cv=False))
    assert max(scores_cv) < 0.05
    assert np.mean(scores_cv) < 0
    # in-sample R² is never below the held-out one and is >= 0 with an intercept
    assert all(i >= c for i, c in zip(scores_in, scores_cv))
    assert min(scores_in) >= 0


def test_hand_example_in_sample_and_leave_one_out():
    # y = 2x + 1 exactly except one point: in-sample R² by hand
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([1.0, 3.0, 5.0, 8.0])
    fit = linear_alignment(x[:, None], y[:, None], cv=False)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    assert fit.r2 == pytest.approx(1 - np.sum(resid**2) / np.sum((y - y.mean()) ** 2))
    assert fit.weights[0, 0] == pytest.approx(slope) and fit.intercept[0] == pytest.approx(intercept)
    # leave-one-sample-out by hand
    press = 0.0
    for i in range(4):
        keep = np.arange(4) != i
        s, c = np.polyfit(x[keep], y[keep], 1)
        press += (y[i] - (s * x[i] + c)) ** 2
    loo = linear_alignment(x[:, None], y[:, None])
    assert loo.scheme == "leave-one-group-out"
    assert loo.r2 == pytest.approx(1 - press / np.sum((y - y.mean()) ** 2))


def test_cv_needs_two_conditions():
    rng = np.random.default_rng(1)
    source, target = _trajectories(rng)[:1], _trajectories(rng)[:1]
    with pytest.raises(ConfigError, match="cv='auto'"):
        linear_alignment(source, target, cv=True)
    fit = linear_alignment(source, target, cv="auto")
    assert not fit.cross_validated and fit.scheme == "in-sample"
    with pytest.raises(ConfigError, match="cv must be"):
        linear_alignment(source, target, cv="yes")
    with pytest.raises(DataError, match="differ"):
        linear_alignment(_trajectories(rng), _trajectories(rng)[:, :10])


def test_ridge_shrinks_towards_the_mean():
    rng = np.random.default_rng(2)
    source = _trajectories(rng)
    target = source @ np.array([[1.0, 0.0], [0.0, 1.0]])
    assert linear_alignment_r2(source, target, alpha=1e-6) == pytest.approx(1.0, abs=1e-6)
    huge = linear_alignment(source, target, alpha=1e9, cv=False)
    assert abs(huge.r2) < 1e-3  # the map collapses to the intercept (the target mean)


def test_condition_average_by_hand():
    values = np.arange(4 * 2 * 1, dtype=float).reshape(4, 2, 1)  # trial, time, latent
    latents = xr.DataArray(
        values,
        dims=("trial", "time", "latent"),
        coords={"trial": [10, 11, 12, 13], "time": [0.0, 0.1], "odor": ("trial", ["A", "B", "A", "B"])},
        attrs={"animal": "rat1"},
    )
    avg = condition_average(latents, "odor")
    assert avg.dims == ("condition", "time", "latent")
    assert avg["condition"].values.tolist() == ["A", "B"]
    np.testing.assert_allclose(avg.sel(condition="A").values[:, 0], [(0 + 4) / 2, (1 + 5) / 2])
    np.testing.assert_allclose(avg.sel(condition="B").values[:, 0], [(2 + 6) / 2, (3 + 7) / 2])
    assert avg["n_trials"].values.tolist() == [2, 2]
    assert avg.attrs["animal"] == "rat1" and avg.attrs["condition_by"] == "odor"
    np.testing.assert_allclose(avg["time"], [0.0, 0.1])
    # requested order, with a condition this animal never had
    avg = condition_average(latents, "odor", conditions=["B", "C"])
    assert avg["condition"].values.tolist() == ["B", "C"]
    assert np.all(np.isnan(avg.sel(condition="C"))) and avg["n_trials"].values.tolist() == [2, 0]
    with pytest.raises(DataError, match="available labels: \\['odor'\\]"):
        condition_average(latents, "position")
    # works on counts (trial, unit, time) too
    counts = latents.rename(latent="unit").transpose("trial", "unit", "time")
    assert condition_average(counts, "odor").dims == ("condition", "unit", "time")


def test_alignment_matrix_orders_related_and_unrelated_animals():
    rng = np.random.default_rng(3)
    ra = _trajectories(rng)
    rb = ra @ np.array([[0.0, -1.0], [1.0, 0.0]]) + 0.3 + 0.01 * rng.normal(size=ra.shape)  # rotated copy
    rc = rng.normal(size=ra.shape)
    mat = alignment_matrix({"ra": _as_da(ra), "rb": _as_da(rb), "rc": _as_da(rc)})
    assert mat.dims == ("source", "target")
    assert mat["source"].values.tolist() == ["ra", "rb", "rc"]
    np.testing.assert_allclose(np.diag(mat), 1.0)
    assert mat.sel(source="ra", target="rb") > 0.99 and mat.sel(source="rb", target="ra") > 0.99
    assert mat.sel(source="ra", target="rc") < 0.1 and mat.sel(source="rc", target="ra") < 0.1
    assert mat.attrs["cross_validated"] == 1 and mat.attrs["scheme"] == "leave-one-condition-out"


def test_missing_condition_is_dropped_from_the_pair():
    rng = np.random.default_rng(4)
    ra = _trajectories(rng)
    rb = ra * 2.0 - 1.0
    rb_missing = _as_da(rb).copy()
    rb_missing[3] = np.nan  # never experienced D (condition_average gives NaN)
    fit = linear_alignment(_as_da(ra), rb_missing)
    assert fit.n_groups == 3 and fit.r2 == pytest.approx(1.0)
    # DataArrays are matched by condition label, not position
    shuffled = _as_da(rb[::-1], conditions=("D", "C", "B", "A"))
    assert linear_alignment_r2(_as_da(ra), shuffled) == pytest.approx(1.0)


def test_identity_alignment_by_hand_and_it_fails_for_a_rotation():
    y = np.array([[[1.0, 0.0], [0.0, 1.0]], [[-1.0, 0.0], [0.0, -1.0]]])  # (condition 2, time 2, K 2)
    x = y + np.array([0.5, 0.0])  # shifted along latent 0
    # ss_tot: y's dimension means are 0, so sum(y^2) = 4; ss_res = 4 points * 0.25 = 1
    matrix = identity_alignment_matrix({"a": x, "b": y})
    assert matrix.dims == ("source", "target")
    assert matrix.sel(source="a", target="b").item() == pytest.approx(1 - 1 / 4)
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    # a rotated copy is perfectly *linearly* aligned (in-sample R² 1) but not the same coordinates
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    rotated = y @ rot.T
    assert linear_alignment_r2(rotated, y, cv=False) == pytest.approx(1.0)
    assert identity_alignment_matrix({"a": rotated, "b": y}).sel(source="a", target="b").item() < 0.5
    with pytest.raises(DataError, match="shapes"):
        identity_alignment_matrix({"a": y, "b": y[..., :1]})


def test_in_sample_alignment_is_not_drawn():
    """The figure of a whole-trial (in-sample) alignment shows no off-diagonal R² values."""
    from neurovamp.analysis.evaluate import alignment_entry
    from neurovamp.analysis.figures import _alignment_da

    rng = np.random.default_rng(0)
    matrix = alignment_matrix({a: rng.normal(size=(3, 1, 3)) for a in "abc"}, cv="auto")
    drawn = _alignment_da({"alignment": alignment_entry(matrix)})
    assert np.isnan(drawn.values[~np.eye(3, dtype=bool)]).all() and "not cross-validated" in drawn.attrs["scheme"]
    held_out = alignment_matrix({a: rng.normal(size=(4, 5, 2)) for a in "abc"}, cv="auto")
    np.testing.assert_allclose(_alignment_da({"alignment": alignment_entry(held_out)}).values, held_out.values)
