"""How trials are paired, split and cut into sub-windows, as one value: :class:`PairingSettings`.

The defaults of :func:`neurovamp.data.pairing.pair_trials` (pair on ``odor``, strategy
``truncate``, split 0.7 / 0.15 / 0.15, ...) are written here and nowhere else, and so are
the checks of their values that need no data (one :class:`~neurovamp.errors.ConfigError`
naming the field and what it must be); ``pair_trials`` builds a ``PairingSettings`` from
its arguments. The settings round-trip through JSON in the layout of ``run.json``'s
``pairing`` section, so that run folders written by neurovamp 0.1 read back::

    {"by": "odor", "strategy": "truncate", "filters": {"correct": [true]}, "conditions": null,
     "split": [0.7, 0.15, 0.15], "seed": 1, "window": 4, "stride": 2, "pair_bins": null}

(``window`` is the sub-window length in bins, :attr:`PairingSettings.subwindow`; 0.1 files
lack ``pair_bins``.) Checks against the data (labels present, a sub-window no longer than a
trial) stay in ``pair_trials``.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurovamp._jsonfile import json_safe
from neurovamp.data.labels import value_list
from neurovamp.errors import ConfigError, DataError

__all__ = ["STRATEGIES", "Settings", "SettingError", "PairingSettings", "PAIRING_DEFAULTS"]

#: Pairing strategies (see :mod:`neurovamp.data.pairing`).
STRATEGIES: tuple[str, ...] = ("truncate", "resample", "index")

#: Field → key in ``run.json``'s ``pairing`` section (where they differ).
_JSON_KEYS = {"subwindow": "window"}
#: Keys a ``pairing`` section must have (the others take their defaults; 0.1 files lack ``pair_bins``).
_REQUIRED = ("by", "strategy", "split", "seed")


class SettingError(ConfigError):
    """A bad setting: a :class:`~neurovamp.errors.ConfigError` that knows the field it names.

    ``from_json`` of the settings classes uses :attr:`field` to name the key in the file.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _label_values(name: str, values: Any, field: str) -> list:
    """One label value or several as a list of JSON scalars (text, numbers, true/false)."""
    listed = value_list(values)
    if not listed or not all(isinstance(v, (str, bool, int, float)) for v in listed):
        raise SettingError(field, f"{name} must be a label value or a list of them (text, numbers, true/false), "
                                 f"got {values!r}")
    return listed


def _fractions(split: Any) -> tuple[float, float, float]:
    try:
        fractions = np.asarray(split, dtype=float)
    except (TypeError, ValueError):
        fractions = np.zeros(0)
    if fractions.shape != (3,) or isinstance(split, (str, bytes)):
        raise SettingError("split", f"split must be 3 finite numbers: three fractions (train, val, test), got {split!r}")
    shown = tuple(float(v) for v in fractions)
    if not np.all(np.isfinite(fractions)) or np.any(fractions < 0):
        raise SettingError("split", f"split fractions must be finite and >= 0, got {shown}")
    if abs(fractions.sum() - 1.0) > 1e-6:
        raise SettingError("split", f"split fractions must sum to 1, got {shown} (sum {fractions.sum():g})")
    if fractions[0] <= 0:
        raise SettingError("split", f"the train fraction must be > 0, got {fractions[0]:g}")
    return shown  # type: ignore[return-value]


