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


def test_checks_give_the_mean_and_the_every_seed_verdicts_from_the_numbers(bench):
    import pandas as pd

    rows = [{"model": "mmvm", "seed": s, "cond_r": r, "bps_vs_generic": b, "coverage_loco_p1": c,
             "band_width_loco_p1_hz": 5.0, "alignment_mean_r2": 0.8, "alignment_identity_mean_r2": 0.8}
            for s, r, b, c in ((0, 0.9, 0.1, 0.99), (1, 0.3, 0.05, 0.93), (2, 0.8, -0.01, 0.91))]
    rows += [{"model": "independent", "seed": s, "cond_r": 0.1, "bps_vs_generic": 0.0, "coverage_loco_p1": 0.9,
              "band_width_loco_p1_hz": 5.0, "alignment_mean_r2": 0.4, "alignment_identity_mean_r2": -1.0}
             for s in range(3)]
    text = "\n".join(bench.checks(pd.DataFrame(rows)))
    # r: mean 0.667 >= 0.4, one seed below; bits/spike: mean > 0, one seed below; band: mean 0.943 inside, 2 of 3
    assert "r ≥ 0.4 (mmvm 0.667 ± 0.321): mean over seeds met; on every seed not met (2 of 3 seeds" in text
    assert "generic prediction in bits/spike (0.047 ± 0.055 bits/spike relative to it): mean over seeds met; " \
           "on every seed not met (2 of 3 seeds above 0)" in text
    assert "(coverage 0.943 ± 0.042, per seed 0.91-0.99): mean over seeds met; on every seed not met (2 of 3" in text
    assert "0.800 ± 0.000 vs 0.400 ± 0.000 (difference +0.400, more than twice" in text
