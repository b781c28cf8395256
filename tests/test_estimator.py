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
    # window 3, stride 2 over 7 bins: starts 0, 2, 4 -> every bin covered, bins 2 and 4 twice
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
    # by hand for trial 0: decode each window's posterior mean, average where windows overlap
    vae = fitted.module_
    x = torch.tensor(source.values[0], dtype=torch.float32)
    per_window = []
    with torch.no_grad():
        for start in (0, 2, 4):
            mu, _ = vae.encode([x[:, start:start + 3].reshape(1, -1), None])
            per_window.append(vae.decode(mu[0], 1).reshape(4, 3).numpy())
    expected = np.zeros((4, N_BINS))
    cover = np.zeros(N_BINS)
    for start, pred in zip((0, 2, 4), per_window):
        expected[:, start:start + 3] += pred
        cover[start:start + 3] += 1
    np.testing.assert_allclose(out.values[0], expected / cover, rtol=1e-5)
    recon = fitted.reconstruct(source)
    assert recon.shape == source.shape and recon.attrs["animal"] == "ratA"


def test_uncovered_bins_are_nan(paired):
    data = pair_trials(tiny_tree(), by="odor", window=3, stride=3, seed=0)  # starts 0, 3: bin 6 uncovered
    model = MultiAnimalModel(latent_dim=2, hidden=(8,), device="cpu").fit(data, **{**FIT, "epochs": 1})
    out = model.generate(data.modalities["ratB"], "ratB", "ratA")
    assert np.isnan(out.values[..., 6]).all() and np.isfinite(out.values[..., :6]).all()


def test_gaussian_normalisation_belongs_to_the_model(paired, tmp_path):
    model = MultiAnimalModel.paper_preset("mmvm", seed=0, device="cpu", hidden=(8,)).fit(paired, **FIT)
    norm = model.normalization_
    assert norm["kind"] == "zscore"
    train = paired.counts[0][paired.trial_split["ratA"] == "train"]
    np.testing.assert_allclose(norm["offset"]["ratA"], train.mean(axis=(0, 2)), rtol=1e-5)
    np.testing.assert_allclose(norm["scale"]["ratA"], train.std(axis=(0, 2)), rtol=1e-5)
    out = model.generate(paired.modalities["ratA"], "ratA", "ratB")
    assert float(out.min()) >= 0
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
