"""Read spiking recordings from NWB into modalities, and write NWB files.

Reading (:func:`read_nwb`) goes in three steps, each a small private helper, so that a
later reader for other signals (LFP and other ``TimeSeries``) can reuse the first two
and add its own variable beside ``counts`` on the same trial grid:

1. :func:`_open_nwb` opens the file and turns every failure into a
   :class:`~neurovamp.errors.DataError` naming the file;
2. :func:`_read_trial_grid` reads the trials table into a :class:`_TrialGrid` (trial ids,
   event times, labels and the bin layout of the window around each event);
3. :func:`_read_units` and :func:`bin_spike_times` read the units table and bin every
   unit's spike times on that grid.

Bins are half-open, ``[event + start + k * bin_size, event + start + (k + 1) * bin_size)``.
Floating-point sums rarely land exactly on a decimal edge, so an edge is moved left by
``1e-6 * bin_size`` (10 ns for 10 ms bins, far below any spike-sorting precision): a spike
written exactly on an edge counts in the bin to the right of it.

Writing: :func:`write_nwb` writes spike times and a trials table as a standard NWB file
with :mod:`pynwb`; :func:`modality_to_nwb` writes a modality back (a count of ``k`` in a
bin becomes ``k`` spikes spread evenly inside the bin, see
:func:`counts_to_spike_times`) so that NWB → xarray → NWB → xarray reproduces the counts.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neurovamp._files import atomic_output
from neurovamp.data.labels import matches
from neurovamp.data.modality import COUNTS, label_names, make_modality, validate_modality
from neurovamp.errors import DataError, NeurovampError
from neurovamp.io.settings import RECORDING_DEFAULTS as _DEFAULTS

__all__ = [
    "read_nwb",
    "read_nwb_dataset",
    "write_nwb",
    "modality_to_nwb",
    "bin_spike_times",
    "counts_to_spike_times",
]

#: Fraction of a bin by which edges are moved left (floating-point tolerance).
EDGE_TOLERANCE = 1e-6
#: Tolerance on ``(stop - start) / bin_size`` being a whole number.
WHOLE_BINS_TOLERANCE = 1e-9
#: Float trials columns with these name endings are event times, not labels.
_TIME_SUFFIXES = ("_time", "_times", "_onset", "_offset")
#: Names that cannot be trial labels (dimension or reserved coordinate names).
_RESERVED_LABELS = ("trial", "unit", "time", "event_time")
#: Subject fields :func:`write_nwb` writes unless told otherwise (rats of unknown sex and age).
DEFAULT_SUBJECT = {"species": "Rattus norvegicus", "sex": "U", "age": "P0D/"}
#: Units-table columns that are not per-unit metadata.
_SPIKE_COLUMN = "spike_times"

_STANDARD_TRIAL_DESCRIPTIONS = {
    "odor_onset": "time of odor port entry (odor onset), seconds on the session clock",
    "odor": "odor presented, 'A'..'E'",
    "position": "position of the odor in the sequence, 1-5",
    "in_sequence": "whether the odor was presented in its place in the sequence",
    "correct": "whether the rat responded correctly",
}


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _TrialGrid:
    """Trials and the bins around each trial's event (shared by every signal reader).

    Attributes
    ----------
    trial_ids
        Trial ids from the trials table, shape ``(n_trials,)``.
    event_time
        Event times on the session clock, shape ``(n_trials,)``.
    labels
        Label arrays, each ``(n_trials,)``, in their stored dtype.
    event
        Name of the trials column the bins are aligned to.
    window_start
        Left edge of the first bin relative to the event, seconds.
    bin_size
        Bin width, seconds.
    n_bins
        Number of bins per trial.
    """

    trial_ids: np.ndarray
    event_time: np.ndarray
    labels: dict[str, np.ndarray]
    event: str
    window_start: float
    bin_size: float
    n_bins: int

    def edges(self) -> np.ndarray:
        """Absolute bin edges on the session clock, shape ``(n_trials, n_bins + 1)``."""
        relative = self.window_start + self.bin_size * np.arange(self.n_bins + 1)
        return self.event_time[:, None] + relative[None, :]


def read_nwb(
    path: str | os.PathLike,
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
    windows: float | None = _DEFAULTS.windows,
) -> xr.DataArray:
    """Bin an NWB file's spikes around a trial event (or in windows) into a modality.

    Parameters
    ----------
    path
        NWB file with a units table (``spike_times``) and, unless ``windows`` cuts the
        whole session, an intervals table of trials.
    event
        Trials column of event times (session clock, seconds) the bins are aligned to,
        e.g. ``"odor_onset"``.
    window
        ``(start, stop)`` of the binned window relative to the event, seconds;
        ``stop - start`` must be a whole number of bins.
    bin_size
        Bin width, seconds.
    labels
        Trials columns kept as trial labels. ``None`` keeps every scalar column except
        ``start_time``, ``stop_time``, the event column and other columns of times (float
        columns whose name ends in ``_time``, ``_times``, ``_onset`` or ``_offset``, or
        whose every value lies inside its own trial's ``[start_time, stop_time]``).
        Labels keep their stored dtype (letters stay ``str``, integers ``int``, flags
        ``bool``).
    allow_silent_units
        Keep units without a single spike in the file (their counts are all zero)
        instead of raising.
    drop_missing_events
        Leave out trials whose event time is NaN (e.g. aborted trials without an odor
        onset), with a warning naming them, instead of raising.
    trials
        Name of the intervals table holding the trials (``nwbfile.intervals``, e.g.
        ``"encoding_table"`` or ``"epochs"``); ``None`` means ``"trials"`` (or, with
        ``windows``, the whole session). ``stop_time`` may be NaN.
    event_relative_to
        Trials column the ``event`` values are counted from (e.g. ``"start_time"`` when
        ``pole_in_time`` is given in seconds from each trial's start). Without it, an
        event column whose values all lie before their own trial's start and within its
        duration raises a warning naming this option.
    units
        Keep only units whose column equals one of the values, ``{column: value or
        values}`` (all columns must match), e.g. ``{"location": "CA1"}``. Text is
        compared without regard to case. ``location`` may come from the electrodes table
        the units reference (it is then a unit coordinate too).
    windows
        Cut the session (or each interval of ``trials``) into consecutive windows of
        this many seconds instead of aligning to ``event``; ``window`` is then ignored.
        Window start times are the ``event_time`` coordinate, ``event`` is
        ``"window"``, and the row id of the interval a window came from is the label
        ``interval``.

    Returns
    -------
    xarray.DataArray
        The modality (see :mod:`neurovamp.data.modality`): int32 counts
        ``(trial, unit, time)``; animal from ``nwbfile.subject.subject_id`` (the file
        stem when the file has no subject id); unit ids from the units
        table and its scalar columns (location, quality, ...) as unit coordinates.

    Raises
    ------
    DataError
        If the file is missing, not NWB or truncated; has no such intervals table (the
        message lists those it has) or no units table; the event, ``event_relative_to``
        or a label column is missing; an event time is NaN (unless
        ``drop_missing_events``) or no trial has one; ``units`` matches no unit; a unit
        has no spikes (unless ``allow_silent_units``); or the binning options are invalid.
    """
    return read_nwb_dataset(
        path, event=event, window=window, bin_size=bin_size, labels=labels,
        allow_silent_units=allow_silent_units, drop_missing_events=drop_missing_events, trials=trials,
        event_relative_to=event_relative_to, units=units, windows=windows,
    )[COUNTS]


def read_nwb_dataset(
    path: str | os.PathLike,
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
    windows: float | None = _DEFAULTS.windows,
    behavior: str | Sequence[str] | None = _DEFAULTS.behavior,
    drop_uncovered: bool = _DEFAULTS.drop_uncovered,
) -> xr.Dataset:
    """Read an NWB file as :func:`read_nwb` does, with behaviour series beside the counts.

    Parameters
    ----------
    path, event, window, bin_size, labels, allow_silent_units, drop_missing_events, trials, event_relative_to, units, windows
        As in :func:`read_nwb`.
    behavior
        Names of TimeSeries / SpatialSeries (or of containers of them, such as a
        ``Position`` holding ``x``, ``y``, ``z``) in ``acquisition`` or a processing
        module, see :func:`neurovamp.io.nwb_contents.find_series`. Each becomes a
        float variable named after it in lower case, ``(trial, time, <name>_dim)``,
        the mean of the samples in each bin (linearly interpolated in a bin without a
        sample) with the series' unit in its ``unit`` attribute; the trial means of
        each dimension become trial labels ``<name>_<dim>`` (``position_x``; a lone
        one-dimensional series ``speed`` gives ``speed_value``).
    drop_uncovered
        Leave out trials (windows) that a behaviour series does not cover, with a
        warning naming them, instead of raising.

    Returns
    -------
    xarray.Dataset
        ``counts`` (the modality, see :func:`read_nwb`) and one variable per behaviour
        series, all on the same trials and bins; attribute ``session`` from
        ``nwbfile.session_id`` (the file stem without one).

    Raises
    ------
    DataError
        As :func:`read_nwb`; also for a behaviour series that does not exist (the
        message lists those that do) or does not cover some trials (unless
        ``drop_uncovered``).
    """
    from neurovamp.io.nwb_contents import bin_behavior, find_series

    path = Path(path)
    names = [behavior] if isinstance(behavior, str) else list(behavior or [])
    if windows is None:
        n_bins = _check_binning(path, window, bin_size)
    else:
        n_bins = _check_binning(path, (0.0, _window_length(path, windows)), bin_size)
    if isinstance(labels, str):
        labels = [labels]
    with _open_nwb(path) as nwbfile:
        series = [find_series(nwbfile, path, name) for name in names]
        from_behavior = {label for s in series for label in s.label_names()}
        if labels is not None:  # labels made from behaviour are not columns of the table
            labels = [name for name in labels if name not in from_behavior]
        unit_ids, times, ends, unit_coords = _read_units(nwbfile, path, allow_silent_units, units)
        if windows is None:
            table = _intervals_table(nwbfile, path, "trials" if trials is None else trials)
            grid = _read_trial_grid(
                table, path, event=event, window_start=float(window[0]), bin_size=float(bin_size),
                n_bins=n_bins, labels=labels, drop_missing_events=drop_missing_events,
                event_relative_to=event_relative_to,
            )
        else:
            table = None if trials is None else _intervals_table(nwbfile, path, trials)
            grid = _window_grid(table, path, times, float(windows), float(bin_size), n_bins, labels)
        animal = _subject_id(nwbfile, path)
        session = str(getattr(nwbfile, "session_id", None) or path.stem)
    variables: dict[str, xr.DataArray] = {}
    if series:
        binned = [bin_behavior(s, grid.edges(), path) for s in series]
        covered = np.logical_and.reduce([b.covered for b in binned])
        if not covered.all():
            grid = _drop_uncovered(grid, covered, binned, path, drop_uncovered)
            binned = [b.subset(covered) for b in binned]
        for b in binned:
            var, trial_labels = b.variables(grid.labels, _RESERVED_LABELS)
            grid.labels.update(trial_labels)
            variables[b.variable] = var
    unit_coords = {
        (f"unit_{name}" if name in grid.labels or name in _RESERVED_LABELS else name): values
        for name, values in unit_coords.items()
    }
    counts = bin_spike_times(times, ends, grid.edges())
    da = make_modality(
        counts,
        animal=animal,
        bin_size=grid.bin_size,
        window_start=grid.window_start,
        trial_ids=grid.trial_ids,
        trial_labels=grid.labels,
        event_time=grid.event_time,
        unit_ids=unit_ids,
        unit_coords=unit_coords,
        event=grid.event,
        source=str(path),
    )
    ds = da.to_dataset()
    ds.attrs["session"] = session
    for name, var in variables.items():
        ds[name] = var.assign_coords(trial=da["trial"].values, time=da["time"].values)
    return ds


def bin_spike_times(times: np.ndarray, ends: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Count each unit's spikes in every trial's bins.

    Parameters
    ----------
    times
        All units' spike times concatenated (NWB ``spike_times`` data), seconds.
    ends
        End offset of each unit's spikes in ``times`` (NWB ``spike_times_index``),
        shape ``(n_units,)``.
    edges
        Absolute bin edges, shape ``(n_trials, n_bins + 1)``, increasing along a row.
        Bins are half-open ``[edges[k], edges[k + 1])``; each edge is moved left by
        ``EDGE_TOLERANCE * bin`` so a spike on an edge counts in the bin to its right.

    Returns
    -------
    numpy.ndarray
        int32 counts, shape ``(n_trials, n_units, n_bins)``.

    Notes
    -----
    Spikes are sorted within each unit once if needed (one vectorised lexsort); each unit then
    needs one :func:`numpy.searchsorted` of all trials' edges at once, so the cost is
    ``O(n_spikes log n_spikes + n_units * n_edges * log)``, never a loop over spikes.
    Overlapping trial windows are allowed (a spike then counts in both trials).
    """
    times = np.asarray(times, dtype=float)
    ends = np.asarray(ends, dtype=np.int64)
    edges = np.asarray(edges, dtype=float)
    n_trials, n_edges = edges.shape
    n_units = ends.size
    starts = np.concatenate([[0], ends[:-1]]) if n_units else ends
    steps = np.diff(times)
    steps[ends[:-1][(ends[:-1] > 0) & (ends[:-1] < times.size)] - 1] = 0.0  # unit boundaries
    if np.any(steps < 0):  # NWB does not require sorted spike times
        unit_of_spike = np.repeat(np.arange(n_units), ends - starts)
        times = times[np.lexsort((times, unit_of_spike))]
    width = np.diff(edges, axis=1)
    shift = EDGE_TOLERANCE * np.concatenate([width[:, :1], width], axis=1) if n_edges > 1 else 0.0
    flat_edges = (edges - shift).ravel()
    counts = np.empty((n_trials, n_units, n_edges - 1), dtype=np.int32)
    for unit in range(n_units):  # one vectorised search per unit, not per spike
        position = np.searchsorted(times[starts[unit] : ends[unit]], flat_edges, side="left")
        counts[:, unit, :] = np.diff(position.reshape(n_trials, n_edges), axis=1)
    return counts


def _check_binning(path: Path, window: tuple[float, float], bin_size: float) -> int:
    """Validate the binning options; return the number of bins per trial."""
    try:
        start, stop = (float(value) for value in window)
    except (TypeError, ValueError):
        raise DataError(f"{path}: window must be two numbers (start, stop), got {window!r}") from None
    bin_size = float(bin_size)
    if not np.isfinite(bin_size) or bin_size <= 0:
        raise DataError(f"{path}: bin_size must be a positive number of seconds, got {bin_size}")
    if not (np.isfinite(start) and np.isfinite(stop)) or stop <= start:
        raise DataError(f"{path}: window stop must be greater than start, got ({start}, {stop})")
    ratio = (stop - start) / bin_size
    n_bins = int(round(ratio))
    if abs(ratio - n_bins) > WHOLE_BINS_TOLERANCE or n_bins < 1:
        raise DataError(
            f"{path}: window ({start}, {stop}) is not a whole number of {bin_size} s bins "
            f"({ratio:.6g} bins)"
        )
    return n_bins


@contextlib.contextmanager
def _open_nwb(path: Path) -> Iterator[Any]:
    """Open an NWB file read-only, raising DataError for anything unreadable."""
    from pynwb import NWBHDF5IO

    if path.is_dir():
        raise DataError(f"{path}: is a folder; expected an NWB file")
    if not path.is_file():
        raise DataError(f"{path}: NWB file not found")
    try:
        io = NWBHDF5IO(str(path), mode="r", load_namespaces=True)
        nwbfile = io.read()
    except Exception as exc:  # h5py/hdmf raise many types for bad or truncated files
        with contextlib.suppress(Exception):
            io.close()  # type: ignore[possibly-undefined]
        raise DataError(
            f"{path}: not a readable NWB file (expected an NWB/HDF5 file; it may be truncated): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    try:
        yield nwbfile
    except OSError as exc:  # HDF5 data that opened but cannot be read (a damaged chunk, a failing disk)
        if isinstance(exc, NeurovampError):
            raise
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path}: part of the file cannot be read ({detail}); the file is damaged") from None
    finally:
        io.close()


def _subject_id(nwbfile: Any, path: Path) -> str:
    """Animal id: ``nwbfile.subject.subject_id``, else the file stem."""
    subject = getattr(nwbfile, "subject", None)
    subject_id = getattr(subject, "subject_id", None) if subject is not None else None
    return str(subject_id) if subject_id else path.stem


def _scalar_columns(table: Any) -> dict[str, Any]:
    """Columns of a DynamicTable holding one scalar per row (no ragged/region/array columns)."""
    from hdmf.common import DynamicTableRegion, VectorIndex

    ragged = {col.target.name for col in table.columns if isinstance(col, VectorIndex)}
    columns = {}
    for col in table.columns:
        if isinstance(col, (VectorIndex, DynamicTableRegion)) or col.name in ragged:
            continue
        if np.ndim(col.data[:1]) != 1:
            continue
        columns[col.name] = col
    return columns


def _as_label_array(values: Any) -> np.ndarray:
    """Column data as numpy, with strings as ``str`` (not ``object``/``bytes``)."""
    array = np.asarray(values)
    if array.dtype.kind == "S":
        return np.char.decode(array, "utf-8").astype(str)
    if array.dtype == object:
        items = array.tolist()
        if all(isinstance(item, bytes) for item in items):
            return np.array([item.decode("utf-8") for item in items], dtype=str)
        if all(isinstance(item, str) for item in items):
            return np.array(items, dtype=str) if items else np.array([], dtype=str)
    return array


def _is_time_column(name: str, values: np.ndarray, start: np.ndarray, stop: np.ndarray) -> bool:
    """Whether an (unrequested) float trials column holds times rather than labels."""
    if values.dtype.kind != "f":
        return False
    if name.endswith(_TIME_SUFFIXES):
        return True
    finite = np.isfinite(values)
    inside = (values >= start) & (values <= stop)
    return bool(finite.any() and np.all(inside | ~finite))


def _window_length(path: Path, windows: Any) -> float:
    """``windows`` as a positive number of seconds."""
    try:
        length = float(windows)
    except (TypeError, ValueError):
        raise DataError(f"{path}: windows must be a number of seconds, got {windows!r}") from None
    if not np.isfinite(length) or length <= 0:
        raise DataError(f"{path}: windows must be a positive number of seconds, got {windows!r}")
    return length


def _interval_tables(nwbfile: Any) -> dict[str, Any]:
    """Every TimeIntervals table of the file by name (``trials``, ``epochs``, ``intervals/*``)."""
    tables = dict(getattr(nwbfile, "intervals", None) or {})
    for name in ("trials", "epochs", "invalid_times"):
        table = getattr(nwbfile, name, None)
        if table is not None:
            tables.setdefault(name, table)
    return tables


def _intervals_table(nwbfile: Any, path: Path, name: str) -> Any:
    """The intervals table ``name``, or a DataError listing the tables the file has."""
    tables = _interval_tables(nwbfile)
    if not isinstance(name, str) or name not in tables:
        have = ", ".join(f"{n} ({len(t)} rows)" for n, t in tables.items()) or "none"
        what = "no trials table (nwbfile.trials)" if name == "trials" else f"no intervals table {name!r}"
        raise DataError(
            f"{path}: {what}; intervals tables in the file: {have}; choose one with trials=NAME "
            "(CLI: --trials NAME) or cut the session into windows with windows=SECONDS (CLI: --windows SECONDS)"
        )
    return tables[name]


def _read_trial_grid(
    trials: Any,
    path: Path,
    *,
    event: str,
    window_start: float,
    bin_size: float,
    n_bins: int,
    labels: Sequence[str] | None,
    drop_missing_events: bool = _DEFAULTS.drop_missing_events,
    event_relative_to: str | None = _DEFAULTS.event_relative_to,
) -> _TrialGrid:
    """Read trial ids, event times and labels from an intervals table of trials."""
    columns = _scalar_columns(trials)
    available = ", ".join(trials.colnames)
    table_name = "trials table" if trials.name == "trials" else f"intervals table {trials.name!r}"
    if event not in columns:
        raise DataError(
            f"{path}: {table_name} has no event column {event!r}; available columns: {available}"
        )
    event_time = np.asarray(columns[event].data[:])
    if event_time.dtype.kind not in "fiu":
        raise DataError(f"{path}: event column {event!r} must hold times in seconds, got dtype {event_time.dtype}")
    event_time = event_time.astype(float)
    start = np.asarray(columns["start_time"].data[:], dtype=float)
    stop = np.asarray(columns["stop_time"].data[:], dtype=float)
    if event_relative_to is not None:
        if event_relative_to not in columns:
            raise DataError(
                f"{path}: {table_name} has no column {event_relative_to!r} for event_relative_to "
                f"(CLI: --event-relative-to); available columns: {available}"
            )
        reference = np.asarray(columns[event_relative_to].data[:])
        if reference.dtype.kind not in "fiu":
            raise DataError(f"{path}: column {event_relative_to!r} must hold times in seconds, got dtype {reference.dtype}")
        event_time = event_time + reference.astype(float)
    elif event not in ("start_time", "stop_time"):
        _warn_if_relative(path, event, event_time, start, stop)
    trial_ids = np.asarray(trials.id.data[:])
    bad = ~np.isfinite(event_time)
    if bad.any():
        shown = ", ".join(str(t) for t in trial_ids[bad][:10]) + (" ..." if bad.sum() > 10 else "")
        what = f"{path}: trials column {event!r} has NaN event times for {int(bad.sum())} trial(s) (trial ids {shown})"
        if not drop_missing_events:
            raise DataError(
                f"{what}; every trial needs an event time, or pass drop_missing_events=True "
                "(CLI: --drop-missing-events) to leave those trials out"
            )
        if bad.all():
            raise DataError(f"{path}: no trial has an event time in column {event!r}")
        warnings.warn(f"{what}: left out (drop_missing_events)", UserWarning, stacklevel=5)
    keep = ~bad

    if labels is None:
        chosen = {}
        for name, col in columns.items():
            if name in ("start_time", "stop_time", event) or name in _RESERVED_LABELS:
                continue
            values = _as_label_array(col.data[:])
            if not _is_time_column(name, values, start, stop):
                chosen[name] = values
    else:
        if isinstance(labels, str):
            labels = [labels]
        chosen = {}
        for name in labels:
            if name in _RESERVED_LABELS:
                raise DataError(f"{path}: {name!r} cannot be a label name (reserved for a dimension)")
            if name not in trials.colnames:
                raise DataError(
                    f"{path}: {table_name} has no label column {name!r}; available columns: {available}"
                )
            if name not in columns:
                raise DataError(f"{path}: trials column {name!r} does not hold one value per trial")
            chosen[name] = _as_label_array(columns[name].data[:])
    return _TrialGrid(
        trial_ids=trial_ids[keep],
        event_time=event_time[keep],
        labels={name: values[keep] for name, values in chosen.items()},
        event=event,
        window_start=window_start,
        bin_size=bin_size,
        n_bins=n_bins,
    )


def _warn_if_relative(path: Path, event: str, event_time: np.ndarray, start: np.ndarray, stop: np.ndarray) -> None:
    """Warn when event times look counted from each trial's start rather than the session clock.

    They look relative when every finite value lies before its own trial's ``start_time``
    and within the trial's duration (``stop - start``, or the gap to the next trial's
    start where ``stop_time`` is NaN).
    """
    finite = np.isfinite(event_time) & np.isfinite(start)
    if finite.sum() < 2:
        return
    order = np.argsort(start, kind="stable")
    next_start = np.empty_like(start)
    next_start[order[:-1]] = start[order[1:]]
    next_start[order[-1]] = np.inf
    duration = np.where(np.isfinite(stop), stop - start, next_start - start)
    ev, st, du = event_time[finite], start[finite], duration[finite]
    if np.all(ev < st) and np.all((ev >= 0) & (ev <= du)):
        warnings.warn(
            f"{path}: event column {event!r} looks relative to each trial's start: its values "
            f"({ev.min():.4g} to {ev.max():.4g} s) all lie before their own trial's start_time "
            f"(trials start from {st.min():.4g} s) and within the trial's duration; if they are, pass "
            f"event_relative_to='start_time' (CLI: --event-relative-to start_time)",
            UserWarning,
            stacklevel=5,
        )


def _window_grid(
    table: Any,
    path: Path,
    spike_times: np.ndarray,
    length: float,
    bin_size: float,
    n_bins: int,
    labels: Sequence[str] | None,
) -> _TrialGrid:
    """Consecutive windows of ``length`` s over the session (or each interval of ``table``).

    The session runs from the first to the last spike of any unit; an interval or the
    session contributes ``floor(duration / length)`` windows from its start (a shorter
    remainder is left out). Intervals with a NaN start or stop are left out.
    """
    if table is None:
        if spike_times.size == 0:
            raise DataError(f"{path}: no spikes in the file to cut into windows")
        starts = np.array([spike_times.min()])
        stops = np.array([spike_times.max()])
        rows = np.array([0])
        interval_labels: dict[str, np.ndarray] = {}
        where = "the session (first to last spike)"
    else:
        columns = _scalar_columns(table)
        starts = np.asarray(columns["start_time"].data[:], dtype=float)
        stops = np.asarray(columns["stop_time"].data[:], dtype=float)
        rows = np.asarray(table.id.data[:])
        interval_labels = {"interval": rows}
        for name, col in columns.items():
            if name in ("start_time", "stop_time") or name in _RESERVED_LABELS or name == "interval":
                continue
            values = _as_label_array(col.data[:])
            if labels is None and _is_time_column(name, values, starts, stops):
                continue
            interval_labels[name] = values
        where = f"the intervals of {table.name!r}"
    if labels is not None:
        missing = [name for name in labels if name not in interval_labels]
        if missing:
            raise DataError(
                f"{path}: windows of {where} have no label(s) {missing}; available: "
                f"{', '.join(interval_labels) or 'none'}"
            )
        interval_labels = {name: interval_labels[name] for name in labels}
    with np.errstate(invalid="ignore"):
        n_windows = np.floor((stops - starts) / length + WHOLE_BINS_TOLERANCE)
    n_windows = np.where(np.isfinite(n_windows) & (n_windows > 0), n_windows, 0).astype(np.int64)
    if n_windows.sum() == 0:
        raise DataError(f"{path}: {where} hold no whole window of {length} s")
    owner = np.repeat(np.arange(rows.size), n_windows)
    rank = np.arange(owner.size) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
    return _TrialGrid(
        trial_ids=np.arange(owner.size, dtype=np.int64),
        event_time=starts[owner] + rank * length,
        labels={name: np.asarray(values)[owner] for name, values in interval_labels.items()},
        event="window",
        window_start=0.0,
        bin_size=bin_size,
        n_bins=n_bins,
    )


def _drop_uncovered(grid: _TrialGrid, covered: np.ndarray, binned: Sequence[Any], path: Path, drop: bool) -> _TrialGrid:
    """Leave out the trials a behaviour series does not cover (or raise, naming them)."""
    import dataclasses

    bad = grid.trial_ids[~covered]
    shown = ", ".join(str(t) for t in bad[:10]) + (" ..." if bad.size > 10 else "")
    spans = "; ".join(b.describe() for b in binned)
    what = "windows" if grid.event == "window" else "trials"
    message = (
        f"{path}: behaviour does not cover {bad.size} of {covered.size} {what} ({what[:-1]} ids {shown}; {spans})"
    )
    if not drop:
        raise DataError(f"{message}; pass drop_uncovered=True (CLI: --drop-uncovered) to leave them out")
    if not covered.any():
        raise DataError(f"{path}: behaviour covers none of the {covered.size} {what} ({spans})")
    warnings.warn(f"{message}: left out (drop_uncovered)", UserWarning, stacklevel=4)
    return dataclasses.replace(
        grid,
        trial_ids=grid.trial_ids[covered],
        event_time=grid.event_time[covered],
        labels={name: values[covered] for name, values in grid.labels.items()},
    )


def _unit_locations(units: Any) -> np.ndarray | None:
    """Each unit's location from the electrodes (or electrode groups) it references, or None."""
    n = len(units.id)
    if "electrodes" in units.colnames:
        column = units["electrodes"]
        try:
            table = column.target.table if hasattr(column, "target") else column.table
            locations = _as_label_array(table["location"].data[:])
            index = column.data[:] if hasattr(column, "target") else None
            rows = np.asarray(column.target.data[:]) if hasattr(column, "target") else np.asarray(column.data[:])
        except (KeyError, AttributeError, TypeError):
            return None
        ends = np.asarray(index, dtype=np.int64) if index is not None else np.arange(1, n + 1)
        begins = np.concatenate([[0], ends[:-1]])
        return np.array(
            ["+".join(dict.fromkeys(str(loc) for loc in locations[rows[b:e]])) for b, e in zip(begins, ends)],
            dtype=str,
        )
    if "electrode_group" in units.colnames:
        groups = units["electrode_group"].data[:]
        return np.array([str(getattr(g, "location", "")) for g in groups], dtype=str)
    return None


def _plain_column(values: np.ndarray) -> bool:
    """Whether column values are text, numbers or flags (not object references)."""
    if values.dtype != object:
        return values.dtype.kind in "biufUS"
    return all(isinstance(v, (str, bytes, bool, int, float, np.generic)) for v in values.tolist())


def _select_units(path: Path, unit_ids: np.ndarray, coords: dict[str, np.ndarray],
                  selection: Mapping[str, Any] | None) -> np.ndarray:
    """Boolean mask of the units matching every ``{column: value(s)}`` of ``selection``."""
    keep = np.ones(unit_ids.size, dtype=bool)
    if not selection:
        return keep
    if not isinstance(selection, Mapping):
        raise DataError(f"{path}: units must map unit columns to values, e.g. {{'location': 'CA1'}}, got {selection!r}")
    for name, wanted in selection.items():
        if name not in coords:
            raise DataError(
                f"{path}: units table has no column {name!r} to select units by (CLI: --units COL=VALUE); "
                f"columns: {', '.join(coords) or 'none'}"
            )
        keep &= matches(coords[name], wanted, ignore_case=True)  # text without regard to case
    if not keep.any():
        shown = "; ".join(
            f"{name} values: {', '.join(map(str, np.unique(coords[name].astype(str))[:12]))}" for name in selection
        )
        wanted = " ".join(
            f"{k}={v if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) else ','.join(map(str, v))}"
            for k, v in selection.items()
        )
        raise DataError(f"{path}: units {wanted} matches no unit; {shown}")
    return keep


def _read_units(
    nwbfile: Any, path: Path, allow_silent_units: bool, selection: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Unit ids, concatenated spike times, their end offsets and scalar unit columns.

    ``selection`` (``{column: value(s)}``) keeps the matching units only; the location
    of the electrodes the units reference is the ``location`` column when the units
    table has none.
    """
    units = nwbfile.units
    if units is None:
        raise DataError(f"{path}: no units table (nwbfile.units); spike times are needed")
    if _SPIKE_COLUMN not in units.colnames:
        raise DataError(f"{path}: units table has no {_SPIKE_COLUMN!r} column")
    unit_ids = np.asarray(units.id.data[:])
    if unit_ids.size == 0:
        raise DataError(f"{path}: units table is empty; expected at least one unit")
    unit_coords = {}
    for name, col in _scalar_columns(units).items():
        if name == _SPIKE_COLUMN:
            continue
        values = _as_label_array(col.data[:])
        if _plain_column(values):
            unit_coords[name] = values
    if "location" not in unit_coords:
        locations = _unit_locations(units)
        if locations is not None:
            unit_coords["location"] = locations
    keep = _select_units(path, unit_ids, unit_coords, selection)
    index = units[_SPIKE_COLUMN]  # the VectorIndex of the ragged spike_times column
    times = np.asarray(index.target.data[:], dtype=float)
    ends = np.asarray(index.data[:], dtype=np.int64)
    if not keep.all():
        begins = np.concatenate([[0], ends[:-1]])
        pieces = [times[b:e] for b, e in zip(begins[keep], ends[keep])]
        times = np.concatenate(pieces) if pieces else np.array([], dtype=float)
        ends = np.cumsum([p.size for p in pieces]).astype(np.int64)
        unit_ids = unit_ids[keep]
        unit_coords = {name: values[keep] for name, values in unit_coords.items()}
    n_spikes = np.diff(np.concatenate([[0], ends]))
    silent = n_spikes == 0
    if silent.any() and not allow_silent_units:
        shown = ", ".join(str(u) for u in unit_ids[silent][:10]) + (" ..." if silent.sum() > 10 else "")
        raise DataError(
            f"{path}: {int(silent.sum())} unit(s) have no spikes at all (unit ids {shown}); "
            "pass allow_silent_units=True (CLI: --allow-silent-units) to keep them"
        )
    finite = np.isfinite(times)
    if not finite.all():
        unit_of_spike = np.repeat(unit_ids, n_spikes)
        bad = np.unique(unit_of_spike[~finite])
        raise DataError(f"{path}: spike_times of unit(s) {', '.join(map(str, bad[:10]))} contain NaN or inf")
    return unit_ids, times, ends, unit_coords


# --------------------------------------------------------------------------- writing


def write_nwb(
    path: str | os.PathLike,
    *,
    subject_id: str,
    spike_times: Sequence[np.ndarray],
    trials: pd.DataFrame,
    unit_columns: Mapping[str, Sequence] | None = None,
    session_description: str,
    notes: str = "",
    session_start_time: datetime | None = None,
    overwrite: bool = False,
    unit_ids: Sequence[int] | np.ndarray | None = None,
    subject: Mapping[str, str] | None = None,
    spike_time_resolution: float | None = None,
) -> Path:
    """Write spike times and a trials table as a standard NWB file (atomically).

    The file passes ``nwbinspector`` without a CRITICAL or BEST_PRACTICE_VIOLATION issue
    when ``spike_time_resolution`` is given.

    Parameters
    ----------
    path
        Output ``.nwb`` file.
    subject_id
        Animal id, stored as ``nwbfile.subject.subject_id``.
    spike_times
        One array of spike times (seconds, session clock) per unit; may be empty.
    trials
        One row per trial with ``start_time`` and ``stop_time`` (seconds) and any other
        columns (``str``, ``int``, ``bool`` or ``float``), e.g. ``odor_onset``, ``odor``,
        ``position``. An integer index gives the trial ids (``0..n-1`` otherwise).
    unit_columns
        Per-unit metadata (location, quality, ...), each of length ``len(spike_times)``.
    session_description
        Free-text description of the session.
    notes
        Stored as ``nwbfile.notes`` (e.g. that spike times are only known to within a bin).
    session_start_time
        Timezone-aware start of the session; the current UTC time when omitted.
    overwrite
        Replace an existing ``path``.
    unit_ids
        Ids of the units (``0..n-1`` when omitted).
    subject
        Subject fields (``species``, ``sex``, ``age``, ``strain``, ``description``,
        ...) over :data:`DEFAULT_SUBJECT`: neurovamp's animals are rats
        (``Rattus norvegicus``) of unknown sex (``"U"``) and age (``"P0D/"``, the
        ISO 8601 range "0 days or older"); pass the real values where known.
    spike_time_resolution
        Smallest possible difference between two spike times, seconds (the bin width
        for spikes placed inside bins); the units table's ``resolution``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    DataError
        If trials lack ``start_time``/``stop_time``, hold NaN times or unsupported
        column types, or the unit arrays are inconsistent.
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    from hdmf.common import ElementIdentifiers, VectorData, VectorIndex
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.epoch import TimeIntervals
    from pynwb.file import Subject
    from pynwb.misc import Units

    path = Path(path)
    trial_columns, trial_ids = _trial_columns(path, trials)
    times, ends, ids, unit_cols = _unit_columns(path, spike_times, unit_columns, unit_ids)
    if session_start_time is None:
        session_start_time = datetime.now(timezone.utc)
    elif session_start_time.tzinfo is None:
        raise DataError(f"{path}: session_start_time must be timezone-aware, got {session_start_time}")

    fields = {"description": f"subject {subject_id}", **DEFAULT_SUBJECT, **dict(subject or {})}
    nwbfile = NWBFile(
        session_description=session_description,
        identifier=str(uuid.uuid4()),
        session_start_time=session_start_time,
        subject=Subject(subject_id=str(subject_id), **fields),
        notes=notes or None,
    )
    nwbfile.trials = TimeIntervals(
        name="trials",
        description="trials",
        id=ElementIdentifiers(name="id", data=trial_ids),
        columns=[
            VectorData(name=name, description=_trial_description(name), data=values)
            for name, values in trial_columns.items()
        ],
    )
    spike_data = VectorData(name="spike_times", description="spike times, seconds (session clock)", data=times)
    columns: list[Any] = [spike_data, VectorIndex(name="spike_times_index", data=ends, target=spike_data)]
    columns += [VectorData(name=name, description=f"unit {name}", data=values) for name, values in unit_cols.items()]
    resolution = {} if spike_time_resolution is None else {"resolution": float(spike_time_resolution)}
    nwbfile.units = Units(
        name="units", description="sorted units", id=ElementIdentifiers(name="id", data=ids), columns=columns,
        **resolution,
    )
    with atomic_output(path, overwrite=overwrite) as tmp, warnings.catch_warnings():
        # the temporary name ends in .tmp; the final name is the caller's
        warnings.filterwarnings("ignore", message="The file path provided.*does not end in '.nwb'")
        with NWBHDF5IO(str(tmp), mode="w") as io:
            io.write(nwbfile)
    return path


def _trial_description(name: str) -> str:
    if name == "start_time":
        return "start of the trial, seconds"
    if name == "stop_time":
        return "end of the trial, seconds"
    return _STANDARD_TRIAL_DESCRIPTIONS.get(name, f"trial column {name}")


def _column_array(path: Path, what: str, name: str, values: Any) -> np.ndarray:
    """One table column as a numpy array NWB can store (str as object, bool, int64, float64)."""
    series = pd.Series(values)
    if series.isna().any() and not pd.api.types.is_float_dtype(series.dtype):
        raise DataError(f"{path}: {what} column {name!r} has missing values; only float columns may hold NaN")
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(dtype):
        return series.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(dtype):
        return series.to_numpy(dtype=float, na_value=np.nan)
    items = series.tolist()
    if all(isinstance(item, str) for item in items):
        return np.array(items, dtype=object)
    raise DataError(
        f"{path}: {what} column {name!r} has unsupported dtype {dtype}; expected str, int, bool or float"
    )


def _trial_columns(path: Path, trials: pd.DataFrame) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Validated trials columns (start/stop first) and trial ids."""
    if not isinstance(trials, pd.DataFrame):
        raise DataError(f"{path}: trials must be a pandas DataFrame, got {type(trials).__name__}")
    missing = [name for name in ("start_time", "stop_time") if name not in trials.columns]
    if missing:
        raise DataError(f"{path}: trials table lacks column(s) {missing}; start_time and stop_time are required")
    if len(trials) == 0:
        raise DataError(f"{path}: trials table is empty; expected at least one trial")
    columns: dict[str, np.ndarray] = {}
    for name in ["start_time", "stop_time"] + [c for c in trials.columns if c not in ("start_time", "stop_time")]:
        if not isinstance(name, str) or not name or name == "id":
            raise DataError(f"{path}: invalid trials column name {name!r}")
        columns[name] = _column_array(path, "trials", name, trials[name])
    start, stop = columns["start_time"], columns["stop_time"]
    if start.dtype.kind != "f" or not (np.isfinite(start).all() and np.isfinite(stop).all()):
        raise DataError(f"{path}: trials start_time/stop_time must be finite seconds")
    if np.any(stop < start):
        raise DataError(f"{path}: trials stop_time is before start_time in {int(np.sum(stop < start))} trial(s)")
    if pd.api.types.is_integer_dtype(trials.index.dtype):
        trial_ids = trials.index.to_numpy(dtype=np.int64)
        if len(np.unique(trial_ids)) != len(trial_ids):
            raise DataError(f"{path}: trials index (trial ids) must be unique")
    else:
        trial_ids = np.arange(len(trials), dtype=np.int64)
    return columns, trial_ids


def _unit_columns(
    path: Path,
    spike_times: Sequence[np.ndarray],
    unit_columns: Mapping[str, Sequence] | None,
    unit_ids: Sequence[int] | np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Concatenated spike times, index ends, unit ids and validated unit columns."""
    arrays = [np.asarray(times, dtype=float).ravel() for times in spike_times]
    n_units = len(arrays)
    if n_units == 0:
        raise DataError(f"{path}: spike_times is empty; expected one array per unit")
    times = np.concatenate(arrays)
    if not np.isfinite(times).all():
        raise DataError(f"{path}: spike_times contain NaN or inf")
    ends = np.cumsum([a.size for a in arrays]).astype(np.int64)
    ids = np.arange(n_units, dtype=np.int64) if unit_ids is None else np.asarray(unit_ids, dtype=np.int64)
    if ids.shape != (n_units,) or len(np.unique(ids)) != n_units:
        raise DataError(f"{path}: unit_ids must be {n_units} unique integers, got shape {ids.shape}")
    columns = {}
    for name, values in (unit_columns or {}).items():
        if name in ("id", "spike_times", "spike_times_index"):
            raise DataError(f"{path}: unit column name {name!r} is reserved")
        array = _column_array(path, "unit", name, np.asarray(values))
        if array.shape != (n_units,):
            raise DataError(f"{path}: unit column {name!r} has {array.size} values, expected {n_units}")
        columns[name] = array
    return times, ends, ids, columns


def counts_to_spike_times(counts: np.ndarray, first_edges: np.ndarray, bin_size: float) -> list[np.ndarray]:
    """Turn binned counts back into spike times, evenly spread inside each bin.

    A count of ``k`` in the bin ``[a, a + bin_size)`` becomes ``k`` spikes at
    ``a + bin_size * (j + 0.5) / k`` for ``j = 0..k-1`` (one spike sits at the bin
    centre); every spike lies at least ``bin_size / (2k)`` from the edges, so binning the
    spikes again on the same grid gives back exactly ``counts``.

    Parameters
    ----------
    counts
        Non-negative integer counts, shape ``(n_trials, n_units, n_bins)``.
    first_edges
        Absolute left edge of each trial's first bin (session clock), ``(n_trials,)``.
    bin_size
        Bin width, seconds.

    Returns
    -------
    list of numpy.ndarray
        Sorted spike times of each unit (``n_units`` arrays).
    """
    counts = np.asarray(counts)
    first_edges = np.asarray(first_edges, dtype=float)
    per_unit = np.moveaxis(counts, 1, 0).astype(np.int64)  # (unit, trial, bin)
    unit, trial, bin_index = np.nonzero(per_unit)
    k = per_unit[unit, trial, bin_index]
    owner = np.repeat(np.arange(k.size), k)
    rank = np.arange(owner.size) - np.repeat(np.cumsum(k) - k, k)
    times = first_edges[trial[owner]] + bin_size * (bin_index[owner] + (rank + 0.5) / k[owner])
    spike_unit = unit[owner]
    times = times[np.lexsort((times, spike_unit))]
    ends = np.cumsum(per_unit.sum(axis=(1, 2)))
    return np.split(times, ends[:-1])


def modality_to_nwb(
    da: xr.DataArray,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    trial_duration: float | None = None,
    subject: Mapping[str, str] | None = None,
) -> Path:
    """Write a modality back as an NWB file that reads back to the same counts.

    Spikes are placed with :func:`counts_to_spike_times` (a single spike at its bin
    centre). The trials table holds ``start_time``, ``stop_time``, the event column named
    ``da.attrs["event"]`` (from the ``event_time`` coordinate) and every label
    coordinate; unit ids and unit coordinates become the units table. Reading the file
    with ``read_nwb(path, event=da.attrs["event"], window=(window_start, window_stop),
    bin_size=bin_size, labels=label_names(da))`` returns ``da``'s counts and coordinates.

    Parameters
    ----------
    da
        A modality; its counts must be integer-valued and its trial windows
        (``event_time + [window_start, window_stop)``) must not overlap.
    path
        Output ``.nwb`` file.
    overwrite
        Replace an existing ``path``.
    trial_duration
        ``stop_time - start_time`` of every trial, seconds. By default each trial spans
        from ``min(window_start, 0)`` to ``max(window_stop, 0)`` around its event. When the
        event is ``start_time`` (``stop_time``) the trial starts (ends) at the event.
    subject
        Subject fields (species, sex, age, ...), as in :func:`write_nwb`.

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    A unit whose counts are all zero becomes a unit without spikes, so such a file must
    be read back with ``allow_silent_units=True``. The units' ``resolution`` is the bin
    width: nwbinspector reports bins wider than 10 ms as a resolution "unexpectedly
    large", which is true of spike times only known to within such a bin.

    Raises
    ------
    DataError
        If the counts are not whole numbers, trial windows overlap, or
        ``trial_duration`` is negative.
    """
    path = Path(path)
    validate_modality(da)
    where = da.attrs.get("source") or da.attrs["animal"]
    values = np.asarray(da.values)
    counts = np.rint(values).astype(np.int64)
    if not np.array_equal(counts, values):
        raise DataError(f"{where}: counts must be whole numbers to be written as spikes")
    event = str(da.attrs["event"])
    bin_size = float(da.attrs["bin_size"])
    window_start, window_stop = float(da.attrs["window_start"]), float(da.attrs["window_stop"])
    event_time = np.asarray(da["event_time"].values, dtype=float)

    first_edges = event_time + window_start
    order = np.argsort(first_edges, kind="stable")
    gaps = first_edges[order][1:] - (event_time[order][:-1] + window_stop)
    if np.any(gaps < -EDGE_TOLERANCE * bin_size):
        raise DataError(
            f"{where}: trial windows overlap on the session clock (event_time + [{window_start}, "
            f"{window_stop}) s), so spikes cannot be placed in one trial only"
        )
    lo, hi = min(window_start, 0.0), max(window_stop, 0.0)
    duration = hi - lo if trial_duration is None else float(trial_duration)
    if not np.isfinite(duration) or duration < 0:
        raise DataError(f"{path}: trial_duration must be a non-negative number of seconds, got {trial_duration}")
    if event == "stop_time":
        start, stop = event_time - duration, event_time
    elif event == "start_time":
        start, stop = event_time, event_time + duration
    else:
        start = event_time + lo
        stop = start + duration

    table: dict[str, np.ndarray] = {"start_time": start, "stop_time": stop}
    if event not in table:
        table[event] = event_time
    for name in label_names(da):
        if name not in table:
            table[name] = np.asarray(da[name].values)
    trials = pd.DataFrame(table, index=pd.Index(np.asarray(da["trial"].values), name="id"))
    unit_coords = {
        name: np.asarray(coord.values)
        for name, coord in da.coords.items()
        if coord.dims == ("unit",) and name != "unit"
    }
    return write_nwb(
        path,
        subject_id=str(da.attrs["animal"]),
        spike_times=counts_to_spike_times(counts, first_edges, bin_size),
        trials=trials,
        unit_columns=unit_coords,
        unit_ids=np.asarray(da["unit"].values),
        session_description=f"binned spike counts of {da.attrs['animal']} written back by neurovamp",
        notes=(
            f"Written from binned counts ({bin_size} s bins): spike times are only known to within "
            "their bin; a count of k places k spikes evenly inside the bin."
        ),
        overwrite=overwrite,
        subject=subject,
        spike_time_resolution=bin_size,
    )

