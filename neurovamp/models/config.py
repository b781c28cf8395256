"""Model configuration: which multimodal VAE, its networks, likelihood and objective weights.

:class:`ModelConfig` is a validated, JSON-safe dataclass. Every invalid value raises
:class:`~neurovamp.errors.ConfigError` naming the field and the allowed values, both when
a config is built in Python and when it is read back with :meth:`ModelConfig.from_dict`.

Presets
-------
``ModelConfig()`` (preset ``"neurovamp"``)
    Neurovamp's defaults for spike counts, chosen by measurement on simulated data
    (``benchmarks/select_defaults.py``, ``docs/defaults.md``): Poisson likelihood with an
    exponential link, ``latent_dim=8``, one encoder hidden layer of 128 units with
    LeakyReLU, and an MLP decoder (the encoder's hidden widths reversed). The MLP
    decoder beat the linear (Poisson-GLM) readout on every held-out score, including the
    imputation of a condition an animal never experienced, with equal latent alignment;
    ``decoder="linear"`` (log-rate affine in z, the readout of GPFA/LFADS-style models)
    remains available and has far fewer parameters.
``ModelConfig.paper()`` (preset ``"paper"``)
    The hippocampal experiment of Sutter et al. (NeurIPS 2024), as set in the authors'
    released configuration: ``latent_dim=2``; encoder and decoder MLPs with two hidden
    layers as wide as the animal's input (``hidden=("input", "input")``), LeakyReLU
    (slope 0.01); the encoder squeezes its last hidden layer through an activated
    ``latent_dim``-wide layer before the mean/log-variance heads
    (``encoder_bottleneck=True``); ``alpha=0`` (no N(0, I) component in the mixture
    prior) and ``beta=1``. Their reconstruction term is the summed squared error, which
    is the negative Gaussian log-likelihood with fixed variance 1/2 up to an additive
    constant, hence ``likelihood="gaussian"`` with ``gaussian_scale=1/sqrt(2)`` (the
    objective, and so the balance between reconstruction and regulariser, is the same).
    Training settings of that experiment (Adam, lr 1e-3, batch 128) belong to the
    training configuration, not here.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from neurovamp._fields import check_fields
from neurovamp.errors import ConfigError

__all__ = [
    "ModelConfig",
    "TrainingConfig",
    "MONITOR_TERMS",
    "MODELS",
    "JOINT_MODELS",
    "ACTIVATIONS",
    "DECODERS",
    "LIKELIHOODS",
    "LINKS",
    "PRESETS",
]

MODELS = ("mmvm", "independent", "poe", "moe", "mopoe", "avg")
"""Model names: the MMVM VAE, independent VAEs and the four joint-posterior baselines."""
JOINT_MODELS = ("poe", "moe", "mopoe", "avg")
"""Models with one joint latent aggregated from the animals' unimodal posteriors."""
ACTIVATIONS = ("leaky_relu", "relu", "elu", "softplus", "tanh")
DECODERS = ("mlp", "linear")
LIKELIHOODS = ("poisson", "negbin", "gaussian")
LINKS = ("exp", "softplus")
PRESETS = ("neurovamp", "paper")

_INPUT = "input"