class Settings:
    """What every settings class shares (:class:`PairingSettings`, :class:`~neurovamp.io.settings.RecordingSettings`)."""

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (checked like a new one).

        Parameters
        ----------
        **changes
            Field names and their new values.

        Returns
        -------
        The same class of settings.
        """
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @staticmethod
    def _open_section(data: Any, source: str | os.PathLike | None, section: str, required: Sequence[str],
                      what: str) -> str:
        """Check that a JSON section is a mapping holding ``required``; the message prefix naming the file."""
        where = f"{os.fspath(source)}: " if source is not None else ""
        if not isinstance(data, Mapping):
            raise DataError(f"{where}{section} must be a mapping of {what}, got {data!r}")
        for name in required:
            if name not in data:
                raise DataError(f"{where}{section}.{name} is missing (expected a {what[:-1]})")
        return where


@dataclass(frozen=True)
class PairingSettings(Settings):
    """How :func:`~neurovamp.data.pairing.pair_trials` pairs, splits and cuts trials.

    Attributes
    ----------
    by
        Trial label to pair on (also the stratification label of the split).
    strategy
        ``"truncate"``, ``"resample"`` or ``"index"``.
    filters
        ``{label: [allowed values]}`` (``None``: every trial); one value may be given for
        a list of one.
    conditions
        Values of ``by`` to keep, in order (``None``: every value present).
    split
        Fractions ``(train, val, test)``, summing to 1; train > 0.
    seed
        Seed of every random choice (>= 0).
    subwindow
        Sub-window length in bins (``None``: whole trials); ``pair_trials``'s ``window``,
        the CLI's ``--subwindow``, ``run.json``'s ``pairing.window``.
    stride
        Bins between sub-window starts (needs ``subwindow`` unless 1).
    pair_bins
        Pair on this many equal bins of a continuous ``by`` label (``None``: on its values).

    Raises
    ------
    ConfigError
        On construction, for a value of the wrong type or range (one line naming the field).
    """

    by: str = "odor"
    strategy: str = "truncate"
    filters: Mapping[str, list] | None = None
    conditions: tuple | None = None
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    subwindow: int | None = None
    stride: int = 1
    pair_bins: int | None = None

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        if not isinstance(self.by, str):
            raise SettingError("by", f"by must be the name of a trial label, got {self.by!r}")
        if self.strategy not in STRATEGIES:
            raise SettingError("strategy", f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        set_("filters", _filters(self.filters))
        if self.conditions is not None:
            requested = _label_values("conditions", self.conditions, "conditions") if not (
                isinstance(self.conditions, (Sequence, np.ndarray)) and not isinstance(self.conditions, str)
                and len(self.conditions) == 0) else []
            if not requested:
                raise SettingError("conditions", "conditions must not be empty (use None for every condition present)")
            if len(set(map(repr, requested))) != len(requested):
                raise SettingError("conditions", f"conditions contain duplicates: {requested}")
            set_("conditions", tuple(requested))
        set_("split", _fractions(self.split))
        if not _integer(self.seed) or self.seed < 0:
            raise SettingError("seed", f"seed must be a non-negative integer, got {self.seed!r}")
        set_("seed", int(self.seed))
        if self.subwindow is not None:
            if not _integer(self.subwindow) or self.subwindow < 1:
                raise SettingError("subwindow", "window (the sub-window length, CLI --subwindow) must be a positive "
                                               f"integer (bins) or None, got {self.subwindow!r}")
            set_("subwindow", int(self.subwindow))
        if not _integer(self.stride) or self.stride < 1:
            raise SettingError("stride", f"stride must be a positive integer (bins), got {self.stride!r}")
        set_("stride", int(self.stride))
        if self.subwindow is None and self.stride != 1:
            raise SettingError(
                "stride", f"stride (CLI: --stride) is the step between sub-windows and needs subwindow (CLI: "
                          f"--subwindow); got stride={self.stride!r} with whole trials")
        if self.pair_bins is not None:
            if not _integer(self.pair_bins) or self.pair_bins < 2:
                raise SettingError("pair_bins", f"pair_bins (CLI: --pair-bins) must be an integer >= 2, "
                                               f"got {self.pair_bins!r}")
            set_("pair_bins", int(self.pair_bins))

    def pair_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~neurovamp.data.pairing.pair_trials` (every field).

        Returns
        -------
        dict
            ``pair_trials(tree, **settings.pair_kwargs())`` pairs so.
        """
        return {**self.to_json(), "split": self.split}  # the JSON keys are pair_trials's argument names

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        """The settings as ``run.json``'s ``pairing`` section writes them.

        Returns
        -------
        dict
            Keys ``by``, ``strategy``, ``filters``, ``conditions``, ``split``, ``seed``,
            ``window`` (the sub-window length), ``stride``, ``pair_bins``; plain JSON
            values. :meth:`from_json` of it gives equal settings.
        """
        return json_safe({_JSON_KEYS.get(f.name, f.name): getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def from_json(
        cls, data: Any, *, source: str | os.PathLike | None = None, section: str = "pairing"
    ) -> PairingSettings:
        """Read settings from a ``pairing`` section (as :meth:`to_json` and neurovamp 0.1 wrote it).

        Parameters
        ----------
        data
            The section; ``filters``, ``conditions``, ``window``, ``stride`` and
            ``pair_bins`` may be missing (their defaults), ``by``, ``strategy``,
            ``split`` and ``seed`` may not.
        source
            The file, for the messages.
        section
            The section's name in the file, for the messages.

        Returns
        -------
        PairingSettings

        Raises
        ------
        DataError
            One line naming the file and the field (``run.json: pairing.seed must be a
            non-negative integer, got 'x'``).
        """
        where = cls._open_section(data, source, section, _REQUIRED, "pairing settings")
        keys = {_JSON_KEYS.get(f.name, f.name): f.name for f in dataclasses.fields(cls)}
        fields = {field: data[key] for key, field in keys.items() if key in data}
        try:
            return cls(**fields)
        except SettingError as exc:
            key, text = _JSON_KEYS.get(exc.field, exc.field), str(exc)
            raise DataError(f"{where}{section}." + (text if text.startswith(key) else f"{key}: {text}")) from None


def _filters(filters: Any) -> dict[str, list] | None:
    if filters is None:
        return None
    if not isinstance(filters, Mapping):
        raise SettingError("filters", f"filters must be a mapping label -> allowed value(s), e.g. {{'correct': [True]}}, "
                                     f"got {filters!r}")
    out: dict[str, list] = {}
    for label, allowed in filters.items():
        if not isinstance(label, str):
            raise SettingError("filters", f"filters: label names must be text, got {label!r}")
        out[label] = _label_values(f"filters[{label!r}]", allowed, "filters")
    return out or None


#: The defaults, as one value (``PairingSettings()``).
PAIRING_DEFAULTS = PairingSettings()
