"""The multi-animal VAE torch module: MMVM VAE, independent VAEs and joint baselines.

One encoder, decoder and likelihood per animal (animal m has input width D_m). A batch is
``xs``, a sequence of M tensors ``(B, D_m)``, with a mask ``(B, M)`` (True = animal
observed in that sample). Missing animals' rows are ignored but must be finite (the
batcher fills zeros); an animal absent from the whole batch may be given as None.

Loss conventions
----------------
Per sample, O = the observed animals; ``"loss"`` is the mean over the batch and samples
with no observed animal contribute 0 to every term. ``rec`` is the *negative* log-likelihood, so that ``loss = rec + beta * reg`` exactly.

- ``mmvm``: rec = -sum_{m in O} log p_m(x_m | z_m) with z_m ~ q_m (each animal decodes
  its own latent); reg = sum_{m in O} reg_m with
  reg_m = (1 - alpha) (1/|O|) sum_{m~ in O} KL(q_m || q_m~) + alpha KL(q_m || N(0, I))
  (see :mod:`neurovamp.models.objectives`). The regulariser is *summed* over animals,
  like the reconstruction, as in the paper's released code for this experiment (its
  1/M is the mixture average inside reg_m).
- ``independent``: as mmvm with reg_m = KL(q_m || N(0, I)) (equal to mmvm with alpha = 1).
- ``poe`` / ``moe`` / ``mopoe`` / ``avg``: one joint posterior q(z | x_O) aggregated from the
  observed animals (:mod:`neurovamp.models.aggregation`; PoE with a N(0, I) prior expert),
  z ~ q (for mixtures: one component picked per sample, then reparameterised),
  rec = -sum_{m in O} log p_m(x_m | z), reg = KL(q || N(0, I)), replaced for the mixtures
  (moe, mopoe) by its convexity bound sum_c w_c KL(q_c || N(0, I)).

Per-animal terms ``rec/<name>`` (and ``reg/<name>`` for mmvm/independent) are batch means
with missing samples counted as 0, so they add up to ``rec`` and ``reg``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from neurovamp.errors import ConfigError, DataError
from neurovamp.models.aggregation import (
    MAX_SUBSET_ANIMALS,
    GaussianMixture,
    average_experts,
    mixture_of_experts,
    mixture_of_products,
    product_of_experts,
    subset_matrix,
)
from neurovamp.models.batched import BatchedNetworks, resolve_step
from neurovamp.models.config import ModelConfig
from neurovamp.models.gaussians import reparameterize
from neurovamp.models.likelihoods import Likelihood, make_likelihood
from neurovamp.models.networks import build_decoder, build_encoder
from neurovamp.models.objectives import independent_regulariser, mmvm_regulariser

__all__ = ["MultiAnimalVAE", "COMBINE_OPTIONS"]

COMBINE_OPTIONS = ("mixture", "poe", "joint")
"""How :meth:`MultiAnimalVAE.generate` combines several source animals."""

Animal = int | str


class MultiAnimalVAE(nn.Module):
    """Multimodal VAE over M animals (see the module docstring for the objectives).

    Parameters
    ----------
    input_dims
        Input width D_m of every animal (units x bins), M >= 1 entries.
    config
        Model settings; ``ModelConfig()`` when None.
    names
        Animal names used in loss keys (``rec/<name>``) and accepted wherever an animal
        index is; ``"0"``, ``"1"``, ... when None.

    Attributes
    ----------
    config, input_dims, names, n_animals
        As given (``input_dims`` and ``names`` as tuples).
    step
        How the networks run (see :meth:`set_step`): ``"auto"``, ``"loop"`` or ``"batched"``.
    encoders, decoders, likelihoods
        ``nn.ModuleList`` with one entry per animal.
    """

    def __init__(
        self,
        input_dims: Sequence[int],
        config: ModelConfig | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        config = ModelConfig() if config is None else config
        if not isinstance(config, ModelConfig):
            raise ConfigError(f"config must be a ModelConfig, got {type(config).__name__}")
        dims = tuple(input_dims)
        if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in map(_as_int, dims)):
            raise ConfigError(f"input_dims must be a non-empty list of positive integers, got {list(dims)!r}")
        dims = tuple(int(d) for d in dims)
        if names is None:
            names = [str(i) for i in range(len(dims))]
        names = tuple(str(n) for n in names)
        if len(names) != len(dims) or len(set(names)) != len(names):
            raise ConfigError(f"names must be {len(dims)} distinct animal names, got {list(names)!r}")
        if config.model == "mopoe" and len(dims) > MAX_SUBSET_ANIMALS:
            raise ConfigError(
                f"ModelConfig.model 'mopoe' enumerates all subsets of animals and supports at most "
                f"{MAX_SUBSET_ANIMALS} animals, got {len(dims)}; use 'poe', 'moe', 'avg' or 'mmvm'"
            )

        self.config = config
        self.input_dims = dims
        self.names = names
        self.n_animals = len(dims)
        self.encoders = nn.ModuleList(build_encoder(config, d) for d in dims)
        self.decoders = nn.ModuleList(build_decoder(config, d) for d in dims)
        self.likelihoods: Sequence[Likelihood] = nn.ModuleList(make_likelihood(config, d) for d in dims)
        if config.model == "mopoe":
            self.register_buffer("subsets", subset_matrix(len(dims)), persistent=False)
        else:
            self.subsets = None
        self.set_step("loop")

    def set_step(self, step: str = "loop") -> MultiAnimalVAE:
        """Choose how the per-animal networks run; the objective and parameters are the same.

        Parameters
        ----------
        step
            ``"loop"``: one encoder and decoder call per animal (the reference);
            ``"batched"``: stacked weights and batched matmuls over animals of similar
            width (:mod:`neurovamp.models.batched`; equal up to float rounding); ``"auto"``:
            batched when the parameters are on CUDA and there are at least
            :data:`~neurovamp.models.batched.AUTO_BATCHED_ANIMALS` animals (decided now,
            from the current device).

        Returns
        -------
        MultiAnimalVAE
            ``self``.
        """
        device = self.decoders[0].out.weight.device
        self._batched = BatchedNetworks(self) if resolve_step(step, self.n_animals, device) == "batched" else None
        self.step = step
        return self

    # ------------------------------------------------------------------ helpers
    def animal_index(self, animal: Animal) -> int:
        """Index of an animal given by index or name.

        Parameters
        ----------
        animal
            Integer index in ``range(M)`` or one of :attr:`names`.

        Returns
        -------
        int
        """
        if isinstance(animal, str):
            if animal not in self.names:
                raise ConfigError(f"unknown animal {animal!r}; animals: {list(self.names)}")
            return self.names.index(animal)
        index = _as_int(animal)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.n_animals:
            raise ConfigError(f"animal index must be in 0..{self.n_animals - 1} or a name, got {animal!r}")
        return index

    def _check_batch(self, xs: Sequence[Tensor | None], mask: Tensor | None) -> tuple[int, Tensor]:
        """Validate a batch; return the batch size and the mask as bool ``(B, M)``."""
        if len(xs) != self.n_animals:
            raise DataError(f"expected {self.n_animals} per-animal tensors in xs, got {len(xs)}")
        batch = None
        device = None
        for m, x in enumerate(xs):
            if x is None:
                continue
            if x.dim() != 2 or x.shape[1] != self.input_dims[m]:
                raise DataError(
                    f"xs[{m}] (animal {self.names[m]!r}) must have shape (B, {self.input_dims[m]}), "
                    f"got {tuple(x.shape)}"
                )
            if batch is None:
                batch, device = x.shape[0], x.device
            elif x.shape[0] != batch:
                raise DataError(f"xs[{m}] has {x.shape[0]} rows but xs holds batches of {batch}")
        if mask is not None:
            if mask.dim() != 2 or mask.shape[1] != self.n_animals or (batch is not None and mask.shape[0] != batch):
                raise DataError(
                    f"mask must have shape (B, {self.n_animals}) matching xs, got {tuple(mask.shape)}"
                )
            batch = mask.shape[0] if batch is None else batch
            mask = mask.to(dtype=torch.bool, device=device if device is not None else mask.device)
        if batch is None:
            raise DataError("xs holds no tensor and no mask gives the batch size")
        given = [x is not None for x in xs]
        if all(given):
            if mask is None:
                mask = torch.ones(batch, self.n_animals, dtype=torch.bool, device=device)
            return batch, mask
        present = torch.tensor(given, dtype=torch.bool, device=device)
        mask = present.expand(batch, self.n_animals) if mask is None else mask & present
        return batch, mask

    # ------------------------------------------------------------------ networks
    def encode(self, xs: Sequence[Tensor | None]) -> tuple[Tensor, Tensor]:
        """Unimodal posteriors of every animal.

        Parameters
        ----------
        xs
            M tensors ``(B, D_m)``; an entry may be None (that animal then gets
            mu = 0, logvar = 0 placeholders).

        Returns
        -------
        mu, logvar
            Each ``(M, B, K)``.
        """
        batch, _ = self._check_batch(xs, None)
        ref = next(x for x in xs if x is not None)
        k = self.config.latent_dim
        if self._batched is not None:
            given = [x is not None for x in xs]
            mu, logvar = self._batched.encode([ref.new_zeros(batch, d) if x is None else x
                                               for x, d in zip(xs, self.input_dims)])
            if all(given):
                return mu, logvar
            keep = torch.tensor(given, device=mu.device).view(-1, 1, 1)
            return mu * keep, logvar * keep  # placeholders mu = 0, logvar = 0 as below
        mus, logvars = [], []
        for m, x in enumerate(xs):
            if x is None:
                zeros = ref.new_zeros(batch, k)
                mus.append(zeros)
                logvars.append(zeros)
            else:
                mu, logvar = self.encoders[m](x)
                mus.append(mu)
                logvars.append(logvar)
        return torch.stack(mus), torch.stack(logvars)

    def decode_natural(self, z: Tensor, m: Animal) -> Tensor:
        """Decoder output (the likelihood's natural parameter) of animal ``m``.

        Parameters
        ----------
        z
            Latents ``(..., B, K)``.
        m
            Animal index or name.

        Returns
        -------
        Tensor
            ``(..., B, D_m)``: log-rate (exp link), pre-softplus rate, or Gaussian mean.
        """
        return self.decoders[self.animal_index(m)](z)

    def decode(self, z: Tensor, m: Animal) -> Tensor:
        """Expected value of animal ``m``'s data given latents ``z``.

        Parameters
        ----------
        z
            Latents ``(..., B, K)``.
        m
            Animal index or name.

        Returns
        -------
        Tensor
            ``(..., B, D_m)``: rates (counts per bin) or Gaussian means.
        """
        index = self.animal_index(m)
        return self.likelihoods[index].mean(self.decoders[index](z))

    def log_likelihood(self, x: Tensor, z: Tensor, m: Animal) -> Tensor:
        """log p_m(x | z) summed over animal ``m``'s features.

        Parameters
        ----------
        x
            ``(B, D_m)`` observations.
        z
            ``(..., B, K)`` latents.
        m
            Animal index or name.

        Returns
        -------
        Tensor
            ``(..., B)``.
        """
        index = self.animal_index(m)
        return self.likelihoods[index].log_prob(x, self.decoders[index](z))

    # ------------------------------------------------------------------ posteriors
    def joint_posterior(self, mu: Tensor, logvar: Tensor, mask: Tensor | None = None) -> GaussianMixture:
        """Aggregate the unimodal posteriors of the observed animals into one posterior.

        ``poe``: product of experts with a N(0, I) prior expert; ``avg``: average of means
        and variances; ``moe``: uniform mixture of the experts; ``mopoe``: uniform
        mixture over all non-empty observed subsets of their products. For ``mmvm`` and
        ``independent`` it is the uniform mixture of the observed unimodal posteriors
        (the MMVM's data-dependent prior h with alpha = 0).

        Parameters
        ----------
        mu, logvar
            ``(M, B, K)`` from :meth:`encode`.
        mask
            ``(B, M)`` bool; None = all observed.

        Returns
        -------
        GaussianMixture
            Components ``(C, B, K)`` and weights ``(C, B)``.
        """
        model = self.config.model
        if model == "poe":
            return product_of_experts(mu, logvar, mask, prior_expert=True)
        if model == "avg":
            return average_experts(mu, logvar, mask)
        if model == "mopoe":
            return mixture_of_products(mu, logvar, mask, self.subsets)
        return mixture_of_experts(mu, logvar, mask)

    def sample_latent(
        self,
        xs: Sequence[Tensor | None],
        mask: Tensor | None = None,
        *,
        joint: bool | None = None,
        mean: bool = False,
        eps: Tensor | None = None,
    ) -> Tensor:
        """Latents of a batch: per animal, or one joint latent per sample.

        Parameters
        ----------
        xs
            M tensors ``(B, D_m)`` (None for animals not given).
        mask
            ``(B, M)`` bool; None = every given animal observed.
        joint
            True: one latent per sample from :meth:`joint_posterior`; False: each
            animal's own posterior. None: True for the joint models, False for
            ``mmvm``/``independent``.
        mean
            Return posterior means instead of reparameterised samples.
        eps
            Standard-normal noise, ``(B, K)`` if joint else ``(M, B, K)``.

        Returns
        -------
        Tensor
            ``(B, K)`` if joint, else ``(M, B, K)`` (missing animals' rows are
            meaningless).
        """
        _, mask = self._check_batch(xs, mask)
        mu, logvar = self.encode(xs)
        joint = self.config.is_joint if joint is None else bool(joint)
        if joint:
            mixture = self.joint_posterior(mu, logvar, mask)
            return mixture.mean() if mean else mixture.sample(eps)
        return mu if mean else reparameterize(mu, logvar, eps)

    # ------------------------------------------------------------------ objective
    def loss(
        self, xs: Sequence[Tensor | None], mask: Tensor | None = None, *, eps: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Negative ELBO (the quantity minimised) and its terms, averaged over the batch.

        Parameters
        ----------
        xs
            M tensors ``(B, D_m)``; None for an animal absent from the whole batch.
        mask
            ``(B, M)`` bool, True where the animal is observed; None = all given
            animals observed.
        eps
            Reparameterisation noise: ``(M, B, K)`` for mmvm/independent, ``(B, K)`` for
            the joint models; drawn from torch's global generator when None.

        Returns
        -------
        dict
            Scalars ``"loss"`` (= rec + beta * reg), ``"rec"`` (negative log-likelihood
            summed over observed animals), ``"reg"`` (KL terms summed over observed
            animals, or the joint KL), ``"rec/<name>"`` per animal, and ``"reg/<name>"``
            per animal for mmvm/independent.
        """
        _, mask = self._check_batch(xs, mask)
        obs = mask.T.to(self._dtype())  # (M, B)
        mu, logvar = self.encode(xs)
        if eps is not None and eps.shape != (mu.shape[1:] if self.config.is_joint else mu.shape):
            expected = tuple(mu.shape[1:] if self.config.is_joint else mu.shape)
            raise DataError(f"eps must have shape {expected} for model {self.config.model!r}, got {tuple(eps.shape)}")
        if self.config.is_joint:
            mixture = self.joint_posterior(mu, logvar, mask)
            z = mixture.sample(eps)  # (B, K)
            nll = self._nll(xs, obs, lambda m: z)
            reg = mixture.kl_bound() * (obs.sum(0) > 0).to(z.dtype)  # (B,)
            per_animal_reg = None
        else:
            z_all = reparameterize(mu, logvar, eps)  # (M, B, K)
            nll = self._nll(xs, obs, lambda m: z_all[m])
            if self.config.model == "mmvm":
                per_animal_reg = mmvm_regulariser(mu, logvar, mask, self.config.alpha)
            else:
                per_animal_reg = independent_regulariser(mu, logvar, mask)
            reg = per_animal_reg.sum(0)

        rec_total = nll.sum(0).mean()
        reg_total = reg.mean()
        out = {"loss": rec_total + self.config.beta * reg_total, "rec": rec_total, "reg": reg_total}
        per_rec = nll.mean(1)
        for m, name in enumerate(self.names):
            out[f"rec/{name}"] = per_rec[m]
        if per_animal_reg is not None:
            per_reg = per_animal_reg.mean(1)
            for m, name in enumerate(self.names):
                out[f"reg/{name}"] = per_reg[m]
        return out

    def _nll(self, xs: Sequence[Tensor | None], obs: Tensor, latent_of) -> Tensor:  # noqa: ANN001
        """Masked negative log-likelihoods ``(M, B)``; ``latent_of(m)`` gives animal m's z."""
        if self._batched is not None:
            batch = obs.shape[1]
            xs = [obs.new_zeros(batch, d) if x is None else x for x, d in zip(xs, self.input_dims)]
            return self._batched.nll(xs, obs, torch.stack([latent_of(m) for m in range(self.n_animals)]))
        rows = []
        for m, x in enumerate(xs):
            if x is None:
                rows.append(obs.new_zeros(obs.shape[1]))
                continue
            eta = self.decoders[m](latent_of(m))
            rows.append(-self.likelihoods[m].log_prob(x, eta) * obs[m])
        return torch.stack(rows)

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        xs: Sequence[Tensor | None],
        source_mask: Tensor,
        target: Animal,
        *,
        combine: str | None = None,
    ) -> Tensor:
        """Conditional generation: expected data of ``target`` from source animals.

        The posterior means of the sources are decoded with the target's decoder
        (no sampling).

        Parameters
        ----------
        xs
            M tensors ``(B, D_m)``; entries of non-source animals may be None.
        source_mask
            ``(B, M)`` or ``(M,)`` bool: which animals are sources (per sample).
        target
            Target animal (index or name); it may also be a source.
        combine
            With several sources: ``"mixture"`` (average the target's predicted means
            decoded from each source's posterior mean), ``"poe"`` (decode the mean of the
            sources' product of experts, no prior expert) or ``"joint"`` (the model's
            own :meth:`joint_posterior`, decoding each component mean and averaging by
            the mixture weights). None: ``"joint"`` for joint models, else
            ``"mixture"``.

        Returns
        -------
        Tensor
            ``(B, D_target)`` expected counts (rates) or Gaussian means. Every sample
            needs at least one source (others get meaningless values).
        """
        index = self.animal_index(target)
        posterior = self._generation_posterior(xs, source_mask, combine)
        weights = posterior.weights
        used = (weights > 0).any(1)  # decode only components that carry weight
        means = self.decode(posterior.mu[used], index)  # (C', B, D)
        return torch.einsum("cb,cbd->bd", weights[used], means)

    def generate_samples(
        self,
        xs: Sequence[Tensor | None],
        source_mask: Tensor,
        target: Animal,
        n_samples: int,
        *,
        combine: str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Conditional generation from posterior draws: one prediction per latent sample.

        The sources' posterior is built as in :meth:`generate` (same ``combine``); for
        every sample ``n_samples`` latents are drawn from it (a mixture component is
        picked per draw with probability its weight, then z = mu_c + exp(logvar_c / 2) *
        eps) and decoded with the target's decoder into the likelihood's mean. The
        average over draws estimates E_q[mean(x_target | z)], which differs from
        :meth:`generate` (the mean decoded at the posterior mean) for a nonlinear decoder
        or link.

        Parameters
        ----------
        xs
            M tensors ``(B, D_m)``; entries of non-source animals may be None.
        source_mask
            ``(B, M)`` or ``(M,)`` bool: which animals are sources (per sample).
        target
            Target animal (index or name).
        n_samples
            Number of latent draws per sample, at least 1.
        combine
            As in :meth:`generate`.
        generator
            Random generator of the component choices and the Gaussian noise (drawn on
            the generator's device, then moved to the data's); torch's global generator
            when None.

        Returns
        -------
        Tensor
            ``(n_samples, B, D_target)`` expected counts (rates) or Gaussian means.
        """
        index = self.animal_index(target)
        if isinstance(n_samples, bool) or not isinstance(_as_int(n_samples), int) or int(n_samples) < 1:
            raise ConfigError(f"n_samples must be a positive integer, got {n_samples!r}")
        posterior = self._generation_posterior(xs, source_mask, combine)
        mu, logvar = _pick_components(posterior, int(n_samples), generator)  # (S, B, K) each
        noise_device = generator.device if generator is not None else mu.device
        eps = torch.randn(mu.shape, generator=generator, device=noise_device, dtype=mu.dtype).to(mu.device)
        return self.decode(mu + torch.exp(0.5 * logvar) * eps, index)

    def _generation_posterior(
        self, xs: Sequence[Tensor | None], source_mask: Tensor, combine: str | None
    ) -> GaussianMixture:
        """The sources' posterior used by :meth:`generate` and :meth:`generate_samples`."""
        if combine is None:
            combine = "joint" if self.config.is_joint else "mixture"
        if combine not in COMBINE_OPTIONS:
            raise ConfigError(f"combine must be one of {', '.join(map(repr, COMBINE_OPTIONS))}, got {combine!r}")
        source_mask = torch.as_tensor(source_mask, dtype=torch.bool)
        if source_mask.dim() == 1:
            batch = next(x.shape[0] for x in xs if x is not None)
            source_mask = source_mask.expand(batch, -1)
        _, mask = self._check_batch(xs, source_mask)
        mu, logvar = self.encode(xs)
        if combine == "poe":
            return product_of_experts(mu, logvar, mask, prior_expert=False)
        if combine == "joint":
            return self.joint_posterior(mu, logvar, mask)
        return mixture_of_experts(mu, logvar, mask)

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def init_output_bias(self, means: Sequence[Tensor | None]) -> None:
        """Set each decoder's output bias so that z = 0 predicts the given means.

        Exact for linear decoders (the mean at z = 0 is link(bias)); for MLP decoders
        it only centres the output layer. Useful for count data, whose rates are far
        from the link's value at 0.

        Parameters
        ----------
        means
            Per animal, the mean of each feature ``(D_m,)`` (e.g. over the training
            set); None leaves that animal unchanged.
        """
        if len(means) != self.n_animals:
            raise DataError(f"expected {self.n_animals} per-animal mean vectors, got {len(means)}")
        for m, mean in enumerate(means):
            if mean is None:
                continue
            bias = self.decoders[m].out.bias
            mean = torch.as_tensor(mean, dtype=bias.dtype, device=bias.device)
            if mean.shape != bias.shape:
                raise DataError(f"means[{m}] must have shape {tuple(bias.shape)}, got {tuple(mean.shape)}")
            bias.copy_(self.likelihoods[m].natural_from_mean(mean))

    def _dtype(self) -> torch.dtype:
        return self.decoders[0].out.weight.dtype

    def extra_repr(self) -> str:  # noqa: D102
        return f"model={self.config.model!r}, input_dims={list(self.input_dims)}, names={list(self.names)}"


def _pick_components(
    posterior: GaussianMixture, n_samples: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Mean and log-variance of one mixture component per draw, each ``(n_samples, B, K)``.

    When only one component carries weight (a single source, PoE, AVG) no choice is
    drawn; otherwise each draw picks a component with probability its weight in that
    sample, from ``generator`` (on its device).
    """
    weights = posterior.weights.detach()
    used = (weights > 0).any(1)
    mu, logvar, weights = posterior.mu[used], posterior.logvar[used], weights[used]
    shape = (n_samples,) + tuple(mu.shape[1:])
    if mu.shape[0] == 1:
        return mu.expand(shape), logvar.expand(shape)
    device = generator.device if generator is not None else weights.device
    pick = torch.multinomial(weights.T.to(device), n_samples, replacement=True, generator=generator)  # (B, S)
    pick = pick.T.to(mu.device)  # (S, B)
    rows = torch.arange(mu.shape[1], device=mu.device).expand_as(pick)
    return mu[pick, rows], logvar[pick, rows]


def _as_int(value: object) -> object:
    """Python int for integer-like values (numpy integers), else the value unchanged."""
    if hasattr(value, "__index__") and not isinstance(value, bool):
        try:
            return int(value.__index__())  # type: ignore[attr-defined]
        except TypeError:
            return value
    return value
