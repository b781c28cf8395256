"""Diagonal Gaussians: closed-form KL divergences and reparameterised sampling.

A diagonal Gaussian is given by its mean ``mu`` and log-variance ``logvar`` (same shape,
latent dimension last). Every function broadcasts over leading dimensions; nothing loops.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["kl_diag", "kl_standard_normal", "pairwise_kl", "kl_sum_to_observed", "reparameterize"]


def kl_diag(mu1: Tensor, logvar1: Tensor, mu2: Tensor, logvar2: Tensor) -> Tensor:
    """KL(N(mu1, diag e^logvar1) || N(mu2, diag e^logvar2)), summed over the last dimension.

    Parameters
    ----------
    mu1, logvar1
        Mean and log-variance of the first Gaussian, ``(..., K)``.
    mu2, logvar2
        Mean and log-variance of the second Gaussian, broadcastable against the first.

    Returns
    -------
    Tensor
        ``(...)``: 0.5 * sum_k [logvar2 - logvar1 + (e^logvar1 + (mu1 - mu2)^2) / e^logvar2 - 1].
    """
    inv_var2 = torch.exp(-logvar2)
    terms = logvar2 - logvar1 + (torch.exp(logvar1) + (mu1 - mu2).square()) * inv_var2 - 1.0
    return 0.5 * terms.sum(-1)


def kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag e^logvar) || N(0, I)), summed over the last dimension.

    Parameters
    ----------
    mu, logvar
        ``(..., K)``.

    Returns
    -------
    Tensor
        ``(...)``: 0.5 * sum_k [e^logvar + mu^2 - 1 - logvar].
    """
    return 0.5 * (torch.exp(logvar) + mu.square() - 1.0 - logvar).sum(-1)


def pairwise_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL divergences between all pairs of M diagonal Gaussians, per sample.

    Parameters
    ----------
    mu, logvar
        ``(M, B, K)``: M Gaussians (one per animal) for each of B samples.

    Returns
    -------
    Tensor
        ``(M, M, B)`` with entry ``[i, j, b] = KL(q_i(b) || q_j(b))`` (zero on the
        diagonal). Differentiable with respect to both arguments of every KL.
    """
    var = torch.exp(logvar)
    inv_var = torch.exp(-logvar)
    diff2 = (mu.unsqueeze(1) - mu.unsqueeze(0)).square()  # [i, j] = (mu_i - mu_j)^2
    terms = (logvar.unsqueeze(0) - logvar.unsqueeze(1)) + (var.unsqueeze(1) + diff2) * inv_var.unsqueeze(0)
    return 0.5 * (terms - 1.0).sum(-1)


def kl_sum_to_observed(mu: Tensor, logvar: Tensor, obs: Tensor) -> Tensor:
    """``sum_n obs[n] KL(q_m || q_n)`` for every m, from sufficient statistics: O(M B K) memory.

    With precisions ``p_n = exp(-logvar_n)`` and the sums over observed n
    ``N = sum obs_n``, ``S_lv = sum obs_n logvar_n``, ``S_p = sum obs_n p_n``,
    ``S_pm = sum obs_n p_n mu_n``, ``S_pmm = sum obs_n p_n mu_n^2`` (each ``(B, K)``)::

        sum_n obs_n KL(q_m || q_n) = 0.5 sum_k [S_lv - N logvar_m
                                                + (var_m + mu_m^2) S_p - 2 mu_m S_pm + S_pmm - N]

    which equals ``(pairwise_kl(mu, logvar) * obs.unsqueeze(0)).sum(1)`` without the
    ``(M, M, B, K)`` intermediates. The means are first centred on their observed average
    (KL depends only on differences of means), which keeps the cancellation in
    ``mu_m^2 S_p - 2 mu_m S_pm + S_pmm`` small.

    Parameters
    ----------
    mu, logvar
        ``(M, B, K)``.
    obs
        ``(M, B)`` float weights (1 = observed, 0 = missing).

    Returns
    -------
    Tensor
        ``(M, B)``.
    """
    w = obs.unsqueeze(-1)  # (M, B, 1)
    count = obs.sum(0).unsqueeze(-1)  # (B, 1)
    centre = ((mu * w).sum(0) / count.clamp_min(1.0)).detach()  # (B, K); any centre is exact
    mu = mu - centre
    precision = torch.exp(-logvar)
    wp = w * precision
    s_lv = (w * logvar).sum(0)
    s_p = wp.sum(0)
    s_pm = (wp * mu).sum(0)
    s_pmm = (wp * mu.square()).sum(0)
    terms = s_lv - count * logvar + (torch.exp(logvar) + mu.square()) * s_p - 2.0 * mu * s_pm + s_pmm - count
    return 0.5 * terms.sum(-1)


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor | None = None) -> Tensor:
    """Draw z = mu + exp(logvar / 2) * eps with eps ~ N(0, I).

    Parameters
    ----------
    mu, logvar
        ``(..., K)``.
    eps
        Standard-normal noise of the same shape; drawn from torch's global generator
        when ``None``. Passing it makes the draw reproducible across models.

    Returns
    -------
    Tensor
        A sample with the shape of ``mu``; gradients flow into ``mu`` and ``logvar``.
    """
    if eps is None:
        eps = torch.randn_like(mu)
    return mu + torch.exp(0.5 * logvar) * eps
