"""Cross-validated decoding of trial labels (odor, position, ...) from features such as latent means.

Model
-----
Categorical labels are decoded with multinomial logistic regression (L2, strength
``1/C``) on standardised features (a :class:`~sklearn.preprocessing.StandardScaler` fitted
on each training fold only). Continuous labels are decoded with ridge regression
(strength ``alpha``) on standardised features and scored by R².

Scores and chance
-----------------
Classification is scored by *balanced accuracy* (mean recall over the classes present in
the evaluated labels). Its chance level is ``1 / n_classes`` whatever the class
balance: any classifier that ignores the features (constant, random) has that expected
balanced accuracy. Results also carry ``majority``, the frequency of the most common
class (the plain-accuracy chance of always guessing it), and optionally an empirical
chance from label permutations. Regression is scored by R² with chance level ``0``.

Cross-validation
----------------
Stratified k-fold, shuffled with ``seed``. When samples are not independent (several
sub-windows of one trial, several time points of one trial), pass ``groups`` (e.g. trial
ids) so that a group never sits on both sides of a split (stratified group k-fold).
If the rarest class has fewer samples (groups) than ``folds`` the number of folds is
reduced to that count with a :class:`UserWarning`; a class with a single sample (group)
is an error. The per-fold scores are averaged.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import xarray as xr
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, r2_score
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from neurovamp._jsonfile import json_safe
from neurovamp.errors import ConfigError, DataError

__all__ = [
    "DecodingResult",
    "SharedDecodingResult",
    "TimeDecodingResult",
    "decode_labels",
    "decode_shared",
    "decode_over_time",
    "transfer_decode",
    "BehaviorDecodingResult",
    "behavior_samples",
    "decode_behavior",
]

ModelName = Literal["auto", "logistic", "ridge"]
ArrayLike = np.ndarray | xr.DataArray | Sequence


def _json(value: Any) -> Any:
    """JSON-safe copy (the one numpy → JSON rule, :func:`neurovamp._jsonfile.json_safe`)."""
    return json_safe(value, default=str)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class DecodingResult:
    """Outcome of one decoding analysis.

    Attributes
    ----------
    metric
        ``"balanced_accuracy"`` (classification) or ``"r2"`` (regression).
    score
        Mean of ``fold_scores`` (the single test score for a transfer).
    fold_scores
        Score of each cross-validation fold.
    chance
        Chance level of ``metric``: ``1 / n_classes`` of the evaluated labels, or ``0``.
    majority
        Frequency of the most common evaluated class (plain-accuracy chance); ``None``
        for regression.
    accuracy
        Plain accuracy of all out-of-fold (or test) predictions; ``None`` for regression.
    classes
        Class labels in the order of ``confusion``'s rows/columns; empty for regression.
    confusion
        Row-normalised confusion matrix (row = true class, column = predicted class, rows
        sum to 1; a row of NaN for a class absent from the evaluated labels); ``None`` for
        regression.
    n_samples
        Number of evaluated samples.
    n_folds
        Folds actually used (``1`` for a transfer).
    scheme
        ``"stratified-kfold"``, ``"stratified-group-kfold"``, ``"kfold"``,
        ``"group-kfold"`` or ``"transfer"``.
    model
        ``"logistic"`` or ``"ridge"``.
    seed
        Seed of the fold shuffling (``None`` for a transfer).
    permutation_scores
        Scores with shuffled labels (empty unless requested); their mean is an empirical
        chance level.
    p_value
        ``(1 + #{permutation score >= score}) / (1 + n_permutations)``, or ``None``.
    """

    metric: str
    score: float
    fold_scores: tuple[float, ...]
    chance: float
    majority: float | None
    accuracy: float | None
    classes: tuple[Any, ...]
    confusion: np.ndarray | None
    n_samples: int
    n_folds: int
    scheme: str
    model: str
    seed: int | None
    permutation_scores: tuple[float, ...] = ()
    p_value: float | None = None

    @property
    def score_std(self) -> float:
        """Standard deviation of the fold scores (0 for a single fold)."""
        return float(np.std(self.fold_scores)) if len(self.fold_scores) > 1 else 0.0

    @property
    def empirical_chance(self) -> float | None:
        """Mean permutation score, or ``None`` without permutations."""
        return float(np.mean(self.permutation_scores)) if self.permutation_scores else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (NaN → ``None``, arrays → nested lists).

        Returns
        -------
        dict
            Every attribute plus ``score_std`` and ``empirical_chance``.
        """
        out = {
            "metric": self.metric,
            "score": self.score,
            "score_std": self.score_std,
            "fold_scores": list(self.fold_scores),
            "chance": self.chance,
            "majority": self.majority,
            "empirical_chance": self.empirical_chance,
            "p_value": self.p_value,
            "accuracy": self.accuracy,
            "classes": list(self.classes),
            "confusion": self.confusion,
            "n_samples": self.n_samples,
            "n_folds": self.n_folds,
            "scheme": self.scheme,
            "model": self.model,
            "seed": self.seed,
            "permutation_scores": list(self.permutation_scores),
        }
        return _json(out)


@dataclass(frozen=True)
class SharedDecodingResult:
    """One decoder shared across animals (tests whether their latent spaces are aligned).

    Attributes
    ----------
    animals
        Animal ids, in input order.
    metric
        ``"balanced_accuracy"`` or ``"r2"``.
    leave_one_out
        Animal → score of a decoder trained on every *other* animal and tested on it.
    pooled
        Cross-validated decoder on all animals' samples pooled.
    pooled_by_animal
        Animal → score of the pooled decoder's out-of-fold predictions on that animal.
    within
        Animal → cross-validated score of the animal's own decoder (reference; empty when
        not computed).
    chance
        Animal → chance level of that animal's labels.
    leave_one_out_results
        Animal → full :class:`DecodingResult` of the leave-one-animal-out test.
    """

    animals: tuple[str, ...]
    metric: str
    leave_one_out: dict[str, float]
    pooled: DecodingResult
    pooled_by_animal: dict[str, float]
    within: dict[str, float]
    chance: dict[str, float]
    leave_one_out_results: dict[str, DecodingResult] = field(repr=False)

    @property
    def leave_one_out_mean(self) -> float:
        """Mean leave-one-animal-out score over animals."""
        return float(np.mean(list(self.leave_one_out.values())))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary of every score (nested results via their ``to_dict``).

        Returns
        -------
        dict
        """
        return _json(
            {
                "animals": list(self.animals),
                "metric": self.metric,
                "leave_one_out": self.leave_one_out,
                "leave_one_out_mean": self.leave_one_out_mean,
                "pooled": self.pooled.to_dict(),
                "pooled_by_animal": self.pooled_by_animal,
                "within": self.within,
                "chance": self.chance,
                "leave_one_out_results": {k: v.to_dict() for k, v in self.leave_one_out_results.items()},
            }
        )


@dataclass(frozen=True)
class TimeDecodingResult:
    """Decoding score at each time point (a separate decoder per time point).

    Attributes
    ----------
    times
        Time of each point (the ``time`` coordinate, or ``0..n-1``).
    scores
        Mean fold score per time point, ``(n_time,)``.
    fold_scores
        ``(n_time, n_folds)``; the same folds are used at every time point.
    chance, majority, metric, n_folds, scheme, model, seed
        As in :class:`DecodingResult`.
    """

    times: np.ndarray
    scores: np.ndarray
    fold_scores: np.ndarray
    chance: float
    majority: float | None
    metric: str
    n_folds: int
    scheme: str
    model: str
    seed: int

    @property
    def score_std(self) -> np.ndarray:
        """Standard deviation over folds at each time point."""
        return self.fold_scores.std(axis=1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary.

        Returns
        -------
        dict
        """
        return _json(
            {
                "times": self.times,
                "scores": self.scores,
                "score_std": self.score_std,
                "fold_scores": self.fold_scores,
                "chance": self.chance,
                "majority": self.majority,
                "metric": self.metric,
                "n_folds": self.n_folds,
                "scheme": self.scheme,
                "model": self.model,
                "seed": self.seed,
            }
        )


# --------------------------------------------------------------------------- input checks
def _as_features(features: ArrayLike, name: str = "features", ndim: int = 2) -> np.ndarray:
    x = np.asarray(features, dtype=float)
    if ndim == 2 and x.ndim == 1:
        x = x[:, None]
    if x.ndim != ndim:
        hint = (
            " (average over time first, e.g. latents.mean('time'), or use decode_over_time)"
            if ndim == 2 and x.ndim == 3
            else ""
        )
        expected = "(sample, feature)" if ndim == 2 else "(trial, time, feature)"
        raise DataError(f"{name} must be {expected}, got shape {x.shape}{hint}")
    if x.shape[0] == 0:
        raise DataError(f"{name} has no samples")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{name} contain NaN or infinite values")
    return x


def _as_labels(labels: ArrayLike | str, features: ArrayLike, n: int, name: str = "labels") -> np.ndarray:
    if isinstance(labels, str):
        if not (isinstance(features, xr.DataArray) and labels in features.coords):
            raise DataError(f"{name}={labels!r} names no coordinate of the features")
        y = np.asarray(features[labels])
    else:
        y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"{name} must hold one label per sample ({n}), got shape {y.shape}")
    if y.dtype.kind == "O":
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in y):
            raise DataError(f"{name} contain missing values (None/NaN)")
        try:
            np.unique(y)
        except TypeError:
            raise DataError(f"{name} mix types that cannot be compared (e.g. str and int)") from None
    elif y.dtype.kind in "fc" and not np.all(np.isfinite(y)):
        raise DataError(f"{name} contain NaN or infinite values")
    return y


