"""The user-facing estimator: fit a multi-animal VAE, get latents, generate, save and load.

:class:`MultiAnimalModel` wraps a :class:`~neurovamp.models.module.MultiAnimalVAE` (the
torch module), the training engine (:mod:`neurovamp.models.training`) and everything the
model needs to be applied to new data later: the animals, their unit ids, the bins and
sub-windows it was trained on and any input normalisation. Everything is saved with the
model (:meth:`MultiAnimalModel.save`) as JSON plus a ``state_dict``, and read back
without unpickling code.

Input normalisation
-------------------
``normalize="auto"`` z-scores every unit (mean and standard deviation of its counts over
the training trials and bins; units with no variance are only centred) when the
likelihood is Gaussian, as the paper fitted its Gaussian model to normalised counts, and
leaves counts untouched for the Poisson and negative binomial likelihoods. The statistics
belong to the model: :meth:`MultiAnimalModel.latents` normalises new data with them and
:meth:`MultiAnimalModel.generate` maps predictions back to counts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import Tensor, nn

import neurovamp
from neurovamp._files import atomic_output
from neurovamp._jsonfile import json_safe, read_json, read_versioned, write_json, write_versioned
from neurovamp.data.labels import plain
from neurovamp.data.modality import label_names, make_modality
from neurovamp.data.pairing import SPLITS, PairedData
from neurovamp.data.subwindows import cut, overlap_average, prediction_starts, window_centres, window_starts
from neurovamp.errors import ConfigError, DataError
from neurovamp.models import distributed
from neurovamp.models._torchio import load_tensors
from neurovamp.models.batched import resolve_step
from neurovamp.models.config import ModelConfig
from neurovamp.models.module import MultiAnimalVAE
from neurovamp.models.training import Trainer, TrainingConfig, resolve_device

__all__ = ["MultiAnimalModel", "NORMALIZATIONS"]

NORMALIZATIONS = ("auto", "zscore", "none")
_MODEL_FORMAT = "neurovamp-model"
_MODEL_VERSION = 1
_CONFIG_FILE = "config.json"
_WEIGHTS_FILE = "weights.pt"
_HISTORY_FILE = "history.json"
_INFERENCE_BATCH = 4096


class _Normalized(nn.Module):
    """Training view of a VAE that sees per-feature normalised inputs.

    ``loss(xs, mask)`` normalises ``xs`` with the ``offset_<m>``/``scale_<m>`` buffers
    (missing animals stay zero) and delegates to the wrapped VAE.
    """

    def __init__(self, vae: MultiAnimalVAE, offsets: Sequence[np.ndarray], scales: Sequence[np.ndarray]) -> None:
        super().__init__()
        self.vae = vae
        for m, (offset, scale) in enumerate(zip(offsets, scales)):
            self.register_buffer(f"offset_{m}", torch.as_tensor(offset, dtype=torch.float32))
            self.register_buffer(f"scale_{m}", torch.as_tensor(scale, dtype=torch.float32))

    def transform(self, xs: Sequence[Tensor | None], mask: Tensor | None = None) -> list[Tensor | None]:
        out: list[Tensor | None] = []
        for m, x in enumerate(xs):
            if x is None:
                out.append(None)
                continue
            z = (x - getattr(self, f"offset_{m}")) / getattr(self, f"scale_{m}")
            if mask is not None:
                z = z * mask[:, m : m + 1].to(z.dtype)
            out.append(z)
        return out

    def loss(
        self, xs: Sequence[Tensor | None], mask: Tensor | None = None, *, eps: Tensor | None = None
    ) -> dict[str, Tensor]:
        return self.vae.loss(self.transform(xs, mask), mask, eps=eps)


def _json_list(values: np.ndarray) -> list | None:
    """``values`` as a JSON list (NaN kept) when they can be written as JSON, else None."""
    try:
        return json_safe(np.asarray(values), allow_nan=True)
    except ConfigError:
        return None


def _check_n_samples(n_samples: Any) -> int:
    """``n_samples`` as a non-negative int, or ConfigError naming it."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 0:
        raise ConfigError(f"n_samples must be a non-negative integer (0 = posterior mean), got {n_samples!r}")
    return int(n_samples)


def _check_seed(seed: Any) -> int | None:
    """``seed`` as None or a non-negative int, or ConfigError naming it."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise ConfigError(f"seed must be None or an integer in [0, 2**64), got {seed!r}")
    return int(seed)


def _fit_on_rank(model: MultiAnimalModel, paired: PairedData, kwargs: dict[str, Any]) -> MultiAnimalModel:
    """One rank of ``MultiAnimalModel.fit(nproc=N)``: the fit, its module on the CPU for the parent."""
    model.fit(paired, **kwargs)
    model.module_.to("cpu")
    return model


def _private_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (a fresh random seed when None).

    Draws on the CPU make the samples independent of the device and leave torch's global
    random state untouched.
    """
    generator = torch.Generator(device="cpu")
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


