"""Pair trials across animals, split them into train/val/test and cut sliding sub-windows.

The multimodal VAE sees one *sample* per (pair, sub-window): a pair is one trial from each
animal (or a gap, ``-1``, for an animal that has no trial to offer), and a sub-window is a
run of ``window`` consecutive bins inside the trial. :func:`pair_trials` turns a multi-animal
:class:`xarray.DataTree` into a frozen :class:`PairedData` holding the pairs of every split;
:class:`neurovamp.data.tensors.TensorBatcher` turns that into torch batches.

Splitting
    Trials, never pairs, are split, so a trial is in exactly one split and the pairs of a
    split only use trials of that split. The split is stratified by condition (the ``by``
    label) within each animal: every (animal, condition) group is shuffled with its own
    random stream derived from ``(seed, animal, condition)`` and cut by the largest-remainder
    method. Small groups: a group with at least as many trials as splits of non-zero
    fraction gives every such split at least one trial (taken from the largest split); a
    smaller group fills the splits in the order train, val, test (1 trial -> train,
    2 trials -> train + val when val > 0). With ``strategy="index"`` trial *ids* are split
    (jointly for all animals, stratified by condition), so one trial id is in the same split
    for every animal.

Strategies
    ``"truncate"`` (the paper): per split and condition, ``n_pairs`` is the smallest trial
    count among the animals that have the condition in that split; each animal's trials are
    shuffled and truncated to ``n_pairs``. ``"resample"``: ``n_pairs`` is the largest count;
    animals with fewer trials are drawn with replacement, balanced so that each trial appears
    ``floor`` or ``ceil(n_pairs / n_trials)`` times, hence every trial is used in every draw;
    :meth:`PairedData.resample` draws fresh pairs (one draw per epoch).
    ``"index"``: animals recorded together; trials with the same trial id are paired and an
    animal lacking a trial id gets ``-1``.

Animals that lack a condition (in a split) are masked (``-1``) in that condition's pairs,
which is how "a rat never given odor E" is represented.
"""

from __future__ import annotations

import numbers
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from neurovamp.data.dataset import animals as dataset_animals
from neurovamp.data.dataset import get_modality
from neurovamp.data.labels import describe_values, equals, matches, plain, sorted_values
from neurovamp.data.modality import COUNTS, label_names, validate_modality
from neurovamp.data.settings import PAIRING_DEFAULTS as _DEFAULTS
from neurovamp.data.settings import STRATEGIES, PairingSettings
from neurovamp.data.validation import check_pairing
from neurovamp.errors import ConfigError, DataError
from neurovamp.data.subwindows import window_centres, window_starts

__all__ = ["SPLITS", "STRATEGIES", "PairedData", "pair_trials", "select_window", "bin_label"]

SPLITS: tuple[str, ...] = ("train", "val", "test")

# Purpose codes that keep the random streams of the pipeline independent of each other.
_SPLIT_STREAM = 0
_PAIR_STREAM = 1


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------
def _tree_modalities(tree: xr.DataTree) -> dict[str, xr.DataArray]:
    """``{animal: counts modality}`` of a multi-animal tree (one child node per animal)."""
    if not isinstance(tree, xr.DataTree):
        raise DataError(
            f"expected an xarray.DataTree with one node per animal, got {type(tree).__name__}"
        )
    names = dataset_animals(tree)
    if not names:
        raise DataError("the DataTree has no animal nodes; expected one child node per animal")
    return {str(name): validate_modality(get_modality(tree, name)) for name in names}


def _stream_key(value: Any) -> int:
    """A stable 32-bit key of an animal name or condition value for seeding."""
    return zlib.crc32(str(value).encode("utf-8"))


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _check_seed(seed: Any) -> int:
    return _check_count(seed, "seed")


def _check_split_name(split: Any) -> str:
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    return str(split)


def _plain_tuple(values: np.ndarray) -> tuple[float, ...]:
    """Numbers as a tuple of Python floats, so messages show ``(0.8, 0.2, 0.0)``, not numpy reprs."""
    return tuple(float(v) for v in np.asarray(values).ravel())


