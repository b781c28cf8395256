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
from typing import Any

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
    "get_behavior",
    "save_dataset",
    "load_dataset",
    "dataset_nodes",
]

_MARKER = "neurovamp"
_MARKER_VALUE = "dataset"
FORMAT_VERSION = 1
#: File suffixes :func:`neurovamp.io.recordings.load_recordings` treats as saved datasets (others are NWB).
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


def _split_node(item: xr.DataArray | xr.Dataset) -> tuple[xr.DataArray, dict[str, xr.DataArray]]:
    """The counts modality of a node and its other variables (behaviour on the same bins)."""
    if isinstance(item, xr.DataArray):
        return validate_modality(item), {}
    if not isinstance(item, xr.Dataset) or COUNTS not in item:
        raise DataError(f"expected a modality (DataArray) or a Dataset holding {COUNTS!r}, got {type(item).__name__}")
    da = validate_modality(item[COUNTS])
    extras = {str(name): var for name, var in item.data_vars.items() if name != COUNTS}
    for name, var in extras.items():
        if var.dims[:2] != ("trial", "time") or var.sizes["trial"] != da.sizes["trial"] or var.sizes["time"] != da.sizes["time"]:
            raise DataError(
                f"{_where(da)}: variable {name!r} must lie on the counts' trials and bins, dims (trial, time, ...); "
                f"got {dict(var.sizes)}"
            )
    return da, extras


def make_dataset(modalities: Iterable[xr.DataArray | xr.Dataset]) -> xr.DataTree:
    """Gather per-animal modalities into one multi-animal set.

    Parameters
    ----------
    modalities
        Modalities (see :mod:`neurovamp.data.modality`), one per animal, all with the
        same bins; or Datasets holding the modality as ``counts`` beside other
        variables on its trials and bins (behaviour, ``(trial, time, ...)``), as
        :func:`neurovamp.io.nwb.read_nwb_dataset` returns.

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
    split = [_split_node(item) for item in modalities]
    mods = [da for da, _ in split]
    extras = {str(da.attrs["animal"]): more for da, more in split}
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
    for animal, da in seen.items():
        node = da.rename(COUNTS).to_dataset()
        for name, var in extras[animal].items():
            node[name] = var
        nodes[animal] = node
    return xr.DataTree.from_dict(nodes)


def get_behavior(tree: xr.DataTree, animal: str, name: str) -> xr.DataArray:
    """One animal's behaviour variable (``(trial, time, <name>_dim)``, attrs ``unit``).

    Parameters
    ----------
    tree
        A multi-animal set.
    animal
        Animal id (node name).
    name
        Variable name, e.g. ``"position"`` (read with ``behavior=["Position"]``).

    Returns
    -------
    xarray.DataArray

    Raises
    ------
    DataError
        If the animal or the variable is missing (the message lists the variables).
    """
    get_modality(tree, animal)  # the animal's own error when it is missing
    ds = tree[animal].to_dataset()
    if name not in ds.data_vars or name == COUNTS:
        have = [str(v) for v in ds.data_vars if v != COUNTS]
        raise DataError(
            f"animal {animal!r} has no behaviour variable {name!r}; variables: {', '.join(have) or 'none'} "
            "(read behaviour with behavior=NAME, CLI: --behavior NAME)"
        )
    return ds[name]


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


def _with_variables(counts: xr.DataArray, node: xr.Dataset, fix: Any = None) -> xr.Dataset:
    """``counts`` as a Dataset with the node's other variables (their own dimension coordinates only)."""
    out = counts.to_dataset()
    for name, var in node.data_vars.items():
        if name != COUNTS:
            var = var.drop_vars([c for c in var.coords if c not in var.dims])
            out[name] = fix(var) if fix is not None else var
    return out


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
            node = tree[animal].to_dataset()
            modalities.append(_with_variables(_normalise(get_modality(tree, animal)), node, _normalise))
        except DataError as exc:
            raise DataError(f"{path}: animal {animal!r}: {exc}") from exc
    try:
        return make_dataset(modalities)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc


def dataset_nodes(path: str | os.PathLike, labels: Sequence[str] | None = None) -> list[xr.Dataset]:
    """The animals of a saved set, one node each, keeping only some trial labels.

    Parameters
    ----------
    path
        A saved dataset (:func:`save_dataset`).
    labels
        Trial label columns to keep (all when ``None``).

    Returns
    -------
    list of xarray.Dataset
        One node per animal (``counts`` and the variables beside it), ready for
        :func:`make_dataset`.

    Raises
    ------
    DataError
        If the file is not a saved dataset, or an animal lacks one of ``labels``.
    """
    tree = load_dataset(path)
    return [
        _with_variables(_select_labels(get_modality(tree, animal), labels, Path(path)), tree[animal].to_dataset())
        for animal in animals(tree)
    ]


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
