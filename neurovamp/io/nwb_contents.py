"""What an NWB file holds beyond spikes: its behaviour and other time series.

:func:`find_series` finds a behaviour series by name, :func:`bin_behavior` puts it on the
bins of a modality and :func:`list_series` lists a file's series (the file listing of
``neurovamp info``, :func:`neurovamp.io.nwb_info.describe_nwb`, is built on it).

Behaviour on bins
-----------------
A bin's value is the mean of the series' samples whose timestamps fall in the bin
(half-open, as spikes). A bin without a sample (a series sampled more slowly than the
bins) takes the linear interpolation of the samples around its centre. A bin is *not
covered* when its centre lies outside the series' first to last finite sample, or inside
a gap between samples longer than ``max(2 * bin_size, 10 * median sampling interval)``;
a trial (window) with an uncovered bin is not covered. Samples with a NaN in any
dimension are ignored. Values are ``data * conversion + offset`` in the series' unit.
Angles (e.g. ``CompassDirection``) are averaged as plain numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurovamp.errors import DataError

__all__ = ["SeriesData", "BinnedBehavior", "find_series", "bin_behavior", "list_series"]

#: Component names of a SpatialSeries with up to three columns.
_AXES = ("x", "y", "z")


@dataclass(frozen=True)
class SeriesData:
    """One behaviour series read from a file.

    Attributes
    ----------
    name
        The name asked for (a series or a container of series).
    where
        Its place in the file, e.g. ``acquisition/Position``.
    timestamps
        Sample times on the session clock, seconds, shape ``(n_samples,)``.
    values
        Samples in ``unit``, shape ``(n_samples, n_dims)``.
    dims
        Name of each dimension (``x``, ``y``, ``z`` or the series' names in a container).
    unit
        Unit of measure (``""`` when the file gives none).
    """

    name: str
    where: str
    timestamps: np.ndarray
    values: np.ndarray
    dims: tuple[str, ...]
    unit: str

    @property
    def variable(self) -> str:
        """Variable name in a dataset: the name in lower case, other characters as ``_``."""
        return re.sub(r"\W+", "_", self.name.split("/")[-1]).strip("_").lower() or "behavior"

    def label_names(self) -> list[str]:
        """Names of the trial-mean labels, ``<variable>_<dim>`` (e.g. ``position_x``).

        A label cannot share the variable's name (one Dataset holds both); a single
        dimension named as the variable (a lone series ``speed``) gives ``speed_value``.
        """
        return [f"{self.variable}_{'value' if d.lower() == self.variable else d}" for d in self.dims]


@dataclass(frozen=True)
class BinnedBehavior:
    """A behaviour series on a modality's bins.

    Attributes
    ----------
    series
        The series (without its samples' arrays being copied).
    values
        Bin values, shape ``(n_trials, n_bins, n_dims)``; NaN in uncovered bins.
    covered
        Whether every bin of a trial is covered, shape ``(n_trials,)``.
    """

    series: SeriesData
    values: np.ndarray
    covered: np.ndarray

    @property
    def variable(self) -> str:
        """The variable name (see :attr:`SeriesData.variable`)."""
        return self.series.variable

    def subset(self, keep: np.ndarray) -> BinnedBehavior:
        """The same behaviour on the trials ``keep`` selects."""
        return BinnedBehavior(self.series, self.values[keep], self.covered[keep])

    def describe(self) -> str:
        """Where the series is and the time it spans."""
        t = self.series.timestamps
        span = f"{t.min():.6g} to {t.max():.6g} s" if t.size else "no samples"
        return f"{self.series.name!r} ({self.series.where}) spans {span}"

    def variables(self, labels: Mapping[str, Any], reserved: Sequence[str]) -> tuple[xr.DataArray, dict[str, np.ndarray]]:
        """The ``(trial, time, <name>_dim)`` variable and the trial-mean labels.

        Parameters
        ----------
        labels
            Labels the modality has already (a behaviour label may not replace one).
        reserved
            Names no label may take.

        Returns
        -------
        tuple
            The variable (attrs ``unit``, ``series``) and ``{label: trial means}``.
        """
        name = self.variable
        dim = f"{name}_dim"
        var = xr.DataArray(
            self.values,
            dims=("trial", "time", dim),
            coords={dim: list(self.series.dims)},
            name=name,
            attrs={"unit": self.series.unit, "series": self.series.where},
        )
        means = self.values.mean(axis=1)
        new = {label: means[:, k] for k, label in enumerate(self.series.label_names())}
        clash = [label for label in new if label in labels or label in reserved or label == "counts"]
        if clash:
            raise DataError(
                f"{self.series.where}: behaviour label(s) {clash} would replace a trial label or reserved name"
            )
        return var, new


# --------------------------------------------------------------------------- finding series
def _is_series(obj: Any) -> bool:
    from pynwb.base import TimeSeries

    return isinstance(obj, TimeSeries)


def _children(obj: Any) -> list[Any]:
    """Time series held by a container (Position, CompassDirection, BehavioralTimeSeries, ...)."""
    return [child for child in getattr(obj, "children", ()) if _is_series(child)]


def list_series(nwbfile: Any) -> dict[str, tuple[str, Any]]:
    """Every time series of the file and every container of them, by the names they can be asked for.

    Parameters
    ----------
    nwbfile
        An open :class:`pynwb.NWBFile`.

    Returns
    -------
    dict
        ``{name: (where, object)}`` for ``acquisition`` and each processing module: a
        series by its name, a container by its name, and a series in a container also
        as ``container/series``.
    """
    found: dict[str, tuple[str, Any]] = {}
    places: list[tuple[str, Mapping[str, Any]]] = [("acquisition", nwbfile.acquisition)]
    for module_name, module in (nwbfile.processing or {}).items():
        places.append((f"processing/{module_name}", module.data_interfaces))
    for prefix, objects in places:
        for name, obj in objects.items():
            where = f"{prefix}/{name}"
            if _is_series(obj):
                found.setdefault(name, (where, obj))
            elif _children(obj):
                found.setdefault(name, (where, obj))
                for child in _children(obj):
                    found.setdefault(f"{name}/{child.name}", (f"{where}/{child.name}", child))
                    found.setdefault(child.name, (f"{where}/{child.name}", child))
    return found


def _read_one(series: Any, path: Path, where: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Timestamps, ``(n, d)`` values in unit and the unit of one TimeSeries."""
    data = np.asarray(series.data[:])
    if data.dtype.kind not in "fiub":
        raise DataError(f"{path}: {where} holds {data.dtype} data; a behaviour series must be numeric")
    data = data.astype(float).reshape(data.shape[0], -1)
    conversion = float(getattr(series, "conversion", 1.0) or 1.0)
    offset = float(getattr(series, "offset", 0.0) or 0.0)
    values = data * conversion + offset
    if series.timestamps is not None:
        timestamps = np.asarray(series.timestamps[:], dtype=float)
    else:
        rate = series.rate
        if not rate:
            raise DataError(f"{path}: {where} has neither timestamps nor a sampling rate")
        timestamps = float(series.starting_time or 0.0) + np.arange(values.shape[0]) / float(rate)
    if timestamps.shape[0] != values.shape[0]:
        raise DataError(f"{path}: {where} has {timestamps.shape[0]} timestamps for {values.shape[0]} samples")
    return timestamps, values, str(series.unit or "")


def find_series(nwbfile: Any, path: str | Path, name: str) -> SeriesData:
    """Read a behaviour series (or a container of series sharing timestamps) by name.

    Parameters
    ----------
    nwbfile
        An open :class:`pynwb.NWBFile`.
    path
        The file, for messages.
    name
        A series name (``x``), a container name (``Position``: its series become the
        dimensions) or ``container/series`` (``Position/x``).

    Returns
    -------
    SeriesData

    Raises
    ------
    DataError
        If there is no such series (the message lists those there are), it is not
        numeric, or a container's series do not share their timestamps.
    """
    path = Path(path)
    found = list_series(nwbfile)
    if not isinstance(name, str) or name not in found:
        have = ", ".join(n for n in found if "/" not in n) or "none"
        raise DataError(
            f"{path}: no behaviour series {name!r}; time series and containers in the file: {have} "
            "(a series in a container can also be named CONTAINER/SERIES)"
        )
    where, obj = found[name]
    if _is_series(obj):
        timestamps, values, unit = _read_one(obj, path, where)
        if values.shape[1] == 1:
            dims: tuple[str, ...] = (obj.name,)
        elif values.shape[1] <= len(_AXES):
            dims = _AXES[: values.shape[1]]
        else:
            dims = tuple(str(k) for k in range(values.shape[1]))
        return SeriesData(name, where, timestamps, values, dims, unit)
    children = _children(obj)
    parts = [_read_one(child, path, f"{where}/{child.name}") for child in children]
    timestamps = parts[0][0]
    for child, (t, _, _) in zip(children[1:], parts[1:]):
        if t.shape != timestamps.shape or not np.allclose(t, timestamps):
            raise DataError(
                f"{path}: the series of {where} do not share timestamps; name one, e.g. {name}/{child.name}"
            )
    if len(children) == 1:
        single = children[0]
        dims = (single.name,) if parts[0][1].shape[1] == 1 else _AXES[: parts[0][1].shape[1]]
    else:
        dims = tuple(
            child.name if v.shape[1] == 1 else f"{child.name}_{k}"
            for child, (_, v, _) in zip(children, parts)
            for k in range(v.shape[1])
        )
    units = sorted({unit for _, _, unit in parts})
    values = np.concatenate([v for _, v, _ in parts], axis=1)
    return SeriesData(name, where, timestamps, values, tuple(dims), "/".join(u for u in units if u) if len(units) > 1 else units[0])


# --------------------------------------------------------------------------- binning
def bin_behavior(series: SeriesData, edges: np.ndarray, path: str | Path = "") -> BinnedBehavior:
    """Put a behaviour series on bins (see the module docstring for the rule).

    Parameters
    ----------
    series
        The series.
    edges
        Absolute bin edges, shape ``(n_trials, n_bins + 1)``.
    path
        The file, for messages.

    Returns
    -------
    BinnedBehavior
    """
    edges = np.asarray(edges, dtype=float)
    finite = np.all(np.isfinite(series.values), axis=1) & np.isfinite(series.timestamps)
    t = series.timestamps[finite]
    v = series.values[finite]
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    n_trials, n_edges = edges.shape
    n_dims = series.values.shape[1]
    out = np.full((n_trials, n_edges - 1, n_dims), np.nan)
    if t.size == 0:
        return BinnedBehavior(series, out, np.zeros(n_trials, dtype=bool))
    position = np.searchsorted(t, edges, side="left")  # (trial, edge)
    n_in = np.diff(position, axis=1)  # samples per bin
    csum = np.concatenate([np.zeros((1, n_dims)), np.cumsum(v, axis=0)])
    sums = csum[position[:, 1:]] - csum[position[:, :-1]]  # (trial, bin, dim)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / n_in[..., None]
    centres = 0.5 * (edges[:, 1:] + edges[:, :-1])
    interp = np.stack([np.interp(centres, t, v[:, d]) for d in range(n_dims)], axis=-1)
    out = np.where(n_in[..., None] > 0, means, interp)
    # coverage: a bin centre inside the samples' span and not inside a long gap
    steps = np.diff(t)
    median_dt = float(np.median(steps)) if steps.size else 0.0
    bin_size = float(np.median(np.diff(edges, axis=1))) if n_edges > 1 else 0.0
    max_gap = max(2.0 * bin_size, 10.0 * median_dt)
    right = np.searchsorted(t, centres, side="left")
    left = right - 1
    inside = (centres >= t[0]) & (centres <= t[-1])
    gap = t[np.clip(right, 0, t.size - 1)] - t[np.clip(left, 0, t.size - 1)]
    covered_bins = inside & ((n_in > 0) | (gap <= max_gap))
    out = np.where(covered_bins[..., None], out, np.nan)
    return BinnedBehavior(series, out, covered_bins.all(axis=1))
