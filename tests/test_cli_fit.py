"""End-to-end tests of ``neurovamp fit`` and neurovamp.pipelines.fit.load_run on simulated NWB files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neurovamp.cli import main
from neurovamp.errors import ConfigError, DataError
from neurovamp.pipelines.fit import load_run, parse_filters, read_run_info


def fit_args(files, out, *extra) -> list[str]:
    return [
        "fit", *files, "--out", str(out), "--event", "odor_onset", "--window", "0", "0.4", "--bin", "0.05",
        "--label", "odor", "--label", "correct", "--pair-by", "odor", "--conditions", "A", "B", "C", "D",
        "--latent-dim", "2", "--subwindow", "4", "--stride", "2", "--batch-size", "32", "--seed", "1",
        "--device", "cpu", "--no-progress", *extra,
    ]


def test_fit_writes_a_complete_run(nwb_files, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(fit_args(nwb_files, run, "--epochs", "3", "--filter", "correct=true")) == 0
    assert "fitted mmvm on 3 animals" in capsys.readouterr().out
    for name in ("run.json", "history.csv", "loss.png", "model/config.json", "model/weights.pt",
                 "checkpoints/checkpoint.pt"):
        assert (run / name).is_file(), name
    info = read_run_info(run)
    assert info["status"] == "complete"
    assert info["data"]["paths"] == [str(Path(f).resolve()) for f in nwb_files]
    assert info["data"]["event"] == "odor_onset" and info["data"]["bin_size"] == 0.05
    assert info["pairing"]["filters"] == {"correct": [True]}  # typed from the label, not the text
    assert info["pairing"]["conditions"] == ["A", "B", "C", "D"]
    assert info["pairing"]["window"] == 4 and info["pairing"]["seed"] == 1
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]

    model, paired, info = load_run(run, device="cpu")
    assert paired.animals == ("rat1", "rat2", "rat3") and paired.conditions == ("A", "B", "C", "D")
    assert all(np.asarray(paired.modalities[a]["correct"]).all() for a in paired.animals)
    z = model.latents(paired, "rat2", split="test")
    assert z.dims == ("trial", "time", "latent") and z.sizes["latent"] == 2
    np.testing.assert_allclose(history["val/loss"], model.history_["val/loss"])

    # an existing run is never replaced without --overwrite
    assert main(fit_args(nwb_files, run, "--epochs", "1")) == 2
    assert read_run_info(run)["pairing"]["filters"] == {"correct": [True]}


def test_resume_matches_an_uninterrupted_run(nwb_files, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(fit_args(nwb_files, full, "--epochs", "3", "--checkpoint-every", "1")) == 0
    assert main(fit_args(nwb_files, part, "--epochs", "2", "--checkpoint-every", "1")) == 0
    assert main(fit_args(nwb_files, part, "--epochs", "3", "--checkpoint-every", "1", "--resume")) == 0
    pd.testing.assert_frame_equal(pd.read_csv(part / "history.csv"), pd.read_csv(full / "history.csv"))
    model_full, paired, _ = load_run(full, device="cpu")
    model_part, _, _ = load_run(part, device="cpu")
    xr.testing.assert_identical(model_part.latents(paired, "rat1"), model_full.latents(paired, "rat1"))
    # resuming with different data settings is refused
    assert main(fit_args(nwb_files, part, "--epochs", "4", "--seed", "7", "--resume")) == 2


def test_user_errors_exit_2(nwb_files, tmp_path, capsys):
    assert main(fit_args(nwb_files, tmp_path / "a", "--epochs", "1", "--filter", "correct=maybe")) == 2
    assert "cannot read 'maybe' as a boolean" in capsys.readouterr().err
    assert main(fit_args(nwb_files, tmp_path / "b", "--epochs", "1", "--resume")) == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_load_run_names_what_is_missing(nwb_files, tmp_path):
    with pytest.raises(DataError, match="run folder not found"):
        load_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="run.json is missing"):
        load_run(tmp_path / "empty")
    run = tmp_path / "broken"
    run.mkdir()
    legacy = json.loads((Path(__file__).parent / "legacy" / "v0.1" / "run" / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**legacy, "status": "running"}))  # a fit that stopped early
    with pytest.raises(DataError, match="incomplete run.*model/ is missing"):
        load_run(run)
    (run / "run.json").write_text(json.dumps({**legacy, "data": {}, "status": "running"}))
    with pytest.raises(DataError, match=r"run\.json: data\.event is missing"):  # named when the file is read
        load_run(run)


def test_parse_filters():
    assert parse_filters(["correct=true", "odor=A,B", "odor=C"]) == {"correct": ["true"], "odor": ["A", "B", "C"]}
    with pytest.raises(ConfigError, match="COLUMN=VALUE"):
        parse_filters(["odor"])


def _linear_widths(body) -> list[int]:
    return [layer.out_features for layer in body if hasattr(layer, "out_features")]


def test_model_options_reach_run_json_and_the_model(nwb_files, tmp_path, capsys):
    run = tmp_path / "run"
    extra = ("--hidden", "16", "input", "--decoder", "linear", "--alpha", "0.25", "--beta", "0.5")
    assert main(fit_args(nwb_files, run, "--epochs", "1", "--checkpoint-every", "1", *extra)) == 0
    expected = {"hidden": [16, "input"], "decoder": "linear", "alpha": 0.25, "beta": 0.5}
    info = read_run_info(run)
    assert {k: info["model"][k] for k in expected} == expected
    model, paired, _ = load_run(run, device="cpu")
    assert {k: model.config.to_dict()[k] for k in expected} == expected
    for m, encoder in enumerate(model.module_.encoders):  # 16 units, then as wide as the animal's input
        assert _linear_widths(encoder.body) == [16, paired.input_dims[m]]
    assert all(_linear_widths(decoder.body) == [] for decoder in model.module_.decoders)  # linear readout

    # resuming with another value of a model option is refused, naming the field
    capsys.readouterr()
    changed = ("--hidden", "16", "input", "--decoder", "linear", "--alpha", "0.5", "--beta", "0.5")
    assert main(fit_args(nwb_files, run, "--epochs", "2", "--checkpoint-every", "1", "--resume", *changed)) == 2
    assert "model.alpha" in capsys.readouterr().err
    assert read_run_info(run) == info


def test_monitor_option_reaches_training(nwb_files, tmp_path):
    run = tmp_path / "run"
    assert main(fit_args(nwb_files, run, "--epochs", "3", "--monitor", "rec", "--checkpoint-every", "1",
                         "--kl-warmup", "0")) == 0
    info = read_run_info(run)
    assert info["training"]["monitor"] == "rec" and info["fit"]["monitor"] == "val/rec"
    assert info["training"]["kl_warmup"] == 0  # recorded, so a resume with another warm-up is refused
    history = pd.read_csv(run / "history.csv")
    assert info["fit"]["best_epoch"] == int(history.loc[history["val/rec"].idxmin(), "epoch"])


def test_compile_option_reaches_training(nwb_files, tmp_path, monkeypatch):
    import neurovamp.models.training as training

    compiled = []

    def eager_stand_in(module):  # records the request; the real compilation is tested in test_training
        compiled.append(module)
        return module.loss

    monkeypatch.setattr(training, "_compile_loss", eager_stand_in)
    run = tmp_path / "run"
    assert main(fit_args(nwb_files, run, "--epochs", "1", "--compile")) == 0
    assert read_run_info(run)["training"]["compile"] is True and len(compiled) == 1
    # compile is an execution setting, like the device: a resume may switch it
    assert main(fit_args(nwb_files, run, "--epochs", "2", "--resume")) == 0
    assert read_run_info(run)["training"]["compile"] is False and len(compiled) == 1


@pytest.mark.parametrize("hidden", [(), ("none",)])
def test_hidden_without_widths_means_no_hidden_layer(nwb_files, tmp_path, hidden):
    run = tmp_path / "run"
    assert main(fit_args(nwb_files, run, "--epochs", "1", "--hidden", *hidden)) == 0
    assert read_run_info(run)["model"]["hidden"] == []
    model, _, _ = load_run(run, device="cpu")
    assert model.config.hidden == ()
    assert all(_linear_widths(encoder.body) == [] for encoder in model.module_.encoders)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--decoder", "quadratic"), "ModelConfig.decoder must be one of 'mlp', 'linear', got 'quadratic'"),
        (("--alpha", "2"), "ModelConfig.alpha must be a number in [0, 1], got 2.0"),
        (("--beta", "-1"), "ModelConfig.beta must be a number in [0, inf), got -1.0"),
        (("--hidden", "0"), "ModelConfig.hidden must be"),
        (("--hidden", "64", "wide"), "'wide'"),
        (("--hidden", "64", "none"), "'none'"),
    ],
)
def test_bad_model_options_exit_2_with_one_line(nwb_files, tmp_path, capsys, option, message):
    run = tmp_path / "run"
    assert main(fit_args(nwb_files, run, "--epochs", "1", *option)) == 2
    err = capsys.readouterr().err
    assert err.startswith("neurovamp fit: error: ") and message in err and err.count("\n") == 1
    assert not run.exists()


def test_interrupted_fit_says_how_to_resume(nwb_files, tmp_path, capsys, monkeypatch):
    from neurovamp.models.training import Trainer

    def interrupt(self, epoch, bar):
        raise KeyboardInterrupt

    run = tmp_path / "run"
    monkeypatch.setattr(Trainer, "_run_epoch", interrupt)
    assert main(fit_args(nwb_files, run, "--epochs", "2")) == 130
    assert "interrupted; rerun the same command with --resume" in capsys.readouterr().err
    assert read_run_info(run)["status"] == "interrupted"
