"""The multi-animal set: one :class:`xarray.DataTree` node per animal.

Layout::

    /                     attrs: neurovamp = "dataset", format_version = 1, animals = [...]
    /<animal>             dataset with variable ``counts`` (the animal's modality); a later
                          ``lfp`` variable can sit beside it on the same trial coordinates

Every animal shares the same bins (``bin_size``, ``window_start``, ``window_stop``); the
set is saved to NetCDF with the h5netcdf engine (string and boolean labels and the
modality attributes round-trip).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from neurovamp._files import atomic_output
from neurovamp.data.modality import COUNTS, label_names, validate_modality
from neurovamp.errors import DataError

__all__ = [
    "DATASET_SUFFIXES",
    "make_dataset",
    "animals",
    "get_modality",
    "save_dataset",
    "load_dataset",
    "load_recordings",
]

_MARKER = "neurovamp"
_MARKER_VALUE = "dataset"
FORMAT_VERSION = 1
#: File suffixes :func:`load_recordings` treats as saved datasets (others are NWB).
DATASET_SUFFIXES = (".nc", ".nc4", ".netcdf")
_BIN_TOLERANCE = 1e-9


def _where(da: xr.DataArray) -> str:
    return str(da.attrs.get("source") or da.attrs.get("animal") or "modality")


def _describe_bins(da: xr.DataArray) -> str:
    return (
        f"{da.attrs['animal']} ({_where(da)}): {da.sizes['time']} bins of {da.attrs['bin_size']} s "
        f"from {da.attrs['window_start']} to {da.attrs['window_stop']} s"
    )


def _check_same_bins(modalities: Sequence[xr.DataArray]) -> None:
    """Raise DataError unless every modality has the first one's bins."""
    ref = modalities[0]
    keys = ("bin_size", "window_start", "window_stop")
    for da in modalities[1:]:
        same = da.sizes["time"] == ref.sizes["time"] and all(
            abs(float(da.attrs[k]) - float(ref.attrs[k])) <= _BIN_TOLERANCE for k in keys
        )
        if not same:
            raise DataError(
                "mismatched bins: every animal needs the same bin_size and window; "
                f"{_describe_bins(ref)}; {_describe_bins(da)}"
            )


def make_dataset(modalities: Iterable[xr.DataArray]) -> xr.DataTree:
    """Gather per-animal modalities into one multi-animal set.

    Parameters
    ----------
    modalities
        Modalities (see :mod:`neurovamp.data.modality`), one per animal, all with the
        same bins.

    Returns
    -------
    xarray.DataTree
        Root marked as a neurovamp dataset; one child node per animal, named by the
        animal id, holding the variable ``counts``.

    Raises
    ------
    DataError
        If there are no modalities, a modality is invalid, two share an animal id, an
        animal id is not a valid node name, or the bins differ ("mismatched bins").
    """
    mods = [validate_modality(da) for da in modalities]
    if not mods:
        raise DataError("no recordings given; expected at least one animal")
    seen: dict[str, xr.DataArray] = {}
    for da in mods:
        animal = str(da.attrs["animal"])
        if not animal or "/" in animal or animal in (".", ".."):
            raise DataError(f"{_where(da)}: animal id {animal!r} cannot name a dataset node")
        if animal in seen:
            raise DataError(
                f"duplicate animal id {animal!r} in {_where(seen[animal])} and {_where(da)}; "
                "each animal may appear once"
            )
        seen[animal] = da
    _check_same_bins(mods)
    root = xr.Dataset(attrs={_MARKER: _MARKER_VALUE, "format_version": FORMAT_VERSION, "animals": list(seen)})
    nodes: dict[str, xr.Dataset] = {"/": root}
    nodes.update({animal: da.rename(COUNTS).to_dataset() for animal, da in seen.items()})
    return xr.DataTree.from_dict(nodes)


def animals(tree: xr.DataTree) -> list[str]:
    """Animal ids of a multi-animal set, in their stored order.

    Parameters
    ----------
    tree
        A set made by :func:`make_dataset` or :func:`load_dataset`.

    Returns
    -------
    list of str
        The child node names.
    """
    return list(tree.children)


def get_modality(tree: xr.DataTree, animal: str) -> xr.DataArray:
    """One animal's modality from a multi-animal set.

    Parameters
    ----------
    tree
        A multi-animal set.
    animal
        Animal id (node name).

    Returns
    -------
    xarray.DataArray
        The animal's ``counts`` with their coordinates and attributes.

    Raises
    ------
    DataError
        If the set has no such animal, or its node holds no ``counts``.
    """
    if animal not in tree.children:
        raise DataError(f"no animal {animal!r} in the dataset; animals: {', '.join(animals(tree)) or 'none'}")
    ds = tree[animal].to_dataset()
    if COUNTS not in ds:
        raise DataError(f"dataset node {animal!r} has no {COUNTS!r} variable")
    return ds[COUNTS]


def save_dataset(tree: xr.DataTree, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save a multi-animal set to NetCDF (h5netcdf engine), atomically.

    Parameters
    ----------
    tree
        A multi-animal set.
    path
        Output file (``.nc``).
    overwrite
        Replace an existing ``path``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    DataError
        If ``tree`` is not a neurovamp dataset.
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if tree.attrs.get(_MARKER) != _MARKER_VALUE:
        raise DataError(f"{path}: refusing to save a tree that was not made by make_dataset")
    for animal in animals(tree):
        validate_modality(get_modality(tree, animal))
    with atomic_output(path, overwrite=overwrite) as tmp:
        tree.to_netcdf(tmp, engine="h5netcdf")
    return path


def _normalise(da: xr.DataArray) -> xr.DataArray:
    """Undo NetCDF storage details: text coords back to ``str``, numpy scalar attrs to Python."""
    for name, coord in da.coords.items():
        values = coord.values
        if values.dtype == object and all(isinstance(v, str) for v in values.ravel().tolist()):
            da = da.assign_coords({name: (coord.dims, values.astype(str))})
    attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in da.attrs.items()}
    da.attrs = attrs
    return da


