"""Run folders: what ``neurovamp fit`` writes, and how later commands read it back.

A run folder ``RUN/`` holds::

    run.json         how the data was loaded, filtered, paired and split, and the model and
                     training settings (enough to rebuild the same PairedData); "status" is
                     "running" while training and "complete" once every output is written
    model/           the fitted model (MultiAnimalModel.save)
    history.csv      per-epoch losses
    loss.png         loss curves
    checkpoints/     training checkpoints (for --resume)

:func:`load_run` returns the model, the rebuilt :class:`~neurovamp.data.pairing.PairedData`
and the run description, for the ``evaluate``/``impute`` style commands.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurovamp._files import atomic_output
from neurovamp.data.dataset import animals as tree_animals
from neurovamp.data.dataset import get_modality, load_recordings
from neurovamp.data.modality import label_names
from neurovamp.data.pairing import PairedData, pair_trials
from neurovamp.errors import ConfigError, DataError

__all__ = [
    "RUN_FILE",
    "MODEL_DIR",
    "HISTORY_FILE",
    "LOSS_PLOT",
    "CHECKPOINT_DIR",
    "read_run_info",
    "write_run_info",
    "build_paired",
    "load_run",
    "parse_filters",
    "coerce_label_values",
]

RUN_FILE = "run.json"
MODEL_DIR = "model"
HISTORY_FILE = "history.csv"
LOSS_PLOT = "loss.png"
CHECKPOINT_DIR = "checkpoints"
RUN_FORMAT = "neurovamp-run"
RUN_VERSION = 1

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def parse_filters(items: Iterable[str] | None) -> dict[str, list[str]]:
    """Parse ``COL=VALUE`` options into ``{column: [value, ...]}`` (values as text).

    Repeating a column allows several values (``odor=A odor=B``); ``COL=V1,V2`` does too.

    Parameters
    ----------
    items
        Option strings.

    Returns
    -------
    dict
        Column to the list of allowed values (text, see :func:`coerce_label_values`).

    Raises
    ------
    ConfigError
        For an item without ``=`` or with an empty column or value.
    """
    out: dict[str, list[str]] = {}
    for item in items or ():
        column, sep, value = str(item).partition("=")
        column = column.strip()
        if not sep or not column or not value.strip():
            raise ConfigError(f"filter {item!r} must look like COLUMN=VALUE (e.g. correct=true or odor=A,B)")
        values = [v.strip() for v in value.split(",") if v.strip()]
        allowed = out.setdefault(column, [])
        for v in values:
            if v not in allowed:
                allowed.append(v)
    return out


def _coerce_one(text: str, kind: str, label: str) -> Any:
    if kind == "b":
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"label {label!r} is true/false; cannot read {text!r} as a boolean")
    if kind in "iu":
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"label {label!r} holds integers; cannot read {text!r} as one") from None
    if kind == "f":
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"label {label!r} holds numbers; cannot read {text!r} as one") from None
    return text


def coerce_label_values(tree: xr.DataTree, label: str, texts: Sequence[str]) -> list:
    """Convert option text to the type of a trial label (bool, int, float or str).

    Parameters
    ----------
    tree
        The multi-animal set the label lives in.
    label
        Trial label name.
    texts
        Values as typed on the command line (``"true"``, ``"3"``, ``"A"``).

    Returns
    -------
    list
        JSON-safe values comparable with the label's values.

    Raises
    ------
    DataError
        If no animal has the label.
    ConfigError
        If a text cannot be read as the label's type.
    """
    kinds = []
    for animal in tree_animals(tree):
        da = get_modality(tree, animal)
        if label in label_names(da):
            values = np.asarray(da[label].values)
            kind = values.dtype.kind
            if kind == "O" and values.size:
                first = values.ravel()[0]
                kind = "b" if isinstance(first, (bool, np.bool_)) else "i" if isinstance(
                    first, (int, np.integer)) else "f" if isinstance(first, (float, np.floating)) else "U"
            kinds.append(kind)
    if not kinds:
        available = sorted({n for a in tree_animals(tree) for n in label_names(get_modality(tree, a))})
        raise DataError(f"no animal has the trial label {label!r}; available labels: {available}")
    return [_coerce_one(str(text), kinds[0], label) for text in texts]


def write_run_info(run_dir: str | os.PathLike, info: Mapping[str, Any]) -> Path:
    """Write ``run_dir/run.json`` atomically (replacing an earlier one).

    Parameters
    ----------
    run_dir
        The run folder (created when missing).
    info
        JSON-serialisable run description.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(run_dir) / RUN_FILE
    text = json.dumps(dict(info), indent=2) + "\n"
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(text)
    return path


