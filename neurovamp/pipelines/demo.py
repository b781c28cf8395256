"""The end-to-end demo: fit MMVM and every baseline on the embedded data and compare them.

:func:`run_demo` (command ``neurovamp demo``) runs the whole pipeline on the embedded
simulated default set (:func:`neurovamp.pipelines.default_data.default_dataset_path`):

1. bin each rat's NWB file around ``odor_onset`` (0-1 s, 20 ms bins; labels odor,
   position, in_sequence, correct);
2. pair trials across rats by odor (odors A-E; ``rat3`` never smelled E, so it is masked
   in E's pairs), split them 70/15/15 and cut 200 ms sub-windows every 40 ms;
3. fit MMVM and the baselines (independent, poe, moe, mopoe, avg) with neurovamp's default
   model settings, each into a run folder laid out exactly as ``neurovamp fit`` writes it
   (so ``neurovamp evaluate DIR/runs/<model>`` and ``neurovamp impute`` work on it);
4. evaluate each model (:func:`neurovamp.analysis.evaluate.evaluate_model`), write its
   ``metrics.json`` and figures, and score the imputation of rat3's never-seen odor E
   against the simulator's true rates;
5. write ``DIR/metrics.json`` (model → metrics), ``DIR/comparison.csv`` and
   ``DIR/report.md`` comparing the models side by side.

Output folder::

    DIR/demo.json                  settings and status ("running" / "complete")
    DIR/runs/<model>/              a `neurovamp fit` run folder, plus
        metrics.json               evaluate_model output (+ "fit" timing, + "ground_truth")
        figures/                   write_figures output
    DIR/figures/                   comparison figures embedded in the report
    DIR/metrics.json               {model: metrics}
    DIR/comparison.csv             comparison_table of the models
    DIR/report.md                  the report

Resuming: running the demo again on an unfinished folder (same settings) skips the models
whose run folder and metrics are complete. A finished folder is never modified unless
``overwrite`` is given (then every model is fitted again).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from neurovamp._files import atomic_output
from neurovamp._jsonfile import read_json, write_json
from neurovamp._threads import thread_limits
from neurovamp.errors import ConfigError, DataError, OutputExistsError
from neurovamp.pipelines.folder import COMPLETE, RunFolder, model_defaults

__all__ = [
    "DEMO_MODELS",
    "DEMO_FILE",
    "DemoSettings",
    "DemoResult",
    "demo_settings",
    "run_demo",
    "demo_folder",
]

#: Every model the demo compares, MMVM first.
DEMO_MODELS: tuple[str, ...] = ("mmvm", "independent", "poe", "moe", "mopoe", "avg")
#: Settings and status file of a demo folder.
DEMO_FILE = "demo.json"
DEMO_FORMAT = "neurovamp-demo"
DEMO_VERSION = 1
#: Rat and odor of the imputation the report checks against the ground truth.
MISSING_RAT, MISSING_ODOR = "rat3", "E"
#: Level and posterior draws of the imputation's band the report checks against the truth.
BAND_LEVEL, BAND_DRAWS = 0.95, 200
#: Key of that check in the demo's metrics.json (beside ``leave_condition_out``, whose fit it uses).
BAND_KEY = "band_vs_truth"

RUNS_DIR = "runs"
FIGURES_DIR = "figures"
METRICS_FILE = "metrics.json"
COMPARISON_FILE = "comparison.csv"
REPORT_FILE = "report.md"


@dataclass(frozen=True)
class DemoSettings:
    """Data, pairing and training settings of a demo run (JSON round trip via ``to_dict``).

    Parameters
    ----------
    models
        Models to fit and compare, in report order.
    epochs
        Maximum training epochs per model (early stopping on the validation loss with
        ``patience``).
    seed
        Seed of the split, pairing, training and evaluation.
    quick
        Tiny settings for tests: coarse bins, few sub-windows, a couple of epochs.
    event, window, bin_size, labels
        How the NWB files are binned (``neurovamp fit`` options ``--event``, ``--window``,
        ``--bin``, ``--label``).
    pair_by, strategy, conditions, split, subwindow, stride
        How trials are paired and cut (``--pair-by``, ``--strategy``, ``--conditions``,
        ``--split``, ``--subwindow``, ``--stride``).
    batch_size, patience
        Training options (``--batch-size``, ``--patience``).
    decode_labels
        Labels decoded by the evaluation.
    n_seeds
        Seeds every model is fitted with: ``seed``, ``seed + 1``, ...; the report gives
        mean ± SD over them and says which differences are within their noise.
    loco
        ``(animal, condition)`` hidden from that animal for the leave-one-condition-out
        fit of every model (seed ``seed``), or None for none.
    """

    models: tuple[str, ...] = DEMO_MODELS
    epochs: int = 200
    seed: int = 0
    quick: bool = False
    event: str = "odor_onset"
    window: tuple[float, float] = (0.0, 1.0)
    bin_size: float = 0.02
    labels: tuple[str, ...] = ("odor", "position", "in_sequence", "correct")
    pair_by: str = "odor"
    strategy: str = "resample"
    conditions: tuple[str, ...] = ("A", "B", "C", "D", "E")
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    subwindow: int = 10
    stride: int = 2
    batch_size: int = 128
    patience: int = 20
    decode_labels: tuple[str, ...] = ("odor", "position")
    n_seeds: int = 3
    loco: tuple[str, str] | None = ("rat3", "D")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary of every setting (tuples as lists).

        Returns
        -------
        dict
        """
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def comparable(self) -> dict[str, Any]:
        """The settings that must match to resume a demo folder (everything but ``models``).

        Returns
        -------
        dict
        """
        out = self.to_dict()
        out.pop("models")
        return out


def demo_settings(
    *,
    models: Sequence[str] | None = None,
    epochs: int | None = None,
    seed: int = 0,
    quick: bool = False,
    n_seeds: int | None = None,
) -> DemoSettings:
    """Settings of a demo run, validated.

    Parameters
    ----------
    models
        Models to compare (default: all six; ``quick``: ``mmvm`` and ``independent``).
    epochs
        Maximum epochs per model (default 200; ``quick``: 2).
    seed
        Seed of everything random.
    quick
        Seconds-long settings for tests: 50 ms bins, 4-bin sub-windows every 4 bins.
    n_seeds
        Seeds per model (default 3; ``quick``: 1).

    Returns
    -------
    DemoSettings

    Raises
    ------
    ConfigError
        Unknown or repeated model names, non-positive epochs, negative seed.
    """
    if models is None:
        models = ("mmvm", "independent") if quick else DEMO_MODELS
    if isinstance(models, str):
        models = (models,)
    models = tuple(str(m) for m in models)
    unknown = [m for m in models if m not in DEMO_MODELS]
    if unknown or not models:
        raise ConfigError(f"models must be among {', '.join(DEMO_MODELS)}; got {list(models)}")
    if len(set(models)) != len(models):
        raise ConfigError(f"models are repeated: {list(models)}")
    if epochs is None:
        epochs = 2 if quick else DemoSettings.epochs
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if n_seeds is None:
        n_seeds = 1 if quick else DemoSettings.n_seeds
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, (int, np.integer)) or n_seeds < 1:
        raise ConfigError(f"n_seeds (--seeds) must be a positive integer, got {n_seeds!r}")
    extra: dict[str, Any] = {}
    if quick:
        extra = dict(bin_size=0.05, subwindow=4, stride=4, patience=5)
    return DemoSettings(models=models, epochs=int(epochs), seed=int(seed), quick=bool(quick), n_seeds=int(n_seeds),
                        **extra)


@dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes
    ----------
    out_dir
        The demo folder.
    report
        ``out_dir/report.md``.
    metrics
        Model → metrics dict (as in ``out_dir/metrics.json``).
    table
        The comparison table (as in ``out_dir/comparison.csv``).
    fitted
        Models fitted (or evaluated) in this call.
    reused
        Models whose complete run folder was reused.
    seconds
        Wall time of the call.
    """

    out_dir: Path
    report: Path
    metrics: dict[str, dict[str, Any]]
    table: pd.DataFrame
    fitted: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --------------------------------------------------------------------------- demo folder
def _read_dict(path: Path) -> dict[str, Any] | None:
    """A JSON object the demo wrote (None when the file is missing, unreadable or not an object)."""
    try:
        data = read_json(path)
    except DataError:
        return None
    return data if isinstance(data, dict) else None


def demo_folder(out_dir: str | os.PathLike) -> RunFolder:
    """The demo folder ``out_dir`` with its marker ``demo.json``."""
    return RunFolder(out_dir, marker=DEMO_FILE, format=DEMO_FORMAT, version=DEMO_VERSION,
                     what="neurovamp demo description")


def _prepare_folder(out_dir: Path, settings: DemoSettings, overwrite: bool) -> dict[str, Any]:
    """Check ``out_dir`` may be used, clear it under ``overwrite``, (re)write demo.json."""
    folder = demo_folder(out_dir)
    marker = folder.marker_path
    folder.check_is_folder(message=f"{out_dir}: exists and is not a folder; choose another --out")
    previous = _read_dict(marker)
    if out_dir.is_dir() and any(out_dir.iterdir()) and previous is None:
        raise OutputExistsError(
            f"{out_dir}: exists and is not a neurovamp demo folder (no readable {DEMO_FILE}); "
            "choose another --out (the demo never replaces other folders, even with --overwrite)"
        )
    if previous is not None and previous.get("format") != DEMO_FORMAT:
        raise OutputExistsError(f"{marker}: not a neurovamp demo description; choose another --out")
    if previous is not None and not overwrite:
        old = dict(previous.get("settings") or {})
        old_models = old.pop("models", None)
        folder.check_same_settings(
            old, settings.comparable(),
            "{path}: holds a demo run with different settings ({changed}); "
            "pass --overwrite to replace it or choose another --out",
        )
        if previous.get("model_defaults") != model_defaults():
            raise OutputExistsError(
                f"{out_dir}: holds a demo run made with other default model settings (an older neurovamp); "
                "pass --overwrite to replace it or choose another --out"
            )
        if previous.get("status") == COMPLETE:
            same = list(old_models or []) == list(settings.models)
            raise OutputExistsError(
                f"{out_dir}: holds a complete demo"
                + ("" if same else f" of models {old_models}")
                + "; pass --overwrite to run it again or choose another --out"
            )
    folder.check_can_write()  # the last check: nothing is written before it
    if overwrite and previous is not None:  # only what the demo wrote; a user's runs/<own>/ stays
        folder.clear(legacy=_demo_outputs())
    info = folder.new_info(
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        settings=settings.to_dict(),
        model_defaults=model_defaults(),
    )
    folder.start(info, files=_demo_outputs(), folders=[f"{RUNS_DIR}/{m}" for m in settings.models],
                 legacy=_demo_outputs())
    return info


def _demo_outputs() -> list[str]:
    """The files a demo writes at the top of its folder (its runs/<model>/ record their own)."""
    return [DEMO_FILE, METRICS_FILE, COMPARISON_FILE, REPORT_FILE, f"{FIGURES_DIR}/comparison.png",
            f"{FIGURES_DIR}/alignment_matrices.png", f"{FIGURES_DIR}/imputation_{MISSING_RAT}_odor_{MISSING_ODOR}.png"]


def _run_complete(run_dir: Path) -> bool:
    from neurovamp.pipelines.fit import MODEL_DIR, RUN_FILE

    info = _read_dict(run_dir / RUN_FILE)
    return bool(info) and info.get("status") == COMPLETE and (run_dir / MODEL_DIR / "weights.pt").is_file()


def _model_complete(run_dir: Path) -> bool:
    return _run_complete(run_dir) and _read_dict(run_dir / METRICS_FILE) is not None and (
        run_dir / FIGURES_DIR
    ).is_dir()


# --------------------------------------------------------------------------- fitting
def _fit_model(paths: Sequence[Path], run_dir: Path, model: str, s: DemoSettings, device: str,
               progress: bool) -> float:
    """Fit one model into ``run_dir`` with :func:`neurovamp.pipelines.fit.fit_run`; return the wall time (s).

    An interrupted run (checkpoint present) is resumed; any other incomplete run folder of
    this demo is restarted.
    """
    from neurovamp.models.config import ModelConfig
    from neurovamp.models.training import CHECKPOINT_NAME
    from neurovamp.pipelines.fit import CHECKPOINT_DIR, RUN_FILE, fit_run

    resumable = (run_dir / RUN_FILE).is_file() and (run_dir / CHECKPOINT_DIR / CHECKPOINT_NAME).is_file()
    start = time.perf_counter()
    fit_run(
        paths, run_dir, event=s.event, window=s.window, bin_size=s.bin_size, labels=list(s.labels),
        pair_by=s.pair_by, strategy=s.strategy, conditions=list(s.conditions), split=s.split,
        subwindow=s.subwindow, stride=s.stride, config=ModelConfig(model=model), epochs=s.epochs,
        batch_size=s.batch_size, patience=s.patience, seed=s.seed, device=device,
        resume=run_dir.exists() and resumable, overwrite=run_dir.exists() and not resumable, progress=progress,
    )
    return time.perf_counter() - start


# --------------------------------------------------------------------------- figures
def _alignment_figure(metrics_by_model: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    import matplotlib.pyplot as plt
    import xarray as xr

    from neurovamp.analysis.plots import plot_alignment_matrix, save_figure

    models = list(metrics_by_model)
    ncols = min(3, len(models))
    nrows = int(np.ceil(len(models) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + 1.2, 3.4 * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    image = None
    for ax, name in zip(axes.flat, models):
        alignment = metrics_by_model[name].get("alignment") or {}
        animals = list(alignment.get("animals") or [])
        values = np.array([[np.nan if v is None else float(v) for v in row] for row in alignment.get("r2") or []])
        if values.size == 0:
            ax.set_visible(False)
            continue
        da = xr.DataArray(values, dims=("source", "target"), coords={"source": animals, "target": animals},
                          name="alignment_r2")
        plot_alignment_matrix(da, ax=ax, colorbar=False, title=name)
        image = ax.images[-1]
    if image is not None:
        fig.colorbar(image, ax=list(axes.flat), shrink=0.8, extend="both",
                     label="R² of target from source latents")
    fig.suptitle("cross-animal alignment per model (diagonal: an animal with itself)", fontsize=11)
    try:
        return save_figure(fig, path, overwrite=True)
    finally:
        plt.close(fig)


def _comparison_figure(metrics_by_model: Mapping[str, Mapping[str, Any]], path: Path, labels: Sequence[str]) -> Path:
    """Bars of the main metrics per model (mean, SD, one dot per animal or animal pair)."""
    import matplotlib.pyplot as plt

    from neurovamp.analysis.plots import plot_model_comparison, save_figure

    def value(x: Any) -> float:
        return float("nan") if x is None else float(x)

    panels: dict[str, list[dict[str, Any]]] = {}
    for name, metrics in metrics_by_model.items():
        for animal, entry in (metrics.get("animals") or {}).items():
            values: dict[str, Any] = {}
            for label in labels:
                values[f"{label} decoding"] = (entry.get("decoding", {}).get(label) or {}).get("balanced_accuracy")
                values[f"{label} shared decoding"] = (entry.get("shared_decoding", {}).get(label) or {}).get(
                    "balanced_accuracy"
                )
            imputation = entry.get("imputation") or {}
            values["bits/spike"] = imputation.get("bits_per_spike")
            values["bits/spike vs generic"] = imputation.get("bits_per_spike_vs_generic")
            values["PSTH R²"] = imputation.get("psth_r2")
            values["cross-animal generation accuracy"] = imputation.get("cross_generation_accuracy")
            for metric, v in values.items():
                panels.setdefault(metric, []).append({"model": name, "unit": animal, "value": value(v)})
        alignment = metrics.get("alignment") or {}
        matrix = alignment.get("r2") or []
        for i, row in enumerate(matrix):
            for j, v in enumerate(row):
                if i != j:
                    row = {"model": name, "unit": f"{i}-{j}", "value": value(v)}
                    panels.setdefault("alignment R²", []).append(row)
    shown = [m for m, rows in panels.items() if np.isfinite([r["value"] for r in rows]).any()]
    ncols = 3
    nrows = max(1, int(np.ceil(len(shown) / ncols)))
    width = max(3.6, 0.75 * len(metrics_by_model) + 1.2)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 3.0 * nrows), squeeze=False, layout="constrained")
    units = {"bits/spike": "bits per spike (0 = flat rate)", "PSTH R²": "R² of the PSTH",
             "bits/spike vs generic": "bits per spike (0 = the animal's mean)",
             "cross-animal generation accuracy": "accuracy (0-1)", "alignment R²": "R² (0 = no better than the mean)"}
    for ax, metric in zip(axes.flat, shown):
        label = next((lab for lab in labels if metric.startswith(f"{lab} ")), None)
        references = _decoding_references(metrics_by_model, label) if label is not None else None
        if metric.endswith(" shared decoding") and references:
            references = references[:-1]  # the raw-count decoder is per animal, not shared
        plot_model_comparison(pd.DataFrame(panels[metric]), metric="value", model="model", seed="unit",
                              order=list(metrics_by_model), ax=ax, references=references,
                              ylabel=units.get(metric, "balanced accuracy (0-1)"), title=metric)
        ax.tick_params(axis="x", labelrotation=35, labelsize=8)
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    fig.suptitle("mean ± SD; dots: animals (alignment: ordered animal pairs)", fontsize=10)
    try:
        return save_figure(fig, path, overwrite=True)
    finally:
        plt.close(fig)


def _decoding_references(metrics_by_model: Mapping[str, Mapping[str, Any]], label: str) -> list[tuple[str, float]]:
    """Reference lines of a decoding panel: chance per animal (grouped) and the raw-count decoder."""
    first = next(iter(metrics_by_model.values()), {})
    chance: dict[float, list[str]] = {}
    raw = []
    for animal, entry in (first.get("animals") or {}).items():
        result = (entry.get("decoding") or {}).get(label) or {}
        if result.get("chance") is not None:
            chance.setdefault(round(float(result["chance"]), 6), []).append(animal)
        if result.get("raw_balanced_accuracy") is not None:
            raw.append(float(result["raw_balanced_accuracy"]))
    refs = [(f"chance {', '.join(names)} ({value:.2f})", value) for value, names in sorted(chance.items())]
    if raw:
        refs.append(("raw spike counts (mean of animals)", float(np.mean(raw))))
    return refs


def _chance_text(metrics_by_model: Mapping[str, Mapping[str, Any]], label: str) -> str:
    """Each animal's chance level of ``label``, e.g. ``rat1 0.200 (1/5), rat3 0.250 (1/4)``."""
    first = next(iter(metrics_by_model.values()), {})
    parts = []
    for animal, entry in (first.get("animals") or {}).items():
        result = (entry.get("decoding") or {}).get(label) or {}
        if result.get("chance") is None:
            continue
        n = len(result.get("classes") or [])
        exact = f" (1/{n})" if n and np.isclose(result["chance"], 1 / n) else ""
        parts.append(f"{animal} {float(result['chance']):.3f}{exact}")
    return ", ".join(parts) or "–"


