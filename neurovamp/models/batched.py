"""The batched step: every animal's encoder and decoder run as a few batched matmuls.

The reference implementation (:class:`~neurovamp.models.module.MultiAnimalVAE` with
``step="loop"``) runs one small encoder and decoder per animal: with M animals a training
step launches O(M) kernels per layer, forward and backward, and at dozens of animals the
launches, not the arithmetic, set the pace. :class:`BatchedNetworks` runs the same
networks on stacked weights instead:

- Animals are sorted by input width and split into *groups* whose zero-padded cost
  (sum over layers of padded ``in * out``) exceeds the unpadded cost by at most
  ``max_padding`` (25 % by default); every group is then one ``torch.baddbmm`` per layer
  over ``(G, B, width)`` tensors, so a step costs O(groups) launches, not O(M).
- Each group's weights are stacked from the per-animal parameters at every step
  (``torch.stack``, zero-padded with ``F.pad`` where widths differ): the parameters, their names in ``state_dict``,
  checkpoints and saved models are exactly the loop's, and gradients flow back into the
  per-animal tensors. Padded weight entries are zeros, so padded hidden units and padded
  outputs contribute nothing, and padded gradients are dropped.
- The likelihood runs on the padded ``(G, B, D_pad)`` tensors; a padded feature has
  ``x = 0`` and natural parameter exactly 0, so its log-probability is a constant that is
  subtracted (negative-binomial dispersions are stacked and padded with log r = 0).

The result equals the loop's loss and gradients up to float rounding
(``tests/test_batched.py``) for every model and likelihood. Dropout masks are drawn on the
padded tensors, so with ``dropout > 0`` the batched step's draws differ from the loop's
(same distribution).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from neurovamp.errors import ConfigError
from neurovamp.models.networks import LOGVAR_RANGE, make_activation

__all__ = ["BatchedNetworks", "STEPS", "AUTO_BATCHED_ANIMALS", "resolve_step", "width_groups"]

STEPS = ("auto", "loop", "batched")
"""Values of the ``step`` setting: ``"loop"`` (the per-animal reference), ``"batched"``, or
``"auto"`` (batched on CUDA from :data:`AUTO_BATCHED_ANIMALS` animals on, else the loop)."""

AUTO_BATCHED_ANIMALS = 8
"""``step="auto"`` uses the batched step on CUDA from this many animals on. On the CPU the
per-animal matmuls are compute-bound already and the batched step's weight copies cost as
much as the launches it saves (``benchmarks/results/scaling.md``), so "auto" keeps the loop."""


def resolve_step(step: str, n_animals: int, device: torch.device | str = "cpu") -> str:
    """``"loop"`` or ``"batched"`` for a ``step`` setting, a number of animals and a device.

    Parameters
    ----------
    step
        One of :data:`STEPS`.
    n_animals
        Number of animals M.
    device
        Where the step runs.

    Returns
    -------
    str
        ``"batched"`` for ``"batched"``, and for ``"auto"`` on CUDA when
        ``n_animals >= AUTO_BATCHED_ANIMALS``; ``"loop"`` otherwise.
    """
    if step not in STEPS:
        raise ConfigError(f"step must be one of {', '.join(map(repr, STEPS))}, got {step!r}")
    if step == "auto":
        cuda = torch.device(device).type == "cuda"
        return "batched" if cuda and n_animals >= AUTO_BATCHED_ANIMALS else "loop"
    return step


def width_groups(costs: Sequence[int], max_padding: float = 0.25) -> list[list[int]]:
    """Split animals into groups of similar cost, cheapest first.

    Parameters
    ----------
    costs
        Per animal, a positive cost that grows with its width (the batched step uses the
        sum over layers of ``in * out``).
    max_padding
        Largest relative excess of a group's padded cost (``size * max cost``) over the
        sum of its members' costs.

    Returns
    -------
    list of lists of int
        Animal indices; every animal appears once, groups in increasing cost.
    """
    order = sorted(range(len(costs)), key=lambda m: (costs[m], m))
    groups: list[list[int]] = []
    total = 0
    for m in order:
        if groups and (len(groups[-1]) + 1) * costs[m] <= (1.0 + max_padding) * (total + costs[m]):
            groups[-1].append(m)
            total += costs[m]
        else:
            groups.append([m])
            total = costs[m]
    return groups


def _linears(net: nn.Module, body: nn.Sequential, last: nn.Linear) -> list[nn.Linear]:
    return [layer for layer in body if isinstance(layer, nn.Linear)] + [last]


class _Dispersion:
    """Stand-in for a negative-binomial likelihood with stacked, padded dispersions."""

    def __init__(self, likelihood: nn.Module, log_dispersion: Tensor) -> None:
        self.log_dispersion = log_dispersion
        self.log_mean = likelihood.log_mean
        self.link = likelihood.link


def _with_dispersion(likelihood: nn.Module, log_dispersion: Tensor, x: Tensor, eta: Tensor) -> Tensor:
    """``likelihood.log_prob(x, eta)`` with ``log_dispersion`` in place of its parameter."""
    return type(likelihood).log_prob(_Dispersion(likelihood, log_dispersion), x, eta)


class _Group:
    """The animals of one group and their layers' padded shapes ``(out, in)``."""

    def __init__(self, animals: list[int], shapes: list[list[tuple[int, int]]]) -> None:
        self.animals = animals
        n_layers = len(shapes[0])
        # per layer: padded (out, in)
        self.padded = [
            (max(shapes[i][layer][0] for i in range(len(animals))), max(shapes[i][layer][1] for i in range(len(animals))))
            for layer in range(n_layers)
        ]
        self.shapes = shapes


