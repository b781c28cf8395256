"""The paper's hippocampal experiment, end to end: public five-rat release → report.

:func:`run_paper` reproduces the hippocampal analysis of Sutter et al. (NeurIPS 2024,
"Unity by Diversity", arXiv 2403.05300) on the public release (Dryad doi:10.7280/D14X30),
with held-out evaluation the original code lacked.

Pipeline
--------
1. **Convert** the release to one NWB file per rat in ``RUN/nwb/`` (reused when present;
   the release has silent units, read with ``allow_silent_units=True``).
2. **Modalities**: bins of 10 ms around odor onset; each rat's 25-bin window starting at
   bin 225 (Barat, Buchanan, SuperChris) or 250 (Mitt, Stella) of the release (bin 200
   starts at odor onset), cut with :func:`~neurovamp.data.pairing.select_window`; sliding
   10-bin sub-windows with stride 1 (16 samples per trial, flattened units × 10).
3. **Pairing and split**: odors A-D; trials split into train/val/test per rat, stratified
   by odor (a trial is in exactly one split, so nothing leaks); within each split, trials
   of the same odor are paired across rats and truncated to the smallest count
   (:func:`~neurovamp.data.pairing.pair_trials`, ``strategy="truncate"``). Seed ``s``
   draws the split and pairs and initialises the model, so seeds vary both.
4. **Fits**: every model (MMVM and the baselines) with the ``paper`` preset
   (:meth:`~neurovamp.models.config.ModelConfig.paper`: latent 2, Gaussian likelihood on
   z-scored counts, the paper's MLPs; Adam, lr 1e-3, batch 128) and with neurovamp's
   defaults (``neurovamp`` preset), for every seed; early stopping on the validation
   split; the input z-scoring uses training trials only.
5. **Evaluation** (:func:`neurovamp.analysis.evaluate.evaluate_model`) on held-out test
   trials: odor decoding per rat (own classifier: trained on the rat's training-trial
   latents, scored on its test trials; shared classifier: trained on the *other* rats'
   training-trial latents, scored on this rat's test trials), a raw-count reference,
   cross-animal generation accuracy (the paper's "coherence"), bits/spike, PSTH R² and
   cross-rat alignment. The
   *training-trial* scores are computed too (own: 5-fold CV over the training trials'
   latents, grouped by trial; shared: leave-one-rat-out on the training trials), because
   the original code validated on its training data.
6. **Outputs**: ``RUN/metrics.json`` (every number, per preset, model and seed, plus the
   mean/sd over seeds), ``RUN/figures/`` (2-D latents of each rat coloured by odor, per
   preset and model; decoding bar charts) and ``RUN/report.md``, generated from
   ``metrics.json`` alone so the two agree.

Run folder and resuming
-----------------------
::

    RUN/paper.json                          settings of the run (status running/complete)
    RUN/nwb/<Rat>.nwb                       the converted release
    RUN/fits/<preset>/<model>/seed<k>/      fit.json (metrics of one fit), latents.nc,
                                            model/ (only with save_models)
    RUN/metrics.json  RUN/report.md  RUN/figures/

Every file is written atomically. Running again on an unfinished run with the same
settings skips the fits whose ``fit.json`` exists; a finished run (``report.md`` present)
or one with other settings is only replaced with ``overwrite=True``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import platform
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from neurovamp._fields import check_fields
from neurovamp._files import atomic_output
from neurovamp._jsonfile import json_safe, read_json, write_json
from neurovamp._outputs import MANIFEST_NAME, record_outputs
from neurovamp._threads import thread_limits
from neurovamp.errors import ConfigError, DataError, OutputExistsError
from neurovamp.pipelines.folder import RunFolder, model_defaults

__all__ = [
    "PAPER_RATS",
    "PAPER_WINDOW_STARTS",
    "PAPER_WINDOW_LENGTH",
    "PAPER_SUBWINDOW",
    "PAPER_ODORS",
    "PRESETS",
    "paper_folder",
    "DEFAULT_EPOCHS",
    "DEFAULT_PATIENCE",
    "DEFAULT_SEEDS",
    "METRIC_KEYS",
    "PaperConfig",
    "check_release",
    "load_paper_data",
    "pair_paper_trials",
    "run_paper",
    "summarise_fits",
    "write_report",
    "read_paper_metrics",
]

#: Rat folders of the public release, in the order the report lists them.
PAPER_RATS: tuple[str, ...] = ("Barat", "Buchanan", "Mitt", "Stella", "SuperChris")
#: First bin (of the release's 400) of each rat's 25-bin window, as the paper chose them.
PAPER_WINDOW_STARTS: dict[str, int] = {"Barat": 225, "Buchanan": 225, "Mitt": 250, "Stella": 250, "SuperChris": 225}
PAPER_WINDOW_LENGTH = 25
PAPER_SUBWINDOW = 10
PAPER_ODORS: tuple[str, ...] = ("A", "B", "C", "D")
#: ``"paper"``: the paper's settings; ``"neurovamp"``: neurovamp's defaults.
PRESETS: tuple[str, ...] = ("paper", "neurovamp")
#: Default maximum epochs per fit (early stopping on the validation split may end sooner);
#: chosen so that the full stand-in run (benchmarks/paper_standin.py) takes minutes on CPU.
DEFAULT_EPOCHS = 100  # room for the neurovamp preset's 50-epoch KL warm-up plus early stopping
DEFAULT_PATIENCE = 15
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)

#: Per-rat numbers of one fit kept in metrics.json (and their report titles).
METRIC_KEYS: dict[str, str] = {
    "shared_heldout": "shared classifier, held-out",
    "shared_train": "shared classifier, train",
    "own_heldout": "own classifier, held-out",
    "own_train": "own classifier, train",
    "own_cv_all": "own classifier, CV on all trials",
    "raw_heldout": "raw counts, held-out",
    "cross_generation_accuracy": "cross-animal generation accuracy",
    "bits_per_spike": "bits/spike",
    "psth_r2": "PSTH R²",
}
#: Fit-level numbers of one fit.
FIT_KEYS: tuple[str, ...] = ("fit_seconds", "epochs_run", "alignment_r2")

_FORMAT = "neurovamp-paper-metrics"
_VERSION = 1
_RUN_FILE = "paper.json"
_RUN_FORMAT = "neurovamp-paper-run"
_FIT_FILE = "fit.json"
_LATENTS_FILE = "latents.nc"
_LABELS = ["odor", "position", "in_sequence", "correct"]
_EVENT = "odor_onset"
_READ_WINDOW = (-2.0, 2.0)
_BIN_SIZE = 0.01
_N_RELEASE_BINS = 400
_BATCH_SIZE = 128
_LR = 1e-3
_OUR_OUTPUTS = (_RUN_FILE, "nwb", "fits", "figures", "metrics.json", "report.md")
_ODOR_CODES = {"A": 1, "B": 2, "C": 3, "D": 4, "E": 5}


# --------------------------------------------------------------------------- settings
def _int(value: Any, name: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class PaperConfig:
    """Settings of a :func:`run_paper` run (validated; JSON round trip).

    Parameters
    ----------
    rats
        Rat folders to use (at least two), in report order.
    odors
        Odors to keep and pair on (letters ``A``-``E``).
    window_starts
        First release bin (0-399; bin 200 starts at odor onset) of each rat's window;
        defaults to the paper's choice for the five release rats, and must cover every rat.
    window_length
        Window length in bins.
    subwindow
        Sub-window (sample) length in bins.
    stride
        Bins between sub-window starts.
    split
        Fractions of trials in train, val and test (test must be > 0).
    latent_dim, likelihood
        Latent dimension and likelihood of the ``paper`` preset (the paper: 2, Gaussian).
    models
        Models to fit (see :data:`neurovamp.models.config.MODELS`).
    presets
        ``("paper", "neurovamp")`` or a subset.
    seeds
        Seeds; each one draws the split and pairs and initialises every model.
    epochs, patience
        Maximum epochs and early-stopping patience (``None``: no early stopping).
    correct_only, in_sequence_only
        Keep only correct / in-sequence trials (the default keeps every trial).
    folds
        Folds of the cross-validated decoding scores.
    device
        Torch device (not part of the run's identity: a run may resume elsewhere).
    threads
        CPU threads for torch and the BLAS libraries during the run (``None``: leave the
        defaults). On a machine shared with other jobs one thread per process is often
        much faster than several (threads that wait for each other spin). With
        ``jobs > 1`` it is the thread count of each worker (default: CPUs / jobs).
    jobs
        Fits run in parallel, each in its own process (results do not depend on it).
    save_models
        Keep every fitted model in its fit folder (the paper preset's models are large).
    """

    rats: tuple[str, ...] = PAPER_RATS
    odors: tuple[str, ...] = PAPER_ODORS
    window_starts: Mapping[str, int] = dataclasses.field(default_factory=lambda: dict(PAPER_WINDOW_STARTS))
    window_length: int = PAPER_WINDOW_LENGTH
    subwindow: int = PAPER_SUBWINDOW
    stride: int = 1
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    latent_dim: int = 2
    likelihood: str = "gaussian"
    models: tuple[str, ...] = ("mmvm", "independent", "poe", "moe", "mopoe", "avg")
    presets: tuple[str, ...] = PRESETS
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    epochs: int = DEFAULT_EPOCHS
    patience: int | None = DEFAULT_PATIENCE
    correct_only: bool = False
    in_sequence_only: bool = False
    folds: int = 5
    device: str = "auto"
    threads: int | None = None
    jobs: int = 1
    save_models: bool = False

    def __post_init__(self) -> None:
        from neurovamp.models.config import LIKELIHOODS, MODELS

        def as_tuple(value: Any, name: str) -> tuple:
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise ConfigError(f"{name} must be a list, got {value!r}")
            if len(value) == 0:
                raise ConfigError(f"{name} must not be empty")
            if len(set(value)) != len(value):
                raise ConfigError(f"{name} contains duplicates: {list(value)}")
            return tuple(value)

        rats = tuple(str(r) for r in as_tuple(self.rats, "rats"))
        if len(rats) < 2:
            raise ConfigError(f"rats: the paper's analysis needs at least two rats, got {list(rats)}")
        odors = tuple(str(o).upper() for o in as_tuple(self.odors, "odors"))
        bad = [o for o in odors if o not in _ODOR_CODES]
        if bad:
            raise ConfigError(f"odors must be letters A-E, got {bad}")
        if len(odors) < 2:
            raise ConfigError(f"odors: decoding needs at least two odors, got {list(odors)}")
        length = _int(self.window_length, "window_length", 1)
        subwindow = _int(self.subwindow, "subwindow", 1)
        if subwindow > length:
            raise ConfigError(f"subwindow ({subwindow} bins) must not be longer than window_length ({length} bins)")
        stride = _int(self.stride, "stride", 1)
        if not isinstance(self.window_starts, Mapping):
            raise ConfigError(f"window_starts must map rat -> bin, got {self.window_starts!r}")
        starts = {str(k): v for k, v in self.window_starts.items()}
        missing = [r for r in rats if r not in starts]
        if missing:
            raise ConfigError(f"no window start for rat(s) {missing}; give one with --window-start RAT=BIN")
        starts = {r: _int(starts[r], f"window start of {r}") for r in rats}
        for rat, start in starts.items():
            if start + length > _N_RELEASE_BINS:
                raise ConfigError(
                    f"window of rat {rat} (bins {start}-{start + length - 1}) runs past the release's "
                    f"{_N_RELEASE_BINS} bins"
                )
        try:
            split = tuple(float(f) for f in self.split)
        except (TypeError, ValueError):
            raise ConfigError(f"split must be three fractions (train, val, test), got {self.split!r}") from None
        if (
            len(split) != 3
            or not all(math.isfinite(f) and f >= 0 for f in split)
            or abs(sum(split) - 1) > 1e-6
            or split[0] <= 0
            or split[2] <= 0
        ):
            raise ConfigError(
                f"split must be three fractions (train, val, test) >= 0 summing to 1 with train and test > 0, got {self.split!r}"
            )
        latent = _int(self.latent_dim, "latent_dim", 1)
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}")
        models = tuple(as_tuple(self.models, "models"))
        bad = [m for m in models if m not in MODELS]
        if bad:
            raise ConfigError(f"models must be among {', '.join(MODELS)}, got {bad}")
        presets = tuple(as_tuple(self.presets, "presets"))
        bad = [p for p in presets if p not in PRESETS]
        if bad:
            raise ConfigError(f"presets must be among {', '.join(PRESETS)}, got {bad}")
        seeds = tuple(_int(s, "seed") for s in as_tuple(self.seeds, "seeds"))
        epochs = _int(self.epochs, "epochs", 1)
        patience = None if self.patience is None else _int(self.patience, "patience", 1)
        folds = _int(self.folds, "folds", 2)
        threads = None if self.threads is None else _int(self.threads, "threads", 1)
        jobs = _int(self.jobs, "jobs", 1)
        for name in ("correct_only", "in_sequence_only", "save_models"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name, value in dict(
            rats=rats, odors=odors, window_starts=starts, window_length=length, subwindow=subwindow,
            stride=stride, split=split, latent_dim=latent, models=models, presets=presets, seeds=seeds,
            epochs=epochs, patience=patience, folds=folds, device=str(self.device), threads=threads,
            jobs=jobs,
        ).items():
            object.__setattr__(self, name, value)

    @property
    def filters(self) -> dict[str, bool]:
        """Trial filters for :func:`~neurovamp.data.pairing.pair_trials`."""
        out = {}
        if self.correct_only:
            out["correct"] = True
        if self.in_sequence_only:
            out["in_sequence"] = True
        return out

    @property
    def n_fits(self) -> int:
        """Number of fits: presets × models × seeds."""
        return len(self.presets) * len(self.models) * len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary of every field."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("rats", "odors", "split", "models", "presets", "seeds"):
            out[key] = list(out[key])
        out["window_starts"] = dict(out["window_starts"])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PaperConfig:
        """Build a config from :meth:`to_dict` output.

        Raises
        ------
        ConfigError
            For unknown fields or invalid values.
        """
        check_fields(cls, data, "PaperConfig")
        return cls(**dict(data))

    def identity(self) -> dict[str, Any]:
        """The fields that define a run's results (not ``device``, ``threads``, ``jobs``, ``save_models``)."""
        out = self.to_dict()
        for key in ("device", "threads", "jobs", "save_models"):
            out.pop(key)
        return out


# --------------------------------------------------------------------------- data
def _info_file(release_dir: Path, rat: str) -> Path:
    return release_dir / rat / f"{rat.lower()}_trial_info.npy"


def _min_trials(config: PaperConfig) -> int:
    return sum(1 for f in config.split if f > 0)


def check_release(release_dir: str | os.PathLike, config: PaperConfig) -> None:
    """Fail fast on a release that cannot give the paper's modalities.

    Checks that every rat folder exists and that every rat has enough trials of every
    requested odor (after the trial filters) to put one in each split. The trial-info
    file is read directly; malformed files are left to
    :func:`~neurovamp.io.release.convert_release`, which names them.

    Parameters
    ----------
    release_dir
        Folder with one sub-folder per rat.
    config
        The run settings.

    Raises
    ------
    DataError
        Naming the missing folder or the trial-info file that lacks an odor.
    """
    from neurovamp.io.release import find_release_rats

    release_dir = Path(release_dir)
    found = find_release_rats(release_dir)
    for rat in config.rats:
        if not (release_dir / rat).is_dir():
            raise DataError(
                f"{release_dir / rat}: rat folder not found; folders with spike data: {', '.join(found) or 'none'}"
            )
    need = _min_trials(config)
    for rat in config.rats:
        path = _info_file(release_dir, rat)
        try:
            info = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            continue  # missing or unreadable: convert_release reports it
        if info.ndim != 2 or info.shape[1] < 4 or not np.issubdtype(info.dtype, np.number):
            continue
        keep = np.ones(info.shape[0], dtype=bool)
        if config.correct_only:
            keep &= info[:, 0] == 1
        if config.in_sequence_only:
            keep &= info[:, 1] == 1
        for odor in config.odors:
            n = int(np.sum(keep & (info[:, 3] == _ODOR_CODES[odor])))
            if n < need:
                raise DataError(_odor_message(path, rat, odor, n, need, config))


def _odor_message(path: Path, rat: str, odor: str, n: int, need: int, config: PaperConfig) -> str:
    which = " ".join(w for w, on in (("correct", config.correct_only), ("in-sequence", config.in_sequence_only)) if on)
    trials = f"{which} trials" if which else "trials"
    return (
        f"{path}: rat {rat} has {n} {trials} of odor {odor} (code {_ODOR_CODES[odor]}), but the paper's pairing "
        f"needs at least {need} (one per split) for every requested odor; choose --odors without {odor} or drop the rat"
    )


def _convert(release_dir: Path, run_dir: Path, config: PaperConfig, progress: bool) -> dict[str, Path]:
    """NWB file of every rat in ``RUN/nwb``, converting the ones that are missing."""
    from neurovamp.io.release import convert_release

    nwb_dir = run_dir / "nwb"
    paths = {rat: nwb_dir / f"{rat}.nwb" for rat in config.rats}
    missing = [rat for rat, path in paths.items() if not path.is_file()]
    if missing:
        convert_release(release_dir, nwb_dir, rats=missing, progress=progress)
    return paths


def load_paper_data(
    nwb_paths: Mapping[str, str | os.PathLike], config: PaperConfig
) -> xr.DataTree:
    """Bin the converted release and cut each rat's paper window.

    Parameters
    ----------
    nwb_paths
        Rat → NWB file written by :func:`~neurovamp.io.release.convert_release`.
    config
        The run settings (rats, odors, window starts and length, filters).

    Returns
    -------
    xarray.DataTree
        One node per rat (in ``config.rats`` order) with ``window_length`` bins each
        (``time`` from 0, ``time_from_event`` relative to odor onset).

    Raises
    ------
    DataError
        A file naming another rat, or a rat with too few trials of a requested odor
        (naming the NWB file).
    """
    from neurovamp.data.dataset import animals, get_modality
    from neurovamp.io.recordings import load_recordings
    from neurovamp.data.pairing import select_window

    paths = [Path(nwb_paths[rat]) for rat in config.rats]
    tree = load_recordings(
        paths, event=_EVENT, window=_READ_WINDOW, bin_size=_BIN_SIZE, labels=_LABELS, allow_silent_units=True
    )
    names = animals(tree)
    for rat, path, name in zip(config.rats, paths, names):
        if name != rat:
            raise DataError(f"{path}: holds rat {name!r} (subject_id) but is the file of rat {rat!r}")
    need = _min_trials(config)
    for rat, path in zip(config.rats, paths):
        da = get_modality(tree, rat)
        keep = np.ones(da.sizes["trial"], dtype=bool)
        for label, value in config.filters.items():
            keep &= np.asarray(da[label].values) == value
        odor = np.asarray(da["odor"].values)
        for o in config.odors:
            n = int(np.sum(keep & (odor == o)))
            if n < need:
                raise DataError(_odor_message(path, rat, o, n, need, config))
        n_bins = da.sizes["time"]
        if n_bins != _N_RELEASE_BINS:
            raise DataError(f"{path}: expected {_N_RELEASE_BINS} bins of the release around odor onset, got {n_bins}")
    return select_window(tree, {rat: config.window_starts[rat] for rat in config.rats}, config.window_length)


def pair_paper_trials(tree: xr.DataTree, config: PaperConfig, seed: int) -> Any:
    """Split and pair the windowed trials as the paper did (truncate per odor).

    Parameters
    ----------
    tree
        Output of :func:`load_paper_data`.
    config
        The run settings.
    seed
        Seed of the split and the pairs.

    Returns
    -------
    neurovamp.data.pairing.PairedData
    """
    from neurovamp.data.pairing import pair_trials

    return pair_trials(
        tree,
        by="odor",
        strategy="truncate",
        filters=config.filters or None,
        conditions=list(config.odors),
        split=config.split,
        seed=seed,
        window=config.subwindow,
        stride=config.stride,
    )


# --------------------------------------------------------------------------- one fit
def _make_model(preset: str, model: str, seed: int, config: PaperConfig) -> Any:
    from neurovamp.models.estimator import MultiAnimalModel

    if preset == "paper":
        return MultiAnimalModel.paper_preset(
            model, seed=seed, device=config.device, latent_dim=config.latent_dim, likelihood=config.likelihood
        )
    return MultiAnimalModel(model, seed=seed, device=config.device)


def _flat(z: xr.DataArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples ``(trial*time, latent)``, odor per sample and trial id per sample."""
    z = z.transpose("trial", "time", "latent")
    n_time = z.sizes["time"]
    x = np.asarray(z.values, dtype=float).reshape(-1, z.sizes["latent"])
    return x, np.repeat(np.asarray(z["odor"].values), n_time), np.repeat(np.asarray(z["trial"].values), n_time)


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    import warnings

    from neurovamp.errors import NeurovampError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args, **kwargs), None
        except NeurovampError as exc:
            return None, str(exc)


def _train_trial_decoding(
    latents: Mapping[str, xr.DataArray], seed: int, folds: int
) -> tuple[dict[str, float | None], dict[str, float | None], list[str]]:
    """Odor decoding on the training trials' latents (what the original code scored).

    Own: k-fold CV over the rat's training trials (grouped by trial). Shared: a classifier
    trained on the other rats' training trials, scored on this rat's training trials.
    """
    from neurovamp.analysis.decode import decode_labels, decode_shared

    notes: list[str] = []
    train = {a: z.isel(trial=np.flatnonzero(np.asarray(z["split"].values) == "train")) for a, z in latents.items()}
    flat = {a: _flat(z) for a, z in train.items()}
    own: dict[str, float | None] = {}
    for animal, (x, y, g) in flat.items():
        result, error = _quiet(decode_labels, x, y, folds=folds, seed=seed, groups=g, model="logistic")
        own[animal] = result.score if result is not None else None
        if error:
            notes.append(f"{animal}: own classifier on training trials: {error}")
    shared_result, error = _quiet(
        decode_shared,
        {a: v[0] for a, v in flat.items()},
        {a: v[1] for a, v in flat.items()},
        folds=folds,
        seed=seed,
        model="logistic",
        groups_by_animal={a: v[2] for a, v in flat.items()},
        within=False,
    )
    if error:
        notes.append(f"shared classifier on training trials: {error}")
    shared = {a: (shared_result.leave_one_out[a] if shared_result is not None else None) for a in latents}
    return own, shared, notes


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fit_record(
    evaluation: Mapping[str, Any],
    own_train: Mapping[str, float | None],
    shared_train: Mapping[str, float | None],
) -> dict[str, dict[str, float | None]]:
    """Per-rat numbers of one fit (the :data:`METRIC_KEYS`)."""
    rats: dict[str, dict[str, float | None]] = {}
    for animal, entry in evaluation["animals"].items():
        dec = entry.get("decoding", {}).get("odor", {})
        shared = entry.get("shared_decoding", {}).get("odor", {})
        imp = entry.get("imputation", {})
        rats[animal] = {
            "shared_heldout": _number(shared.get("balanced_accuracy")),
            "shared_train": _number(shared_train.get(animal)),
            "own_heldout": _number(dec.get("balanced_accuracy")),
            "own_train": _number(own_train.get(animal)),
            "own_cv_all": _number(dec.get("cv_balanced_accuracy")),
            "raw_heldout": _number(dec.get("raw_balanced_accuracy")),
            "cross_generation_accuracy": _number(imp.get("cross_generation_accuracy")),
            "bits_per_spike": _number(imp.get("bits_per_spike")),
            "bits_per_spike_weighted": _number(imp.get("bits_per_spike_weighted")),
            "psth_r2": _number(imp.get("psth_r2")),
            "chance": _number(dec.get("chance")),
        }
    return rats


def _mean(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _run_fit(
    paired: Any, preset: str, model_name: str, seed: int, config: PaperConfig, folder: Path
) -> dict[str, Any]:
    """Fit, evaluate and write one fit folder; return its record."""
    from neurovamp.analysis.evaluate import evaluate_model, model_latents

    model = _make_model(preset, model_name, seed, config)
    start = time.perf_counter()
    # the paper trained without KL warm-up; neurovamp's preset uses the engine's default warm-up
    warmup = {"kl_warmup": 0} if preset == "paper" else {}
    model.fit(paired, epochs=config.epochs, batch_size=_BATCH_SIZE, lr=_LR, patience=config.patience, progress=False,
              **warmup)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    evaluation = evaluate_model(model, paired, labels=["odor"], seed=seed, folds=config.folds, over_time=False)
    latents = model_latents(model, paired)
    own_train, shared_train, notes = _train_trial_decoding(latents, seed, config.folds)
    rats = _fit_record(evaluation, own_train, shared_train)
    record = {
        "preset": preset,
        "model": model_name,
        "seed": seed,
        "model_config": model.config.to_dict(),
        "fit_seconds": fit_seconds,
        "eval_seconds": time.perf_counter() - start,
        "epochs_run": model.fit_info_.get("epochs_run"),
        "best_epoch": model.fit_info_.get("best_epoch"),
        "stopped_early": model.fit_info_.get("stopped_early"),
        "alignment_r2": _number(evaluation.get("summary", {}).get("alignment_r2")),
        "trials": paired.trial_counts(),
        "pairs": {s: paired.n_pairs(s) for s in ("train", "val", "test")},
        "rats": rats,
        "mean": {key: _mean([rats[a][key] for a in rats]) for key in [*METRIC_KEYS, "chance"]},
        "notes": notes,
        "evaluation": evaluation,
    }
    record = json_safe(record, default=str)
    folder.mkdir(parents=True, exist_ok=True)
    record_outputs(folder, [_LATENTS_FILE, _FIT_FILE])  # recorded first: overwrite removes them, and only them
    tree = xr.DataTree.from_dict({a: z.drop_attrs().to_dataset(name="latents") for a, z in latents.items()})
    with atomic_output(folder / _LATENTS_FILE, overwrite=True) as tmp:
        tree.to_netcdf(tmp, engine="h5netcdf")
    if config.save_models:
        model.save(folder / "model", overwrite=True)
        record_outputs(folder, [p.relative_to(folder) for p in (folder / "model").rglob("*") if p.is_file()])
    write_json(folder / _FIT_FILE, record, overwrite=True, indent=1)  # written last: marks the fit done
    return record


# --------------------------------------------------------------------------- aggregation
def _stats(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return None, None
    sd = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
    return float(np.mean(finite)), sd


def summarise_fits(fits: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and sd over seeds, per preset and model.

    Parameters
    ----------
    fits
        Fit records (the ``fits`` list of ``metrics.json``).

    Returns
    -------
    dict
        ``{preset: {model: {"seeds", "mean", "sd", "per_rat", "fit_seconds"}}}``:
        ``mean``/``sd`` of each metric's rat-average (and of ``fit_seconds``,
        ``epochs_run``, ``alignment_r2``) over seeds (``sd`` is None for one seed);
        ``per_rat[rat][metric]`` = ``{"mean", "sd"}`` over seeds; ``fit_seconds`` lists
        each seed's fit time.
    """
    out: dict[str, dict[str, Any]] = {}
    for fit in fits:
        out.setdefault(fit["preset"], {}).setdefault(fit["model"], []).append(fit)
    summary: dict[str, dict[str, Any]] = {}
    for preset, by_model in out.items():
        summary[preset] = {}
        for model, group in by_model.items():
            group = sorted(group, key=lambda f: f["seed"])
            mean, sd = {}, {}
            for key in [*METRIC_KEYS, "chance"]:
                mean[key], sd[key] = _stats([f["mean"].get(key) for f in group])
            for key in FIT_KEYS:
                mean[key], sd[key] = _stats([f.get(key) for f in group])
            rats = list(group[0]["rats"])
            per_rat = {
                rat: {
                    key: dict(zip(("mean", "sd"), _stats([f["rats"].get(rat, {}).get(key) for f in group])))
                    for key in [*METRIC_KEYS, "chance"]
                }
                for rat in rats
            }
            summary[preset][model] = {
                "seeds": [f["seed"] for f in group],
                "mean": mean,
                "sd": sd,
                "per_rat": per_rat,
                "fit_seconds": {str(f["seed"]): f["fit_seconds"] for f in group},
            }
    return summary


# --------------------------------------------------------------------------- files
def read_paper_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``RUN/metrics.json`` written by :func:`run_paper`.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    dict
        The metrics (see :func:`run_paper`).

    Raises
    ------
    DataError
        If the file is missing, not JSON or not a paper-run metrics file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: metrics file not found")
    data = read_json(path, what="`neurovamp paper` metrics file")
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise DataError(f"{path}: not the metrics of a `neurovamp paper` run (format {_FORMAT!r} expected)")
    for fit in data.get("fits") or []:
        _upgrade_record(fit)
    for by_model in (data.get("summary") or {}).values():
        for stats in by_model.values():
            for entry in (stats.get("mean"), stats.get("sd"), *(stats.get("per_rat") or {}).values()):
                _renamed(entry)
    return data


def _renamed(entry: Any) -> None:
    """Copy the pre-0.2 ``coherence`` of a per-rat dict to its current name (in place)."""
    from neurovamp.analysis.evaluate import upgrade_entry

    upgrade_entry(entry)


def _upgrade_record(record: Any) -> Any:
    """A fit record written by an older neurovamp, with the current metric names (in place)."""
    if isinstance(record, dict):
        for entry in (record.get("mean"), *(record.get("rats") or {}).values()):
            _renamed(entry)
    return record


def _fit_dir(run_dir: Path, preset: str, model: str, seed: int) -> Path:
    return run_dir / "fits" / preset / model / f"seed{seed}"


def paper_folder(run_dir: str | os.PathLike) -> RunFolder:
    """The paper run folder ``run_dir`` with its marker ``paper.json``."""
    return RunFolder(run_dir, marker=_RUN_FILE, format=_RUN_FORMAT, version=_VERSION,
                     what="`neurovamp paper` run file", indent=1)


def _outputs(config: PaperConfig) -> tuple[list[str], list[str]]:
    """The files a paper run with ``config`` writes at the top of its folder, and its fit folders.

    Each fit folder (``fits/<preset>/<model>/seed<k>``) records its own files.
    """
    paths = _figure_paths({"config": config.to_dict()})
    figures = [p.as_posix() for p in (*paths["latents"].values(), *paths["decoding"].values())]
    files = [_RUN_FILE, "metrics.json", "report.md", *(f"nwb/{rat}.nwb" for rat in config.rats), *figures]
    fits = [_fit_dir(Path(), p, m, s).as_posix() for s in config.seeds for p in config.presets for m in config.models]
    return files, fits


def _legacy_outputs(run_dir: Path) -> list[str]:
    """The outputs of a paper run folder written before manifests (from its own paper.json)."""
    info = paper_folder(run_dir).read()
    if info is None or (run_dir / MANIFEST_NAME).is_file():
        return []
    try:
        previous = PaperConfig.from_dict(info.get("config", {}))
    except ConfigError:
        return [_RUN_FILE, "metrics.json", "report.md"]
    files, fits = _outputs(previous)
    return files + [f"{fit}/{name}" for fit in fits for name in (_FIT_FILE, _LATENTS_FILE, "model")]


def _prepare_run_dir(run_dir: Path, release_dir: Path, config: PaperConfig, overwrite: bool) -> bool:
    """Create, resume or (with ``overwrite``) clear the run folder; return True when resuming.

    Every check comes first; overwrite removes only what paper runs recorded there (a
    user's files and sub-folders, also inside ``fits/``, ``nwb/`` and ``figures/``, stay).
    """
    folder = paper_folder(run_dir)
    folder.check_is_folder(message=f"{run_dir}: exists and is not a folder")
    run_file = folder.marker_path
    files, fits = _outputs(config)
    legacy = _legacy_outputs(run_dir)
    resuming = run_dir.is_dir() and not overwrite and any(run_dir.iterdir())
    if resuming:
        if not run_file.is_file():
            raise OutputExistsError(
                f"{run_dir}: folder exists and is not a `neurovamp paper` run; choose another --out or pass --overwrite"
            )
        info = read_json(run_file, what=folder.what)
        if not isinstance(info, dict) or info.get("format") != _RUN_FORMAT:
            raise DataError(f"{run_file}: not a `neurovamp paper` run file")
        try:
            previous = PaperConfig.from_dict(info.get("config", {}))
        except ConfigError as exc:
            raise DataError(f"{run_file}: unreadable settings ({exc})") from None
        old, new = previous.identity(), config.identity()
        folder.refuse_changes(
            [k for k in new if old.get(k) != new[k]],
            "{path}: holds a paper run with other settings ({changed} differ); choose another --out or pass --overwrite",
        )
        if "neurovamp" in config.presets and info.get("model_defaults") != model_defaults():
            raise OutputExistsError(
                f"{run_dir}: neurovamp's default model settings have changed since this run started, so its "
                "fits would mix two models; choose another --out or pass --overwrite"
            )
        if (run_dir / "report.md").exists():
            raise OutputExistsError(
                f"{run_dir}: this paper run is complete (report.md exists); pass --overwrite to run it again"
            )
    else:
        # a run replaces only its own files: a user's file where one of them goes is refused
        folder.check_no_foreign([_RUN_FILE, "metrics.json", "report.md"], legacy=legacy, what="paper --overwrite")
    folder.check_can_write()  # the last check: nothing is written before it
    if resuming:
        folder.record(files, fits, legacy=legacy)
        return True
    if overwrite and run_dir.is_dir():
        folder.clear(legacy=legacy)
    folder.start(_run_info(release_dir, config, "running"), files=files, folders=fits)
    return False


def _run_info(release_dir: Path, config: PaperConfig, status: str) -> dict[str, Any]:
    import neurovamp

    return paper_folder(release_dir).new_info(  # format and version of the marker (the folder is not used)
        neurovamp_version=neurovamp.__version__,
        status=status,
        release=str(release_dir.resolve()),
        config=config.to_dict(),
        model_defaults=model_defaults(),
    )


# --------------------------------------------------------------------------- the run
def run_paper(
    release_dir: str | os.PathLike,
    out: str | os.PathLike,
    config: PaperConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the paper's hippocampal analysis on the public release (see the module docstring).

    Parameters
    ----------
    release_dir
        The release folder (``Barat/``, ``Buchanan/``, ...).
    out
        Run folder. An unfinished run with the same settings is resumed.
    config
        Settings (default: :class:`PaperConfig()`, the paper's choices).
    overwrite
        Replace a finished run, or one with other settings.
    progress
        Show progress bars and one line per fit (stderr).

    Returns
    -------
    dict
        The content of ``RUN/metrics.json``: ``format``, ``config``, ``release``,
        ``data`` (rats, units, window starts, sub-windows, trials and pairs per split of
        each seed), ``n_fits``, ``run_seconds``, ``fits`` (one record per preset, model and
        seed: ``fit_seconds``, ``epochs_run``, ``alignment_r2``, ``rats[rat][metric]`` for
        the :data:`METRIC_KEYS`, their rat-average ``mean`` and the full ``evaluation`` of
        :func:`~neurovamp.analysis.evaluate.evaluate_model`) and ``summary``
        (:func:`summarise_fits`).

    Raises
    ------
    DataError
        Missing rat folder, malformed file, a rat lacking a requested odor (each naming
        the file).
    OutputExistsError
        ``out`` holds other outputs and ``overwrite`` is false.
    """
    config = config if config is not None else PaperConfig()
    if not isinstance(config, PaperConfig):
        raise ConfigError(f"config must be a PaperConfig, got {type(config).__name__}")
    with thread_limits(config.threads):
        return _run_paper(Path(release_dir), Path(out), config, overwrite=overwrite, progress=progress)


def _run_paper(
    release_dir: Path, out: Path, config: PaperConfig, *, overwrite: bool, progress: bool
) -> dict[str, Any]:
    import neurovamp

    run_dir = Path(out)
    started = time.perf_counter()
    check_release(release_dir, config)
    resuming = _prepare_run_dir(run_dir, release_dir, config, overwrite)
    nwb_paths = _convert(release_dir, run_dir, config, progress)
    tree = load_paper_data(nwb_paths, config)

    pairs_by_seed: dict[str, Any] = {}
    for seed in config.seeds:
        paired = pair_paper_trials(tree, config, seed)
        pairs_by_seed[str(seed)] = {
            "trials": paired.trial_counts(),
            "pairs": {s: paired.n_pairs(s) for s in ("train", "val", "test")},
        }
    jobs = [(s, p, m) for s in config.seeds for p in config.presets for m in config.models]
    records: dict[tuple[int, str, str], dict[str, Any]] = {}
    todo = []
    for job in jobs:
        folder = _fit_dir(run_dir, job[1], job[2], job[0])
        if (folder / _FIT_FILE).is_file() and (folder / _LATENTS_FILE).is_file():
            records[job] = _upgrade_record(read_json(folder / _FIT_FILE, what="fit record"))
        else:
            todo.append(job)
    bar = tqdm(total=len(jobs), initial=len(records), desc="paper fits", unit="fit", disable=not progress)
    for job, record in _fit_all(todo, tree, nwb_paths, run_dir, config):
        records[job] = record
        bar.update(1)
        if progress:
            mean = record["mean"]
            tqdm.write(
                f"{job[1]}/{job[2]}/seed{job[0]}: fit {record['fit_seconds']:.0f} s, evaluation "
                f"{record['eval_seconds']:.0f} s; odor decoding held-out: shared {_fmt(mean.get('shared_heldout'))}, "
                f"own {_fmt(mean.get('own_heldout'))}"
            )
    bar.close()
    fits = [records[job] for job in jobs]

    first = pair_paper_trials(tree, config, config.seeds[0])
    metrics = {
        "format": _FORMAT,
        "version": _VERSION,
        "neurovamp_version": neurovamp.__version__,
        "release": str(release_dir.resolve()),
        "config": config.to_dict(),
        "platform": {
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "jobs": config.jobs,
            "torch_threads": _worker_threads(config) if config.jobs > 1 else _torch_threads(),
        },
        "data": {
            "rats": list(config.rats),
            "units": {a: int(n) for a, n in zip(first.animals, first.n_units)},
            "window_starts": dict(config.window_starts),
            "window_length": config.window_length,
            "subwindow": config.subwindow,
            "n_subwindows": int(first.n_windows),
            "odors": list(config.odors),
            "by_seed": pairs_by_seed,
        },
        "n_fits": len(fits),
        "resumed": resuming,
        "run_seconds": time.perf_counter() - started,
        "fits": fits,
        "summary": summarise_fits(fits),
    }
    metrics_path = run_dir / "metrics.json"
    write_json(metrics_path, metrics, overwrite=True, indent=1)
    metrics = read_paper_metrics(metrics_path)
    _write_figures(run_dir, metrics)
    write_report(metrics, run_dir / "report.md", overwrite=True)
    paper_folder(run_dir).finish(_run_info(release_dir, config, "running"))
    return metrics


def _worker_threads(config: PaperConfig) -> int:
    """Threads of each parallel worker: ``config.threads``, or the CPUs shared out."""
    if config.threads is not None:
        return config.threads
    return max(1, (os.cpu_count() or 1) // config.jobs)


def _fit_all(
    todo: Sequence[tuple[int, str, str]],
    tree: xr.DataTree,
    nwb_paths: Mapping[str, Path],
    run_dir: Path,
    config: PaperConfig,
) -> Iterator[tuple[tuple[int, str, str], dict[str, Any]]]:
    """Run the fits in ``todo``, in this process or in ``config.jobs`` worker processes.

    Yields ``(job, record)`` as fits finish. Worker processes are started with ``spawn``
    (safe with torch), each loading the data once from the NWB files.
    """
    if not todo:
        return
    if config.jobs == 1 or len(todo) == 1:
        cache: dict[int, Any] = {}
        for job in todo:
            seed, preset, model = job
            if seed not in cache:
                cache.clear()
                cache[seed] = pair_paper_trials(tree, config, seed)
            yield job, _run_fit(cache[seed], preset, model, seed, config, _fit_dir(run_dir, preset, model, seed))
        return
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    paths = {rat: str(path) for rat, path in nwb_paths.items()}
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=min(config.jobs, len(todo)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(paths, config.to_dict(), _worker_threads(config)),
    ) as pool:
        futures = {
            pool.submit(_worker_fit, job, str(_fit_dir(run_dir, job[1], job[2], job[0]))): job for job in todo
        }
        try:
            for future in concurrent.futures.as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


_WORKER: dict[str, Any] = {}


def _init_worker(nwb_paths: Mapping[str, str], config: Mapping[str, Any], threads: int) -> None:
    """Load the data once per worker process and limit its threads."""
    import warnings

    import torch
    from threadpoolctl import threadpool_limits

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.set_num_threads(threads)
    _WORKER["limits"] = threadpool_limits(limits=threads)
    cfg = PaperConfig.from_dict(config)
    _WORKER["config"] = cfg
    _WORKER["tree"] = load_paper_data({r: Path(p) for r, p in nwb_paths.items()}, cfg)
    _WORKER["paired"] = {}


def _worker_fit(job: tuple[int, str, str], folder: str) -> dict[str, Any]:
    """One fit in a worker process (see :func:`_fit_all`)."""
    seed, preset, model = job
    config = _WORKER["config"]
    cache = _WORKER["paired"]
    if seed not in cache:
        cache.clear()
        cache[seed] = pair_paper_trials(_WORKER["tree"], config, seed)
    return _run_fit(cache[seed], preset, model, seed, config, Path(folder))


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _defaults_text(fits: Sequence[Mapping[str, Any]]) -> str:
    """One report line describing the model settings of the ``"neurovamp"``-preset fits."""
    from neurovamp.models.training import TrainingConfig

    configs = [f["model_config"] for f in fits if f.get("preset") == "neurovamp" and f.get("model_config")]
    if not configs:
        return "**neurovamp**: neurovamp's default model settings"
    c = configs[0]
    hidden = ", ".join(str(w) for w in c.get("hidden", [])) or "none"
    return (
        f"**neurovamp**: neurovamp's defaults: latent dimension {c.get('latent_dim')}, {c.get('likelihood')} "
        f"likelihood on counts, encoder hidden layer(s) of {hidden} units, {c.get('decoder')} decoder, "
        f"Adam lr 1e-3, batch 128, KL warm-up over {TrainingConfig.kl_warmup} epochs (the paper preset: none)"
    )


def _fmt(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


# --------------------------------------------------------------------------- figures
def _figure_paths(metrics: Mapping[str, Any]) -> dict[str, Any]:
    config = metrics["config"]
    latents = {
        (p, m): Path("figures") / f"latents_{p}_{m}.png" for p in config["presets"] for m in config["models"]
    }
    decoding = {p: Path("figures") / f"decoding_{p}.png" for p in config["presets"]}
    return {"latents": latents, "decoding": decoding}


def _load_latents(path: Path) -> dict[str, xr.DataArray]:
    tree = xr.load_datatree(path, engine="h5netcdf")
    out = {}
    for name, node in tree.children.items():
        da = node.to_dataset()["latents"]
        for coord in list(da.coords):
            values = da[coord].values
            if values.dtype == object:
                da = da.assign_coords({coord: (da[coord].dims, values.astype(str))})
        out[str(name)] = da
    return out


def _write_figures(run_dir: Path, metrics: Mapping[str, Any]) -> None:
    """Latent scatter per preset and model (first seed, held-out trials) and decoding bars."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import pandas as pd

    from neurovamp.analysis.plots import plot_latents, plot_model_comparison, save_figure

    config = metrics["config"]
    seed = config["seeds"][0]
    paths = _figure_paths(metrics)
    for (preset, model), rel in paths["latents"].items():
        latents = _load_latents(_fit_dir(run_dir, preset, model, seed) / _LATENTS_FILE)
        test = {
            a: z.isel(trial=np.flatnonzero(np.asarray(z["split"].values) == "test")) for a, z in latents.items()
        }
        fig = plot_latents(test, color_by="odor", projection="joint", max_points=3000, seed=seed)
        k = next(iter(test.values())).sizes["latent"]
        how = "" if k == 2 else f" (first two principal components of {k} latents)"
        fig.suptitle(f"{model}, {preset} preset, seed {seed}: held-out trials{how}", fontsize=10)
        save_figure(fig, run_dir / rel, overwrite=True)
        plt.close(fig)
    kinds = {
        "shared_heldout": "shared, held-out",
        "shared_train": "shared, train",
        "own_heldout": "own, held-out",
        "own_train": "own, train",
    }
    for preset, rel in paths["decoding"].items():
        rows = [
            {"model": f["model"], "seed": f["seed"], "score": title, "balanced accuracy": f["mean"].get(key)}
            for f in metrics["fits"]
            if f["preset"] == preset
            for key, title in kinds.items()
        ]
        table = pd.DataFrame(rows).astype({"balanced accuracy": float})
        fig = plot_model_comparison(
            table, metric="balanced accuracy", model="model", hue="score", order=list(config["models"])
        )
        ax = fig.axes[0]
        chance = 1.0 / len(config["odors"])
        ax.axhline(chance, color="0.3", ls="--", lw=0.8)
        ax.set_title(f"odor decoding, {preset} preset (mean ± sd over seeds; dashed: chance)", fontsize=10)
        save_figure(fig, run_dir / rel, overwrite=True)
        plt.close(fig)


# --------------------------------------------------------------------------- report
_OVERVIEW = ("shared_heldout", "shared_train", "own_heldout", "own_train", "cross_generation_accuracy")
_PER_RAT = ("own_heldout", "own_train", "shared_heldout", "shared_train", "cross_generation_accuracy")


def _cell(stats: Mapping[str, Any] | None, key: str | None = None, digits: int = 3) -> str:
    from neurovamp.analysis.report import format_mean_sd

    if stats is None:
        return "–"
    if key is None:
        return format_mean_sd(stats.get("mean"), stats.get("sd"), digits)
    return format_mean_sd(stats["mean"].get(key), stats["sd"].get(key), digits)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows of formatted cells as a markdown table, the first column (the row names) left-aligned."""
    import pandas as pd

    from neurovamp.analysis.report import markdown_table

    return markdown_table(pd.DataFrame(list(rows), columns=list(header)).set_index(header[0]))


def _noise_sentences(fits: Sequence[Mapping[str, Any]], preset: str) -> list[str]:
    """Sentences on MMVM vs the best other model per score, over seeds, from the fit records."""
    from neurovamp.analysis.report import compare_over_seeds

    mine = sorted((f for f in fits if f.get("preset") == preset), key=lambda f: f["seed"])
    models = list(dict.fromkeys(f["model"] for f in mine))
    seeds = sorted({f["seed"] for f in mine})
    out = []
    for key, what in (("shared_heldout", "shared classifier, held-out trials"),
                      ("own_heldout", "own classifier, held-out trials"),
                      ("bits_per_spike", "held-out trials imputed from the other rats, bits/spike")):
        values = {m: [next((_number(f["mean"].get(key)) for f in mine if f["model"] == m and f["seed"] == s), None)
                      for s in seeds] for m in models}
        sentence = compare_over_seeds(values, what)
        if sentence:
            out.append(sentence)
    mmvm = [f for f in mine if f["model"] == "mmvm"]
    own = _mean([_number(f["mean"].get("own_heldout")) for f in mmvm])
    raw = _mean([_number(f["mean"].get("raw_heldout")) for f in mmvm])
    if own is not None and raw:
        out.append(f"mmvm's latents decode odor on held-out trials at {own:.3f} against {raw:.3f} from the raw counts "
                   f"({100 * own / raw:.0f} % of raw-count decoding).")
    for key, what in (("bits_per_spike", "mmvm's imputation of held-out trials"),
                      ("bits_per_spike_weighted", "The same stacked on the rat's validation trials (the other rats "
                                                  "and the rat's own average response, each weighted by how well it "
                                                  "predicted them)")):
        bps = [(rat, _mean([_number(f["rats"].get(rat, {}).get(key)) for f in mmvm]))
               for rat in (mmvm[0]["rats"] if mmvm else {})]
        bps = [(rat, v) for rat, v in bps if v is not None]
        if bps:
            below = [rat for rat, v in bps if v <= 0]
            out.append(f"{what}, bits/spike per rat (mean over seeds): " + ", ".join(f"{rat} {v:.3f}" for rat, v in bps)
                       + (f"; not above a flat rate for {', '.join(below)}." if below else
                          "; above a flat rate for every rat."))
    return out


def write_report(metrics: Mapping[str, Any], path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``report.md`` from the metrics of a paper run (and nothing else).

    Parameters
    ----------
    metrics
        Content of ``RUN/metrics.json`` (:func:`read_paper_metrics`).
    path
        Output file; figures are linked relative to its folder (``figures/...``).
    overwrite
        Replace an existing file.

    Returns
    -------
    Path
        ``path``.
    """
    from neurovamp.analysis.report import MarkdownReport

    config = metrics["config"]
    data = metrics["data"]
    summary = metrics["summary"]
    seeds = config["seeds"]
    chance = 1.0 / len(config["odors"])
    path = Path(path)
    report = MarkdownReport("Multi-animal VAEs on the five-rat hippocampal release", folder=path.parent)
    first = data["by_seed"].get(str(seeds[0]), {})
    unit_text = ", ".join(f"{r} {data['units'][r]}" for r in data["rats"])
    starts = ", ".join(f"{r} {data['window_starts'][r]}" for r in data["rats"])
    trials = first.get("trials", {})
    pairs = first.get("pairs", {})
    filters = [w for w, on in (("correct", config["correct_only"]), ("in-sequence", config["in_sequence_only"])) if on]
    report.paragraph(
        f"Release: `{metrics['release']}`. Rats and units: {unit_text}. Odors {', '.join(config['odors'])}"
        f" ({'only ' + ' and '.join(filters) + ' trials' if filters else 'all trials, correct or not, in sequence or not'}). "
        f"Each rat's {config['window_length']}-bin window (10 ms bins) starts at release bin {starts} "
        "(bin 200 starts at odor onset); samples are sliding "
        f"{config['subwindow']}-bin sub-windows with stride {config['stride']} "
        f"({data['n_subwindows']} per trial), flattened units × bins."
    )
    split = config["split"]
    report.paragraph(
        f"Trials are split per rat into train/val/test ({split[0]:g}/{split[1]:g}/{split[2]:g}, stratified by odor; "
        "a trial is in one split only) and, within each split, paired across rats by odor and truncated to the "
        f"smallest count per odor. Seed {seeds[0]}: pairs train {pairs.get('train', '–')}, val {pairs.get('val', '–')}, "
        f"test {pairs.get('test', '–')}; trials per rat (train/val/test): "
        + ", ".join(f"{r} {t['train']}/{t['val']}/{t['test']}" for r, t in trials.items())
        + f". {'Seeds' if len(seeds) > 1 else 'Seed'} {', '.join(map(str, seeds))}: each seed draws the split and "
        "pairs and initialises the model."
    )
    presets_text = {
        "paper": (
            f"**paper**: the paper's settings: latent dimension {config['latent_dim']}, "
            + (
                "Gaussian likelihood with fixed scale on per-unit z-scored counts"
                if config["likelihood"] == "gaussian"
                else f"{config['likelihood']} likelihood on counts"
            )
            + ", encoder and decoder MLPs as wide as the input, Adam lr 1e-3, batch 128"
        ),
        "neurovamp": _defaults_text(metrics.get("fits", [])),
    }
    report.bullets([presets_text[p] for p in config["presets"]])
    report.paragraph(
        f"Training: at most {config['epochs']} epochs, early stopping on the validation split "
        f"(patience {config['patience']}). {metrics['n_fits']} fits; total run time "
        f"{metrics['run_seconds'] / 60:.1f} min"
        + (" (this invocation; earlier fits were resumed from the run folder)" if metrics.get("resumed") else "")
        + f" on {metrics['platform']['machine']} ({metrics['platform']['cpu_count']} CPUs visible, "
        f"{metrics['platform']['torch_threads']} torch thread(s))."
    )
    report.section("How the numbers are scored")
    report.bullets(
        [
            "Odor decoding: multinomial logistic regression on the latent means of the sub-window samples; "
            f"balanced accuracy (chance {chance:.3f}).",
            "**held-out**: the classifier is trained on latents of training trials and scored on test trials that "
            "neither the model nor the classifier saw. *Own* = the rat's own classifier; *shared* = one classifier "
            "trained on the *other* rats' training trials and applied to this rat (it works only if the rats' latent "
            "spaces are aligned).",
            f"**train**: scored on the training trials the model was fitted on (own: {config['folds']}-fold CV over "
            "them, grouped by trial; shared: trained on the other rats' training trials). The original code validated "
            "on its training "
            "data, so its published accuracies correspond to these *train* numbers, not to the held-out ones.",
            "Cross-animal generation accuracy (the paper's coherence): each rat's held-out trials are generated "
            "from the other rats' held-out trials of the same "
            "odor; a classifier trained on the rat's real training-trial activity decodes the odor of the generated "
            "activity (balanced accuracy).",
            "Every cell is the mean ± sd over seeds (sd omitted for one seed); tables per model give each rat, the "
            "overview the average over rats.",
        ]
    )
    for preset in config["presets"]:
        models = summary.get(preset, {})
        report.section(f"{preset} preset")
        rows = []
        for model, stats in models.items():
            rows.append([model, *(_cell(stats, k) for k in _OVERVIEW), _cell(stats, "fit_seconds", 1)])
        report.raw(
            _table(
                ["model", "shared, held-out", "shared, train", "own, held-out", "own, train",
                 "cross-animal generation accuracy",
                 "fit time (s)"],
                rows,
            )
        )
        report.paragraph(
            f"*Odor decoding (balanced accuracy) and cross-animal generation accuracy averaged over rats, {preset} preset; "
            "fit time = wall-clock seconds of one fit.*"
        )
        report.bullets(_noise_sentences(metrics.get("fits", []), preset))
        report.image(path.parent / "figures" / f"decoding_{preset}.png", f"odor decoding, {preset} preset")
        for model, stats in models.items():
            report.section(f"{model} ({preset} preset)", level=3)
            report.image(path.parent / "figures" / f"latents_{preset}_{model}.png", f"latents of {model}, {preset} preset")
            rat_rows = []
            for rat, per in stats["per_rat"].items():
                rat_rows.append([rat, *(_cell(per.get(k)) for k in _PER_RAT)])
            rat_rows.append(["mean over rats", *(_cell(stats, k) for k in _PER_RAT)])
            report.raw(
                _table(
                    ["rat", "own, held-out", "own, train", "shared, held-out", "shared, train",
                     "cross-animal generation accuracy"], rat_rows
                )
            )
            times = ", ".join(f"seed {s} {float(t):.1f} s" for s, t in stats["fit_seconds"].items())
            report.paragraph(
                f"Fit time: {times}. Epochs run: {_cell(stats, 'epochs_run', 1)}. Alignment R² (linear maps between "
                f"rats' odor-averaged latent trajectories): {_cell(stats, 'alignment_r2')}. Raw-count reference "
                f"(own classifier, held-out, mean over rats): {_cell(stats, 'raw_heldout')}."
            )
    return report.write(path, overwrite=overwrite)
