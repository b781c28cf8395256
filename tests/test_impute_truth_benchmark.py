"""benchmarks/impute_truth.py is importable and its table is what it says (a tiny, quick run)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "impute_truth.py"
    spec = importlib.util.spec_from_file_location("impute_truth", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("NEUROVAMP_SLOW") != "1", reason="set NEUROVAMP_SLOW=1 to run")
def test_run_benchmark_returns_one_scored_row_per_model_and_seed(bench):
    table = bench.run_benchmark(["mmvm"], [0], model_kwargs=dict(latent_dim=2, hidden=[]),
                                fit_kwargs=dict(epochs=2, patience=None), n_samples=4, progress=False)
    assert list(table["model"]) == ["mmvm"] and list(table["seed"]) == [0]
    row = table.iloc[0]
    assert (row["target"], row["odor"]) == ("rat3", "E")
    for key in ("coverage", "coverage_posterior"):
        assert 0.0 <= row[key] <= 1.0
    assert row["coverage"] >= row["coverage_posterior"] - 0.05  # the model error widens the band
    for key in ("coverage_loco_p0", "coverage_loco_p1", "coverage_loco_p2", "coverage_oracle_scale"):
        assert 0.0 <= row[key] <= 1.0  # the LOCO-calibrated band (rat3's four smelled odors refitted)
    assert row["loco_scale_ratio"] > 0 and row["loco_seconds"] > 0
    for key in ("r", "generic_r", "cond_r", "true_generic_r"):
        assert -1.0 <= row[key] <= 1.0
    assert np.isfinite(row["bps_vs_generic"]) and np.isfinite(row["alignment_identity_mean_r2"])
    summary = bench.summarise(table)
    assert "±" not in summary.loc["mmvm", "r"]  # one seed: no sd


def test_rotated_missing_withholds_one_odor_per_seed_from_the_simulators_rat(bench):
    assert [bench.rotated_missing(s) for s in (0, 1, 2, 3, 4)] == [
        {"rat3": ("B",)}, {"rat3": ("C",)}, {"rat3": ("D",)}, {"rat3": ("E",)}, {"rat3": ("B",)}]
    sim = bench.simulate(1, "small", missing=bench.rotated_missing(1))
    assert bench.missing_case(sim) == ("rat3", "C")
    assert "C" not in sim.config.odors_of("rat3") and "E" in sim.config.odors_of("rat3")
