"""Trial labels as users name them: ``COL=VALUE`` options, text read as a label's type, matching.

One copy of three rules every command and analysis that selects trials by label uses:

- **Parsing** (:func:`parse_assignments`): ``COL=VALUE`` and ``COL=V1,V2`` option strings
  become ``{column: [text, ...]}``; repeating a column adds values (``odor=A odor=B``).
- **Typing** (:func:`label_kind`, :func:`coerce_label_value`, :func:`coerce_label_values`):
  option text becomes a value of the label's type (``"true"`` → ``True`` for a flag,
  ``"3"`` → ``3`` for an integer label, ``"A"`` stays text).
- **Matching** (:func:`matches`, :func:`equals`, :func:`sorted_values`,
  :func:`describe_values`): which trials hold one of the allowed values, with values that
  cannot compare (text against numbers) matching nothing instead of raising.

Imports: numpy at the top (the settings classes and the command line use this module);
the multi-animal set (:mod:`neurovamp.data.dataset`, xarray) only in :func:`coerce_label_values`.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from neurovamp.errors import ConfigError, DataError, NeurovampError

__all__ = [
    "TRUE_TEXTS",
    "FALSE_TEXTS",
    "parse_assignments",
    "labels_to_load",
    "plain",
    "value_list",
    "label_kind",
    "coerce_label_value",
    "coerce_label_values",
    "equals",
    "matches",
    "sorted_values",
    "describe_values",
]

#: Text read as ``True`` / ``False`` for a true/false label (compared in lower case).
TRUE_TEXTS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_TEXTS = frozenset({"false", "f", "no", "n", "0"})

#: Label values listed at most by :func:`describe_values`.
_FEW = 8


# --------------------------------------------------------------------------- parsing
def parse_assignments(
    items: Iterable[str] | None, *, message: str = "{item!r} must look like COL=VALUE (e.g. odor=A,B)"
) -> dict[str, list[str]]:
    """Parse ``COL=VALUE[,VALUE...]`` option strings into ``{column: [value, ...]}`` (text).

    Parameters
    ----------
    items
        Option strings (``None``: none). Repeating a column adds values; ``COL=V1,V2`` gives
        two values; a value given twice is kept once. Spaces around names and values are
        dropped.
    message
        The error text for a bad item, formatted with ``item`` (the option string), e.g.
        ``"--condition {item!r} must look like COL=VALUE (e.g. odor=E)"``.

    Returns
    -------
    dict
        Column → values as text, in the order given (type them with
        :func:`coerce_label_values`).

    Raises
    ------
    ConfigError
        For an item without ``=``, or with an empty column or no value.
    """
    out: dict[str, list[str]] = {}
    for item in items or ():
        column, sep, value = str(item).partition("=")
        column = column.strip()
        values = [v.strip() for v in value.split(",") if v.strip()]
        if not sep or not column or not values:
            raise ConfigError(message.format(item=item))
        allowed = out.setdefault(column, [])
        allowed.extend(v for v in dict.fromkeys(values) if v not in allowed)
    return out


def labels_to_load(
    labels: str | Sequence[str] | None, pair_by: str, filter_labels: Iterable[str] = ()
) -> list[str] | None:
    """Trial labels a fit loads: the chosen ones plus those pairing and filtering need.

    Parameters
    ----------
    labels
        Labels asked for; ``None`` loads every trials column.
    pair_by
        The label trials are paired on.
    filter_labels
        Labels the filters select on.

    Returns
    -------
    list of str or None
        ``labels`` + ``pair_by`` + ``filter_labels`` without repeats (``None`` when
        ``labels`` is ``None``).

    Raises
    ------
    ConfigError
        If a label is not text.
    """
    if labels is None:
        return None
    wanted = [labels] if isinstance(labels, str) else list(labels)
    bad = [label for label in wanted if not isinstance(label, str)]
    if bad:
        raise ConfigError(f"labels must be trials column names (text), got {bad!r}")
    return list(dict.fromkeys([*wanted, pair_by, *filter_labels]))


# --------------------------------------------------------------------------- values
def plain(value: Any) -> Any:
    """A numpy scalar as its Python value (anything else unchanged)."""
    return value.item() if isinstance(value, np.generic) else value


def value_list(allowed: Any) -> list:
    """Allowed value(s) as a list of Python values: one value becomes a one-item list.

    Parameters
    ----------
    allowed
        One value, a list / tuple / set of values, or an array.

    Returns
    -------
    list
    """
    if isinstance(allowed, np.ndarray) or type(allowed).__name__ == "DataArray":  # xarray's, without importing it
        return np.asarray(allowed).ravel().tolist()
    if isinstance(allowed, (list, tuple, set, frozenset)):
        return [plain(v) for v in allowed]
    return [plain(allowed)]


def label_kind(values: np.ndarray) -> str:
    """The numpy dtype kind of a label's values (``"b"``, ``"i"``, ``"u"``, ``"f"``, ``"U"``, ...).

    An object array is judged by its first value (``"U"`` for text and anything else).

    Parameters
    ----------
    values
        The label's values.

    Returns
    -------
    str
    """
    values = np.asarray(values)
    kind = values.dtype.kind
    if kind == "O" and values.size:
        first = values.ravel()[0]
        if isinstance(first, (bool, np.bool_)):
            return "b"
        if isinstance(first, (numbers.Integral, np.integer)):
            return "i"
        if isinstance(first, (numbers.Real, np.floating)):
            return "f"
        return "U"
    return kind


def coerce_label_value(
    value: Any, kind: str, label: str, *, error: type[NeurovampError] = ConfigError
) -> Any:
    """Read ``value`` (possibly option text) as a value of a label of dtype kind ``kind``.

    Parameters
    ----------
    value
        Text as typed (``"true"``, ``"3"``, ``"A"``; spaces around it are ignored) or a
        value that is already typed (returned as its Python value).
    kind
        :func:`label_kind` of the label's values.
    label
        The label's name, for the message.
    error
        The error class raised for text that cannot be read as the label's type
        (:class:`~neurovamp.errors.ConfigError` for options, ``DataError`` where the
        value is checked against data).

    Returns
    -------
    bool, int, float or str

    Raises
    ------
    NeurovampError
        Of class ``error``, naming the label and the text.
    """
    value = plain(value)
    if not isinstance(value, str):
        return value
    text = value.strip()
    if kind == "b":
        if text.lower() in TRUE_TEXTS:
            return True
        if text.lower() in FALSE_TEXTS:
            return False
        raise error(f"label {label!r} is true/false; cannot read {value!r} as a boolean")
    if kind in ("i", "u"):
        try:
            return int(text)
        except ValueError:
            raise error(f"label {label!r} holds integers; cannot read {value!r} as one") from None
    if kind == "f":
        try:
            return float(text)
        except ValueError:
            raise error(f"label {label!r} holds numbers; cannot read {value!r} as one") from None
    return value


def coerce_label_values(tree: Any, label: str, texts: Sequence[Any]) -> list:
    """Convert option text to the type of a trial label of a multi-animal set.

    The type is that of the label in the first animal that has it.

    Parameters
    ----------
    tree
        The multi-animal set (``xarray.DataTree``) the label lives in.
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
        If no animal has the label (the message lists the labels there are).
    ConfigError
        If a text cannot be read as the label's type.
    """
    from neurovamp.data.dataset import animals as tree_animals
    from neurovamp.data.dataset import get_modality
    from neurovamp.data.modality import label_names

    for animal in tree_animals(tree):
        da = get_modality(tree, animal)
        if label in label_names(da):
            kind = label_kind(np.asarray(da[label].values))
            return [coerce_label_value(str(text), kind, label) for text in texts]
    available = sorted({n for a in tree_animals(tree) for n in label_names(get_modality(tree, a))})
    raise DataError(f"no animal has the trial label {label!r}; available labels: {available}")


# --------------------------------------------------------------------------- matching
def equals(values: np.ndarray, value: Any) -> np.ndarray:
    """Elementwise ``values == value``, all False where the types cannot compare.

    Parameters
    ----------
    values
        Label values (any shape).
    value
        One value.

    Returns
    -------
    numpy.ndarray
        Boolean, the shape of ``values``.
    """
    values = np.asarray(values)
    result = values == value
    if not isinstance(result, np.ndarray) or result.shape != values.shape:
        return np.zeros(values.shape, dtype=bool)
    return result.astype(bool)


def matches(values: np.ndarray, allowed: Any, *, ignore_case: bool = False) -> np.ndarray:
    """Which values equal one of the allowed ones.

    Parameters
    ----------
    values
        Label (or unit column) values.
    allowed
        One value or several (see :func:`value_list`).
    ignore_case
        Compare as text without regard to case (``"ca1"`` matches ``"CA1"``, ``"1"``
        matches ``1``), as unit selection does.

    Returns
    -------
    numpy.ndarray
        Boolean, the shape of ``values``.
    """
    values = np.asarray(values)
    wanted = value_list(allowed)
    if ignore_case:
        text = np.char.lower(values.astype(str))
        return np.isin(text, list({str(w).lower() for w in wanted}))
    keep = np.zeros(values.shape, dtype=bool)
    for value in wanted:
        keep |= equals(values, value)
    return keep


def sorted_values(values: Any) -> list:
    """The distinct values (Python scalars), sorted where they compare, else in order of appearance.

    Parameters
    ----------
    values
        Label values (a list or an array of any shape).

    Returns
    -------
    list
    """
    items = np.asarray(values).ravel().tolist() if isinstance(values, np.ndarray) else list(values)
    unique = list(dict.fromkeys(plain(v) for v in items))
    try:
        return sorted(unique)
    except TypeError:
        return unique


def describe_values(values: Any, limit: int = _FEW) -> str:
    """The distinct values of a label as text for a message, at most ``limit`` of them.

    Parameters
    ----------
    values
        Label values.
    limit
        How many to list; more are summarised as ``..., (N values)``.

    Returns
    -------
    str
        ``"A, B, C"``, ``"none"`` for no values.
    """
    unique = sorted_values(np.asarray(values))
    if not unique:
        return "none"
    text = ", ".join(map(str, unique[:limit]))
    return text if len(unique) <= limit else f"{text}, ... ({len(unique)} values)"
