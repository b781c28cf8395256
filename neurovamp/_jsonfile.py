"""JSON files neurovamp writes and reads: one numpy → JSON rule, one format/version check.

Every versioned file neurovamp writes (``run.json``, a saved model's ``config.json``,
``metrics.json``, ``demo.json``, the paper run's files, training checkpoints) starts
with ``"format"`` (what the file is, e.g. ``"neurovamp-run"``) and ``"version"`` (an
integer, raised when the layout changes incompatibly). This module holds the one copy
of the rules those files share:

- :func:`json_safe`: numpy arrays and scalars → Python, NaN/±inf → ``null``, tuples →
  lists, paths → text, mapping keys → text; anything else is refused naming the field
  (or passed to ``default``, as :func:`json.dumps` does).
- :func:`write_json` / :func:`write_versioned`: :func:`json_safe`, strict JSON
  (``allow_nan=False``), written atomically, never replacing a file unless asked.
- :func:`read_json` / :func:`read_versioned` / :func:`check_versioned`: one-line
  :class:`~neurovamp.errors.DataError` naming the file and the field at fault.

It sits on the lowest floor (beside :mod:`neurovamp.errors` and :mod:`neurovamp._files`)
so that every floor may use it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neurovamp._files import atomic_output
from neurovamp.errors import ConfigError, DataError

__all__ = ["json_safe", "read_json", "write_json", "check_versioned", "read_versioned", "write_versioned"]


def json_safe(value: Any, *, default: Callable[[Any], Any] | None = None, where: str = "value",
              allow_nan: bool = False) -> Any:
    """A copy of ``value`` that :func:`json.dumps` writes with ``allow_nan=False``.

    Parameters
    ----------
    value
        Nested mappings, lists, tuples, numpy arrays and scalars, text, numbers,
        booleans, ``None`` and paths.
    default
        Called with any other object; its result is converted in turn (``str`` writes
        such objects as text). ``None``: such objects are refused.
    where
        Name of ``value`` in error messages (fields below it are appended:
        ``settings.filters.odor[0]``).
    allow_nan
        Keep NaN and ±inf (for files written with ``json.dumps(allow_nan=True)``, such as a
        saved model's ``config.json``, whose NaN unit coordinates must read back as NaN).

    Returns
    -------
    Any
        Plain Python data: dicts with text keys, lists, text, int, float (finite),
        bool and ``None``. NaN and ±inf become ``None``; numpy scalars their Python
        value; arrays nested lists; mapping keys text (``str`` of the key's Python
        value, so ``np.True_`` → ``"True"``); paths text.

    Raises
    ------
    ConfigError
        For an object of another type (without ``default``), naming the field.
    """
    if isinstance(value, Mapping):
        return {str(json_safe(k, default=str, where=where)):
                json_safe(v, default=default, where=f"{where}.{k}", allow_nan=allow_nan) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [json_safe(v, default=default, where=f"{where}[{i}]", allow_nan=allow_nan) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value) and not allow_nan:
        return None
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if default is not None:
        return json_safe(default(value), where=where, allow_nan=allow_nan)
    raise ConfigError(
        f"{where}: cannot be written as JSON (a {type(value).__name__}); "
        "expected text, numbers, true/false, null, lists or mappings of them"
    )


def write_json(path: str | os.PathLike, data: Any, *, overwrite: bool = False, indent: int | None = 2,
               default: Callable[[Any], Any] | None = None, allow_nan: bool = False) -> Path:
    """Write ``json_safe(data)`` as strict JSON, atomically.

    Parameters
    ----------
    path
        The file.
    data
        What to write (see :func:`json_safe`).
    overwrite
        Replace an existing file.
    indent
        Indentation of the JSON text (``None``: one line).
    default, allow_nan
        As for :func:`json_safe` (``allow_nan`` writes NaN as ``NaN``, which
        :func:`read_json` reads back).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    ConfigError
        If a field cannot be written as JSON (names the file and the field).
    """
    path = Path(path)
    safe = json_safe(data, default=default, where=str(path), allow_nan=allow_nan)
    text = json.dumps(safe, indent=indent, allow_nan=allow_nan) + "\n"
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def read_json(path: str | os.PathLike, *, what: str = "JSON file") -> Any:
    """Read a JSON file, with one-line errors naming it.

    Parameters
    ----------
    path
        The file.
    what
        What the file should be, for the messages (e.g. ``"neurovamp run description"``).

    Returns
    -------
    Any
        The parsed content.

    Raises
    ------
    DataError
        If the file is missing or not JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found (expected a {what})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc}); expected a {what}") from None


