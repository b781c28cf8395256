"""Poisson log-likelihood, bits per spike and PSTH R² against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from scipy.special import gammaln
from scipy.stats import poisson

from neurovamp.analysis.metrics import (
    RATE_EPS,
    band_coverage,
    bits_per_spike,
    condition_scores,
    condition_specific_score,
    generic_prediction,
    poisson_log_likelihood,
    psth_r2,
    psth_r2_by_condition,
    smooth_psth,
)
from neurovamp.errors import DataError

# 2 trials x 2 units x 2 bins
COUNTS = np.array([[[0, 1], [2, 0]], [[1, 3], [0, 1]]], dtype=float)
RATES = np.array([[[0.5, 1.0], [1.5, 0.2]], [[0.8, 2.0], [0.3, 0.6]]])


def _ll_by_hand(rates: np.ndarray, counts: np.ndarray) -> float:
    total = 0.0
    for lam, k in zip(rates.ravel(), counts.ravel()):
        total += k * math.log(lam) - lam - math.lgamma(k + 1)
    return total


def test_poisson_log_likelihood_matches_formula_and_scipy():
    ll = poisson_log_likelihood(RATES, COUNTS)
    assert ll == pytest.approx(_ll_by_hand(RATES, COUNTS), rel=1e-12)
    assert ll == pytest.approx(poisson.logpmf(COUNTS, RATES).sum(), rel=1e-12)


def test_bits_per_spike_hand_example():
    # null: unit 0 mean count per bin = (0+1+1+3)/4 = 1.25, unit 1 = (2+0+0+1)/4 = 0.75
    null = np.empty_like(RATES)
    null[:, 0, :] = 1.25
    null[:, 1, :] = 0.75
    n_spikes = 8
    expected = (_ll_by_hand(RATES, COUNTS) - _ll_by_hand(null, COUNTS)) / (n_spikes * math.log(2))
    assert bits_per_spike(RATES, COUNTS) == pytest.approx(expected, rel=1e-12)
    # the same numbers through scipy, and a literal anchor
    via_scipy = (poisson.logpmf(COUNTS, RATES).sum() - poisson.logpmf(COUNTS, null).sum()) / (8 * np.log(2))
    assert bits_per_spike(RATES, COUNTS) == pytest.approx(via_scipy, rel=1e-12)
    assert bits_per_spike(RATES, COUNTS) == pytest.approx(0.54168349, abs=1e-8)
    # explicit per-unit null equal to the default gives the same value; null == rates gives 0
    assert bits_per_spike(RATES, COUNTS, null_rates=[1.25, 0.75]) == pytest.approx(expected, rel=1e-12)
    assert bits_per_spike(RATES, COUNTS, null_rates=RATES) == pytest.approx(0.0, abs=1e-12)
    assert bits_per_spike(null, COUNTS) == pytest.approx(0.0, abs=1e-12)


def test_zero_rate_is_clipped_not_infinite():
    rates = RATES.copy()
    rates[1, 0, 1] = 0.0  # 3 spikes observed where the model says 0
    ll = poisson_log_likelihood(rates, COUNTS)
    clipped = rates.copy()
    clipped[1, 0, 1] = RATE_EPS
    assert np.isfinite(ll)
    assert ll == pytest.approx(_ll_by_hand(clipped, COUNTS), rel=1e-12)
    assert bits_per_spike(rates, COUNTS) < bits_per_spike(RATES, COUNTS)


def test_xarray_inputs_are_matched_by_dimension_name():
    counts = xr.DataArray(COUNTS, dims=("trial", "unit", "time"), coords={"trial": [10, 11], "unit": [3, 7]})
    rates = xr.DataArray(RATES, dims=("trial", "unit", "time"), coords={"trial": [10, 11], "unit": [3, 7]})
    expected = bits_per_spike(RATES, COUNTS)
    assert bits_per_spike(rates.transpose("time", "trial", "unit"), counts) == pytest.approx(expected)
    # unit axis found by name even when counts is not (trial, unit, time)
    assert bits_per_spike(rates, counts.transpose("unit", "time", "trial")) == pytest.approx(expected)
    null = xr.DataArray([1.25, 0.75], dims="unit", coords={"unit": [3, 7]})
    assert bits_per_spike(rates, counts, null_rates=null) == pytest.approx(expected)
    with pytest.raises(DataError, match="coordinates differ"):
        bits_per_spike(rates.assign_coords(unit=[3, 8]), counts)


def test_bad_inputs_raise_data_error():
    with pytest.raises(DataError, match="shape"):
        bits_per_spike(RATES[:, :1], COUNTS)
    with pytest.raises(DataError, match="no spikes"):
        bits_per_spike(RATES, np.zeros_like(COUNTS))
    with pytest.raises(DataError, match="non-negative"):
        poisson_log_likelihood(-RATES, COUNTS)
    with pytest.raises(DataError, match="NaN"):
        poisson_log_likelihood(RATES * np.nan, COUNTS)


def test_true_rates_beat_flat_rates_on_simulated_data():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 50)
    rates = 0.05 + 0.6 * (1 + np.sin(2 * np.pi * (t[None, None, :] + rng.random((1, 20, 1)))))  # (1, unit, time)
    rates = np.broadcast_to(rates, (200, 20, 50))
    counts = rng.poisson(rates).astype(float)
    bps_true = bits_per_spike(rates, counts)
    assert bps_true > 0.1
    assert bits_per_spike(rates[:, ::-1], counts) < 0  # wrong unit assignment is worse than flat


def test_psth_r2_hand_example():
    # 4 trials (A, A, B, B), 1 unit, 2 bins
    observed = np.array([[[1, 3]], [[3, 5]], [[0, 2]], [[2, 2]]], dtype=float)
    pred = np.array([[[2, 3]], [[2, 3]], [[1, 2]], [[1, 2]]], dtype=float)
    cond = np.array(["A", "A", "B", "B"])
    # observed PSTHs A [2, 4], B [1, 2]; pooled mean 2.25 → SS_tot 4.75; SS_res 1
    assert psth_r2(pred, observed, cond) == pytest.approx(1 - 1 / 4.75)
    by_cond = psth_r2_by_condition(pred, observed, cond)
    assert list(by_cond) == ["A", "B"]
    assert by_cond["A"] == pytest.approx(0.5)  # obs [2, 4] vs pred [2, 3]
    assert by_cond["B"] == pytest.approx(1.0)
    # a trial coordinate name works too
    da = xr.DataArray(observed, dims=("trial", "unit", "time"), coords={"odor": ("trial", cond)})
    assert psth_r2(pred, da, "odor") == pytest.approx(1 - 1 / 4.75)


def test_psth_r2_pooled_vs_unit_centering():
    rng = np.random.default_rng(1)
    cond = np.repeat(["A", "B", "C"], 10)
    base = np.array([1.0, 5.0])[None, :, None]  # two units with very different rates
    signal = rng.normal(size=(3, 2, 8))[np.repeat(np.arange(3), 10)]
    observed = base + signal
    unit_mean_only = np.broadcast_to(observed.mean(axis=(0, 2), keepdims=True), observed.shape)
    # predicting each unit's mean explains the between-unit variance only
    assert psth_r2(unit_mean_only, observed, cond, center="unit") == pytest.approx(0.0, abs=1e-12)
    assert psth_r2(unit_mean_only, observed, cond, center="pooled") > 0.5
    assert psth_r2(observed, observed, cond) == pytest.approx(1.0)
    grand = np.full(observed.shape, observed.mean())
    assert psth_r2(grand, observed, cond) == pytest.approx(0.0, abs=1e-12)


def test_psth_r2_condition_count_must_match():
    with pytest.raises(DataError, match="one label per trial"):
        psth_r2(RATES, COUNTS, ["A"])
    with pytest.raises(DataError, match="no trial coordinate"):
        psth_r2(RATES, COUNTS, "odor")


# --------------------------------------------------------------------------- imputation nulls
def test_generic_prediction_weights_conditions_equally():
    # condition A: two trials (unit 0: 1 and 3), condition B: one trial (unit 0: 8)
    values = np.array([[[1.0, 2.0]], [[3.0, 2.0]], [[8.0, 0.0]]])  # (trial, unit, time)
    labels = np.array(["A", "A", "B"])
    np.testing.assert_allclose(generic_prediction(values, labels), [[(2.0 + 8.0) / 2, (2.0 + 0.0) / 2]])
    np.testing.assert_allclose(generic_prediction(values, labels, exclude=["B"]), [[2.0, 2.0]])
    with pytest.raises(DataError, match="no trial left"):
        generic_prediction(values, labels, exclude=["A", "B"])
    with pytest.raises(DataError, match="one label per trial"):
        generic_prediction(values, labels[:2])


def test_condition_specific_score_hand_example():
    generic = np.array([[2.0, 2.0, 2.0]])
    truth = np.array([[3.0, 2.0, 1.0]])  # condition-specific part +1, 0, -1
    imputed = np.array([[2.5, 2.0, 1.5]])  # half of it: r = 1, r2 = 1 - (0.25 + 0 + 0.25) / 2 = 0.75
    score = condition_specific_score(imputed, truth, generic)
    assert score["r"] == pytest.approx(1.0) and score["r2"] == pytest.approx(0.75)
    # the generic prediction itself: r undefined (constant), r2 = 0; the truth: r2 = 1
    assert np.isnan(condition_specific_score(generic, truth, generic)["r"])
    assert condition_specific_score(generic, truth, generic)["r2"] == pytest.approx(0.0)
    assert condition_specific_score(truth, truth, generic)["r2"] == pytest.approx(1.0)
    # an imputation that equals the truth up to a shared offset correlates highly with the truth
    # (r of the raw rates) but adds nothing beyond the generic one: r2 < 0, r of the parts -1
    wrong = np.array([[1.0, 2.0, 3.0]])
    score = condition_specific_score(wrong, truth, generic)
    assert score["r"] == pytest.approx(-1.0) and score["r2"] == pytest.approx(1 - (4 + 0 + 4) / 2)
    # a scalar generic broadcasts
    assert condition_specific_score(imputed, truth, 2.0) == condition_specific_score(imputed, truth, generic)
    with pytest.raises(DataError, match="shape"):
        condition_specific_score(imputed[:, :2], truth, generic)


def test_band_coverage_hand_example():
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    lo = np.array([0.5, 2.5, 3.0, 0.0])
    hi = np.array([1.5, 3.0, 3.5, 3.9])
    assert band_coverage(lo, hi, truth) == pytest.approx(0.5)  # 1 inside, 2 below, 3 on the edge, 4 above
    with pytest.raises(DataError, match="exceeds"):
        band_coverage(hi, lo, truth)
    with pytest.raises(DataError, match="shape"):
        band_coverage(lo[:2], hi, truth)


def test_bits_per_spike_against_the_generic_null():
    # the generic null is passed as null_rates: a prediction equal to it scores 0 bits/spike
    rng = np.random.default_rng(0)
    rates = rng.uniform(0.1, 2.0, size=(40, 3, 5))
    counts = rng.poisson(rates).astype(float)
    generic = generic_prediction(counts, np.arange(40) % 4)
    assert bits_per_spike(np.broadcast_to(generic, counts.shape), counts, null_rates=generic) == pytest.approx(0.0)
    assert bits_per_spike(rates, counts, null_rates=generic) > 0


def test_bits_per_spike_with_a_unit_by_time_null_matches_hand_computation():
    # a (unit, time) generic null is broadcast over trials
    counts = np.array([[[1.0, 0.0, 3.0]], [[0.0, 2.0, 1.0]]])
    generic = np.array([[0.5, 1.0, 2.0]])
    rates = np.array([[[1.0, 0.5, 2.5]], [[0.2, 1.5, 1.0]]])

    def ll(lam: np.ndarray) -> float:
        return float(np.sum(counts * np.log(lam) - lam - gammaln(counts + 1)))

    expected = (ll(rates) - ll(np.broadcast_to(generic, counts.shape))) / (counts.sum() * np.log(2))
    assert bits_per_spike(rates, counts, null_rates=generic) == pytest.approx(expected)
    assert bits_per_spike(np.broadcast_to(generic, counts.shape), counts, null_rates=generic) == 0.0


def test_condition_specific_r_is_pearson_of_deviations_from_generic():
    generic = np.array([[1.0, 1.0, 1.0]])
    truth = generic + np.array([[1.0, 2.0, 3.0]])
    imputed = generic + np.array([[1.0, 3.0, 2.0]])
    assert condition_specific_score(imputed, truth, generic)["r"] == pytest.approx(0.5)  # r of (1,3,2) and (1,2,3)
    scaled = generic + 0.3 * (truth - generic) + 0.1
    assert condition_specific_score(scaled, truth, generic)["r"] == pytest.approx(1.0)


def test_smooth_psth_hand_example():
    values = np.array([[0.0, 0.0, 1.0, 0.0, 0.0]])
    out = smooth_psth(values, 1.0)
    w = np.exp(-0.5 * np.arange(4) ** 2)  # kernel at offsets 0..3 (|k| <= ceil(3 sigma))
    assert out[0, 2] == pytest.approx(w[0] / (w[0] + 2 * w[1] + 2 * w[2]))  # offsets -2..2 inside
    assert out[0, 0] == pytest.approx(w[2] / (w[0] + w[1] + w[2] + w[3]))  # offsets 0..3 inside
    np.testing.assert_allclose(smooth_psth(np.full((2, 7), 3.0), 1.5), 3.0)  # normalised at the edges
    np.testing.assert_array_equal(smooth_psth(values, 0.0), values)


def test_generic_prediction_split_halves_and_smoothing():
    # condition A: trials 1, 3, 5; B: one trial 10; C: 20, 40 (unit 0, one bin)
    values = np.array([1.0, 10.0, 3.0, 20.0, 5.0, 40.0]).reshape(6, 1, 1)
    labels = np.array(["A", "B", "A", "C", "A", "C"])
    # half 0: even-numbered trials of each condition (A: 1, 5; C: 20); B keeps its only trial
    assert generic_prediction(values, labels, half=0)[0, 0] == pytest.approx((3.0 + 10.0 + 20.0) / 3)
    assert generic_prediction(values, labels, half=1)[0, 0] == pytest.approx((3.0 + 10.0 + 40.0) / 3)
    assert generic_prediction(values, labels, exclude="C", half=1)[0, 0] == pytest.approx((3.0 + 10.0) / 2)
    with pytest.raises(DataError, match="half"):
        generic_prediction(values, labels, half=2)
    rng = np.random.default_rng(0)
    noisy = rng.poisson(0.5, size=(12, 2, 9)).astype(float)
    labs = np.arange(12) % 3
    np.testing.assert_allclose(generic_prediction(noisy, labs, sigma_bins=1.0),
                               smooth_psth(generic_prediction(noisy, labs), 1.0))


def test_condition_specific_score_with_a_second_generic_for_the_truth():
    generic = np.array([[2.0, 2.0, 2.0]])
    generic_truth = np.array([[1.0, 1.0, 1.0]])
    truth = np.array([[3.0, 2.0, 1.0]])  # minus generic_truth: 2, 1, 0
    imputed = np.array([[3.0, 2.5, 2.0]])  # minus generic: 1, 0.5, 0 -> r = 1, r2 = 1 - (1 + 0.25) / 5
    score = condition_specific_score(imputed, truth, generic, generic_truth=generic_truth)
    assert score["r"] == pytest.approx(1.0) and score["r2"] == pytest.approx(0.75)
    with pytest.raises(DataError, match="generic_truth shape"):
        condition_specific_score(imputed, truth, generic, generic_truth=np.ones((2, 2)))


def test_split_half_generic_keeps_its_noise_from_inflating_r():
    # an "imputation" equal to the true generic adds nothing; subtracting one noisy estimate of
    # the generic from both sides correlates the differences through that estimate's noise
    rng = np.random.default_rng(1)
    true_generic = rng.uniform(0.2, 1.0, size=(20, 30))
    counts = rng.poisson(np.broadcast_to(true_generic, (40, 20, 30))).astype(float)
    labels = np.arange(40) % 4
    both = generic_prediction(counts, labels)
    halves = [generic_prediction(counts, labels, half=h) for h in (0, 1)]
    same = condition_specific_score(true_generic, true_generic, both)["r"]
    split = condition_specific_score(true_generic, true_generic, halves[0], generic_truth=halves[1])["r"]
    assert same == pytest.approx(1.0)
    assert abs(split) < 0.15


def test_condition_scores_bundle_the_shared_scores():
    rng = np.random.default_rng(2)
    imputed = rng.uniform(0.2, 1.0, size=(3, 8))
    generic = rng.uniform(0.2, 1.0, size=(3, 8))
    counts = rng.poisson(np.broadcast_to(imputed, (5, 3, 8))).astype(float)
    out = condition_scores(imputed, generic, counts, sigma_bins=1.0)
    pred = np.broadcast_to(imputed, counts.shape)
    assert out["n_trials"] == 5
    assert out["bps_flat"] == pytest.approx(bits_per_spike(pred, counts))
    assert out["bps_generic"] == pytest.approx(bits_per_spike(pred, counts, null_rates=generic))
    assert out["generic_bps_flat"] == pytest.approx(bits_per_spike(np.broadcast_to(generic, counts.shape), counts))
    ref = condition_specific_score(imputed, smooth_psth(counts.mean(axis=0), 1.0), generic)
    assert out["r"] == pytest.approx(ref["r"]) and out["r2"] == pytest.approx(ref["r2"])
    empty = condition_scores(imputed, generic, np.zeros_like(counts), observed=imputed)
    assert np.isnan(empty["bps_flat"]) and empty["r2"] == pytest.approx(1.0)


def test_stacking_weights_recover_the_mixture_the_counts_came_from():
    from neurovamp.analysis.metrics import stacking_weights

    rng = np.random.default_rng(4)
    a = rng.uniform(0.05, 2.0, (400, 6, 10))
    b = rng.uniform(0.05, 2.0, a.shape)
    counts = rng.poisson(0.3 * a + 0.7 * b)
    w = stacking_weights(np.stack([a, b]), counts)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w == pytest.approx([0.3, 0.7], abs=0.03)
    # a source unrelated to the counts gets (almost) no weight; one source gets all of it
    noise = rng.uniform(0.05, 2.0, a.shape)
    assert stacking_weights(np.stack([a, noise]), rng.poisson(a))[1] < 0.05
    assert stacking_weights(a[None], counts).tolist() == [1.0]
    # the weights maximise the likelihood: no other point of the simplex does better
    ll = lambda v: poisson_log_likelihood(v[0] * a + v[1] * b, counts)  # noqa: E731
    assert all(ll(w) >= ll(np.array([x, 1 - x])) - 1e-6 for x in np.linspace(0, 1, 21))
    with pytest.raises(DataError, match="predictions"):
        stacking_weights(np.stack([a, b]), counts[:, :3])
