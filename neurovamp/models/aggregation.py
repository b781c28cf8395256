"""Joint posteriors from unimodal experts: PoE, MoE, MoPoE and AVG.

Every aggregator takes the animals' diagonal-Gaussian posteriors ``mu, logvar`` of shape
``(M, B, K)`` and a mask ``(B, M)`` (True = animal observed in that sample) and returns a
:class:`GaussianMixture`: C diagonal-Gaussian components ``(C, B, K)`` with per-sample
weights ``(C, B)``. PoE and AVG give one component (C = 1). Missing animals never enter a
product, mixture or average. A sample with no observed animal gets finite placeholder
values (N(0, I) for PoE, AVG and MoPoE; uniform weights for MoE); the caller masks its
loss terms out.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import NamedTuple

import torch
from torch import Tensor

from neurovamp.errors import ConfigError
from neurovamp.models.gaussians import kl_standard_normal, reparameterize

__all__ = [
    "GaussianMixture",
    "product_of_experts",
    "mixture_of_experts",
    "mixture_of_products",
    "average_experts",
    "subset_matrix",
    "MAX_SUBSET_ANIMALS",
]

MAX_SUBSET_ANIMALS = 12
"""Largest number of animals for which MoPoE enumerates the 2^M - 1 subsets."""


class GaussianMixture(NamedTuple):
    """A per-sample mixture of diagonal Gaussians.

    Attributes
    ----------
    mu, logvar
        ``(C, B, K)`` component means and log-variances.
    weights
        ``(C, B)`` mixture weights; each column sums to 1.
    """

    mu: Tensor
    logvar: Tensor
    weights: Tensor

    def mean(self) -> Tensor:
        """Mean of the mixture, ``(B, K)``: sum_c w_c mu_c."""
        return torch.einsum("cb,cbk->bk", self.weights, self.mu)

    def kl_bound(self) -> Tensor:
        """Upper bound on KL(mixture || N(0, I)), ``(B,)``.

        By convexity of the KL in its first argument,
        KL(sum_c w_c q_c || p) <= sum_c w_c KL(q_c || p) (the bound the MoE and MoPoE
        VAEs optimise). Exact for a single component.
        """
        return (self.weights * kl_standard_normal(self.mu, self.logvar)).sum(0)

    def sample(self, eps: Tensor | None = None) -> Tensor:
        """One reparameterised draw per sample, ``(B, K)``.

        A component is picked per sample with probability ``weights[:, b]`` (from torch's
        global generator; no gradient flows through the choice), then
        z = mu_c + exp(logvar_c / 2) * eps.

        Parameters
        ----------
        eps
            ``(B, K)`` standard-normal noise; drawn when ``None``.
        """
        n_comp = self.mu.shape[0]
        if n_comp == 1:
            return reparameterize(self.mu[0], self.logvar[0], eps)
        pick = torch.multinomial(self.weights.detach().T, 1).squeeze(1)  # (B,)
        onehot = torch.nn.functional.one_hot(pick, n_comp).T.to(self.mu.dtype)  # (C, B)
        mu = torch.einsum("cb,cbk->bk", onehot, self.mu)
        logvar = torch.einsum("cb,cbk->bk", onehot, self.logvar)
        return reparameterize(mu, logvar, eps)


def _observed(mask: Tensor | None, mu: Tensor) -> Tensor:
    """Mask as float ``(M, B)``; all ones when ``mask`` is None."""
    n_animals, batch = mu.shape[0], mu.shape[1]
    if mask is None:
        return mu.new_ones(n_animals, batch)
    return mask.T.to(mu.dtype)


def product_of_experts(
    mu: Tensor, logvar: Tensor, mask: Tensor | None = None, prior_expert: bool = True
) -> GaussianMixture:
    """Product of the observed experts (and optionally a N(0, I) prior expert).

    Precision-weighted: precision T = sum_{m observed} 1/var_m (+ 1 for the prior
    expert), mean = (sum_m mu_m / var_m) / T, variance 1/T.

    Parameters
    ----------
    mu, logvar
        ``(M, B, K)`` unimodal posteriors.
    mask
        ``(B, M)`` bool, True where observed; None = all observed.
    prior_expert
        Include the N(0, I) expert (precision 1, mean 0).

    Returns
    -------
    GaussianMixture
        One component (C = 1).
    """
    obs = _observed(mask, mu).unsqueeze(-1)  # (M, B, 1)
    precision = torch.exp(-logvar) * obs
    total = precision.sum(0)
    if prior_expert:
        total = total + 1.0
    else:  # samples without any expert fall back to N(0, I)
        total = total + (obs.sum(0) == 0).to(mu.dtype)
    joint_mu = (precision * mu).sum(0) / total
    joint_logvar = -torch.log(total)
    return GaussianMixture(joint_mu.unsqueeze(0), joint_logvar.unsqueeze(0), mu.new_ones(1, mu.shape[1]))


def average_experts(mu: Tensor, logvar: Tensor, mask: Tensor | None = None) -> GaussianMixture:
    """Average of the observed experts' means and of their variances (the AVG baseline).

    Parameters
    ----------
    mu, logvar
        ``(M, B, K)`` unimodal posteriors.
    mask
        ``(B, M)`` bool; None = all observed.

    Returns
    -------
    GaussianMixture
        One component with mean (1/|O|) sum_O mu_m and variance (1/|O|) sum_O var_m.
    """
    obs = _observed(mask, mu)  # (M, B)
    count = obs.sum(0)  # (B,)
    empty = count == 0
    safe = count.clamp_min(1.0).unsqueeze(-1)
    joint_mu = (mu * obs.unsqueeze(-1)).sum(0) / safe
    masked_lv = logvar.masked_fill(obs.unsqueeze(-1) == 0, -math.inf)
    log_sum = torch.logsumexp(masked_lv, dim=0)  # -inf where no expert
    joint_logvar = torch.where(empty.unsqueeze(-1), torch.zeros_like(log_sum), log_sum - torch.log(safe))
    return GaussianMixture(joint_mu.unsqueeze(0), joint_logvar.unsqueeze(0), mu.new_ones(1, mu.shape[1]))


def mixture_of_experts(mu: Tensor, logvar: Tensor, mask: Tensor | None = None) -> GaussianMixture:
    """Uniform mixture of the observed experts (the MoE baseline).

    Parameters
    ----------
    mu, logvar
        ``(M, B, K)`` unimodal posteriors.
    mask
        ``(B, M)`` bool; None = all observed.

    Returns
    -------
    GaussianMixture
        The M experts as components, weight 1/|O| on each observed one and 0 on missing
        ones (a sample with no observed animal gets uniform weights; the caller masks
        its loss terms out).
    """
    obs = _observed(mask, mu)
    weights = _normalise_weights(obs)
    return GaussianMixture(mu, logvar, weights)


@lru_cache(maxsize=16)
def _subsets(n_animals: int) -> tuple[tuple[bool, ...], ...]:
    rows = []
    for size in range(1, n_animals + 1):
        for combo in itertools.combinations(range(n_animals), size):
            rows.append(tuple(m in combo for m in range(n_animals)))
    return tuple(rows)


def subset_matrix(n_animals: int, device: torch.device | str | None = None) -> Tensor:
    """All non-empty subsets of ``n_animals`` animals as a bool matrix.

    Parameters
    ----------
    n_animals
        M, at most :data:`MAX_SUBSET_ANIMALS`.
    device
        Device of the returned tensor.

    Returns
    -------
    Tensor
        ``(2^M - 1, M)`` bool; row s marks the members of subset s. Rows are ordered by
        subset size, then lexicographically (singletons first, the full set last).
    """
    if not 1 <= n_animals <= MAX_SUBSET_ANIMALS:
        raise ConfigError(
            f"MoPoE enumerates all subsets of animals; the number of animals must be between 1 and "
            f"{MAX_SUBSET_ANIMALS}, got {n_animals}"
        )
    return torch.tensor(_subsets(n_animals), dtype=torch.bool, device=device)


def mixture_of_products(
    mu: Tensor, logvar: Tensor, mask: Tensor | None = None, subsets: Tensor | None = None
) -> GaussianMixture:
    """Mixture over all non-empty subsets of the observed animals of their PoEs (MoPoE).

    Each subset's product has no prior expert (as in the MoPoE-VAE); the mixture is
    uniform over the subsets whose members are all observed in that sample
    (2^|O| - 1 of them).

    Parameters
    ----------
    mu, logvar
        ``(M, B, K)`` unimodal posteriors.
    mask
        ``(B, M)`` bool; None = all observed.
    subsets
        ``(S, M)`` bool subset matrix (precompute with :func:`subset_matrix`); built when
        None.

    Returns
    -------
    GaussianMixture
        S components; zero weight on subsets with a missing member.
    """
    n_animals = mu.shape[0]
    if subsets is None:
        subsets = subset_matrix(n_animals, device=mu.device)
    members = subsets.to(mu.dtype)  # (S, M)
    obs = _observed(mask, mu)  # (M, B)
    precision = torch.exp(-logvar) * obs.unsqueeze(-1)  # (M, B, K)
    total = torch.einsum("sm,mbk->sbk", members, precision)
    weighted = torch.einsum("sm,mbk->sbk", members, precision * mu)
    # A subset with no observed member (weight 0 below) falls back to N(0, I).
    n_present = members @ obs  # (S, B)
    total = total + (n_present == 0).to(mu.dtype).unsqueeze(-1)
    comp_mu = weighted / total
    comp_logvar = -torch.log(total)
    n_missing = members @ (1.0 - obs)  # (S, B): members not observed
    valid = (n_missing == 0).to(mu.dtype)
    return GaussianMixture(comp_mu, comp_logvar, _normalise_weights(valid))


def _normalise_weights(valid: Tensor) -> Tensor:
    """Columns of ``valid`` (C, B) scaled to sum to 1; empty columns become uniform."""
    count = valid.sum(0, keepdim=True)
    uniform = torch.full_like(valid, 1.0 / valid.shape[0])
    return torch.where(count > 0, valid / count.clamp_min(1.0), uniform)
