"""Sub-windows of a trial: where they start, how they are cut, how predictions are merged.

A trial of ``n_bins`` bins is seen by the models as runs of ``window`` consecutive bins
(*sub-windows*). This module holds every rule about them, used by the data layer
(:func:`neurovamp.data.pairing.pair_trials` picks the training offsets) and by the
estimator (:class:`neurovamp.models.estimator.MultiAnimalModel` cuts new data and merges
the predictions of overlapping sub-windows back into one trace per trial).

Why predictions use every offset
--------------------------------
Training with ``stride = s > 1`` uses the offsets ``0, s, 2s, ...``, so position ``p`` of
a sub-window only ever holds bins ``b`` with ``b ≡ p (mod s)``: the decoder's weights for
position ``p`` are fitted on one residue class of bins. Decoding only those same offsets
predicts every bin from positions of a single class (bin 4 from positions 0, 2, 4, ...;
bin 5 from 1, 3, 5, ...), and any difference the classes' weights learnt (sampling noise of
the per-unit, per-position means, at the least) shows as a period-``s`` pattern in the
merged trace: the sawtooth at stride 2. :func:`prediction_starts` therefore returns every
offset (stride 1) whatever the training stride: each bin is predicted from every position
of the sub-window, and every bin, the last ones too, is covered.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from neurovamp.errors import ConfigError

__all__ = ["window_starts", "prediction_starts", "cut", "overlap_average", "window_centres"]


def window_starts(n_bins: int, window: Any, stride: Any) -> tuple[int, int, np.ndarray]:
    """Sub-window length, stride and offsets used for training.

    Parameters
    ----------
    n_bins
        Bins per trial.
    window
        Sub-window length in bins, or ``None`` for whole trials.
    stride
        Bins between consecutive offsets (a positive integer).

    Returns
    -------
    window, stride, starts
        ``window`` (``n_bins`` when None), ``stride`` and the offsets
        ``0, stride, 2 * stride, ... <= n_bins - window`` (int64).

    Raises
    ------
    ConfigError
        A window or stride that is not a positive integer, or a window longer than a trial.
    """
    if isinstance(stride, bool) or not isinstance(stride, numbers.Integral) or stride < 1:
        raise ConfigError(f"stride must be a positive integer (bins), got {stride!r}")
    if window is None:
        return int(n_bins), int(stride), np.zeros(1, dtype=np.int64)
    if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 1:
        raise ConfigError(
            f"window (the sub-window length, CLI --subwindow) must be a positive integer (bins) or None, "
            f"got {window!r}"
        )
    if window > n_bins:
        raise ConfigError(
            f"sub-window of {window} bins (window={window}, CLI --subwindow) is longer than the "
            f"{n_bins} bins of each trial"
        )
    return int(window), int(stride), np.arange(0, n_bins - window + 1, stride, dtype=np.int64)


def prediction_starts(n_bins: int, window: int) -> np.ndarray:
    """Every offset of a ``window``-bin sub-window in ``n_bins`` bins (stride 1).

    The offsets to decode when predicting whole traces (see the module docstring): every
    bin is covered, and by every position of the sub-window where the trial allows.

    Parameters
    ----------
    n_bins
        Bins per trial.
    window
        Sub-window length in bins (at most ``n_bins``).

    Returns
    -------
    numpy.ndarray
        ``0, 1, ..., n_bins - window`` (int64).
    """
    _, _, starts = window_starts(n_bins, window, 1)
    return starts


def cut(values: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Sub-windows of ``(..., unit, bin)`` values as ``(..., n_windows, unit, window)``.

    Parameters
    ----------
    values
        Array whose last axis is time bins.
    starts
        Offsets of the sub-windows.
    window
        Sub-window length.

    Returns
    -------
    numpy.ndarray
        A copy, ``(..., len(starts), unit, window)``; flattened per sample it is the
        ``(unit, time)`` row-major order the models use.
    """
    views = np.lib.stride_tricks.sliding_window_view(values, window, axis=-1)[..., np.asarray(starts), :]
    return np.ascontiguousarray(np.moveaxis(views, -2, -3))


def overlap_average(pred: np.ndarray, starts: np.ndarray, n_bins: int) -> np.ndarray:
    """Merge per-sub-window predictions into one trace per bin by averaging overlaps.

    Parameters
    ----------
    pred
        ``(..., n_windows, unit, window)`` predictions of the sub-windows at ``starts``.
    starts
        Offsets of the sub-windows.
    n_bins
        Length of the merged trace.

    Returns
    -------
    numpy.ndarray
        ``(..., unit, n_bins)``: bin ``b`` is the mean, over the sub-windows covering it,
        of each one's prediction at position ``b - start``; NaN where none covers it (never
        with :func:`prediction_starts`).
    """
    pred = np.asarray(pred, dtype=np.float64)
    starts = np.asarray(starts, dtype=np.int64)
    w = pred.shape[-1]
    if pred.shape[-3] != starts.size:
        raise ValueError(f"pred holds {pred.shape[-3]} sub-windows but {starts.size} offsets were given")
    total = np.zeros(pred.shape[:-3] + pred.shape[-2:-1] + (n_bins,))
    cover = np.zeros(n_bins)
    for j, start in enumerate(starts):
        total[..., start : start + w] += pred[..., j, :, :]
        cover[start : start + w] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cover > 0, total / np.maximum(cover, 1), np.nan)


def window_centres(time: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Centre of every sub-window: the mean of its bins' times.

    Parameters
    ----------
    time
        Bin centres ``(n_bins,)``.
    starts
        Offsets of the sub-windows.
    window
        Sub-window length.

    Returns
    -------
    numpy.ndarray
        ``(len(starts),)`` float64.
    """
    t = np.asarray(time, dtype=float)
    return np.array([t[s : s + window].mean() for s in np.asarray(starts)])
