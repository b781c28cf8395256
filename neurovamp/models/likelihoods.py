"""Observation models p(x | z) for one animal, given the decoder's output.

The decoder outputs a *natural parameter* ``eta`` of shape ``(..., B, D)`` (one per
feature). Each likelihood maps it to the mean with its link and evaluates the
log-probability summed over features:

- :class:`Gaussian`: mean = eta, fixed standard deviation ``scale``.
- :class:`Poisson`: rate = exp(eta) or softplus(eta).
- :class:`NegativeBinomial`: mean as Poisson, per-feature learnable dispersion r
  (stored as log r); variance = mean + mean^2 / r, so r -> inf recovers Poisson.

Log-probabilities include every normalising constant (they equal
``scipy.stats.norm.logpdf``, ``poisson.logpmf`` and ``nbinom.logpmf(x, r, r / (r + mean))``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from neurovamp.errors import ConfigError
from neurovamp.models.config import LINKS, ModelConfig

__all__ = ["Likelihood", "Gaussian", "Poisson", "NegativeBinomial", "make_likelihood", "MAX_LOG_RATE"]

MAX_LOG_RATE = 20.0
"""Log-rates above this are clamped (exp(20) ~ 5e8 counts per bin) to keep values finite."""
_TINY = 1e-30


class Likelihood(nn.Module):
    """Base class: ``log_prob(x, eta)`` and ``mean(eta)`` for one animal's features."""

    def log_prob(self, x: Tensor, eta: Tensor) -> Tensor:
        """Log-probability of ``x`` summed over the feature (last) dimension.

        Parameters
        ----------
        x
            Observations ``(B, D)``.
        eta
            Decoder output ``(..., B, D)`` (broadcast against ``x``).

        Returns
        -------
        Tensor
            ``(..., B)``.
        """
        raise NotImplementedError

    def mean(self, eta: Tensor) -> Tensor:
        """Expected value of the observations, same shape as ``eta``."""
        raise NotImplementedError

    def natural_from_mean(self, mean: Tensor) -> Tensor:
        """Inverse link: the ``eta`` whose expected value is ``mean`` (e.g. for bias init)."""
        raise NotImplementedError


class Gaussian(Likelihood):
    """Gaussian with mean ``eta`` and fixed standard deviation.

    Parameters
    ----------
    scale
        Standard deviation sigma (> 0), shared by all features.
    """

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        if not scale > 0:
            raise ConfigError(f"gaussian_scale must be positive, got {scale!r}")
        self.scale = float(scale)

    def log_prob(self, x: Tensor, eta: Tensor) -> Tensor:  # noqa: D102
        n_features = x.shape[-1]
        # mse_loss: one fused kernel forward and backward (2.5x faster than (x - eta)**2).
        sq = F.mse_loss(*torch.broadcast_tensors(eta, x), reduction="none").sum(-1)
        const = n_features * (math.log(self.scale) + 0.5 * math.log(2.0 * math.pi))
        return sq * (-0.5 / self.scale**2) - const

    def mean(self, eta: Tensor) -> Tensor:  # noqa: D102
        return eta

    def natural_from_mean(self, mean: Tensor) -> Tensor:  # noqa: D102
        return mean

    def extra_repr(self) -> str:  # noqa: D102
        return f"scale={self.scale:g}"


class _CountLikelihood(Likelihood):
    """Shared link handling of the count likelihoods."""

    def __init__(self, link: str = "exp") -> None:
        super().__init__()
        if link not in LINKS:
            raise ConfigError(f"link must be one of {', '.join(map(repr, LINKS))}, got {link!r}")
        self.link = link

    def log_mean(self, eta: Tensor) -> Tensor:
        """Log of the mean rate, computed stably from ``eta``."""
        if self.link == "exp":
            return eta.clamp(max=MAX_LOG_RATE)
        # log softplus(eta) ~ eta for very negative eta, where softplus underflows.
        soft = torch.nn.functional.softplus(eta)
        return torch.where(eta > -20.0, torch.log(soft.clamp_min(_TINY)), eta)

    def mean(self, eta: Tensor) -> Tensor:  # noqa: D102
        if self.link == "exp":
            return torch.exp(eta.clamp(max=MAX_LOG_RATE))
        return torch.nn.functional.softplus(eta)

    def natural_from_mean(self, mean: Tensor) -> Tensor:  # noqa: D102
        mean = mean.clamp_min(1e-6)
        if self.link == "exp":
            return torch.log(mean)
        return mean + torch.log(-torch.expm1(-mean))  # inverse softplus

    def extra_repr(self) -> str:  # noqa: D102
        return f"link={self.link!r}"


class Poisson(_CountLikelihood):
    """Poisson counts with rate exp(eta) or softplus(eta).

    Parameters
    ----------
    link
        ``"exp"`` or ``"softplus"``.
    """

    def log_prob(self, x: Tensor, eta: Tensor) -> Tensor:  # noqa: D102
        log_rate = self.log_mean(eta)
        rate = torch.exp(log_rate) if self.link == "exp" else torch.nn.functional.softplus(eta)
        return (x * log_rate - rate - torch.lgamma(x + 1.0)).sum(-1)


class NegativeBinomial(_CountLikelihood):
    """Negative binomial counts with per-feature learnable dispersion.

    p(x) = Gamma(x + r) / (Gamma(r) x!) * (r / (r + mu))^r * (mu / (r + mu))^x with mean
    mu = link(eta) and dispersion r = exp(log_dispersion) (one per feature).

    Parameters
    ----------
    n_features
        Number of features D (one dispersion each).
    link
        ``"exp"`` or ``"softplus"``.
    init_dispersion
        Initial r for every feature (default 10: close to Poisson at typical rates).
    """

    def __init__(self, n_features: int, link: str = "exp", init_dispersion: float = 10.0) -> None:
        super().__init__(link)
        self.log_dispersion = nn.Parameter(torch.full((n_features,), math.log(init_dispersion)))

    @property
    def dispersion(self) -> Tensor:
        """Dispersion r per feature, ``(D,)``."""
        return torch.exp(self.log_dispersion)

    def log_prob(self, x: Tensor, eta: Tensor) -> Tensor:  # noqa: D102
        log_mu = self.log_mean(eta)
        log_r = self.log_dispersion
        r = torch.exp(log_r)
        log_r_plus_mu = torch.logaddexp(log_r, log_mu)
        terms = (
            torch.lgamma(x + r)
            - torch.lgamma(r)
            - torch.lgamma(x + 1.0)
            + r * (log_r - log_r_plus_mu)
            + x * (log_mu - log_r_plus_mu)
        )
        return terms.sum(-1)


def make_likelihood(config: ModelConfig, n_features: int) -> Likelihood:
    """Build the likelihood of one animal from a config.

    Parameters
    ----------
    config
        Uses ``likelihood``, ``link`` and ``gaussian_scale``.
    n_features
        The animal's number of features D.

    Returns
    -------
    Likelihood
    """
    if config.likelihood == "gaussian":
        return Gaussian(config.gaussian_scale)
    if config.likelihood == "poisson":
        return Poisson(config.link)
    if config.likelihood == "negbin":
        return NegativeBinomial(n_features, config.link)
    raise ConfigError(f"ModelConfig.likelihood {config.likelihood!r} is not implemented")