def _condition_index(labels: np.ndarray, conditions: Sequence) -> np.ndarray:
    """Index into ``conditions`` of every label value (``-1`` where none matches)."""
    index = np.full(labels.shape, -1, dtype=np.int64)
    for k, value in enumerate(conditions):
        index[equals(labels, value) & (index < 0)] = k
    return index


def _split_sizes(n: int, fractions: np.ndarray) -> np.ndarray:
    """Trials per split for a group of ``n`` trials (see the module docstring)."""
    active = np.flatnonzero(fractions > 0)
    sizes = np.zeros(len(fractions), dtype=np.int64)
    if n < len(active):
        sizes[active[:n]] = 1
        return sizes
    raw = n * fractions
    sizes[:] = np.floor(raw + 1e-9)
    remainder = n - int(sizes.sum())
    order = np.argsort(-(raw - sizes), kind="stable")
    sizes[order[:remainder]] += 1
    for i in active:
        while sizes[i] == 0:
            j = int(np.argmax(sizes))
            sizes[j] -= 1
            sizes[i] += 1
    return sizes


def _assign_splits(n_items: int, groups: np.ndarray, n_groups: int, fractions: np.ndarray,
                   rng_for_group) -> np.ndarray:
    """Split labels for ``n_items`` items, stratified by ``groups`` (values ``0..n_groups-1``)."""
    labels = np.empty(n_items, dtype="<U5")
    for k in range(n_groups):
        members = np.flatnonzero(groups == k)
        if members.size == 0:
            continue
        shuffled = rng_for_group(k).permutation(members)
        bounds = np.cumsum(_split_sizes(members.size, fractions))[:-1]
        for name, part in zip(SPLITS, np.split(shuffled, bounds)):
            labels[part] = name
    return labels


def _pair_rng(seed: int, split: str, epoch: int) -> np.random.Generator:
    return np.random.default_rng([seed, _PAIR_STREAM, SPLITS.index(split), int(epoch)])


