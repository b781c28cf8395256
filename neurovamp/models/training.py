"""Training engine: Adam, early stopping on a validation loss term, checkpoints, resume.

The engine trains any :class:`torch.nn.Module` that exposes
``loss(xs, mask) -> dict[str, Tensor]`` (with a scalar ``"loss"`` entry, the quantity
minimised) on the batches of a :class:`~neurovamp.data.pairing.PairedData`.

Early stopping and best-weight restoring watch one term of the validation losses,
chosen by :attr:`TrainingConfig.monitor`: ``"loss"`` (the minimised objective, for a
VAE the negative ELBO) or ``"rec"`` (the reconstruction term alone). With an empty
validation split the same term of the training losses is watched.

Determinism
-----------
Everything random in an epoch is derived from ``(seed, epoch)`` alone: the torch RNG
(reparameterisation noise, dropout) is reseeded at the start of every epoch, batches
are shuffled with a :class:`torch.Generator` seeded from ``(seed, epoch)``, and
resampled pairs (``strategy="resample"``) are drawn by
:meth:`~neurovamp.data.pairing.PairedData.epoch_pairs` from ``(paired.seed, epoch)``. A run interrupted after epoch *k* and resumed from its checkpoint therefore
reaches exactly the weights and history of an uninterrupted run. The caller's global
torch RNG state is restored when training ends. The same holds with
``TrainingConfig(compile=True)``, whose compiled steps draw from the same streams.

Checkpoint format
-----------------
``checkpoint_dir/checkpoint.pt`` is written atomically with :func:`torch.save` and read
with ``torch.load(weights_only=True)``; the one before it is kept as ``checkpoint.prev.pt``
(:func:`load_checkpoint` falls back to it, with a warning, when the latest is corrupt). A
checkpoint holds only tensors and plain Python values::

    format           "neurovamp-checkpoint"
    version          1
    epoch            number of completed epochs
    model_state      module.state_dict() after that epoch (not the best weights)
    optimizer_state  Adam state_dict
    history          dict of lists (see :func:`Trainer.history`)
    best_state       state_dict with the best monitored term so far (None before the
                     first epoch and whenever ``restore_best`` is false)
    best_epoch       epoch of best_state (0 when none)
    best_score       its monitored term (inf when none)
    bad_epochs       epochs since the last improvement (early-stopping counter)
    stopped          whether early stopping ended the run
    config           TrainingConfig.to_dict() (checkpoints written before the
                     ``monitor`` field existed lack it; they monitored ``"loss"``)
    rng              {"torch": ByteTensor, "cuda": [ByteTensor, ...]} at the end of the
                     epoch (restored on resume; every epoch reseeds from (seed, epoch))
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from neurovamp._files import atomic_output, check_writable, keep_copy
from neurovamp.errors import ConfigError, DataError, TrainingError
from neurovamp.models import distributed
from neurovamp.models.config import MONITOR_TERMS, TrainingConfig, _parse_device_name

__all__ = [
    "TrainingConfig",
    "Trainer",
    "fit_module",
    "resolve_device",
    "load_checkpoint",
    "CHECKPOINT_NAME",
    "PREVIOUS_CHECKPOINT_NAME",
    "MONITOR_TERMS",
    "RESUMABLE_FIELDS",
    "resume_conflicts",
]

CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_CHECKPOINT_NAME = "checkpoint.prev.pt"
"""The checkpoint before the latest, kept so that a corrupt latest one falls back to it."""
_CHECKPOINT_FORMAT = "neurovamp-checkpoint"
_CHECKPOINT_VERSION = 1
RESUMABLE_FIELDS: tuple[str, ...] = ("epochs", "patience", "checkpoint_every", "device", "compile")
"""Training settings that may differ between a run and its resumption.

