"""Recordings in: NWB files and saved sets binned alike into one multi-animal set.

:func:`load_recordings` is the one entry point that opens NWB files for the layers above
(the pipelines and the command line); it lives in ``io`` because ``io`` depends on
``data`` (the modality and the multi-animal set) and never the reverse.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurovamp._budget import check_memory
from neurovamp.data.dataset import DATASET_SUFFIXES, dataset_nodes, make_dataset
from neurovamp.data.modality import COUNTS
from neurovamp.errors import DataError
from neurovamp.io.nwb import read_nwb_dataset
from neurovamp.io.settings import RECORDING_DEFAULTS as _DEFAULTS
from neurovamp.io.sizes import nwb_spike_span, nwb_table_sizes

__all__ = ["load_recordings"]


def load_recordings(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    event: str = _DEFAULTS.event,
    window: tuple[float, float] = _DEFAULTS.window,
    bin_size: float = _DEFAULTS.bin_size,
    labels: Sequence[str] | None = _DEFAULTS.labels,
    allow_silent_units: bool = _DEFAULTS.allow_silent_units,
    drop_missing_events: bool = _DEFAULTS.drop_missing_events,
    trials: str | None = _DEFAULTS.trials,
    event_relative_to: str | None = _DEFAULTS.event_relative_to,
    units: Mapping[str, Any] | None = _DEFAULTS.units,
    behavior: str | Sequence[str] | None = _DEFAULTS.behavior,
    windows: float | None = _DEFAULTS.windows,
    drop_uncovered: bool = _DEFAULTS.drop_uncovered,
) -> xr.DataTree:
    """Load NWB files and/or saved datasets into one multi-animal set.

    Parameters
    ----------
    paths
        One path or several: NWB files (one animal, or one session of an animal, each)
        and/or a saved dataset (suffix ``.nc``, ``.nc4`` or ``.netcdf``).
    event, window, bin_size, allow_silent_units, drop_missing_events, trials, event_relative_to, units, windows
        Binning of NWB files, as in :func:`neurovamp.io.nwb.read_nwb`. A saved dataset
        keeps its own bins; mixing it with NWB files requires the same bins.
    behavior, drop_uncovered
        Behaviour series read beside the counts, as in
        :func:`neurovamp.io.nwb.read_nwb_dataset` (see :func:`neurovamp.data.dataset.get_behavior`).
    labels
        Trial label columns to keep (all when ``None``); applied to NWB files and saved
        datasets alike.

    Returns
    -------
    xarray.DataTree
        The set (see :func:`neurovamp.data.dataset.make_dataset`). Several NWB files of one subject (different
        sessions) are distinct animals named ``<subject>_<session>`` (the session id,
        or the file stem when the file has none).

    Raises
    ------
    DataError
        For unreadable files, missing labels, an animal id that appears twice (in a
        saved dataset and a file, or the same session twice), or "mismatched bins"
        across animals.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise DataError("no recordings given; expected NWB files or a saved dataset (.nc)")
    _check_binning_memory([p for p in paths if p.suffix.lower() not in DATASET_SUFFIXES], window, bin_size,
                          trials=trials, windows=windows)
    modalities: list[xr.Dataset] = []
    from_nwb: list[int] = []
    for path in paths:
        if path.is_dir():
            raise DataError(f"{path}: is a folder; expected an NWB file or a saved dataset (.nc)")
        if path.suffix.lower() in DATASET_SUFFIXES:
            modalities.extend(dataset_nodes(path, labels))
        else:
            from_nwb.append(len(modalities))
            modalities.append(
                read_nwb_dataset(
                    path, event=event, window=window, bin_size=bin_size, labels=labels,
                    allow_silent_units=allow_silent_units, drop_missing_events=drop_missing_events,
                    trials=trials, event_relative_to=event_relative_to, units=units, windows=windows,
                    behavior=behavior, drop_uncovered=drop_uncovered,
                )
            )
    _name_sessions([modalities[i] for i in from_nwb])
    return make_dataset(modalities)


def _name_sessions(nodes: Sequence[xr.Dataset]) -> None:
    """Rename the animal of NWB files sharing a subject to ``<subject>_<session>`` (in place).

    Files of one subject with the same session (the same file given twice) keep their
    name, so that :func:`~neurovamp.data.dataset.make_dataset` reports the duplicate.
    """
    by_animal: dict[str, list[xr.Dataset]] = {}
    for node in nodes:
        by_animal.setdefault(str(node[COUNTS].attrs["animal"]), []).append(node)
    for animal, group in by_animal.items():
        sessions = [str(node.attrs.get("session", "")) for node in group]
        if len(group) < 2 or len(set(sessions)) < len(sessions):
            continue
        for node, session in zip(group, sessions):
            node[COUNTS].attrs["animal"] = f"{animal}_{session}".replace("/", "_")


def _check_binning_memory(paths: Sequence[Path], window: tuple[float, float], bin_size: float, *,
                          trials: str | None = None, windows: float | None = None) -> None:
    """Refuse, before binning, NWB files whose counts (and the copies made of them) cannot fit in memory.

    Trials × units × bins per trial from the trials table (or ``trials``'s); with ``windows``
    the session is cut into windows, so units × (last spike time / bin size).
    """
    try:
        bin_size = float(bin_size)
        n_bins = (float(window[1]) - float(window[0])) / bin_size
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return  # read_nwb names the bad option
    if not np.isfinite(n_bins) or n_bins <= 0:
        return
    cells = 0.0
    for path in paths:
        if not path.is_file():
            continue
        if windows is not None:
            span = nwb_spike_span(path)
            if span is not None:
                cells += span[1] * span[0] / bin_size
        else:
            sizes = nwb_table_sizes(path, trials or "trials")
            if sizes is not None:
                cells += sizes[0] * sizes[1] * n_bins
    per_trial = "" if windows is not None else f" ({n_bins:.0f} bins per trial)"
    # int32 counts, the float32 copy pairing keeps, and one working copy: 3 x 4 bytes per bin
    check_memory(cells * 12, f"binning {len(paths)} file{'s' if len(paths) != 1 else ''} at {bin_size:g} s "
                 f"bins{per_trial}", "use a larger --bin or a shorter --window" if windows is None
                 else "use a larger --bin")
