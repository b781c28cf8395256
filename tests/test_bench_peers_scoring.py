"""The local scorers and sub-window helpers of ``benchmarks/peers`` (no CEBRA or MultiVae needed).

``benchmarks/bench_peers.py`` scores neurovamp, CEBRA and MultiVae through
``benchmarks/peers/scoring.py``; its local stand-ins (generic null, condition-specific r,
CEBRA's consistency score) and the sub-window cut/stitch rules are checked here against
hand-computed values.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.special import gammaln

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from peers import scoring, windows  # noqa: E402


def test_generic_null_adds_one_flat_pseudo_trial() -> None:
    counts = np.array([[[0.0, 2.0, 0.0, 2.0]], [[0.0, 0.0, 2.0, 2.0]]])  # 2 trials, 1 unit, 4 bins
    flat = counts.mean()  # 1.0
    expected = (counts.sum(axis=0) + flat) / 3.0  # [[1/3, 1, 1, 5/3]]
    np.testing.assert_allclose(scoring.generic_null(counts, smooth_bins=0), expected)
    smoothed = scoring.generic_null(counts, smooth_bins=2.0)
    assert smoothed.shape == (1, 4)
    assert np.all(smoothed > 0)
    assert smoothed.std() < expected.std()  # smoothing only flattens the PSTH


def test_bits_per_spike_generic_matches_hand_computation() -> None:
    counts = np.array([[[1.0, 0.0, 3.0]], [[0.0, 2.0, 1.0]]])
    generic = np.array([[0.5, 1.0, 2.0]])
    rates = np.array([[[1.0, 0.5, 2.5]], [[0.2, 1.5, 1.0]]])

    def ll(lam: np.ndarray) -> float:
        return float(np.sum(counts * np.log(lam) - lam - gammaln(counts + 1)))

    expected = (ll(rates) - ll(np.broadcast_to(generic, counts.shape))) / (counts.sum() * np.log(2))
    assert scoring.bits_per_spike_generic(rates, counts, generic) == pytest.approx(expected)
    assert scoring.bits_per_spike_generic(np.broadcast_to(generic, counts.shape), counts, generic) == 0.0


def test_condition_specific_r_is_pearson_of_deviations_from_generic() -> None:
    generic = np.array([[1.0, 1.0, 1.0]])
    truth = generic + np.array([[1.0, 2.0, 3.0]])
    imputed = generic + np.array([[1.0, 3.0, 2.0]])
    assert scoring.condition_specific_r(imputed, truth, generic) == pytest.approx(0.5)
    scaled = generic + 0.3 * (truth - generic) + 0.1
    assert scoring.condition_specific_r(scaled, truth, generic) == pytest.approx(1.0)
    assert np.isnan(scoring.condition_specific_r(generic, truth, generic))  # no condition-specific signal


def test_consistency_r2_is_in_sample_linear_regression_r2() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    y = x @ rng.normal(size=(3, 2)) + 0.5
    assert scoring.consistency_r2(x, y) == pytest.approx(1.0)
    noisy = y + rng.normal(size=y.shape)
    xi = np.column_stack([x, np.ones(30)])
    fit = xi @ np.linalg.lstsq(xi, noisy, rcond=None)[0]
    r2 = 1 - ((noisy - fit) ** 2).sum(0) / ((noisy - noisy.mean(0)) ** 2).sum(0)
    assert scoring.consistency_r2(x, noisy) == pytest.approx(r2.mean())


def test_cut_then_stitch_round_trips_covered_bins() -> None:
    rng = np.random.default_rng(1)
    counts = rng.poisson(1.0, size=(3, 2, 9)).astype(np.float32)
    starts = np.array([0, 2, 4])  # window 4 covers bins 0..7; bin 8 is not covered
    samples = windows.cut(counts, starts, 4)
    assert samples.shape == (3, 3, 2 * 4)
    # one sample is (unit, time) row-major, as neurovamp flattens it
    np.testing.assert_array_equal(samples[1, 2].reshape(2, 4), counts[1, :, 4:8])
    back = windows.stitch(samples.astype(np.float64), starts, 4, 9)
    np.testing.assert_allclose(back[..., :8], counts[..., :8])
    assert np.all(np.isnan(back[..., 8]))