Changing ``epochs``, ``patience`` or ``checkpoint_every`` keeps the result exact; a resume on
another ``device`` or with another ``compile`` setting equals the uninterrupted run up to
float rounding.
"""
# Values of fields added after version 1 checkpoints were first written: what those
# checkpoints' runs did (not the current defaults), so resuming them compares correctly.
_LEGACY_CONFIG = {"monitor": "loss", "kl_warmup": 0}
def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn a device option into a :class:`torch.device`.

    Parameters
    ----------
    device
        ``"auto"`` picks CUDA when :func:`torch.cuda.is_available`, else the CPU;
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a :class:`torch.device` are taken as is.

    Returns
    -------
    torch.device
        The device to train or predict on.

    Raises
    ------
    ConfigError
        If the name is unknown or CUDA was requested but is not available.
    """
    if isinstance(device, torch.device):
        parsed = device
    else:
        device = str(device)
        _parse_device_name(device)
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        parsed = torch.device(device)
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(parsed)!r} requested but CUDA is not available; use 'cpu' or 'auto'")
    if parsed.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {str(parsed)!r}")
    return parsed


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A 63-bit seed for one random stream of one epoch."""
    state = np.random.SeedSequence([seed, epoch, stream]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def _read_checkpoint(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    """One checkpoint file, checked (DataError in one line for anything else)."""
    from neurovamp.models._torchio import load_tensors

    from neurovamp._jsonfile import check_versioned

    state = load_tensors(path, map_location=map_location, what="checkpoint")
    return check_versioned(state, path, _CHECKPOINT_FORMAT, _CHECKPOINT_VERSION, what="neurovamp checkpoint")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint without unpickling code.

    Training keeps the last two checkpoints (``checkpoint.pt`` and the one before it,
    ``checkpoint.prev.pt``). When the latest is missing, corrupt or not a neurovamp
    checkpoint and the previous one reads, the previous one is returned with a warning
    (a resume from it reaches the same result, it only retrains the epochs in between).

    Parameters
    ----------
    path
        A ``checkpoint.pt`` file or the folder holding one.
    map_location
        Where to put the tensors.

    Returns
    -------
    dict
        The checkpoint (see the module docstring for its keys).

    Raises
    ------
    DataError
        If neither checkpoint exists or reads as a neurovamp checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    previous = path.with_name(PREVIOUS_CHECKPOINT_NAME)
    if not path.is_file() and not previous.is_file():
        raise DataError(f"{path}: no checkpoint found (expected a file written by neurovamp training)")
    try:
        if not path.is_file():
            raise DataError(f"{path}: no checkpoint found")
        return _read_checkpoint(path, map_location)
    except DataError as latest_error:
        if path.name != CHECKPOINT_NAME or not previous.is_file():
            raise
        try:
            state = _read_checkpoint(previous, map_location)
        except DataError:
            raise latest_error from None
        warnings.warn(
            f"{latest_error}; using the previous checkpoint {previous.name} (epoch {state.get('epoch')})",
            RuntimeWarning, stacklevel=2,
        )
        return state


def with_legacy_defaults(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A run's recorded training settings, with the value runs had before a field existed.

    Parameters
    ----------
    saved
        A checkpoint's ``config`` or the ``training`` section of a run folder's run.json.

    Returns
    -------
    dict
        ``saved`` plus, for each field added later (e.g. ``kl_warmup``), the value that
        runs written before it trained with (``kl_warmup=0``: no warm-up).
    """
    return {**_LEGACY_CONFIG, **saved}


