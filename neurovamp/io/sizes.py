"""How many trials and units an NWB file holds, read cheaply (for the memory budget)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["nwb_table_sizes", "nwb_spike_span"]


def nwb_table_sizes(path: str | os.PathLike, trials: str = "trials") -> tuple[int, int] | None:
    """``(n_trials, n_units)`` of an NWB file from an intervals table and the ``units`` table.

    Parameters
    ----------
    path
        An NWB (HDF5) file.
    trials
        The intervals table the trials come from (``intervals/<trials>``).

    Returns
    -------
    tuple of int or None
        None when the file cannot be read this way (reading it properly reports why).
    """
    try:
        import h5py

        with h5py.File(Path(path), "r") as f:
            return int(f[f"intervals/{trials}/id"].shape[0]), int(f["units/id"].shape[0])
    except Exception:  # noqa: BLE001 - any failure is reported by read_nwb itself
        return None


def nwb_spike_span(path: str | os.PathLike) -> tuple[float, int] | None:
    """``(last spike time in s, n_units)`` of an NWB file, reading one spike per unit.

    Parameters
    ----------
    path
        An NWB (HDF5) file.

    Returns
    -------
    tuple or None
        None when the file cannot be read this way (reading it properly reports why).
    """
    try:
        import h5py
        import numpy as np

        with h5py.File(Path(path), "r") as f:
            ends = np.unique(np.asarray(f["units/spike_times_index"][:], dtype=np.int64))
            ends = ends[ends > 0] - 1
            n_units = int(f["units/id"].shape[0])
            if ends.size == 0:
                return 0.0, n_units
            return float(np.max(f["units/spike_times"][ends.tolist()])), n_units
    except Exception:  # noqa: BLE001 - any failure is reported by read_nwb itself
        return None
