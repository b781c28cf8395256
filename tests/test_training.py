"""Tests of neurovamp.models.training: determinism, resume, checkpoints, early stopping, NaN guard."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import xarray as xr

from neurovamp.data.dataset import make_dataset
from neurovamp.data.modality import make_modality
from neurovamp.data.pairing import pair_trials
from neurovamp.data.tensors import TensorBatcher
from neurovamp.errors import ConfigError, DataError, OutputExistsError, TrainingError
from neurovamp.models.config import ModelConfig
from neurovamp.models.module import MultiAnimalVAE
from neurovamp.models.training import (
    CHECKPOINT_NAME,
    Trainer,
    TrainingConfig,
    fit_module,
    load_checkpoint,
    resolve_device,
)


def tiny_tree(seed: int = 0) -> xr.DataTree:
    """Two animals (3 and 4 units), 24 trials of odors A-C, 6 bins; rates depend on odor."""
    rng = np.random.default_rng(seed)
    mods = []
    for animal, n_units in (("ratA", 3), ("ratB", 4)):
        odors = np.repeat(np.array(list("ABC")), 8)
        tuning = rng.uniform(0.5, 4.0, size=(3, n_units, 1))
        rates = tuning[np.searchsorted(list("ABC"), odors)] * np.ones((1, 1, 6))
        mods.append(
            make_modality(rng.poisson(rates).astype(float), animal=animal, bin_size=0.1, window_start=0.0,
                          trial_labels={"odor": odors})
        )
    return make_dataset(mods)


@pytest.fixture(scope="module")
def paired():
    return pair_trials(tiny_tree(), by="odor", window=3, stride=1, seed=0)


def new_module(paired, seed: int = 0) -> MultiAnimalVAE:
    torch.manual_seed(seed)
    return MultiAnimalVAE(paired.input_dims, ModelConfig(latent_dim=2, hidden=(8,)), names=paired.animals)


def params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_params(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# kl_warmup=0: these tests check the engine's mechanics epoch by epoch (test_kl_warmup.py covers warm-up)
CFG = dict(epochs=6, batch_size=16, lr=1e-2, patience=None, seed=3, device="cpu", kl_warmup=0)


# --------------------------------------------------------------------------- config
def test_config_validation_and_round_trip():
    cfg = TrainingConfig(**CFG)
    assert TrainingConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad in (dict(epochs=0), dict(batch_size=2.5), dict(lr=-1), dict(patience=0), dict(device="tpu"),
                dict(seed=-1), dict(max_grad_norm=float("nan"))):
        with pytest.raises(ConfigError):
            TrainingConfig(**bad)
    with pytest.raises(ConfigError, match="unknown field"):
        TrainingConfig.from_dict({"epochs": 2, "learning_rate": 1})
    with pytest.raises(ConfigError, match="compile must be True or False"):
        TrainingConfig(compile="yes")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


# --------------------------------------------------------------------------- training
def test_history_learns_and_is_json(paired):
    module = new_module(paired)
    history = fit_module(module, paired, TrainingConfig(**{**CFG, "epochs": 8}), progress=False)
    assert history["epoch"] == list(range(1, 9))
    for split in ("train", "val"):
        for term in ("loss", "rec", "reg", "rec/ratA", "rec/ratB"):
            assert len(history[f"{split}/{term}"]) == 8
    assert history["train/loss"][-1] < history["train/loss"][0]
    assert json.loads(json.dumps(history)) == history


def test_same_seed_same_result_and_global_rng_untouched(paired):
    state = torch.get_rng_state()
    a, b, c = new_module(paired), new_module(paired), new_module(paired)
    ha = fit_module(a, paired, TrainingConfig(**CFG), progress=False)
    hb = fit_module(b, paired, TrainingConfig(**CFG), progress=False)
    hc = fit_module(c, paired, TrainingConfig(**{**CFG, "seed": 4}), progress=False)
    assert ha == hb
    assert_same_params(params(a), params(b))
    assert ha["train/loss"] != hc["train/loss"]
    # training draws from its own (seed, epoch) streams and restores the caller's RNG
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize(("strategy", "restore_best"), [("truncate", True), ("resample", True), ("truncate", False)])
def test_resume_equals_uninterrupted(tmp_path, strategy, restore_best):
    data = pair_trials(tiny_tree(), by="odor", window=3, strategy=strategy, seed=1)
    cfg = dict(CFG, patience=3, checkpoint_every=2, restore_best=restore_best)
    full = new_module(data)
    h_full = fit_module(full, data, TrainingConfig(**cfg), checkpoint_dir=tmp_path / "a", progress=False)

    part = new_module(data)
    fit_module(part, data, TrainingConfig(**{**cfg, "epochs": 3}), checkpoint_dir=tmp_path / "b", progress=False)
    assert load_checkpoint(tmp_path / "b")["epoch"] == 3
    resumed = new_module(data, seed=99)  # fresh weights: everything must come from the checkpoint
    h_resumed = fit_module(resumed, data, TrainingConfig(**cfg), checkpoint_dir=tmp_path / "b", resume=True,
                           progress=False)
    assert h_resumed == h_full
    assert_same_params(params(resumed), params(full))
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert_same_params(a["model_state"], b["model_state"])
    assert a["best_epoch"] == b["best_epoch"]
    assert (a["best_state"] is None) == (b["best_state"] is None) == (not restore_best)
    if restore_best:  # kept in reused CPU buffers across improving epochs and the resume
        assert_same_params(a["best_state"], b["best_state"])
        assert all(v.device.type == "cpu" for v in b["best_state"].values())


def test_checkpoint_contents_weights_only(tmp_path, paired):
    module = new_module(paired)
    fit_module(module, paired, TrainingConfig(**{**CFG, "epochs": 3}), checkpoint_dir=tmp_path, progress=False)
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert state["format"] == "neurovamp-checkpoint" and state["epoch"] == 3
    assert {"model_state", "optimizer_state", "history", "best_state", "rng", "config", "bad_epochs"} <= set(state)
    assert state["history"]["epoch"] == [1, 2, 3]
    assert isinstance(state["rng"]["torch"], torch.Tensor)
    assert TrainingConfig.from_dict(state["config"]).epochs == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]  # no temporary files left


def test_latest_checkpoint_never_vanishes_while_the_previous_is_kept(tmp_path, paired, monkeypatch):
    """A kill at any instant of a checkpoint rotation finds checkpoint.pt (and, after two, the one before)."""
    import os

    from neurovamp.models.training import PREVIOUS_CHECKPOINT_NAME

    latest, previous = tmp_path / CHECKPOINT_NAME, tmp_path / PREVIOUS_CHECKPOINT_NAME
    seen: list[tuple[bool, bool]] = []
    real_replace = os.replace

    def replace(src, dst):  # every rename of a save, then what a reader would find
        real_replace(src, dst)
        seen.append((latest.is_file(), previous.is_file()))

    monkeypatch.setattr(os, "replace", replace)
    fit_module(new_module(paired), paired, TrainingConfig(**{**CFG, "epochs": 3, "checkpoint_every": 1}),
               checkpoint_dir=tmp_path, progress=False)
    assert len(seen) >= 5 and all(ok for ok, _ in seen)  # 3 saves, 2 of them keeping the one before
    assert all(prev for _, prev in seen[seen.index((True, True)):])
    assert load_checkpoint(latest)["epoch"] == 3
    assert torch.load(previous, weights_only=True)["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CHECKPOINT_NAME, PREVIOUS_CHECKPOINT_NAME])


def test_checkpoint_guards(tmp_path, paired):
    cfg = TrainingConfig(**{**CFG, "epochs": 2})
    with pytest.raises(DataError, match="no checkpoint"):
        fit_module(new_module(paired), paired, cfg, checkpoint_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(ConfigError, match="checkpoint_dir"):
        fit_module(new_module(paired), paired, cfg, resume=True, progress=False)
    fit_module(new_module(paired), paired, cfg, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(OutputExistsError):
        fit_module(new_module(paired), paired, cfg, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="lr"):
        fit_module(new_module(paired), paired, TrainingConfig(**{**CFG, "lr": 0.5}), checkpoint_dir=tmp_path,
                   resume=True, progress=False)
    fit_module(new_module(paired), paired, cfg, checkpoint_dir=tmp_path, overwrite=True, progress=False)


# --------------------------------------------------------------------------- torch.compile
@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_training_matches_eager_and_is_deterministic(paired):
    from torch._dynamo.utils import counters

    # 72 training samples in batches of 16: the epoch's last batch (8) runs eagerly.
    assert TensorBatcher(paired, "train").n_samples % CFG["batch_size"] == 8
    cfg = dict(CFG, epochs=3)
    eager = new_module(paired)
    h_eager = fit_module(eager, paired, TrainingConfig(**cfg), progress=False)
    torch._dynamo.reset()
    a, b = new_module(paired), new_module(paired)
    h_a = fit_module(a, paired, TrainingConfig(**cfg, compile=True), progress=False)
    assert counters["stats"]["unique_graphs"] >= 1  # a graph was really compiled
    h_b = fit_module(b, paired, TrainingConfig(**cfg, compile=True), progress=False)
    assert h_a == h_b  # same seed, same result
    assert_same_params(params(a), params(b))
    # the same random draws as eager (fallback_random): equal up to float rounding
    for key in ("train/loss", "val/loss", "val/rec"):
        np.testing.assert_allclose(h_a[key], h_eager[key], rtol=1e-4)
    for key, value in params(eager).items():
        torch.testing.assert_close(params(a)[key], value, rtol=1e-3, atol=1e-4)


class ShapeBug(torch.nn.Module):
    """Wraps a module; its training loss multiplies matrices of mismatched shapes."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def loss(self, xs, mask):
        out = dict(self.inner.loss(xs, mask))
        out["loss"] = out["loss"] + torch.mm(xs[0], torch.ones(xs[0].shape[1] + 1, 1)).sum()
        return out


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
def test_a_model_error_under_compile_is_the_model_error(paired):
    # TorchDynamo wraps it while tracing; the engine reports the model's own exception
    with pytest.raises(RuntimeError, match="cannot be multiplied") as info:
        fit_module(ShapeBug(new_module(paired)), paired, TrainingConfig(**CFG, compile=True), progress=False)
    assert not isinstance(info.value, ConfigError)
    assert type(info.value.__context__).__module__.startswith("torch._dynamo")  # the compiled path ran