def resume_conflicts(saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Training settings that differ between a run and its resumption and may not.

    Parameters
    ----------
    saved
        The interrupted run's settings (a checkpoint's ``config``, or the ``training``
        section of a run folder's run.json). Fields it lacks because they were added
        later are read as the value runs had before them.
    current
        The settings of the resumption, same keys.

    Returns
    -------
    dict
        ``{field: (saved value, current value)}`` for every changed field not in
        :data:`RESUMABLE_FIELDS`, sorted by field; empty when the run may be resumed.
    """
    saved = with_legacy_defaults(saved)
    keys = sorted((set(saved) | set(current)) - set(RESUMABLE_FIELDS))
    return {key: (saved.get(key), current.get(key)) for key in keys if saved.get(key) != current.get(key)}


def _adam(module: torch.nn.Module, *, lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam over the module's parameters, with the fused kernel where torch has one.

    The fused implementation (torch >= 2.4 on CPU, CUDA) updates every parameter in one
    pass; the default CPU implementation runs several elementwise kernels per parameter
    tensor, which costs as much as a sizeable share of the matmuls for wide models.
    """
    params = list(module.parameters())
    devices = {p.device.type for p in params}
    if devices <= {"cpu", "cuda"} and all(p.dtype.is_floating_point for p in params):
        try:
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError):  # older torch or unsupported dtype/device
            pass
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _compile_loss(module: torch.nn.Module) -> Callable[..., dict[str, torch.Tensor]]:
    """``module.loss`` through :func:`torch.compile` (compiled lazily, at its first call).

    ``fallback_random`` keeps torch's own random number generator inside the compiled
    graph, so the reparameterisation noise of a compiled step is the eager step's.
    """
    try:
        return torch.compile(module.loss, options={"fallback_random": True})
    except Exception as exc:  # e.g. a Python version TorchDynamo does not support yet
        raise ConfigError(_compile_failure_message(exc)) from exc


def _from_torch_compile(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by torch.compile's machinery (TorchDynamo or Inductor)."""
    return type(exc).__module__.startswith(("torch._dynamo", "torch._inductor"))


def _is_backend_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure to build the compiled code (e.g. no C++ compiler)."""
    return type(exc).__name__ == "BackendCompilerFailed" or type(exc).__module__.startswith("torch._inductor")


def _compile_failure_message(exc: BaseException) -> str:
    """ConfigError text for a torch.compile failure that is not the model's own error."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    remedy = (
        "on CPU it needs a C++ compiler (g++ or clang++ on the PATH), on CUDA Triton"
        if _is_backend_failure(exc)
        else "the module's loss runs eagerly but cannot be compiled"
    )
    return (
        f"TrainingConfig.compile=True, but torch.compile failed ({type(exc).__name__}: {detail[:300]}); "
        f"{remedy}. Train with compile=False (CLI: without --compile)"
    )


def _clip_gradients(module: torch.nn.Module, max_norm: float) -> torch.Tensor:
    """Clip the gradients to global 2-norm ``max_norm``; the norm before clipping."""
    return torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm)


def _parameters_finite(module: torch.nn.Module) -> bool:
    """Whether every parameter of ``module`` is finite (one device sync).

    Adam turns a non-finite gradient into non-finite parameters (its update is
    ``m / sqrt(v)``: NaN for a NaN or infinite gradient), so checking the parameters once
    per epoch, and whenever the loss turns non-finite, catches a bad gradient without a
    pass over all gradients at every step.
    """
    params = [p.detach() for p in module.parameters()]
    if not params:
        return True
    # A NaN or infinity anywhere makes a sum non-finite; summing is ~20x faster than
    # isfinite() on CPU. A finite sum proves finiteness; a non-finite one (or an overflow
    # of huge finite values) is confirmed element-wise.
    if bool(torch.isfinite(torch.stack([p.sum() for p in params])).all()):
        return True
    return all(bool(torch.isfinite(p).all()) for p in params)


