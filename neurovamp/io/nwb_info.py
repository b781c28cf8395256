"""What an NWB file holds: its intervals tables, units (columns, locations) and time series.

:func:`describe_nwb` is what ``neurovamp info`` lists for a file (``--contents``, or a file
without a trials table to bin).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neurovamp.errors import DataError
from neurovamp.io.nwb import _as_label_array, _interval_tables, _open_nwb, _read_units
from neurovamp.io.nwb_contents import _children, _is_series, list_series

__all__ = ["describe_nwb"]


def _table_columns(table: Any) -> list[str]:
    from hdmf.common import VectorIndex

    ragged = {col.target.name for col in table.columns if isinstance(col, VectorIndex)}
    return [f"{name}[]" if name in ragged else name for name in table.colnames]


def describe_nwb(path: str | Path) -> dict[str, Any]:
    """List what an NWB file holds: intervals tables, units and time series.

    Parameters
    ----------
    path
        NWB file.

    Returns
    -------
    dict
        ``subject``, ``session``, ``intervals`` (``{name: {"rows", "columns"}}``; a
        ragged column is shown as ``name[]``), ``units`` (``{"count", "columns",
        "locations"}``, locations ``{value: units}`` from the units' own column or the
        electrodes they reference; ``None`` without a units table), ``electrodes``
        (``{location: electrodes}``) and ``series`` (``{name: {"where", "type",
        "shape", "unit", "start", "stop"}}``; containers list their series).

    Raises
    ------
    DataError
        If the file is missing or not NWB.
    """
    path = Path(path)
    with _open_nwb(path) as nwbfile:
        subject = getattr(getattr(nwbfile, "subject", None), "subject_id", None) or ""
        intervals = {
            name: {"rows": len(table), "columns": _table_columns(table)}
            for name, table in _interval_tables(nwbfile).items()
        }
        units: dict[str, Any] | None = None
        if nwbfile.units is not None:
            try:
                coords = _read_units(nwbfile, path, allow_silent_units=True)[3]
            except DataError:  # e.g. an empty units table: listed without locations
                coords = {}
            locations: dict[str, int] = {}
            if "location" in coords:
                values, counts = np.unique(coords["location"].astype(str), return_counts=True)
                locations = dict(zip(values.tolist(), counts.tolist()))
            units = {"count": len(nwbfile.units.id), "columns": list(nwbfile.units.colnames), "locations": locations}
        electrodes: dict[str, int] = {}
        if nwbfile.electrodes is not None and "location" in nwbfile.electrodes.colnames:
            values, counts = np.unique(_as_label_array(nwbfile.electrodes["location"].data[:]).astype(str), return_counts=True)
            electrodes = dict(zip(values.tolist(), counts.tolist()))
        series: dict[str, dict[str, Any]] = {}
        found = list_series(nwbfile)
        in_container = {id(child) for _, obj in found.values() for child in _children(obj)}
        for name, (where, obj) in found.items():
            if "/" in name or id(obj) in in_container or name in series:
                continue
            if _is_series(obj):
                t = obj.timestamps[:] if obj.timestamps is not None else None
                start = float(t[0]) if t is not None and len(t) else float(obj.starting_time or 0.0)
                stop = float(t[-1]) if t is not None and len(t) else (
                    start + (obj.data.shape[0] - 1) / float(obj.rate) if obj.rate else start
                )
                series[name] = {
                    "where": where, "type": type(obj).__name__, "shape": tuple(obj.data.shape),
                    "unit": str(obj.unit or ""), "start": start, "stop": stop,
                }
            else:
                series[name] = {
                    "where": where, "type": type(obj).__name__,
                    "series": [child.name for child in _children(obj)],
                }
        session = str(getattr(nwbfile, "session_id", None) or path.stem)
    return {
        "path": str(path), "subject": str(subject), "session": session, "intervals": intervals,
        "units": units, "electrodes": electrodes, "series": series,
    }
