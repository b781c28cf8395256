"""Regularisers of the per-animal-latent models (MMVM and independent VAEs).

With M animals, unimodal posteriors q_m = N(mu_m, diag var_m) and O the animals observed
in a sample, the MMVM prior of animal m is the mixture
h = (1 - alpha) * (1/|O|) sum_{m~ in O} q_m~ + alpha * N(0, I). KL(q_m || h) has no closed
form; it is bounded by convexity of the KL in its second argument:

    reg_m = (1 - alpha) * (1/|O|) sum_{m~ in O} KL(q_m || q_m~) + alpha * KL(q_m || N(0, I)),

which is what is minimised (the m~ = m term is zero and counts in the 1/|O|). Gradients
flow into both arguments of every pairwise KL.
"""

from __future__ import annotations

from torch import Tensor

from neurovamp.models.gaussians import kl_standard_normal, kl_sum_to_observed, pairwise_kl

__all__ = ["mmvm_regulariser", "independent_regulariser", "PAIRWISE_MAX_ANIMALS"]

PAIRWISE_MAX_ANIMALS = 16
"""Above this many animals the MMVM regulariser sums its pairwise KLs from sufficient
statistics (:func:`~neurovamp.models.gaussians.kl_sum_to_observed`, O(M B K) memory)
instead of materialising all M^2 pairs (:func:`~neurovamp.models.gaussians.pairwise_kl`:
several (M, M, B, K) intermediates, e.g. 4 x 164 MB at M = 200, B = 128, K = 8, in float32)."""


def mmvm_regulariser(mu: Tensor, logvar: Tensor, mask: Tensor | None, alpha: float) -> Tensor:
    """Per-animal MMVM regulariser (convexity bound above), zero for missing animals.

    Parameters
    ----------
    mu, logvar
        ``(M, B, K)`` unimodal posteriors.
    mask
        ``(B, M)`` bool, True where observed; None = all observed.
    alpha
        Weight of the N(0, I) component, in [0, 1].

    Returns
    -------
    Tensor
        ``(M, B)``: reg_m for each animal and sample (0 where animal m is missing).
    """
    prior = kl_standard_normal(mu, logvar)  # (M, B)
    if mask is None:
        obs = mu.new_ones(mu.shape[:2])
    else:
        obs = mask.T.to(mu.dtype)  # (M, B)
    n_obs = obs.sum(0).clamp_min(1.0)  # (B,)
    if mu.shape[0] > PAIRWISE_MAX_ANIMALS:  # same sum without the (M, M, B, K) pairs
        to_mixture = kl_sum_to_observed(mu, logvar, obs) / n_obs
    else:
        pair = pairwise_kl(mu, logvar)  # (M, M, B): [m, m~]
        to_mixture = (pair * obs.unsqueeze(0)).sum(1) / n_obs  # average over observed m~
    return ((1.0 - alpha) * to_mixture + alpha * prior) * obs


def independent_regulariser(mu: Tensor, logvar: Tensor, mask: Tensor | None) -> Tensor:
    """Per-animal KL(q_m || N(0, I)), zero for missing animals.

    Parameters
    ----------
    mu, logvar
        ``(M, B, K)``.
    mask
        ``(B, M)`` bool; None = all observed.

    Returns
    -------
    Tensor
        ``(M, B)``.
    """
    prior = kl_standard_normal(mu, logvar)
    if mask is None:
        return prior
    return prior * mask.T.to(mu.dtype)
