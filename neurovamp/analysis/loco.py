"""Leave-one-condition-out evaluation: is an imputed condition better than the animal's average?

For every animal and every condition it experienced, a model is fitted with that
condition hidden from that animal only (its trials of the condition are removed from
the training data; the other animals keep theirs), the held-out condition is imputed
for the animal from the other animals' trials of it, and the imputation is scored
against the animal's real activity in that condition:

- ``bps_flat``: bits per spike of the imputed rates on the held-out trials against a
  flat per-unit rate (the mean count of each unit on those trials);
- ``bps_generic``: bits per spike against the *generic* prediction, the animal's own
  mean response over its other conditions (PSTH per condition, averaged with equal
  weight): positive only when the imputation carries condition-specific information;
- ``r`` / ``r2``: correlation and R² of the condition-specific part,
  (imputed - generic) vs (observed PSTH - generic), over units x bins; ``r2`` is
  1 - SS(imputed - observed) / SS(generic - observed), so 0 is the generic prediction's
  score and 1 a perfect one. The generic prediction subtracted on the two sides comes
  from disjoint halves of the animal's other trials, so that its sampling noise does not
  correlate the two differences;
- the same for the generic prediction itself (``generic_bps_flat``), the null beside it.

PSTHs (the generic prediction and the observed condition mean) are smoothed with a
Gaussian of :data:`~neurovamp.analysis.metrics.NULL_SMOOTH_S` seconds. This works without ground truth, on real recordings.

Every fit also records, under ``calibration``, per-unit sums of the (unsmoothed)
imputation's squared difference from the held-out PSTH and of the PSTH's sampling
variance (:func:`neurovamp.analysis.calibration.calibration_sums`): the out-of-sample
model error that ``neurovamp impute --samples`` puts into its band
(:func:`neurovamp.analysis.calibration.model_error_from_loco`).

Scorers
-------
The scores are :func:`neurovamp.analysis.metrics.condition_scores` (bits/spike vs both
nulls and :func:`~neurovamp.analysis.metrics.condition_specific_score`), with the
generic prediction of :func:`neurovamp.analysis.metrics.generic_prediction`
(``sigma_bins`` for the smoothing, ``half`` for the split-half estimates); they are
re-exported here under the same names.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurovamp._jsonfile import json_safe, read_json, write_json
from neurovamp.analysis.calibration import CALIBRATION_KEY, calibration_sums
from neurovamp.analysis.metrics import NULL_SMOOTH_S, condition_scores, generic_prediction, smooth_psth
from neurovamp.data.labels import plain
from neurovamp.errors import ConfigError, DataError

__all__ = [
    "LOCO_KEY",
    "LOCO_DIR",
    "CALIBRATION_KEY",
    "read_loco_results",
    "generic_prediction",
    "condition_scores",
    "smooth_psth",
    "loco_tasks",
    "hide_condition",
    "fit_and_score",
    "leave_condition_out",
    "summarise",
]

#: Key of the results in ``metrics.json``.
LOCO_KEY = "leave_condition_out"
#: Folder of the finished fits inside a run folder.
LOCO_DIR = "loco"
_SCORES = "scores.json"
_SUMMARY_KEYS = ("bps_flat", "bps_generic", "generic_bps_flat", "r", "r2")


# --------------------------------------------------------------------- the fits
def _labels(tree: xr.DataTree, animal: str, by: str) -> np.ndarray:
    from neurovamp.data.dataset import get_modality

    mod = get_modality(tree, animal)
    if by not in mod.coords:
        raise DataError(f"animal {animal!r} has no trial label {by!r} to leave conditions out by")
    return np.asarray(mod[by].values)


def loco_tasks(tree: xr.DataTree, by: str, conditions: Sequence[Any] | None = None,
               animals: Sequence[str] | None = None) -> list[tuple[str, Any]]:
    """The (animal, condition) fits of a leave-one-condition-out evaluation.

    A condition is left out of an animal when the animal has trials of it, at least one
    other condition remains to form the generic prediction, and another animal has the
    condition to impute it from.

    Parameters
    ----------
    tree
        The multi-animal data set.
    by
        The condition label (a run's ``pair_by``).
    conditions
        Conditions to consider (default: every value of ``by``).
    animals
        Animals to leave conditions out of (default: all).

    Returns
    -------
    list of (animal, condition)
        In animal order, then condition order.
    """
    from neurovamp.data.dataset import animals as dataset_animals

    names = dataset_animals(tree)
    chosen = names if animals is None else [str(a) for a in animals]
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise ConfigError(f"unknown animal(s) {unknown}; animals: {names}")
    have = {a: [plain(v) for v in dict.fromkeys(_labels(tree, a, by).tolist())] for a in names}
    if conditions is None:
        order: list[Any] = []
        for a in names:
            order += [c for c in have[a] if c not in order]
        try:
            order = sorted(order)
        except TypeError:
            pass
    else:
        order = [plain(c) for c in conditions]
    tasks = []
    for a in chosen:
        mine = [c for c in order if c in have[a]]
        for c in mine:
            if len(mine) > 1 and any(c in have[b] for b in names if b != a):
                tasks.append((a, c))
    return tasks


def hide_condition(tree: xr.DataTree, animal: str, by: str, condition: Any) -> tuple[xr.DataTree, xr.DataArray]:
    """The data set without ``animal``'s trials of ``condition``, and those trials.

    Parameters
    ----------
    tree
        The multi-animal data set.
    animal, by, condition
        Whose trials of which value of label ``by`` to hide.

    Returns
    -------
    (DataTree, DataArray)
        The reduced set (the other animals unchanged) and the hidden trials.
    """
    from neurovamp.data.dataset import animals as dataset_animals
    from neurovamp.data.dataset import get_modality, make_dataset

    labels = _labels(tree, animal, by)
    hidden = labels == condition
    if not hidden.any() or hidden.all():
        raise DataError(f"animal {animal!r}: cannot hide {by}={condition!r} (it has {int(hidden.sum())} of "
                        f"{hidden.size} trials)")
    mods = []
    for name in dataset_animals(tree):
        mod = get_modality(tree, name)
        mods.append(mod.isel(trial=np.flatnonzero(~hidden)) if name == animal else mod)
    return make_dataset(mods), get_modality(tree, animal).isel(trial=np.flatnonzero(hidden))


def _folder_name(value: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", str(value)).strip("._") or "x"
    return text[:60]


def fit_dir(out_dir: str | os.PathLike, animal: str, condition: Any) -> Path:
    """Folder of one fit: ``out_dir/<animal>/<condition>`` (names made file-safe)."""
    return Path(out_dir) / _folder_name(animal) / _folder_name(condition)


def fit_and_score(
    tree: xr.DataTree,
    animal: str,
    condition: Any,
    *,
    by: str,
    pair: Callable[[xr.DataTree], Any],
    model_config: Mapping[str, Any],
    training: Mapping[str, Any],
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Fit with ``condition`` hidden from ``animal``, impute it, score it (one LOCO fit).

    Parameters
    ----------
    tree
        The full multi-animal data set.
    animal, condition
        The animal and the value of ``by`` hidden from it.
    by
        The condition label.
    pair
        Pairs a data set as the run did (e.g. ``functools.partial(pair_trials, by=...)``).
    model_config
        :meth:`~neurovamp.models.config.ModelConfig.to_dict` of the model.
    training
        Options of :meth:`~neurovamp.models.estimator.MultiAnimalModel.fit` (``epochs``,
        ``batch_size``, ``lr``, ``patience``, ...).
    seed
        Seed of the model.
    out_dir
        Where the fit keeps its checkpoint and ``scores.json`` (resumed / skipped when
        present); nothing is written when None.

    Returns
    -------
    dict
        ``animal``, ``condition``, the scores of :func:`condition_scores`, ``epochs_run``,
        ``best_epoch`` and ``calibration``
        (:func:`~neurovamp.analysis.calibration.calibration_sums` of the imputation
        against the held-out trials, unsmoothed: what
        :func:`neurovamp.analysis.calibration.model_error_from_loco` turns into the band's
        model error).
    """
    from neurovamp.analysis.impute import impute_condition_mean
    from neurovamp.models.config import ModelConfig
    from neurovamp.models.estimator import MultiAnimalModel

    folder = None if out_dir is None else fit_dir(out_dir, animal, condition)
    if folder is not None and (folder / _SCORES).is_file():
        done = read_json(folder / _SCORES, what="leave-one-condition-out scores file")
        if CALIBRATION_KEY in done:  # fits kept before neurovamp recorded the error sums are refitted
            return done
    reduced, held = hide_condition(tree, animal, by, condition)
    paired = pair(reduced)
    model = MultiAnimalModel(config=ModelConfig.from_dict(dict(model_config)), seed=seed, device="cpu")
    fit_kw = {k: v for k, v in training.items() if k not in ("seed", "device")}
    ckpt = None if folder is None else folder / "checkpoints"
    resume = ckpt is not None and (ckpt / "checkpoint.pt").is_file()
    model.fit(paired, checkpoint_dir=ckpt, resume=resume, overwrite=not resume, progress=False, **fit_kw)
    imputed = impute_condition_mean(model, paired, target=animal, condition={by: [condition]})
    bin_size = float(imputed.attrs["bin_size"])
    rates = np.asarray(imputed["rates"].values, dtype=np.float64) * bin_size  # counts per bin
    units = imputed["unit"].values
    held = held.sel(unit=units) if "unit" in held.coords else held
    counts = np.asarray(held.values, dtype=np.float64)
    remaining = paired.modalities[animal]
    remaining = remaining.sel(unit=units) if "unit" in remaining.coords else remaining
    sigma = NULL_SMOOTH_S / bin_size
    rest, labels = np.asarray(remaining.values), np.asarray(remaining[by].values)
    generic = generic_prediction(rest, labels, sigma_bins=sigma)
    halves = [generic_prediction(rest, labels, half=h, sigma_bins=sigma) for h in (0, 1)]
    ok = np.isfinite(rates).all(axis=0)  # bins no sub-window reached
    scores = condition_scores(rates[:, ok], generic[:, ok], counts[:, :, ok], generic_pred=halves[0][:, ok],
                              generic_obs=halves[1][:, ok], sigma_bins=sigma)
    row = {"animal": animal, "condition": plain(condition), **scores,
           "epochs_run": int(model.fit_info_["epochs_run"]), "best_epoch": int(model.fit_info_["best_epoch"]),
           CALIBRATION_KEY: calibration_sums(rates[:, ok] / bin_size, counts[:, :, ok] / bin_size, units)}
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / _SCORES, row, overwrite=True, default=str)
        shutil.rmtree(ckpt, ignore_errors=True)  # the scores are what is kept
    return row


