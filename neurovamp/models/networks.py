"""Per-animal networks: an encoder x -> (mu, logvar) and a decoder z -> natural parameter.

Both are plain MLPs built from a :class:`~neurovamp.models.config.ModelConfig` and the
animal's input width; animals differ only in their widths.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from neurovamp.errors import ConfigError
from neurovamp.models.config import ACTIVATIONS, ModelConfig

__all__ = ["Encoder", "Decoder", "make_activation", "build_encoder", "build_decoder", "LOGVAR_RANGE"]

LOGVAR_RANGE = (-10.0, 10.0)
"""Encoder log-variances are clamped to this interval for numerical stability."""


def make_activation(name: str, inplace: bool = False) -> nn.Module:
    """The activation module called ``name``.

    Parameters
    ----------
    name
        One of ``"leaky_relu"`` (slope 0.01), ``"relu"``, ``"elu"``, ``"softplus"``, ``"tanh"``.
    inplace
        Overwrite the input where the activation supports it (leaky ReLU, ReLU, ELU);
        safe after a linear layer, whose backward pass does not need its output.

    Returns
    -------
    nn.Module
    """
    table = {
        "leaky_relu": nn.LeakyReLU,
        "relu": nn.ReLU,
        "elu": nn.ELU,
        "softplus": nn.Softplus,
        "tanh": nn.Tanh,
    }
    if name not in table:
        raise ConfigError(f"activation must be one of {', '.join(map(repr, ACTIVATIONS))}, got {name!r}")
    if inplace and name in ("leaky_relu", "relu", "elu"):
        return table[name](inplace=True)
    return table[name]()


def _mlp(widths: Sequence[int], activation: str, dropout: float) -> nn.Sequential:
    """Linear layers between consecutive ``widths``, each followed by activation (+ dropout)."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        layers.append(nn.Linear(n_in, n_out))
        layers.append(make_activation(activation, inplace=True))  # saves a copy per layer
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Gaussian encoder q(z | x) = N(mu(x), diag exp(logvar(x))).

    Parameters
    ----------
    input_dim
        Input width D.
    latent_dim
        Latent dimension K.
    hidden
        Hidden-layer widths (input side first); empty for a linear encoder.
    activation
        Activation name (see :func:`make_activation`).
    dropout
        Dropout probability after each hidden activation.
    bottleneck
        Add an activated ``latent_dim``-wide layer before the heads.
    """

    def __init__(
        self,
        input_dim: int,
        latent_dim: int,
        hidden: Sequence[int] = (),
        activation: str = "leaky_relu",
        dropout: float = 0.0,
        bottleneck: bool = False,
    ) -> None:
        super().__init__()
        widths = [int(input_dim), *map(int, hidden)]
        if bottleneck:
            widths.append(int(latent_dim))
        self.body = _mlp(widths, activation, dropout)
        self.head = nn.Linear(widths[-1], 2 * int(latent_dim))
        self.latent_dim = int(latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior parameters of ``x``.

        Parameters
        ----------
        x
            ``(B, D)``.

        Returns
        -------
        mu, logvar
            Each ``(B, K)``; ``logvar`` clamped to :data:`LOGVAR_RANGE`.
        """
        out = self.head(self.body(x))
        mu, logvar = out.split(self.latent_dim, dim=-1)
        return mu, logvar.clamp(*LOGVAR_RANGE)


class Decoder(nn.Module):
    """Decoder z -> natural parameter of the likelihood (log-rate or mean), per feature.

    Parameters
    ----------
    latent_dim
        Latent dimension K.
    output_dim
        Number of features D.
    hidden
        Hidden-layer widths (latent side first); empty for a linear (GLM) readout.
    activation
        Activation name.
    dropout
        Dropout probability after each hidden activation.
    """

    def __init__(
        self,
        latent_dim: int,
        output_dim: int,
        hidden: Sequence[int] = (),
        activation: str = "leaky_relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        widths = [int(latent_dim), *map(int, hidden)]
        self.body = _mlp(widths, activation, dropout)
        self.out = nn.Linear(widths[-1], int(output_dim))

    def forward(self, z: Tensor) -> Tensor:
        """Natural parameter ``(..., B, D)`` for latents ``(..., B, K)``."""
        return self.out(self.body(z))


def build_encoder(config: ModelConfig, input_dim: int) -> Encoder:
    """Encoder of one animal with ``input_dim`` features, as ``config`` specifies.

    Parameters
    ----------
    config
        Uses ``latent_dim``, ``hidden``, ``activation``, ``dropout``, ``encoder_bottleneck``.
    input_dim
        The animal's input width.

    Returns
    -------
    Encoder
    """
    return Encoder(
        input_dim,
        config.latent_dim,
        config.hidden_widths(input_dim),
        config.activation,
        config.dropout,
        config.encoder_bottleneck,
    )


def build_decoder(config: ModelConfig, output_dim: int) -> Decoder:
    """Decoder of one animal with ``output_dim`` features, as ``config`` specifies.

    Parameters
    ----------
    config
        Uses ``decoder`` (``"linear"``: no hidden layer; ``"mlp"``: the reversed
        ``hidden`` widths), ``latent_dim``, ``activation``, ``dropout``.
    output_dim
        The animal's number of features.

    Returns
    -------
    Decoder
    """
    hidden = [] if config.decoder == "linear" else config.hidden_widths(output_dim)[::-1]
    return Decoder(config.latent_dim, output_dim, hidden, config.activation, config.dropout)