class MultiAnimalModel:
    """Multi-animal VAE estimator (MMVM VAE or a baseline) with an sklearn-like interface.

    Parameters
    ----------
    model
        ``"mmvm"``, ``"independent"``, ``"poe"``, ``"moe"``, ``"mopoe"`` or ``"avg"``.
    latent_dim, hidden, activation, decoder, likelihood, link, gaussian_scale, alpha, beta, dropout
        :class:`~neurovamp.models.config.ModelConfig` fields; ``None`` keeps the
        config's default.
    normalize
        Input normalisation: ``"auto"`` (z-score per unit for the Gaussian likelihood,
        none for count likelihoods), ``"zscore"`` or ``"none"``.
    seed
        Seed of the weight initialisation and of every random draw during training.
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    config
        A complete :class:`ModelConfig`; then no other model field may be given.
    **more
        Further :class:`ModelConfig` fields (``encoder_bottleneck``, ``preset``).

    Attributes
    ----------
    config : ModelConfig
        The model settings.
    module_ : MultiAnimalVAE
        The fitted torch module (after :meth:`fit` or :meth:`load`).
    history_ : pandas.DataFrame
        Per-epoch losses (column ``epoch``, then ``train/<term>`` and ``val/<term>``).
    animals_ : tuple of str
        Animals the model was fitted on, in module order.
    training_config_ : TrainingConfig
        Settings of the last fit.

    Examples
    --------
    >>> model = MultiAnimalModel("mmvm", latent_dim=4, seed=0)       # doctest: +SKIP
    >>> model.fit(paired, epochs=200)                                # doctest: +SKIP
    >>> z = model.latents(paired, "rat1", split="test")              # doctest: +SKIP
    >>> rates = model.generate(paired.modalities["rat1"], "rat1", "rat2")  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str = "mmvm",
        *,
        latent_dim: int | None = None,
        hidden: Sequence[int | str] | str | None = None,
        activation: str | None = None,
        decoder: str | None = None,
        likelihood: str | None = None,
        link: str | None = None,
        gaussian_scale: float | None = None,
        alpha: float | None = None,
        beta: float | None = None,
        dropout: float | None = None,
        normalize: str = "auto",
        seed: int = 0,
        device: str = "auto",
        config: ModelConfig | None = None,
        **more: Any,
    ) -> None:
        fields = dict(
            latent_dim=latent_dim,
            hidden=hidden,
            activation=activation,
            decoder=decoder,
            likelihood=likelihood,
            link=link,
            gaussian_scale=gaussian_scale,
            alpha=alpha,
            beta=beta,
            dropout=dropout,
            **more,
        )
        given = {key: value for key, value in fields.items() if value is not None}
        if config is not None:
            if not isinstance(config, ModelConfig):
                raise ConfigError(f"config must be a ModelConfig, got {type(config).__name__}")
            if given or model not in ("mmvm", config.model):
                extra = sorted(given) + ([] if model in ("mmvm", config.model) else ["model"])
                raise ConfigError(
                    f"pass either config=ModelConfig(...) or model fields, not both (got {extra}); "
                    "use config.replace(...) to change a config"
                )
            self.config = config
        else:
            self.config = ModelConfig.from_dict({"model": model, **given})
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        self.normalize = normalize
        self.seed = int(seed)
        resolve_device(device)  # validate early
        self.device = str(device)
        self._reset()

    def _reset(self) -> None:
        self.module_: MultiAnimalVAE | None = None
        self.history_ = pd.DataFrame()
        self.animals_: tuple[str, ...] = ()
        self.training_config_: TrainingConfig | None = None
        self.fit_info_: dict[str, Any] = {}
        self._units: dict[str, list] = {}
        self._unit_coords: dict[str, dict[str, list]] = {}
        self._bins: dict[str, Any] = {}
        self._norm: dict[str, Any] = {"kind": "none", "offset": {}, "scale": {}}
        self._pairing: dict[str, Any] = {}

    # ------------------------------------------------------------------ constructors
    @classmethod
    def paper_preset(cls, model: str = "mmvm", *, seed: int = 0, device: str = "auto", **overrides: Any) -> MultiAnimalModel:
        """The paper's hippocampal-experiment settings (:meth:`ModelConfig.paper`).

        Gaussian likelihood on per-unit z-scored counts, latent dimension 2, MLPs as wide
        as the input. Train it with the paper's optimiser settings (Adam, lr 1e-3, batch
        128: the :meth:`fit` defaults).

        Parameters
        ----------
        model
            Model name (see :class:`MultiAnimalModel`).
        seed, device
            As in :class:`MultiAnimalModel`.
        **overrides
            :class:`ModelConfig` fields to change from the preset.

        Returns
        -------
        MultiAnimalModel
            An unfitted estimator.
        """
        return cls(config=ModelConfig.paper(model, **overrides), seed=seed, device=device)

    def __repr__(self) -> str:
        state = f"fitted on {list(self.animals_)}" if self.is_fitted else "not fitted"
        return (
            f"MultiAnimalModel(model={self.config.model!r}, latent_dim={self.config.latent_dim}, "
            f"likelihood={self.config.likelihood!r}, seed={self.seed}, {state})"
        )

    @property
    def is_fitted(self) -> bool:
        """Whether the model has weights (fitted or loaded)."""
        return self.module_ is not None

    def _check_fitted(self) -> MultiAnimalVAE:
        if self.module_ is None:
            raise ConfigError("this MultiAnimalModel is not fitted yet; call fit(paired) or MultiAnimalModel.load(path)")
        return self.module_

    @property
    def device_(self) -> torch.device:
        """The torch device the module lives on."""
        module = self._check_fitted()
        return next(module.parameters()).device

    @property
    def units_(self) -> dict[str, list]:
        """Unit ids of every animal, in the model's feature order."""
        return {animal: list(ids) for animal, ids in self._units.items()}

    @property
    def bins_(self) -> dict[str, Any]:
        """Bins and sub-windows the model was trained on (bin_size, n_bins, window, stride, ...)."""
        return dict(self._bins)

    @property
    def normalization_(self) -> dict[str, Any]:
        """Input normalisation: ``kind`` and per-animal, per-unit ``offset`` and ``scale``."""
        return {
            "kind": self._norm["kind"],
            "offset": {a: list(v) for a, v in self._norm["offset"].items()},
            "scale": {a: list(v) for a, v in self._norm["scale"].items()},
        }

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        paired: PairedData,
        *,
        epochs: int = TrainingConfig.epochs,
        batch_size: int = TrainingConfig.batch_size,
        lr: float = TrainingConfig.lr,
        weight_decay: float = TrainingConfig.weight_decay,
        patience: int | None = TrainingConfig.patience,
        max_grad_norm: float | None = TrainingConfig.max_grad_norm,
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool = True,
        step: str = "auto",
        nproc: int | None = None,
        **training: Any,
    ) -> MultiAnimalModel:
        """Fit the model on the training pairs, early-stopping on the validation pairs.

        Parameters
        ----------
        paired
            Output of :func:`~neurovamp.data.pairing.pair_trials`.
        epochs, batch_size, lr, weight_decay, patience, max_grad_norm
            Optimisation settings (see :class:`~neurovamp.models.training.TrainingConfig`).
        checkpoint_dir
            Folder for training checkpoints (``checkpoint.pt``); none when ``None``.
        resume
            Continue from the checkpoint in ``checkpoint_dir``; the result equals an
            uninterrupted run with the same settings and ``epochs``.
        overwrite
            Start afresh over an existing checkpoint.
        progress
            Show a tqdm progress bar (on rank 0 only when data-parallel).
        step
            How the per-animal networks run: ``"loop"``, ``"batched"`` (stacked weights,
            batched matmuls; equal up to float rounding) or ``"auto"`` (batched on CUDA
            from 8 animals on); see :meth:`MultiAnimalVAE.set_step`.
        nproc
            Train data-parallel on this many local processes
            (:mod:`neurovamp.models.distributed`: torch's elastic launcher,
            DistributedDataParallel, gloo on CPU, NCCL on CUDA); the result equals a
            one-process fit with the same ``batch_size`` up to float rounding (``mmvm``,
            ``independent``, ``poe``, ``avg`` without dropout). ``None`` or 1: this process,
            data-parallel anyway when it belongs to a process group of several processes
            (e.g. under ``torchrun``, whose environment initialises the group here).
        **training
            Other :class:`TrainingConfig` fields (``min_delta``, ``restore_best``,
            ``checkpoint_every``, ``explode_factor``, ``monitor``, ``compile``).

        Returns
        -------
        MultiAnimalModel
            ``self``, holding the best-validation weights.

        Raises
        ------
        TrainingError
            If the loss becomes non-finite or explodes.
        """
        if not isinstance(paired, PairedData):
            raise DataError(f"fit expects a PairedData (from pair_trials), got {type(paired).__name__}")
        for key in ("seed", "device"):
            if key in training:
                raise ConfigError(f"{key} is set on the MultiAnimalModel, not in fit()")
        resolve_step(step, 1)  # a bad value fails here, not in every process
        distributed.init_from_env()  # under torchrun: join its process group
        if nproc is not None and distributed.check_nproc(nproc) > 1:
            if distributed.is_active():
                raise ConfigError("nproc > 1 inside a process group: the group's processes already train together")
            distributed.check_supported(bool(training.get("compile", False)))
            fitted = distributed.launch(
                _fit_on_rank, nproc, self, paired, dict(
                    epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience,
                    max_grad_norm=max_grad_norm, checkpoint_dir=checkpoint_dir, resume=resume,
                    overwrite=overwrite, progress=progress, step=step, **training,
                ),
            )
            self.__dict__.update(fitted.__dict__)
            self.module_.to(resolve_device(self.device))
            return self
        tconfig = TrainingConfig(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            patience=patience,
            max_grad_norm=max_grad_norm,
            seed=self.seed,
            device=self.device,
            **training,
        )
        device = resolve_device(self.device)
        self._reset()
        self._describe_data(paired)
        offsets, scales = self._feature_normalisation(paired)

        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            vae = MultiAnimalVAE(paired.input_dims, self.config, names=paired.animals)
        vae.init_output_bias([torch.as_tensor(m) for m in self._feature_means(paired, offsets, scales)])
        vae.set_step(resolve_step(step, vae.n_animals, device))
        trainable: nn.Module = vae if self._norm["kind"] == "none" else _Normalized(vae, offsets, scales)

        trainer = Trainer(trainable, paired, tconfig, checkpoint_dir=checkpoint_dir, progress=progress)
        history = trainer.fit(resume=resume, overwrite=overwrite)
        vae.eval()
        self.module_ = vae
        self.history_ = pd.DataFrame(history)
        self.training_config_ = tconfig
        self.fit_info_ = {
            "epochs_run": trainer.epochs_run,
            "best_epoch": trainer.best_epoch,
            "best_score": trainer.best_score,
            "monitor": trainer.monitor,
            "stopped_early": trainer.stopped_early,
        }
        return self

    def _resolved_normalize(self) -> str:
        if self.normalize == "auto":
            return "zscore" if self.config.likelihood == "gaussian" else "none"
        return self.normalize

    def _describe_data(self, paired: PairedData) -> None:
        """Record animals, units, bins and pairing of the training data."""
        self.animals_ = tuple(paired.animals)
        first = paired.modalities[paired.animals[0]]
        for animal in paired.animals:
            da = paired.modalities[animal]
            self._units[animal] = np.asarray(da["unit"].values).tolist()
            coords = {}
            for name, coord in da.coords.items():
                if name != "unit" and coord.dims == ("unit",):
                    values = _json_list(coord.values)
                    if values is not None:
                        coords[str(name)] = values
            self._unit_coords[animal] = coords
        time_from_event = None
        if "time_from_event" in first.coords:
            time_from_event = np.asarray(first["time_from_event"].values, dtype=float).tolist()
        self._bins = {
            "bin_size": float(first.attrs["bin_size"]),
            "n_bins": int(paired.n_bins),
            "window": int(paired.window),
            "stride": int(paired.stride),
            "window_starts": np.asarray(paired.window_starts).astype(int).tolist(),
            "window_start": float(first.attrs["window_start"]),
            "window_stop": float(first.attrs["window_stop"]),
            "event": str(first.attrs.get("event", "")),
            "time": np.asarray(first["time"].values, dtype=float).tolist(),
            "time_from_event": time_from_event,
        }
        self._pairing = {
            "pair_by": paired.pair_by,
            "strategy": paired.strategy,
            "seed": int(paired.seed),
            "conditions": [plain(c) for c in paired.conditions],
            "trials": paired.trial_counts(),
        }

    def _train_trials(self, paired: PairedData, m: int) -> np.ndarray:
        counts = paired.counts[m]
        rows = paired.trial_split[paired.animals[m]] == "train"
        return counts[rows] if rows.any() else counts

    def _feature_normalisation(self, paired: PairedData) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per-feature offsets/scales (unit statistics repeated over the window bins)."""
        kind = self._resolved_normalize()
        offsets, scales = [], []
        self._norm = {"kind": kind, "offset": {}, "scale": {}}
        for m, animal in enumerate(paired.animals):
            n_units = paired.n_units[m]
            if kind == "zscore":
                train = self._train_trials(paired, m).astype(np.float64)
                mean = train.mean(axis=(0, 2))
                std = train.std(axis=(0, 2))
                std = np.where(std > 0, std, 1.0)
            else:
                mean, std = np.zeros(n_units), np.ones(n_units)
            mean = mean.astype(np.float32)
            std = std.astype(np.float32)
            self._norm["offset"][animal] = [float(v) for v in mean]
            self._norm["scale"][animal] = [float(v) for v in std]
            offsets.append(np.repeat(mean, paired.window))
            scales.append(np.repeat(std, paired.window))
        return offsets, scales

    def _feature_means(
        self, paired: PairedData, offsets: Sequence[np.ndarray], scales: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """Mean of every (normalised) input feature over the training trials."""
        means = []
        for m in range(paired.n_animals):
            unit_mean = self._train_trials(paired, m).astype(np.float64).mean(axis=(0, 2))
            raw = np.repeat(unit_mean, paired.window).astype(np.float32)
            means.append((raw - offsets[m]) / scales[m])
        return means

    # ------------------------------------------------------------------ data -> samples
    def _animal_index(self, animal: str) -> int:
        if animal not in self.animals_:
            raise DataError(f"unknown animal {animal!r}; the model was fitted on {list(self.animals_)}")
        return self.animals_.index(animal)

    def _as_modality(self, data: xr.DataArray | np.ndarray, animal: str) -> xr.DataArray:
        """Validate ``data`` against the animal's units and bins; return it as a modality."""
        units = self._units[animal]
        bin_size = self._bins["bin_size"]
        if isinstance(data, xr.DataArray):
            missing_dims = [d for d in ("trial", "unit", "time") if d not in data.dims]
            if missing_dims:
                raise DataError(
                    f"data for animal {animal!r} must have dims (trial, unit, time); missing {missing_dims}"
                )
            da = data.transpose("trial", "unit", "time")
            if "unit" not in da.coords:
                raise DataError(f"data for animal {animal!r} has no 'unit' coordinate to match the model's units")
            present = set(np.asarray(da["unit"].values).tolist())
            absent = [u for u in units if u not in present]
            if absent:
                raise DataError(
                    f"data for animal {animal!r} lacks {len(absent)} of the model's units "
                    f"(e.g. {absent[:5]}); the model needs the units it was fitted on"
                )
            da = da.sel(unit=units)
            size = float(da.attrs.get("bin_size", bin_size))
            if not math.isclose(size, bin_size, rel_tol=1e-9):
                raise DataError(
                    f"data for animal {animal!r} has bins of {size:g} s but the model was fitted on {bin_size:g} s bins"
                )
            if "time" not in da.coords:
                da = da.assign_coords(time=self._default_time(da.sizes["time"]))
        else:
            counts = np.asarray(data)
            if counts.ndim != 3 or counts.shape[1] != len(units):
                raise DataError(
                    f"counts for animal {animal!r} must be (trial, unit, time) with {len(units)} units, "
                    f"got shape {counts.shape}"
                )
            n_bins = counts.shape[2]
            start = self._bins["window_start"] if n_bins == self._bins["n_bins"] else 0.0
            da = make_modality(
                counts, animal=animal, bin_size=bin_size, window_start=start, unit_ids=units,
                event=self._bins["event"],
            )
        if da.sizes["time"] < self._bins["window"]:
            raise DataError(
                f"data for animal {animal!r} has {da.sizes['time']} bins, fewer than the model's "
                f"{self._bins['window']}-bin sub-window"
            )
        if da.sizes["trial"] == 0:
            raise DataError(f"data for animal {animal!r} has no trials")
        if not np.all(np.isfinite(np.asarray(da.values, dtype=float))):
            raise DataError(f"data for animal {animal!r} contains NaN or infinite counts")
        return da

    def _default_time(self, n_bins: int) -> np.ndarray:
        if n_bins == self._bins["n_bins"]:
            return np.asarray(self._bins["time"])
        return self._bins["bin_size"] * (np.arange(n_bins) + 0.5)

    def _starts(self, n_bins: int) -> np.ndarray:
        """Sub-window offsets of the latents: the training offsets (same window and stride)."""
        if n_bins == self._bins["n_bins"]:
            return np.asarray(self._bins["window_starts"], dtype=np.int64)
        return window_starts(n_bins, self._bins["window"], self._bins["stride"])[2]

    def _window_coords(self, da: xr.DataArray, starts: np.ndarray) -> dict[str, tuple[str, np.ndarray]]:
        """Sub-window centre times (and ``time_from_event`` when the data has it)."""
        out = {}
        for name in ("time", "time_from_event"):
            if name in da.coords and da[name].dims == ("time",):
                out[name] = ("time", window_centres(da[name].values, starts, self._bins["window"]))
        return out

    def _samples(self, da: xr.DataArray, m: int, starts: np.ndarray) -> np.ndarray:
        """``(n_trials * n_windows, n_units * window)`` normalised float32 samples."""
        w = self._bins["window"]
        counts = np.asarray(da.values, dtype=np.float32)
        offset = np.asarray(self._norm["offset"][self.animals_[m]], dtype=np.float32)[None, :, None]
        scale = np.asarray(self._norm["scale"][self.animals_[m]], dtype=np.float32)[None, :, None]
        counts = (counts - offset) / scale
        n_trials, n_units = counts.shape[:2]
        return cut(counts, starts, w).reshape(n_trials * starts.size, n_units * w)

    def _trial_coords(self, da: xr.DataArray) -> dict[str, Any]:
        coords: dict[str, Any] = {"trial": da["trial"].values}
        for name in [*label_names(da), "event_time"]:
            if name in da.coords and da[name].dims == ("trial",):
                coords[name] = ("trial", da[name].values)
        return coords

    # ------------------------------------------------------------------ latents
    def latents(
        self,
        data: PairedData | xr.DataArray,
        animal: str | None = None,
        *,
        split: str | None = None,
        return_std: bool = False,
    ) -> xr.DataArray | xr.Dataset:
        """Posterior latent means of one animal's trials, per sub-window.

        Parameters
        ----------
        data
            A :class:`PairedData` (the animal's trials in it) or a modality
            ``(trial, unit, time)`` of an animal the model knows (its units are matched
            by id).
        animal
            The animal; for a modality its ``animal`` attribute when omitted, for
            PairedData required unless it holds one animal.
        split
            With PairedData only: ``"train"``, ``"val"`` or ``"test"`` to keep that
            split's trials; all trials when ``None``.
        return_std
            Return a Dataset with ``mean`` and ``std`` (posterior standard deviation).

        Returns
        -------
        xarray.DataArray or xarray.Dataset
            ``latents`` with dims ``(trial, time, latent)``: ``time`` is the centre of each
            sub-window (seconds, on the data's time axis; ``time_from_event`` too when the
            data has it), trial label coordinates copied from the data (and ``split`` for
            PairedData). For the joint models the latent of one animal is the joint
            posterior with only that animal observed.
        """
        vae = self._check_fitted()
        da, animal = self._resolve_input(data, animal, split)
        m = self._animal_index(animal)
        da = self._as_modality(da, animal)
        starts = self._starts(da.sizes["time"])
        x = self._samples(da, m, starts)
        k = self.config.latent_dim
        means, stds = [], []
        device = self.device_
        vae.eval()
        with torch.no_grad():
            for lo in range(0, x.shape[0], _INFERENCE_BATCH):
                batch = torch.from_numpy(x[lo : lo + _INFERENCE_BATCH]).to(device)
                xs: list[Tensor | None] = [None] * vae.n_animals
                xs[m] = batch
                mu, logvar = vae.encode(xs)
                if self.config.is_joint:
                    mask = torch.zeros(batch.shape[0], vae.n_animals, dtype=torch.bool, device=device)
                    mask[:, m] = True
                    mixture = vae.joint_posterior(mu, logvar, mask)
                    mean = mixture.mean()
                    second = torch.einsum("cb,cbk->bk", mixture.weights, mixture.logvar.exp() + mixture.mu**2)
                    var = (second - mean**2).clamp_min(0.0)
                else:
                    mean, var = mu[m], logvar[m].exp()
                means.append(mean.cpu().numpy())
                stds.append(var.sqrt().cpu().numpy())
        shape = (da.sizes["trial"], starts.size, k)
        coords = self._trial_coords(da)
        coords.update(self._window_coords(da, starts))
        coords["latent"] = np.arange(k)
        if isinstance(data, PairedData):
            rows = self._paired_rows(data, animal, split)
            coords["split"] = ("trial", np.asarray(data.trial_split[animal])[rows])
        attrs = {
            "animal": animal,
            "model": self.config.model,
            "window": self._bins["window"],
            "bin_size": self._bins["bin_size"],
        }
        dims = ("trial", "time", "latent")
        mean_da = xr.DataArray(np.concatenate(means).reshape(shape), dims=dims, coords=coords, name="latents", attrs=attrs)
        if not return_std:
            return mean_da
        std_da = xr.DataArray(np.concatenate(stds).reshape(shape), dims=dims, coords=coords, name="std", attrs=attrs)
        return xr.Dataset({"mean": mean_da, "std": std_da}, attrs=attrs)

    @staticmethod
    def _paired_rows(paired: PairedData, animal: str, split: str | None) -> np.ndarray:
        split_of = np.asarray(paired.trial_split[animal])
        if split is None:
            return np.arange(split_of.size)
        return np.flatnonzero(split_of == split)

    def _resolve_input(
        self, data: PairedData | xr.DataArray | np.ndarray, animal: str | None, split: str | None
    ) -> tuple[xr.DataArray | np.ndarray, str]:
        if isinstance(data, PairedData):
            if animal is None:
                if len(data.animals) != 1:
                    raise ConfigError(f"name the animal whose latents you want: one of {list(data.animals)}")
                animal = data.animals[0]
            if animal not in data.animals:
                raise DataError(f"animal {animal!r} is not in the PairedData; it holds {list(data.animals)}")
            if split is not None and split not in SPLITS:
                raise ConfigError(f"split must be one of {SPLITS} or None, got {split!r}")
            rows = self._paired_rows(data, animal, split)
            if rows.size == 0:
                raise DataError(f"animal {animal!r} has no trials in split {split!r}")
            return data.modalities[animal].isel(trial=rows), str(animal)
        if split is not None:
            raise ConfigError("split applies to PairedData input only; select trials of a modality yourself")
        if isinstance(data, xr.DataArray):
            animal = animal if animal is not None else data.attrs.get("animal")
            if animal is None:
                raise ConfigError(f"name the animal of this data: one of {list(self.animals_)}")
            return data, str(animal)
        if isinstance(data, np.ndarray):
            if animal is None:
                raise ConfigError(f"name the animal of these counts: one of {list(self.animals_)}")
            return data, str(animal)
        raise DataError(
            f"expected PairedData, a modality DataArray or a count array, got {type(data).__name__}"
        )

    # ------------------------------------------------------------------ generation
    def generate(
        self,
        source_data: xr.DataArray | np.ndarray,
        source: str | None,
        target: str,
        *,
        n_samples: int = 0,
        seed: int | None = None,
    ) -> xr.DataArray:
        """Expected counts of ``target`` per bin, predicted from ``source``'s activity.

        With ``n_samples=0`` the source's posterior mean of each sub-window is decoded
        with the target's decoder. With ``n_samples=K > 0``, K latents per sub-window are
        drawn from the source's posterior q(z | x_source) (reparameterised Gaussian) and
        each is decoded into the likelihood's mean: the spread of these predictions is
        the model's own uncertainty about the target's expected counts, and their average
        estimates E_q[expected counts] (which, for a nonlinear decoder or link, differs
        from the posterior-mean prediction; e.g. exp(w.mu + b + sum_k w_k^2 s_k^2 / 2)
        instead of exp(w.mu + b) for a linear decoder with the exp link). Either way the
        sub-windows decoded are those at *every* offset (stride 1), whatever the stride
        of training, and the predictions of every sub-window covering a bin are averaged
        (per draw): each bin is predicted from every position of the sub-window and every
        bin gets a prediction. (Decoding only the training offsets predicts bin b only
        from positions p with p = b mod stride, whose weights were fitted on that residue
        class of bins alone: a period-``stride`` artefact, the sawtooth at stride 2; see
        :mod:`neurovamp.data.subwindows`.)

        Parameters
        ----------
        source_data
            The source animal's modality ``(trial, unit, time)`` (units matched by id) or
            a count array ``(trial, unit, time)`` in the model's unit order.
        source
            The source animal; the modality's ``animal`` attribute when ``None``.
        target
            The animal to predict (may equal ``source``: reconstruction).
        n_samples
            Posterior draws per sub-window; 0 decodes the posterior mean.
        seed
            Seed of the draws (ignored when ``n_samples=0``). The draws come from a
            private generator, so torch's global random state is untouched; the same seed,
            data and ``n_samples`` give identical draws. None: a fresh random seed, recorded
            in ``attrs["seed"]``.

        Returns
        -------
        xarray.DataArray
            ``expected_counts`` with dims ``(trial, unit, time)``, or
            ``(sample, trial, unit, time)`` when ``n_samples > 0`` (``sample`` = draw
            0..K-1; every sub-window of every trial gets its own independent draws and a
            bin covered by several sub-windows averages their k-th draws; attributes
            ``n_samples`` and ``seed`` added): the target's unit ids (and unit
            coordinates), the source's trials, trial labels and time bins. Gaussian-likelihood predictions are mapped back to counts and
            clipped at 0 (each draw separately).

        Raises
        ------
        ConfigError
            If ``n_samples`` is not a non-negative integer or ``seed`` not None or a
            non-negative integer.
        """
        n_samples = _check_n_samples(n_samples)
        seed = _check_seed(seed)
        vae = self._check_fitted()
        da, source = self._resolve_input(source_data, source, None)
        s = self._animal_index(source)
        t = self._animal_index(target)
        da = self._as_modality(da, source)
        starts = prediction_starts(da.sizes["time"], self._bins["window"])
        x = self._samples(da, s, starts)
        n_trials, n_bins = da.sizes["trial"], da.sizes["time"]
        attrs = self._generation_attrs(da, source, target)
        if n_samples == 0:
            pred = self._decode_posterior_mean(vae, x, s, t)
            out = self._overlap_average(pred.reshape(n_trials, starts.size, -1), starts, n_bins, target)
            dims: tuple[str, ...] = ("trial", "unit", "time")
            coords = self._generation_coords(da, target)
        else:
            generator = _private_generator(seed)
            out = self._decode_posterior_samples(vae, x, s, t, n_samples, generator, starts, n_bins, target)
            dims = ("sample", "trial", "unit", "time")
            coords = {"sample": np.arange(n_samples), **self._generation_coords(da, target)}
            attrs.update(n_samples=n_samples, seed=int(generator.initial_seed()))
        return xr.DataArray(out.astype(np.float32, copy=False), dims=dims, coords=coords, name="expected_counts",
                            attrs=attrs)

    def _decode_posterior_mean(self, vae: MultiAnimalVAE, x: np.ndarray, s: int, t: int) -> np.ndarray:
        """Target's expected (normalised) values at the source's posterior means, ``(rows, D_t)``."""
        device = self.device_
        source_mask = torch.zeros(vae.n_animals, dtype=torch.bool, device=device)
        source_mask[s] = True
        preds = []
        vae.eval()
        with torch.no_grad():
            for lo in range(0, x.shape[0], _INFERENCE_BATCH):
                xs: list[Tensor | None] = [None] * vae.n_animals
                xs[s] = torch.from_numpy(x[lo : lo + _INFERENCE_BATCH]).to(device)
                preds.append(vae.generate(xs, source_mask, t).cpu().numpy())
        return np.concatenate(preds).astype(np.float64)

    def _decode_posterior_samples(
        self, vae: MultiAnimalVAE, x: np.ndarray, s: int, t: int, n_samples: int,
        generator: torch.Generator, starts: np.ndarray, n_bins: int, target: str,
    ) -> np.ndarray:
        """Per-draw predictions ``(n_samples, trial, unit, time)`` on the count scale.

        Whole trials are decoded together, about ``_INFERENCE_BATCH`` latents per call
        (at least one trial), and overlap-averaged chunk by chunk, so memory holds the
        output plus one chunk.
        """
        device = self.device_
        n_windows = starts.size
        n_trials = x.shape[0] // n_windows
        per_chunk = max(1, _INFERENCE_BATCH // (n_samples * n_windows))
        source_mask = torch.zeros(vae.n_animals, dtype=torch.bool, device=device)
        source_mask[s] = True
        out = np.empty((n_samples, n_trials, len(self._units[target]), n_bins), dtype=np.float32)
        vae.eval()
        with torch.no_grad():
            for lo in range(0, n_trials, per_chunk):
                hi = min(lo + per_chunk, n_trials)
                xs: list[Tensor | None] = [None] * vae.n_animals
                xs[s] = torch.from_numpy(x[lo * n_windows : hi * n_windows]).to(device)
                draws = vae.generate_samples(xs, source_mask, t, n_samples, generator=generator)
                pred = draws.cpu().numpy().astype(np.float64).reshape(n_samples, hi - lo, n_windows, -1)
                out[:, lo:hi] = self._overlap_average(pred, starts, n_bins, target)
        return out

    def _overlap_average(self, pred: np.ndarray, starts: np.ndarray, n_bins: int, target: str) -> np.ndarray:
        """Average overlapping sub-window predictions per bin, on the count scale.

        ``pred`` is ``(..., n_windows, n_units * window)`` of normalised predictions;
        returns ``(..., n_units, n_bins)`` mapped back to counts and clipped at 0
        (:func:`neurovamp.data.subwindows.overlap_average`).
        """
        n_units = len(self._units[target])
        pred = pred.reshape(pred.shape[:-1] + (n_units, self._bins["window"]))
        scale = np.asarray(self._norm["scale"][target])[:, None]
        offset = np.asarray(self._norm["offset"][target])[:, None]
        out = overlap_average(pred * scale + offset, starts, n_bins)
        return np.clip(out, 0.0, None)  # Gaussian means can be negative; NaN stays NaN

    def _generation_coords(self, da: xr.DataArray, target: str) -> dict[str, Any]:
        """Coordinates of a prediction: the source's trials and bins, the target's units."""
        coords = self._trial_coords(da)
        coords["unit"] = np.asarray(self._units[target])
        for name, values in self._unit_coords[target].items():
            coords[name] = ("unit", np.asarray(values))
        coords["time"] = da["time"].values
        if "time_from_event" in da.coords and da["time_from_event"].dims == ("time",):
            coords["time_from_event"] = ("time", da["time_from_event"].values)
        return coords

    def _generation_attrs(self, da: xr.DataArray, source: str, target: str) -> dict[str, Any]:
        """Attributes of a prediction of ``target`` from ``source``'s data ``da``."""
        return {
            "animal": target,
            "source": source,
            "bin_size": self._bins["bin_size"],
            "window_start": float(da.attrs.get("window_start", self._bins["window_start"])),
            "window_stop": float(da.attrs.get("window_stop", self._bins["window_stop"])),
            "event": str(da.attrs.get("event", self._bins["event"])),
            "model": self.config.model,
        }

    def reconstruct(self, modality: xr.DataArray | np.ndarray, animal: str | None = None) -> xr.DataArray:
        """Expected counts of an animal predicted from its own activity.

        Parameters
        ----------
        modality
            The animal's modality (or count array in the model's unit order).
        animal
            The animal; the modality's ``animal`` attribute when ``None``.

        Returns
        -------
        xarray.DataArray
            As :meth:`generate` with ``target == source``.
        """
        _, animal = self._resolve_input(modality, animal, None)
        return self.generate(modality, animal, animal)

    # ------------------------------------------------------------------ save / load
    def _config_json(self) -> dict[str, Any]:
        tconfig = self.training_config_.to_dict() if self.training_config_ is not None else None
        return {
            "format": _MODEL_FORMAT,
            "version": _MODEL_VERSION,
            "neurovamp_version": neurovamp.__version__,
            "model_config": self.config.to_dict(),
            "training_config": tconfig,
            "seed": self.seed,
            "normalize": self.normalize,
            "animals": list(self.animals_),
            "input_dims": list(self._check_fitted().input_dims),
            "units": self._units,
            "unit_coords": self._unit_coords,
            "bins": self._bins,
            "normalization": self._norm,
            "pairing": self._pairing,
            "fit": self.fit_info_,
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the model to a folder: ``config.json``, ``weights.pt``, ``history.json``.

        Parameters
        ----------
        path
            Output folder (written atomically).
        overwrite
            Replace an existing folder.

        Returns
        -------
        Path
            ``path``.

        Raises
        ------
        OutputExistsError
            If ``path`` exists and ``overwrite`` is false.
        """
        vae = self._check_fitted()
        config = self._config_json()
        history = {col: list(self.history_[col]) for col in self.history_.columns}  # NaN written as null
        state = {key: value.detach().cpu() for key, value in vae.state_dict().items()}
        with atomic_output(path, overwrite=overwrite, directory=True) as tmp:
            write_versioned(tmp / _CONFIG_FILE, config, _MODEL_FORMAT, _MODEL_VERSION, allow_nan=True)
            write_json(tmp / _HISTORY_FILE, history, indent=1)
            torch.save(state, tmp / _WEIGHTS_FILE)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> MultiAnimalModel:
        """Read a model written by :meth:`save` (no code is unpickled).

        Parameters
        ----------
        path
            The model folder.
        device
            Where to put the module: ``"auto"``, ``"cpu"``, ``"cuda"``.

        Returns
        -------
        MultiAnimalModel
            The fitted model.

        Raises
        ------
        DataError
            If a file is missing or unreadable, or the weights do not fit the config.
        """
        path = Path(path)
        if not path.is_dir():
            raise DataError(f"{path}: no saved model folder (expected {_CONFIG_FILE}, {_WEIGHTS_FILE}, {_HISTORY_FILE})")
        for name in (_CONFIG_FILE, _WEIGHTS_FILE):
            if not (path / name).is_file():
                raise DataError(f"{path}: incomplete saved model, {name} is missing")
        info = read_versioned(path / _CONFIG_FILE, _MODEL_FORMAT, _MODEL_VERSION, what="neurovamp model config")
        try:
            config = ModelConfig.from_dict(info["model_config"])
            model = cls(config=config, normalize=info.get("normalize", "auto"), seed=info.get("seed", 0), device=device)
            model.animals_ = tuple(info["animals"])
            model._units = {a: list(v) for a, v in info["units"].items()}
            model._unit_coords = {a: dict(v) for a, v in info.get("unit_coords", {}).items()}
            model._bins = dict(info["bins"])
            model._norm = dict(info["normalization"])
            model._pairing = dict(info.get("pairing", {}))
            model.fit_info_ = dict(info.get("fit", {}))
            if info.get("training_config") is not None:
                model.training_config_ = TrainingConfig.from_dict(info["training_config"])
            input_dims = [int(d) for d in info["input_dims"]]
        except KeyError as exc:
            raise DataError(f"{path / _CONFIG_FILE}: missing field {exc.args[0]!r}") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{path / _CONFIG_FILE}: malformed field ({' '.join(str(exc).split())})") from None
        _check_saved_fields(path / _CONFIG_FILE, model, input_dims)
        torch_device = resolve_device(device)
        vae = MultiAnimalVAE(input_dims, config, names=model.animals_)
        state = load_tensors(path / _WEIGHTS_FILE, map_location=torch_device, what="weights")
        try:
            vae.load_state_dict(state)
        except Exception as exc:  # mismatched shapes or names
            detail = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), type(exc).__name__)
            raise DataError(
                f"{path / _WEIGHTS_FILE}: the weights do not fit the model {_CONFIG_FILE} describes ({detail[:200]})"
            ) from None
        model.module_ = vae.to(torch_device).eval()
        history_path = path / _HISTORY_FILE
        if history_path.is_file():
            history = read_json(history_path, what="training history of a saved model")
            try:
                model.history_ = pd.DataFrame(history)
            except (TypeError, ValueError) as exc:
                raise DataError(f"{history_path}: not a training history ({' '.join(str(exc).split())})") from None
        return model

    # ------------------------------------------------------------------ convenience
    def check_compatible(self, paired: PairedData) -> None:
        """Raise unless ``paired`` has the animals, units and bins this model expects.

        Parameters
        ----------
        paired
            Data to apply the model to.

        Raises
        ------
        DataError
            Naming the first mismatch.
        """
        self._check_fitted()
        if tuple(paired.animals) != self.animals_:
            raise DataError(f"data holds animals {list(paired.animals)} but the model was fitted on {list(self.animals_)}")
        for animal in paired.animals:
            ids = np.asarray(paired.modalities[animal]["unit"].values).tolist()
            if ids != self._units[animal]:
                raise DataError(f"animal {animal!r}: the data's unit ids differ from those the model was fitted on")
        if paired.window != self._bins["window"] or not math.isclose(paired.bin_size, self._bins["bin_size"]):
            raise DataError(
                f"data has {paired.window}-bin sub-windows of {paired.bin_size:g} s bins; the model expects "
                f"{self._bins['window']} bins of {self._bins['bin_size']:g} s"
            )


def _check_saved_fields(path: Path, model: MultiAnimalModel, input_dims: list[int]) -> None:
    """A saved model's fields a later step relies on, checked at load (one line naming the field)."""
    from neurovamp._budget import check_memory, model_bytes

    bins = model._bins
    window, bin_size = bins.get("window"), bins.get("bin_size")
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise DataError(f"{path}: bins.window must be a positive number of bins, got {window!r}")
    if not isinstance(bin_size, (int, float)) or isinstance(bin_size, bool) or not bin_size > 0:
        raise DataError(f"{path}: bins.bin_size must be a positive number of seconds, got {bin_size!r}")
    if len(input_dims) != len(model.animals_) or any(d < 1 for d in input_dims):
        raise DataError(f"{path}: input_dims must hold one positive width per animal, got {input_dims!r}")
    if set(model._units) != set(model.animals_):
        raise DataError(f"{path}: units must list the unit ids of every animal {list(model.animals_)}")
    config = model.config
    check_memory(model_bytes(input_dims, [config.hidden_widths(d) for d in input_dims], config.latent_dim),
                 f"loading the model of {path} (hidden {list(config.hidden)}, latent_dim {config.latent_dim})",
                 "this config.json describes a model larger than this machine can hold")
