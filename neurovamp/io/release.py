"""Convert the public five-rat hippocampal release (binned ``.npy`` files) to NWB.

The release (Dryad, doi:10.7280/D14X30) has one folder per rat (``Barat/``,
``Buchanan/``, ``Mitt/``, ``Stella/``, ``SuperChris/``) holding
``<rat>_spike_data_binned.npy`` — counts ``(trials, units, 400)`` in 10 ms bins from -2 s
to +2 s around odor port entry — and ``<rat>_trial_info.npy`` ``(trials, >= 4)``
(correct, in-sequence, position 1-5, odor 1-5 = A-E, then bookkeeping columns).
:func:`convert_release` writes one standard NWB file per rat so the rest of neurovamp
reads the release like any other recording.

How the binned data become NWB
------------------------------
* The release has no session clock, so trials are laid on a synthetic one: trial ``i``'s
  odor onset is at ``i * TRIAL_PERIOD + 2`` s, ``start_time = onset - 2``,
  ``stop_time = onset + 2`` (trials never overlap).
* A count of ``k`` in a bin becomes ``k`` spike times spread evenly strictly inside that
  bin (:func:`neurovamp.io.nwb.counts_to_spike_times`). The file's ``notes`` say that
  spike times are only known to within the 10 ms bin.
* Trials columns: ``start_time``, ``stop_time``, ``odor_onset``, ``odor`` (``"A"``..``"E"``),
  ``position`` (int), ``in_sequence`` and ``correct`` (bool), then ``info_<k>`` (float) for
  each further bookkeeping column ``k >= 4`` of the trial info.
* Units keep their index in the release as unit id, with an ``n_spikes`` column (spikes
  in the whole release). Units that never fire in the release are **kept** (so the unit
  axis matches the ``.npy`` files) and have ``n_spikes == 0``; reading such a file needs
  ``read_nwb(..., allow_silent_units=True)`` and its notes list the silent units.

Reading a converted file with ``read_nwb(path, event="odor_onset", window=(-2.0, 2.0),
bin_size=0.01)`` reproduces the release's counts exactly. The optional
``<rat>_lfp_data_sampled.npy`` is not converted (LFP is not read by neurovamp yet).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from neurovamp._files import check_writable
from neurovamp.errors import DataError
from neurovamp.io.nwb import counts_to_spike_times, write_nwb

__all__ = [
    "RELEASE_RATS",
    "RELEASE_UNITS",
    "N_BINS",
    "BIN_SIZE",
    "WINDOW",
    "TRIAL_PERIOD",
    "ODORS",
    "find_release_rats",
    "convert_release",
]

#: Rat folders of the public release.
RELEASE_RATS = ("Barat", "Buchanan", "Mitt", "Stella", "SuperChris")
#: Number of units per rat in the public release.
RELEASE_UNITS = {"Barat": 92, "Buchanan": 79, "Mitt": 104, "Stella": 49, "SuperChris": 46}
#: Bins per trial, their width (s) and the window around odor onset (s).
N_BINS = 400
BIN_SIZE = 0.01
WINDOW = (-2.0, 2.0)
#: Spacing of trials on the synthetic session clock (s).
TRIAL_PERIOD = 10.0
#: Odor codes 1-5 of the trial info, as letters.
ODORS = np.array(["A", "B", "C", "D", "E"])

_DOI = "doi:10.7280/D14X30"


def _spike_file(folder: Path) -> Path:
    return folder / f"{folder.name.lower()}_spike_data_binned.npy"


def _info_file(folder: Path) -> Path:
    return folder / f"{folder.name.lower()}_trial_info.npy"


def find_release_rats(release_dir: str | os.PathLike) -> list[str]:
    """List the rat folders of a release that hold a binned spike file.

    Parameters
    ----------
    release_dir
        Folder holding one sub-folder per rat (``Barat/``, ...).

    Returns
    -------
    list of str
        Sorted folder names ``R`` that contain ``r_spike_data_binned.npy`` (``r`` = ``R``
        in lower case); empty when there is none.

    Raises
    ------
    DataError
        If ``release_dir`` is not a folder.
    """
    release_dir = Path(release_dir)
    if not release_dir.is_dir():
        raise DataError(f"{release_dir}: release folder not found")
    return sorted(p.name for p in release_dir.iterdir() if p.is_dir() and _spike_file(p).is_file())


def convert_release(
    release_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    rats: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Path]:
    """Convert the binned five-rat release to one NWB file per rat.

    See the module docstring for how trials, spikes and silent units are stored.

    Parameters
    ----------
    release_dir
        Folder with one sub-folder per rat (``Barat/``, ``Buchanan/``, ...).
    out_dir
        Output folder; rat ``R`` is written to ``out_dir / "R.nwb"``.
    rats
        Rat folder names to convert; every rat found by :func:`find_release_rats` when
        omitted.
    overwrite
        Replace existing output files. Without it, nothing is written if any output
        exists.
    progress
        Show a per-rat progress bar (tqdm, on stderr).

    Returns
    -------
    dict of str to Path
        Output file of each rat, in conversion order.

    Raises
    ------
    DataError
        If the release folder, a rat folder or a file is missing, or a file has the
        wrong shape, non-integer, negative or NaN counts, a trial count that differs
        between the spike and trial-info files, or an odor code outside 1-5.
    OutputExistsError
        If an output exists and ``overwrite`` is false.
    """
    release_dir = Path(release_dir)
    out_dir = Path(out_dir)
    found = find_release_rats(release_dir)
    names = found if rats is None else [str(rat) for rat in rats]
    if not names:
        raise DataError(
            f"{release_dir}: no rat folders found; expected e.g. "
            f"{release_dir / 'Barat' / 'barat_spike_data_binned.npy'}"
        )
    for rat in names:
        if not (release_dir / rat).is_dir():
            raise DataError(
                f"{release_dir / rat}: rat folder not found; folders with spike data: {', '.join(found) or 'none'}"
            )
    targets = {rat: out_dir / f"{rat}.nwb" for rat in names}
    for target in targets.values():
        check_writable(target, overwrite)

    for rat in tqdm(names, desc="converting release", unit="rat", disable=not progress):
        counts, info = _load_rat(release_dir / rat)
        _write_rat(rat, counts, info, targets[rat], overwrite)
    return targets


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from exc


def _load_rat(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate one rat's counts (int64) and trial info (float)."""
    spike_path, info_path = _spike_file(folder), _info_file(folder)
    counts = _load_npy(spike_path)
    info = _load_npy(info_path)

    if counts.ndim != 3 or counts.shape[2] != N_BINS:
        raise DataError(
            f"{spike_path}: expected counts of shape (trials, units, {N_BINS}), got {counts.shape}"
        )
    if counts.shape[0] == 0 or counts.shape[1] == 0:
        raise DataError(f"{spike_path}: no trials or no units (shape {counts.shape})")
    if not (np.issubdtype(counts.dtype, np.number) or counts.dtype == bool):
        raise DataError(f"{spike_path}: counts must be numeric, got dtype {counts.dtype}")
    if not np.isfinite(counts).all():
        raise DataError(f"{spike_path}: counts contain {int(np.sum(~np.isfinite(counts)))} NaN or inf value(s)")
    if np.any(counts < 0):
        raise DataError(f"{spike_path}: counts must be non-negative, found {int(np.sum(counts < 0))} negative value(s)")
    whole = np.rint(counts)
    if not np.array_equal(whole, counts):
        raise DataError(f"{spike_path}: counts must be whole numbers, found {int(np.sum(whole != counts))} non-integer value(s)")

    if info.ndim != 2 or info.shape[1] < 4:
        raise DataError(f"{info_path}: expected trial info of shape (trials, >= 4), got {info.shape}")
    if info.shape[0] != counts.shape[0]:
        raise DataError(
            f"{info_path}: {info.shape[0]} trials, but {spike_path.name} has {counts.shape[0]}; "
            "the trial counts must match"
        )
    if not np.issubdtype(info.dtype, np.number):
        raise DataError(f"{info_path}: trial info must be numeric, got dtype {info.dtype}")
    info = info.astype(float)
    for column, name, allowed in ((0, "correct", (0, 1)), (1, "in-sequence", (0, 1)), (3, "odor", (1, 2, 3, 4, 5))):
        bad = ~np.isin(info[:, column], allowed)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise DataError(
                f"{info_path}: column {column} ({name}) must be one of {allowed}; trial(s) "
                f"{', '.join(map(str, rows[:10]))} hold {', '.join(map(str, info[rows[:10], column]))}"
            )
    position = info[:, 2]
    if not (np.isfinite(position).all() and np.array_equal(np.rint(position), position)):
        raise DataError(f"{info_path}: column 2 (position) must hold whole numbers")
    return whole.astype(np.int64), info


