"""Sub-window samples and their stitching back into whole trials, as neurovamp cuts them.

neurovamp's estimator cuts each trial into ``window``-bin sub-windows starting at
``PairedData.window_starts`` and flattens one sample as ``(unit, time)`` row-major; its
``generate`` averages the predictions of overlapping sub-windows per bin. The peers'
adapters use the same two rules so that every method sees and returns the same samples.
"""

from __future__ import annotations

import numpy as np


def cut(counts: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """``(trial, unit, time)`` → ``(trial, n_windows, unit * window)`` float32 samples.

    Parameters
    ----------
    counts
        One animal's counts ``(trial, unit, time)``.
    starts
        First bin of every sub-window.
    window
        Sub-window length in bins.

    Returns
    -------
    numpy.ndarray
        Samples flattened ``(unit, time)`` row-major, as neurovamp's batches.
    """
    counts = np.asarray(counts, dtype=np.float32)
    views = np.lib.stride_tricks.sliding_window_view(counts, window, axis=2)[:, :, np.asarray(starts), :]
    n_trials, n_units = counts.shape[:2]
    return np.ascontiguousarray(views.transpose(0, 2, 1, 3)).reshape(n_trials, len(starts), n_units * window)


def stitch(pred: np.ndarray, starts: np.ndarray, window: int, n_bins: int) -> np.ndarray:
    """``(trial, n_windows, unit * window)`` predictions → ``(trial, unit, n_bins)``.

    Bins covered by several sub-windows get the mean of their predictions; bins no
    sub-window covers are NaN.

    Parameters
    ----------
    pred
        Predicted expected counts per sample.
    starts, window
        As in :func:`cut`.
    n_bins
        Bins of a whole trial.

    Returns
    -------
    numpy.ndarray
        Expected counts per bin.
    """
    n_trials, n_windows, width = pred.shape
    n_units = width // window
    pred = pred.reshape(n_trials, n_windows, n_units, window)
    total = np.zeros((n_trials, n_units, n_bins))
    cover = np.zeros(n_bins)
    for j, start in enumerate(np.asarray(starts)):
        total[:, :, start : start + window] += pred[:, j]
        cover[start : start + window] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cover > 0, total / np.maximum(cover, 1), np.nan)
