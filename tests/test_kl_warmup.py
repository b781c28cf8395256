"""KL warm-up (TrainingConfig.kl_warmup): the objective it minimises, early stopping, exact resume."""

from __future__ import annotations

import pytest
import torch

from neurovamp.data.pairing import pair_trials
from neurovamp.errors import ConfigError
from neurovamp.models.config import ModelConfig
from neurovamp.models.module import MultiAnimalVAE
from neurovamp.models.training import CHECKPOINT_NAME, TrainingConfig, fit_module, load_checkpoint, resume_conflicts

from test_training import CFG, assert_same_params, params, tiny_tree


@pytest.fixture(scope="module")
def paired():
    return pair_trials(tiny_tree(), by="odor", window=3, stride=1, seed=0)


def module(paired, beta: float = 1.0, seed: int = 0) -> MultiAnimalVAE:
    torch.manual_seed(seed)
    return MultiAnimalVAE(paired.input_dims, ModelConfig(latent_dim=2, hidden=(8,), beta=beta), names=paired.animals)


def test_weight_schedule_and_validation():
    cfg = TrainingConfig(kl_warmup=4)
    assert [cfg.kl_weight(e) for e in (1, 2, 3, 4, 5, 40)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert TrainingConfig(kl_warmup=0).kl_weight(1) == 1.0
    assert TrainingConfig().kl_warmup == 50  # neurovamp's default (docs/defaults.md)
    for bad in (-1, 2.5, True, "3"):
        with pytest.raises(ConfigError, match="kl_warmup"):
            TrainingConfig(kl_warmup=bad)
    assert TrainingConfig.from_dict(TrainingConfig(kl_warmup=7).to_dict()).kl_warmup == 7


def test_warmup_epoch_minimises_rec_plus_weighted_regulariser(paired):
    """Epoch 1 of a 4-epoch warm-up with beta=1 takes the steps of beta=0.25 without warm-up."""
    one = dict(CFG, epochs=1)
    warm = module(paired, beta=1.0)
    fit_module(warm, paired, TrainingConfig(**{**one, "kl_warmup": 4}), progress=False)
    scaled = module(paired, beta=0.25)
    fit_module(scaled, paired, TrainingConfig(**{**one, "kl_warmup": 0}), progress=False)
    assert_same_params(params(warm), params(scaled))
    plain = module(paired, beta=1.0)
    fit_module(plain, paired, TrainingConfig(**{**one, "kl_warmup": 0}), progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(params(plain).values(), params(warm).values()))


def test_history_and_early_stopping_wait_for_the_full_objective(paired):
    cfg = TrainingConfig(**{**CFG, "epochs": 12, "patience": 1, "kl_warmup": 5})
    history = fit_module(module(paired), paired, cfg, progress=False)
    assert history["train/kl_weight"][:6] == [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    # patience 1 would stop at epoch 2 if warm-up epochs counted; none of them can be best
    assert len(history["epoch"]) >= 6
    ckpt_free = fit_module(module(paired), paired, cfg, progress=False)
    assert ckpt_free == history


def test_resume_with_warmup_is_exact_and_a_changed_warmup_is_refused(tmp_path, paired):
    cfg = dict(CFG, epochs=8, patience=None, checkpoint_every=1, kl_warmup=6)
    full = module(paired)
    h_full = fit_module(full, paired, TrainingConfig(**cfg), checkpoint_dir=tmp_path / "a", progress=False)
    fit_module(module(paired), paired, TrainingConfig(**{**cfg, "epochs": 3}), checkpoint_dir=tmp_path / "b",
               progress=False)
    with pytest.raises(ConfigError, match=r"kl_warmup: 6 -> 2"):
        fit_module(module(paired), paired, TrainingConfig(**{**cfg, "kl_warmup": 2}), checkpoint_dir=tmp_path / "b",
                   resume=True, progress=False)
    resumed = module(paired, seed=99)
    h_resumed = fit_module(resumed, paired, TrainingConfig(**cfg), checkpoint_dir=tmp_path / "b", resume=True,
                           progress=False)
    assert h_resumed == h_full
    assert_same_params(params(resumed), params(full))
    assert load_checkpoint(tmp_path / "b")["config"]["kl_warmup"] == 6


def test_checkpoint_without_the_field_resumes_as_no_warmup(tmp_path, paired):
    cfg = dict(CFG, epochs=4, checkpoint_every=1, kl_warmup=0)
    fit_module(module(paired), paired, TrainingConfig(**{**cfg, "epochs": 2}), checkpoint_dir=tmp_path, progress=False)
    path = tmp_path / CHECKPOINT_NAME
    old = torch.load(path, weights_only=True)
    del old["config"]["kl_warmup"]  # as written before the field existed
    torch.save(old, path)
    assert resume_conflicts(old["config"], TrainingConfig(**cfg).to_dict()) == {}
    assert "kl_warmup" in resume_conflicts(old["config"], TrainingConfig(**{**cfg, "kl_warmup": 3}).to_dict())
    fit_module(module(paired), paired, TrainingConfig(**cfg), checkpoint_dir=tmp_path, resume=True, progress=False)
