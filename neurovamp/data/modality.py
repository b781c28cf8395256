"""The per-animal *modality*: binned spike counts as a labelled :class:`xarray.DataArray`.

Schema (checked by :func:`validate_modality`)::

    name   "counts"
    dims   ("trial", "unit", "time")
    values non-negative, finite spike counts per bin (integer-valued)
    coords trial      trial ids (int), from the NWB trials table
           <label>    (trial,) one per chosen trials column: odor, position, in_sequence, correct, ...
           event_time (trial,) the alignment event on the session clock, seconds
           unit       unit ids (int); unit columns (location, quality, ...) as (unit,) coords
           time       bin centres in seconds relative to the event
    attrs  animal        subject id
           bin_size      seconds
           window_start  seconds relative to the event (left edge of the first bin)
           window_stop   seconds relative to the event (right edge of the last bin)
           event         name of the trials column the bins are aligned to
           source        file the counts were read from ("" when built in memory)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from neurovamp.errors import DataError

__all__ = [
    "COUNTS",
    "DIMS",
    "make_modality",
    "validate_modality",
    "label_names",
    "bin_edges",
]

COUNTS = "counts"
DIMS = ("trial", "unit", "time")
_RESERVED_TRIAL_COORDS = ("trial", "event_time")


def make_modality(
    counts: np.ndarray,
    *,
    animal: str,
    bin_size: float,
    window_start: float,
    trial_ids: Sequence[int] | np.ndarray | None = None,
    trial_labels: Mapping[str, Sequence | np.ndarray] | None = None,
    event_time: Sequence[float] | np.ndarray | None = None,
    unit_ids: Sequence[int] | np.ndarray | None = None,
    unit_coords: Mapping[str, Sequence | np.ndarray] | None = None,
    event: str = "start_time",
    source: str = "",
) -> xr.DataArray:
    """Build a validated modality from a ``(trial, unit, time)`` count array.

    Parameters
    ----------
    counts
        Spike counts, shape ``(n_trials, n_units, n_bins)``.
    animal
        Animal (subject) id.
    bin_size
        Bin width in seconds.
    window_start
        Left edge of the first bin, seconds relative to the event.
    trial_ids, unit_ids
        Ids for the trial and unit axes; ``0..n-1`` when omitted.
    trial_labels
        Per-trial label arrays (odor, position, ...), each of length ``n_trials``.
    event_time
        Event times on the session clock; NaN-free. Zeros when omitted.
    unit_coords
        Per-unit metadata arrays, each of length ``n_units``.
    event
        Name of the trials column the bins are aligned to.
    source
        File the counts came from, for error messages.

    Returns
    -------
    xarray.DataArray
        The modality (see the module docstring for the schema).
    """
    counts = np.asarray(counts)
    if counts.ndim != 3:
        raise DataError(f"{source or animal}: counts must be (trial, unit, time), got shape {counts.shape}")
    n_trials, n_units, n_bins = counts.shape
    trial_ids = np.arange(n_trials) if trial_ids is None else np.asarray(trial_ids)
    unit_ids = np.arange(n_units) if unit_ids is None else np.asarray(unit_ids)
    event_time = np.zeros(n_trials) if event_time is None else np.asarray(event_time, dtype=float)
    time = window_start + bin_size * (np.arange(n_bins) + 0.5)
    coords: dict[str, tuple[str, np.ndarray] | np.ndarray] = {
        "trial": trial_ids,
        "unit": unit_ids,
        "time": time,
        "event_time": ("trial", event_time),
    }
    for name, values in (trial_labels or {}).items():
        if name in _RESERVED_TRIAL_COORDS:
            raise DataError(f"{source or animal}: trial label name {name!r} is reserved")
        coords[name] = ("trial", np.asarray(values))
    for name, values in (unit_coords or {}).items():
        coords[name] = ("unit", np.asarray(values))
    da = xr.DataArray(
        counts,
        dims=DIMS,
        coords=coords,
        name=COUNTS,
        attrs={
            "animal": str(animal),
            "bin_size": float(bin_size),
            "window_start": float(window_start),
            "window_stop": float(window_start + bin_size * n_bins),
            "event": str(event),
            "source": str(source),
        },
    )
    return validate_modality(da)


def validate_modality(da: xr.DataArray) -> xr.DataArray:
    """Check that ``da`` follows the modality schema.

    Parameters
    ----------
    da
        Candidate modality.

    Returns
    -------
    xarray.DataArray
        ``da`` itself, unchanged.

    Raises
    ------
    DataError
        Naming the animal/source and the field that is wrong.
    """
    where = da.attrs.get("source") or da.attrs.get("animal") or "modality"
    if tuple(da.dims) != DIMS:
        raise DataError(f"{where}: modality dims must be {DIMS}, got {tuple(da.dims)}")
    for key in ("animal", "bin_size", "window_start", "window_stop", "event"):
        if key not in da.attrs:
            raise DataError(f"{where}: modality is missing attribute {key!r}")
    if da.sizes["trial"] == 0:
        raise DataError(f"{where}: animal {da.attrs['animal']!r} has no trials")
    if da.sizes["unit"] == 0:
        raise DataError(f"{where}: animal {da.attrs['animal']!r} has no units")
    if da.sizes["time"] == 0:
        raise DataError(f"{where}: modality has no time bins")
    values = np.asarray(da.values)
    if not np.issubdtype(values.dtype, np.number):
        raise DataError(f"{where}: counts must be numeric, got dtype {values.dtype}")
    if not np.all(np.isfinite(values)):
        raise DataError(f"{where}: counts contain NaN or infinite values")
    if np.any(values < 0):
        raise DataError(f"{where}: counts must be non-negative")
    if "event_time" in da.coords and not np.all(np.isfinite(np.asarray(da["event_time"], dtype=float))):
        raise DataError(f"{where}: event_time contains NaN; every trial needs an event time")
    for dim in ("trial", "unit"):
        index = da.indexes.get(dim)
        if index is not None and not index.is_unique:
            raise DataError(f"{where}: {dim} ids must be unique")
    return da


def label_names(da: xr.DataArray) -> list[str]:
    """Names of the trial label coordinates of a modality (odor, position, ...).

    Parameters
    ----------
    da
        A modality.

    Returns
    -------
    list of str
        Every non-index coordinate on the ``trial`` dimension except ``event_time``.
    """
    return [
        name
        for name, coord in da.coords.items()
        if coord.dims == ("trial",) and name not in _RESERVED_TRIAL_COORDS
    ]


def bin_edges(da: xr.DataArray) -> np.ndarray:
    """Bin edges in seconds relative to the event (``n_bins + 1`` values).

    Parameters
    ----------
    da
        A modality.

    Returns
    -------
    numpy.ndarray
        Edges from ``window_start`` to ``window_stop``.
    """
    n = da.sizes["time"]
    return da.attrs["window_start"] + da.attrs["bin_size"] * np.arange(n + 1)
