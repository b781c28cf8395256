"""Refuse inputs that cannot make a valid fit, before training, naming the animal and the cause.

:func:`check_pairing` is called once by :func:`neurovamp.data.pairing.pair_trials`, after
pairing, with the animals' modalities as loaded and as kept; it raises
:class:`~neurovamp.errors.DataError` when

* the pairing label has a different type across animals (text in one, numbers in another:
  their values never compare equal, so that animal would never be paired);
* a trial's pairing label is missing (NaN or None: each would be a condition of its own);
* an animal has no spike in any window of any trial (often an event column on another
  clock than the spike times);
* an animal has fewer trials than the split needs (one per non-empty split);
* a split asked for (fraction > 0) is empty, or no sample holds two or more animals
  (nothing to learn across animals); a pairing label that looks continuous gets the
  advice to bin it (CLI: ``--pair-bins``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from neurovamp.errors import DataError

__all__ = ["check_pairing", "check_decoding_labels", "label_kind", "missing_values"]

#: More distinct values than this (and more than half the trials) make a label look continuous.
_CONTINUOUS_VALUES = 20


def label_kind(values: np.ndarray) -> str:
    """``"bool"``, ``"number"``, ``"text"`` or ``"mixed"``: how a label's values compare.

    Parameters
    ----------
    values
        A trial label's values.

    Returns
    -------
    str
        The kind (missing values, NaN or None, are ignored).
    """
    values = np.asarray(values)
    if values.dtype.kind == "b":
        return "bool"
    if values.dtype.kind in "iuf":
        return "number"
    if values.dtype.kind in "US":
        return "text"
    kinds = set()
    for value in values.ravel().tolist():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        kinds.add("bool" if isinstance(value, (bool, np.bool_)) else "number"
                  if isinstance(value, (int, float, np.integer, np.floating)) else "text")
    return kinds.pop() if len(kinds) == 1 else "mixed" if kinds else "number"


def missing_values(values: np.ndarray) -> np.ndarray:
    """Where a label has no value (NaN or None), as a boolean array of its shape."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind == "O":
        return np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in values.ravel()],
                        dtype=bool).reshape(values.shape)
    return np.zeros(values.shape, dtype=bool)


def _continuous_hint(kept: Mapping[str, xr.DataArray], by: str) -> str:
    values = [np.asarray(da[by].values) for da in kept.values()]
    if not values or any(label_kind(v) != "number" for v in values):
        return ""
    pooled = np.concatenate([v.astype(float) for v in values])
    distinct = np.unique(pooled[~np.isnan(pooled)]).size
    if distinct > _CONTINUOUS_VALUES and distinct > pooled.size / 2:
        return (f"; {by!r} looks continuous ({distinct} distinct values): pair on ranges of it instead "
                f"(bin it, CLI: --pair-bins) or on a label with a few values")
    return ""


def check_pairing(
    mods: Mapping[str, xr.DataArray],
    kept: Mapping[str, xr.DataArray],
    *,
    by: str,
    fractions: Sequence[float],
    pairs: Mapping[str, np.ndarray],
) -> None:
    """Raise unless the pairing can make a valid fit (see the module docstring).

    Parameters
    ----------
    mods
        Each animal's modality as loaded (before filters).
    kept
        Each animal's trials that were kept (after filters and conditions).
    by
        The pairing label.
    fractions
        ``(train, val, test)`` split fractions.
    pairs
        Split name to pair rows (trial index per animal, ``-1`` where missing).

    Raises
    ------
    DataError
        Naming the animal (or split) and the cause.
    """
    kinds = {animal: label_kind(da[by].values) for animal, da in mods.items()}
    for animal, kind in kinds.items():
        if kind == "mixed":
            raise DataError(f"animal {animal!r}: trial label {by!r} mixes text and numbers; store it with one type")
    if len(set(kinds.values())) > 1:
        groups: dict[str, list[str]] = {}
        for animal, kind in kinds.items():
            groups.setdefault(kind, []).append(animal)
        described = "; ".join(f"{kind} in {', '.join(animals)}" for kind, animals in groups.items())
        raise DataError(
            f"trial label {by!r} has different types across animals ({described}): values of different types "
            "never match, so those animals would never be paired; store the label with the same type in every file"
        )
    for animal, da in mods.items():
        missing = int(missing_values(da[by].values).sum())
        if missing:
            raise DataError(
                f"animal {animal!r}: {missing} of {da.sizes['trial']} trials have no {by!r} value (NaN or empty), "
                "and each would become a condition of its own; give them a value or leave those trials out"
            )
    for animal, da in mods.items():
        if not np.asarray(da.values).any():
            event = da.attrs.get("event")
            where = f" around {event!r}" if event else ""
            raise DataError(
                f"animal {animal!r} has no spike in any window{where} of any trial; is the event column on "
                "another clock than the spike times, or the window outside the recording?"
            )
    needed = int(sum(1 for f in fractions if f > 0))
    for animal, da in kept.items():
        if da.sizes["trial"] < needed:
            raise DataError(
                f"animal {animal!r} has {da.sizes['trial']} trial(s) to pair; a split into {needed} non-empty "
                "parts (train/val/test) needs at least one trial in each"
            )
    hint = _continuous_hint(kept, by)
    for name, fraction in zip(("train", "val", "test"), fractions):
        block = np.asarray(pairs.get(name, np.empty((0, len(kept)))))
        if fraction > 0 and block.shape[0] == 0:
            raise DataError(
                f"the {name} split is empty although its fraction is {fraction:g}: too few trials share a "
                f"{by!r} value across animals{hint}"
            )
    if len(kept) >= 2:
        together = sum(int(((np.asarray(b) >= 0).sum(axis=1) >= 2).sum()) for b in pairs.values() if np.size(b))
        if together == 0:
            raise DataError(
                f"no sample pairs two or more animals: no {by!r} value is shared by the animals' kept trials, "
                f"so nothing is learnt across animals{hint}"
            )


def check_decoding_labels(modalities: Mapping[str, xr.DataArray], labels: Sequence[str]) -> None:
    """Refuse decoding a label that some kept trials lack (NaN or None would silently give no score).

    Parameters
    ----------
    modalities
        Each animal's kept trials (``PairedData.modalities``).
    labels
        Labels to decode.

    Raises
    ------
    DataError
        Naming the animal, the label and how many trials lack it.
    """
    for label in labels:
        for animal, da in modalities.items():
            if label not in da.coords:
                continue
            missing = int(missing_values(da[label].values).sum())
            if missing:
                raise DataError(
                    f"animal {animal!r}: {missing} of {da.sizes['trial']} trials have no {label!r} value (NaN or "
                    f"empty); decoding {label!r} needs a value for every trial: choose another --label"
                )