def _draw_condition_pairs(strategy: str, cond_index: Sequence[np.ndarray],
                          trial_split: Sequence[np.ndarray], n_conditions: int, split: str,
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of one split for ``"truncate"``/``"resample"``, grouped by condition."""
    n_animals = len(cond_index)
    blocks: list[np.ndarray] = []
    block_conditions: list[np.ndarray] = []
    for k in range(n_conditions):
        groups = [np.flatnonzero((ci == k) & (ts == split)) for ci, ts in zip(cond_index, trial_split)]
        present = [g.size for g in groups if g.size]
        if not present:
            continue
        n_pairs = min(present) if strategy == "truncate" else max(present)
        block = np.full((n_pairs, n_animals), -1, dtype=np.int64)
        for m, group in enumerate(groups):
            if group.size == 0:
                continue
            reps = -(-n_pairs // group.size)
            # ``reps`` independent permutations back to back: balanced draws with replacement
            # (each trial ``floor``/``ceil`` times); with reps == 1 a shuffle-and-truncate.
            tiled = rng.permuted(np.tile(group, (reps, 1)), axis=1).ravel()
            block[:, m] = tiled[:n_pairs]
        blocks.append(block)
        block_conditions.append(np.full(n_pairs, k, dtype=np.int64))
    if not blocks:
        return np.empty((0, n_animals), dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(blocks), np.concatenate(block_conditions)


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


# --------------------------------------------------------------------------------------
# PairedData
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PairedData:
    """Trials paired across animals, split into train/val/test, with sub-window offsets.

    Built by :func:`pair_trials`; every array is read-only.

    Attributes
    ----------
    animals
        Animal ids, in tree order (M of them).
    counts
        Per animal, float32 ``(n_trials_m, n_units_m, n_bins)``; rows are the trials kept
        after filters and conditions.
    modalities
        The filtered modalities (row order equals ``counts``), for labels and coordinates.
    pair_by
        Trial label the pairs are matched on (e.g. ``"odor"``).
    strategy
        ``"truncate"``, ``"resample"`` or ``"index"``.
    seed
        Seed of every random choice (splits, pairs, per-epoch draws).
    conditions
        The condition values paired, in order.
    window
        Sub-window length in bins (``n_bins`` when no sub-windows were asked for).
    stride
        Bins between consecutive sub-window starts.
    window_starts
        Bin offset of every sub-window, ``(n_windows,)``.
    trial_split
        Per animal, the split (``"train"``/``"val"``/``"test"``) of each trial row.
    pairs
        Per split, ``(n_pairs, M)`` int64 rows into ``counts[m]``; ``-1`` = animal missing.
    pair_condition
        Per split, the condition value of each pair.
    """

    animals: tuple[str, ...]
    counts: tuple[np.ndarray, ...]
    modalities: dict[str, xr.DataArray]
    pair_by: str
    strategy: str
    seed: int
    conditions: tuple
    window: int
    stride: int
    window_starts: np.ndarray
    trial_split: dict[str, np.ndarray]
    pairs: dict[str, np.ndarray]
    pair_condition: dict[str, np.ndarray]

    # -- shapes ---------------------------------------------------------------------------
    @property
    def n_animals(self) -> int:
        """Number of animals (modalities)."""
        return len(self.animals)

    @property
    def n_bins(self) -> int:
        """Bins per trial (the same for every animal)."""
        return int(self.counts[0].shape[2])

    @property
    def n_units(self) -> tuple[int, ...]:
        """Units per animal."""
        return tuple(int(c.shape[1]) for c in self.counts)

    @property
    def n_windows(self) -> int:
        """Sub-windows per trial."""
        return int(self.window_starts.size)

    @property
    def bin_size(self) -> float:
        """Bin width in seconds."""
        return float(self.modalities[self.animals[0]].attrs["bin_size"])

    @property
    def window_centres(self) -> np.ndarray:
        """Centre of every sub-window in seconds, on the modalities' ``time`` axis."""
        return window_centres(self.modalities[self.animals[0]]["time"].values, self.window_starts, self.window)

    @property
    def input_dims(self) -> tuple[int, ...]:
        """Flattened input width per animal, ``n_units_m * window``."""
        return tuple(u * self.window for u in self.n_units)

    # -- per split -----------------------------------------------------------------------
    def n_pairs(self, split: str) -> int:
        """Number of pairs in ``split``."""
        return int(self.pairs[_check_split_name(split)].shape[0])

    def n_samples(self, split: str) -> int:
        """Number of samples (pair × sub-window) in ``split``."""
        return self.n_pairs(split) * self.n_windows

    def mask(self, split: str) -> np.ndarray:
        """Which animals are observed in each pair of ``split``.

        Parameters
        ----------
        split
            ``"train"``, ``"val"`` or ``"test"``.

        Returns
        -------
        numpy.ndarray
            ``(n_pairs, M)`` bool, False where the pair has no trial of that animal.
        """
        return self.pairs[_check_split_name(split)] >= 0

    def samples(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Pair and sub-window index of every sample of ``split``, in canonical order.

        Sample ``i`` is pair ``i // n_windows``, sub-window ``i % n_windows``.

        Parameters
        ----------
        split
            ``"train"``, ``"val"`` or ``"test"``.

        Returns
        -------
        pair_index, window_index
            Two int64 arrays of length ``n_samples(split)``.
        """
        return np.divmod(np.arange(self.n_samples(split), dtype=np.int64), self.n_windows)

    def trial_counts(self) -> dict[str, dict[str, int]]:
        """Trials per animal and split, ``{animal: {split: count}}``."""
        return {
            animal: {s: int(np.count_nonzero(self.trial_split[animal] == s)) for s in SPLITS}
            for animal in self.animals
        }

    def _condition_indices(self) -> list[np.ndarray]:
        return [
            _condition_index(np.asarray(self.modalities[a][self.pair_by].values), self.conditions)
            for a in self.animals
        ]

    def resample(self, split: str, rng: np.random.Generator | int) -> np.ndarray:
        """Draw the pairs of ``split`` afresh.

        For ``strategy="resample"`` every animal's trials of each condition are reshuffled
        (and the smaller groups redrawn with replacement, balanced), so each call gives new
        pairs and every trial of the split is used in every draw. For the other strategies
        the fixed ``pairs[split]`` are returned (a copy). Rows keep the condition order and
        the per-condition counts of ``pairs[split]``, so ``pair_condition[split]`` and
        ``mask(split)`` describe the result too.

        Parameters
        ----------
        split
            ``"train"``, ``"val"`` or ``"test"``.
        rng
            A numpy Generator (or an integer seed for one).

        Returns
        -------
        numpy.ndarray
            ``(n_pairs, M)`` int64 rows into ``counts[m]``, ``-1`` = missing.
        """
        split = _check_split_name(split)
        if self.strategy != "resample":
            return self.pairs[split].copy()
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(_check_seed(rng))
        pairs, _ = _draw_condition_pairs(
            "resample", self._condition_indices(), [self.trial_split[a] for a in self.animals],
            len(self.conditions), split, rng,
        )
        return pairs

    def epoch_pairs(self, split: str, epoch: int = 0) -> np.ndarray:
        """Pairs used in ``epoch``: deterministic from ``(seed, split, epoch)``.

        Epoch 0 gives ``pairs[split]``; later epochs give fresh draws for
        ``strategy="resample"`` and ``pairs[split]`` otherwise.

        Parameters
        ----------
        split
            ``"train"``, ``"val"`` or ``"test"``.
        epoch
            Non-negative epoch number.

        Returns
        -------
        numpy.ndarray
            ``(n_pairs, M)`` int64.
        """
        split = _check_split_name(split)
        epoch = _check_count(epoch, "epoch")
        if self.strategy != "resample" or epoch == 0:
            return self.pairs[split]
        return self.resample(split, _pair_rng(self.seed, split, epoch))

    # -- report --------------------------------------------------------------------------
    def summary(self) -> str:
        """A human-readable description: animals, units, trials per split, pairs per condition.

        Returns
        -------
        str
            Multi-line text.
        """
        lines = [
            f"PairedData: {self.n_animals} animals paired by {self.pair_by!r} "
            f"(strategy {self.strategy!r}, seed {self.seed})",
            f"trials of {self.n_bins} bins x {self.bin_size:g} s; sub-windows of {self.window} bins, "
            f"stride {self.stride} -> {self.n_windows} per trial",
            "",
        ]
        counts = self.trial_counts()
        width = max(6, *(len(a) for a in self.animals))
        lines.append(f"{'animal':<{width}}  units  trials  " + "  ".join(f"{s:>5}" for s in SPLITS))
        for animal, units in zip(self.animals, self.n_units):
            total = sum(counts[animal].values())
            lines.append(
                f"{animal:<{width}}  {units:>5}  {total:>6}  "
                + "  ".join(f"{counts[animal][s]:>5}" for s in SPLITS)
            )
        lines += ["", f"{'condition':<10}  " + "  ".join(f"{s:>5}" for s in SPLITS) + "  masked animals (pairs)"]
        for value in self.conditions:
            per_split = []
            masked = np.zeros(self.n_animals, dtype=np.int64)
            total = 0
            for s in SPLITS:
                rows = equals(np.asarray(self.pair_condition[s]), value)
                per_split.append(int(rows.sum()))
                masked += (~self.mask(s)[rows]).sum(axis=0)
                total += int(rows.sum())
            text = ", ".join(f"{a} ({n}/{total})" for a, n in zip(self.animals, masked) if n) or "-"
            lines.append(f"{str(value):<10}  " + "  ".join(f"{n:>5}" for n in per_split) + f"  {text}")
        lines += ["", "samples: " + ", ".join(f"{s} {self.n_samples(s)}" for s in SPLITS)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"PairedData(animals={self.animals}, pair_by={self.pair_by!r}, strategy={self.strategy!r}, "
            f"pairs={{{', '.join(f'{s!r}: {self.n_pairs(s)}' for s in SPLITS)}}}, "
            f"window={self.window}, n_windows={self.n_windows})"
        )


# --------------------------------------------------------------------------------------
# pair_trials
# --------------------------------------------------------------------------------------
def _check_bins(mods: Mapping[str, xr.DataArray]) -> None:
    items = list(mods.items())
    ref_animal, ref = items[0]
    ref_bins, ref_size = ref.sizes["time"], float(ref.attrs["bin_size"])
    ref_time = np.asarray(ref["time"], dtype=float)
    for animal, da in items[1:]:
        n_bins, size = da.sizes["time"], float(da.attrs["bin_size"])
        if n_bins != ref_bins or not np.isclose(size, ref_size, rtol=1e-9, atol=0.0):
            raise DataError(
                f"mismatched bins: animal {animal!r} has {n_bins} bins of {size:g} s but "
                f"{ref_animal!r} has {ref_bins} bins of {ref_size:g} s; every animal needs the "
                "same number of bins and bin size (cut equal windows with select_window)"
            )
        time = np.asarray(da["time"], dtype=float)
        if not np.allclose(time, ref_time, rtol=0.0, atol=1e-3 * ref_size):
            raise DataError(
                f"mismatched bins: time coordinates of animal {animal!r} start at {time[0]:g} s but "
                f"those of {ref_animal!r} at {ref_time[0]:g} s; relabel per-animal windows with "
                "select_window so that sub-windows line up"
            )


def _resolve_conditions(labels: Mapping[str, np.ndarray], by: str, conditions: Any) -> tuple:
    if conditions is None:
        return tuple(sorted_values([v for values in labels.values() for v in np.asarray(values).tolist()]))
    requested = tuple(plain(c) for c in conditions)  # checked by PairingSettings: a non-empty list, no repeats
    available = _resolve_conditions(labels, by, None)
    for value in requested:
        if not any(equals(np.asarray(v), value).any() for v in labels.values()):
            raise DataError(
                f"condition {value!r} of label {by!r} is not present in any animal "
                f"(after filters); available: {list(available)}"
            )
    return requested


def pair_trials(
    tree: xr.DataTree,
    *,
    by: str = _DEFAULTS.by,
    strategy: str = _DEFAULTS.strategy,
    filters: Mapping[str, Any] | None = _DEFAULTS.filters,
    conditions: Sequence | None = _DEFAULTS.conditions,
    split: Sequence[float] = _DEFAULTS.split,
    seed: int = _DEFAULTS.seed,
    window: int | None = _DEFAULTS.subwindow,
    stride: int = _DEFAULTS.stride,
    pair_bins: int | None = _DEFAULTS.pair_bins,
) -> PairedData:
    """Pair trials across animals by condition, split them and define sub-windows.

    Parameters
    ----------
    tree
        Multi-animal set, one child node per animal holding ``counts`` (see
        ``neurovamp.data.dataset.make_dataset``). Every animal needs the same number of
        bins, bin size and time coordinates (use :func:`select_window` for per-animal cuts).
    by
        Trial label to pair on (``"odor"``, ``"position"``, ...); also the stratification
        label of the split.
    strategy
        ``"truncate"``, ``"resample"`` or ``"index"`` (see the module docstring).
    filters
        ``{label: allowed value or list of values}``, e.g. ``{"correct": True}``; trials
        matching every entry are kept.
    conditions
        Condition values to keep, in order (e.g. ``["A", "B", "C", "D"]``); ``None`` keeps
        every value present (sorted). A value present in no animal is an error; animals
        lacking a value are masked (``-1``) in its pairs.
    split
        Fractions ``(train, val, test)``, summing to 1; val and test may be 0.
    seed
        Seed of every random choice.
    window
        Sub-window length in bins; ``None`` uses whole trials.
    stride
        Bins between sub-window starts.
    pair_bins
        Pair on this many equal bins of a continuous (float) label ``by`` instead of its
        values (see :func:`bin_label`); ``conditions`` then name bin indices.

    Returns
    -------
    PairedData

    Raises
    ------
    DataError
        Missing labels (naming the animal and the labels it has), an animal with no trials
        left, a condition present in no animal, mismatched bins, inconsistent labels of a
        trial id under ``"index"``.
    ConfigError
        Unknown strategy, bad fractions, seed, window or stride.
    """
    settings = PairingSettings(by=by, strategy=strategy, filters=filters, conditions=conditions, split=split,
                               seed=seed, subwindow=window, stride=stride, pair_bins=pair_bins)  # every value check
    by, strategy, conditions, seed, pair_bins = (settings.by, settings.strategy, settings.conditions, settings.seed,
                                                 settings.pair_bins)
    fractions = np.asarray(settings.split, dtype=float)
    if pair_bins is not None:
        tree = bin_label(tree, by, pair_bins)
    mods = _tree_modalities(tree)
    animals = tuple(mods)
    _check_bins(mods)
    n_bins = mods[animals[0]].sizes["time"]
    window, stride, starts = window_starts(n_bins, window, stride)

    # filters, per animal
    kept: dict[str, xr.DataArray] = {}
    for animal, da in mods.items():
        labels = label_names(da)
        if by not in labels:
            raise DataError(f"animal {animal!r} has no trial label {by!r} to pair by; available labels: {labels}")
        for label in settings.filters or {}:
            if label not in labels:
                raise DataError(f"filter label {label!r} not found for animal {animal!r}; available labels: {labels}")
        keep = np.ones(da.sizes["trial"], dtype=bool)
        earlier: list[str] = []
        for label, allowed in (settings.filters or {}).items():
            values = np.asarray(da[label].values)
            now = keep & matches(values, allowed)
            if keep.any() and not now.any():
                where = ""
                if earlier:
                    plural = "s" if len(earlier) > 1 else ""
                    where = f" among trials passing the {', '.join(map(repr, earlier))} filter{plural}"
                raise DataError(
                    f"animal {animal!r} has no trials left after filters {dict(filters or {})}; "
                    f"its {label!r} values{where}: {describe_values(values[keep])}"
                )
            keep = now
            earlier.append(label)
        if not keep.any():
            raise DataError(f"animal {animal!r} has no trials left after filters {dict(filters or {})}")
        kept[animal] = da.isel(trial=np.flatnonzero(keep))

    # conditions
    cond_values = _resolve_conditions({a: np.asarray(da[by].values) for a, da in kept.items()}, by, conditions)
    cond_index: list[np.ndarray] = []
    for animal in animals:
        index = _condition_index(np.asarray(kept[animal][by].values), cond_values)
        if not (index >= 0).any():
            raise DataError(
                f"animal {animal!r} has no trials left after filters {dict(filters or {})} and "
                f"conditions {list(cond_values)}; its {by!r} values: {describe_values(kept[animal][by].values)}"
            )
        rows = np.flatnonzero(index >= 0)
        kept[animal] = kept[animal].isel(trial=rows)
        cond_index.append(index[rows])
    n_cond = len(cond_values)
    cond_array = np.asarray(cond_values)

    # split and pairs
    trial_split: dict[str, np.ndarray] = {}
    pairs: dict[str, np.ndarray] = {}
    pair_condition: dict[str, np.ndarray] = {}
    if strategy == "index":
        ids = [np.asarray(kept[a]["trial"].values) for a in animals]
        all_ids = np.concatenate(ids)
        all_cond = np.concatenate(cond_index)
        unique_ids, first = np.unique(all_ids, return_index=True)
        id_cond = all_cond[first]
        id_owner = np.searchsorted(np.cumsum([i.size for i in ids]), first, side="right")
        for animal, animal_ids, ci in zip(animals, ids, cond_index):
            where = np.searchsorted(unique_ids, animal_ids)
            bad = np.flatnonzero(id_cond[where] != ci)
            if bad.size:
                j = where[bad[0]]
                raise DataError(
                    f"index pairing: trial id {plain(unique_ids[j])!r} has {by}="
                    f"{cond_values[ci[bad[0]]]!r} in animal {animal!r} but {cond_values[id_cond[j]]!r} "
                    f"in animal {animals[id_owner[j]]!r}; index pairing needs animals recorded "
                    "together (the same trials)"
                )
        id_split = _assign_splits(
            unique_ids.size, id_cond, n_cond, fractions,
            lambda k: np.random.default_rng([seed, _SPLIT_STREAM, _stream_key("index"), _stream_key(cond_values[k])]),
        )
        for animal, animal_ids in zip(animals, ids):
            trial_split[animal] = id_split[np.searchsorted(unique_ids, animal_ids)]
        for s in SPLITS:
            chosen = unique_ids[id_split == s]
            block = np.full((chosen.size, len(animals)), -1, dtype=np.int64)
            for m, animal_ids in enumerate(ids):
                order = np.argsort(animal_ids, kind="stable")
                sorted_ids = animal_ids[order]
                pos = np.clip(np.searchsorted(sorted_ids, chosen), 0, sorted_ids.size - 1)
                found = sorted_ids[pos] == chosen
                block[:, m] = np.where(found, order[pos], -1)
            pairs[s] = block
            pair_condition[s] = cond_array[id_cond[id_split == s]]
    else:
        for animal, ci in zip(animals, cond_index):
            trial_split[animal] = _assign_splits(
                ci.size, ci, n_cond, fractions,
                lambda k, a=animal: np.random.default_rng(
                    [seed, _SPLIT_STREAM, _stream_key(a), _stream_key(cond_values[k])]
                ),
            )
        for s in SPLITS:
            block, block_cond = _draw_condition_pairs(
                strategy, cond_index, [trial_split[a] for a in animals], n_cond, s, _pair_rng(seed, s, 0)
            )
            pairs[s] = block
            pair_condition[s] = cond_array[block_cond]

    check_pairing(mods, kept, by=by, fractions=_plain_tuple(fractions), pairs=pairs)  # every input check, once
    return PairedData(
        animals=animals,
        counts=tuple(_readonly(np.array(kept[a].values, dtype=np.float32)) for a in animals),
        modalities=kept,
        pair_by=by,
        strategy=strategy,
        seed=seed,
        conditions=cond_values,
        window=window,
        stride=stride,
        window_starts=_readonly(starts),
        trial_split={a: _readonly(v) for a, v in trial_split.items()},
        pairs={s: _readonly(v) for s, v in pairs.items()},
        pair_condition={s: _readonly(v) for s, v in pair_condition.items()},
    )


# --------------------------------------------------------------------------------------
# select_window
# --------------------------------------------------------------------------------------
def bin_label(tree: xr.DataTree, label: str, n_bins: int) -> xr.DataTree:
    """Replace a continuous trial label by its bin index, on bins shared by every animal.

    The bins are ``n_bins`` equal parts of the range of the label pooled over all animals
    (e.g. positions on a shared track), so that trials (windows) of different animals in
    one bin can be paired; an animal that never visited a bin lacks that condition and is
    masked in its pairs, as for a condition it was never given.

    Parameters
    ----------
    tree
        Multi-animal set.
    label
        A float trial label (e.g. ``"position"`` from ``behavior=["Position"]``).
    n_bins
        Number of bins, at least 2.

    Returns
    -------
    xarray.DataTree
        A copy whose ``label`` holds the int bin index ``0 .. n_bins - 1`` (attribute
        ``bin_edges`` on the coordinate, ``n_bins + 1`` values).

    Raises
    ------
    ConfigError
        If ``n_bins`` is not an integer >= 2.
    DataError
        If an animal lacks the label, it is not continuous (float), holds NaN, or
        takes a single value over all animals.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 2:
        raise ConfigError(f"pair_bins (CLI: --pair-bins) must be an integer >= 2, got {n_bins!r}")
    mods = _tree_modalities(tree)
    values = {}
    for animal, da in mods.items():
        if label not in label_names(da):
            raise DataError(f"animal {animal!r} has no trial label {label!r} to bin; available labels: {label_names(da)}")
        v = np.asarray(da[label].values)
        if v.dtype.kind != "f":
            raise DataError(
                f"animal {animal!r}: pair_bins (CLI: --pair-bins) needs a continuous (float) label, but {label!r} "
                f"holds {v.dtype} values ({describe_values(v)}); pair on its values without --pair-bins"
            )
        if not np.isfinite(v).all():
            raise DataError(f"animal {animal!r}: label {label!r} holds NaN or inf; it cannot be binned")
        values[animal] = v
    pooled = np.concatenate(list(values.values()))
    lo, hi = float(pooled.min()), float(pooled.max())
    if not hi > lo:
        raise DataError(f"label {label!r} takes the single value {lo} in every animal; nothing to bin")
    edges = np.linspace(lo, hi, int(n_bins) + 1)
    nodes: dict[str, xr.Dataset] = {"/": tree.to_dataset()}
    for animal in mods:
        node = tree[animal].to_dataset()
        index = np.clip(np.searchsorted(edges, values[animal], side="right") - 1, 0, int(n_bins) - 1)
        node = node.assign_coords({label: ("trial", index.astype(np.int64))})
        node[label].attrs["bin_edges"] = edges.tolist()
        nodes[animal] = node
    return xr.DataTree.from_dict(nodes)


def select_window(tree: xr.DataTree, start_bins: Mapping[str, int] | int, length: int) -> xr.DataTree:
    """Cut a window of ``length`` bins from every animal, starting at a per-animal bin.

    The paper, for example, uses 25 bins starting at bin 225 for some rats and 250 for
    others. Afterwards the time axis is relabelled relative to each animal's window start so
    that all animals share the same ``time`` coordinate (and :func:`pair_trials` accepts
    them):

    * ``time`` = ``bin_size * (i + 0.5)``, seconds from the window start (bin centres);
    * a ``time_from_event`` coordinate on ``time`` keeps the original times relative to the
      event (kept from the first cut when cut repeatedly);
    * attrs of every variable that carries them: ``window_start`` = 0 and ``window_stop`` =
      ``length * bin_size`` (consistent with ``time``), ``window_offset`` = seconds from the
      event to the window start (so ``time_from_event = time + window_offset``) and
      ``window_start_bin`` = index of the first bin in the original grid.

    Every variable with a ``time`` dimension (e.g. an ``lfp`` variable beside ``counts``) is
    cut alike; other nodes and the root are copied unchanged.

    Parameters
    ----------
    tree
        Multi-animal set (one child node per animal).
    start_bins
        First bin of the window per animal (``{animal: bin}``, every animal needed) or one
        bin for all animals.
    length
        Window length in bins.

    Returns
    -------
    xarray.DataTree
        A new tree; the input is not modified.

    Raises
    ------
    ConfigError
        Bad ``length``, a start for an unknown animal or no start for an animal, a window
        that runs outside an animal's bins.
    """
    mods = _tree_modalities(tree)
    if isinstance(length, bool) or not isinstance(length, numbers.Integral) or length < 1:
        raise ConfigError(f"length must be a positive integer (bins), got {length!r}")
    if isinstance(start_bins, Mapping):
        unknown = sorted(set(map(str, start_bins)) - set(mods))
        if unknown:
            raise ConfigError(f"start_bins names unknown animals {unknown}; animals are {list(mods)}")
        missing = [a for a in mods if a not in start_bins]
        if missing:
            raise ConfigError(f"start_bins has no start bin for animals {missing}")
        starts = {a: start_bins[a] for a in mods}
    else:
        starts = {a: start_bins for a in mods}
    nodes: dict[str, xr.Dataset] = {"/": tree.to_dataset(inherit=False)}
    for node in tree.subtree:
        if node is tree:
            continue
        ds = node.to_dataset(inherit=False)
        animal = node.name
        if node.parent is tree and animal in mods:
            start = starts[animal]
            n_bins = mods[animal].sizes["time"]
            if isinstance(start, bool) or not isinstance(start, numbers.Integral):
                raise ConfigError(f"start bin of animal {animal!r} must be an integer, got {start!r}")
            if start < 0 or start + length > n_bins:
                raise ConfigError(
                    f"window [{start}, {start + length}) of animal {animal!r} runs outside its {n_bins} bins"
                )
            ds = _cut_window(ds, int(start), int(length))
        nodes[node.relative_to(tree)] = ds
    return xr.DataTree.from_dict(nodes, name=tree.name)


def _cut_window(ds: xr.Dataset, start: int, length: int) -> xr.Dataset:
    counts_attrs = ds[COUNTS].attrs
    bin_size = float(counts_attrs["bin_size"])
    original_time = np.asarray(ds["time"].values, dtype=float)
    cut = ds.isel(time=slice(start, start + length))
    if "time_from_event" in cut.coords:
        from_event = np.asarray(cut["time_from_event"].values, dtype=float)
    else:
        from_event = original_time[start:start + length]
    cut = cut.assign_coords(
        time=bin_size * (np.arange(length) + 0.5),
        time_from_event=("time", from_event),
    )
    for name in cut.data_vars:
        attrs = dict(cut[name].attrs)
        if "window_start" not in attrs:
            continue
        offset = float(attrs.get("window_offset", 0.0)) + float(attrs["window_start"]) + start * bin_size
        attrs.update(
            window_start=0.0,
            window_stop=length * bin_size,
            window_offset=offset,
            window_start_bin=int(attrs.get("window_start_bin", 0)) + start,
        )
        cut[name] = cut[name].assign_attrs(attrs)
    return cut