def _versions(versions: int | Collection[int]) -> list[int]:
    return [versions] if isinstance(versions, int) else sorted(versions)


def check_versioned(data: Any, path: str | os.PathLike, format: str, versions: int | Collection[int],
                    *, what: str | None = None) -> dict[str, Any]:
    """Check the ``format`` and ``version`` fields of a file's loaded content.

    Parameters
    ----------
    data
        The content (parsed JSON, or a dict from ``torch.load(weights_only=True)``).
    path
        The file, for the messages.
    format
        The expected ``"format"`` value, e.g. ``"neurovamp-run"``.
    versions
        The version (or versions) this code reads.
    what
        What the file is, for the messages (default: ``format``).

    Returns
    -------
    dict
        ``data``.

    Raises
    ------
    DataError
        If ``data`` is not a mapping, its ``format`` is missing or another, or its
        ``version`` is missing or not one of ``versions`` (one line naming the file,
        the field, the value found and what was expected).
    """
    what = what or format
    readable = _versions(versions)
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a {what} (expected a JSON object with format {format!r}, "
                        f"got {type(data).__name__})")
    if "format" not in data:
        raise DataError(f"{path}: not a {what} (field 'format' missing; expected {format!r})")
    if data["format"] != format:
        raise DataError(f"{path}: not a {what} (field 'format' is {data['format']!r}; expected {format!r})")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise DataError(f"{path}: {what} without a valid field 'version' (got {version!r}; "
                        f"this neurovamp reads version {', '.join(map(str, readable))})")
    if version not in readable:
        newer = version > max(readable)
        raise DataError(
            f"{path}: {what} version {version} is not supported (this neurovamp reads version "
            f"{', '.join(map(str, readable))}" + ("; the file was written by a newer neurovamp, upgrade it)"
                                                  if newer else ")")
        )
    return data


def read_versioned(path: str | os.PathLike, format: str, versions: int | Collection[int],
                   *, what: str | None = None) -> dict[str, Any]:
    """Read a versioned JSON file and check its ``format`` and ``version``.

    Parameters
    ----------
    path
        The file.
    format, versions, what
        As for :func:`check_versioned`.

    Returns
    -------
    dict
        The content.

    Raises
    ------
    DataError
        If the file is missing, not JSON, or of another format or version.
    """
    return check_versioned(read_json(path, what=what or format), path, format, versions, what=what)


def write_versioned(path: str | os.PathLike, data: Mapping[str, Any], format: str, version: int, *,
                    overwrite: bool = False, indent: int | None = 2, allow_nan: bool = False) -> Path:
    """Write ``{"format": format, "version": version, **data}`` as strict JSON, atomically.

    Parameters
    ----------
    path
        The file.
    data
        The content besides ``format`` and ``version`` (see :func:`json_safe`); fields
        of those names must agree with them.
    format, version
        The file's format name and version.
    overwrite
        Replace an existing file.
    indent
        Indentation of the JSON text.
    allow_nan
        Keep NaN and ±inf (see :func:`write_json`).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If ``data`` holds another ``format`` or ``version`` (a bug of the caller).
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false.
    ConfigError
        If a field cannot be written as JSON.
    """
    for key, value in (("format", format), ("version", version)):
        if key in data and data[key] != value:
            raise ValueError(f"{path}: data has {key} {data[key]!r}, written as {value!r}")
    content = {"format": format, "version": version, **{k: v for k, v in data.items() if k not in ("format", "version")}}
    return write_json(path, content, overwrite=overwrite, indent=indent, allow_nan=allow_nan)
