"""The batched step equals the per-animal loop; the sufficient-statistics MMVM regulariser equals the pairwise one."""

from __future__ import annotations

import itertools

import pytest
import torch

from neurovamp.errors import ConfigError
from neurovamp.models.batched import AUTO_BATCHED_ANIMALS, resolve_step, width_groups
from neurovamp.models.config import ModelConfig
from neurovamp.models.gaussians import kl_sum_to_observed, pairwise_kl
from neurovamp.models.module import MultiAnimalVAE
from neurovamp.models.objectives import PAIRWISE_MAX_ANIMALS, mmvm_regulariser

MODELS = ("mmvm", "independent", "poe", "moe", "mopoe", "avg")
# mixed widths: several groups, some holding more than one animal (padding inside a group)
DIMS = (7, 12, 13, 30, 31, 5, 12)


def _batch(dims, batch=9, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.poisson(torch.rand(batch, d, generator=g, dtype=dtype) * 3, generator=g) for d in dims]
    mask = torch.rand(batch, len(dims), generator=g) < 0.7
    mask[0] = False  # a sample with no observed animal
    mask[1] = True
    mask[2, 1:] = False  # only animal 0
    for m, x in enumerate(xs):
        x[~mask[:, m]] = 0.0  # the batcher's zeros for missing animals
    return xs, mask


def _pair(config, dims=DIMS, seed=0):
    torch.manual_seed(seed)
    loop = MultiAnimalVAE(dims, config).double().set_step("loop")
    with torch.no_grad():  # non-trivial decoders' output biases and dispersions
        for lik in loop.likelihoods:
            if hasattr(lik, "log_dispersion"):
                lik.log_dispersion.uniform_(-1.0, 2.0)
    batched = MultiAnimalVAE(dims, config).double()
    batched.load_state_dict(loop.state_dict())
    return loop, batched.set_step("batched")


def _loss_and_grads(vae, xs, mask, eps):
    vae.zero_grad(set_to_none=True)
    terms = vae.loss(xs, mask, eps=eps)
    terms["loss"].backward()
    return {k: v.detach() for k, v in terms.items()}, {n: p.grad.clone() for n, p in vae.named_parameters()}


CASES = list(itertools.product(MODELS, ("poisson", "negbin", "gaussian"))) + [
    (model, "input") for model in MODELS  # hidden layers as wide as each animal's input
] + [("mmvm", "bottleneck"), ("poe", "linear"), ("mmvm", "softplus")]


@pytest.mark.parametrize("model,variant", CASES)
def test_batched_step_equals_loop_in_loss_and_gradients(model, variant):
    settings = dict(model=model, latent_dim=3, hidden=(6,))
    if variant in ("poisson", "negbin", "gaussian"):
        settings["likelihood"] = variant
    elif variant == "input":
        settings["hidden"] = ("input", 4)
    elif variant == "bottleneck":
        settings.update(hidden=("input",), encoder_bottleneck=True, likelihood="gaussian")
    elif variant == "linear":
        settings.update(decoder="linear", likelihood="negbin")
    elif variant == "softplus":
        settings.update(activation="softplus", link="softplus")
    if model == "mmvm":
        settings["alpha"] = 0.2
    loop, batched = _pair(ModelConfig(**settings))
    assert batched._batched is not None and loop._batched is None
    groups = batched._batched.groups
    assert 1 < len(groups) < len(DIMS) and max(map(len, groups)) > 1  # padding really happens
    xs, mask = _batch(DIMS)
    k = loop.config.latent_dim
    eps = torch.randn((9, k) if loop.config.is_joint else (len(DIMS), 9, k), dtype=torch.float64)
    torch.manual_seed(5)  # the mixtures draw their component choice from torch's generator
    ref_terms, ref_grads = _loss_and_grads(loop, xs, mask, eps)
    torch.manual_seed(5)
    terms, grads = _loss_and_grads(batched, xs, mask, eps)
    assert terms.keys() == ref_terms.keys()
    for key in ref_terms:
        torch.testing.assert_close(terms[key], ref_terms[key], rtol=1e-10, atol=1e-10, msg=key)
    assert grads.keys() == ref_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-9, atol=1e-10, msg=name)
    assert any(float(g.abs().sum()) > 0 for g in grads.values())


