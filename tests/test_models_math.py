"""Math of neurovamp.models: KL divergences, aggregators, likelihoods, MMVM regulariser.

Every check compares against an independent computation (torch.distributions, scipy,
explicit per-sample loops in numpy), not just shapes.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats as st
import torch
from torch.distributions import Normal, kl_divergence

from neurovamp.errors import ConfigError
from neurovamp.models.aggregation import (
    average_experts,
    mixture_of_experts,
    mixture_of_products,
    product_of_experts,
    subset_matrix,
)
from neurovamp.models.gaussians import kl_diag, kl_standard_normal, pairwise_kl, reparameterize
from neurovamp.models.likelihoods import Gaussian, NegativeBinomial, Poisson
from neurovamp.models.objectives import independent_regulariser, mmvm_regulariser


def _posteriors(m: int = 4, b: int = 6, k: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(m, b, k, generator=g, dtype=torch.float64)
    logvar = 0.8 * torch.randn(m, b, k, generator=g, dtype=torch.float64)
    return mu, logvar


def _normal(mu: torch.Tensor, logvar: torch.Tensor) -> Normal:
    return Normal(mu, torch.exp(0.5 * logvar))


def _random_mask(b: int, m: int, seed: int, empty_row: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(b, m, generator=g) < 0.6
    mask[0] = True  # all observed
    mask[1] = False
    mask[1, 2] = True  # a single animal
    if empty_row:
        mask[-1] = False  # nobody observed
    return mask


# ---------------------------------------------------------------------- KL divergences
def test_kl_diag_and_standard_normal_match_torch_distributions() -> None:
    mu, logvar = _posteriors()
    expected = kl_divergence(_normal(mu[0], logvar[0]), _normal(mu[1], logvar[1])).sum(-1)
    torch.testing.assert_close(kl_diag(mu[0], logvar[0], mu[1], logvar[1]), expected)
    std = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(kl_standard_normal(mu, logvar), kl_divergence(_normal(mu, logvar), std).sum(-1))


def test_pairwise_kl_matches_every_pair() -> None:
    mu, logvar = _posteriors(m=5, b=7, k=3)
    pair = pairwise_kl(mu, logvar)
    assert pair.shape == (5, 5, 7)
    for i, j in itertools.product(range(5), range(5)):
        expected = kl_divergence(_normal(mu[i], logvar[i]), _normal(mu[j], logvar[j])).sum(-1)
        torch.testing.assert_close(pair[i, j], expected)
    torch.testing.assert_close(torch.diagonal(pair, dim1=0, dim2=1), torch.zeros(7, 5, dtype=mu.dtype))


def test_pairwise_kl_gradients_reach_both_sides() -> None:
    mu, logvar = _posteriors(m=3, b=2, k=2)
    mu.requires_grad_(True)
    logvar.requires_grad_(True)
    pairwise_kl(mu, logvar)[0, 1].sum().backward()
    # d KL(q0 || q1) / d mu1 = (mu1 - mu0) / var1 -- the "prior" side gets a gradient too.
    expected_mu1 = ((mu[1] - mu[0]) / torch.exp(logvar[1])).detach()
    torch.testing.assert_close(mu.grad[1], expected_mu1)
    torch.testing.assert_close(mu.grad[0], -expected_mu1)
    assert torch.all(logvar.grad[1] != 0) and torch.all(logvar.grad[0] != 0)
    assert torch.all(mu.grad[2] == 0)


def test_reparameterize_formula_and_moments() -> None:
    mu = torch.tensor([[1.0, -2.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)]])
    eps = torch.tensor([[0.5, -1.0]])
    torch.testing.assert_close(reparameterize(mu, logvar, eps), torch.tensor([[1.5, -4.0]]))
    torch.manual_seed(0)
    draws = reparameterize(mu.expand(20000, 2), logvar.expand(20000, 2))
    torch.testing.assert_close(draws.mean(0), mu[0], atol=0.05, rtol=0)
    torch.testing.assert_close(draws.var(0), torch.tensor([1.0, 4.0]), atol=0.1, rtol=0)


# ---------------------------------------------------------------------- aggregators
def _poe_numpy(mu: np.ndarray, var: np.ndarray, observed: np.ndarray, prior: bool) -> tuple[np.ndarray, np.ndarray]:
    """Precision-weighted product for one sample, written out per expert."""
    precision = np.ones(mu.shape[-1]) if prior else np.zeros(mu.shape[-1])
    weighted = np.zeros(mu.shape[-1])
    for m in np.flatnonzero(observed):
        precision = precision + 1.0 / var[m]
        weighted = weighted + mu[m] / var[m]
    if not prior and not observed.any():
        return np.zeros(mu.shape[-1]), np.ones(mu.shape[-1])
    return weighted / precision, 1.0 / precision


@pytest.mark.parametrize("prior_expert", [True, False])
def test_product_of_experts_closed_form_with_mask(prior_expert: bool) -> None:
    mu, logvar = _posteriors(m=4, b=8, k=3)
    mask = _random_mask(8, 4, seed=1)
    joint = product_of_experts(mu, logvar, mask, prior_expert=prior_expert)
    assert joint.mu.shape == (1, 8, 3) and joint.weights.shape == (1, 8)
    var = torch.exp(logvar).numpy()
    for b in range(8):
        exp_mu, exp_var = _poe_numpy(mu[:, b].numpy(), var[:, b], mask[b].numpy(), prior_expert)
        np.testing.assert_allclose(joint.mu[0, b].numpy(), exp_mu, rtol=1e-10)
        np.testing.assert_allclose(torch.exp(joint.logvar[0, b]).numpy(), exp_var, rtol=1e-10)


def test_product_of_experts_is_normalised_product_density() -> None:
    # log N(z; joint) - sum_m log N(z; expert m) - log N(z; 0, I) must not depend on z.
    mu, logvar = _posteriors(m=3, b=1, k=2, seed=3)
    joint = product_of_experts(mu, logvar, None, prior_expert=True)
    z = torch.randn(50, 2, dtype=torch.float64)
    log_joint = _normal(joint.mu[0, 0], joint.logvar[0, 0]).log_prob(z).sum(-1)
    log_experts = sum(_normal(mu[m, 0], logvar[m, 0]).log_prob(z).sum(-1) for m in range(3))
    log_prior = Normal(0.0, 1.0).log_prob(z).sum(-1)
    diff = log_joint - log_experts - log_prior
    assert float(diff.std()) < 1e-9


def test_average_experts_closed_form_with_mask() -> None:
    mu, logvar = _posteriors(m=4, b=8, k=3)
    mask = _random_mask(8, 4, seed=2)
    joint = average_experts(mu, logvar, mask)
    var = torch.exp(logvar)
    for b in range(8):
        obs = mask[b]
        if obs.any():
            exp_mu = mu[obs, b].mean(0)
            exp_var = var[obs, b].mean(0)
        else:
            exp_mu, exp_var = torch.zeros(3, dtype=mu.dtype), torch.ones(3, dtype=mu.dtype)
        torch.testing.assert_close(joint.mu[0, b], exp_mu)
        torch.testing.assert_close(torch.exp(joint.logvar[0, b]), exp_var)


def test_mixture_of_experts_weights_mean_and_kl_bound() -> None:
    mu, logvar = _posteriors(m=4, b=8, k=3)
    mask = _random_mask(8, 4, seed=3, empty_row=False)
    mix = mixture_of_experts(mu, logvar, mask)
    std = Normal(torch.zeros(3, dtype=mu.dtype), torch.ones(3, dtype=mu.dtype))
    for b in range(8):
        obs = torch.nonzero(mask[b]).flatten()
        expected_w = torch.zeros(4, dtype=mu.dtype)
        expected_w[obs] = 1.0 / len(obs)
        torch.testing.assert_close(mix.weights[:, b], expected_w)
        torch.testing.assert_close(mix.mean()[b], mu[obs, b].mean(0))
        kls = torch.stack([kl_divergence(_normal(mu[m, b], logvar[m, b]), std).sum() for m in obs])
        torch.testing.assert_close(mix.kl_bound()[b], kls.mean())


def test_mixture_sampling_picks_only_observed_experts_uniformly() -> None:
    n = 4000
    centres = torch.tensor([0.0, 10.0, 20.0, 30.0]).view(4, 1, 1).expand(4, n, 1).contiguous()
    logvar = torch.full_like(centres, -20.0)
    mask = torch.zeros(n, 4, dtype=torch.bool)
    mask[:, [0, 2, 3]] = True
    torch.manual_seed(0)
    z = mixture_of_experts(centres, logvar, mask).sample()[:, 0]
    picked = torch.round(z / 10.0).long()
    counts = torch.bincount(picked, minlength=4).double() / n
    assert counts[1] == 0
    torch.testing.assert_close(counts[[0, 2, 3]], torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.04, rtol=0)


def test_subset_matrix_enumerates_all_nonempty_subsets() -> None:
    for m in range(1, 7):
        subsets = subset_matrix(m)
        assert subsets.shape == (2**m - 1, m) and subsets.dtype == torch.bool
        rows = {tuple(r) for r in subsets.tolist()}
        expected = {tuple(bool(i >> j & 1) for j in range(m)) for i in range(1, 2**m)}
        assert rows == expected
    with pytest.raises(ConfigError, match="number of animals"):
        subset_matrix(13)


def test_mixture_of_products_components_and_weights() -> None:
    mu, logvar = _posteriors(m=4, b=6, k=2)
    mask = _random_mask(6, 4, seed=4, empty_row=False)
    subsets = subset_matrix(4)
    mix = mixture_of_products(mu, logvar, mask, subsets)
    assert mix.mu.shape == (15, 6, 2)
    std = Normal(torch.zeros(2, dtype=mu.dtype), torch.ones(2, dtype=mu.dtype))
    for b in range(6):
        observed = set(torch.nonzero(mask[b]).flatten().tolist())
        valid = [s for s in range(15) if set(torch.nonzero(subsets[s]).flatten().tolist()) <= observed]
        assert len(valid) == 2 ** len(observed) - 1
        expected_w = torch.zeros(15, dtype=mu.dtype)
        expected_w[valid] = 1.0 / len(valid)
        torch.testing.assert_close(mix.weights[:, b], expected_w)
        kls = []
        for s in valid:
            members = subsets[s].numpy()
            exp_mu, exp_var = _poe_numpy(mu[:, b].numpy(), torch.exp(logvar[:, b]).numpy(), members, prior=False)
            np.testing.assert_allclose(mix.mu[s, b].numpy(), exp_mu, rtol=1e-10)
            np.testing.assert_allclose(torch.exp(mix.logvar[s, b]).numpy(), exp_var, rtol=1e-10)
            comp = Normal(torch.from_numpy(exp_mu), torch.from_numpy(np.sqrt(exp_var)))
            kls.append(kl_divergence(comp, std).sum())
        torch.testing.assert_close(mix.kl_bound()[b], torch.stack(kls).mean())


# ---------------------------------------------------------------------- likelihoods
def _counts(shape: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).poisson(2.0, size=shape).astype(np.float64)


def test_gaussian_log_prob_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    x, eta = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    lik = Gaussian(scale=0.7)
    got = lik.log_prob(torch.from_numpy(x), torch.from_numpy(eta))
    np.testing.assert_allclose(got.numpy(), st.norm.logpdf(x, loc=eta, scale=0.7).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(lik.mean(torch.from_numpy(eta)).numpy(), eta)


@pytest.mark.parametrize("link", ["exp", "softplus"])
def test_poisson_log_prob_matches_scipy(link: str) -> None:
    x = _counts((6, 9), seed=1)
    eta = np.random.default_rng(2).normal(size=(6, 9))
    lik = Poisson(link)
    rate = np.exp(eta) if link == "exp" else np.log1p(np.exp(eta))
    got = lik.log_prob(torch.from_numpy(x), torch.from_numpy(eta))
    np.testing.assert_allclose(got.numpy(), st.poisson.logpmf(x, rate).sum(-1), rtol=1e-10)
    np.testing.assert_allclose(lik.mean(torch.from_numpy(eta)).numpy(), rate, rtol=1e-12)
    np.testing.assert_allclose(lik.natural_from_mean(torch.from_numpy(rate)).numpy(), eta, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("link", ["exp", "softplus"])
def test_negative_binomial_log_prob_matches_scipy(link: str) -> None:
    x = _counts((6, 9), seed=3)
    x[0, 0] = 40.0  # a large count
    eta = np.random.default_rng(4).normal(size=(6, 9))
    lik = NegativeBinomial(9, link).double()
    r = np.exp(np.random.default_rng(5).normal(size=9))
    with torch.no_grad():
        lik.log_dispersion.copy_(torch.from_numpy(np.log(r)))
    mean = np.exp(eta) if link == "exp" else np.log1p(np.exp(eta))
    got = lik.log_prob(torch.from_numpy(x), torch.from_numpy(eta))
    expected = st.nbinom.logpmf(x, r, r / (r + mean)).sum(-1)
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-9)
    np.testing.assert_allclose(lik.mean(torch.from_numpy(eta)).numpy(), mean, rtol=1e-12)
    got.sum().backward()
    assert torch.all(lik.log_dispersion.grad != 0)


def test_negative_binomial_tends_to_poisson() -> None:
    x = torch.from_numpy(_counts((3, 4), seed=6))
    eta = torch.randn(3, 4, dtype=torch.float64)
    lik = NegativeBinomial(4, init_dispersion=1e7).double()
    torch.testing.assert_close(lik.log_prob(x, eta), Poisson().log_prob(x, eta), rtol=1e-5, atol=1e-4)


def test_likelihoods_broadcast_over_leading_sample_dims() -> None:
    x = torch.from_numpy(_counts((5, 3), seed=7))
    eta = torch.randn(4, 5, 3, dtype=torch.float64)
    lik = Poisson()
    got = lik.log_prob(x, eta)
    assert got.shape == (4, 5)
    torch.testing.assert_close(got[2], lik.log_prob(x, eta[2]))


# ---------------------------------------------------------------------- MMVM regulariser
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_mmvm_regulariser_matches_per_sample_loop(alpha: float) -> None:
    mu, logvar = _posteriors(m=4, b=8, k=3)
    mask = _random_mask(8, 4, seed=5)
    reg = mmvm_regulariser(mu, logvar, mask, alpha)
    std = Normal(torch.zeros(3, dtype=mu.dtype), torch.ones(3, dtype=mu.dtype))
    for b in range(8):
        observed = torch.nonzero(mask[b]).flatten().tolist()
        for m in range(4):
            if m not in observed:
                assert reg[m, b] == 0
                continue
            q_m = _normal(mu[m, b], logvar[m, b])
            to_mix = sum(kl_divergence(q_m, _normal(mu[j, b], logvar[j, b])).sum() for j in observed) / len(observed)
            expected = (1 - alpha) * to_mix + alpha * kl_divergence(q_m, std).sum()
            torch.testing.assert_close(reg[m, b], expected)


def test_mmvm_regulariser_alpha_one_is_independent() -> None:
    mu, logvar = _posteriors(m=3, b=5, k=2)
    mask = _random_mask(5, 3, seed=6)
    assert torch.equal(mmvm_regulariser(mu, logvar, mask, 1.0), independent_regulariser(mu, logvar, mask))