# Worker processes get the data once (inherited under fork) instead of with every task.
_WORKER: dict[str, Any] = {}


def _init_worker(tree: xr.DataTree, kwargs: Mapping[str, Any], threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))
    _WORKER["tree"] = tree
    _WORKER["kwargs"] = dict(kwargs)


def _run_task(task: tuple[str, Any]) -> dict[str, Any]:
    return fit_and_score(_WORKER["tree"], task[0], task[1], **_WORKER["kwargs"])


def leave_condition_out(
    tree: xr.DataTree,
    *,
    by: str,
    pair: Callable[[xr.DataTree], Any],
    model_config: Mapping[str, Any],
    training: Mapping[str, Any],
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    conditions: Sequence[Any] | None = None,
    animals: Sequence[str] | None = None,
    jobs: int = 1,
    threads: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Leave-one-condition-out evaluation of a model setting (see the module docstring).

    Parameters
    ----------
    tree, by, pair, model_config, training, seed
        As :func:`fit_and_score`; only the trials ``pair(tree)`` keeps (after the
        pairing's filters and conditions) take part.
    out_dir
        Folder keeping every finished fit's ``scores.json``: a re-run skips them (and an
        interrupted fit resumes from its checkpoint; a fit kept without the ``calibration``
        sums, by neurovamp before they were recorded, is refitted). None: nothing is kept.
    conditions, animals
        Restrict the fits (see :func:`loco_tasks`).
    jobs
        Fits run in parallel, one process each.
    threads
        Torch threads per process.
    progress
        Show a tqdm progress bar over the fits.
    overwrite
        Discard finished fits in ``out_dir`` made with other settings (otherwise an
        :class:`~neurovamp.errors.OutputExistsError`).

    Returns
    -------
    dict
        ``{"fits": [per-fit rows], "summary": summarise(fits), "settings": {...}}``.

    Raises
    ------
    ConfigError
        If ``jobs`` or ``threads`` is not a positive integer, or no fit is possible.
    """
    from tqdm.auto import tqdm

    for name, value in (("jobs", jobs), ("threads", threads)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    from neurovamp.data.dataset import make_dataset

    full = pair(tree)  # the run's filters and conditions decide which trials take part
    tree = make_dataset([full.modalities[a] for a in full.animals])
    tasks = loco_tasks(tree, by, conditions, animals)
    if not tasks:
        raise ConfigError(
            f"no condition can be left out: every animal needs a second value of {by!r} and another "
            "animal that has the hidden one"
        )
    settings = {"by": by, "seed": int(seed), "model": dict(model_config), "training": dict(training)}
    if out_dir is not None:
        _check_folder(Path(out_dir), settings, overwrite)
    kwargs = dict(by=by, pair=pair, model_config=dict(model_config), training=dict(training), seed=int(seed),
                  out_dir=out_dir)
    rows: dict[tuple[str, Any], dict[str, Any]] = {}
    bar = tqdm(total=len(tasks), desc="leave-one-condition-out", unit="fit", disable=not progress)
    try:
        if jobs == 1 or len(tasks) == 1:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(int(threads))
            try:
                for task in tasks:
                    rows[task] = fit_and_score(tree, *task, **kwargs)
                    bar.update(1)
            finally:
                torch.set_num_threads(before)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor, as_completed

            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(max_workers=min(int(jobs), len(tasks)), mp_context=mp.get_context(method),
                                     initializer=_init_worker, initargs=(tree, kwargs, int(threads))) as pool:
                futures = {pool.submit(_run_task, task): task for task in tasks}
                for future in as_completed(futures):
                    rows[futures[future]] = future.result()
                    bar.update(1)
    finally:
        bar.close()
    fits = [rows[t] for t in tasks]
    return {"fits": fits, "summary": summarise(fits), "settings": {**settings, "n_fits": len(fits)}}


def _check_folder(out_dir: Path, settings: Mapping[str, Any], overwrite: bool) -> None:
    """Keep the finished fits of ``out_dir`` only if they were made with ``settings``."""
    from neurovamp.errors import OutputExistsError

    marker = out_dir / "settings.json"
    wanted = json_safe(dict(settings), default=str)  # as it reads back
    if marker.is_file():
        try:
            old = read_json(marker)
        except DataError:
            old = None
        if old == wanted:
            return
        if not overwrite:
            raise OutputExistsError(
                f"{out_dir}: holds leave-one-condition-out fits made with other settings; pass --overwrite "
                "to discard them"
            )
    elif out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out_dir}: exists and holds no {marker.name}; pass --overwrite to replace it")
    if out_dir.is_dir():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    write_json(marker, wanted, overwrite=True)


def summarise(fits: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean, sd and per-animal means of the LOCO scores, and how often the generic null is beaten.

    Parameters
    ----------
    fits
        Rows of :func:`fit_and_score`.

    Returns
    -------
    dict
        For every score of ``bps_flat``, ``bps_generic``, ``generic_bps_flat``, ``r``,
        ``r2``: ``{"mean", "sd", "by_animal": {animal: mean}}``; ``beats_generic``:
        the fraction of fits with ``bps_generic > 0``; ``n_fits``.
    """
    out: dict[str, Any] = {"n_fits": len(fits)}
    for key in _SUMMARY_KEYS:
        values = np.array([float(f.get(key, np.nan)) for f in fits], dtype=float)
        ok = np.isfinite(values)
        by_animal: dict[str, float] = {}
        for animal in dict.fromkeys(f["animal"] for f in fits):
            mine = np.array([float(f.get(key, np.nan)) for f in fits if f["animal"] == animal])
            mine = mine[np.isfinite(mine)]
            by_animal[animal] = float(mine.mean()) if mine.size else float("nan")
        out[key] = {
            "mean": float(values[ok].mean()) if ok.any() else float("nan"),
            "sd": float(values[ok].std(ddof=1)) if ok.sum() > 1 else float("nan"),
            "by_animal": by_animal,
        }
    gen = np.array([float(f.get("bps_generic", np.nan)) for f in fits])
    gen = gen[np.isfinite(gen)]
    out["beats_generic"] = float((gen > 0).mean()) if gen.size else float("nan")
    return out


def read_loco_results(run_dir: str | Path) -> dict[str, Any] | None:
    """The leave-one-condition-out results ``neurovamp evaluate RUN --leave-condition-out`` wrote.

    Parameters
    ----------
    run_dir
        A run folder.

    Returns
    -------
    dict or None
        ``metrics.json``'s ``leave_condition_out`` entry, or None when there is none.

    Raises
    ------
    DataError
        If ``metrics.json`` is not readable JSON.
    """
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return None
    metrics = read_json(path, what="metrics file")
    entry = metrics.get(LOCO_KEY) if isinstance(metrics, dict) else None
    return entry if isinstance(entry, dict) and entry.get("fits") else None