def test_batched_encode_and_loss_with_an_animal_absent_from_the_batch():
    loop, batched = _pair(ModelConfig(model="mmvm", latent_dim=2, hidden=(5,)))
    xs, mask = _batch(DIMS, seed=3)
    xs[3] = None
    for a, b in zip(loop.encode(xs), batched.encode(xs)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        assert float(b[3].detach().abs().sum()) == 0.0  # the placeholder rows
    eps = torch.randn(len(DIMS), 9, 2, dtype=torch.float64)
    torch.testing.assert_close(batched.loss(xs, mask, eps=eps)["loss"], loop.loss(xs, mask, eps=eps)["loss"])


def test_batched_step_keeps_parameters_and_state_dict():
    loop, batched = _pair(ModelConfig(model="poe", latent_dim=2, likelihood="negbin"))
    assert list(loop.state_dict()) == list(batched.state_dict())
    assert sum(p.numel() for p in loop.parameters()) == sum(p.numel() for p in batched.parameters())
    # an update of a per-animal parameter is seen by the next batched step
    xs, mask = _batch(DIMS, seed=1)
    eps = torch.randn(9, 2, dtype=torch.float64)
    with torch.no_grad():
        for vae in (loop, batched):
            vae.decoders[4].out.bias.add_(0.5)
    torch.testing.assert_close(batched.loss(xs, mask, eps=eps)["loss"], loop.loss(xs, mask, eps=eps)["loss"])


def test_step_selection():
    assert resolve_step("auto", AUTO_BATCHED_ANIMALS, "cuda") == "batched"
    assert resolve_step("auto", AUTO_BATCHED_ANIMALS - 1, "cuda") == "loop"
    assert resolve_step("auto", 200, "cpu") == "loop"
    assert resolve_step("loop", 200, "cuda") == "loop" and resolve_step("batched", 2) == "batched"
    with pytest.raises(ConfigError, match="step must be one of"):
        resolve_step("vmap", 3)
    vae = MultiAnimalVAE([4] * AUTO_BATCHED_ANIMALS)
    assert vae.step == "loop" and vae._batched is None  # the reference unless asked
    assert vae.set_step("batched")._batched is not None and vae.step == "batched"
    assert vae.set_step("auto")._batched is None  # on the CPU


def test_width_groups_bound_the_padding():
    costs = [80, 90, 100, 300, 310, 10, 320, 95]
    groups = width_groups(costs, max_padding=0.25)
    assert sorted(m for g in groups for m in g) == list(range(len(costs)))
    for g in groups:
        assert len(g) * max(costs[m] for m in g) <= 1.25 * sum(costs[m] for m in g)
    assert [sorted(g) for g in groups] == [[5], [0, 1, 2, 7], [3, 4, 6]]
    assert width_groups([7] * 50) == [list(range(50))]


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
def test_sufficient_statistics_equal_pairwise_kl_sum(dtype, tol):
    g = torch.Generator().manual_seed(0)
    m, b, k = 23, 6, 4
    mu = (torch.randn(m, b, k, generator=g, dtype=dtype) * 2 + 5).requires_grad_()
    logvar = (torch.randn(m, b, k, generator=g, dtype=dtype)).requires_grad_()
    obs = (torch.rand(m, b, generator=g) < 0.6).to(dtype)
    obs[:, 0] = 0.0  # nothing observed
    obs[:, 1] = 0.0
    obs[4, 1] = 1.0  # one animal: every KL to the mixture is KL(q || q) = 0
    ref = (pairwise_kl(mu, logvar) * obs.unsqueeze(0)).sum(1)
    fast = kl_sum_to_observed(mu, logvar, obs)
    torch.testing.assert_close(fast, ref, rtol=tol, atol=tol * 10)
    assert float(ref[:, 0].detach().abs().max()) == 0.0 and float(fast[4, 1].detach().abs()) < tol * 10
    weights = torch.rand(m, b, generator=g, dtype=dtype)
    g_ref = torch.autograd.grad((ref * weights).sum(), (mu, logvar))
    g_fast = torch.autograd.grad((fast * weights).sum(), (mu, logvar))
    for a, c in zip(g_fast, g_ref):
        torch.testing.assert_close(a, c, rtol=tol, atol=tol * 10)


def test_mmvm_regulariser_switches_to_sufficient_statistics_above_the_threshold(monkeypatch):
    g = torch.Generator().manual_seed(1)
    m = PAIRWISE_MAX_ANIMALS + 4
    mu = torch.randn(m, 5, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(m, 5, 3, generator=g, dtype=torch.float64) * 0.5
    mask = torch.rand(5, m, generator=g) < 0.5
    fast = mmvm_regulariser(mu, logvar, mask, 0.3)
    monkeypatch.setattr("neurovamp.models.objectives.PAIRWISE_MAX_ANIMALS", 10**6)
    pairwise = mmvm_regulariser(mu, logvar, mask, 0.3)
    torch.testing.assert_close(fast, pairwise, rtol=1e-10, atol=1e-10)
    calls = []
    monkeypatch.setattr("neurovamp.models.objectives.pairwise_kl", lambda *a: calls.append(1) or pairwise_kl(*a))
    monkeypatch.setattr("neurovamp.models.objectives.PAIRWISE_MAX_ANIMALS", 16)
    mmvm_regulariser(mu, logvar, mask, 0.3)
    assert not calls  # the (M, M, B) pairs were never built