class BatchedNetworks:
    """Batched encoders, decoders and likelihoods of a :class:`~neurovamp.models.module.MultiAnimalVAE`.

    Not an ``nn.Module``: it owns no parameters, it reads the VAE's per-animal ones at every
    call (so ``.to(device)``, ``load_state_dict`` and optimisers act on the VAE as usual).

    Parameters
    ----------
    vae
        The module whose ``encoders``, ``decoders``, ``likelihoods``, ``config`` and
        ``input_dims`` are used.
    max_padding
        See :func:`width_groups`.
    """

    def __init__(self, vae: Any, max_padding: float = 0.25) -> None:
        self.vae = vae
        config = vae.config
        self.latent_dim = config.latent_dim
        self.dropout = float(config.dropout)
        self.activation = make_activation(config.activation, inplace=True)
        enc_shapes, dec_shapes, costs = [], [], []
        for m in range(vae.n_animals):
            enc = [(lin.out_features, lin.in_features) for lin in self._encoder_linears(m)]
            dec = [(lin.out_features, lin.in_features) for lin in self._decoder_linears(m)]
            enc_shapes.append(enc)
            dec_shapes.append(dec)
            costs.append(sum(o * i for o, i in enc + dec))
        self.groups = width_groups(costs, max_padding)
        self._enc = [_Group(g, [enc_shapes[m] for m in g]) for g in self.groups]
        self._dec = [_Group(g, [dec_shapes[m] for m in g]) for g in self.groups]
        self._order = [m for g in self.groups for m in g]
        self._inverse: dict[torch.device, Tensor] = {}
        self._last_inputs: tuple | None = None
        self._pad_value: dict[tuple[torch.device, torch.dtype], Tensor] = {}
        self._const: dict[tuple[torch.device, torch.dtype], tuple[Tensor, list[Tensor]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Pickled and deep-copied without the cached inputs of the last step."""
        state = dict(self.__dict__)
        state["_last_inputs"] = None
        return state

    # ------------------------------------------------------------------ layout helpers
    def _encoder_linears(self, m: int) -> list[nn.Linear]:
        enc = self.vae.encoders[m]
        return _linears(enc, enc.body, enc.head)

    def _decoder_linears(self, m: int) -> list[nn.Linear]:
        dec = self.vae.decoders[m]
        return _linears(dec, dec.body, dec.out)

    def _inverse_order(self, device: torch.device) -> Tensor:
        if device not in self._inverse:
            order = torch.tensor(self._order)
            inverse = torch.empty_like(order)
            inverse[order] = torch.arange(order.numel())
            self._inverse[device] = inverse.to(device)
        return self._inverse[device]

    def padded_inputs(self, xs: Sequence[Tensor]) -> list[Tensor]:
        """Per group, the animals' inputs zero-padded to ``(G, B, D_pad)``.

        The data need no gradient: each animal is copied into a zero buffer. The last
        result is reused when the same tensors come again (encode, then the likelihood).
        """
        key = tuple((id(x), x._version) for x in xs)
        if self._last_inputs is not None and self._last_inputs[0] == key:
            return self._last_inputs[2]
        batch = xs[0].shape[0]
        out = []
        with torch.no_grad():
            for group in self._enc:
                widths = [self.vae.input_dims[m] for m in group.animals]
                width = max(widths)
                if all(w == width for w in widths):
                    out.append(torch.stack([xs[m] for m in group.animals]))
                    continue
                buf = xs[0].new_zeros(len(widths), batch, width)
                for i, m in enumerate(group.animals):
                    buf[i, :, : widths[i]].copy_(xs[m])
                out.append(buf)
        self._last_inputs = (key, list(xs), out)  # keeps xs alive so that their ids stay theirs
        return out

    @staticmethod
    def _stacked(layers: list[nn.Linear], padded: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Zero-padded weights ``(G, out, in)`` and biases ``(G, out)`` of one layer of a group."""
        p_out, p_in = padded
        weights, biases = [], []
        for lin in layers:
            n_out, n_in = lin.weight.shape
            if (n_out, n_in) == (p_out, p_in):
                weights.append(lin.weight)
                biases.append(lin.bias)
            else:
                weights.append(F.pad(lin.weight, (0, p_in - n_in, 0, p_out - n_out)))
                biases.append(F.pad(lin.bias, (0, p_out - n_out)))
        return torch.stack(weights), torch.stack(biases)

    def _mlp(self, h: Tensor, group: _Group, linears: list[list[nn.Linear]]) -> Tensor:
        """Run a group's stacked layers (activation and dropout after all but the last)."""
        n_layers = len(group.padded)
        for layer in range(n_layers):
            weight, bias = self._stacked([lins[layer] for lins in linears], group.padded[layer])
            h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
            if layer < n_layers - 1:
                h = self.activation(h)
                if self.dropout > 0:
                    h = F.dropout(h, self.dropout, training=self.vae.training)
        return h

    # ------------------------------------------------------------------ networks
    def encode(self, xs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Every animal's posterior, as :meth:`MultiAnimalVAE.encode` with all inputs given.

        Parameters
        ----------
        xs
            M tensors ``(B, D_m)``.

        Returns
        -------
        mu, logvar
            Each ``(M, B, K)``.
        """
        k = self.latent_dim
        outs = []
        for group, x in zip(self._enc, self.padded_inputs(xs)):
            linears = [self._encoder_linears(m) for m in group.animals]
            outs.append(self._mlp(x, group, linears))
        out = torch.cat(outs).index_select(0, self._inverse_order(outs[0].device))  # (M, B, 2K)
        return out[..., :k], out[..., k:].clamp(*LOGVAR_RANGE)

    def _constants(self, ref: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The sorted animal order and, per group, the padded features per animal ``(G, 1)``."""
        key = (ref.device, ref.dtype)
        if key not in self._const:
            dims = self.vae.input_dims
            order = torch.tensor(self._order, device=ref.device)
            n_pad = [
                torch.tensor([[g.padded[-1][0] - dims[m]] for m in g.animals], device=ref.device, dtype=ref.dtype)
                for g in self._dec
            ]
            self._const[key] = (order, n_pad)
        return self._const[key]

    def _padding_log_prob(self, likelihood: nn.Module, ref: Tensor) -> Tensor:
        """Log-probability of one padded feature (x = 0, natural parameter 0; log r = 0)."""
        key = (ref.device, ref.dtype)
        if key not in self._pad_value:
            zero = ref.new_zeros(1, 1)
            with torch.no_grad():
                if hasattr(likelihood, "log_dispersion"):
                    value = _with_dispersion(likelihood, ref.new_zeros(1), zero, zero)
                else:
                    value = likelihood.log_prob(zero, zero)
            self._pad_value[key] = value.reshape(())
        return self._pad_value[key]

    def nll(self, xs: Sequence[Tensor], obs: Tensor, z: Tensor) -> Tensor:
        """Masked negative log-likelihoods ``(M, B)``, as the loop's ``MultiAnimalVAE._nll``.

        Parameters
        ----------
        xs
            M tensors ``(B, D_m)`` (the observations).
        obs
            ``(M, B)`` float mask.
        z
            ``(M, B, K)``: the latent each animal decodes.

        Returns
        -------
        Tensor
            ``(M, B)``.
        """
        dims = self.vae.input_dims
        rows = []
        z_sorted = z.index_select(0, self._constants(z)[0])
        start = 0
        for group, x in zip(self._dec, self.padded_inputs(xs)):
            size = len(group.animals)
            linears = [self._decoder_linears(m) for m in group.animals]
            eta = self._mlp(z_sorted[start : start + size], group, linears)  # (G, B, D_pad)
            start += size
            likelihood = self.vae.likelihoods[group.animals[0]]
            if hasattr(likelihood, "log_dispersion"):
                width = eta.shape[-1]
                log_r = torch.stack(
                    [F.pad(self.vae.likelihoods[m].log_dispersion, (0, width - dims[m])) for m in group.animals]
                ).unsqueeze(1)
                log_p = _with_dispersion(likelihood, log_r, x, eta)
            else:
                log_p = likelihood.log_prob(x, eta)  # (G, B), padding included
            n_pad = self._constants(z)[1][len(rows)]
            log_p = log_p - n_pad * self._padding_log_prob(likelihood, eta)
            rows.append(log_p)
        log_p = torch.cat(rows).index_select(0, self._inverse_order(z.device))
        return -log_p * obs