def _band_of(metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    return metrics.get(BAND_KEY)


def _band_sentence(metrics_by_model: Mapping[str, Mapping[str, Any]]) -> str | None:
    """What the report says of the bands' coverage of the true rates, from the numbers."""
    bands = {name: _band_of(m) for name, m in metrics_by_model.items() if _band_of(m)}
    if not bands:
        return None
    level = next(iter(bands.values()))["level"]
    held = sorted({c for b in bands.values() for c in b.get("conditions", [])})
    parts = ", ".join(f"{name} {b['coverage']:.2f}" for name, b in bands.items())
    inside = [name for name, b in bands.items() if 0.90 <= b["coverage"] <= 0.98]
    narrow = [name for name, b in bands.items() if b["coverage"] < 0.90]
    wide = [name for name, b in bands.items() if b["coverage"] > 0.98]
    verdict = "; ".join(text for text in (
        f"within 0.90-0.98 for {', '.join(inside)}" if inside else "",
        f"too narrow for {', '.join(narrow)}" if narrow else "",
        f"wider than needed for {', '.join(wide)}" if wide else "") if text)
    return (f"The {100 * level:g} % band of each model's imputation adds to the latent posterior the model error "
            f"measured by its leave-one-condition-out fit (odor {', '.join(held) or '?'} hidden from "
            f"{MISSING_RAT}, one condition, one seed). Against the true rate of odor {MISSING_ODOR} it covers: "
            f"{parts} of the bins ({verdict}). A band measured on other conditions is right on average over "
            "experiments, not in each one (`docs/model.md`).")


def _imputation_figure(truth_by_model: Mapping[str, Mapping[str, Any]], path: Path, n_units: int = 6) -> Path | None:
    """Rat3's never-seen odor: imputed rates (MMVM, independent) vs the true rates."""
    import matplotlib.pyplot as plt

    from neurovamp.analysis.plots import save_figure

    curves = {m: t["_curves"] for m, t in truth_by_model.items() if t.get("_curves")}
    if not curves:
        return None
    first = next(iter(curves.values()))
    truth = first["truth"]
    time = first["time"]
    # the units whose true rate is most modulated by the unseen odor
    order = np.argsort(-(truth.max(axis=1) - truth.min(axis=1)))[: min(n_units, truth.shape[0])]
    shown = [m for m in ("mmvm", "independent") if m in curves] or list(curves)[:1]
    styles = {"mmvm": ("#D55E00", "-"), "independent": ("#0072B2", "--")}
    ncols = 3
    nrows = int(np.ceil(len(order) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False, sharex=True,
                             layout="constrained")
    for ax, u in zip(axes.flat, order):
        ax.plot(time, truth[u], color="black", lw=2.0, label="true rate (simulator)")
        for m in shown:
            color, ls = styles.get(m, ("#009E73", "-."))
            c = curves[m]
            ax.plot(time, c["imputed"][u], color=color, ls=ls, lw=1.6, label=f"imputed by {m}")
            lo, hi = ((c["band_lo"][u], c["band_hi"][u]) if "band_lo" in c else
                      (c["imputed"][u] - c["imputed_sem"][u], c["imputed"][u] + c["imputed_sem"][u]))
            ax.fill_between(time, lo, hi, color=color, alpha=0.15, linewidth=0)
        ax.set_title(f"{MISSING_RAT} unit {first['unit'][u]}", fontsize=9)
        ax.set_xlabel("time from odor onset (s)")
        ax.set_ylabel("rate (Hz)")
    for ax in list(axes.flat)[len(order):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False, fontsize=8)
    fig.suptitle(f"{MISSING_RAT} never smelled odor {MISSING_ODOR}: imputed from the other rats vs ground truth",
                 fontsize=10)
    try:
        return save_figure(fig, path, overwrite=True)
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- evaluation
def _evaluate_model(run_dir: Path, paired: Any, s: DemoSettings, device: str, fit_seconds: float | None,
                    ground_truth: Any, figures: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate one fitted run: metrics.json and figures/ in the run folder."""
    from neurovamp.analysis.evaluate import evaluate_model
    from neurovamp.analysis.truth import imputation_vs_truth
    from neurovamp.models.estimator import MultiAnimalModel
    from neurovamp.pipelines.fit import MODEL_DIR, read_run_info, write_evaluation

    model = MultiAnimalModel.load(run_dir / MODEL_DIR, device=device)
    model.check_compatible(paired)
    metrics = evaluate_model(model, paired, labels=list(s.decode_labels), seed=s.seed)
    info = read_run_info(run_dir)
    fit = dict(info.get("fit") or {})
    fit.setdefault("seconds", fit_seconds)  # run.json's model.fit time; the wall time only for older runs
    metrics["fit"] = fit
    truth = imputation_vs_truth(model, paired, ground_truth, s.conditions, target=MISSING_RAT,
                                missing_odor=MISSING_ODOR)
    metrics["ground_truth"] = {k: v for k, v in truth.items() if not k.startswith("_")}
    write_evaluation(run_dir, metrics, model=model if figures else None, paired=paired, label=s.decode_labels[0],
                     seed=s.seed, overwrite=True, info=info)
    return metrics, truth


# --------------------------------------------------------------------------- report
_INTRO = """\
This report compares the **MMVM VAE** (Sutter et al. 2024) with the baselines on the
embedded simulated data set (3 rats, 18-30 units, ~60 trials each; rat3 never smelled
odor E). Every model was fitted with neurovamp's default model settings on the same
trials, pairs and splits. Each model's run folder is in `runs/<model>/`, laid out as
`neurovamp fit` writes it: `neurovamp evaluate runs/<model> --overwrite` recomputes its
metrics, and `neurovamp impute runs/<model> --target rat3 --condition odor=E --out rat3_E.nc`
imputes rat3's never-seen odor.
"""

_METRIC_NOTES = [
    "**decoding**: balanced accuracy of a logistic-regression decoder trained on an animal's "
    "train-split latent means (one sample per trial and sub-window) and tested on its test split; "
    "mean ± SD over animals; *chance* = 1 / that animal's number of classes (an animal lacking a condition "
    "has fewer); *from raw counts* is the same decoder "
    "on spike counts, a model-free reference.",
    "**shared decoding**: one decoder trained on the *other* animals' latents and tested on this "
    "animal's; high only when the animals' latent spaces are aligned.",
    "**bits/spike, PSTH R², cross-animal generation accuracy**: each animal's test trials imputed from the "
    "other animals' trials of the same odor (bits/spike > 0 beats a flat rate per unit; cross-animal "
    "generation accuracy, called *coherence* in the MMVM paper = accuracy of an odor classifier trained on "
    "the animal's real activity, applied to its imputed activity).",
    "**generic: bits/spike, bits/spike vs generic, condition-specific r**: the *generic* prediction is the "
    "animal's own train-split mean response over its odors; *generic: bits/spike* scores it like the "
    "imputation (vs a flat rate), *bits/spike vs generic* scores the imputation with it as the null (> 0 only "
    "when the imputation adds odor-specific information), *condition-specific r* correlates (imputed − "
    "generic) with (held-out PSTH − generic) per odor, pooled.",
    "**alignment R²**: held-out R² of a linear map between two animals' odor-averaged latent "
    "trajectories, mean over ordered animal pairs; *alignment R², no map* is the R² of one animal's "
    "trajectory as the other's prediction with no fitted map (the latent axes themselves agree).",
]


def _seed_sentences(metrics_by_model: Mapping[str, Mapping[str, Any]], keys: Sequence[str]) -> list[str]:
    """Sentences comparing MMVM with the best other model on each score, from the numbers over seeds."""
    from neurovamp.analysis.report import compare_over_seeds

    out = []
    for key in keys:
        values = {name: ((m.get("over_seeds") or {}).get("values") or {}).get(key) for name, m in metrics_by_model.items()}
        values = {name: v for name, v in values.items() if v is not None}
        title, higher = SEED_SCORES[key]
        sentence = compare_over_seeds(values, title, higher_is_better=higher) if values else ""
        if sentence:
            out.append(sentence)
    return out


def _seed_table(metrics_by_model: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Model x score: ``mean ± SD`` over seeds (text cells) of the :data:`SEED_SCORES`."""
    from neurovamp.analysis.report import format_mean_sd

    rows = {}
    for name, metrics in metrics_by_model.items():
        over = metrics.get("over_seeds") or {}
        rows[name] = {
            SEED_SCORES[k][0]: format_mean_sd(over.get("mean", {}).get(k), over.get("sd", {}).get(k))
            for k in SEED_SCORES
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table


def _write_report(out_dir: Path, s: DemoSettings, metrics_by_model: Mapping[str, Mapping[str, Any]],
                  table: pd.DataFrame, figures: Mapping[str, Path | None], seconds: float) -> Path:
    from neurovamp.analysis.report import MarkdownReport, column_title, format_mean_sd
    from neurovamp.analysis.figures import confound_note
    from neurovamp.pipelines.fit import PSTH_BASELINE

    report = MarkdownReport("neurovamp demo: MMVM VAE vs baselines", folder=out_dir)
    report.paragraph(_INTRO)
    if s.quick:
        report.paragraph("> **Quick mode** (`--quick`): tiny settings for testing; the numbers are not meaningful.")
    n_seeds = max((len((m.get("over_seeds") or {}).get("seeds") or [0]) for m in metrics_by_model.values()),
                  default=1)
    headline = _seed_sentences(metrics_by_model, ["unseen_condition_r", "unseen_bps_generic", "loco_bps_generic",
                                                  "shared_decoding_odor", "alignment_r2"])
    if headline:
        report.paragraph(f"**Headline** (computed from the numbers below; {n_seeds} seed(s), mean ± SD over seeds):")
        report.bullets(headline)

    report.section("Settings")
    report.bullets([
        f"data: default simulated set, trials aligned to `{s.event}`, window {s.window[0]:g}-{s.window[1]:g} s, "
        f"{s.bin_size * 1000:g} ms bins",
        f"pairing: by `{s.pair_by}` ({', '.join(s.conditions)}; {MISSING_RAT} masked for odor {MISSING_ODOR}), "
        f"strategy `{s.strategy}`, split {'/'.join(f'{f:g}' for f in s.split)}, sub-windows of {s.subwindow} bins "
        f"every {s.stride} bins",
        f"training: up to {s.epochs} epochs, batch {s.batch_size}, early stopping patience {s.patience}, "
        f"seeds {', '.join(str(s.seed + k) for k in range(s.n_seeds))} (the per-animal tables below are seed {s.seed})",
        f"models: {', '.join(s.models)}; total demo time {seconds:.0f} s",
    ])

    report.section("Over seeds")
    report.paragraph(
        f"Every model was fitted with {n_seeds} seed(s) (split, pairs and initialisation change with the seed). "
        "Mean ± SD over seeds; the leave-one-condition-out fit is run for the first seed only. A difference is "
        "called clear when it has the same sign on every seed and exceeds twice its standard error."
    )
    report.table(_seed_table(metrics_by_model), caption="`over_seeds` in `metrics.json`.", titles={})
    report.bullets(_seed_sentences(metrics_by_model, [k for k in SEED_SCORES]))

    report.section("Comparison")
    wanted = []
    for lab in s.decode_labels:
        wanted += [f"decoding_{lab}", f"shared_decoding_{lab}"]
    wanted += ["bits_per_spike", "generic_bits_per_spike", "bits_per_spike_vs_generic", "condition_specific_r",
               "psth_r2", "cross_generation_accuracy", "alignment_r2", "alignment_identity_r2", "fit_seconds",
               "epochs_run"]
    columns = [c for c in wanted if c in table.columns]
    keep = [c for c in table.columns if c in columns or (c.endswith("_sd") and c[:-3] in columns)]
    # the generic null is model-free (the same for every model): not ranked
    best = {c: "max" for c in columns if not c.startswith(("fit_", "epochs")) and c != "generic_bits_per_spike"}
    report.table(
        table[keep],
        caption="Mean ± SD over animals (alignment: over ordered animal pairs); best model in bold. "
        "The numbers are those of `metrics.json` (and `comparison.csv`).",
        titles={c: column_title(c) for c in keep},
        bold_best=best,
        digits={"fit_seconds": 1, "epochs_run": 0},
    )
    references = []
    for lab in s.decode_labels:
        raw = f"raw_decoding_{lab}"
        if raw in table.columns and table[raw].notna().any():
            row = table[raw].dropna().index[0]
            text = format_mean_sd(table.at[row, raw], table.at[row, raw + "_sd"] if raw + "_sd" in table else None)
            references.append(
                f"{lab}: chance per animal {_chance_text(metrics_by_model, lab)}; decoding the same samples from "
                f"raw spike counts (model-free reference) {text}"
            )
    if references:
        report.paragraph("References (the same for every model): " + "; ".join(references) + ".")
    notes = [confound_note(lab) for lab in s.decode_labels if confound_note(lab)]
    if notes:
        report.paragraph("**Caveat:** " + "; ".join(notes) + ".")
    report.bullets(_METRIC_NOTES)
    n_test = _test_trials(metrics_by_model)
    if n_test:
        report.paragraph(
            f"**Caveat:** the held-out scores use the test split, {n_test} trials per animal here (a few per "
            "odor) of one seed; whether a difference between models survives the noise is said in *Over seeds*."
        )
    if figures.get("comparison"):
        report.image(figures["comparison"], "metrics per model",
                     caption="Dots: animals (alignment: ordered animal pairs).")

    report.section(f"Imputing an odor {MISSING_RAT} never smelled")
    truth_rows = []
    for name, metrics in metrics_by_model.items():
        by_odor = (metrics.get("ground_truth") or {}).get("by_odor") or {}
        if not by_odor:
            continue
        seen = [o for o, v in by_odor.items() if v.get("seen")]
        unseen = by_odor.get(MISSING_ODOR, {})
        truth_rows.append({
            "model": name,
            f"odor {MISSING_ODOR} R²": unseen.get("r2"),
            f"odor {MISSING_ODOR} modulation R²": unseen.get("r2_modulation"),
            f"odor {MISSING_ODOR} correlation": unseen.get("correlation"),
            "seen odors R²": np.nanmean([_nan(by_odor[o].get("r2")) for o in seen]) if seen else np.nan,
        })
    generic_row = None
    for name, metrics in metrics_by_model.items():
        unseen = ((metrics.get("ground_truth") or {}).get("by_odor") or {}).get(MISSING_ODOR) or {}
        if "condition_r" in unseen:
            for row in truth_rows:
                if row["model"] == name:
                    row.update({
                        "condition-specific r": unseen.get("condition_r"),
                        "condition-specific R²": unseen.get("condition_r2"),
                        "bits/spike vs generic": unseen.get("bps_generic"),
                        "bits/spike vs flat": unseen.get("bps_flat"),
                    })
                    band = _band_of(metrics)
                    if band:
                        row[f"{100 * band['level']:g} % band coverage"] = band.get("coverage")
                        row["band width (Hz)"] = band.get("median_width_hz")
            if generic_row is None:
                generic_row = {
                    "model": f"generic ({MISSING_RAT}'s mean over its odors)",
                    f"odor {MISSING_ODOR} correlation": unseen.get("generic_correlation"),
                    "condition-specific r": np.nan, "condition-specific R²": 0.0,
                    "bits/spike vs generic": 0.0, "bits/spike vs flat": unseen.get("generic_bps_flat"),
                }
    if generic_row is not None:
        truth_rows.append(generic_row)
    if truth_rows:
        truth_table = pd.DataFrame(truth_rows).set_index("model").astype(float)
        report.paragraph(
            f"The simulator's ground truth gives {MISSING_RAT}'s true expected rate in every condition, including "
            f"odor {MISSING_ODOR}, which it never experienced. Each model imputes {MISSING_RAT}'s rates from the "
            f"other rats' odor-{MISSING_ODOR} trials (encode with the source rat's encoder, decode with "
            f"{MISSING_RAT}'s decoder, average over trials and sources) and is scored against the truth: R² over "
            "units and time bins, the same after removing each unit's mean (*modulation*), and the correlation. "
            "*Seen odors R²* is the same score for the odors rat3 did experience (their mean). The *generic* "
            f"prediction is {MISSING_RAT}'s own mean response over the odors it smelled: *condition-specific* r "
            "and R² compare (imputed − generic) with (true − generic) (R² 0 = no better than the generic "
            "prediction), and bits/spike vs generic is > 0 only when the imputation adds odor-specific "
            f"information (scored on 200 Poisson draws of the true odor-{MISSING_ODOR} rate; seed {s.seed})."
        )
        band_sentence = _band_sentence(metrics_by_model)
        if band_sentence:
            report.paragraph(band_sentence)
        report.table(truth_table, titles={}, bold_best={c: "max" for c in truth_table.columns
                                                        if "band" not in c})
    if figures.get("imputation"):
        banded = _band_of(metrics_by_model.get("mmvm", {})) is not None
        what = (f"the {100 * BAND_LEVEL:g} % predictive band, model error from the leave-one-condition-out fit"
                if banded else "± SEM over source trials")
        report.image(
            figures["imputation"], f"{MISSING_RAT} odor {MISSING_ODOR} imputed vs true",
            caption=f"Black: true rate; coloured: imputed (band: {what}). The units shown are "
            f"the ones the unseen odor modulates most.",
        )

    if figures.get("psth"):
        report.image(
            figures["psth"], f"{MISSING_RAT} PSTHs recorded vs imputed by mmvm",
            caption=f"{MISSING_RAT}'s recorded PSTHs (solid; including {PSTH_BASELINE:g} s before odor onset, "
            "the grey dotted line is each unit's pre-onset mean) and mmvm's imputation of its test trials "
            "from the other rats (dashed, from odor onset), per odor; the units shown are the most odor-dependent.",
        )

    loco_rows = []
    for name, metrics in metrics_by_model.items():
        fits = (metrics.get("leave_condition_out") or {}).get("fits") or []
        for fit in fits:
            loco_rows.append({"model": name, "condition-specific r": fit.get("r"), "condition-specific R²": fit.get("r2"),
                              "bits/spike vs generic": fit.get("bps_generic"), "bits/spike vs flat": fit.get("bps_flat"),
                              "generic: bits/spike vs flat": fit.get("generic_bps_flat"),
                              "held-out trials": fit.get("n_trials")})
    if loco_rows and s.loco is not None:
        report.section("Leave-one-condition-out (no ground truth needed)")
        animal, condition = s.loco
        report.paragraph(
            f"Each model was refitted with {animal}'s odor-{condition} trials removed (the other rats keep theirs), "
            f"then {animal}'s odor {condition} was imputed from the other rats and scored against its real "
            f"odor-{condition} trials, as `neurovamp evaluate RUN --leave-condition-out` does for every animal and "
            "condition. The generic prediction (its mean over the other odors) is the null of *bits/spike vs "
            "generic*; its own score against a flat rate is in the last column."
        )
        report.table(pd.DataFrame(loco_rows).set_index("model").astype(float), titles={},
                     bold_best={"condition-specific r": "max", "condition-specific R²": "max",
                                "bits/spike vs generic": "max", "bits/spike vs flat": "max"},
                     digits={"held-out trials": 0})

    report.section("Cross-animal alignment")
    align = _seed_sentences(metrics_by_model, ["alignment_r2"])
    report.paragraph(
        "Entry (i, j): held-out R² of a linear map from animal i's odor-averaged latent trajectories to animal j's. "
        + (align[0] if align else "No model has a cross-validated alignment score here, so no ranking is given.")
    )
    if figures.get("alignment"):
        report.image(figures["alignment"], "alignment matrices")

    report.section("Latent spaces")
    report.paragraph(
        "Each animal's latent means (one point per trial and sub-window) in the first two principal components "
        "fitted jointly on all animals, coloured by odor (the paper's figure)."
    )
    for name in metrics_by_model:
        latent = figures.get(f"latents/{name}")
        if latent:
            report.image(latent, f"{name} latents", caption=f"{name}")

    report.section("Files")
    report.bullets([
        "`metrics.json`: model → the full metrics (per animal, per label; `neurovamp evaluate` schema)",
        "`comparison.csv`: the comparison table above",
        "`runs/<model>/`: run folder of each model (`neurovamp fit` layout) with its `metrics.json` and `figures/`",
        "`runs/seed<k>/<model>/`: the same for the other seeds (metrics only, no figures)",
        "`loco/<model>/`: the leave-one-condition-out fit's `scores.json`",
    ])
    return report.write(out_dir / REPORT_FILE, overwrite=True)


def _test_trials(metrics_by_model: Mapping[str, Mapping[str, Any]]) -> str:
    """``"7-9"``: the range of test trials per animal in the metrics (empty when unknown)."""
    counts = {
        int(entry["trials"]["test"])
        for metrics in metrics_by_model.values()
        for entry in (metrics.get("animals") or {}).values()
        if isinstance(entry.get("trials"), Mapping) and entry["trials"].get("test") is not None
    }
    if not counts:
        return ""
    return str(min(counts)) if len(counts) == 1 else f"{min(counts)}-{max(counts)}"


def _nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _latent_figure(run_dir: Path) -> Path | None:
    """The latent-space figure ``write_figures`` wrote for a run (None when absent)."""
    from neurovamp.analysis.figures import FIGURE_NAMES

    name = "latents" if "latents" in FIGURE_NAMES else FIGURE_NAMES[0]
    found = sorted((run_dir / FIGURES_DIR).glob(f"{name}.*"))
    return found[0] if found else None


# --------------------------------------------------------------------------- main entry
def run_demo(
    out_dir: str | os.PathLike = "neurovamp-demo",
    *,
    models: Sequence[str] | None = None,
    epochs: int | None = None,
    seed: int = 0,
    n_seeds: int | None = None,
    quick: bool = False,
    overwrite: bool = False,
    device: str = "auto",
    progress: bool = True,
    data_dir: str | os.PathLike | None = None,
) -> DemoResult:
    """Fit MMVM and the baselines on the embedded data, evaluate them and write a report.

    Parameters
    ----------
    out_dir
        Demo folder (see the module docstring for its layout).
    models
        Models to compare (default: all six; with ``quick``: mmvm and independent).
    epochs
        Maximum epochs per model (default 200, early stopping; with ``quick``: 2).
    seed
        Seed of the split, pairing, training and evaluation: the same seed gives the same
        numbers.
    n_seeds
        Seeds per model (``seed``, ``seed + 1``, ...; default 3, ``quick``: 1).
    quick
        Seconds-long settings for tests (numbers not meaningful).
    overwrite
        Redo everything in an existing demo folder.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    progress
        Show progress bars.
    data_dir
        Cache root of the default dataset (see
        :func:`~neurovamp.pipelines.default_data.default_dataset_path`).

    Returns
    -------
    DemoResult

    Raises
    ------
    OutputExistsError
        ``out_dir`` is not a demo folder, holds a demo with other settings, or a complete
        demo, and ``overwrite`` is false.
    ConfigError
        Invalid models, epochs or seed.
    """
    start = time.perf_counter()
    settings = demo_settings(models=models, epochs=epochs, seed=seed, quick=quick, n_seeds=n_seeds)
    out_dir = Path(out_dir)
    info = _prepare_folder(out_dir, settings, overwrite)
    with _single_thread(device):
        return _run(out_dir, settings, info, start, device=device, progress=progress, data_dir=data_dir)


def _single_thread(device: str) -> contextlib.AbstractContextManager[None]:
    """Train and evaluate on one CPU thread (restored afterwards; no limit on a GPU).

    The demo's networks are small; on a CPU several threads spend more time synchronising
    than computing, and on a busy machine they are several times slower than one.
    """
    from neurovamp.models.training import resolve_device

    return thread_limits(1 if resolve_device(device).type == "cpu" else None, blas=False)


#: Scores summarised over seeds: column of comparison_table or unseen-odor score -> (title, higher is better).
SEED_SCORES: dict[str, tuple[str, bool]] = {
    "unseen_condition_r": ("unseen odor: condition-specific r", True),
    "unseen_bps_generic": ("unseen odor: bits/spike vs the generic prediction", True),
    "unseen_correlation": ("unseen odor: correlation with the true rate", True),
    "loco_r": ("leave-one-condition-out: condition-specific r", True),
    "loco_bps_generic": ("leave-one-condition-out: bits/spike vs the generic prediction", True),
    "bits_per_spike": ("held-out trials imputed from the other animals: bits/spike", True),
    "shared_decoding_odor": ("shared odor decoding", True),
    "alignment_r2": ("alignment R²", True),
}


def seed_scores(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The scores of one model and seed that the demo summarises over seeds (:data:`SEED_SCORES`).

    Parameters
    ----------
    metrics
        A model's metrics (a demo run's ``metrics.json``).

    Returns
    -------
    dict
        Score name → value (NaN when the metrics lack it).
    """
    from neurovamp.analysis.report import comparison_table

    row = comparison_table({"m": metrics}).iloc[0]
    unseen = ((metrics.get("ground_truth") or {}).get("by_odor") or {}).get(MISSING_ODOR) or {}
    loco = ((metrics.get("leave_condition_out") or {}).get("fits") or [{}])[0]
    out = {
        "unseen_condition_r": _nan(unseen.get("condition_r")),
        "unseen_bps_generic": _nan(unseen.get("bps_generic")),
        "unseen_correlation": _nan(unseen.get("correlation")),
        "loco_r": _nan(loco.get("r")),
        "loco_bps_generic": _nan(loco.get("bps_generic")),
    }
    for column in ("bits_per_spike", "shared_decoding_odor", "alignment_r2"):
        out[column] = float(row[column]) if column in row.index else float("nan")
    return out


def _other_seeds(out_dir: Path, settings: DemoSettings, metrics_by_model: dict[str, dict[str, Any]],
                 paths: Sequence[Path], ground_truth: Any, *, device: str, progress: bool, fitted: list[str],
                 reused: list[str]) -> None:
    """Fit every model with the seeds after ``settings.seed`` (``runs/seed<k>/<model>``); add ``over_seeds``.

    Each model's metrics gain ``over_seeds``: ``{"seeds": [...], "values": {score: [one
    per seed]}, "mean": {...}, "sd": {...}}`` for the scores of :data:`SEED_SCORES`.
    """
    from tqdm.auto import tqdm

    from neurovamp.pipelines.fit import build_paired, read_run_info

    seeds = [settings.seed + k for k in range(settings.n_seeds)]
    per_seed = {name: [metrics_by_model[name]] for name in settings.models}
    jobs = [(seed, name) for seed in seeds[1:] for name in settings.models]
    bar = tqdm(jobs, desc="demo, other seeds", unit="model", disable=not progress or not jobs)
    paired_by_seed: dict[int, Any] = {}
    for seed, name in bar:
        bar.set_postfix_str(f"{name} seed {seed}")
        s_k = dataclasses.replace(settings, seed=seed)
        run_dir = out_dir / RUNS_DIR / f"seed{seed}" / name
        if _run_complete(run_dir) and _read_dict(run_dir / METRICS_FILE) is not None:
            metrics = _read_dict(run_dir / METRICS_FILE) or {}
            reused.append(f"{name}/seed{seed}")
        else:
            fit_seconds = None if _run_complete(run_dir) else _fit_model(paths, run_dir, name, s_k, device, progress)
            if seed not in paired_by_seed:
                paired_by_seed[seed] = build_paired(read_run_info(run_dir))
            metrics, _ = _evaluate_model(run_dir, paired_by_seed[seed], s_k, device, fit_seconds, ground_truth,
                                         figures=False)
            fitted.append(f"{name}/seed{seed}")
        per_seed[name].append(metrics)
    bar.close()
    from neurovamp.analysis.report import seed_summary

    for name, runs in per_seed.items():
        values = [seed_scores(m) for m in runs]
        table = {k: [v[k] for v in values] for k in SEED_SCORES}
        stats = seed_summary(table)
        metrics_by_model[name]["over_seeds"] = {
            "seeds": seeds,
            "values": table,
            "mean": {k: float(stats.at[k, "mean"]) for k in SEED_SCORES},
            "sd": {k: float(stats.at[k, "sd"]) for k in SEED_SCORES},
        }


def _leave_condition_out(out_dir: Path, settings: DemoSettings, metrics_by_model: dict[str, dict[str, Any]], *,
                         device: str, progress: bool) -> None:
    """One leave-one-condition-out fit per model (seed ``settings.seed``), kept in ``loco/<model>``.

    Each model's metrics gain ``leave_condition_out`` (``{"fits": [row], "summary": ...}``
    as :func:`neurovamp.analysis.loco.leave_condition_out` writes it); the scores of the
    first fit are added to ``over_seeds`` (one value: the first seed).
    """
    import functools

    from tqdm.auto import tqdm

    from neurovamp.analysis.loco import fit_and_score, summarise
    from neurovamp.pipelines.fit import _load_tree, _pair, read_run_info

    animal, condition = settings.loco
    tree = None
    bar = tqdm(settings.models, desc="demo, leave-one-condition-out", unit="fit", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        info = read_run_info(out_dir / RUNS_DIR / name)
        if tree is None:
            tree = _load_tree(info["data"])
        training = {k: v for k, v in info["training"].items() if k not in ("seed", "device")}
        row = fit_and_score(tree, animal, condition, by=settings.pair_by,
                            pair=functools.partial(_pair, pairing=info["pairing"]), model_config=info["model"],
                            training=training, seed=settings.seed, out_dir=out_dir / "loco" / name)
        metrics = metrics_by_model[name]
        metrics["leave_condition_out"] = {"fits": [row], "summary": summarise([row])}
        over = metrics.get("over_seeds")
        if over:
            for key, value in (("loco_r", row.get("r")), ("loco_bps_generic", row.get("bps_generic"))):
                over["values"][key] = [_nan(value)] + [float("nan")] * (len(over["seeds"]) - 1)
                over["mean"][key] = _nan(value)
                over["sd"][key] = float("nan")
    bar.close()


def _bands_vs_truth(out_dir: Path, settings: DemoSettings, metrics_by_model: dict[str, dict[str, Any]],
                    truth_by_model: dict[str, dict[str, Any]], ground_truth: Any, paired: Any, *, device: str) -> None:
    """Each model's band of the unseen odor, its model error from the model's leave-one-condition-out fit,
    against the true rates: ``metrics[BAND_KEY]`` (the demo's metrics.json) and the band's curves for the figure.

    ``paired`` is the first seed's paired data the models were evaluated on (None: built here
    from the first run, when every model was reused)."""
    from neurovamp.analysis.truth import band_vs_truth
    from neurovamp.models.estimator import MultiAnimalModel
    from neurovamp.pipelines.fit import MODEL_DIR, build_paired, read_run_info

    for name, metrics in metrics_by_model.items():
        loco = metrics.get("leave_condition_out")
        if not loco or "ground_truth" not in metrics:
            continue
        run_dir = out_dir / RUNS_DIR / name
        if paired is None:
            paired = build_paired(read_run_info(run_dir))
        model = MultiAnimalModel.load(run_dir / MODEL_DIR, device=device)
        band = band_vs_truth(model, paired, ground_truth, target=MISSING_RAT, odor=MISSING_ODOR, model_error=loco,
                             n_samples=BAND_DRAWS, level=BAND_LEVEL, seed=settings.seed)
        metrics[BAND_KEY] = {k: v for k, v in band.items() if not k.startswith("_")}
        curves = (truth_by_model.get(name) or {}).get("_curves")
        if curves is not None and np.array_equal(curves["unit"], band["_curves"]["unit"]):
            curves.update(band_lo=band["_curves"]["lo"], band_hi=band["_curves"]["hi"])


def _run(out_dir: Path, settings: DemoSettings, info: dict[str, Any], start: float, *, device: str, progress: bool,
         data_dir: str | os.PathLike | None) -> DemoResult:
    from tqdm.auto import tqdm

    from neurovamp.analysis.report import comparison_table
    from neurovamp.pipelines.default_data import default_dataset_path, default_nwb_paths
    from neurovamp.pipelines.fit import build_paired, read_run_info
    from neurovamp.simulate import load_ground_truth

    paths = default_nwb_paths(data_dir)
    ground_truth = load_ground_truth(default_dataset_path(data_dir))

    metrics_by_model: dict[str, dict[str, Any]] = {}
    truth_by_model: dict[str, dict[str, Any]] = {}
    fitted, reused = [], []
    paired = None
    figures: dict[str, Path | None] = {}
    bar = tqdm(settings.models, desc="demo", unit="model", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        run_dir = out_dir / RUNS_DIR / name
        if _model_complete(run_dir):
            metrics = _read_dict(run_dir / METRICS_FILE) or {}
            reused.append(name)
        else:
            fit_seconds = None
            if not _run_complete(run_dir):
                fit_seconds = _fit_model(paths, run_dir, name, settings, device, progress)
            if paired is None:
                paired = build_paired(read_run_info(run_dir))
            metrics, truth = _evaluate_model(run_dir, paired, settings, device, fit_seconds, ground_truth)
            truth_by_model[name] = truth
            fitted.append(name)
        metrics_by_model[name] = metrics
        figures[f"latents/{name}"] = _latent_figure(run_dir)
    bar.close()

    if any(m not in truth_by_model for m in ("mmvm", "independent") if m in settings.models):
        # curves of reused models for the imputation figure
        from neurovamp.analysis.truth import imputation_vs_truth
        from neurovamp.models.estimator import MultiAnimalModel
        from neurovamp.pipelines.fit import MODEL_DIR

        for name in ("mmvm", "independent"):
            if name in settings.models and name not in truth_by_model:
                run_dir = out_dir / RUNS_DIR / name
                if paired is None:
                    paired = build_paired(read_run_info(run_dir))
                model = MultiAnimalModel.load(run_dir / MODEL_DIR, device=device)
                truth_by_model[name] = imputation_vs_truth(model, paired, ground_truth, settings.conditions,
                                                           target=MISSING_RAT, missing_odor=MISSING_ODOR)

    _other_seeds(out_dir, settings, metrics_by_model, paths, ground_truth, device=device, progress=progress,
                 fitted=fitted, reused=reused)
    if settings.loco is not None:
        _leave_condition_out(out_dir, settings, metrics_by_model, device=device, progress=progress)
        _bands_vs_truth(out_dir, settings, metrics_by_model, truth_by_model, ground_truth, paired, device=device)

    table = comparison_table(metrics_by_model)
    fig_dir = out_dir / FIGURES_DIR
    figures["comparison"] = _comparison_figure(metrics_by_model, fig_dir / "comparison.png", settings.decode_labels)
    figures["alignment"] = _alignment_figure(metrics_by_model, fig_dir / "alignment_matrices.png")
    psth = out_dir / RUNS_DIR / "mmvm" / FIGURES_DIR / f"psth_{MISSING_RAT}.png"
    figures["psth"] = psth if psth.is_file() else None
    figures["imputation"] = _imputation_figure(
        {m: truth_by_model[m] for m in ("mmvm", "independent") if m in truth_by_model},
        fig_dir / f"imputation_{MISSING_RAT}_odor_{MISSING_ODOR}.png",
    )
    write_json(out_dir / METRICS_FILE, metrics_by_model, overwrite=True)
    with atomic_output(out_dir / COMPARISON_FILE, overwrite=True) as tmp:
        table.to_csv(tmp, float_format="%.6g")
    seconds = time.perf_counter() - start
    report = _write_report(out_dir, settings, metrics_by_model, table, figures, seconds)
    demo_folder(out_dir).finish(info, seconds=round(seconds, 1), fitted=fitted, reused=reused)
    return DemoResult(out_dir=out_dir, report=report, metrics=metrics_by_model, table=table, fitted=fitted,
                      reused=reused, seconds=seconds)
