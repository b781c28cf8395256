"""Torch batches of paired, sub-windowed samples, built by pure tensor indexing.

:class:`TensorBatcher` copies each animal's counts to the device once, with one extra
all-zero trial row at the end that stands in for a missing animal, and keeps a
``Tensor.unfold`` view of the sub-windows ``(trial, window, unit, bin)``, materialised as
a contiguous ``(trial * window, unit * bin)`` table when it fits a memory budget. A batch
is then one gather per animal (row ``row_of_pair * n_windows + window``), flattened
``(unit, time)`` row-major, so ``x[b].reshape(n_units, window)`` is the sub-window.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch

from neurovamp.data.pairing import SPLITS, PairedData
from neurovamp.errors import ConfigError

__all__ = ["TensorBatcher", "MATERIALIZE_BYTES", "training_data_bytes"]

_SHUFFLE_STREAM = 2
#: Default budget of the contiguous sub-window tables of :class:`TensorBatcher`.
MATERIALIZE_BYTES = 2**30


def _table_bytes(paired: PairedData, itemsize: int) -> int:
    """Bytes of every animal's sub-window table as :class:`TensorBatcher` lays it out:
    ``(n_trials_m + 1) * n_windows`` rows (one zero trial) of ``n_units_m * window`` values."""
    return itemsize * sum((c.shape[0] + 1) * c.shape[1] for c in paired.counts) * paired.n_windows * paired.window


def training_data_bytes(paired: PairedData, latent_dim: int, materialize_bytes: int = MATERIALIZE_BYTES) -> float:
    """Memory a fit and its evaluation need for the paired data (estimate, float32).

    What :class:`TensorBatcher` and the evaluation of a fit allocate beyond the binned
    counts: the counts on the device (one zero row per animal), the sub-window tables when
    they fit ``materialize_bytes``, one whole split gathered as a batch (every sub-window
    of every pair at most, :meth:`TensorBatcher.all`), and each sample's latent mean and
    variance. Sub-windows at stride 1 of fine bins multiply the data by the sub-window
    length: the estimate lets a fit refuse them before allocating.

    Parameters
    ----------
    paired
        Output of :func:`~neurovamp.data.pairing.pair_trials`.
    latent_dim
        Latent dimensions of the model.
    materialize_bytes
        The tables' budget (as :class:`TensorBatcher` takes it).

    Returns
    -------
    float
        Bytes.
    """
    rows = [(c.shape[0] + 1) * c.shape[1] for c in paired.counts]
    counts = 4.0 * sum(rows) * paired.n_bins
    windows = float(_table_bytes(paired, 4))
    table = windows if windows <= materialize_bytes else 0.0
    samples = sum(paired.n_samples(split) for split in SPLITS)
    latents = float(samples) * len(rows) * (2 * 4 * int(latent_dim) + 9)  # mean, variance; row index and mask
    return counts + table + windows + latents


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class TensorBatcher:
    """Batches of one split of a :class:`~neurovamp.data.pairing.PairedData` as tensors.

    Parameters
    ----------
    paired
        Output of :func:`~neurovamp.data.pairing.pair_trials`.
    split
        ``"train"``, ``"val"`` or ``"test"``.
    device
        Torch device the counts live on (moved once, here).
    dtype
        Floating dtype of the batches.
    materialize_bytes
        Copy the sub-windows into one contiguous ``(sample, feature)`` table per animal
        when all of them together take at most this many bytes (faster batches); above
        it, batches are gathered from a strided view of the counts (no copy).

    Notes
    -----
    A sample is (pair, sub-window); sample ``i`` of an epoch is pair ``i // n_windows``,
    sub-window ``i % n_windows`` (the *canonical order*, also that of :meth:`all` and
    :meth:`sample_info`). Missing animals yield zeros and ``mask`` False.
    """

    def __init__(self, paired: PairedData, split: str, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, materialize_bytes: int = MATERIALIZE_BYTES) -> None:
        if not isinstance(paired, PairedData):
            raise ConfigError(f"paired must be a PairedData (from pair_trials), got {type(paired).__name__}")
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ConfigError(f"dtype must be a floating torch dtype, got {dtype!r}")
        if isinstance(materialize_bytes, bool) or not isinstance(materialize_bytes, numbers.Integral) \
                or materialize_bytes < 0:
            raise ConfigError(f"materialize_bytes must be a non-negative integer, got {materialize_bytes!r}")
        self.paired = paired
        self.split = split
        self.device = torch.device(device)
        self.dtype = dtype
        tensors = []
        for counts in paired.counts:
            padded = np.zeros((counts.shape[0] + 1,) + counts.shape[1:], dtype=np.float32)
            padded[:-1] = counts
            tensors.append(torch.from_numpy(padded).to(device=self.device, dtype=dtype))
        #: per animal, ``(n_trials_m + 1, n_units_m, n_bins)`` on the device; last row zeros.
        self.tensors: tuple[torch.Tensor, ...] = tuple(tensors)
        # (n_trials_m + 1, n_windows, n_units_m, window): views, no copy.
        self._views = tuple(
            t.unfold(2, paired.window, paired.stride).permute(0, 2, 1, 3) for t in self.tensors
        )
        # The same sub-windows materialised as rows ``(n_trials_m + 1) * n_windows`` x D when
        # they fit in ``materialize_bytes``: a batch is then one contiguous row gather per
        # animal (about 7x faster than gathering 10-bin pieces from the strided view).
        itemsize = torch.empty((), dtype=dtype).element_size()
        table_bytes = _table_bytes(paired, itemsize)
        self._tables: tuple[torch.Tensor, ...] | None = None
        if table_bytes <= materialize_bytes:
            self._tables = tuple(v.reshape(v.shape[0] * v.shape[1], v.shape[2] * v.shape[3]) for v in self._views)
        self._missing_row = torch.tensor([c.shape[0] for c in paired.counts], device=self.device)
        self._epoch: int | None = None
        self._rows: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None
        self._epoch_tensors(0)

    def for_split(self, split: str) -> TensorBatcher:
        """A batcher of another split of the same data, sharing this one's device memory.

        The counts (and the sub-window tables) are copied to the device once and used by
        both batchers; only the split's pairs and masks are new.

        Parameters
        ----------
        split
            ``"train"``, ``"val"`` or ``"test"``.

        Returns
        -------
        TensorBatcher
        """
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        other = copy.copy(self)
        other.split = split
        other._epoch, other._rows, other._mask = None, None, None
        other._epoch_tensors(0)
        return other

    # -- sizes ---------------------------------------------------------------------------
    @property
    def n_windows(self) -> int:
        """Sub-windows per pair."""
        return self.paired.n_windows

    @property
    def n_samples(self) -> int:
        """Samples (pair × sub-window) in the split."""
        return self.paired.n_samples(self.split)

    @property
    def input_dims(self) -> tuple[int, ...]:
        """Width of each animal's flattened sample."""
        return self.paired.input_dims

    def __len__(self) -> int:
        """Number of samples (use :meth:`n_batches` for the number of batches)."""
        return self.n_samples

    def n_batches(self, batch_size: int, drop_last: bool = False) -> int:
        """Number of batches an epoch yields.

        Parameters
        ----------
        batch_size
            Samples per batch.
        drop_last
            Whether a last, incomplete batch is dropped.

        Returns
        -------
        int
        """
        batch_size = _positive_int(batch_size, "batch_size")
        return self.n_samples // batch_size if drop_last else -(-self.n_samples // batch_size)

    # -- internals -----------------------------------------------------------------------
    def _epoch_tensors(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pair rows (``-1`` replaced by the zero row) and mask on the device."""
        fixed = self.paired.strategy != "resample"
        if self._rows is None or (not fixed and self._epoch != epoch):
            pairs = torch.as_tensor(self.paired.epoch_pairs(self.split, epoch).copy(), device=self.device)
            mask = pairs >= 0
            self._rows = torch.where(mask, pairs, self._missing_row.unsqueeze(0).expand_as(pairs))
            self._mask = mask
            self._epoch = epoch
        return self._rows, self._mask

    def _gather(self, index: torch.Tensor, rows: torch.Tensor,
                mask: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        pair = torch.div(index, self.n_windows, rounding_mode="floor")
        win = index - pair * self.n_windows
        xs = []
        for m, view in enumerate(self._views):
            if self._tables is not None:
                xs.append(self._tables[m].index_select(0, rows[pair, m] * self.n_windows + win))
            else:
                xs.append(view[rows[pair, m], win].reshape(index.shape[0], view.shape[2] * view.shape[3]))
        return xs, mask[pair]

    def _shuffle_seed(self, epoch: int) -> int:
        seq = np.random.SeedSequence([self.paired.seed, _SHUFFLE_STREAM, SPLITS.index(self.split), epoch])
        return int(seq.generate_state(1, dtype=np.uint64)[0] >> 1)

    # -- batches -------------------------------------------------------------------------
    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
        epoch: int = 0,
        drop_last: bool = False,
        return_index: bool = False,
    ) -> Iterator[tuple]:
        """Iterate over one epoch of the split.

        Parameters
        ----------
        batch_size
            Samples per batch.
        shuffle
            Visit samples in random order (each exactly once per epoch).
        generator
            Torch generator of the order; ``None`` seeds one from ``(paired.seed, split,
            epoch)``, so epochs are reproducible.
        epoch
            Epoch number; with ``strategy="resample"`` it selects the epoch's pairs
            (:meth:`PairedData.epoch_pairs`).
        drop_last
            Drop a last batch smaller than ``batch_size``.
        return_index
            Also yield the samples' canonical indices (rows of :meth:`sample_info`).

        Yields
        ------
        xs : list of torch.Tensor
            Per animal, ``(B, n_units_m * window)``; zeros for missing animals.
        mask : torch.Tensor
            ``(B, M)`` bool, True where the animal is observed.
        index : torch.Tensor
            ``(B,)`` int64 sample indices, only with ``return_index=True``.
        """
        batch_size = _positive_int(batch_size, "batch_size")
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ConfigError(f"epoch must be a non-negative integer, got {epoch!r}")
        epoch = int(epoch)
        rows, mask = self._epoch_tensors(epoch)
        n = self.n_samples
        if shuffle:
            if generator is None:
                generator = torch.Generator().manual_seed(self._shuffle_seed(epoch))
            order = torch.randperm(n, generator=generator, device=generator.device).to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        stop = n - n % batch_size if drop_last else n
        return self._iterate(order, stop, batch_size, rows, mask, return_index)

    def _iterate(self, order: torch.Tensor, stop: int, batch_size: int, rows: torch.Tensor,
                 mask: torch.Tensor, return_index: bool) -> Iterator[tuple]:
        for start in range(0, stop, batch_size):
            index = order[start:min(start + batch_size, stop)]
            xs, batch_mask = self._gather(index, rows, mask)
            yield (xs, batch_mask, index) if return_index else (xs, batch_mask)

    def all(self, epoch: int = 0) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The whole split as one batch, in canonical order (for evaluation).

        Parameters
        ----------
        epoch
            Epoch whose pairs are used (matters for ``strategy="resample"`` only).

        Returns
        -------
        xs, mask
            As yielded by :meth:`batches`, with ``B = n_samples``.
        """
        rows, mask = self._epoch_tensors(int(epoch))
        return self._gather(torch.arange(self.n_samples, device=self.device), rows, mask)

    def sample_info(self, epoch: int = 0) -> pd.DataFrame:
        """Label every sample of the split (canonical order, as :meth:`all`).

        Parameters
        ----------
        epoch
            Epoch whose pairs are described (matters for ``strategy="resample"`` only).

        Returns
        -------
        pandas.DataFrame
            One row per sample with columns ``pair`` (row of the split's pairs),
            ``window`` (sub-window index), ``window_start`` (first bin of the sub-window),
            ``time`` (sub-window centre, seconds on the modalities' time axis),
            ``condition`` and, per animal, ``trial/<animal>``: the trial id (``<NA>`` when
            the animal is missing from the pair).
        """
        paired = self.paired
        pairs = paired.epoch_pairs(self.split, int(epoch))
        pair, win = paired.samples(self.split)
        info = {
            "pair": pair,
            "window": win,
            "window_start": paired.window_starts[win],
            "time": paired.window_centres[win],
            "condition": paired.pair_condition[self.split][pair],
        }
        for m, animal in enumerate(paired.animals):
            rows = pairs[pair, m]
            ids = np.asarray(paired.modalities[animal]["trial"].values)
            present = rows >= 0
            values = ids[np.where(present, rows, 0)] if ids.size else np.zeros(rows.size, dtype=np.int64)
            column = pd.array(values, dtype="Int64" if np.issubdtype(ids.dtype, np.integer) else object)
            column[~present] = pd.NA
            info[f"trial/{animal}"] = column
        return pd.DataFrame(info)

    def __repr__(self) -> str:
        return (
            f"TensorBatcher(split={self.split!r}, n_samples={self.n_samples}, animals={self.paired.animals}, "
            f"device={str(self.device)!r}, dtype={self.dtype})"
        )
