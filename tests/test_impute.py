"""Imputation of one rat from the others, scored against the simulator's ground truth.

One small MMVM VAE is fitted per module on the default simulated set (3 rats; rat3 never
smells odor E). Measured when these tests were written (seed 0): the condition mean imputed
for rat3 / odor E correlates with rat3's true E rates at r ≈ 0.79 (unit-centred ≈ 0.78),
against r ≈ 0.4-0.55 for independent VAEs; the thresholds below keep a wide margin.
"""

from __future__ import annotations

import copy
import math
import os

import numpy as np
import pytest
import torch
import xarray as xr

from neurovamp.analysis.impute import impute, impute_condition_mean, source_predictions
from neurovamp.analysis.metrics import band_coverage
from neurovamp.io.recordings import load_recordings
from neurovamp.data.pairing import pair_trials
from neurovamp.pipelines.default_data import default_dataset_path, default_nwb_paths
from neurovamp.errors import ConfigError, DataError
from neurovamp.models.estimator import MultiAnimalModel
from neurovamp.simulate import load_ground_truth

WINDOW = (-0.5, 1.0)
BIN = 0.05
N_BINS = 30
TIME = WINDOW[0] + BIN * (np.arange(N_BINS) + 0.5)


def fit_small(paired, kind: str = "mmvm", seed: int = 0) -> MultiAnimalModel:
    """Linear encoder/decoder, 3 latents, 30 epochs of ~10 batches (about 300 steps)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; one thread is fastest for this size
    try:
        return MultiAnimalModel(kind, latent_dim=3, hidden=[], seed=seed, device="cpu").fit(
            paired, epochs=30, batch_size=128, lr=1e-2, patience=None, progress=False
        )
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tree() -> xr.DataTree:
    return load_recordings(default_nwb_paths(), event="odor_onset", window=WINDOW, bin_size=BIN,
                           labels=["odor", "position", "in_sequence"])


@pytest.fixture(scope="module")
def paired(tree):
    return pair_trials(tree, by="odor", strategy="resample", window=5, stride=1, seed=0)


@pytest.fixture(scope="module")
def model(paired):
    return fit_small(paired)


@pytest.fixture(scope="module")
def truth():
    gt = load_ground_truth(default_dataset_path())

    def rates(rat: str, odor: str) -> np.ndarray:
        fine = gt.condition_rate(rat, odor)  # (unit, 150) in Hz on 10 ms bins
        return fine.reshape(fine.shape[0], N_BINS, -1).mean(axis=-1)

    return rates


def corr(a: np.ndarray, b: np.ndarray, centre: bool = False) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if centre:
        a, b = a - a.mean(axis=-1, keepdims=True), b - b.mean(axis=-1, keepdims=True)
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


# --------------------------------------------------------------------------- the key use case
def test_never_experienced_condition_matches_the_truth(model, paired, truth):
    assert "E" not in set(paired.modalities["rat3"]["odor"].values.tolist())  # premise
    result = impute_condition_mean(model, paired, target="rat3", condition={"odor": "E"})
    rates = result["rates"]
    assert rates.dims == ("unit", "time") and rates.attrs["units"] == "Hz"
    np.testing.assert_allclose(result["time"], TIME)
    assert result["unit"].values.tolist() == model.units_["rat3"]
    assert result["source"].values.tolist() == ["rat1", "rat2"]
    true_e = truth("rat3", "E")
    r, r_centred = corr(rates, true_e), corr(rates, true_e, centre=True)
    assert r > 0.6, r  # measured 0.79
    assert r_centred > 0.5, r_centred  # within-unit modulation, measured 0.78
    # specific to E: closer to E than to any odor rat3 did experience (true E vs C: 0.47;
    # measured imputed-vs-C 0.59 against imputed-vs-E 0.78)
    for odor in "ABCD":
        assert r_centred > corr(rates, truth("rat3", odor), centre=True) + 0.1, odor
    # uncertainty: non-negative, the standard error is below the single-trial spread
    assert np.all(result["rates_sd"].values >= 0) and np.all(result["rates_sem"] <= result["rates_sd"] + 1e-9)
    # the mixture is the average of the sources' means
    np.testing.assert_allclose(result["rates"], result["rates_by_source"].mean("source"), rtol=1e-6)
    assert result.attrs["n_trials_total"] == int(result["n_trials"].sum())


def test_generic_prediction_beside_the_imputation(model, paired, truth):
    result = impute_condition_mean(model, paired, target="rat3", condition={"odor": "E"})
    generic = result["rates_generic"]
    assert generic.dims == ("unit", "time") and generic.attrs["units"] == "Hz"
    # by hand: rat3's PSTH of each odor it smelled (A-D), averaged with equal weight, in Hz,
    # smoothed in time by NULL_SMOOTH_S (the generic null's rule; smooth_psth has its own tests)
    from neurovamp.analysis.metrics import NULL_SMOOTH_S, smooth_psth

    def smoothed(x):
        return smooth_psth(x, NULL_SMOOTH_S / BIN)

    rat3 = paired.modalities["rat3"]
    odors = np.asarray(rat3["odor"].values)
    psths = [rat3.values[odors == o].mean(axis=0) / BIN for o in "ABCD"]
    np.testing.assert_allclose(generic.values, smoothed(np.mean(psths, axis=0)), rtol=1e-9)
    # imputing an odor rat1 did smell leaves that odor out of its generic prediction
    res_a = impute_condition_mean(model, paired, target="rat1", condition={"odor": "A"})
    rat1 = paired.modalities["rat1"]
    odors1 = np.asarray(rat1["odor"].values)
    expected = np.mean([rat1.values[odors1 == o].mean(axis=0) / BIN for o in "BCDE"], axis=0)
    np.testing.assert_allclose(res_a["rates_generic"].values, smoothed(expected), rtol=1e-9)


def test_held_out_trials_of_an_experienced_condition(model, paired, truth):
    result = impute(model, paired, target="rat1", condition={"odor": "A"}, split="test")
    assert set(result["split"].values.tolist()) == {"test"} and set(result["odor"].values.tolist()) == {"A"}
    test_a = set(np.asarray(paired.modalities["rat1"]["trial"].values)[
        (paired.trial_split["rat1"] == "test") & (np.asarray(paired.modalities["rat1"]["odor"]) == "A")].tolist())
    assert set(result["target_trial"].values.tolist()) <= test_a | {-1}
    assert corr(result["rates"].mean("trial"), truth("rat1", "A")) > 0.6


def test_per_sample_mixture_is_the_mean_of_generated_rates(model, paired):
    result = impute(model, paired, target="rat3", condition={"odor": "E"})
    assert result["rates"].dims == ("trial", "unit", "time") and result["rates"].attrs["units"] == "Hz"
    assert set(result["odor"].values.tolist()) == {"E"} and np.all(result["n_sources"] == 2)
    # sample 0 by hand: model.generate from each source trial, converted to Hz, averaged
    by_hand = []
    for source in ("rat1", "rat2"):
        trial_id = int(result["source_trial"].sel(source=source)[0])
        da = paired.modalities[source].sel(trial=[trial_id])
        assert da["odor"].item() == "E"
        by_hand.append(model.generate(da, source, "rat3").values[0] / BIN)
    np.testing.assert_allclose(result["rates"][0], np.mean(by_hand, axis=0), rtol=1e-5)
    np.testing.assert_allclose(result["rates_sd"][0], np.std(by_hand, axis=0), rtol=1e-4, atol=1e-6)
    geometric = impute(model, paired, target="rat3", condition={"odor": "E"}, combine="geometric")
    assert np.all(geometric["rates"].values <= result["rates"].values + 1e-9)  # AM-GM


def test_every_trial_of_every_split_by_default(model, paired):
    result = impute(model, paired, target="rat2")
    assert set(result["split"].values.tolist()) == {"train", "val", "test"}
    assert set(result["odor"].values.tolist()) == set("ABCDE")
    preds = source_predictions(model, paired, target="rat2", sources=["rat3"], condition={"odor": ["A", "B"]})
    assert list(preds) == ["rat3"] and set(preds["rat3"]["odor"].values.tolist()) == {"A", "B"}


def test_tree_input_uses_every_selected_trial(model, tree):
    result = impute(model, tree, target="rat3", condition={"position": "5"})  # text typed like the label
    assert set(result["position"].values.tolist()) == {5}
    for source in ("rat1", "rat2"):
        mod = tree[source]["counts"]
        wanted = set(np.asarray(mod["trial"])[np.asarray(mod["position"]) == 5].tolist())
        used = set(result["source_trial"].sel(source=source).values.tolist()) - {-1}
        assert used == wanted
    assert "split" not in result.coords


def test_bad_inputs_name_what_is_wrong(model, paired, tree):
    with pytest.raises(DataError, match=r"unknown target animal 'rat9'; known animals: rat1, rat2, rat3"):
        impute(model, paired, target="rat9")
    with pytest.raises(DataError, match=r"unknown source animal 'ratX'"):
        impute(model, paired, target="rat3", sources=["ratX"])
    with pytest.raises(DataError, match=r"unknown condition column 'smell'.*available labels: .*odor"):
        impute(model, paired, target="rat3", condition={"smell": "E"})
    with pytest.raises(DataError, match=r"unknown value 'F' of condition column 'odor'.*A, B, C, D, E"):
        impute_condition_mean(model, paired, target="rat3", condition={"odor": "F"})
    with pytest.raises(DataError, match="cannot read 'five'"):
        impute(model, paired, target="rat3", condition={"position": "five"})
    with pytest.raises(DataError, match=r"no source animal \(rat3\) has trials with odor=E"):
        impute(model, paired, target="rat1", sources=["rat3"], condition={"odor": "E"})
    with pytest.raises(ConfigError, match="split applies to PairedData"):
        impute(model, tree, target="rat3", split="test")
    with pytest.raises(ConfigError, match="combine must be one of"):
        impute(model, paired, target="rat3", combine="median")
    with pytest.raises(ConfigError, match="not fitted"):
        impute(MultiAnimalModel("mmvm"), paired, target="rat3")


# --------------------------------------------------------------------------- posterior credible bands
DEFAULT_VARIABLES = {"rates", "rates_sd", "rates_sem", "rates_by_source", "rates_generic"}
BAND_VARIABLES = {"rates_lo", "rates_hi", "rates_posterior_mean", "rates_posterior_lo", "rates_posterior_hi",
                  "rates_model_error_sd"}


def with_posterior_variance(model: MultiAnimalModel, variance: float) -> MultiAnimalModel:
    """A copy whose source encoders (rat1, rat2) have posterior variance ``variance``, means unchanged."""
    changed = copy.deepcopy(model)
    k = changed.config.latent_dim
    with torch.no_grad():
        for encoder in changed.module_.encoders[:2]:
            encoder.head.weight[k:] = 0.0  # log-variance rows of the linear head
            encoder.head.bias[k:] = math.log(variance)
    return changed


def inside(ds: xr.Dataset, name: str = "rates", band: str = "rates") -> bool:
    return bool(((ds[f"{band}_lo"] <= ds[name]) & (ds[name] <= ds[f"{band}_hi"])).all())


def test_band_is_optional_and_leaves_the_default_outputs_alone(model, paired):
    plain = impute_condition_mean(model, paired, target="rat3", condition={"odor": "E"})
    assert set(plain.data_vars) == DEFAULT_VARIABLES
    assert set(plain.attrs) == {"units", "target", "sources", "condition", "split", "combine", "bin_size", "model",
                                "n_trials_total"}
    banded = impute_condition_mean(model, paired, target="rat3", condition={"odor": "E"}, n_samples=50, level=0.8)
    assert set(banded.data_vars) == DEFAULT_VARIABLES | BAND_VARIABLES
    xr.testing.assert_identical(banded[sorted(DEFAULT_VARIABLES)].drop_attrs(), plain.drop_attrs())
    assert (banded.attrs["n_samples"], banded.attrs["credible_level"], banded.attrs["sample_seed"]) == (50, 0.8, 0)
    assert banded.attrs["band"] == "predictive"
    assert banded["rates_lo"].dims == ("unit", "time") and banded["rates_hi"].attrs["units"] == "Hz"
    assert "80 %" in banded["rates_lo"].attrs["long_name"]
    again = impute_condition_mean(model, paired, target="rat3", condition={"odor": "E"}, n_samples=50, level=0.8)
    xr.testing.assert_identical(again, banded)  # seeded
    other = impute_condition_mean(model, paired, target="rat3", condition={"odor": "E"}, n_samples=50, level=0.8,
                                  seed=1)
    assert not np.allclose(other["rates_lo"], banded["rates_lo"])
    per_sample = impute(model, paired, target="rat3", condition={"odor": "E"})
    assert set(per_sample.data_vars) == {"rates", "rates_sd"} and "n_samples" not in per_sample.attrs
    for bad, message in ((dict(n_samples=1), "n_samples must be 0"), (dict(n_samples=-2), "n_samples must be 0"),
                         (dict(n_samples=10, level=1.0), "level must be"), (dict(n_samples=10, level=0), "level must be"),
                         (dict(n_samples=10, seed=-1), "seed must be a non-negative integer")):
        with pytest.raises(ConfigError, match=message):
            impute_condition_mean(model, paired, target="rat3", condition={"odor": "E"}, **bad)
    with pytest.raises(ConfigError, match="n_samples must be 0"):
        impute(model, paired, target="rat3", n_samples=True)


def test_band_contains_the_prediction_and_scales_with_the_posterior_sd(model, paired):
    """Source posteriors N(mu(x), s^2 I) by construction: s = 0.1, then 0.2 (means unchanged)."""
    plain = impute_condition_mean(model, paired, target="rat3", condition={"odor": "E"})
    results = {}
    for variance in (0.01, 0.04):
        changed = with_posterior_variance(model, variance)
        mean = impute_condition_mean(changed, paired, target="rat3", condition={"odor": "E"}, n_samples=200)
        samples = impute(changed, paired, target="rat3", condition={"odor": "E"}, n_samples=200)
        np.testing.assert_array_equal(mean["rates"], plain["rates"])  # only the variance changed
        for ds, band in ((mean, "rates_posterior"), (samples, "rates")):
            assert inside(ds, "rates", band) and inside(ds, "rates_posterior_mean", band)
        results[variance] = (mean, samples)
    for (narrow, wide), band in zip(zip(results[0.01], results[0.04]), ("rates_posterior", "rates")):
        ratio = (wide[f"{band}_hi"] - wide[f"{band}_lo"]) / (narrow[f"{band}_hi"] - narrow[f"{band}_lo"])
        # twice the posterior SD, about twice the width (exactly 2 for a linear readout; the exp link skews it
        # slightly; measured 1.93-2.01)
        assert float(ratio.min()) > 1.8 and float(ratio.max()) < 2.3, (float(ratio.min()), float(ratio.max()))
        # exp link: E_q[rate] exceeds the rate at the posterior mean, more so with more variance (Jensen)
    gaps = [float((results[v][0]["rates_posterior_mean"] - results[v][0]["rates"]).mean()) for v in (0.01, 0.04)]
    assert 0 < gaps[0] < gaps[1], gaps


def test_band_covers_the_true_rate_far_more_often_than_the_posterior_alone(model, paired, truth):
    """Coverage of rat3's never-smelled odor E against the simulator's true rates.

    The latent-posterior band alone (what rates_lo/rates_hi were before) covered 8 % of the
    true rates (0.36 Hz median width); with the model error measured on rat3's smelled odors
    the 95 % band covers 46 % (3.0 Hz). Still short of 95 %: E is imputed worse than the
    odors rat3 smelled (see docs/model.md and benchmarks/results/impute_truth.md).
    """
    result = impute_condition_mean(model, paired, target="rat3", condition={"odor": "E"}, n_samples=200)
    true_e = truth("rat3", "E")
    covered = band_coverage(result["rates_lo"], result["rates_hi"], true_e)
    posterior_only = band_coverage(result["rates_posterior_lo"], result["rates_posterior_hi"], true_e)
    assert posterior_only < 0.2 and covered > 0.35 and covered > 3 * posterior_only, (covered, posterior_only)
    assert bool((result["rates_lo"] <= result["rates_posterior_lo"] + 1e-9).mean() > 0.9)  # wider, not shifted


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("NEUROVAMP_SLOW") != "1", reason="set NEUROVAMP_SLOW=1 to run (4 refits, ~50 s)")
def test_loco_band_covers_the_true_rate_more_often_than_the_in_sample_band(model, paired, tree, truth):
    """The calibrated band: model error from leave-one-condition-out fits of rat3 (A-D hidden in turn).

    Same settings as the module's small linear model. Measured when written (seed 0): the
    in-sample band covers rat3's true odor-E rates in 48 % of the bins, the LOCO band in 76 %
    (rate**0 / rate**2 scalings: 74 % / 76 %). Still short of 95 % because this barely trained
    model imputes E five times worse than the odors A-D held out of it (LOCO scale 0.61 vs 3.15
    fitted on E's true error, which would cover 96 %). With neurovamp's default MMVM on the
    simulator's default kind the LOCO band covers 96-100 % (benchmarks/results/impute_truth.md).
    """
    import functools

    from neurovamp.analysis.loco import leave_condition_out

    loco = leave_condition_out(
        tree, by="odor", pair=functools.partial(pair_trials, by="odor", strategy="resample", window=5, stride=1,
                                                seed=0),
        model_config=model.config.to_dict(), training=dict(epochs=30, batch_size=128, lr=1e-2, patience=None),
        seed=0, animals=["rat3"], progress=False)
    result = impute_condition_mean(model, paired, target="rat3", condition={"odor": "E"}, n_samples=200,
                                   model_error=loco)
    assert result.attrs["band"] == "predictive-loco" and result.attrs["model_error_conditions"] == "A,B,C,D"
    in_sample = impute_condition_mean(model, paired, target="rat3", condition={"odor": "E"}, n_samples=200)
    true_e = truth("rat3", "E")
    covered = band_coverage(result["rates_lo"], result["rates_hi"], true_e)
    before = band_coverage(in_sample["rates_lo"], in_sample["rates_hi"], true_e)
    assert covered > 0.65 and covered > before + 0.2, (covered, before)
    assert float((result["rates_hi"] - result["rates_lo"]).median()) > float(
        (in_sample["rates_hi"] - in_sample["rates_lo"]).median())


def test_model_error_sd_by_hand(model, paired):
    """rates_model_error_sd: rat3's smelled odors imputed like E, against rat3's real PSTHs."""
    result = impute_condition_mean(model, paired, target="rat3", condition={"odor": "E"}, n_samples=20)
    rat3 = paired.modalities["rat3"]
    odors = np.asarray(rat3["odor"].values)
    squared = noise = 0.0
    for odor in "ABCD":
        imputed = impute_condition_mean(model, paired, target="rat3", condition={"odor": odor})["rates"].values
        hz = rat3.values[odors == odor].astype(float) / BIN
        squared = squared + ((imputed - hz.mean(axis=0)) ** 2).sum(axis=1)
        noise = noise + (hz.var(axis=0, ddof=1) / hz.shape[0]).sum(axis=1)
    expected = np.sqrt(np.maximum(squared - noise, 0) / (4 * N_BINS))
    np.testing.assert_allclose(result["rates_model_error_sd"].values, expected, rtol=1e-6)
    assert expected.max() > 0


def test_per_sample_band_with_a_missing_source(model, paired):
    """rat3 never smelled E: odor-E samples for rat2 have rat1 alone, odor-D samples both sources."""
    result = impute(model, paired, target="rat2", condition={"odor": ["D", "E"]}, split="test", n_samples=100,
                    combine="geometric")
    assert set(result["n_sources"].values.tolist()) == {1, 2}
    assert inside(result, "rates") and inside(result, "rates_posterior_mean")
    assert float((result["rates_hi"] - result["rates_lo"]).min()) > 0
    assert result.attrs["n_samples"] == 100 and result["rates_lo"].dims == ("trial", "unit", "time")


def test_single_window_band_matches_the_lognormal_truth(model, paired):
    """rat2 from rat1 alone (rat3 never smelled E); bin 0 lies in sub-window 0 only (stride 1).

    There the rate is exp(w_u . z + b_u) / bin with z ~ N(mu, s^2 I): log-normal with log-SD
    s |w_u|. So the 95 % band is rates * exp(+-1.96 s |w_u|) and the posterior mean is
    rates * exp(s^2 |w_u|^2 / 2), rates being the rate at the posterior mean.
    """
    config = model.config
    assert (config.likelihood, config.link, tuple(config.hidden)) == ("poisson", "exp", ())  # Poisson GLM readout
    s = 2.0  # the fitted decoder weights are small (|w_u| ~ 0.06-0.4): log-SDs 0.13-0.83
    changed = with_posterior_variance(model, s**2)
    result = impute(changed, paired, target="rat2", condition={"odor": "E"}, split="test", n_samples=1000)
    assert np.all(result["n_sources"] == 1)
    weight = changed.module_.decoders[1].out.weight.detach().numpy().astype(float)  # (unit * window, latent)
    log_sd = s * np.linalg.norm(weight[:: paired.window], axis=1)  # feature (unit u, first bin of the window)
    at_bin0 = result.isel(time=0)
    z_hi = np.log(at_bin0["rates_hi"] / at_bin0["rates"]) / log_sd
    z_lo = np.log(at_bin0["rates"] / at_bin0["rates_lo"]) / log_sd
    # 1.96 for a 95 % interval (a 90 % one would give 1.64); Monte-Carlo SE of one quantile ~0.09 SD
    for z in (z_hi, z_lo):
        assert abs(float(np.median(z)) - 1.96) < 0.12 and float(np.abs(z - 1.96).max()) < 0.45, z.values
    # measured medians 1.93 (upper) and 1.93 (lower), worst unit 0.29 off
    jensen = np.log(at_bin0["rates_posterior_mean"] / at_bin0["rates"]) / (0.5 * log_sd**2)
    assert abs(float(np.median(jensen)) - 1.0) < 0.2, float(np.median(jensen))  # measured 0.97
