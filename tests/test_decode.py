"""Cross-validated decoding on simulated features with known class structure."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import xarray as xr

from neurovamp.analysis.decode import decode_labels, decode_over_time, decode_shared, transfer_decode
from neurovamp.errors import ConfigError, DataError

ODORS = np.array(["A", "B", "C", "D"])
ANGLES = np.arange(4) * np.pi / 2


def _clusters(n_per_class: int, rng: np.random.Generator, rotation: float = 0.0, noise: float = 0.5):
    """2-D features: class c sits at angle c*90° (+ rotation) on a circle of radius 3."""
    labels = np.repeat(ODORS, n_per_class)
    angle = np.repeat(ANGLES, n_per_class) + rotation
    x = 3 * np.column_stack([np.cos(angle), np.sin(angle)]) + noise * rng.normal(size=(labels.size, 2))
    return x, labels


def test_separable_classes_are_decoded():
    rng = np.random.default_rng(0)
    x, y = _clusters(30, rng)
    res = decode_labels(x, y, folds=5, seed=0, n_permutations=19)
    assert res.metric == "balanced_accuracy" and res.model == "logistic"
    assert res.score > 0.95
    assert res.chance == pytest.approx(0.25)
    assert res.majority == pytest.approx(0.25)
    assert res.n_folds == 5 and len(res.fold_scores) == 5
    assert res.classes == ("A", "B", "C", "D")
    np.testing.assert_allclose(res.confusion.sum(axis=1), 1.0)
    assert np.all(np.diag(res.confusion) > 0.9)
    # permutation null sits at chance, the real score beats every permutation
    assert abs(res.empirical_chance - 0.25) < 0.1
    assert res.p_value == pytest.approx(1 / 20)
    json.dumps(res.to_dict())


def test_noise_features_decode_at_chance():
    rng = np.random.default_rng(1)
    y = np.repeat(ODORS, 40)
    x = rng.normal(size=(y.size, 3))
    res = decode_labels(x, y, seed=3)
    assert abs(res.score - 0.25) < 0.1


def test_majority_and_chance_with_imbalanced_labels():
    rng = np.random.default_rng(2)
    y = np.array(["A"] * 30 + ["B"] * 10)
    x = rng.normal(size=(40, 2)) + (y == "B")[:, None] * 4.0
    res = decode_labels(x, y)
    assert res.chance == pytest.approx(0.5)
    assert res.majority == pytest.approx(0.75)
    assert res.score > 0.9


def test_seed_makes_folds_reproducible():
    rng = np.random.default_rng(3)
    x, y = _clusters(15, rng, noise=2.5)
    a = decode_labels(x, y, seed=7)
    b = decode_labels(x, y, seed=7)
    c = decode_labels(x, y, seed=8)
    assert a.fold_scores == b.fold_scores
    assert a.fold_scores != c.fold_scores


def test_too_few_samples_per_class():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(13, 2))
    y = np.array(["A"] * 10 + ["B"] * 3)
    with pytest.warns(UserWarning, match="3 folds"):
        res = decode_labels(x, y, folds=5)
    assert res.n_folds == 3
    with pytest.raises(DataError, match="class 'B' has only 1"):
        decode_labels(x[:11], y[:11])
    with pytest.raises(DataError, match="single class"):
        decode_labels(x[:10], y[:10])
    with pytest.raises(ConfigError, match="folds"):
        decode_labels(x, y, folds=1)
    with pytest.raises(DataError, match="one label per sample"):
        decode_labels(x, y[:5])


def test_groups_prevent_leakage_across_splits():
    """Samples of a group share a random signature and a random label: only leakage decodes it."""
    rng = np.random.default_rng(5)
    n_groups, per_group, dim = 60, 3, 70
    signature = rng.normal(size=(n_groups, dim))
    group_labels = np.tile(["A", "B"], n_groups // 2)
    groups = np.repeat(np.arange(n_groups), per_group)
    x = signature[groups] + 0.1 * rng.normal(size=(groups.size, dim))
    y = group_labels[groups]
    leaky = decode_labels(x, y, seed=0)
    grouped = decode_labels(x, y, seed=0, groups=groups)
    assert leaky.score > 0.9
    assert grouped.scheme == "stratified-group-kfold"
    assert grouped.score < 0.7  # chance is 0.5 (SD ~0.07 here); held-out groups are never memorised


def test_continuous_labels_use_ridge_regression():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(100, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=100)
    res = decode_labels(x, y)
    assert res.model == "ridge" and res.metric == "r2"
    assert res.score > 0.95
    assert res.chance == 0.0 and res.majority is None and res.confusion is None
    # integer-valued positions stay a classification problem
    assert decode_labels(x, np.tile([1.0, 2.0], 50)).model == "logistic"
    json.dumps(res.to_dict())


def test_labels_from_xarray_coordinate():
    rng = np.random.default_rng(7)
    x, y = _clusters(10, rng)
    da = xr.DataArray(x, dims=("trial", "latent"), coords={"odor": ("trial", y)})
    assert decode_labels(da, "odor").score > 0.9
    with pytest.raises(DataError, match="'position'"):
        decode_labels(da, "position")


def test_shared_decoder_requires_aligned_latents():
    rng = np.random.default_rng(8)
    aligned = {name: _clusters(20, rng) for name in ("r1", "r2", "r3")}
    res = decode_shared({k: v[0] for k, v in aligned.items()}, {k: v[1] for k, v in aligned.items()})
    assert set(res.leave_one_out) == {"r1", "r2", "r3"}
    assert min(res.leave_one_out.values()) > 0.9
    assert res.pooled.score > 0.9 and min(res.pooled_by_animal.values()) > 0.9
    assert res.chance == {"r1": 0.25, "r2": 0.25, "r3": 0.25}

    # Latin square: animal i codes odor c on feature (c + i) mod 4, so for any held-out animal the
    # other animals put each of its odors on features that belong to other odors
    onehot = {}
    for i, name in enumerate(("r1", "r2", "r3")):
        y = np.repeat(ODORS, 20)
        code = (np.repeat(np.arange(4), 20) + i) % 4
        onehot[name] = (3 * np.eye(4)[code] + 0.3 * rng.normal(size=(y.size, 4)), y)
    res = decode_shared({k: v[0] for k, v in onehot.items()}, {k: v[1] for k, v in onehot.items()})
    assert min(res.within.values()) > 0.9
    assert max(res.leave_one_out.values()) < 0.1
    assert res.leave_one_out_mean < 0.1
    json.dumps(res.to_dict())


def test_shared_decoder_with_label_coordinate_and_missing_condition():
    rng = np.random.default_rng(9)
    feats = {}
    for name in ("r1", "r2"):
        x, y = _clusters(15, rng)
        feats[name] = xr.DataArray(x, dims=("trial", "latent"), coords={"odor": ("trial", y)})
    feats["r2"] = feats["r2"].isel(trial=feats["r2"].odor != "D")  # r2 never smelled D
    res = decode_shared(feats, "odor", within=False)
    assert res.chance["r2"] == pytest.approx(1 / 3)
    assert res.leave_one_out["r2"] > 0.9  # trained on r1 (4 odors), tested on r2's 3
    assert res.within == {}


def test_decode_over_time_finds_when_information_appears():
    rng = np.random.default_rng(10)
    n_trials, n_time = 60, 10
    y = np.repeat(["A", "B"], n_trials // 2)
    x = rng.normal(size=(n_trials, n_time, 3))
    x[:, 5:, 0] += np.where(y == "A", 2.5, -2.5)[:, None]
    times = np.linspace(-0.25, 0.2, n_time)
    da = xr.DataArray(x, dims=("trial", "time", "latent"), coords={"time": times, "odor": ("trial", y)})
    res = decode_over_time(da.transpose("time", "latent", "trial"), "odor", folds=4)
    np.testing.assert_allclose(res.times, times)
    assert res.fold_scores.shape == (n_time, 4)
    assert res.chance == 0.5
    assert res.scores[:5].mean() < 0.7
    assert res.scores[5:].min() > 0.9
    json.dumps(res.to_dict())


def test_transfer_decode():
    rng = np.random.default_rng(11)
    x_train, y_train = _clusters(20, rng)
    x_test, y_test = _clusters(10, rng)
    res = transfer_decode(x_train, y_train, x_test, y_test)
    assert res.scheme == "transfer" and res.score > 0.9
    # test labels permuted against the geometry → systematically wrong
    swapped = {"A": "C", "B": "D", "C": "A", "D": "B"}
    bad = transfer_decode(x_train, y_train, x_test, np.array([swapped[v] for v in y_test]))
    assert bad.score < 0.1
    # only two classes in the test set: chance 1/2; confusion keeps all four classes
    keep = np.isin(y_test, ["A", "B"])
    part = transfer_decode(x_train, y_train, x_test[keep], y_test[keep])
    assert part.chance == 0.5 and part.classes == ("A", "B", "C", "D")
    assert np.all(np.isnan(part.confusion[2:]))
    assert part.to_dict()["confusion"][3] == [None, None, None, None]
    with pytest.raises(DataError, match="features"):
        transfer_decode(x_train, y_train, x_test[:, :1], y_test)


def test_no_warnings_on_clean_data():
    rng = np.random.default_rng(12)
    x, y = _clusters(10, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decode_labels(x, y)
