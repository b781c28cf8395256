"""Data-parallel training on torch.distributed (DistributedDataParallel, gloo or NCCL).

Three ways in, one code path:

- ``MultiAnimalModel.fit(paired, nproc=N)`` (CLI: ``neurovamp fit ... --nproc N``) starts N
  local processes with torch.distributed's own elastic launcher
  (:func:`torch.distributed.launcher.api.elastic_launch`, what ``torchrun`` runs; c10d
  rendezvous on a free local port) and returns rank 0's fitted model (:func:`launch`).
- Under ``torchrun`` (one process per GPU or CPU slot, one or many nodes) each process
  reads ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT`` from the environment;
  :func:`init_from_env` initialises the process group (NCCL when CUDA is available, else
  gloo) the first time a fit runs.
- Under a process group the caller initialised, :class:`~neurovamp.models.training.Trainer`
  trains data-parallel as soon as the world has more than one process.

What every rank does (:class:`DataParallel`, hooked into the Trainer):

- Every rank builds the same global batches (the epoch's order comes from the seed) and
  draws the same reparameterisation noise for the whole global batch; rank r keeps its
  contiguous share of each batch (``torch.tensor_split``: sizes differ by at most one).
  A rank's loss is scaled by ``world * n_local / n_global`` before DDP averages the
  gradients, so the update is that of the global batch mean: a DDP fit equals a
  single-process fit with the same batch size up to float rounding (for the models whose
  only randomness is that Gaussian noise: ``mmvm``, ``independent``, ``poe``, ``avg`` without
  dropout; ``moe``/``mopoe`` pick mixture components, and dropout draws masks, per rank:
  deterministic for a given world size, not equal to one process).
- Epoch means of the training terms are summed over ranks (``all_reduce``); validation
  terms are rank 0's, broadcast, so early stopping and best-weight tracking agree.
- Rank 0 writes checkpoints; every rank reads the same checkpoint to resume. The progress
  bar shows on rank 0 only.

No parameter server and no hand-made communication: gradients are averaged by
:class:`torch.nn.parallel.DistributedDataParallel`, collectives are torch.distributed's.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch import distributed as dist

from neurovamp.errors import ConfigError, NeurovampError, TrainingError

__all__ = [
    "DataParallel",
    "is_active",
    "is_writer",
    "init_from_env",
    "launch",
    "rank_device",
    "world",
    "check_nproc",
]


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_active() -> bool:
    """Whether a process group with more than one process is initialised."""
    return world()[1] > 1


def is_writer() -> bool:
    """Whether this process writes outputs: rank 0 of the group, or of ``torchrun``'s ``RANK``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def _backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def init_from_env() -> bool:
    """Initialise the process group from ``torchrun``'s environment, once.

    Returns
    -------
    bool
        True when this call initialised it (``WORLD_SIZE`` > 1 and no group yet);
        False when a group already exists or the process runs alone.
    """
    if not dist.is_available() or dist.is_initialized():
        return False
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = _backend()
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return True


def rank_device(device: torch.device) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` for CUDA under a group, else ``device``."""
    if device.type == "cuda" and is_active() and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def check_nproc(nproc: Any) -> int:
    """``nproc`` as a positive int, or ConfigError naming it."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"nproc must be a positive integer (processes to train on), got {nproc!r}")
    return int(nproc)


# ----------------------------------------------------------------------------- launching
def _worker(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """One process of :func:`launch`: join the group, run ``fn``, return its value on rank 0."""
    if "OMP_NUM_THREADS" in os.environ:
        torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))
    init_from_env()
    try:
        value = fn(*args, **kwargs)
        return value if world()[0] == 0 else None
    except NeurovampError as exc:  # the parent re-raises it by class and message
        raise RuntimeError(f"neurovamp-error:{type(exc).__name__}:{exc}") from exc
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _reraise(failure: BaseException) -> None:
    """Turn a failed launch into the worker's NeurovampError (or a TrainingError)."""
    import neurovamp.errors as errors

    text = str(failure)
    for candidate in getattr(failure, "failures", {}).values():
        message = getattr(candidate, "message", "")
        if isinstance(message, dict):
            message = message.get("message", "")
        text = str(message) or text
        break
    marker = "neurovamp-error:"
    if marker in text:
        name, _, message = text.split(marker, 1)[1].partition(":")
        message = message.strip().splitlines()[0] if message.strip() else message
        cls = getattr(errors, name, None)
        if isinstance(cls, type) and issubclass(cls, NeurovampError):
            raise cls(message) from None
    first = text.strip().splitlines()[0] if text.strip() else type(failure).__name__
    raise TrainingError(f"distributed training failed: {first}") from None


def launch(fn: Callable[..., Any], nproc: int, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` in ``nproc`` local processes of one process group.

    Uses :func:`torch.distributed.launcher.api.elastic_launch` (torchrun's launcher) with
    a c10d rendezvous on a free local port and no restarts; the processes start with
    ``spawn``, so ``fn`` and its arguments must be picklable. NCCL when CUDA is
    available, else gloo.

    Parameters
    ----------
    fn
        Module-level function to run on every rank.
    nproc
        Number of processes (>= 1).
    *args, **kwargs
        Passed to ``fn``.

    Returns
    -------
    Any
        What ``fn`` returned on rank 0.

    Raises
    ------
    NeurovampError
        The error a rank raised (same class and message), or a TrainingError naming the
        failure when a rank died otherwise.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    nproc = check_nproc(nproc)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",
    )
    saved = dict(os.environ)
    os.environ["OMP_NUM_THREADS"] = saved.get("OMP_NUM_THREADS", "1")  # the spawned workers inherit it
    try:
        results = elastic_launch(config, _worker)(fn, args, kwargs)
    except ChildFailedError as exc:
        _reraise(exc)
    finally:  # the environment as it was: this and torch's launcher's variables (TORCHELASTIC_*) go
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)
    return results[0]