def _as_groups(groups: ArrayLike | None, n: int) -> np.ndarray | None:
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.shape != (n,):
        raise DataError(f"groups must hold one id per sample ({n}), got shape {g.shape}")
    return g


def _resolve_model(y: np.ndarray, model: str) -> str:
    if model not in ("auto", "logistic", "ridge"):
        raise ConfigError(f"model must be 'auto', 'logistic' or 'ridge', got {model!r}")
    if model == "ridge" and y.dtype.kind not in "biuf":
        raise ConfigError(f"model='ridge' needs numeric labels, got dtype {y.dtype}")
    if model == "auto":
        continuous = y.dtype.kind == "f" and not np.all(np.equal(np.mod(y, 1), 0))
        return "ridge" if continuous else "logistic"
    return model


def _check_folds(folds: int) -> int:
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ConfigError(f"folds must be an integer >= 2, got {folds!r}")
    return int(folds)


def _estimator(model: str, C: float, alpha: float, n_params: int = 0) -> Pipeline:
    if model == "logistic":
        if not C > 0:
            raise ConfigError(f"C must be positive, got {C!r}")
        # Newton-Cholesky is exact and fast for the usual few latent features; L-BFGS scales
        # better to many features x classes (it can be slow on small data with threaded BLAS).
        solver = "newton-cholesky" if n_params <= 2000 else "lbfgs"
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, solver=solver, max_iter=2000))
    if not alpha >= 0:
        raise ConfigError(f"alpha must be non-negative, got {alpha!r}")
    return make_pipeline(StandardScaler(), Ridge(alpha=alpha))