def _write_rat(rat: str, counts: np.ndarray, info: np.ndarray, path: Path, overwrite: bool) -> Path:
    """Write one rat's validated release data as NWB."""
    n_trials = counts.shape[0]
    onset = np.arange(n_trials) * TRIAL_PERIOD - WINDOW[0]
    columns: dict[str, np.ndarray] = {
        "start_time": onset + WINDOW[0],
        "stop_time": onset + WINDOW[1],
        "odor_onset": onset,
        "odor": ODORS[info[:, 3].astype(int) - 1],
        "position": info[:, 2].astype(np.int64),
        "in_sequence": info[:, 1] == 1,
        "correct": info[:, 0] == 1,
    }
    for k in range(4, info.shape[1]):
        columns[f"info_{k}"] = info[:, k]
    n_spikes = counts.sum(axis=(0, 2))
    silent = np.flatnonzero(n_spikes == 0)
    notes = (
        f"Converted by neurovamp from the binned public release ({_DOI}). Spike times are only "
        f"known to within the {BIN_SIZE * 1000:g} ms bin: a count of k in a bin is stored as k "
        "spikes spread evenly inside that bin. Trials lie on a synthetic session clock "
        f"(odor onset of trial i at i*{TRIAL_PERIOD:g}+2 s); session_start_time is the conversion "
        "time, not the recording date. Columns info_<k> are the release's bookkeeping columns k."
    )
    if silent.size:
        notes += (
            f" Unit(s) {', '.join(map(str, silent))} fire no spike in the release "
            "(n_spikes == 0); read with allow_silent_units=True."
        )
    return write_nwb(
        path,
        subject_id=rat,
        spike_times=counts_to_spike_times(counts, onset + WINDOW[0], BIN_SIZE),
        trials=pd.DataFrame(columns),
        unit_columns={"n_spikes": n_spikes.astype(np.int64)},
        spike_time_resolution=BIN_SIZE,
        session_description=(
            f"{rat}: CA1 units during an odor-sequence memory task (Allen et al. 2016; "
            f"Shahbaba et al. 2022), from the binned public release {_DOI}"
        ),
        notes=notes,
        overwrite=overwrite,
    )
