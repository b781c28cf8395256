"""The band's model error measured out of sample (leave-one-condition-out), on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from neurovamp.analysis.calibration import LocoErrorModel, calibration_sums, model_error_from_loco
from neurovamp.analysis.impute import impute_condition_mean
from neurovamp.analysis.metrics import band_coverage
from neurovamp.data.dataset import make_dataset
from neurovamp.data.modality import make_modality
from neurovamp.errors import ConfigError, DataError

BIN = 0.1


def test_calibration_sums_by_hand():
    imputed = np.array([[2.0, 4.0], [1.0, 0.0]])  # (unit, time) Hz
    trials = np.array([[[1.0, 5.0], [0.0, 0.0]],
                       [[3.0, 5.0], [2.0, 0.0]],
                       [[2.0, 2.0], [1.0, 0.0]]])  # (trial, unit, time) Hz
    sums = calibration_sums(imputed, trials, ["u0", "u1"], floor_hz=0.5)
    # PSTH: unit 0 [2, 4], unit 1 [1, 0]; squared differences from the imputation: all 0
    np.testing.assert_allclose(sums["sq_error"], [0.0, 0.0])
    # var (ddof 1) / 3 trials: unit 0 bins [1, 3] / 3; unit 1 bins [1, 0] / 3
    np.testing.assert_allclose(sums["noise"], [4 / 3, 1 / 3])
    np.testing.assert_allclose(sums["rate_sum_hz"], [6.0, 1.5])  # unit 1: max(0, 0.5) in the second bin
    np.testing.assert_allclose(sums["rate_sq_sum_hz2"], [20.0, 1.25])
    assert (sums["unit"], sums["n_bins"], sums["n_trials"], sums["rate_floor_hz"]) == (["u0", "u1"], 2, 3, 0.5)
    shifted = calibration_sums(imputed + np.array([[1.0], [3.0]]), trials, ["u0", "u1"])
    np.testing.assert_allclose(shifted["sq_error"], [2.0, 18.0])
    with pytest.raises(DataError, match="do not match"):
        calibration_sums(imputed, trials[:, :1], ["u0", "u1"])


def _fit(animal, condition, sq, noise, rate, rate_sq, n_bins=10, floor=0.1):
    return {"animal": animal, "condition": condition, "calibration": {
        "unit": [1, 2], "sq_error": sq, "noise": noise, "rate_sum_hz": rate, "rate_sq_sum_hz2": rate_sq,
        "rate_floor_hz": floor, "n_bins": n_bins, "n_trials": 20}}


def test_model_error_from_loco_pools_units_and_conditions_by_hand():
    fits = [
        _fit("b", "A", [10.0, 30.0], [4.0, 6.0], [20.0, 40.0], [50.0, 200.0]),
        _fit("b", "B", [8.0, 2.0], [2.0, 4.0], [10.0, 30.0], [20.0, 100.0]),
        _fit("a", "A", [900.0, 900.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]),  # another animal: ignored
        {"animal": "b", "condition": "C", "r": 0.5},  # a fit made before the sums were recorded: ignored
    ]
    excess = (10 - 4) + (30 - 6) + (8 - 2) + (2 - 4)  # 34 Hz²
    for power, denominator in ((0, 4 * 10), (1, 20 + 40 + 10 + 30), (2, 50 + 200 + 20 + 100)):
        error = model_error_from_loco({"fits": fits}, "b", power=power)
        assert error.scale == pytest.approx(excess / denominator)
        assert (error.conditions, error.n_points, error.power) == (["A", "B"], 40, power)
    assert error.noise_share == pytest.approx(16 / 50)
    one = model_error_from_loco(fits, "b", units=[2], power=1)
    assert one.scale == pytest.approx((24 - 2) / 70) and one.units == [2]
    assert model_error_from_loco(fits, "b", exclude=["B"], power=0).scale == pytest.approx(30 / 20)
    assert model_error_from_loco(fits, "c") is None  # no fit of that animal
    negative = [_fit("b", "A", [1.0, 1.0], [4.0, 6.0], [20.0, 40.0], [1.0, 1.0])]
    assert model_error_from_loco(negative, "b").scale == 0.0  # all noise: clipped at zero
    with pytest.raises(DataError, match="no unit"):
        model_error_from_loco(fits, "b", units=[7])
    with pytest.raises(ConfigError, match="power"):
        model_error_from_loco(fits, "b", power=3)
    # sd bin by bin: k * max(rate, floor) ** power
    np.testing.assert_allclose(LocoErrorModel("b", 0.5, 1, 0.1, [], [], 1, 0.0).sd(np.array([0.0, 2.0, 8.0])),
                               np.sqrt(0.5 * np.array([0.1, 2.0, 8.0])))


# --------------------------------------------------------------------------- a hand-made imputation
TRUE = {c: np.array([[4.0, 8.0, 6.0], [1.0, 2.0, 3.0]]) * k for c, k in (("A", 1.0), ("B", 2.0), ("C", 1.5))}
DELTA = 2.0  # Hz: the model's error on a condition the target was not trained on


class StubModel:
    """Maps a source trial of condition c to the target's rates TRUE[c] (+ DELTA on C).

    The model is exact on the target's experienced conditions A and B (the in-sample error
    is zero) but misses the never-experienced C by DELTA Hz in every bin.
    """

    is_fitted = True
    animals_ = ("a", "b")

    def __init__(self, target_mod):
        self.target_mod = target_mod

    def generate(self, modality, source, target, n_samples=0, seed=0):
        rates = np.stack([TRUE[c] + (DELTA if c == "C" else 0.0) for c in modality["odor"].values]) * BIN
        dims = ("trial", "unit", "time")
        if n_samples:
            rng = np.random.default_rng(seed)
            rates = rates[None] * np.exp(0.001 * rng.normal(size=(n_samples,) + rates.shape))
            dims = ("sample",) + dims
        return xr.DataArray(rates, dims=dims, coords={"unit": self.target_mod["unit"].values,
                                                      "time": self.target_mod["time"].values},
                            attrs={"bin_size": BIN})


@pytest.fixture()
def case():
    n = 10  # trials per condition
    source = make_modality(np.zeros((3 * n, 2, 3)), animal="a", bin_size=BIN, window_start=0.0,
                           trial_labels={"odor": ["A"] * n + ["B"] * n + ["C"] * n})
    # the target's trials are noiseless (every trial = its true rate): the PSTH is the truth
    counts = np.concatenate([np.repeat(TRUE[c][None] * BIN, n, axis=0) for c in "AB"])
    target = make_modality(counts, animal="b", bin_size=BIN, window_start=0.0,
                           trial_labels={"odor": ["A"] * n + ["B"] * n})
    return StubModel(target), make_dataset([source, target])


def test_loco_band_widens_to_the_held_out_error_where_the_in_sample_band_cannot(case):
    model, tree = case
    in_sample = impute_condition_mean(model, tree, target="b", condition={"odor": "C"}, n_samples=400)
    assert in_sample.attrs["band"] == "predictive"
    np.testing.assert_allclose(in_sample["rates_model_error_sd"], 0.0, atol=1e-9)  # exact on A and B
    assert band_coverage(in_sample["rates_lo"], in_sample["rates_hi"], TRUE["C"]) == 0.0

    # LOCO: with A (then B) hidden from b, the model misses it by DELTA, as it misses C
    trials = {c: np.repeat(TRUE[c][None], 10, axis=0) for c in "AB"}
    fits = [{"animal": "b", "condition": c, "calibration": calibration_sums(TRUE[c] + DELTA, trials[c], [0, 1])}
            for c in "AB"]
    for power in (0, 1):
        error = model_error_from_loco({"fits": fits}, "b", power=power)
        result = impute_condition_mean(model, tree, target="b", condition={"odor": "C"}, n_samples=400,
                                       model_error=error)
        assert result.attrs["band"] == "predictive-loco"
        assert result.attrs["model_error_rate_power"] == power
        assert result["rates_model_error_sd"].dims == ("unit", "time")
        sd = result["rates_model_error_sd"].values
        if power == 0:  # one sd for every bin: the held-out residual itself
            np.testing.assert_allclose(sd, DELTA, rtol=1e-9)
        else:  # variance DELTA² on average over the held-out bins, scaled by the imputed rate
            k = 2 * 6 * DELTA**2 / sum((TRUE[c] + DELTA).sum() for c in "AB")
            np.testing.assert_allclose(sd, np.sqrt(k * (TRUE["C"] + DELTA)), rtol=1e-6)
        assert band_coverage(result["rates_lo"], result["rates_hi"], TRUE["C"]) == 1.0
        np.testing.assert_allclose(result["rates_posterior_lo"], in_sample["rates_posterior_lo"])  # same draws
    same = impute_condition_mean(model, tree, target="b", condition={"odor": "C"}, n_samples=400,
                                 model_error={"fits": fits})  # the LOCO result itself
    assert same.attrs["band"] == "predictive-loco" and same.attrs["model_error_conditions"] == "A,B"


def test_model_error_options_are_checked(case):
    model, tree = case
    with pytest.raises(ConfigError, match="n_samples"):
        impute_condition_mean(model, tree, target="b", condition={"odor": "C"}, model_error=np.ones(2))
    with pytest.raises(ConfigError, match="shape"):
        impute_condition_mean(model, tree, target="b", condition={"odor": "C"}, n_samples=10,
                              model_error=np.ones(5))
    with pytest.raises(DataError, match="no fit of 'b'"):
        impute_condition_mean(model, tree, target="b", condition={"odor": "C"}, n_samples=10,
                              model_error={"fits": [{"animal": "a", "condition": "A"}]})
    given = impute_condition_mean(model, tree, target="b", condition={"odor": "C"}, n_samples=200,
                                  model_error=np.full(2, DELTA))
    assert given.attrs["band"] == "predictive-given"
    assert band_coverage(given["rates_lo"], given["rates_hi"], TRUE["C"]) == 1.0