def read_run_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``run_dir/run.json``.

    Parameters
    ----------
    run_dir
        A folder written by ``neurovamp fit``.

    Returns
    -------
    dict
        The run description (keys ``data``, ``pairing``, ``model``, ``training``,
        ``status``, ...).

    Raises
    ------
    DataError
        If the folder or ``run.json`` is missing, unreadable or of another format.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: run folder not found (expected the --out folder of `neurovamp fit`)")
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise DataError(f"{run_dir}: not a neurovamp run folder, {RUN_FILE} is missing")
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(info, dict) or info.get("format") != RUN_FORMAT:
        raise DataError(f"{path}: not a neurovamp run description (format {RUN_FORMAT!r} expected)")
    if info.get("version") != RUN_VERSION:
        raise DataError(f"{path}: run format version {info.get('version')!r} is not supported (expected {RUN_VERSION})")
    for key in ("data", "pairing"):
        if not isinstance(info.get(key), dict):
            raise DataError(f"{path}: incomplete run description, {key!r} is missing")
    return info


def build_paired(info: Mapping[str, Any]) -> PairedData:
    """Reload the recordings of a run and pair them exactly as ``fit`` did.

    Parameters
    ----------
    info
        A run description (:func:`read_run_info`).

    Returns
    -------
    PairedData
        Equal to the one the model was trained on, provided the data files are unchanged.

    Raises
    ------
    DataError
        If a data file is missing or unreadable, or a setting is missing.
    """
    try:
        data, pairing = info["data"], info["pairing"]
        paths = [Path(p) for p in data["paths"]]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise DataError(f"data file(s) of the run not found: {missing} (moved or deleted since `neurovamp fit`?)")
        tree = load_recordings(
            paths,
            event=data["event"],
            window=tuple(data["window"]),
            bin_size=float(data["bin_size"]),
            labels=data.get("labels"),
            allow_silent_units=bool(data.get("allow_silent_units", False)),
        )
        return pair_trials(
            tree,
            by=pairing["by"],
            strategy=pairing["strategy"],
            filters=pairing.get("filters"),
            conditions=pairing.get("conditions"),
            split=tuple(pairing["split"]),
            seed=int(pairing["seed"]),
            window=pairing.get("window"),
            stride=int(pairing.get("stride", 1)),
        )
    except KeyError as exc:
        raise DataError(f"run description is missing setting {exc.args[0]!r}") from exc


def load_run(run_dir: str | os.PathLike, *, device: str = "auto") -> tuple[Any, PairedData, dict[str, Any]]:
    """Load the model and data of a finished ``neurovamp fit`` run.

    Parameters
    ----------
    run_dir
        The run folder.
    device
        Where to put the model (``"auto"``, ``"cpu"``, ``"cuda"``).

    Returns
    -------
    model : MultiAnimalModel
        The fitted model.
    paired : PairedData
        The data rebuilt from ``run.json`` (same trials, pairs and splits).
    info : dict
        The run description.

    Raises
    ------
    DataError
        If the folder is not a run, the run is incomplete (names what is missing), a data
        file is gone, or the data no longer match the model.
    """
    from neurovamp.models.estimator import MultiAnimalModel

    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    model_dir = run_dir / MODEL_DIR
    if info.get("status") != "complete" or not model_dir.is_dir():
        what = f"{MODEL_DIR}/ is missing" if not model_dir.is_dir() else "run.json has status " + repr(info.get("status"))
        raise DataError(
            f"{run_dir}: incomplete run ({what}); training did not finish. Continue it with "
            "`neurovamp fit ... --resume` using the same options"
        )
    model = MultiAnimalModel.load(model_dir, device=device)
    paired = build_paired(info)
    try:
        model.check_compatible(paired)
    except DataError as exc:
        raise DataError(f"{run_dir}: the run's data no longer match its model: {exc}") from exc
    return model, paired, info
