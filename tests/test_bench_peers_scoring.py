"""The local scorers and sub-window helpers of ``benchmarks/peers`` (no CEBRA or MultiVae needed).

``benchmarks/bench_peers.py`` scores neurovamp, CEBRA and MultiVae through
``benchmarks/peers/scoring.py``; its local scorers (generic null, CEBRA's consistency score)
and the sub-window cut/stitch rules are checked here against hand-computed values (the
generic-null bits/spike and condition-specific r it takes from neurovamp are checked in
tests/test_metrics.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

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
