"""Leave-one-condition-out evaluation: scorers on hand-made values, the fits, resume, parallel, CLI."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from neurovamp.analysis.loco import (
    LOCO_KEY,
    condition_scores,
    generic_prediction,
    hide_condition,
    leave_condition_out,
    loco_tasks,
)
from neurovamp.cli import main
from neurovamp.data.dataset import get_modality, make_dataset
from neurovamp.data.modality import make_modality
from neurovamp.data.pairing import pair_trials
from neurovamp.errors import ConfigError, DataError, OutputExistsError
from neurovamp.models.config import ModelConfig


# --------------------------------------------------------------------------- scorers
def test_generic_prediction_weights_conditions_equally():
    counts = np.array([1.0, 3.0, 10.0, 50.0]).reshape(4, 1, 1)
    labels = ["A", "A", "B", "C"]
    assert generic_prediction(counts, labels, exclude="C")[0, 0] == pytest.approx(6.0)  # (2 + 10) / 2, not 14 / 3
    assert generic_prediction(counts, labels)[0, 0] == pytest.approx((2 + 10 + 50) / 3)
    with pytest.raises(DataError, match="no trials of a condition other than"):
        generic_prediction(counts[:2], labels[:2], exclude="A")


def test_condition_scores_on_hand_made_values():
    truth = np.array([[1.0, 2.0, 4.0], [0.5, 0.5, 3.0]])  # (unit, time) counts per bin
    generic = np.array([[2.0, 2.0, 2.0], [1.0, 1.0, 1.0]])
    counts = np.stack([truth, truth])  # two "trials" equal to their mean
    perfect = condition_scores(truth, generic, counts)
    assert perfect["r"] == pytest.approx(1.0) and perfect["r2"] == pytest.approx(1.0)
    assert perfect["bps_generic"] > 0 and perfect["n_trials"] == 2
    as_generic = condition_scores(generic, generic, counts)
    assert as_generic["r2"] == pytest.approx(0.0) and as_generic["bps_generic"] == pytest.approx(0.0)
    assert as_generic["bps_flat"] == pytest.approx(as_generic["generic_bps_flat"])
    # right direction, half the size: r = 1, R² = 1 - 0.25 = 0.75
    half = condition_scores(generic + 0.5 * (truth - generic), generic, counts)
    assert half["r"] == pytest.approx(1.0) and half["r2"] == pytest.approx(0.75)
    # the opposite of the condition-specific part
    wrong = condition_scores(generic - (truth - generic) * 0.2, generic, counts)
    assert wrong["r"] == pytest.approx(-1.0) and wrong["r2"] < 0
    with pytest.raises(DataError, match="same"):
        condition_scores(truth[:1], generic, counts)


# --------------------------------------------------------------------------- fits
def shared_tree(seed: int = 0, missing: str | None = "C"):
    """Three animals with odor responses shared up to per-unit gains; ratC never smells ``missing``."""
    rng = np.random.default_rng(seed)
    odors = list("ABC")
    t = np.linspace(0, 1, 8)
    shapes = {"A": np.sin(np.pi * t), "B": t, "C": 1 - t}
    mods = []
    for animal, n_units in (("ratA", 5), ("ratB", 6), ("ratC", 4)):
        gains = rng.uniform(0.5, 2.0, size=(n_units, 1))
        labels = np.repeat(odors, 10)
        if animal == "ratC" and missing:
            labels = labels[labels != missing]
        rates = np.stack([0.3 + 2.5 * gains * shapes[o][None, :] for o in labels])
        mods.append(make_modality(rng.poisson(rates).astype(float), animal=animal, bin_size=0.05, window_start=0.0,
                                  trial_labels={"odor": labels}))
    return make_dataset(mods)


PAIR = functools.partial(pair_trials, by="odor", strategy="resample", split=(0.7, 0.15, 0.15), seed=0)
MODEL = ModelConfig(latent_dim=2, hidden=(16,), decoder="linear").to_dict()
TRAIN = dict(epochs=4, batch_size=64, lr=1e-2, patience=None, kl_warmup=0)


def test_tasks_and_hiding():
    tree = shared_tree()
    tasks = loco_tasks(tree, "odor")
    assert ("ratC", "C") not in tasks and ("ratA", "C") in tasks and len(tasks) == 3 + 3 + 2
    assert loco_tasks(tree, "odor", animals=["ratC"]) == [("ratC", "A"), ("ratC", "B")]
    with pytest.raises(ConfigError, match="unknown animal"):
        loco_tasks(tree, "odor", animals=["nobody"])
    reduced, held = hide_condition(tree, "ratA", "odor", "B")

    assert held.sizes["trial"] == 10 and set(held["odor"].values) == {"B"}
    assert "B" not in set(get_modality(reduced, "ratA")["odor"].values)
    assert get_modality(reduced, "ratB").sizes["trial"] == 30


def test_leave_condition_out_runs_resumes_and_parallel_matches(tmp_path, monkeypatch):
    tree = shared_tree()
    kw = dict(by="odor", pair=PAIR, model_config=MODEL, training=TRAIN, seed=0, animals=["ratC"], progress=False)
    first = leave_condition_out(tree, out_dir=tmp_path / "loco", **kw)
    assert [(f["animal"], f["condition"]) for f in first["fits"]] == [("ratC", "A"), ("ratC", "B")]
    for fit in first["fits"]:
        assert fit["n_trials"] == 10 and np.isfinite([fit["bps_generic"], fit["r"], fit["r2"]]).all()
        assert fit["epochs_run"] == 4
        sums = fit["calibration"]  # what the LOCO band's model error is computed from
        n_units = get_modality(tree, "ratC").sizes["unit"]
        assert len(sums["unit"]) == len(sums["sq_error"]) == len(sums["noise"]) == n_units
        assert sums["n_trials"] == 10 and np.all(np.array(sums["sq_error"]) >= 0)
        assert np.all(np.array(sums["noise"]) >= 0) and np.all(np.array(sums["rate_sum_hz"]) > 0)
    assert first["summary"]["n_fits"] == 2 and 0.0 <= first["summary"]["beats_generic"] <= 1.0
    assert (tmp_path / "loco" / "ratC" / "A" / "scores.json").is_file()
    assert not (tmp_path / "loco" / "ratC" / "A" / "checkpoints").exists()

    # finished fits are read back, not refitted
    from neurovamp.models.estimator import MultiAnimalModel

    def no_fit(*args, **kwargs):
        raise AssertionError("a finished fit was fitted again")

    with monkeypatch.context() as m:
        m.setattr(MultiAnimalModel, "fit", no_fit)
        again = leave_condition_out(tree, out_dir=tmp_path / "loco", **kw)
    assert again["fits"] == first["fits"]
    # a fit kept before the error sums were recorded is refitted (once), not read back without them
    scores = tmp_path / "loco" / "ratC" / "B" / "scores.json"
    old = json.loads(scores.read_text())
    scores.write_text(json.dumps({k: v for k, v in old.items() if k != "calibration"}))
    refitted = leave_condition_out(tree, out_dir=tmp_path / "loco", **kw)
    assert refitted["fits"][1]["calibration"] == old["calibration"]

    # other settings: refused without overwrite
    with pytest.raises(OutputExistsError, match="other settings"):
        leave_condition_out(tree, out_dir=tmp_path / "loco", **{**kw, "seed": 1})

    parallel = leave_condition_out(tree, out_dir=None, jobs=2, **kw)
    assert parallel["fits"] == first["fits"]
    with pytest.raises(ConfigError, match="jobs"):
        leave_condition_out(tree, jobs=0, **kw)


def test_cli_leave_condition_out(nwb_files, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["fit", *nwb_files, "--out", str(run), "--event", "odor_onset", "--window", "0", "1.0",
                 "--bin", "0.1", "--label", "odor", "--strategy", "resample", "--latent-dim", "2",
                 "--epochs", "2", "--lr", "0.01", "--seed", "0", "--device", "cpu", "--no-progress"]) == 0
    args = ["evaluate", str(run), "--leave-condition-out", "--animals", "rat3", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "leave-one-condition-out" in out and "generic" in out
    metrics = json.loads((run / "metrics.json").read_text())
    fits = metrics[LOCO_KEY]["fits"]
    assert {f["animal"] for f in fits} == {"rat3"} and len(fits) == 4  # rat3 never smelled E
    assert metrics[LOCO_KEY]["settings"]["training"]["epochs"] == 2
    assert main(args + ["--jobs", "0"]) == 2

    # neurovamp impute --samples picks the LOCO results of rat3 up: the calibrated band
    import xarray as xr

    capsys.readouterr()
    out_nc = tmp_path / "rat3_E.nc"
    assert main(["impute", str(run), "--target", "rat3", "--condition", "odor=E", "--samples", "20",
                 "--out", str(out_nc)]) == 0
    assert "band: predictive-loco" in capsys.readouterr().out
    with xr.open_dataset(out_nc, engine="h5netcdf") as ds:
        assert ds.attrs["band"] == "predictive-loco" and ds.attrs["model_error_conditions"] == "A,B,C,D"
        assert ds["rates_model_error_sd"].dims == ("unit", "time")
    # rat2 has no LOCO fits: the in-sample band, said so
    assert main(["impute", str(run), "--target", "rat2", "--condition", "odor=E", "--samples", "20",
                 "--out", str(tmp_path / "rat2_E.nc")]) == 0
    assert "band: predictive (model error measured in-sample" in capsys.readouterr().out