def test_compile_failure_is_a_clear_config_error(paired, monkeypatch):
    class CppCompileError(RuntimeError):
        pass

    CppCompileError.__module__ = "torch._inductor.exc"  # where torch's own compile errors live

    def failing_compile(fn, **kwargs):
        def compiled(*args, **kw):
            raise CppCompileError("C++ compile error: g++ not found")

        return compiled

    monkeypatch.setattr(torch, "compile", failing_compile)
    cfg = TrainingConfig(**CFG, compile=True)
    with pytest.raises(ConfigError, match=r"compile=True, but torch.compile failed.*g\+\+ not found.*C\+\+ compiler"
                                          r".*compile=False"):
        fit_module(new_module(paired), paired, cfg, progress=False)


class Poisoned(torch.nn.Module):
    """Wraps a module; from training batch ``after`` on, the loss is scaled by ``factor``."""

    def __init__(self, inner: torch.nn.Module, after: int, factor: float) -> None:
        super().__init__()
        self.inner, self.after, self.factor, self.calls = inner, after, factor, 0

    def loss(self, xs, mask):
        out = self.inner.loss(xs, mask)
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                out["rec/ratB"] = out["rec/ratB"] * self.factor
                out["loss"] = out["loss"] * self.factor
        return out


def test_nan_loss_raises_and_keeps_last_good_checkpoint(tmp_path, paired):
    per_epoch = TensorBatcher(paired, "train").n_batches(CFG["batch_size"])
    module = Poisoned(new_module(paired), after=2 * per_epoch + 1, factor=float("nan"))
    cfg = TrainingConfig(**{**CFG, "checkpoint_every": 1})
    with pytest.raises(TrainingError, match=r"epoch 3.*'loss'.*'rec/ratB'.*last good checkpoint"):
        fit_module(module, paired, cfg, checkpoint_dir=tmp_path, progress=False)
    state = load_checkpoint(tmp_path)
    assert state["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in state["model_state"].values())


class InfiniteGradient(torch.nn.Module):
    """Wraps a module; training batch ``at`` adds sqrt(w - w) = 0 to the loss: finite, d/dw = inf."""

    def __init__(self, inner: torch.nn.Module, at: int) -> None:
        super().__init__()
        self.inner, self.at, self.calls = inner, at, 0
        self.w = torch.nn.Parameter(torch.ones(()))

    def loss(self, xs, mask):
        out = dict(self.inner.loss(xs, mask))
        if self.training:
            self.calls += 1
            if self.calls >= self.at:  # NaN once Adam has applied the infinite gradient
                out["loss"] = out["loss"] + torch.sqrt(self.w - self.w.detach())
        return out


@pytest.mark.parametrize("where", ["mid-epoch", "last batch of the epoch"])
def test_infinite_gradient_raises_and_keeps_last_good_checkpoint(tmp_path, paired, where):
    per_epoch = TensorBatcher(paired, "train").n_batches(CFG["batch_size"])
    at = 2 * per_epoch + (1 if where == "mid-epoch" else per_epoch)
    module = InfiniteGradient(new_module(paired), at=at)
    cfg = TrainingConfig(**{**CFG, "checkpoint_every": 1})
    with pytest.raises(TrainingError, match=r"epoch 3: non-finite gradient from a finite loss.*last good checkpoint"):
        fit_module(module, paired, cfg, checkpoint_dir=tmp_path, progress=False)
    assert not torch.isfinite(module.w)  # the bad update happened, and was caught
    state = load_checkpoint(tmp_path)
    assert state["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in state["model_state"].values())


def test_clipping_catches_an_infinite_gradient_before_the_update(paired):
    module = InfiniteGradient(new_module(paired), at=2)
    with pytest.raises(TrainingError, match=r"epoch 1: non-finite gradient .*norm inf"):
        fit_module(module, paired, TrainingConfig(**{**CFG, "max_grad_norm": 10.0}), progress=False)
    assert torch.isfinite(module.w)


def test_exploding_loss_raises(paired):
    per_epoch = TensorBatcher(paired, "train").n_batches(CFG["batch_size"])
    module = Poisoned(new_module(paired), after=per_epoch, factor=1e9)
    with pytest.raises(TrainingError, match="epoch 2: training loss exploded"):
        fit_module(module, paired, TrainingConfig(**CFG), progress=False)


class ScriptedValidation(torch.nn.Module):
    """A parameter pulled towards 1 in training; validation losses follow a script.

    ``snapshots[k]`` holds the weights at the end of epoch k + 1 (taken at its first
    validation batch). With ``val_recs`` the module also reports a ``"rec"`` term
    (scripted in validation; the training loss in training).
    """

    def __init__(self, val_losses, val_recs=None) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.val_losses, self.snapshots, self._trained = list(val_losses), [], False
        self.val_recs = None if val_recs is None else list(val_recs)

    def loss(self, xs, mask):
        if self.training:
            self._trained = True
            loss = ((self.w - 1.0) ** 2).sum() + 0.0 * xs[0].sum()
            return {"loss": loss} if self.val_recs is None else {"loss": loss, "rec": loss.detach()}
        if self._trained:
            self.snapshots.append(self.w.detach().clone())
            self._trained = False
        epoch = len(self.snapshots) - 1
        out = {"loss": torch.tensor(self.val_losses[epoch])}
        if self.val_recs is not None:
            out["rec"] = torch.tensor(self.val_recs[epoch])
        return out


def test_early_stopping_restores_best_weights(paired):
    module = ScriptedValidation([5.0, 3.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    trainer = Trainer(module, paired, TrainingConfig(**{**CFG, "epochs": 8, "patience": 2, "lr": 0.1}),
                      progress=False)
    history = trainer.fit()
    assert history["epoch"] == [1, 2, 3, 4]
    assert history["val/loss"] == [5.0, 3.0, 4.0, 6.0]
    assert trainer.stopped_early and trainer.best_epoch == 2
    assert torch.equal(module.w.detach(), module.snapshots[1])  # weights of epoch 2
    assert not torch.equal(module.snapshots[1], module.snapshots[3])


def test_empty_validation_monitors_training_loss():
    data = pair_trials(tiny_tree(), by="odor", window=3, split=(1.0, 0.0, 0.0), seed=0)
    trainer = Trainer(new_module(data), data, TrainingConfig(**{**CFG, "epochs": 2}), progress=False)
    history = trainer.fit()
    assert trainer.monitor == "train/loss"
    assert not any(key.startswith("val/") for key in history)


# --------------------------------------------------------------------------- monitor
# Validation loss is best at epoch 2, reconstruction at epoch 4 (their scripts disagree).
VAL_LOSS = [5.0, 3.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0]
VAL_REC = [9.0, 8.0, 7.0, 6.0, 6.5, 7.0, 8.0, 9.0]


@pytest.mark.parametrize("monitor, best, epochs_run", [("loss", 2, 4), ("rec", 4, 6)])
def test_monitor_picks_best_epoch_and_patience_of_its_term(paired, monitor, best, epochs_run):
    module = ScriptedValidation(VAL_LOSS, VAL_REC)
    cfg = TrainingConfig(**{**CFG, "epochs": 8, "patience": 2, "lr": 0.1, "monitor": monitor})
    trainer = Trainer(module, paired, cfg, progress=False)
    history = trainer.fit()
    assert trainer.monitor == f"val/{monitor}"
    # patience 2 counts epochs without improvement of the monitored term only
    assert history["epoch"] == list(range(1, epochs_run + 1))
    assert trainer.stopped_early and trainer.best_epoch == best
    assert trainer.best_score == (VAL_LOSS if monitor == "loss" else VAL_REC)[best - 1]
    assert torch.equal(module.w.detach(), module.snapshots[best - 1])  # weights of the best epoch
    others = [k for k in range(epochs_run) if k != best - 1]
    assert all(not torch.equal(module.snapshots[best - 1], module.snapshots[k]) for k in others)


def test_monitor_rec_on_the_vae_tracks_val_rec(paired):
    module = new_module(paired)
    trainer = Trainer(module, paired, TrainingConfig(**{**CFG, "epochs": 8, "monitor": "rec"}), progress=False)
    history = trainer.fit()
    recs = history["val/rec"]
    assert trainer.best_score == min(recs)
    assert trainer.best_epoch == 1 + int(np.argmin(recs))


def test_monitor_validation_and_round_trip():
    assert TrainingConfig().monitor == "loss"
    cfg = TrainingConfig(**CFG, monitor="rec")
    assert cfg.to_dict()["monitor"] == "rec"
    assert TrainingConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad in ("reg", "val/rec", "", None, 1):
        with pytest.raises(ConfigError, match=r"TrainingConfig\.monitor must be one of \('loss', 'rec'\)"):
            TrainingConfig(monitor=bad)


def test_monitor_term_missing_from_module_raises(paired):
    module = ScriptedValidation(VAL_LOSS)  # reports "loss" only
    with pytest.raises(ConfigError, match=r"monitor='rec'.*no 'rec' term.*\['loss'\]"):
        fit_module(module, paired, TrainingConfig(**{**CFG, "monitor": "rec"}), progress=False)


def test_empty_validation_monitors_training_term():
    data = pair_trials(tiny_tree(), by="odor", window=3, split=(1.0, 0.0, 0.0), seed=0)
    trainer = Trainer(new_module(data), data, TrainingConfig(**{**CFG, "epochs": 3, "monitor": "rec"}),
                      progress=False)
    history = trainer.fit()
    assert trainer.monitor == "train/rec"
    assert trainer.best_score == min(history["train/rec"])


def test_changing_monitor_on_resume_is_refused(tmp_path, paired):
    fit_module(new_module(paired), paired, TrainingConfig(**{**CFG, "epochs": 2}), checkpoint_dir=tmp_path,
               progress=False)
    with pytest.raises(ConfigError, match=r"monitor: 'loss' -> 'rec'"):
        fit_module(new_module(paired), paired, TrainingConfig(**{**CFG, "epochs": 4, "monitor": "rec"}),
                   checkpoint_dir=tmp_path, resume=True, progress=False)


def test_checkpoint_without_monitor_field_resumes(tmp_path, paired):
    """A checkpoint written before ``monitor`` existed resumes as the run it was: monitor='loss'."""
    cfg = dict(CFG, patience=3, checkpoint_every=1)
    full = new_module(paired)
    h_full = fit_module(full, paired, TrainingConfig(**cfg), checkpoint_dir=tmp_path / "a", progress=False)

    fit_module(new_module(paired), paired, TrainingConfig(**{**cfg, "epochs": 3}), checkpoint_dir=tmp_path / "b",
               progress=False)
    path = tmp_path / "b" / CHECKPOINT_NAME
    old = torch.load(path, weights_only=True)
    del old["config"]["monitor"]  # as written by the engine before the field existed
    torch.save(old, path)
    with pytest.raises(ConfigError, match=r"monitor: 'loss' -> 'rec'"):
        fit_module(new_module(paired), paired, TrainingConfig(**{**cfg, "monitor": "rec"}),
                   checkpoint_dir=tmp_path / "b", resume=True, progress=False)
    resumed = new_module(paired, seed=99)
    h_resumed = fit_module(resumed, paired, TrainingConfig(**cfg), checkpoint_dir=tmp_path / "b", resume=True,
                           progress=False)
    assert h_resumed == h_full
    assert_same_params(params(resumed), params(full))
    assert load_checkpoint(tmp_path / "b")["config"]["monitor"] == "loss"


def test_parameter_check_is_exact_when_a_sum_overflows():
    from neurovamp.models.training import _parameters_finite

    module = torch.nn.Linear(4, 4)
    with torch.no_grad():
        module.weight.fill_(3e38)  # finite, but the float32 sum overflows to inf
    assert _parameters_finite(module)
    with torch.no_grad():
        module.bias[1] = float("nan")
    assert not _parameters_finite(module)