def _allowed(values: Sequence[str]) -> str:
    return ", ".join(repr(v) for v in values)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Settings of a :class:`~neurovamp.models.module.MultiAnimalVAE`.

    Parameters
    ----------
    model
        ``"mmvm"`` (mixture-of-unimodal-posteriors prior, Sutter et al. 2024),
        ``"independent"`` (one VAE per animal, N(0, I) prior), or a joint VAE whose
        single latent aggregates the animals' posteriors: ``"poe"`` (product of experts
        with a N(0, I) prior expert), ``"moe"`` (mixture of experts), ``"mopoe"``
        (mixture of products over all non-empty subsets), ``"avg"`` (average of means
        and of variances).
    latent_dim
        Dimension K of the latent space (positive integer).
    hidden
        Widths of the encoder's hidden layers, input side first; the decoder MLP uses
        the reversed list. Each entry is a positive integer or ``"input"`` (as wide as
        the animal's input). The string ``"input"`` alone means ``("input",)``; an
        empty sequence means no hidden layer. Stored as a tuple.
    activation
        Hidden-layer nonlinearity: one of ``"leaky_relu"`` (slope 0.01), ``"relu"``,
        ``"elu"``, ``"softplus"``, ``"tanh"``.
    decoder
        ``"mlp"`` (hidden layers as above) or ``"linear"`` (the likelihood's natural
        parameter, log-rate for counts through the exp link or the mean for Gaussian
        data, is affine in z).
    likelihood
        ``"poisson"``, ``"negbin"`` (per-unit learnable dispersion) or ``"gaussian"``
        (fixed scale ``gaussian_scale``).
    link
        Map from the decoder output to the mean of count likelihoods: ``"exp"``
        (canonical; with a linear decoder a Poisson GLM) or ``"softplus"``. Ignored by
        the Gaussian likelihood (identity).
    gaussian_scale
        Fixed standard deviation of the Gaussian likelihood (positive).
    alpha
        Weight of the N(0, I) component in the MMVM prior, in [0, 1]; used by
        ``model="mmvm"`` only (``alpha=1`` gives independent VAEs). Other models have
        no such prior, so any value but 0 raises :class:`~neurovamp.errors.ConfigError`.
    beta
        Weight of the regulariser (KL terms), non-negative.
    dropout
        Dropout probability after every hidden activation, in [0, 1).
    encoder_bottleneck
        Pass the last encoder hidden layer through an activated ``latent_dim``-wide
        layer before the mean/log-variance heads (as the paper's code does).
    preset
        Label of the preset these values started from (free text, non-empty);
        ``"neurovamp"`` for the defaults, ``"paper"`` for :meth:`paper`.
    """

    model: str = "mmvm"
    latent_dim: int = 8
    hidden: tuple[int | str, ...] = (128,)
    activation: str = "leaky_relu"
    decoder: str = "mlp"
    likelihood: str = "poisson"
    link: str = "exp"
    gaussian_scale: float = 1.0
    alpha: float = 0.0
    beta: float = 1.0
    dropout: float = 0.0
    encoder_bottleneck: bool = False
    preset: str = "neurovamp"

    _CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "model": MODELS,
        "activation": ACTIVATIONS,
        "decoder": DECODERS,
        "likelihood": LIKELIHOODS,
        "link": LINKS,
    }

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        for name, choices in self._CHOICES.items():
            value = getattr(self, name)
            if not isinstance(value, str) or value not in choices:
                raise ConfigError(f"ModelConfig.{name} must be one of {_allowed(choices)}, got {value!r}")

        latent = self.latent_dim
        if isinstance(latent, bool) or not isinstance(latent, numbers.Integral) or latent < 1:
            raise ConfigError(f"ModelConfig.latent_dim must be a positive integer, got {latent!r}")
        object.__setattr__(self, "latent_dim", int(latent))

        object.__setattr__(self, "hidden", _normalise_hidden(self.hidden))

        self._set_float("gaussian_scale", low=0.0, low_open=True)
        self._set_float("alpha", low=0.0, high=1.0)
        self._set_float("beta", low=0.0)
        self._set_float("dropout", low=0.0, high=1.0, high_open=True)
        if self.model != "mmvm" and self.alpha != 0.0:
            raise ConfigError(
                f"ModelConfig.alpha applies to model='mmvm' only (got alpha={self.alpha:g} with "
                f"model={self.model!r}); leave it at 0"
            )

        if not isinstance(self.encoder_bottleneck, bool):
            raise ConfigError(
                f"ModelConfig.encoder_bottleneck must be true or false, got {self.encoder_bottleneck!r}"
            )
        if not isinstance(self.preset, str) or not self.preset.strip():
            raise ConfigError(f"ModelConfig.preset must be a non-empty string, got {self.preset!r}")

    def _set_float(
        self,
        name: str,
        *,
        low: float,
        high: float = math.inf,
        low_open: bool = False,
        high_open: bool = False,
    ) -> None:
        value = getattr(self, name)
        lo = "(" if low_open else "["
        hi = ")" if high_open or math.isinf(high) else "]"
        interval = f"{lo}{low:g}, {'inf' if math.isinf(high) else f'{high:g}'}{hi}"
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"ModelConfig.{name} must be a number in {interval}, got {value!r}")
        fvalue = float(value)
        bad = (
            not math.isfinite(fvalue)
            or fvalue < low
            or fvalue > high
            or (low_open and fvalue == low)
            or (high_open and fvalue == high)
        )
        if bad:
            raise ConfigError(f"ModelConfig.{name} must be a number in {interval}, got {value!r}")
        object.__setattr__(self, name, fvalue)

    # ------------------------------------------------------------------ derived
    @property
    def is_joint(self) -> bool:
        """Whether the model has one joint latent (``poe``, ``moe``, ``mopoe``, ``avg``)."""
        return self.model in JOINT_MODELS

    def hidden_widths(self, input_dim: int) -> list[int]:
        """Encoder hidden widths for an animal with ``input_dim`` features.

        Parameters
        ----------
        input_dim
            Number of input features of the animal (units x bins).

        Returns
        -------
        list of int
            ``hidden`` with every ``"input"`` replaced by ``input_dim``.
        """
        return [input_dim if w == _INPUT else int(w) for w in self.hidden]

    def replace(self, **changes: Any) -> ModelConfig:
        """Return a validated copy with some fields changed.

        Parameters
        ----------
        **changes
            Field names and new values.

        Returns
        -------
        ModelConfig
        """
        check_fields(self, changes, "ModelConfig")
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary of all fields (``hidden`` as a list).

        Returns
        -------
        dict
            Plain ``str``/``int``/``float``/``bool``/``list`` values; ``from_dict`` of it
            gives an equal config.
        """
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Build a config from a dictionary such as :meth:`to_dict` writes.

        Parameters
        ----------
        data
            Field names to values; missing fields take their defaults.

        Returns
        -------
        ModelConfig

        Raises
        ------
        ConfigError
            For unknown fields or invalid values.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"ModelConfig.from_dict expects a mapping, got {type(data).__name__}")
        check_fields(cls, data, "ModelConfig")
        return cls(**dict(data))

    # ------------------------------------------------------------------ presets
    @classmethod
    def paper(cls, model: str = "mmvm", **overrides: Any) -> ModelConfig:
        """The preset of the paper's hippocampal experiment (see the module docstring).

        Parameters
        ----------
        model
            Which model to configure with the paper's networks and likelihood.
        **overrides
            Fields to change from the preset.

        Returns
        -------
        ModelConfig
            ``latent_dim=2``, ``hidden=("input", "input")``, LeakyReLU, MLP decoder,
            Gaussian likelihood with scale ``1/sqrt(2)``, ``alpha=0``, ``beta=1``,
            ``encoder_bottleneck=True``, ``preset="paper"``.
        """
        values: dict[str, Any] = dict(
            model=model,
            latent_dim=2,
            hidden=(_INPUT, _INPUT),
            activation="leaky_relu",
            decoder="mlp",
            likelihood="gaussian",
            gaussian_scale=1.0 / math.sqrt(2.0),
            alpha=0.0,
            beta=1.0,
            dropout=0.0,
            encoder_bottleneck=True,
            preset="paper",
        )
        values.update(overrides)
        return cls.from_dict(values)

    @classmethod
    def from_preset(cls, name: str, model: str = "mmvm", **overrides: Any) -> ModelConfig:
        """Config of a named preset.

        Parameters
        ----------
        name
            ``"neurovamp"`` (the defaults) or ``"paper"``.
        model
            Model name (see :attr:`model`).
        **overrides
            Fields to change from the preset.

        Returns
        -------
        ModelConfig
        """
        if name == "paper":
            return cls.paper(model, **overrides)
        if name == "neurovamp":
            return cls.from_dict({"model": model, **overrides})
        raise ConfigError(f"ModelConfig preset must be one of {_allowed(PRESETS)}, got {name!r}")


def _normalise_hidden(hidden: Any) -> tuple[int | str, ...]:
    message = (
        "ModelConfig.hidden must be 'input' or a list whose entries are positive integers "
        f"or 'input', got {hidden!r}"
    )
    if isinstance(hidden, str):
        if hidden != _INPUT:
            raise ConfigError(message)
        return (_INPUT,)
    if not isinstance(hidden, (list, tuple)):
        raise ConfigError(message)
    out: list[int | str] = []
    for width in hidden:
        if width == _INPUT and isinstance(width, str):
            out.append(_INPUT)
        elif isinstance(width, numbers.Integral) and not isinstance(width, bool) and width >= 1:
            out.append(int(width))
        else:
            raise ConfigError(message)
    return tuple(out)


# --------------------------------------------------------------------------- training settings
MONITOR_TERMS = ("loss", "rec")
"""Loss terms early stopping may watch (:attr:`TrainingConfig.monitor`)."""


@dataclasses.dataclass
class TrainingConfig:
    """Optimisation settings.

    Parameters
    ----------
    epochs
        Maximum number of passes over the training pairs.
    batch_size
        Samples per batch (a sample is one pair in one sub-window).
    lr
        Adam learning rate.
    weight_decay
        Adam (L2) weight decay.
    patience
        Stop when the monitored term (see ``monitor``) has not improved for this many
        epochs; ``None`` trains all ``epochs``.
    min_delta
        Smallest decrease of the monitored term that counts as an improvement.
    restore_best
        Load the weights of the best epoch (by the monitored term) when training ends.
    monitor
        Loss term that early stopping and ``restore_best`` watch, one of
        :data:`MONITOR_TERMS`: ``"loss"`` (the minimised objective; for a VAE the
        negative ELBO, reconstruction + beta * regulariser) or ``"rec"`` (the
        reconstruction term as the module reports it). The validation split's value is
        watched; the training split's when the validation split is empty.
    max_grad_norm
        Clip the global gradient norm to this value; ``None`` disables clipping.
    seed
        Seed of every random draw during training (see the module docstring).
    device
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    checkpoint_every
        Write a checkpoint every this many epochs (and always at the end) when a
        checkpoint folder is given.
    explode_factor
        Raise :class:`~neurovamp.errors.TrainingError` when a batch loss exceeds
        ``explode_factor * max(|best epoch training loss|, 1)``; ``None`` disables the
        check (non-finite losses always raise).
    compile
        Run the training steps' loss (forward and backward) through
        :func:`torch.compile`, which fuses the elementwise work and removes most per-operator
        overhead: 2-4 % more samples/s for the paper preset on one CPU core
        (``benchmarks/results/training.md``), for a one-off compilation of 5-15 s with
        torch's disk cache warm (~45 s cold). Needs a C++ compiler on CPU (Triton on
        CUDA). Random draws are torch's own, so a compiled fit matches an eager one up to
        float rounding; an epoch's last, smaller batch and validation run eagerly. Within
        one process torch compiles once per architecture (layer sizes), and after 8
        architectures (``torch._dynamo.config.recompile_limit``) it runs the loss eagerly
        with a warning.
    kl_warmup
        Epochs over which the weight of the regulariser in the minimised objective rises
        linearly from ``1 / kl_warmup`` to 1 (KL warm-up, "deterministic annealing"):
        the training step of epoch ``e`` minimises ``rec + w_e * (loss - rec)`` with
        ``w_e = min(1, e / kl_warmup)``, where ``loss`` and ``rec`` are the module's
        terms (for a VAE ``loss - rec = beta * reg``). 0 disables it. Validation terms
        and the history keep the full objective (``w = 1``); the training history gains
        a ``train/kl_weight`` column. Early stopping and best-weight restoring start
        counting only once the weight has reached 1 (epochs before ``kl_warmup``
        neither count against ``patience`` nor become the best epoch). The weight
        depends on the epoch alone, so a resumed run stays exact. Needs a ``"rec"``
        term from the module. Default 50: neurovamp's MMVM otherwise stops at the KL's rise
        with a nearly unused latent (``benchmarks/results/convergence.md``,
        ``docs/defaults.md``).
    """

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = 20
    min_delta: float = 0.0
    restore_best: bool = True
    max_grad_norm: float | None = None
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 10
    explode_factor: float | None = 1e4
    monitor: str = "loss"
    compile: bool = False
    kl_warmup: int = 50

    def __post_init__(self) -> None:
        def positive_int(name: str, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"TrainingConfig.{name} must be a positive integer, got {value!r}")
            setattr(self, name, int(value))

        def positive_float(name: str, allow_none: bool = False, allow_zero: bool = False) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            try:
                fvalue = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"TrainingConfig.{name} must be a number, got {value!r}") from None
            if not math.isfinite(fvalue) or fvalue < 0 or (fvalue == 0 and not allow_zero):
                kind = "non-negative" if allow_zero else "positive"
                raise ConfigError(f"TrainingConfig.{name} must be a finite {kind} number, got {value!r}")
            setattr(self, name, fvalue)

        positive_int("epochs")
        positive_int("batch_size")
        positive_int("patience", allow_none=True)
        positive_int("checkpoint_every")
        if isinstance(self.kl_warmup, bool) or not isinstance(self.kl_warmup, (int, np.integer)) or self.kl_warmup < 0:
            raise ConfigError(f"TrainingConfig.kl_warmup must be an integer >= 0 (epochs), got {self.kl_warmup!r}")
        self.kl_warmup = int(self.kl_warmup)
        positive_float("lr")
        positive_float("weight_decay", allow_zero=True)
        positive_float("min_delta", allow_zero=True)
        positive_float("max_grad_norm", allow_none=True)
        positive_float("explode_factor", allow_none=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ConfigError(f"TrainingConfig.seed must be a non-negative integer, got {self.seed!r}")
        self.seed = int(self.seed)
        self.restore_best = bool(self.restore_best)
        if not isinstance(self.device, str):
            self.device = str(self.device)
        _parse_device_name(self.device)
        if not isinstance(self.monitor, str) or self.monitor not in MONITOR_TERMS:
            raise ConfigError(f"TrainingConfig.monitor must be one of {MONITOR_TERMS}, got {self.monitor!r}")
        if not isinstance(self.compile, (bool, np.bool_)):
            raise ConfigError(f"TrainingConfig.compile must be True or False, got {self.compile!r}")
        self.compile = bool(self.compile)

    def kl_weight(self, epoch: int) -> float:
        """Weight of the regulariser in the training objective of ``epoch`` (1-based).

        Parameters
        ----------
        epoch
            The epoch, counted from 1.

        Returns
        -------
        float
            ``min(1, epoch / kl_warmup)``; 1 when ``kl_warmup`` is 0.
        """
        if self.kl_warmup <= 0:
            return 1.0
        return min(1.0, epoch / self.kl_warmup)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy of the settings.

        Returns
        -------
        dict
            Field name to value.
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainingConfig:
        """Rebuild a configuration from :meth:`to_dict` output.

        Parameters
        ----------
        values
            Field name to value; unknown names raise.

        Returns
        -------
        TrainingConfig
            The configuration.

        Raises
        ------
        ConfigError
            On unknown fields or invalid values.
        """
        check_fields(cls, values, "TrainingConfig")
        return cls(**dict(values))


def _parse_device_name(device: str) -> None:
    if device == "auto":
        return
    import torch  # only to parse a device name: the settings stay importable without torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from None
    if parsed.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