def _term_values(terms: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Python floats of scalar loss terms, fetched from the device in one transfer."""
    keys = list(terms)
    stacked = torch.stack([terms[key].detach().reshape(()).to(torch.float64) for key in keys])
    return dict(zip(keys, stacked.tolist()))


def _state_to_cpu(state: Mapping[str, torch.Tensor],
                  into: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """A CPU copy of ``state``; copied into the tensors of ``into`` when their shapes match.

    Reusing the buffers of an earlier copy avoids allocating (and page-faulting) a fresh
    copy of every weight at each improving epoch.
    """
    if into is not None and into.keys() == state.keys() and all(
        into[key].shape == value.shape and into[key].dtype == value.dtype for key, value in state.items()
    ):
        for key, value in state.items():
            into[key].copy_(value.detach())
        return into
    return {key: value.detach().to("cpu", copy=True) for key, value in state.items()}


class Trainer:
    """Fit a multi-animal module on paired data.

    Parameters
    ----------
    module
        A :class:`torch.nn.Module` with ``loss(xs, mask) -> dict[str, Tensor]`` whose
        ``"loss"`` entry is the scalar to minimise; every other entry is logged.
    paired
        The paired, split data (:class:`~neurovamp.data.pairing.PairedData`).
    config
        Optimisation settings; defaults when omitted.
    checkpoint_dir
        Folder for ``checkpoint.pt``; no checkpoints when ``None``.
    progress
        Show a tqdm progress bar (one step per epoch, with running losses).

    Attributes
    ----------
    device : torch.device
        Where the module and the data live during training.
    best_epoch : int
        Epoch with the lowest monitored term (0 before any epoch).
    best_score : float
        That epoch's monitored term (``inf`` before any epoch).
    epochs_run : int
        Completed epochs (including those before a resume).
    stopped_early : bool
        Whether early stopping ended training.
    monitor : str
        History column used for early stopping: ``"val/<config.monitor>"``, or
        ``"train/<config.monitor>"`` when the validation split is empty.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        paired: Any,
        config: TrainingConfig | None = None,
        *,
        checkpoint_dir: str | os.PathLike | None = None,
        progress: bool = True,
    ) -> None:
        if not hasattr(module, "loss"):
            raise ConfigError(f"{type(module).__name__} has no loss(xs, mask) method; cannot train it")
        self.module = module
        self.paired = paired
        self.config = config if config is not None else TrainingConfig()
        if not isinstance(self.config, TrainingConfig):
            raise ConfigError(f"config must be a TrainingConfig, got {type(self.config).__name__}")
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.progress = bool(progress)
        self.device = distributed.rank_device(resolve_device(self.config.device))
        self.module.to(self.device)
        # Data-parallel under a process group of several processes (models/distributed.py).
        self._dist: distributed.DataParallel | None = None
        if distributed.is_active():
            distributed.check_supported(self.config.compile)
            self._dist = distributed.DataParallel(self.module, self.device)
            self.progress = self.progress and self._dist.rank == 0
        self.optimizer = _adam(self.module, lr=self.config.lr, weight_decay=self.config.weight_decay)
        # Full training batches call this (see _training_loss); validation runs eagerly.
        self._compiled_loss = _compile_loss(self.module) if self.config.compile else None
        self._compiled = False  # whether a compiled step has run (the first one compiles)
        from neurovamp.data.tensors import TensorBatcher

        self._train = TensorBatcher(paired, "train", device=self.device)
        if self._train.n_samples == 0:
            raise DataError("the training split has no samples; check the pairing, filters and split fractions")
        self._val = self._train.for_split("val")  # shares the counts on the device
        split = "val" if self._val.n_samples > 0 else "train"
        self.monitor = f"{split}/{self.config.monitor}"
        self._history: dict[str, list] = {"epoch": []}
        self.best_epoch = 0
        self.best_score = math.inf
        self._best_state: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0
        self.epochs_run = 0
        self.stopped_early = False
        self._best_train_loss = math.inf

    # ------------------------------------------------------------------ public API
    @property
    def checkpoint_path(self) -> Path | None:
        """``checkpoint_dir / "checkpoint.pt"``, or ``None`` without a checkpoint folder."""
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME

    def history(self) -> dict[str, list]:
        """Per-epoch losses.

        Returns
        -------
        dict of lists
            ``"epoch"`` (1-based) and, for every loss term ``t`` the module reports,
            ``"train/t"`` and (when the validation split is not empty) ``"val/t"``: the
            sample-weighted mean over the epoch. Plain Python floats (JSON-serialisable).
        """
        return {key: list(values) for key, values in self._history.items()}

    def fit(self, *, resume: bool = False, overwrite: bool = False) -> dict[str, list]:
        """Train until ``config.epochs`` or early stopping.

        Parameters
        ----------
        resume
            Continue from ``checkpoint_dir/checkpoint.pt`` (model, optimizer, history,
            early-stopping state); the result equals an uninterrupted run.
        overwrite
            Allow starting afresh over an existing checkpoint (ignored with ``resume``).

        Returns
        -------
        dict of lists
            The history (see :meth:`history`).

        Raises
        ------
        TrainingError
            On a non-finite or exploding loss or gradient; the message names the epoch
            and the loss term, and the last good checkpoint is left in place. The
            module's weights are left as they were when training stopped (after a bad
            gradient, non-finite): reload the checkpoint to continue from good weights.
        ConfigError
            If ``resume`` is asked without a checkpoint folder, or the checkpoint was
            written with incompatible settings.
        OutputExistsError
            If a checkpoint exists and neither ``resume`` nor ``overwrite`` is set.
        DataError
            If ``resume`` is asked but no checkpoint exists.
        """
        cfg = self.config
        if resume:
            if self.checkpoint_dir is None:
                raise ConfigError("resume=True needs a checkpoint_dir holding checkpoint.pt")
            self._load(load_checkpoint(self.checkpoint_path, map_location=self.device))
        elif self.checkpoint_path is not None and (self._dist is None or self._dist.rank == 0):
            check_writable(self.checkpoint_path, overwrite=overwrite)
            previous = self.checkpoint_path.with_name(PREVIOUS_CHECKPOINT_NAME)
            check_writable(previous, overwrite=overwrite)
            previous.unlink(missing_ok=True)  # an earlier run's: never a fallback for this one

        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if resume:
                self._restore_rng()
            bar = tqdm(
                total=cfg.epochs,
                initial=min(self.epochs_run, cfg.epochs),
                desc="training",
                unit="epoch",
                disable=not self.progress,
                leave=False,
            )
            try:
                while self.epochs_run < cfg.epochs and not self.stopped_early:
                    epoch = self.epochs_run + 1
                    self._run_epoch(epoch, bar)
                    bar.update(1)
                    if self.checkpoint_path is not None and epoch % cfg.checkpoint_every == 0:
                        self._save()
            finally:
                bar.close()
            if self.checkpoint_path is not None:
                self._save()
        if cfg.restore_best and self._best_state is not None:
            self.module.load_state_dict(self._best_state)
        return self.history()

    # ------------------------------------------------------------------ one epoch
    def _run_epoch(self, epoch: int, bar: tqdm) -> None:
        cfg = self.config
        torch.manual_seed(_epoch_seed(cfg.seed, epoch, 0))
        generator = torch.Generator(device="cpu")
        generator.manual_seed(_epoch_seed(cfg.seed, epoch, 1))

        self.module.train()
        sums: dict[str, float] = {}
        n_total = 0
        weight = cfg.kl_weight(epoch)
        for xs, mask in self._train_batches(generator, epoch):
            terms = self._training_loss(xs, mask, bar)
            loss = terms["loss"]
            values = _term_values(terms)  # one device sync for every term
            if not n_total:
                self._check_monitor_term(values)  # fail on the first batch, not after an epoch
                if cfg.kl_warmup and "rec" not in values:
                    raise ConfigError(
                        f"TrainingConfig.kl_warmup={cfg.kl_warmup} needs a 'rec' term, but "
                        f"{type(self.module).__name__}.loss() reports only {sorted(values)}; use kl_warmup=0"
                    )
            if weight != 1.0:  # KL warm-up: rec + w * (loss - rec)
                loss = terms["rec"] + weight * (loss - terms["rec"])
            if self._dist is not None:
                loss = self._dist.scaled(loss)  # after the warm-up weighting: both terms share the rank's scale
            value = values["loss"]
            if not math.isfinite(value):
                raise TrainingError(self._nonfinite_message(epoch, terms))
            if (
                cfg.explode_factor is not None
                and math.isfinite(self._best_train_loss)
                and value > cfg.explode_factor * max(abs(self._best_train_loss), 1.0)
            ):
                raise TrainingError(
                    f"epoch {epoch}: training loss exploded to {value:.4g} (best epoch mean so far "
                    f"{self._best_train_loss:.4g}, explode_factor={cfg.explode_factor:g}); "
                    f"lower the learning rate or set max_grad_norm{self._checkpoint_note()}"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm is not None:
                norm = _clip_gradients(self.module, cfg.max_grad_norm)
                if not bool(torch.isfinite(norm)):
                    raise TrainingError(self._bad_gradient_message(epoch, f"norm {float(norm)}"))
            self.optimizer.step()
            batch = int(mask.shape[0]) if self._dist is None else self._dist.local_count
            n_total += batch
            for key, term_value in values.items():
                sums[key] = sums.get(key, 0.0) + term_value * batch
            bar.set_postfix({"epoch": epoch, "loss": f"{sums['loss'] / n_total:.4g}"}, refresh=False)

        if not _parameters_finite(self.module):
            raise TrainingError(self._bad_gradient_message(epoch, "parameters non-finite after the epoch's updates"))
        if self._dist is not None:  # epoch means over every rank's samples
            sums, n_total = self._dist.all_sum(sums, n_total)
        train_terms = {key: total / n_total for key, total in sums.items()}
        if cfg.kl_warmup:
            train_terms["kl_weight"] = weight
        val_terms = self._evaluate(self._val) if self._val.n_samples > 0 else {}
        if self._dist is not None:  # one early-stopping decision: rank 0's
            val_terms = self._dist.from_rank0(val_terms)

        self._record(epoch, "train", train_terms)
        self._record(epoch, "val", val_terms)
        self._history["epoch"].append(epoch)
        self.epochs_run = epoch
        self._best_train_loss = min(self._best_train_loss, train_terms["loss"])

        score = self._monitored_score(epoch, val_terms if val_terms else train_terms)
        if weight >= 1.0:  # during KL warm-up the objective still changes: no best epoch yet
            self._update_early_stopping(epoch, score)
        postfix = {"epoch": epoch, "loss": f"{train_terms['loss']:.4g}"}
        if val_terms:
            postfix["val"] = f"{val_terms['loss']:.4g}"
        if cfg.monitor != "loss":
            postfix[self.monitor] = f"{score:.4g}"
        bar.set_postfix(postfix, refresh=False)

    def _training_loss(self, xs: list[torch.Tensor], mask: torch.Tensor, bar: tqdm) -> dict[str, torch.Tensor]:
        """The loss terms of one training batch (compiled with ``config.compile``).

        An epoch's last, smaller batch runs eagerly: compiling a second graph for it would
        cost as long as the first compilation and save a few milliseconds per epoch.
        """
        if self._dist is not None:
            return self._dist.loss(xs, mask)
        if self._compiled_loss is None or int(mask.shape[0]) != self.config.batch_size:
            return self.module.loss(xs, mask)
        first = not self._compiled
        if first:  # the progress bar says why the first batch takes long
            bar.set_description("training (compiling the step, once)", refresh=True)
        try:
            terms = self._compiled_loss(xs, mask)
        except Exception as exc:
            if not _from_torch_compile(exc):
                raise
            if not _is_backend_failure(exc):
                # TorchDynamo wraps errors of the traced code (a shape mismatch, say): the
                # eager call raises the model's own exception with its own message.
                self.module.loss(xs, mask)
            raise ConfigError(_compile_failure_message(exc)) from exc
        if first:
            self._compiled = True
            bar.set_description("training", refresh=True)
        return terms

    def _monitored_score(self, epoch: int, terms: Mapping[str, float]) -> float:
        """The epoch's value of the monitored term (``terms`` of the watched split)."""
        self._check_monitor_term(terms)
        score = terms[self.config.monitor]
        if not math.isfinite(score):
            raise TrainingError(f"epoch {epoch}: non-finite {self.monitor} ({score}){self._checkpoint_note()}")
        return score

    def _check_monitor_term(self, terms: Mapping[str, float]) -> None:
        """ConfigError unless the module reports the monitored term."""
        name = self.config.monitor
        if name not in terms:
            raise ConfigError(
                f"TrainingConfig.monitor={name!r}, but {type(self.module).__name__}.loss() reports no "
                f"{name!r} term (it reports {sorted(terms)}); use monitor='loss'"
            )

    def _update_early_stopping(self, epoch: int, score: float) -> None:
        """Keep the best epoch (and its weights), count epochs without improvement."""
        cfg = self.config
        if score < self.best_score - cfg.min_delta:
            self.best_score = score
            self.best_epoch = epoch
            if cfg.restore_best:  # nothing else reads the best weights
                self._best_state = _state_to_cpu(self.module.state_dict(), into=self._best_state)
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
            if cfg.patience is not None and self.bad_epochs >= cfg.patience:
                self.stopped_early = True

    def _train_batches(
        self, generator: torch.Generator, epoch: int
    ) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
        # With strategy="resample" the batcher draws the epoch's pairs from
        # (paired.seed, "train", epoch); the order comes from our (seed, epoch) generator.
        batches = self._train.batches(self.config.batch_size, shuffle=True, generator=generator, epoch=epoch)
        return batches if self._dist is None else self._dist.shard(batches)

    @torch.no_grad()
    def _evaluate(self, batcher: Any) -> dict[str, float]:
        self.module.eval()
        sums: dict[str, float] = {}
        n_total = 0
        for xs, mask in batcher.batches(self.config.batch_size, shuffle=False):
            values = _term_values(self.module.loss(xs, mask))
            batch = int(mask.shape[0])
            n_total += batch
            for key, term_value in values.items():
                sums[key] = sums.get(key, 0.0) + term_value * batch
        self.module.train()
        return {key: total / n_total for key, total in sums.items()}

    def _record(self, epoch: int, split: str, terms: Mapping[str, float]) -> None:
        n_before = len(self._history["epoch"])
        for key, value in terms.items():
            column = self._history.setdefault(f"{split}/{key}", [None] * n_before)
            column.append(float(value))
        # A term missing this epoch keeps the columns aligned.
        for key, column in self._history.items():
            if key.startswith(f"{split}/") and len(column) == n_before:
                column.append(None)

    def _bad_gradient_message(self, epoch: int, detail: str) -> str:
        return (
            f"epoch {epoch}: non-finite gradient from a finite loss ({detail}); lower the learning rate, "
            f"set max_grad_norm, or check the input counts{self._checkpoint_note()}"
        )

    def _nonfinite_message(self, epoch: int, terms: Mapping[str, torch.Tensor]) -> str:
        if not _parameters_finite(self.module):  # the previous update came from a bad gradient
            return self._bad_gradient_message(epoch, "parameters non-finite after the previous update")
        bad = [key for key, value in terms.items() if not bool(torch.isfinite(value.detach()).all())]
        named = ", ".join(repr(key) for key in bad) or "'loss'"
        return (
            f"epoch {epoch}: non-finite training loss (term(s) {named}); "
            f"lower the learning rate, set max_grad_norm, or check the input counts"
            f"{self._checkpoint_note()}"
        )

    def _checkpoint_note(self) -> str:
        path = self.checkpoint_path
        if path is not None and path.is_file():
            return f"; the last good checkpoint is kept at {path}"
        return ""

    # ------------------------------------------------------------------ checkpoints
    def _rng_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = [torch.cuda.get_rng_state(self.device)]
        else:
            state["cuda"] = []
        return state

    def _restore_rng(self) -> None:
        state = getattr(self, "_resumed_rng", None)
        if not state:
            return
        torch.set_rng_state(state["torch"].to("cpu", torch.uint8))
        if self.device.type == "cuda" and state.get("cuda"):
            torch.cuda.set_rng_state(state["cuda"][0].to("cpu", torch.uint8), self.device)

    def _save(self) -> None:
        path = self.checkpoint_path
        assert path is not None
        if self._dist is not None and self._dist.rank != 0:
            return  # rank 0 writes; every rank holds the same state
        payload = {
            "format": _CHECKPOINT_FORMAT,
            "version": _CHECKPOINT_VERSION,
            "epoch": self.epochs_run,
            "model_state": _state_to_cpu(self.module.state_dict()),
            "optimizer_state": self.optimizer.state_dict(),
            "history": self.history(),
            "best_state": self._best_state,
            "best_epoch": self.best_epoch,
            "best_score": self.best_score,
            "bad_epochs": self.bad_epochs,
            "stopped": self.stopped_early,
            "best_train_loss": self._best_train_loss,
            "config": self.config.to_dict(),
            "rng": self._rng_state(),
        }
        with atomic_output(path, overwrite=True) as tmp:
            torch.save(payload, tmp)
            # keep the last two epochs' checkpoints: a corrupt latest one falls back to the one before;
            # copied, not moved, so that the latest never vanishes between the two renames
            if path.is_file() and getattr(self, "_saved_epoch", None) != self.epochs_run:
                keep_copy(path, path.with_name(PREVIOUS_CHECKPOINT_NAME))
        self._saved_epoch = self.epochs_run

    def _load(self, state: Mapping[str, Any]) -> None:
        changed = resume_conflicts(dict(state.get("config", {})), self.config.to_dict())
        if changed:
            details = ", ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changed.items())
            raise ConfigError(
                f"{self.checkpoint_path}: cannot resume with different training settings ({details}); "
                f"only {', '.join(RESUMABLE_FIELDS)} may change"
            )
        try:
            self.module.load_state_dict(state["model_state"])
            if state.get("best_state") is not None:
                # Checked now so that a mismatch fails before training, not at the end.
                copy.deepcopy(self.module).load_state_dict(state["best_state"])
            self.optimizer.load_state_dict(state["optimizer_state"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise DataError(
                f"{self.checkpoint_path}: checkpoint does not match this model ({exc}); "
                f"was it written for a different model or data?"
            ) from exc
        self._history = {key: list(values) for key, values in state["history"].items()}
        best = state.get("best_state")  # loaded onto the training device; kept on the CPU
        self._best_state = _state_to_cpu(best) if best is not None else None
        self.best_epoch = int(state["best_epoch"])
        self.best_score = float(state["best_score"])
        self.bad_epochs = int(state["bad_epochs"])
        self.stopped_early = bool(state["stopped"])
        self.epochs_run = int(state["epoch"])
        self._best_train_loss = float(state.get("best_train_loss", math.inf))
        self._resumed_rng = state.get("rng")
        # If patience grew on resume, a run stopped early may continue.
        if self.stopped_early and (self.config.patience is None or self.bad_epochs < self.config.patience):
            self.stopped_early = False


def fit_module(
    module: torch.nn.Module,
    paired: Any,
    config: TrainingConfig | None = None,
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, list]:
    """Train ``module`` on ``paired`` (functional form of :class:`Trainer`).

    Parameters
    ----------
    module
        Module with ``loss(xs, mask) -> dict[str, Tensor]``; trained in place and left
        on the training device, holding the best weights when ``config.restore_best``.
    paired
        The paired, split data (:class:`~neurovamp.data.pairing.PairedData`).
    config
        Optimisation settings; defaults when omitted.
    checkpoint_dir
        Folder for ``checkpoint.pt``; no checkpoints when ``None``.
    resume
        Continue from the checkpoint in ``checkpoint_dir``.
    overwrite
        Allow replacing an existing checkpoint when not resuming.
    progress
        Show a tqdm progress bar.

    Returns
    -------
    dict of lists
        Per-epoch history (see :meth:`Trainer.history`).
    """
    trainer = Trainer(module, paired, config, checkpoint_dir=checkpoint_dir, progress=progress)
    return trainer.fit(resume=resume, overwrite=overwrite)
