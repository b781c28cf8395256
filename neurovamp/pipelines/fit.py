"""Run folders: what ``neurovamp fit`` writes, and how later commands read it back.

A run folder ``RUN/`` holds::

    run.json         how the data was loaded, filtered, paired and split, and the model and
                     training settings (enough to rebuild the same PairedData); "status" is
                     "running" while training and "complete" once every output is written
    model/           the fitted model (MultiAnimalModel.save)
    history.csv      per-epoch losses
    loss.png         loss curves
    checkpoints/     training checkpoints (for --resume): the latest and the one before it
    metrics.json, figures/   written by ``neurovamp evaluate`` (:func:`write_evaluation`)
    .neurovamp-outputs.json  the files neurovamp wrote here (:mod:`neurovamp._outputs`):
                     overwrite removes those and nothing else; overwriting the model also
                     removes metrics.json and figures/, which described the old model

:func:`fit_run` writes such a folder (``neurovamp fit`` is a thin wrapper around it);
:func:`load_run` returns the model, the rebuilt :class:`~neurovamp.data.pairing.PairedData`
and the run description, for the ``evaluate``/``impute`` style commands.

Imports: this module sits above data, models and analysis (a pipeline). It imports the
data layer at the top; torch (``neurovamp.models``) and matplotlib
(``neurovamp.analysis.plots``, for ``loss.png``) only inside the functions that need them,
so ``import neurovamp.pipelines.fit`` stays light for the CLI and nothing below it ever imports it.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from neurovamp._files import atomic_output, check_writable
from neurovamp._jsonfile import json_safe, read_versioned
from neurovamp.data.dataset import animals as tree_animals
from neurovamp.data.dataset import get_modality
from neurovamp.io.recordings import load_recordings
from neurovamp.io.settings import RECORDING_DEFAULTS, RecordingSettings
from neurovamp.data.labels import labels_to_load, parse_assignments
from neurovamp.data.pairing import PairedData, pair_trials
from neurovamp.data.settings import PAIRING_DEFAULTS, PairingSettings
from neurovamp.errors import ConfigError, DataError, NeurovampError, OutputExistsError, TrainingError
from neurovamp.pipelines.folder import COMPLETE, RunFolder, changed_settings

from neurovamp.models.config import TrainingConfig

if TYPE_CHECKING:
    from neurovamp.models.config import ModelConfig
    from neurovamp.models.estimator import MultiAnimalModel

__all__ = [
    "RUN_FILE",
    "MODEL_DIR",
    "HISTORY_FILE",
    "LOSS_PLOT",
    "CHECKPOINT_DIR",
    "METRICS_FILE",
    "FIGURES_DIR",
    "write_evaluation",
    "psth_recordings",
    "fit_run",
    "check_run_folder",
    "repoint_data",
    "read_run_info",
    "run_folder",
    "write_run_info",
    "build_paired",
    "load_run",
    "parse_filters",
]

RUN_FILE = "run.json"
MODEL_DIR = "model"
HISTORY_FILE = "history.csv"
LOSS_PLOT = "loss.png"
CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.json"
FIGURES_DIR = "figures"
RUN_FORMAT = "neurovamp-run"
RUN_VERSION = 1



def parse_filters(items: Iterable[str] | None) -> dict[str, list[str]]:
    """Parse ``--filter COL=VALUE`` options into ``{column: [value, ...]}`` (values as text).

    :func:`neurovamp.data.labels.parse_assignments` with the filter's message: repeating a
    column allows several values (``odor=A odor=B``); ``COL=V1,V2`` does too. Type the
    values with :func:`neurovamp.data.labels.coerce_label_values`.

    Raises
    ------
    ConfigError
        For an item without ``=`` or with an empty column or value.
    """
    return parse_assignments(items, message="filter {item!r} must look like COLUMN=VALUE (e.g. correct=true or odor=A,B)")


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
    info = dict(info)
    if isinstance(info.get("data"), Mapping) and isinstance(info["data"].get("paths"), list):
        info["data"] = {**info["data"], "paths": _paths_to_record(info["data"]["paths"], Path(run_dir))}
    return run_folder(run_dir).write(info)


def run_folder(run_dir: str | os.PathLike) -> RunFolder:
    """The run folder ``run_dir`` (``neurovamp fit``'s output) with its marker ``run.json``."""
    return RunFolder(run_dir, marker=RUN_FILE, format=RUN_FORMAT, version=RUN_VERSION,
                     what="neurovamp run description")


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
    info = read_versioned(path, RUN_FORMAT, RUN_VERSION, what="neurovamp run description")
    for key in ("data", "pairing"):
        if not isinstance(info.get(key), dict):
            raise DataError(f"{path}: incomplete run description, {key!r} is missing")
    _check_run_values(path, info)
    if isinstance(info["data"].get("paths"), list):
        info["data"]["paths"] = [str(p) for p in _recorded_paths(info["data"]["paths"], run_dir)]
    return info


def _check_run_values(path: Path, info: Mapping[str, Any]) -> None:
    """The run.json settings later commands use, checked by the settings classes (one line naming the field)."""
    paths = info["data"].get("paths")
    if "paths" in info["data"] and not (isinstance(paths, list) and paths and all(isinstance(p, str) for p in paths)):
        raise DataError(f"{path}: data.paths must be a list of file paths, got {paths!r}")
    RecordingSettings.from_json(info["data"], source=path)
    PairingSettings.from_json(info["pairing"], source=path)


def _paths_to_record(paths: Sequence[str | os.PathLike], run_dir: Path) -> list[str]:
    """Data paths as run.json records them: relative to the run folder when the two share a folder
    below the file-system root (a project moved as a whole still finds its data), else absolute."""
    run_abs = os.path.abspath(run_dir)
    recorded = []
    for p in paths:
        p_abs = os.path.abspath(p)
        try:
            common = Path(os.path.commonpath([p_abs, run_abs]))
        except ValueError:  # on another drive (Windows)
            common = None
        shares_a_folder = common is not None and common != common.parent
        recorded.append(os.path.relpath(p_abs, run_abs) if shares_a_folder else p_abs)
    return recorded


def _recorded_paths(paths: Sequence[str], run_dir: Path) -> list[Path]:
    """run.json's data paths as absolute paths (relative ones are relative to the run folder)."""
    base = Path(os.path.abspath(run_dir))
    return [Path(p) if Path(p).is_absolute() else Path(os.path.normpath(base / p)) for p in paths]


def repoint_data(info: Mapping[str, Any], data_dir: str | os.PathLike) -> dict[str, Any]:
    """A run description whose data files are looked up by file name in ``data_dir``.

    Parameters
    ----------
    info
        A run description (:func:`read_run_info`).
    data_dir
        The folder the run's data files were moved to (CLI: ``--data-dir``).

    Returns
    -------
    dict
        A copy of ``info`` with ``data.paths`` pointing into ``data_dir``.

    Raises
    ------
    DataError
        If ``data_dir`` is not a folder or lacks one of the run's files (named).
    """
    folder = Path(data_dir)
    if not folder.is_dir():
        raise DataError(f"{folder}: --data-dir must be the folder that now holds the run's data files")
    paths = [folder / Path(p).name for p in info["data"]["paths"]]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise DataError(f"{folder}: does not hold the run's data file(s) {missing} (--data-dir looks them up by name)")
    return {**info, "data": {**info["data"], "paths": [str(p.resolve()) for p in paths]}}


def _load_tree(data: Mapping[str, Any]) -> xr.DataTree:
    """Load the recordings as the ``data`` section of a run description says."""
    return load_recordings([Path(p) for p in data["paths"]], **RecordingSettings.from_json(data).load_kwargs())


def _pair(tree: xr.DataTree, pairing: Mapping[str, Any]) -> PairedData:
    """Pair the trials of ``tree`` as the ``pairing`` section of a run description says."""
    return pair_trials(tree, **PairingSettings.from_json(pairing).pair_kwargs())


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
        missing = [str(p) for p in data["paths"] if not Path(p).exists()]
        if missing:
            raise DataError(
                f"data file(s) of the run not found: {missing} (moved or deleted since `neurovamp fit`? "
                "point the run at their new folder with --data-dir DIR, in Python load_run(..., data_dir=DIR))"
            )
        return _pair(_load_tree(data), pairing)
    except KeyError as exc:
        raise DataError(f"run description is missing setting {exc.args[0]!r}") from exc


#: Seconds of pre-event activity the PSTH figures of ``evaluate`` and the demo draw.
PSTH_BASELINE = 0.25


def psth_recordings(info: Mapping[str, Any], baseline: float = PSTH_BASELINE) -> dict[str, xr.DataArray] | None:
    """Each animal's recorded counts from ``baseline`` seconds before the run's window.

    The PSTH figures draw these, so each unit's pre-event rate stands beside the window the
    model saw. Same files, bins, labels and trials as the run (``info["data"]``); the
    window's start moves back by ``baseline`` rounded to whole bins.

    Parameters
    ----------
    info
        A run description (:func:`read_run_info`), data paths as the run should read them.
    baseline
        Seconds of activity to add before the window.

    Returns
    -------
    dict or None
        Animal → counts ``(trial, unit, time)``; None when there is nothing to add: the
        window already starts before its event, the run reads a saved dataset (``.nc``)
        or fixed-length windows, or the files cannot be read that way (e.g. a pre-event
        window outside the recording).
    """
    data = info.get("data") or {}
    try:
        start, stop = (float(v) for v in data["window"])
        bin_size = float(data["bin_size"])
        paths = [Path(p) for p in data["paths"]]
    except (KeyError, TypeError, ValueError):
        return None
    pre = round(float(baseline) / bin_size) * bin_size
    if pre <= 0 or start < 0 or (data.get("recording") or {}).get("windows") or any(p.suffix == ".nc" for p in paths):
        return None
    try:
        tree = _load_tree({**data, "window": [start - pre, stop]})
    except NeurovampError:
        return None
    return {a: get_modality(tree, a) for a in tree_animals(tree)}


def load_run(
    run_dir: str | os.PathLike, *, device: str = "auto", data_dir: str | os.PathLike | None = None
) -> tuple[Any, PairedData, dict[str, Any]]:
    """Load the model and data of a finished ``neurovamp fit`` run.

    Parameters
    ----------
    run_dir
        The run folder.
    device
        Where to put the model (``"auto"``, ``"cpu"``, ``"cuda"``).
    data_dir
        Folder the run's data files were moved to (looked up by file name); default: where
        run.json records them (relative paths are relative to the run folder).

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
    if info.get("status") != COMPLETE or not model_dir.is_dir():
        what = f"{MODEL_DIR}/ is missing" if not model_dir.is_dir() else "run.json has status " + repr(info.get("status"))
        raise DataError(
            f"{run_dir}: incomplete run ({what}); training did not finish. Continue it with "
            "`neurovamp fit ... --resume` using the same options"
        )
    if data_dir is not None:
        info = repoint_data(info, data_dir)
    model = MultiAnimalModel.load(model_dir, device=device)
    paired = build_paired(info)
    try:
        model.check_compatible(paired)
    except DataError as exc:
        raise DataError(f"{run_dir}: the run's data no longer match its model: {exc}") from exc
    return model, paired, info


# --------------------------------------------------------------------------- writing a run
def check_run_folder(out: str | os.PathLike, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Check that a fit may write (or continue) the run folder ``out``.

    Parameters
    ----------
    out
        The run folder.
    overwrite
        An existing folder may be restarted.
    resume
        The folder holds an interrupted run to continue.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ConfigError
        For ``resume`` with ``overwrite``, ``resume`` without a folder, or ``overwrite``
        of something that is not a folder.
    OutputExistsError
        If ``out`` exists and neither ``overwrite`` nor ``resume`` is given.
    """
    folder = run_folder(out)
    run_dir = folder.path
    if resume and overwrite:
        raise ConfigError(
            "resume and overwrite (CLI: --resume, --overwrite) exclude each other: resume continues a run, "
            "overwrite restarts it"
        )
    if resume:
        if not run_dir.is_dir():
            raise ConfigError(f"{run_dir}: nothing to resume, the run folder does not exist")
        folder.check_can_write()
        return run_dir
    from neurovamp.models.training import CHECKPOINT_NAME

    if not overwrite and (run_dir / CHECKPOINT_DIR / CHECKPOINT_NAME).is_file() and _status(run_dir) != COMPLETE:
        raise OutputExistsError(
            f"{run_dir}: holds an unfinished fit; continue it with resume=True (CLI: --resume), or start afresh "
            "with overwrite=True (CLI: --overwrite)"
        )
    check_writable(run_dir, overwrite=overwrite)
    folder.check_is_folder(ConfigError, f"{run_dir}: exists and is not a folder; remove it or choose another run "
                                        "folder (--out)")
    folder.check_no_foreign(_fit_outputs(), legacy=_legacy_outputs(run_dir), what="fit --overwrite")
    folder.check_can_write()
    return run_dir


def _fit_outputs() -> list[str]:
    """What a fit writes in its run folder (relative names; ``model`` is a folder)."""
    from neurovamp.models.training import CHECKPOINT_NAME, PREVIOUS_CHECKPOINT_NAME

    return [RUN_FILE, HISTORY_FILE, LOSS_PLOT, MODEL_DIR, f"{CHECKPOINT_DIR}/{CHECKPOINT_NAME}",
            f"{CHECKPOINT_DIR}/{PREVIOUS_CHECKPOINT_NAME}"]


def _legacy_outputs(run_dir: Path) -> list[str]:
    """The outputs of a run folder written before manifests (only when run.json says it is a run)."""
    from neurovamp._outputs import MANIFEST_NAME

    if (run_dir / MANIFEST_NAME).is_file() or _status(run_dir) is None:
        return []
    figures = run_dir / FIGURES_DIR
    from neurovamp.analysis.figures import FIGURE_NAMES

    stems = set(FIGURE_NAMES)
    legacy_figures = [f"{FIGURES_DIR}/{p.name}" for p in figures.glob("*")
                      if p.is_file() and (p.stem in stems or p.stem.startswith("psth_"))] if figures.is_dir() else []
    return [*_fit_outputs(), METRICS_FILE, *legacy_figures]


def _status(run_dir: Path) -> str | None:
    """The ``status`` of ``run_dir/run.json`` (None when it is missing or unreadable)."""
    try:
        return read_run_info(run_dir).get("status")
    except DataError:
        return None


def _run_settings(
    paths: str | os.PathLike | Sequence[str | os.PathLike], *, recording: RecordingSettings,
    pairing: PairingSettings,
) -> dict[str, Any]:
    """The ``data`` and ``pairing`` sections of run.json (absolute paths; the settings' JSON)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    try:
        resolved = [str(Path(p).resolve()) for p in paths]
    except TypeError:
        raise ConfigError(f"paths must be NWB files and/or saved datasets (.nc), got {paths!r}") from None
    return {"data": {"paths": resolved, **recording.to_json()}, "pairing": pairing.to_json()}


def _training_settings(
    *, epochs: int, batch_size: int, lr: float, patience: int | None, checkpoint_every: int, monitor: str,
    max_grad_norm: float | None, compile: bool, seed: int, device: str, kl_warmup: int | None = None,
) -> dict[str, Any]:
    """The training options of ``MultiAnimalModel.fit``, validated (``patience`` 0 = ``None``)."""
    integer = isinstance(patience, (int, np.integer)) and not isinstance(patience, bool)
    if patience is not None and (not integer or patience < 0):
        raise ConfigError(
            f"patience (CLI: --patience) must be an integer >= 0 (0 or None: no early stopping), got {patience!r}"
        )
    training = json_safe({
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "patience": patience or None,
        "checkpoint_every": checkpoint_every,
        "monitor": monitor,
        "max_grad_norm": max_grad_norm,
        "compile": compile,
        "kl_warmup": TrainingConfig.kl_warmup if kl_warmup is None else kl_warmup,
    })
    TrainingConfig(**training, seed=seed, device=device)  # ConfigError naming the field
    return training


def _new_run_info(settings: Mapping[str, Any], config: ModelConfig, training: Mapping[str, Any], *, seed: int,
                  device: str) -> dict[str, Any]:
    """run.json of a run that is about to train (status "running")."""
    import neurovamp

    return json_safe({
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "neurovamp_version": neurovamp.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **settings,
        "model": config.to_dict(),
        "training": {**training, "seed": seed, "device": device},
        "outputs": {"model": MODEL_DIR, "history": HISTORY_FILE, "loss_plot": LOSS_PLOT, "checkpoints": CHECKPOINT_DIR},
        "status": "running",
    })


def _check_resumable(run_dir: Path, info: Mapping[str, Any]) -> dict[str, Any] | None:
    """A resumed run must load, pair, model and train on the data as the interrupted one did.

    Checked before anything is written, so a refused resume leaves the run folder as it
    was. Returns the interrupted run's description (None when it has no run.json).
    """
    if not (run_dir / RUN_FILE).is_file():
        return None
    from neurovamp.models.training import resume_conflicts  # the engine's own rule for training settings

    previous = read_run_info(run_dir)
    before = {section: dict(previous.get(section) or {}) for section in ("data", "pairing", "model")}
    # read back through the settings, so settings added after the run was written take their defaults
    before["data"] = {"paths": before["data"].get("paths"),
                      **RecordingSettings.from_json(before["data"], source=run_dir / RUN_FILE).to_json()}
    before["pairing"] = PairingSettings.from_json(before["pairing"], source=run_dir / RUN_FILE).to_json()
    # data files may have moved since (the command line names them anew): compared by file name
    names = {"before": [Path(p).name for p in before["data"].get("paths") or []],
             "now": [Path(p).name for p in info["data"].get("paths") or []]}
    changed = [
        name
        for section in before
        for name in changed_settings(before[section], info[section], prefix=f"{section}.")
        if not (name == "data.paths" and names["before"] == names["now"])
    ]
    changed += [f"training.{key}" for key in resume_conflicts(previous.get("training") or {}, info["training"])]
    run_folder(run_dir).refuse_changes(
        changed,
        "{path}: resume (CLI: --resume) with different settings than the interrupted run "
        "({changed}); use the same settings, or overwrite (CLI: --overwrite) to start afresh",
        error=ConfigError,
    )
    return previous


def _start_run(run_dir: Path, info: Mapping[str, Any], *, overwrite: bool) -> None:
    """Clear an overwritten run, create the folder and write run.json (status "running").

    Overwrite removes what neurovamp wrote in the folder (the old model and the metrics and
    figures that described it), never a user's files. A resumed run's files are recorded
    when it finishes, so a refused resume writes no manifest.
    """
    folder = run_folder(run_dir)
    if overwrite and run_dir.is_dir():
        folder.clear(legacy=_legacy_outputs(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    if not overwrite and (run_dir / RUN_FILE).is_file():  # resuming
        write_run_info(run_dir, info)
        return
    folder.record([n for n in _fit_outputs() if n != MODEL_DIR])
    write_run_info(run_dir, info)


def _write_loss_plot(history: Any, path: Path) -> None:
    """Training and validation loss per epoch as a PNG (matplotlib imported only here)."""
    import matplotlib.pyplot as plt

    from neurovamp.analysis.plots import plot_training_curves, save_figure

    columns = ["epoch"] + [c for c in history.columns if c in ("train/loss", "val/loss")]
    fig = plot_training_curves(history[columns])
    try:
        save_figure(fig, path, overwrite=True, format="png")
    finally:
        plt.close(fig)


def _finish_run(run_dir: Path, model: MultiAnimalModel, info: dict[str, Any], seconds: float) -> None:
    """Write model/, history.csv, loss.png, then run.json with status "complete" and the fit summary."""
    model.save(run_dir / MODEL_DIR, overwrite=True)
    with atomic_output(run_dir / HISTORY_FILE, overwrite=True) as tmp:
        model.history_.to_csv(tmp, index=False)
    _write_loss_plot(model.history_, run_dir / LOSS_PLOT)
    info["status"] = COMPLETE
    info["fit"] = json_safe({**model.fit_info_, "seconds": round(seconds, 3)})
    model_files = [p.relative_to(run_dir) for p in (run_dir / MODEL_DIR).rglob("*") if p.is_file()]
    run_folder(run_dir).record([n for n in _fit_outputs() if n != MODEL_DIR] + model_files,
                               legacy=_legacy_outputs(run_dir))
    write_run_info(run_dir, info)


def write_evaluation(
    run_dir: str | os.PathLike,
    metrics: Mapping[str, Any],
    *,
    model: Any = None,
    paired: PairedData | None = None,
    label: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    info: Mapping[str, Any] | None = None,
) -> tuple[Path, Path | None]:
    """Write ``metrics.json`` and (with ``model`` and ``paired``) ``figures/`` into a run folder.

    Overwrite replaces the metrics and figures neurovamp wrote there; a user's own files in
    ``figures/`` are kept. Each file is written atomically and recorded in the folder's
    manifest, so a later ``fit --overwrite`` removes them with the model they describe.

    Parameters
    ----------
    run_dir
        A run folder.
    metrics
        Output of :func:`neurovamp.analysis.evaluate.evaluate_model`.
    model, paired, label, seed
        What :func:`neurovamp.analysis.figures.write_figures` draws (no figures when
        ``model`` is None).
    overwrite
        Replace earlier metrics and figures.
    info
        The run description (:func:`read_run_info`, data paths as the run should read
        them): with it, the PSTH figures show :data:`PSTH_BASELINE` seconds of recorded
        pre-event activity (:func:`psth_recordings`).

    Returns
    -------
    metrics_path, figures_dir : Path
        ``figures_dir`` is None without figures.

    Raises
    ------
    OutputExistsError
        If the outputs exist and ``overwrite`` is false, or ``metrics.json`` (or a figure
        about to be written) exists without neurovamp having written it.
    """
    import tempfile

    from neurovamp._outputs import move_into
    from neurovamp.analysis.evaluate import write_metrics

    run_dir = Path(run_dir)
    legacy = _legacy_outputs(run_dir)
    check_evaluation_outputs(run_dir, figures=model is not None, overwrite=overwrite)
    metrics_path = run_dir / METRICS_FILE
    write_metrics(metrics, metrics_path, overwrite=overwrite)
    folder = run_folder(run_dir)
    folder.record([METRICS_FILE], legacy=legacy)
    if model is None:
        return metrics_path, None
    from neurovamp.analysis.figures import write_figures

    staging = Path(tempfile.mkdtemp(prefix=f".{FIGURES_DIR}.", suffix=".tmp", dir=run_dir))
    try:
        staging.rmdir()
        recorded = psth_recordings(info) if info is not None else None
        write_figures(model, paired, metrics, staging / FIGURES_DIR, label=label, overwrite=False, seed=seed,
                      recorded=recorded)
        folder.clear(only=[FIGURES_DIR])
        move_into(staging, run_dir)
    finally:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
    return metrics_path, run_dir / FIGURES_DIR


def check_evaluation_outputs(run_dir: str | os.PathLike, *, figures: bool = True, overwrite: bool = False) -> None:
    """Check, before any work, that :func:`write_evaluation` may write into ``run_dir``.

    Raises
    ------
    OutputExistsError
        If ``metrics.json`` (or ``figures/``) exists and ``overwrite`` is false, or
        ``metrics.json`` exists without neurovamp having written it.
    OutputError
        If nothing can be written in ``run_dir``.
    """
    run_dir = Path(run_dir)
    check_writable(run_dir / METRICS_FILE, overwrite=overwrite)
    if figures:
        check_writable(run_dir / FIGURES_DIR, overwrite=overwrite)
    folder = run_folder(run_dir)
    folder.check_no_foreign([METRICS_FILE], legacy=_legacy_outputs(run_dir), what="evaluate --overwrite")
    folder.check_can_write()


def fit_run(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    event: str = RECORDING_DEFAULTS.event,
    window: tuple[float, float] = RECORDING_DEFAULTS.window,
    bin_size: float = RECORDING_DEFAULTS.bin_size,
    labels: Sequence[str] | None = RECORDING_DEFAULTS.labels,
    allow_silent_units: bool = RECORDING_DEFAULTS.allow_silent_units,
    drop_missing_events: bool = RECORDING_DEFAULTS.drop_missing_events,
    recording: Mapping[str, Any] | None = None,
    pair_by: str = PAIRING_DEFAULTS.by,
    pair_bins: int | None = PAIRING_DEFAULTS.pair_bins,
    strategy: str = PAIRING_DEFAULTS.strategy,
    filters: Mapping[str, Any] | None = PAIRING_DEFAULTS.filters,
    conditions: Sequence[Any] | None = PAIRING_DEFAULTS.conditions,
    split: tuple[float, float, float] = PAIRING_DEFAULTS.split,
    subwindow: int | None = PAIRING_DEFAULTS.subwindow,
    stride: int = PAIRING_DEFAULTS.stride,
    config: ModelConfig | None = None,
    epochs: int = TrainingConfig.epochs,
    batch_size: int = TrainingConfig.batch_size,
    lr: float = TrainingConfig.lr,
    patience: int | None = TrainingConfig.patience,
    checkpoint_every: int = TrainingConfig.checkpoint_every,
    monitor: str = TrainingConfig.monitor,
    max_grad_norm: float | None = TrainingConfig.max_grad_norm,
    compile: bool = TrainingConfig.compile,
    seed: int = TrainingConfig.seed,
    device: str = TrainingConfig.device,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    recordings: xr.DataTree | None = None,
    nproc: int | None = None,
    kl_warmup: int | None = None,
) -> MultiAnimalModel:
    """Load recordings, pair trials, fit a model and write a run folder (``neurovamp fit``).

    Writes ``out/run.json`` (status "running" while training, "complete" at the end, with
    a "fit" summary including "seconds", the wall time of ``MultiAnimalModel.fit``),
    ``out/model/``, ``out/history.csv``, ``out/loss.png`` and ``out/checkpoints/``; see the
    module docstring. :func:`load_run` reads the folder back.

    Parameters
    ----------
    paths
        NWB files (one animal each) and/or a saved dataset (.nc).
    out
        The run folder.
    event, window, bin_size, labels, allow_silent_units, drop_missing_events
        How NWB files are binned (see :func:`neurovamp.io.recordings.load_recordings`);
        ``labels=None`` keeps every trials column, otherwise ``pair_by`` and the filter
        labels are added to ``labels``.
    recording
        The other options of ``load_recordings`` (``trials``, ``event_relative_to``,
        ``units``, ``behavior``, ``windows``, ``drop_uncovered``), recorded in run.json
        so that evaluate and impute read the data the same way.
    pair_bins
        Pair on this many equal bins of a continuous ``pair_by`` label (see
        :func:`neurovamp.data.pairing.pair_trials`).
    pair_by, strategy, split
        Pairing label, strategy and split fractions (see
        :func:`neurovamp.data.pairing.pair_trials`); ``seed`` seeds the split and pairs.
    filters
        ``{label: allowed value(s)}`` with values of the label's type, e.g.
        ``{"correct": [True], "odor": ["A", "B"]}``.
    conditions
        Values of ``pair_by`` to keep, in order (``None``: every value).
    subwindow, stride
        Sub-window length in bins (``None``: whole trials) and bins between sub-windows.
    config
        The model (``None``: ``ModelConfig()``, MMVM with neurovamp's defaults; e.g.
        ``ModelConfig.from_preset("paper", "poe", latent_dim=3)``).
    epochs, batch_size, lr, checkpoint_every
        Training options (see :class:`neurovamp.models.training.TrainingConfig`).
    patience
        Early-stopping patience in epochs; ``0`` or ``None`` trains all ``epochs``.
    monitor
        Validation term early stopping and best-weight restoring watch: ``"loss"`` (the
        negative ELBO) or ``"rec"`` (reconstruction only; see ``docs/defaults.md``).
    max_grad_norm
        Clip the global gradient norm to this value (``None``: no clipping); a remedy
        for a training loss that explodes.
    compile
        Compile the training steps with ``torch.compile`` (faster on long fits, after a
        one-off compilation; see :class:`~neurovamp.models.training.TrainingConfig`).
    seed
        Seed of the split, the pairing and the training.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    overwrite
        Restart an existing run folder (only the files a fit writes are removed).
    resume
        Continue an interrupted run from ``out/checkpoints`` with the same data, pairing
        and model settings (``epochs`` may grow); the result equals an uninterrupted run.
    progress
        Show a progress bar.
    kl_warmup
        Epochs of KL warm-up (see :class:`~neurovamp.models.training.TrainingConfig`);
        None: the engine's default, or on ``resume`` the run's own (0 for runs written
        before warm-up existed).
    recordings
        The set ``load_recordings(paths, ...)`` gives with these binning settings and
        labels (:func:`labels_to_load`), when the caller has loaded it already (the CLI
        does, to type its filter values); it is not checked against ``paths``, which
        run.json records for :func:`load_run`.
    nproc
        Train data-parallel on this many local processes (see
        :meth:`MultiAnimalModel.fit <neurovamp.models.estimator.MultiAnimalModel.fit>`).
        Under ``torchrun`` every process runs this function and only rank 0 writes the
        run folder.

    Returns
    -------
    MultiAnimalModel
        The fitted model (equal to ``load_run(out)[0]``).

    Raises
    ------
    OutputExistsError
        If ``out`` exists and neither ``overwrite`` nor ``resume`` is given.
    ConfigError
        For invalid settings (the message names the argument or ``ModelConfig`` field),
        ``resume`` with settings other than the interrupted run's, or without a folder.
    DataError
        For unreadable recordings, missing labels, or trials filtered away.
    TrainingError
        If training diverges.
    """
    from neurovamp.models.config import ModelConfig
    from neurovamp.models.distributed import check_nproc, check_supported, is_writer
    from neurovamp.models.estimator import MultiAnimalModel

    if nproc is not None and check_nproc(nproc) > 1:
        check_supported(compile)  # before any folder or process exists
    writer = is_writer()  # False on the other ranks under torchrun: they only train
    run_dir = check_run_folder(out, overwrite=overwrite, resume=resume) if writer else Path(out)
    config = ModelConfig() if config is None else config
    if not isinstance(config, ModelConfig):
        raise ConfigError(f"config must be a ModelConfig (or None for the defaults), got {type(config).__name__}")
    if recordings is not None and not isinstance(recordings, xr.DataTree):
        raise ConfigError(
            f"recordings must be an xarray.DataTree from load_recordings, got {type(recordings).__name__}"
        )
    pairing = PairingSettings(by=pair_by, strategy=strategy, filters=filters, conditions=conditions, split=split,
                              seed=seed, subwindow=subwindow, stride=stride, pair_bins=pair_bins)
    reading = RecordingSettings.from_options(
        recording, event=event, window=window, bin_size=bin_size,
        labels=labels_to_load(labels, pair_by, pairing.filters or ()),
        allow_silent_units=allow_silent_units, drop_missing_events=drop_missing_events,
    )
    settings = _run_settings(paths, recording=reading, pairing=pairing)
    if resume and kl_warmup is None:
        kl_warmup = _resumed_kl_warmup(Path(out))
    training = _training_settings(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                                  checkpoint_every=checkpoint_every, monitor=monitor,
                                  max_grad_norm=max_grad_norm, compile=compile, seed=seed, device=device,
                                  kl_warmup=kl_warmup)
    model = MultiAnimalModel(config=config, seed=seed, device=device)
    info = _new_run_info(settings, config, training, seed=seed, device=device)
    paired = _pair(recordings if recordings is not None else _load_tree(info["data"]), info["pairing"])
    check_training_memory(config, paired)
    before = None
    if resume and writer:
        previous = _check_resumable(run_dir, info)
        if previous is not None and "created" in previous:
            info["created"] = previous["created"]
        _check_checkpoint(run_dir)
        before = _resume_snapshot(run_dir)
    if writer:
        _start_run(run_dir, info, overwrite=overwrite)
    start = time.perf_counter()
    try:
        model.fit(paired, checkpoint_dir=run_dir / CHECKPOINT_DIR, resume=resume, overwrite=overwrite,
                  progress=progress, nproc=nproc, **training)
        if writer:
            _finish_run(run_dir, model, info, time.perf_counter() - start)
    except KeyboardInterrupt:
        if writer:
            write_run_info(run_dir, {**info, "status": "interrupted"})
        raise
    except TrainingError as exc:
        if writer:
            write_run_info(run_dir, {**info, "status": "failed", "error": str(exc)})
        raise
    except Exception as exc:
        if not writer:
            raise
        if before is not None and _resume_snapshot(run_dir)[1] == before[1]:
            _restore_run_file(run_dir, before[0])  # a refused resume leaves the folder as it was
        else:
            write_run_info(run_dir, {**info, "status": "failed", "error": str(exc).splitlines()[0] if str(exc) else
                                     type(exc).__name__})
        raise
    return model


def _resumed_kl_warmup(run_dir: Path) -> int | None:
    """The warm-up a resumed run trained with (0 for runs written before warm-up existed).

    A resume that does not name ``kl_warmup`` continues the run as it was started; None
    when run.json cannot be read (the resume checks then name the problem).
    """
    from neurovamp.models.training import with_legacy_defaults

    try:
        previous = read_run_info(run_dir)
    except DataError:
        return None
    return with_legacy_defaults(previous.get("training") or {}).get("kl_warmup")


def check_training_memory(config: ModelConfig, paired: PairedData) -> None:
    """Refuse, before allocating, a fit whose model or sub-windowed data cannot fit in memory.

    The model's estimate (:func:`check_model_memory`) and the data's
    (:func:`neurovamp.data.tensors.training_data_bytes`) together against the limit; the
    message names the larger part and the options that shrink it.
    """
    from neurovamp._budget import check_memory, format_bytes, model_bytes
    from neurovamp.data.tensors import training_data_bytes

    check_model_memory(config, paired.input_dims)
    widths = [config.hidden_widths(int(d)) for d in paired.input_dims]
    model = model_bytes(paired.input_dims, widths, config.latent_dim)
    data = training_data_bytes(paired, config.latent_dim)
    samples = sum(paired.n_samples(split) for split in ("train", "val", "test"))
    if data >= model:
        what = (f"training on {samples} samples ({paired.n_windows} sub-windows of {paired.window} bins per pair "
                f"at stride {paired.stride}; data {format_bytes(data)}, model {format_bytes(model)})")
        advice = "use a larger --stride, a larger --bin, a shorter --window or a shorter --subwindow"
    else:
        what = (f"training a {config.model} model on {samples} samples (model {format_bytes(model)}, "
                f"data {format_bytes(data)})")
        advice = "use smaller --hidden widths or --latent-dim"
    check_memory(model + data, what, advice)


def check_model_memory(config: ModelConfig, input_dims: Sequence[int]) -> None:
    """Refuse, before allocating, a model whose training cannot fit in memory (numbers in the message)."""
    from neurovamp._budget import check_memory, model_bytes

    widths = [config.hidden_widths(int(d)) for d in input_dims]
    check_memory(
        model_bytes(input_dims, widths, config.latent_dim),
        f"training a {config.model} model (hidden {list(config.hidden)}, latent_dim {config.latent_dim}, "
        f"inputs {list(map(int, input_dims))})",
        "use smaller --hidden widths or --latent-dim",
    )


def _check_checkpoint(run_dir: Path) -> None:
    """A resume needs a readable checkpoint: checked before anything is written."""
    from neurovamp.models.training import load_checkpoint

    try:
        with warnings.catch_warnings():  # a fallback to the previous checkpoint is announced by training
            warnings.simplefilter("ignore", RuntimeWarning)
            load_checkpoint(run_dir / CHECKPOINT_DIR)
    except DataError as exc:
        done = " (the run itself is complete: its model is in model/)" if _status(run_dir) == COMPLETE else ""
        raise DataError(f"cannot resume{done}: {exc}; the run folder is left as it was") from None


def _resume_snapshot(run_dir: Path) -> tuple[bytes | None, list]:
    """run.json's bytes and the checkpoints' sizes and times (to tell whether training wrote)."""
    path = run_dir / RUN_FILE
    text = path.read_bytes() if path.is_file() else None
    folder = run_dir / CHECKPOINT_DIR
    stamps = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.glob("*")) if folder.is_dir() else []
    return text, stamps


def _restore_run_file(run_dir: Path, text: bytes | None) -> None:
    path = run_dir / RUN_FILE
    if text is None:
        path.unlink(missing_ok=True)
        return
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_bytes(text)