def _n_params(x: np.ndarray, y: np.ndarray, model: str) -> int:
    if model != "logistic":
        return 0
    return (x.shape[1] + 1) * np.unique(y).size


def _splits(
    y: np.ndarray, groups: np.ndarray | None, folds: int, seed: int, model: str
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Cross-validation splits (reducing ``folds`` to what the data allow)."""
    dummy = np.zeros((y.shape[0], 1))
    if model == "logistic":
        classes, inverse = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise DataError(f"labels have a single class ({_show(classes[0])}); nothing to decode")
        if groups is None:
            per_class = np.bincount(inverse)
            unit = "samples"
        else:
            per_class = np.array([np.unique(groups[inverse == c]).size for c in range(classes.size)])
            unit = "groups"
        smallest = int(per_class.argmin())
        n_min = int(per_class[smallest])
        if n_min < 2:
            raise DataError(
                f"class {_show(classes[smallest])} has only {n_min} {unit}; every class needs at least 2 "
                "for cross-validation (drop the class or collect more trials)"
            )
        if n_min < folds:
            warnings.warn(
                f"class {_show(classes[smallest])} has only {n_min} {unit}; using {n_min} folds instead of {folds}",
                UserWarning,
                stacklevel=3,
            )
            folds = n_min
        if groups is None:
            splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
            scheme = "stratified-kfold"
        else:
            splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
            scheme = "stratified-group-kfold"
        with warnings.catch_warnings():
            # StratifiedGroupKFold warns when groups make exact stratification impossible.
            warnings.simplefilter("ignore", UserWarning)
            splits = list(splitter.split(dummy, y, groups))
    else:
        n_units = y.shape[0] if groups is None else np.unique(groups).size
        unit = "samples" if groups is None else "groups"
        if n_units < 2:
            raise DataError(f"only {n_units} {unit}; cross-validation needs at least 2")
        if n_units < folds:
            warnings.warn(f"only {n_units} {unit}; using {n_units} folds instead of {folds}", UserWarning, stacklevel=3)
            folds = n_units
        if groups is None:
            splitter = KFold(folds, shuffle=True, random_state=seed)
            scheme = "kfold"
        else:
            splitter = GroupKFold(folds, shuffle=True, random_state=seed)
            scheme = "group-kfold"
        splits = list(splitter.split(dummy, y, groups))
    return splits, scheme


def _score(model: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if model == "logistic":
        with warnings.catch_warnings():
            # a fold may predict a class that is absent from its test labels
            warnings.simplefilter("ignore", UserWarning)
            return float(balanced_accuracy_score(y_true, y_pred))
    if y_true.shape[0] < 2:
        return float("nan")
    return float(r2_score(y_true, y_pred))


def _cv_predict(
    x: np.ndarray, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]], estimator: Pipeline, model: str
) -> tuple[np.ndarray, list[float]]:
    pred = np.empty(y.shape[0], dtype=y.dtype if model == "logistic" else float)
    scores = []
    for train, test in splits:
        est = clone(estimator).fit(x[train], y[train])
        pred[test] = est.predict(x[test])
        scores.append(_score(model, y[test], pred[test]))
    return pred, scores


def _chance_stats(y_eval: np.ndarray, model: str) -> tuple[float, float | None]:
    if model != "logistic":
        return 0.0, None
    _, counts = np.unique(y_eval, return_counts=True)
    return 1.0 / counts.size, float(counts.max() / counts.sum())


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray) -> np.ndarray:
    cm = confusion_matrix(y_true, y_pred, labels=classes).astype(float)
    totals = cm.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, cm / np.where(totals > 0, totals, 1.0), np.nan)


def _show(value: Any) -> str:
    """repr of a label as a plain Python scalar (``'B'``, not ``np.str_('B')``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _plain(values: np.ndarray) -> tuple[Any, ...]:
    return tuple(v.item() if isinstance(v, np.generic) else v for v in values)


def _permutations(y: np.ndarray, groups: np.ndarray | None, n: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Shuffled label vectors; whole groups are relabelled when labels are constant per group."""
    group_level = False
    if groups is not None:
        g_ids, first, g_inv = np.unique(groups, return_index=True, return_inverse=True)
        group_level = bool(np.all(y == y[first][g_inv]))
    for _ in range(n):
        if group_level:
            yield y[first][rng.permutation(g_ids.size)][g_inv]
        else:
            yield y[rng.permutation(y.shape[0])]


# --------------------------------------------------------------------------- public API
def decode_labels(
    features: ArrayLike,
    labels: ArrayLike | str,
    *,
    folds: int = 5,
    seed: int = 0,
    model: ModelName = "auto",
    groups: ArrayLike | None = None,
    C: float = 1.0,
    alpha: float = 1.0,
    n_permutations: int = 0,
) -> DecodingResult:
    """Cross-validated decoding of labels from features.

    Parameters
    ----------
    features
        ``(sample, feature)`` array (e.g. latent means per trial); a 1-D array is one
        feature. A DataArray's first dimension is the sample dimension.
    labels
        One label per sample (strings, integers, booleans, or floats for regression), or
        the name of a coordinate of ``features`` (e.g. ``"odor"``).
    folds
        Number of cross-validation folds (reduced, with a warning, when the rarest class
        has fewer samples or groups).
    seed
        Seed of the fold shuffling and of the label permutations.
    model
        ``"logistic"`` (multinomial logistic regression, balanced accuracy), ``"ridge"``
        (ridge regression, R²) or ``"auto"``: ridge for float labels with non-integer
        values, logistic otherwise.
    groups
        Optional group id per sample (e.g. trial id of each sub-window); a group is never
        split between training and test folds.
    C
        Inverse L2 strength of the logistic regression.
    alpha
        L2 strength of the ridge regression.
    n_permutations
        Number of label permutations for an empirical chance level and a p-value
        (``0`` = none). Each repeats the whole cross-validation with the same folds.

    Returns
    -------
    DecodingResult

    Raises
    ------
    DataError
        On NaN features, a label count that does not match, a single class, or a class
        with fewer than two samples (groups).
    ConfigError
        On invalid ``folds``, ``model``, ``C`` or ``alpha``.
    """
    folds = _check_folds(folds)
    x = _as_features(features)
    y = _as_labels(labels, features, x.shape[0])
    g = _as_groups(groups, x.shape[0])
    model = _resolve_model(y, model)
    if n_permutations < 0:
        raise ConfigError(f"n_permutations must be >= 0, got {n_permutations}")
    estimator = _estimator(model, C, alpha, _n_params(x, y, model))
    splits, scheme = _splits(y, g, folds, seed, model)
    pred, fold_scores = _cv_predict(x, y, splits, estimator, model)
    score = float(np.mean(fold_scores))
    perm: list[float] = []
    p_value = None
    if n_permutations:
        rng = np.random.default_rng(seed)
        for y_perm in _permutations(y, g, n_permutations, rng):
            perm.append(float(np.mean(_cv_predict(x, y_perm, splits, estimator, model)[1])))
        p_value = (1 + sum(s >= score for s in perm)) / (1 + n_permutations)
    chance, majority = _chance_stats(y, model)
    if model == "logistic":
        classes = np.unique(y)
        confusion = _confusion(y, pred, classes)
        accuracy = float(np.mean(pred == y))
    else:
        classes, confusion, accuracy = np.array([]), None, None
    return DecodingResult(
        metric="balanced_accuracy" if model == "logistic" else "r2",
        score=score,
        fold_scores=tuple(fold_scores),
        chance=chance,
        majority=majority,
        accuracy=accuracy,
        classes=_plain(classes),
        confusion=confusion,
        n_samples=int(x.shape[0]),
        n_folds=len(splits),
        scheme=scheme,
        model=model,
        seed=seed,
        permutation_scores=tuple(perm),
        p_value=p_value,
    )


def transfer_decode(
    train_X: ArrayLike,
    train_y: ArrayLike,
    test_X: ArrayLike,
    test_y: ArrayLike,
    *,
    model: ModelName = "auto",
    C: float = 1.0,
    alpha: float = 1.0,
) -> DecodingResult:
    """Train a decoder on one data set and test it on another.

    The paper's "coherence" check: train on an animal's real activity, test on that
    animal's activity generated from another animal (or vice versa). Balanced accuracy
    is computed over the classes present in ``test_y``; a test class never seen in
    training counts with recall 0.

    Parameters
    ----------
    train_X, test_X
        ``(sample, feature)`` arrays with the same number of features.
    train_y, test_y
        One label per sample.
    model, C, alpha
        As in :func:`decode_labels` (``"auto"`` looks at ``train_y``).

    Returns
    -------
    DecodingResult
        ``scheme="transfer"``, one "fold"; ``chance`` = ``1 / n_classes(test_y)``,
        ``majority`` from ``test_y``; ``classes`` = union of training and test classes.
    """
    xa = _as_features(train_X, "train_X")
    xb = _as_features(test_X, "test_X")
    if xa.shape[1] != xb.shape[1]:
        raise DataError(f"train_X has {xa.shape[1]} features but test_X has {xb.shape[1]}")
    ya = _as_labels(train_y, train_X, xa.shape[0], "train_y")
    yb = _as_labels(test_y, test_X, xb.shape[0], "test_y")
    model = _resolve_model(ya, model)
    if model == "logistic" and np.unique(ya).size < 2:
        raise DataError("train_y has a single class; nothing to decode")
    est = _estimator(model, C, alpha, _n_params(xa, ya, model)).fit(xa, ya)
    pred = est.predict(xb)
    score = _score(model, yb, pred)
    chance, majority = _chance_stats(yb, model)
    if model == "logistic":
        try:
            classes = np.unique(np.concatenate([ya, yb]))
        except TypeError:
            raise DataError("train_y and test_y labels have incompatible types") from None
        confusion = _confusion(yb, pred, classes)
        accuracy = float(np.mean(pred == yb))
    else:
        classes, confusion, accuracy = np.array([]), None, None
    return DecodingResult(
        metric="balanced_accuracy" if model == "logistic" else "r2",
        score=score,
        fold_scores=(score,),
        chance=chance,
        majority=majority,
        accuracy=accuracy,
        classes=_plain(classes),
        confusion=confusion,
        n_samples=int(xb.shape[0]),
        n_folds=1,
        scheme="transfer",
        model=model,
        seed=None,
    )


def decode_shared(
    features_by_animal: Mapping[str, ArrayLike],
    labels_by_animal: Mapping[str, ArrayLike] | str,
    *,
    folds: int = 5,
    seed: int = 0,
    model: ModelName = "auto",
    groups_by_animal: Mapping[str, ArrayLike] | None = None,
    C: float = 1.0,
    alpha: float = 1.0,
    within: bool = True,
) -> SharedDecodingResult:
    """One decoder shared across animals: leave-one-animal-out and pooled cross-validation.

    If the animals' feature spaces are aligned (same label → same region), a decoder
    trained on the other animals transfers to the held-out one; with unaligned spaces the
    leave-one-animal-out score drops towards chance even when each animal's own decoder
    (``within``) is accurate.

    Parameters
    ----------
    features_by_animal
        Animal → ``(sample, feature)`` array; every animal needs the same features.
    labels_by_animal
        Animal → labels, or the name of a coordinate present on every animal's DataArray.
    folds, seed, model, C, alpha
        As in :func:`decode_labels` (``"auto"`` looks at the pooled labels).
    groups_by_animal
        Optional animal → group ids for the pooled and within-animal cross-validation
        (groups are made unique per animal).
    within
        Also cross-validate each animal's own decoder as a reference.

    Returns
    -------
    SharedDecodingResult
    """
    animals = tuple(features_by_animal)
    if len(animals) < 2:
        raise DataError(f"decode_shared needs at least two animals, got {list(animals)}")
    xs, ys, gs = {}, {}, {}
    for a in animals:
        feats = features_by_animal[a]
        xs[a] = _as_features(feats, f"features of {a!r}")
        if isinstance(labels_by_animal, str):
            lab = labels_by_animal
        elif a in labels_by_animal:
            lab = labels_by_animal[a]
        else:
            raise DataError(f"labels_by_animal has no entry for animal {a!r}")
        ys[a] = _as_labels(lab, feats, xs[a].shape[0], f"labels of {a!r}")
        if groups_by_animal is not None:
            if a not in groups_by_animal:
                raise DataError(f"groups_by_animal has no entry for animal {a!r}")
            gs[a] = _as_groups(groups_by_animal[a], xs[a].shape[0])
    widths = {a: x.shape[1] for a, x in xs.items()}
    if len(set(widths.values())) != 1:
        raise DataError(f"every animal needs the same number of features, got {widths}")
    try:
        y_all = np.concatenate([ys[a] for a in animals])
        np.unique(y_all)
    except TypeError:
        raise DataError("labels of different animals have incompatible types") from None
    x_all = np.concatenate([xs[a] for a in animals])
    animal_of = np.concatenate([np.full(xs[a].shape[0], i) for i, a in enumerate(animals)])
    model = _resolve_model(y_all, model)
    folds = _check_folds(folds)

    loo_results = {}
    for i, a in enumerate(animals):
        train = animal_of != i
        loo_results[a] = transfer_decode(x_all[train], y_all[train], xs[a], ys[a], model=model, C=C, alpha=alpha)

    g_all = None
    if groups_by_animal is not None:
        g_all = np.array([f"{a}\x1f{g}" for a in animals for g in gs[a]], dtype=object)
    estimator = _estimator(model, C, alpha, _n_params(x_all, y_all, model))
    splits, scheme = _splits(y_all, g_all, folds, seed, model)
    pred, fold_scores = _cv_predict(x_all, y_all, splits, estimator, model)
    chance_all, majority_all = _chance_stats(y_all, model)
    if model == "logistic":
        classes = np.unique(y_all)
        confusion, accuracy = _confusion(y_all, pred, classes), float(np.mean(pred == y_all))
    else:
        classes, confusion, accuracy = np.array([]), None, None
    pooled = DecodingResult(
        metric="balanced_accuracy" if model == "logistic" else "r2",
        score=float(np.mean(fold_scores)),
        fold_scores=tuple(fold_scores),
        chance=chance_all,
        majority=majority_all,
        accuracy=accuracy,
        classes=_plain(classes),
        confusion=confusion,
        n_samples=int(x_all.shape[0]),
        n_folds=len(splits),
        scheme=scheme,
        model=model,
        seed=seed,
    )
    pooled_by_animal = {a: _score(model, ys[a], pred[animal_of == i]) for i, a in enumerate(animals)}
    within_scores = {}
    if within:
        for a in animals:
            within_scores[a] = decode_labels(
                xs[a], ys[a], folds=folds, seed=seed, model=model, groups=gs.get(a), C=C, alpha=alpha
            ).score
    return SharedDecodingResult(
        animals=animals,
        metric=pooled.metric,
        leave_one_out={a: r.score for a, r in loo_results.items()},
        pooled=pooled,
        pooled_by_animal=pooled_by_animal,
        within=within_scores,
        chance={a: _chance_stats(ys[a], model)[0] for a in animals},
        leave_one_out_results=loo_results,
    )


def decode_over_time(
    features: ArrayLike,
    labels: ArrayLike | str,
    *,
    folds: int = 5,
    seed: int = 0,
    model: ModelName = "auto",
    groups: ArrayLike | None = None,
    C: float = 1.0,
    alpha: float = 1.0,
) -> TimeDecodingResult:
    """Decode labels separately at each time point.

    Parameters
    ----------
    features
        ``(trial, time, feature)`` array, e.g. latents per trial and sub-window. A
        DataArray must have dims ``trial`` and ``time`` plus one feature dimension (any
        name, e.g. ``latent``); its ``time`` coordinate labels the curve.
    labels
        One label per trial, or the name of a trial coordinate of ``features``.
    folds, seed, model, groups, C, alpha
        As in :func:`decode_labels`; the same folds are used at every time point.

    Returns
    -------
    TimeDecodingResult
    """
    folds = _check_folds(folds)
    times = None
    if isinstance(features, xr.DataArray):
        if "trial" not in features.dims or "time" not in features.dims or features.ndim != 3:
            raise DataError(f"features must have dims (trial, time, <feature>), got {tuple(features.dims)}")
        feature_dim = next(d for d in features.dims if d not in ("trial", "time"))
        ordered = features.transpose("trial", "time", feature_dim)
        times = np.asarray(features["time"]) if "time" in features.coords else None
        x = _as_features(ordered, "features", ndim=3)
    else:
        x = _as_features(features, "features", ndim=3)
    if times is None:
        times = np.arange(x.shape[1])
    y = _as_labels(labels, features, x.shape[0])
    g = _as_groups(groups, x.shape[0])
    model = _resolve_model(y, model)
    estimator = _estimator(model, C, alpha, _n_params(x[:, 0], y, model))
    splits, scheme = _splits(y, g, folds, seed, model)
    fold_scores = np.array([_cv_predict(x[:, t], y, splits, estimator, model)[1] for t in range(x.shape[1])])
    chance, majority = _chance_stats(y, model)
    return TimeDecodingResult(
        times=times,
        scores=fold_scores.mean(axis=1),
        fold_scores=fold_scores,
        chance=chance,
        majority=majority,
        metric="balanced_accuracy" if model == "logistic" else "r2",
        n_folds=len(splits),
        scheme=scheme,
        model=model,
        seed=seed,
    )


# --------------------------------------------------------------------------- continuous behaviour
@dataclass(frozen=True)
class BehaviorDecodingResult:
    """Cross-validated regression of a continuous behaviour (e.g. position) from features.

    Attributes
    ----------
    r2
        Held-out R² averaged over the dimensions (mean of the folds).
    r2_per_dim
        Held-out R² of each dimension.
    error
        Mean Euclidean distance between predicted and true behaviour over all held-out
        samples, in ``unit``.
    null_error
        The same distance when every held-out sample is predicted by its training fold's
        mean behaviour (the null beside ``error``).
    null_r2
        Held-out R² of that mean prediction (``<= 0``; the null beside ``r2``).
    unit
        Unit of measure of the behaviour (``""`` when unknown).
    dims
        Names of the dimensions.
    n_samples, n_folds, scheme, seed
        As in :class:`DecodingResult`.
    """

    r2: float
    r2_per_dim: tuple[float, ...]
    error: float
    null_error: float
    null_r2: float
    unit: str
    dims: tuple[str, ...]
    n_samples: int
    n_folds: int
    scheme: str
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary of every attribute."""
        return {key: _json(getattr(self, key)) for key in self.__dataclass_fields__}


def behavior_samples(
    counts: xr.DataArray, behavior: xr.DataArray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One decoding sample per (trial, bin): the units' counts and the behaviour in that bin.

    Parameters
    ----------
    counts
        A modality ``(trial, unit, time)``.
    behavior
        Its behaviour variable ``(trial, time, dim)`` (e.g. ``get_behavior(tree, animal,
        "position")``).

    Returns
    -------
    tuple of numpy.ndarray
        Features ``(n_trials * n_bins, n_units)``, behaviour ``(n_trials * n_bins, n_dims)``
        and the trial index of each sample (pass it as ``groups`` so that bins of one
        trial never sit on both sides of a split).

    Raises
    ------
    DataError
        If the two do not share trials and bins.
    """
    if behavior.dims[:2] != ("trial", "time") or behavior.sizes["trial"] != counts.sizes["trial"] \
            or behavior.sizes["time"] != counts.sizes["time"]:
        raise DataError(
            f"behaviour {behavior.name!r} {dict(behavior.sizes)} does not lie on the counts' trials and bins "
            f"{dict(counts.sizes)}"
        )
    c = np.asarray(counts.transpose("trial", "time", "unit").values, dtype=float)
    b = np.asarray(behavior.values, dtype=float).reshape(behavior.sizes["trial"], behavior.sizes["time"], -1)
    groups = np.repeat(np.arange(c.shape[0]), c.shape[1])
    return c.reshape(-1, c.shape[2]), b.reshape(-1, b.shape[2]), groups


def decode_behavior(
    features: ArrayLike,
    behavior: ArrayLike,
    *,
    bins: int | None = None,
    groups: ArrayLike | None = None,
    folds: int = 5,
    seed: int = 0,
    alpha: float = 1.0,
    C: float = 1.0,
    unit: str | None = None,
    n_permutations: int = 0,
) -> BehaviorDecodingResult | DecodingResult:
    """Cross-validated decoding of a continuous behaviour, as a value or as bins.

    Parameters
    ----------
    features
        ``(sample, feature)`` array (e.g. counts from :func:`behavior_samples`, or latent
        means).
    behavior
        ``(sample,)`` or ``(sample, dim)`` behaviour; a DataArray gives ``unit`` (its
        ``unit`` attribute) and the dimension names.
    bins
        ``None``: ridge regression, scored by R² and by the error in the behaviour's unit
        beside the training-mean null (:class:`BehaviorDecodingResult`). An integer:
        the (one-dimensional) behaviour is cut into that many equal-width bins over its
        range and the bin is decoded as a class with :func:`decode_labels` (balanced
        accuracy, chance ``1 / n_classes``).
    groups, folds, seed, alpha, C, n_permutations
        As in :func:`decode_labels` (``n_permutations`` for bins only).
    unit
        Unit of measure of the behaviour (overrides the DataArray's).

    Returns
    -------
    BehaviorDecodingResult or DecodingResult

    Raises
    ------
    DataError
        On NaN values, mismatched lengths, or bins of a behaviour with several dimensions.
    ConfigError
        On invalid ``bins``, ``folds`` or ``alpha``.
    """
    folds = _check_folds(folds)
    dims: tuple[str, ...] = ()
    if isinstance(behavior, xr.DataArray):
        unit = str(behavior.attrs.get("unit", "")) if unit is None else unit
        if behavior.ndim == 2:
            dims = tuple(str(v) for v in behavior[behavior.dims[1]].values)
    x = _as_features(features)
    y = np.asarray(behavior, dtype=float)
    y = y.reshape(y.shape[0], -1) if y.ndim > 1 else y[:, None]
    if y.shape[0] != x.shape[0]:
        raise DataError(f"behaviour has {y.shape[0]} samples for {x.shape[0]} feature rows")
    if not np.isfinite(y).all():
        raise DataError("behaviour holds NaN or inf; leave out uncovered trials (drop_uncovered=True)")
    g = _as_groups(groups, x.shape[0])
    if bins is not None:
        if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 2:
            raise ConfigError(f"bins must be an integer >= 2, got {bins!r}")
        if y.shape[1] != 1:
            raise DataError(f"bins need a one-dimensional behaviour; this one has {y.shape[1]} dimensions, choose one")
        edges = np.linspace(y.min(), y.max(), int(bins) + 1)
        classes = np.clip(np.searchsorted(edges, y[:, 0], side="right") - 1, 0, int(bins) - 1)
        return decode_labels(x, classes, folds=folds, seed=seed, model="logistic", groups=g, C=C,
                             n_permutations=n_permutations)
    estimator = _estimator("ridge", C, alpha)
    splits, scheme = _splits(y[:, 0], g, folds, seed, "ridge")
    pred = np.empty_like(y)
    null = np.empty_like(y)
    scores, null_scores = [], []
    for train, test in splits:
        est = clone(estimator).fit(x[train], y[train])
        pred[test] = est.predict(x[test]).reshape(len(test), -1)
        null[test] = y[train].mean(axis=0)
        scores.append(r2_score(y[test], pred[test], multioutput="raw_values"))
        null_scores.append(r2_score(y[test], null[test], multioutput="raw_values"))
    per_dim = np.mean(scores, axis=0)
    return BehaviorDecodingResult(
        r2=float(per_dim.mean()),
        r2_per_dim=tuple(float(v) for v in per_dim),
        error=float(np.linalg.norm(pred - y, axis=1).mean()),
        null_error=float(np.linalg.norm(null - y, axis=1).mean()),
        null_r2=float(np.mean(null_scores)),
        unit=unit or "",
        dims=dims or tuple(str(k) for k in range(y.shape[1])),
        n_samples=int(x.shape[0]),
        n_folds=len(splits),
        scheme=scheme,
        seed=seed,
    )
