"""Tests of neurovamp.models.estimator.MultiAnimalModel: fit, latents, generate, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

from neurovamp.data.dataset import make_dataset
from neurovamp.data.modality import make_modality
from neurovamp.data.pairing import pair_trials
from neurovamp.errors import ConfigError, DataError, OutputExistsError
from neurovamp.models.config import ModelConfig
from neurovamp.models.estimator import MultiAnimalModel
from neurovamp.models.module import MultiAnimalVAE
from neurovamp.models.training import load_checkpoint

N_BINS = 7


def tiny_tree(seed: int = 0) -> xr.DataTree:
    """ratA (3 units, ids 10-12) and ratB (4 units, ids 20-23): 24 trials of odors A-C, 7 bins."""
    rng = np.random.default_rng(seed)
    mods = []
    for animal, first_id, n_units in (("ratA", 10, 3), ("ratB", 20, 4)):
        odors = np.repeat(np.array(list("ABC")), 8)
        tuning = rng.uniform(0.5, 4.0, size=(3, n_units, 1))
        rates = tuning[np.searchsorted(list("ABC"), odors)] * np.ones((1, 1, N_BINS))
        mods.append(
            make_modality(
                rng.poisson(rates).astype(float), animal=animal, bin_size=0.1, window_start=-0.2,
                trial_ids=100 + np.arange(24), unit_ids=first_id + np.arange(n_units),
                trial_labels={"odor": odors, "correct": np.arange(24) % 5 != 0},
                unit_coords={"location": np.array(["CA1"] * n_units)},
            )
        )
    return make_dataset(mods)


@pytest.fixture(scope="module")
def paired():
    # window 3, stride 2 over 7 bins: training starts 0, 2, 4; predictions decode starts 0..4
    return pair_trials(tiny_tree(), by="odor", window=3, stride=2, seed=0)


FIT = dict(epochs=4, batch_size=16, lr=1e-2, progress=False)


@pytest.fixture(scope="module")
def fitted(paired):
    return MultiAnimalModel("mmvm", latent_dim=2, hidden=(8,), seed=0, device="cpu").fit(paired, **FIT)


# --------------------------------------------------------------------------- construction
def test_construction_and_presets():
    model = MultiAnimalModel("poe", latent_dim=3, likelihood="negbin", beta=0.5)
    assert (model.config.model, model.config.latent_dim, model.config.likelihood, model.config.beta) == (
        "poe", 3, "negbin", 0.5)
    config = ModelConfig(model="moe", latent_dim=4)
    assert MultiAnimalModel(config=config).config == config
    with pytest.raises(ConfigError, match="not both"):
        MultiAnimalModel(config=config, latent_dim=2)
    with pytest.raises(ConfigError):
        MultiAnimalModel("vae")
    with pytest.raises(ConfigError):
        MultiAnimalModel(normalize="minmax")
    paper = MultiAnimalModel.paper_preset("independent")
    assert paper.config == ModelConfig.paper("independent")
    assert not paper.is_fitted
    with pytest.raises(ConfigError, match="not fitted"):
        paper.latents(np.zeros((1, 3, N_BINS)), "ratA")


# --------------------------------------------------------------------------- fit + latents
def test_fit_history_and_latents(fitted, paired):
    history = fitted.history_
    assert list(history["epoch"]) == [1, 2, 3, 4]
    assert {"train/loss", "val/loss", "train/rec/ratA", "val/reg/ratB"} <= set(history.columns)
    z = fitted.latents(paired, "ratB", split="test")
    test_ids = paired.modalities["ratB"]["trial"].values[paired.trial_split["ratB"] == "test"]
    assert z.dims == ("trial", "time", "latent")
    assert z.shape == (test_ids.size, 3, 2)
    np.testing.assert_array_equal(z["trial"].values, test_ids)
    assert set(z["split"].values) == {"test"}
    np.testing.assert_allclose(z["time"].values, [-0.05, 0.15, 0.35])  # sub-window centres
    assert {"odor", "correct", "event_time"} <= set(z.coords)
    np.testing.assert_array_equal(z["odor"].values, paired.modalities["ratB"].sel(trial=test_ids)["odor"].values)
    both = fitted.latents(paired, "ratB", return_std=True)
    assert isinstance(both, xr.Dataset) and both["mean"].sizes["trial"] == paired.counts[1].shape[0]
    assert float(both["std"].min()) > 0
    xr.testing.assert_equal(both["mean"].sel(trial=test_ids).drop_vars("split"), z.drop_vars("split").rename("mean"))


def test_latents_of_a_modality_match_units_by_id(fitted, paired):
    da = paired.modalities["ratA"]
    shuffled = da.isel(unit=[2, 0, 1])
    xr.testing.assert_allclose(fitted.latents(shuffled), fitted.latents(paired, "ratA").drop_vars("split"))
    # a plain count array in the model's unit order works too
    from_array = fitted.latents(da.values, "ratA")
    np.testing.assert_allclose(from_array.values, fitted.latents(da).values, rtol=1e-6)
    with pytest.raises(DataError, match="lacks 1 of the model's units"):
        fitted.latents(da.isel(unit=[0, 1]))
    with pytest.raises(DataError, match="unknown animal"):
        fitted.latents(da.assign_attrs(animal="ratZ"))
    with pytest.raises(ConfigError, match="name the animal"):
        fitted.latents(paired)


def test_same_seed_same_model(paired, fitted):
    again = MultiAnimalModel("mmvm", latent_dim=2, hidden=(8,), seed=0, device="cpu").fit(paired, **FIT)
    other = MultiAnimalModel("mmvm", latent_dim=2, hidden=(8,), seed=1, device="cpu").fit(paired, **FIT)
    xr.testing.assert_identical(again.latents(paired, "ratA"), fitted.latents(paired, "ratA"))
    assert again.history_.equals(fitted.history_)
    assert not np.allclose(other.latents(paired, "ratA").values, fitted.latents(paired, "ratA").values)


# --------------------------------------------------------------------------- generation
def test_generate_averages_overlapping_windows(fitted, paired):
    source = paired.modalities["ratA"]
    out = fitted.generate(source, "ratA", "ratB")
    assert out.dims == ("trial", "unit", "time") and out.shape == (24, 4, N_BINS)
    np.testing.assert_array_equal(out["unit"].values, [20, 21, 22, 23])
    np.testing.assert_array_equal(out["trial"].values, source["trial"].values)
    np.testing.assert_array_equal(out["location"].values, ["CA1"] * 4)
    np.testing.assert_array_equal(out["time"].values, source["time"].values)
    assert out.attrs["animal"] == "ratB" and out.attrs["source"] == "ratA"
    # by hand for trial 0: decode the posterior mean of the sub-window at every offset
    # (stride 1, not the training stride 2), average where they overlap
    vae = fitted.module_
    x = torch.tensor(source.values[0], dtype=torch.float32)
    per_window = []
    with torch.no_grad():
        for start in range(5):
            mu, _ = vae.encode([x[:, start:start + 3].reshape(1, -1), None])
            per_window.append(vae.decode(mu[0], 1).reshape(4, 3).numpy())
    expected = np.zeros((4, N_BINS))
    cover = np.zeros(N_BINS)
    for start, pred in zip(range(5), per_window):
        expected[:, start:start + 3] += pred
        cover[start:start + 3] += 1
    np.testing.assert_allclose(out.values[0], expected / cover, rtol=1e-5)
    recon = fitted.reconstruct(source)
    assert recon.shape == source.shape and recon.attrs["animal"] == "ratA"


def test_every_bin_is_predicted_and_lone_bins_equal_the_single_window_prediction(paired):
    data = pair_trials(tiny_tree(), by="odor", window=3, stride=3, seed=0)  # training starts 0, 3: bin 6 in none
    model = MultiAnimalModel(latent_dim=2, hidden=(8,), device="cpu").fit(data, **{**FIT, "epochs": 1})
    source = data.modalities["ratB"]
    out = model.generate(source, "ratB", "ratA")
    assert np.isfinite(out.values).all()
    for samples in (0, 3):
        assert np.isfinite(model.generate(source, "ratB", "ratA", n_samples=samples, seed=1).values).all()
    # the first and last bins are covered by one sub-window each: the overlap average there is
    # exactly the prediction of that sub-window alone (a trial cut to the sub-window's 3 bins)
    first = model.generate(source.isel(time=slice(0, 3)), "ratB", "ratA")
    last = model.generate(source.isel(time=slice(N_BINS - 3, N_BINS)), "ratB", "ratA")
    np.testing.assert_allclose(out.values[..., 0], first.values[..., 0], rtol=1e-6)
    np.testing.assert_allclose(out.values[..., -1], last.values[..., -1], rtol=1e-6)


def test_gaussian_normalisation_belongs_to_the_model(paired, tmp_path):
    model = MultiAnimalModel.paper_preset("mmvm", seed=0, device="cpu", hidden=(8,)).fit(paired, **FIT)
    norm = model.normalization_
    assert norm["kind"] == "zscore"
    train = paired.counts[0][paired.trial_split["ratA"] == "train"]
    np.testing.assert_allclose(norm["offset"]["ratA"], train.mean(axis=(0, 2)), rtol=1e-5)
    np.testing.assert_allclose(norm["scale"]["ratA"], train.std(axis=(0, 2)), rtol=1e-5)
    out = model.generate(paired.modalities["ratA"], "ratA", "ratB")
    assert float(out.min()) >= 0
    assert float(model.generate(paired.modalities["ratA"], "ratA", "ratB", n_samples=20, seed=0).min()) >= 0
    # predictions are on the count scale: close to ratB's mean counts, not to z-scores
    assert abs(float(out.mean()) - float(paired.counts[1].mean())) < 1.0
    loaded = MultiAnimalModel.load(model.save(tmp_path / "m"), device="cpu")
    xr.testing.assert_identical(loaded.generate(paired.modalities["ratA"], "ratA", "ratB"), out)


@pytest.mark.parametrize("kind", ["poe", "mopoe"])
def test_joint_models(paired, kind):
    model = MultiAnimalModel(kind, latent_dim=2, hidden=(8,), device="cpu").fit(paired, **{**FIT, "epochs": 2})
    ds = model.latents(paired, "ratA", return_std=True)
    assert np.isfinite(ds["mean"].values).all() and (ds["std"].values > 0).all()
    assert np.isfinite(model.generate(paired.modalities["ratA"], "ratA", "ratB").values).all()
    draws = model.generate(paired.modalities["ratA"], "ratA", "ratB", n_samples=3, seed=0)
    assert draws.shape == (3, 24, 4, N_BINS) and np.isfinite(draws.values).all()


# --------------------------------------------------------------------------- posterior samples
def hand_set_poisson_model(paired) -> tuple[MultiAnimalModel, dict[str, np.ndarray]]:
    """Linear Poisson (exp link) model with hand-set weights: ratA encodes, ratB decodes.

    ratA's posterior is N(A x + c, diag s2) with a logvar head that ignores x; ratB's
    decoder gives log-rates W z + b.
    """
    model = MultiAnimalModel("mmvm", latent_dim=2, hidden=[], decoder="linear", likelihood="poisson",
                             link="exp", seed=0, device="cpu").fit(paired, **{**FIT, "epochs": 1})
    d_in, d_out = paired.input_dims
    truth = {
        "A": np.stack([np.full(d_in, 0.04), 0.06 * (-1.0) ** np.arange(d_in)]),
        "c": np.array([-0.5, 0.2]),
        "s2": np.array([0.3, 0.15]),
        "W": np.stack([np.linspace(-0.8, 0.9, d_out), np.linspace(0.6, -0.4, d_out)], axis=1),
        "b": np.log(np.linspace(0.5, 3.0, d_out)),
    }
    vae = model.module_
    with torch.no_grad():
        head = vae.encoders[0].head
        head.weight.zero_()
        head.weight[:2] = torch.tensor(truth["A"], dtype=torch.float32)
        head.bias.copy_(torch.tensor(np.r_[truth["c"], np.log(truth["s2"])], dtype=torch.float32))
        vae.decoders[1].out.weight.copy_(torch.tensor(truth["W"], dtype=torch.float32))
        vae.decoders[1].out.bias.copy_(torch.tensor(truth["b"], dtype=torch.float32))
    return model, truth


def overlap_average(per_window: np.ndarray, starts, window: int, n_bins: int) -> np.ndarray:
    """(trial, window index, unit, bin in window) -> (trial, unit, bin), averaging overlaps."""
    total = np.zeros(per_window.shape[:1] + per_window.shape[2:3] + (n_bins,))
    cover = np.zeros(n_bins)
    for j, start in enumerate(starts):
        total[..., start:start + window] += per_window[:, j]
        cover[start:start + window] += 1
    return total / cover


def test_posterior_samples_match_the_closed_form_expected_counts(paired):
    model, p = hand_set_poisson_model(paired)
    source = paired.modalities["ratA"]
    x = source.values.astype(float)  # (trial, unit, time); no normalisation for Poisson
    starts, w = range(5), 3  # predictions decode every offset
    windows = np.stack([x[:, :, s:s + w].reshape(x.shape[0], -1) for s in starts], axis=1)  # (trial, j, D)
    mu = windows @ p["A"].T + p["c"]  # (trial, j, K)
    eta = mu @ p["W"].T + p["b"]  # (trial, j, 12)
    # E[exp(W z + b)] for z ~ N(mu, diag s2) = exp(W mu + b + 0.5 sum_k W_dk^2 s2_k)
    expected = overlap_average(np.exp(eta + 0.5 * (p["W"] ** 2) @ p["s2"]).reshape(24, 5, 4, w), starts, w, N_BINS)
    at_mean = overlap_average(np.exp(eta).reshape(24, 5, 4, w), starts, w, N_BINS)

    n = 8000
    draws = model.generate(source, "ratA", "ratB", n_samples=n, seed=0)
    assert draws.dims == ("sample", "trial", "unit", "time") and draws.shape == (n, 24, 4, N_BINS)
    np.testing.assert_array_equal(draws["sample"].values, np.arange(n))
    assert draws.attrs["n_samples"] == n and draws.attrs["seed"] == 0
    mc_mean = draws.values.astype(float).mean(axis=0)
    stderr = draws.values.astype(float).std(axis=0) / np.sqrt(n)
    z = (mc_mean - expected) / stderr
    assert np.abs(z).max() < 5, np.abs(z).max()
    # the test has power: the posterior-mean prediction is many standard errors away
    plain = model.generate(source, "ratA", "ratB")
    np.testing.assert_allclose(plain.values, at_mean, rtol=1e-5)
    assert np.median(np.abs(mc_mean - plain.values) / stderr) > 10
    # same coordinates as the posterior-mean prediction, plus the sample dimension
    xr.testing.assert_identical(draws.isel(sample=0, drop=True).coords.to_dataset(), plain.coords.to_dataset())


def test_posterior_samples_are_seeded_and_leave_the_global_rng_alone(fitted, paired):
    source = paired.modalities["ratA"]
    before = torch.get_rng_state()
    first = fitted.generate(source, "ratA", "ratB", n_samples=8, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    xr.testing.assert_identical(fitted.generate(source, "ratA", "ratB", n_samples=8, seed=3), first)
    other = fitted.generate(source, "ratA", "ratB", n_samples=8, seed=4)
    assert not np.allclose(other.values, first.values)
    assert not np.allclose(first.values[0], first.values[1])  # draws differ from each other
    fresh = fitted.generate(source, "ratA", "ratB", n_samples=8)  # seed=None: recorded, reproducible
    xr.testing.assert_identical(fitted.generate(source, "ratA", "ratB", n_samples=8, seed=fresh.attrs["seed"]), fresh)
    # n_samples=0 is the posterior-mean prediction, whatever the seed
    xr.testing.assert_identical(fitted.generate(source, "ratA", "ratB", n_samples=0, seed=3),
                                fitted.generate(source, "ratA", "ratB"))
    for bad in (-1, 2.5, True):
        with pytest.raises(ConfigError, match="n_samples must be a non-negative integer"):
            fitted.generate(source, "ratA", "ratB", n_samples=bad)
    for bad in (-3, "zero", 1.0, 2**64):
        with pytest.raises(ConfigError, match=r"seed must be None or an integer in \[0, 2\*\*64\)"):
            fitted.generate(source, "ratA", "ratB", n_samples=2, seed=bad)


@pytest.mark.parametrize("combine", ["mixture", "poe"])
def test_module_samples_average_to_the_linear_gaussian_generation(combine):
    """Linear Gaussian decoder: E_q[W z + b] = W E_q[z] + b, what generate() decodes."""
    config = ModelConfig(latent_dim=2, hidden=[8], decoder="linear", likelihood="gaussian")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        vae = MultiAnimalVAE([6, 5, 4], config).eval()
        xs = [torch.randn(10, d) * 3 for d in (6, 5, 4)]
    mask = torch.tensor([True, True, False])  # two sources: a two-component mixture for "mixture"
    n = 4000
    with torch.no_grad():
        draws = vae.generate_samples(xs, mask, 2, n, combine=combine, generator=torch.Generator().manual_seed(1))
        plain = vae.generate(xs, mask, 2, combine=combine)
    assert draws.shape == (n, 10, 4)
    stderr = draws.std(0) / n**0.5
    assert ((draws.mean(0) - plain).abs() / stderr).max() < 5
    if combine == "mixture":  # draws come from both sources' posteriors: wider than either alone
        with torch.no_grad():
            alone = vae.generate_samples(xs, torch.tensor([True, False, False]), 2, n,
                                         generator=torch.Generator().manual_seed(1))
        assert float(draws.std(0).mean()) > float(alone.std(0).mean())


# --------------------------------------------------------------------------- save / load
def test_save_load_round_trip(fitted, paired, tmp_path):
    path = fitted.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "history.json", "weights.pt"]
    info = json.loads((path / "config.json").read_text())
    assert info["animals"] == ["ratA", "ratB"]
    assert info["units"] == {"ratA": [10, 11, 12], "ratB": [20, 21, 22, 23]}
    assert info["input_dims"] == [9, 12]
    assert info["bins"]["window"] == 3 and info["bins"]["window_starts"] == [0, 2, 4]
    assert info["model_config"] == fitted.config.to_dict()
    assert info["training_config"]["epochs"] == 4
    state = torch.load(path / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())

    loaded = MultiAnimalModel.load(path, device="cpu")
    xr.testing.assert_identical(loaded.latents(paired, "ratA"), fitted.latents(paired, "ratA"))
    xr.testing.assert_identical(
        loaded.generate(paired.modalities["ratB"], "ratB", "ratA"),
        fitted.generate(paired.modalities["ratB"], "ratB", "ratA"),
    )
    assert loaded.history_.equals(fitted.history_)
    loaded.check_compatible(paired)

    with pytest.raises(OutputExistsError):
        fitted.save(path)
    fitted.save(path, overwrite=True)
    (path / "weights.pt").unlink()
    with pytest.raises(DataError, match="weights.pt is missing"):
        MultiAnimalModel.load(path)
    with pytest.raises(DataError, match="no saved model"):
        MultiAnimalModel.load(tmp_path / "nowhere")


def test_fit_resume_through_estimator(paired, tmp_path):
    def model():
        return MultiAnimalModel(latent_dim=2, hidden=(8,), seed=5, device="cpu")

    full = model().fit(paired, **{**FIT, "epochs": 4}, checkpoint_dir=tmp_path / "a")
    model().fit(paired, **{**FIT, "epochs": 2}, checkpoint_dir=tmp_path / "b")
    resumed = model().fit(paired, **{**FIT, "epochs": 4}, checkpoint_dir=tmp_path / "b", resume=True)
    assert resumed.history_.equals(full.history_)
    xr.testing.assert_identical(resumed.latents(paired, "ratB"), full.latents(paired, "ratB"))
    assert load_checkpoint(tmp_path / "b")["epoch"] == 4