def load_dataset(path: str | os.PathLike) -> xr.DataTree:
    """Load a multi-animal set saved by :func:`save_dataset` into memory.

    Parameters
    ----------
    path
        NetCDF file.

    Returns
    -------
    xarray.DataTree
        The set, fully loaded (the file is closed), every modality validated.

    Raises
    ------
    DataError
        If the file is missing, not NetCDF/HDF5, not a neurovamp dataset, or a modality
        in it is invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: dataset file not found")
    try:
        tree = xr.load_datatree(path, engine="h5netcdf")
    except Exception as exc:  # h5py/h5netcdf raise many types for bad files
        raise DataError(f"{path}: not a readable NetCDF dataset ({type(exc).__name__}: {exc})") from exc
    if tree.attrs.get(_MARKER) != _MARKER_VALUE:
        raise DataError(
            f"{path}: not a neurovamp dataset (root attribute {_MARKER!r} = {_MARKER_VALUE!r} missing); "
            "save one with save_dataset"
        )
    stored = tree.attrs.get("animals")
    order = [str(a) for a in np.atleast_1d(stored)] if stored is not None else list(tree.children)
    if sorted(order) != sorted(tree.children):
        order = list(tree.children)
    modalities = []
    for animal in order:
        try:
            modalities.append(_normalise(get_modality(tree, animal)))
        except DataError as exc:
            raise DataError(f"{path}: animal {animal!r}: {exc}") from exc
    try:
        return make_dataset(modalities)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc


def load_recordings(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    event: str = "start_time",
    window: tuple[float, float] = (0.0, 0.5),
    bin_size: float = 0.01,
    labels: Sequence[str] | None = None,
    allow_silent_units: bool = False,
    drop_missing_events: bool = False,
) -> xr.DataTree:
    """Load NWB files and/or saved datasets into one multi-animal set.

    Parameters
    ----------
    paths
        One path or several: NWB files (one animal each) and/or a saved dataset
        (suffix ``.nc``, ``.nc4`` or ``.netcdf``).
    event, window, bin_size, allow_silent_units, drop_missing_events
        Binning of NWB files, as in :func:`neurovamp.io.nwb.read_nwb`. A saved dataset
        keeps its own bins; mixing it with NWB files requires the same bins.
    labels
        Trial label columns to keep (all when ``None``); applied to NWB files and saved
        datasets alike.

    Returns
    -------
    xarray.DataTree
        The set (see :func:`make_dataset`).

    Raises
    ------
    DataError
        For unreadable files, missing labels, an animal id that appears twice, or
        "mismatched bins" across animals.
    """
    from neurovamp.io.nwb import read_nwb  # lazy: keeps pynwb out of `import neurovamp.data`

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise DataError("no recordings given; expected NWB files or a saved dataset (.nc)")
    _check_binning_memory([p for p in paths if p.suffix.lower() not in DATASET_SUFFIXES], window, bin_size)
    modalities: list[xr.DataArray] = []
    for path in paths:
        if path.is_dir():
            raise DataError(f"{path}: is a folder; expected an NWB file or a saved dataset (.nc)")
        if path.suffix.lower() in DATASET_SUFFIXES:
            tree = load_dataset(path)
            for animal in animals(tree):
                modalities.append(_select_labels(get_modality(tree, animal), labels, path))
        else:
            try:
                modalities.append(
                    read_nwb(
                        path, event=event, window=window, bin_size=bin_size, labels=labels,
                        allow_silent_units=allow_silent_units, drop_missing_events=drop_missing_events,
                    )
                )
            except OSError as exc:  # HDF5 data that opened but cannot be read (a damaged chunk, a failing disk)
                detail = " ".join(str(exc).split()) or type(exc).__name__
                raise DataError(f"{path}: part of the file cannot be read ({detail}); the file is damaged") from None
    return make_dataset(modalities)


def _check_binning_memory(paths: Sequence[Path], window: tuple[float, float], bin_size: float) -> None:
    """Refuse, before binning, NWB files whose counts (and the copies made of them) cannot fit in memory."""
    from neurovamp._budget import check_memory
    from neurovamp.io.sizes import nwb_table_sizes

    try:
        n_bins = (float(window[1]) - float(window[0])) / float(bin_size)
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return  # read_nwb names the bad option
    if not np.isfinite(n_bins) or n_bins <= 0:
        return
    cells = 0.0
    for path in paths:
        sizes = nwb_table_sizes(path) if path.is_file() else None
        if sizes is not None:
            cells += sizes[0] * sizes[1] * n_bins
    # int32 counts, the float32 copy pairing keeps, and one working copy: 3 x 4 bytes per bin
    check_memory(cells * 12, f"binning {len(paths)} file{'s' if len(paths) != 1 else ''} at {float(bin_size):g} s "
                 f"bins ({n_bins:.0f} bins per trial)", "use a larger --bin or a shorter --window")


def _select_labels(da: xr.DataArray, labels: Sequence[str] | None, path: Path) -> xr.DataArray:
    """Keep only the requested label coordinates of a loaded modality."""
    if labels is None:
        return da
    if isinstance(labels, str):
        labels = [labels]
    present = label_names(da)
    missing = [name for name in labels if name not in present]
    if missing:
        raise DataError(
            f"{path}: animal {da.attrs['animal']!r} has no label(s) {missing}; available labels: {', '.join(present)}"
        )
    return da.drop_vars([name for name in present if name not in labels])
