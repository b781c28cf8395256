"""End-to-end tests of ``neurovamp evaluate`` and ``neurovamp impute`` on a run made by ``neurovamp fit``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr

from neurovamp.analysis.evaluate import read_metrics
from neurovamp.analysis.impute import impute_condition_mean
from neurovamp.cli import main
from neurovamp.pipelines.default_data import default_nwb_paths
from neurovamp.pipelines.fit import load_run

FIGURES = {"latents", "trajectories", "confusion", "decoding_over_time", "alignment", "training_curves",
           "psth_rat1", "psth_rat2", "psth_rat3"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A short mmvm fit (3 epochs) of the default simulated set: 30 bins of 50 ms."""
    out = tmp_path_factory.mktemp("runs") / "run"
    args = [
        "fit", *map(str, default_nwb_paths()), "--out", str(out), "--event", "odor_onset", "--window", "-0.5", "1.0",
        "--bin", "0.05", "--label", "odor", "position", "--strategy", "resample", "--subwindow", "6", "--stride", "2",
        "--latent-dim", "3", "--epochs", "3", "--batch-size", "128", "--lr", "0.01", "--seed", "0",
        "--device", "cpu", "--no-progress",
    ]
    assert main(args) == 0
    return out


def test_evaluate_writes_metrics_and_figures(run, capsys):
    assert main(["evaluate", str(run), "--seed", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    metrics = read_metrics(run / "metrics.json")
    assert metrics["model"] == "mmvm" and metrics["labels"] == ["odor"] and metrics["seed"] == 1
    assert list(metrics["animals"]) == ["rat1", "rat2", "rat3"]
    for entry in metrics["animals"].values():
        assert {"balanced_accuracy", "chance", "raw_balanced_accuracy"} <= set(entry["decoding"]["odor"])
        assert {"bits_per_spike", "psth_r2", "cross_generation_accuracy", "bits_per_spike_vs_generic",
                "condition_specific_r"} <= set(entry["imputation"])
    written = {p.stem for p in (run / "figures").iterdir()}
    assert written == FIGURES and all(p.stat().st_size > 0 for p in (run / "figures").iterdir())

    # never replaced without --overwrite; nothing is touched then
    before = (run / "metrics.json").read_text()
    assert main(["evaluate", str(run), "--no-figures"]) == 2
    assert "metrics.json: output already exists" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--no-figures", "--overwrite", "--label", "odor", "position"]) == 0
    assert read_metrics(run / "metrics.json")["labels"] == ["odor", "position"]
    assert (run / "metrics.json").read_text() != before


def test_impute_writes_rates_in_hz(run, tmp_path, capsys):
    out = tmp_path / "rat3_E.nc"
    assert main(["impute", str(run), "--target", "rat3", "--condition", "odor=E", "--out", str(out)]) == 0
    assert "imputed rat3" in capsys.readouterr().out
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        ds = ds.load()
    assert ds["rates"].dims == ("unit", "time") and ds["rates"].attrs["units"] == "Hz"
    assert ds["rates_sd"].dims == ("unit", "time") and np.all(ds["rates_sd"] >= 0)
    np.testing.assert_allclose(ds["time"], -0.5 + 0.05 * (np.arange(30) + 0.5))
    assert ds.attrs["target"] == "rat3" and json.loads(ds.attrs["condition"]) == {"odor": ["E"]}
    model, paired, _ = load_run(run, device="cpu")
    expected = impute_condition_mean(model, paired, target="rat3", condition={"odor": "E"})
    np.testing.assert_allclose(ds["rates"], expected["rates"], rtol=1e-6)
    assert ds.sizes["unit"] == 18 and np.all(ds["rates"] > 0)
    # the generic prediction (rat3's mean over the odors it smelled) is written beside the rates
    assert ds["rates_generic"].dims == ("unit", "time") and ds["rates_generic"].attrs["units"] == "Hz"
    np.testing.assert_allclose(ds["rates_generic"], expected["rates_generic"], rtol=1e-6)

    # several conditions and values; refuses to overwrite
    assert main(["impute", str(run), "--target", "rat1", "--condition", "odor=A,B", "position=1,2",
                 "--split", "test", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["impute", str(run), "--target", "rat1", "--condition", "odor=A,B", "position=1",
                 "--split", "test", "--out", str(out), "--overwrite"]) == 0


def test_impute_credible_band(run, tmp_path):
    plain, banded = tmp_path / "plain.nc", tmp_path / "band.nc"
    base = ["impute", str(run), "--target", "rat3", "--condition", "odor=E"]
    assert main([*base, "--out", str(plain)]) == 0
    assert main([*base, "--samples", "50", "--level", "0.9", "--seed", "3", "--out", str(banded)]) == 0
    with xr.open_dataset(plain, engine="h5netcdf") as a, xr.open_dataset(banded, engine="h5netcdf") as b:
        a, b = a.load(), b.load()
    np.testing.assert_allclose(b["rates"], a["rates"], rtol=1e-6)  # the band does not change the estimate
    assert "rates_lo" not in a and b.attrs["credible_level"] == pytest.approx(0.9) and b.attrs["n_samples"] == 50
    lo, hi, centre = b["rates_lo"].values, b["rates_hi"].values, b["rates_posterior_mean"].values
    assert np.all(lo <= centre) and np.all(centre <= hi) and np.all(hi > lo)
    assert "rates_generic" in b and np.isfinite(b["rates_lo"]).all() and np.isfinite(b["rates_hi"]).all()
    model, paired, _ = load_run(run, device="cpu")
    expected = impute_condition_mean(model, paired, target="rat3", condition={"odor": "E"}, n_samples=50,
                                     level=0.9, seed=3)
    np.testing.assert_allclose(b["rates_hi"], expected["rates_hi"], rtol=1e-6)  # same seed, same draws


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "rat3", "--condition", "odor=E", "--samples", "1"], "--samples must be 0"),
        (["--target", "rat3", "--condition", "odor=E", "--samples", "10", "--level", "1.5"], "--level must be"),
        (["--target", "rat9", "--condition", "odor=E"], "unknown target animal 'rat9'; known animals: rat1, rat2, rat3"),
        (["--target", "rat3", "--condition", "smell=E"], "unknown condition column 'smell'"),
        (["--target", "rat3", "--condition", "odor=Z"], "unknown value 'Z' of condition column 'odor'"),
        (["--target", "rat3", "--condition", "odor"], "must look like COL=VALUE"),
    ],
)
def test_impute_bad_inputs_exit_2(run, tmp_path, capsys, extra, message):
    out = tmp_path / "x.nc"
    assert main(["impute", str(run), *extra, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_or_incomplete_run_exit_2(run, tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "run folder not found" in capsys.readouterr().err
    assert main(["impute", str(tmp_path / "nothing"), "--target", "rat3", "--condition", "odor=E",
                 "--out", str(tmp_path / "x.nc")]) == 2
    assert "run folder not found" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    info = json.loads((run / "run.json").read_text())
    info["status"] = "running"
    (broken / "run.json").write_text(json.dumps(info))
    assert main(["evaluate", str(broken)]) == 2
    assert "incomplete run" in capsys.readouterr().err
    shutil.copytree(run / "model", broken / "model")
    assert main(["impute", str(broken), "--target", "rat3", "--condition", "odor=E",
                 "--out", str(tmp_path / "x.nc")]) == 2
    assert "incomplete run" in capsys.readouterr().err
    assert not (broken / "metrics.json").exists() and not (tmp_path / "x.nc").exists()
