"""neurovamp.pipelines.fit.fit_run: the run folder it writes, resuming, overwrite protection, bad input."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neurovamp.cli import main
from neurovamp._outputs import MANIFEST_NAME
from neurovamp.errors import ConfigError, DataError, OutputExistsError, TrainingError
from neurovamp.models.config import ModelConfig
from neurovamp.models.training import Trainer
from neurovamp.pipelines.fit import fit_run, load_run, read_run_info

# tiny settings: 8 bins of 50 ms, 4-bin sub-windows, 2 latent dimensions
SETTINGS = dict(
    event="odor_onset", window=(0.0, 0.4), bin_size=0.05, labels=["odor", "correct"], pair_by="odor",
    conditions=["A", "B", "C", "D"], subwindow=4, stride=2, batch_size=32, seed=1, device="cpu", progress=False,
)
CONFIG = ModelConfig(latent_dim=2)


@pytest.fixture(scope="module")
def fitted(nwb_files, tmp_path_factory) -> dict:
    """A 3-epoch fit_run with a numpy-typed filter, and its wall time."""
    run = tmp_path_factory.mktemp("fit") / "run"
    start = time.perf_counter()
    model = fit_run(nwb_files, run, config=CONFIG, epochs=3, filters={"correct": np.True_}, **SETTINGS)
    return {"run": run, "model": model, "elapsed": time.perf_counter() - start}


def test_fit_run_writes_a_run_that_load_run_reads_back(fitted, nwb_files):
    run, model = fitted["run"], fitted["model"]
    for name in ("run.json", "history.csv", "loss.png", "model/config.json", "model/weights.pt",
                 "checkpoints/checkpoint.pt"):
        assert (run / name).is_file(), name
    info = read_run_info(run)
    assert info["status"] == "complete"
    assert info["data"]["paths"] == [str(Path(f).resolve()) for f in nwb_files]
    assert info["data"]["labels"] == ["odor", "correct"] and info["data"]["window"] == [0.0, 0.4]
    assert info["pairing"]["filters"] == {"correct": [True]}  # numpy scalar written as a JSON boolean
    assert info["pairing"]["conditions"] == ["A", "B", "C", "D"] and info["pairing"]["window"] == 4
    assert info["model"] == CONFIG.to_dict()
    assert info["training"] == {"epochs": 3, "batch_size": 32, "lr": 1e-3, "patience": 20, "checkpoint_every": 10,
                                "monitor": "loss", "max_grad_norm": None, "compile": False, "kl_warmup": 50, "seed": 1,
                                "device": "cpu"}
    # the fit's wall time is recorded, and is part of the whole call's
    assert 0 < info["fit"]["seconds"] <= fitted["elapsed"]
    assert info["fit"]["epochs_run"] == 3 and info["fit"]["best_epoch"] == model.fit_info_["best_epoch"]
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [1, 2, 3]

    loaded, paired, _ = load_run(run, device="cpu")
    assert all(np.asarray(paired.modalities[a]["correct"]).all() for a in paired.animals)
    for animal in paired.animals:
        xr.testing.assert_identical(loaded.latents(paired, animal), model.latents(paired, animal))


def test_cli_fit_writes_the_same_run_as_fit_run(fitted, nwb_files, tmp_path):
    run = tmp_path / "cli"
    argv = ["fit", *nwb_files, "--out", str(run), "--event", "odor_onset", "--window", "0", "0.4", "--bin", "0.05",
            "--label", "odor", "correct", "--conditions", "A", "B", "C", "D", "--filter", "correct=yes",
            "--latent-dim", "2", "--subwindow", "4", "--stride", "2", "--batch-size", "32", "--seed", "1",
            "--device", "cpu", "--no-progress", "--epochs", "3"]
    assert main(argv) == 0
    cli, python = read_run_info(run), read_run_info(fitted["run"])
    for section in ("data", "pairing", "model", "training"):
        assert cli[section] == python[section], section
    pd.testing.assert_frame_equal(pd.read_csv(run / "history.csv"), pd.read_csv(fitted["run"] / "history.csv"))


def test_resume_after_an_interruption_equals_an_uninterrupted_run(nwb_files, tmp_path, monkeypatch):
    kwargs = dict(SETTINGS, config=CONFIG, epochs=4, checkpoint_every=1)
    full = fit_run(nwb_files, tmp_path / "full", **kwargs)

    part = tmp_path / "part"
    original = Trainer._run_epoch

    def stop_at_epoch_3(self, epoch, bar):
        if epoch == 3:
            raise KeyboardInterrupt
        return original(self, epoch, bar)

    monkeypatch.setattr(Trainer, "_run_epoch", stop_at_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        fit_run(nwb_files, part, **kwargs)
    monkeypatch.setattr(Trainer, "_run_epoch", original)
    assert read_run_info(part)["status"] == "interrupted" and not (part / "model").exists()
    with pytest.raises(DataError, match="incomplete run"):
        load_run(part)

    # different model or data settings are refused, naming what changed; nothing is touched
    with pytest.raises(ConfigError, match=r"different settings.*model\.latent_dim"):
        fit_run(nwb_files, part, **{**kwargs, "config": ModelConfig(latent_dim=3)}, resume=True)
    with pytest.raises(ConfigError, match=r"different settings.*pairing\.seed"):
        fit_run(nwb_files, part, **{**kwargs, "seed": 2}, resume=True)
    assert read_run_info(part)["status"] == "interrupted"
    created = read_run_info(part)["created"]
    # starting it again without resume points to resume (not only to the destructive overwrite)
    with pytest.raises(OutputExistsError, match=r"unfinished fit; continue it with resume=True \(CLI: --resume\)"):
        fit_run(nwb_files, part, **kwargs)

    # a run written before the drop_missing_events, monitor and compile settings existed resumes too
    old = read_run_info(part)
    del old["data"]["drop_missing_events"], old["training"]["monitor"], old["training"]["compile"]
    (part / "run.json").write_text(json.dumps(old))
    resumed = fit_run(nwb_files, part, **kwargs, resume=True)
    assert read_run_info(part)["created"] == created  # the run keeps its creation time
    pd.testing.assert_frame_equal(pd.read_csv(part / "history.csv"), pd.read_csv(tmp_path / "full" / "history.csv"))
    assert read_run_info(part)["fit"]["epochs_run"] == 4
    loaded, paired, _ = load_run(part, device="cpu")
    xr.testing.assert_identical(loaded.latents(paired, "rat1"), full.latents(paired, "rat1"))
    xr.testing.assert_identical(resumed.latents(paired, "rat3"), full.latents(paired, "rat3"))


@pytest.mark.parametrize(("change", "field"), [({"lr": 1e-2}, "training.lr"), ({"monitor": "rec"}, "training.monitor"),
                                             ({"batch_size": 16}, "training.batch_size")])
def test_a_refused_resume_leaves_a_finished_run_intact(fitted, nwb_files, change, field):
    before = (fitted["run"] / "run.json").read_text()
    with pytest.raises(ConfigError, match=rf"different settings.*{field}"):
        fit_run(nwb_files, fitted["run"], config=CONFIG, epochs=5, filters={"correct": [True]},
                **{**SETTINGS, **change}, resume=True)
    assert (fitted["run"] / "run.json").read_text() == before
    load_run(fitted["run"], device="cpu")  # still a complete, loadable run


def test_overwrite_never_deletes_a_foreign_model_folder(nwb_files, tmp_path):
    out = tmp_path / "mine"
    (out / "model").mkdir(parents=True)
    (out / "model" / "weights.bin").write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match="model/weights.bin, which neurovamp did not write"):
        fit_run(nwb_files, out, config=CONFIG, epochs=1, overwrite=True, **SETTINGS)
    assert (out / "model" / "weights.bin").read_bytes() == b"precious"


def test_a_failed_fit_is_marked_failed_and_clipping_is_an_option(nwb_files, tmp_path, monkeypatch):
    run = tmp_path / "run"
    original = Trainer._run_epoch

    def explode_at_epoch_2(self, epoch, bar):
        if epoch == 2:
            raise TrainingError("epoch 2: training loss exploded to 1e12")
        return original(self, epoch, bar)

    with monkeypatch.context() as mp:
        mp.setattr(Trainer, "_run_epoch", explode_at_epoch_2)
        with pytest.raises(TrainingError, match="exploded"):
            fit_run(nwb_files, run, config=CONFIG, epochs=3, checkpoint_every=1, **SETTINGS)
    info = read_run_info(run)
    assert info["status"] == "failed" and "exploded" in info["error"]
    fit_run(nwb_files, run, config=CONFIG, epochs=1, max_grad_norm=1.0, overwrite=True, **SETTINGS)
    model, _, info = load_run(run, device="cpu")
    assert info["training"]["max_grad_norm"] == 1.0 and info["status"] == "complete"


def test_stride_needs_a_subwindow(nwb_files, tmp_path):
    with pytest.raises(ConfigError, match=r"stride \(CLI: --stride\).*needs subwindow"):
        fit_run(nwb_files, tmp_path / "run", config=CONFIG, epochs=1, **{**SETTINGS, "subwindow": None, "stride": 5})
    assert not (tmp_path / "run").exists()


def _interrupt_first_epoch(self, epoch, bar):
    raise KeyboardInterrupt


def test_an_existing_run_is_only_replaced_with_overwrite(fitted, nwb_files, tmp_path, monkeypatch):
    before = (fitted["run"] / "run.json").read_text()
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        fit_run(nwb_files, fitted["run"], config=CONFIG, epochs=1, **SETTINGS)
    assert (fitted["run"] / "run.json").read_text() == before

    run = tmp_path / "run"
    fit_run(nwb_files, run, config=CONFIG, epochs=2, **SETTINGS)
    (run / "notes.txt").write_text("mine")
    # an overwriting fit interrupted before its first checkpoint leaves none of the old outputs
    with monkeypatch.context() as mp:
        mp.setattr(Trainer, "_run_epoch", _interrupt_first_epoch)
        with pytest.raises(KeyboardInterrupt):
            fit_run(nwb_files, run, config=CONFIG.replace(model="poe"), epochs=1, overwrite=True, **SETTINGS)
    assert read_run_info(run)["status"] == "interrupted" and read_run_info(run)["model"]["model"] == "poe"
    names = sorted(p.name for p in run.iterdir() if p.name != MANIFEST_NAME)
    assert names in (["checkpoints", "notes.txt", "run.json"], ["notes.txt", "run.json"])  # emptied folders may go
    assert not (run / "checkpoints").exists() or not any((run / "checkpoints").iterdir())

    fit_run(nwb_files, run, config=CONFIG.replace(model="poe"), epochs=1, overwrite=True, **SETTINGS)
    info = read_run_info(run)
    assert info["model"]["model"] == "poe" and info["fit"]["epochs_run"] == 1
    assert list(pd.read_csv(run / "history.csv")["epoch"]) == [1]
    assert (run / "notes.txt").read_text() == "mine"  # only the files a fit writes are removed


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"resume": True, "overwrite": True}, ConfigError, "exclude each other"),
        ({"resume": True}, ConfigError, "nothing to resume"),
        ({"filters": ["correct"]}, ConfigError, "filters must be a mapping"),
        ({"filters": {"correct": [object()]}}, ConfigError, r"filters\['correct'\]"),
        ({"window": (0.0,)}, ConfigError, "window must be 2 finite numbers"),
        ({"split": (0.5, 0.5)}, ConfigError, "split must be 3 finite numbers"),
        ({"patience": -1}, ConfigError, "patience"),
        ({"epochs": 0}, ConfigError, "TrainingConfig.epochs"),
        ({"config": "mmvm"}, ConfigError, "config must be a ModelConfig"),
        ({"labels": ["odor", 3]}, ConfigError, "labels must be trials column names"),
        ({"filters": {"correct": ["true"]}}, DataError, "no trials left after filters"),  # text is not a boolean
    ],
)
def test_bad_input_is_refused_before_anything_is_written(nwb_files, tmp_path, change, error, match):
    run = tmp_path / "run"
    with pytest.raises(error, match=match):
        fit_run(nwb_files, run, **{**SETTINGS, "config": CONFIG, "epochs": 1, **change})
    assert not run.exists()


def test_overwrite_refuses_a_file(nwb_files, tmp_path):
    path = tmp_path / "run"
    path.write_text("not a run")
    with pytest.raises(ConfigError, match="not a folder"):
        fit_run(nwb_files, path, config=CONFIG, epochs=1, overwrite=True, **SETTINGS)
    assert path.read_text() == "not a run"


def test_psth_figures_show_the_recorded_pre_event_baseline(fitted, monkeypatch, tmp_path):
    """The window starts at odor onset; the PSTHs draw 0.25 s of recorded activity before it."""
    import shutil

    from neurovamp.analysis import plots
    from neurovamp.pipelines.fit import PSTH_BASELINE, psth_recordings, write_evaluation

    run = tmp_path / "run"
    shutil.copytree(fitted["run"], run)
    model, paired, info = load_run(run, device="cpu")
    recorded = psth_recordings(info)
    assert set(recorded) == set(paired.animals)
    for animal in paired.animals:
        da, seen = recorded[animal], paired.modalities[animal]
        bins = round(PSTH_BASELINE / seen.attrs["bin_size"])  # 5 bins of 50 ms before onset
        assert da.sizes["time"] == seen.sizes["time"] + bins
        np.testing.assert_allclose(da["time"].values[:bins], seen["time"].values[0] - 0.05 * np.arange(bins, 0, -1))
        # the model's bins are the same counts, the extra bins are the pre-onset ones
        np.testing.assert_array_equal(da.sel(trial=seen["trial"]).values[..., bins:], seen.values)
        assert da.values[..., :bins].sum() > 0
    # a window that already starts before its event, or a saved dataset, gets nothing added
    assert psth_recordings({**info, "data": {**info["data"], "window": [-0.1, 0.4]}}) is None
    assert psth_recordings({**info, "data": {**info["data"], "paths": ["set.nc"]}}) is None

    drawn = {}
    original = plots.plot_psth_comparison

    def spy(real, *args, **kwargs):
        drawn[real.attrs.get("animal")] = np.asarray(real["time"].values)
        return original(real, *args, **kwargs)

    monkeypatch.setattr(plots, "plot_psth_comparison", spy)
    from neurovamp.analysis.evaluate import evaluate_model

    metrics = evaluate_model(model, paired, labels=["odor"], seed=0, folds=2)
    write_evaluation(run, metrics, model=model, paired=paired, label="odor", overwrite=True, info=info)
    assert set(drawn) == set(paired.animals) and all(t[0] < 0 < t[-1] for t in drawn.values())
    assert (run / "figures" / f"psth_{paired.animals[0]}.png").is_file()


def test_fit_run_defaults_are_the_settings_defaults():
    """fit_run's keyword defaults are the settings classes' (recording, pairing, training): one set of values."""
    import dataclasses
    import inspect

    from neurovamp.data.settings import PairingSettings
    from neurovamp.io.settings import RecordingSettings
    from neurovamp.models.training import TrainingConfig

    params = inspect.signature(fit_run).parameters
    names = {"pair_by": "by"}
    for cls in (RecordingSettings, PairingSettings, TrainingConfig):
        for field in dataclasses.fields(cls):
            name = next((k for k, v in names.items() if v == field.name and cls is PairingSettings), field.name)
            # seed/device are shared by every section; kl_warmup None = the engine's (or a resumed run's own)
            if name in params and name not in ("seed", "device", "kl_warmup"):
                assert params[name].default == field.default, (cls.__name__, field.name)


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("data", "window", "x", "data.window must be 2 finite numbers, got 'x'"),
    ("data", "bin_size", 0, "data.bin_size must be a positive number of seconds, got 0"),
    ("data", "paths", [], "data.paths must be a list of file paths, got []"),
    ("pairing", "split", [0.5, 0.5], "pairing.split"),
    ("pairing", "seed", -1, "pairing.seed must be a non-negative integer, got -1"),
    ("pairing", "stride", 0, "pairing.stride"),
])
def test_a_bad_setting_in_run_json_is_named_by_the_settings_rules(fitted, tmp_path, capsys, section, key, value, message):
    """read_run_info checks run.json with the settings classes' own rules (before: its own, looser, copy)."""

    run = tmp_path / "run"
    shutil.copytree(fitted["run"], run)
    info = json.loads((run / "run.json").read_text())
    info[section][key] = value
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match="^" + re.escape(f"{run / 'run.json'}: {message}")):
        read_run_info(run)
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
