"""How recordings are read and binned, as one value: :class:`RecordingSettings`.

The defaults of every recording option (event, window, bin size, ...) are written here and
nowhere else: :func:`neurovamp.io.nwb.read_nwb`, :func:`~neurovamp.io.nwb.read_nwb_dataset`,
:func:`neurovamp.io.recordings.load_recordings` and the command line take theirs from
:data:`RECORDING_DEFAULTS`. The settings check their own values (one
:class:`~neurovamp.errors.ConfigError` naming the field and what it must be) and round-trip
through JSON in the layout of ``run.json``'s ``data`` section, so that run folders written
by neurovamp 0.1 read back::

    {"event": "odor_onset", "window": [0.0, 0.4], "bin_size": 0.05, "labels": ["odor"],
     "allow_silent_units": false, "drop_missing_events": false,
     "recording": {"trials": "encoding_table"}}

(``paths`` sits beside these fields in ``run.json`` and is not a setting; ``recording``
holds only the options that differ from their defaults, and is absent in 0.1 files.)

Checks that need the file (a window of whole bins, the columns a file has) stay with the
readers, which name the file.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurovamp._fields import check_fields
from neurovamp.data.settings import SettingError, Settings
from neurovamp.errors import ConfigError, DataError

__all__ = ["RecordingSettings", "RECORDING_DEFAULTS"]

#: Fields written at the top level of ``run.json``'s ``data`` section (the rest under ``recording``).
_TOP_LEVEL = ("event", "window", "bin_size", "labels", "allow_silent_units", "drop_missing_events")


def _is_flag(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _text_or_none(name: str, value: Any, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise SettingError(name, f"{name} must be null or {what}, got {value!r}")
    return value


def _names(name: str, value: Any, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
        raise SettingError(name, f"{name} must be {what}, got {value!r}")
    return tuple(names)


@dataclass(frozen=True)
class RecordingSettings(Settings):
    """How NWB files are binned into modalities (and which labels, units and behaviour are read).

    Attributes
    ----------
    event
        Trials column of event times the bins are aligned to.
    window
        ``(start, stop)`` of the binned window relative to the event, seconds.
    bin_size
        Bin width, seconds.
    labels
        Trials columns kept as trial labels (``None``: every label column).
    allow_silent_units
        Keep units without a spike instead of raising.
    drop_missing_events
        Leave out trials whose event time is NaN instead of raising.
    trials
        Intervals table holding the trials (``None``: ``"trials"``, or the whole session
        with ``windows``).
    event_relative_to
        Trials column the ``event`` values count from.
    units
        Unit selection ``{column: value or values}`` (text compared without regard to case).
    behavior
        Behaviour series read beside the counts.
    windows
        Cut the session into consecutive windows of this many seconds instead of aligning
        to ``event``.
    drop_uncovered
        Leave out trials a behaviour series does not cover instead of raising.

    See :func:`neurovamp.io.nwb.read_nwb` and :func:`~neurovamp.io.nwb.read_nwb_dataset`
    for what each option does.

    Raises
    ------
    ConfigError
        On construction, for a value of the wrong type or range (one line naming the field).
    """

    event: str = "start_time"
    window: tuple[float, float] = (0.0, 0.5)
    bin_size: float = 0.01
    labels: tuple[str, ...] | None = None
    allow_silent_units: bool = False
    drop_missing_events: bool = False
    trials: str | None = None
    event_relative_to: str | None = None
    units: Mapping[str, Any] | None = None
    behavior: tuple[str, ...] | None = None
    windows: float | None = None
    drop_uncovered: bool = False

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        if not isinstance(self.event, str) or not self.event:
            raise SettingError("event", f"event must be the name of a trials column, got {self.event!r}")
        set_("window", tuple(_finite_numbers("window", self.window, 2)))
        bin_size = _finite_numbers("bin_size", [self.bin_size], 1)[0]
        if bin_size <= 0:
            raise SettingError("bin_size", f"bin_size must be a positive number of seconds, got {self.bin_size!r}")
        set_("bin_size", bin_size)
        if self.labels is not None:
            labels = [self.labels] if isinstance(self.labels, str) else self.labels
            bad = [x for x in labels if not isinstance(x, str)] if isinstance(labels, Sequence) else [labels]
            if bad:
                raise SettingError("labels", f"labels must be trials column names (text), got {bad!r}")
            set_("labels", tuple(labels))
        for name in ("allow_silent_units", "drop_missing_events", "drop_uncovered"):
            if not _is_flag(getattr(self, name)):
                raise SettingError(name, f"{name} must be true or false, got {getattr(self, name)!r}")
            set_(name, bool(getattr(self, name)))
        _text_or_none("trials", self.trials, "the name of an intervals table")
        _text_or_none("event_relative_to", self.event_relative_to, "a trials column name")
        set_("units", _unit_selection(self.units))
        set_("behavior", _names("behavior", self.behavior, "null or names of behaviour series"))
        if self.windows is not None:
            windows = _finite_numbers("windows", [self.windows], 1)[0]
            if windows <= 0:
                raise SettingError("windows", f"windows must be null or a positive number of seconds, "
                                             f"got {self.windows!r}")
            set_("windows", windows)

    # ------------------------------------------------------------------ use
    def load_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`neurovamp.io.recordings.load_recordings` (every field).

        Returns
        -------
        dict
            ``load_recordings(paths, **settings.load_kwargs())`` reads the recordings so.
        """
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["labels"] = None if self.labels is None else list(self.labels)
        out["behavior"] = None if self.behavior is None else list(self.behavior)
        out["units"] = None if self.units is None else {k: _copy(v) for k, v in self.units.items()}
        return out

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None = None, **fields: Any) -> RecordingSettings:
        """Settings from keyword fields plus a mapping of further options (e.g. the CLI's ``recording``).

        Parameters
        ----------
        options
            More fields by name (``trials``, ``units``, ...); ``None``: none.
        **fields
            Fields by name.

        Returns
        -------
        RecordingSettings

        Raises
        ------
        ConfigError
            For an option that is not a field (named, with the fields there are), or a bad value.
        """
        if options is not None and not isinstance(options, Mapping):
            raise ConfigError(f"recording must be a mapping of recording options, got {options!r}")
        merged = {**fields, **dict(options or {})}
        check_fields(cls, merged, "recording", kind="option")
        return cls(**merged)

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        """The settings as ``run.json``'s ``data`` section writes them (without ``paths``).

        Returns
        -------
        dict
            Plain JSON values; ``recording`` holds the options that differ from their
            defaults (``{}`` when none do). :meth:`from_json` of it gives equal settings.
        """
        values = self.load_kwargs()
        out: dict[str, Any] = {name: values[name] for name in _TOP_LEVEL}
        out["window"] = list(self.window)
        out["recording"] = {
            f.name: values[f.name] for f in dataclasses.fields(self)
            if f.name not in _TOP_LEVEL and getattr(self, f.name) != f.default
        }
        return out

    @classmethod
    def from_json(
        cls, data: Any, *, source: str | os.PathLike | None = None, section: str = "data"
    ) -> RecordingSettings:
        """Read settings from a ``data`` section (as :meth:`to_json` and neurovamp 0.1 wrote it).

        Parameters
        ----------
        data
            The section (``paths`` and other keys that are not settings are ignored);
            ``allow_silent_units``, ``drop_missing_events`` and ``recording`` may be
            missing (files of 0.1), ``event``, ``window`` and ``bin_size`` may not.
        source
            The file, for the messages.
        section
            The section's name in the file, for the messages.

        Returns
        -------
        RecordingSettings

        Raises
        ------
        DataError
            One line naming the file and the field (``run.json: data.window must be 2
            finite numbers, got [0.0]``).
        """
        where = cls._open_section(data, source, section, ("event", "window", "bin_size"), "recording settings")
        recording = data.get("recording")
        recording = {} if recording is None else recording
        if not isinstance(recording, Mapping):
            raise DataError(f"{where}{section}.recording must be a mapping of recording options, got {recording!r}")
        extra = {f.name for f in dataclasses.fields(cls)} - set(_TOP_LEVEL)
        unknown = sorted(set(recording) - extra)
        if unknown:
            raise DataError(f"{where}{section}.recording has unknown option(s) {unknown}; options: {sorted(extra)}")
        fields = {name: data[name] for name in _TOP_LEVEL if name in data}
        try:
            return cls(**fields, **dict(recording))
        except SettingError as exc:
            place = f"{section}.{'recording.' if exc.field in extra else ''}"
            raise DataError(f"{where}{place}{exc}") from None


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _finite_numbers(name: str, values: Any, n: int) -> list[float]:
    try:
        numbers_ = [] if isinstance(values, (str, bytes)) else [float(v) for v in values]
    except (TypeError, ValueError):
        numbers_ = []
    if len(numbers_) != n or not all(math.isfinite(v) for v in numbers_) or any(_is_flag(v) for v in values):
        shown = values[0] if n == 1 else values  # one number is passed as [value]
        what = f"{n} finite numbers" if n > 1 else "a finite number"
        raise SettingError(name, f"{name} must be {what}, got {shown!r}")
    return numbers_


def _unit_selection(units: Any) -> dict[str, Any] | None:
    """``{column: value or values}`` with text column names and text/number/flag values (lists as lists)."""
    if units is None:
        return None
    if not isinstance(units, Mapping):
        raise SettingError("units", f"units must be null or a mapping unit column -> value(s), e.g. "
                                   f"{{'location': 'CA1'}}, got {units!r}")
    out: dict[str, Any] = {}
    for column, wanted in units.items():
        values = list(wanted) if isinstance(wanted, (list, tuple)) else [wanted]
        ok = isinstance(column, str) and values and all(
            isinstance(v, (str, numbers.Number, np.generic)) for v in values)
        if not ok:
            raise SettingError("units", f"units must map unit column names to value(s) (text, numbers), "
                                       f"got {column!r}: {wanted!r}")
        out[column] = list(wanted) if isinstance(wanted, (list, tuple)) else wanted
    return out


#: The defaults, as one value (``RecordingSettings()``).
RECORDING_DEFAULTS = RecordingSettings()