# ----------------------------------------------------------------------------- the Trainer's hooks
class _LossModule(nn.Module):
    """``forward(xs, mask, eps)`` = ``module.loss(xs, mask, eps=eps)``: what DDP wraps."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, xs: Sequence[Tensor], mask: Tensor, eps: Tensor | None) -> dict[str, Tensor]:  # noqa: D102
        if eps is None:
            return self.module.loss(xs, mask)
        return self.module.loss(xs, mask, eps=eps)


class DataParallel:
    """What a :class:`~neurovamp.models.training.Trainer` does differently under a process group.

    Parameters
    ----------
    module
        The trained module (already on ``device``), with ``loss(xs, mask, eps=...)``.
    device
        This rank's device.
    """

    def __init__(self, module: nn.Module, device: torch.device) -> None:
        self.rank, self.world_size = world()
        self.device = device
        ids = [device.index] if device.type == "cuda" else None
        self.ddp = nn.parallel.DistributedDataParallel(_LossModule(module), device_ids=ids, forward_sync_buffers=False)
        vae = getattr(module, "vae", module)
        config = getattr(vae, "config", None)
        self._noise: tuple[bool, int, int] | None = None
        if config is not None and hasattr(vae, "n_animals"):
            self._noise = (bool(config.is_joint), int(vae.n_animals), int(config.latent_dim))
        self._dtype = next(module.parameters()).dtype
        self._eps: Tensor | None = None
        self._weight = 1.0
        self.local_count = 0

    def shard(self, batches: Iterator[tuple[list[Tensor], Tensor]]) -> Iterator[tuple[list[Tensor], Tensor]]:
        """This rank's share of every global batch (the same global batches on every rank)."""
        for xs, mask in batches:
            n = int(mask.shape[0])
            eps = None
            if self._noise is not None:  # the global batch's noise, as one process draws it
                joint, n_animals, k = self._noise
                shape = (n, k) if joint else (n_animals, n, k)
                eps = torch.randn(shape, dtype=self._dtype, device=mask.device)
            bounds = torch.tensor_split(torch.arange(n), self.world_size)[self.rank]
            lo, hi = (int(bounds[0]), int(bounds[-1]) + 1) if bounds.numel() else (0, 1)
            self.local_count = int(bounds.numel())
            self._weight = self.world_size * self.local_count / n  # 0 for an empty share
            if eps is not None:
                self._eps = eps[lo:hi] if eps.dim() == 2 else eps[:, lo:hi]
            yield [x[lo:hi] for x in xs], mask[lo:hi]

    def loss(self, xs: Sequence[Tensor], mask: Tensor) -> dict[str, Tensor]:
        """The module's loss terms on this rank's share, through DDP."""
        return self.ddp(xs, mask, self._eps)

    def scaled(self, loss: Tensor) -> Tensor:
        """The loss to backpropagate: DDP's gradient average is then the global batch mean's."""
        return loss * self._weight

    def all_sum(self, sums: Mapping[str, float], count: int) -> tuple[dict[str, float], int]:
        """Sample-weighted term sums and sample counts summed over ranks."""
        keys = list(sums)  # the same order on every rank: the module's
        values = torch.tensor([float(count)] + [sums[k] for k in keys], dtype=torch.float64)
        values = values.to(self._collective_device())
        dist.all_reduce(values)
        values = values.cpu().tolist()
        return dict(zip(keys, values[1:])), int(round(values[0]))

    def from_rank0(self, terms: Mapping[str, float]) -> dict[str, float]:
        """Rank 0's ``terms`` on every rank (validation: one early-stopping decision)."""
        box = [dict(terms)]
        dist.broadcast_object_list(box, src=0, device=self._collective_device())
        return box[0]

    def _collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def check_supported(compile: bool) -> None:
    """ConfigError for training settings DDP does not support here."""
    if compile:
        raise ConfigError(
            "TrainingConfig.compile=True is not supported with data-parallel training (nproc > 1 or a "
            "process group); train with compile=False"
        )

