"""Diagonal Gaussians: closed-form KL divergences and reparameterised sampling.

A diagonal Gaussian is given by its mean ``mu`` and log-variance ``logvar`` (same shape,
latent dimension last). Every function broadcasts over leading dimensions; nothing loops.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["kl_diag", "kl_standard_normal", "pairwise_kl", "reparameterize"]


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
