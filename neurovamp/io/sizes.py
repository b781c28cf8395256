"""How many trials and units an NWB file holds, read cheaply (for the memory budget)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["nwb_table_sizes"]


def nwb_table_sizes(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(n_trials, n_units)`` of an NWB file from its ``intervals/trials`` and ``units`` tables.

    Parameters
    ----------
    path
        An NWB (HDF5) file.

    Returns
    -------
    tuple of int or None
        None when the file cannot be read this way (reading it properly reports why).
    """
    try:
        import h5py

        with h5py.File(Path(path), "r") as f:
            return int(f["intervals/trials/id"].shape[0]), int(f["units/id"].shape[0])
    except Exception:  # noqa: BLE001 - any failure is reported by read_nwb itself
        return None
