"""One output folder of a pipeline command (``fit``, ``demo``, ``paper``): :class:`RunFolder`.

Every command that writes a folder follows the same rules, written once here:

- a **marker file** (``run.json``, ``demo.json``, ``paper.json``) says what the folder is
  (its ``"format"``/``"version"``), with which settings it was made and its ``"status"``
  (``"running"`` while the command works, ``"complete"`` at the end);
- a **resume** (the same command on the same folder) is refused when the settings differ,
  in one line naming each differing setting; a finished folder is refused unless asked to
  overwrite;
- **overwrite** removes only what neurovamp recorded in the folder's manifest
  (:mod:`neurovamp._outputs`), never a user's file or sub-folder; folders written before
  manifests name their fixed outputs (``legacy``) instead;
- **a refused command changes nothing on disk**: every check (the target is a folder, it is
  this command's folder, the settings match, nothing foreign would be replaced, the folder
  is writable) comes before the first write.

A command composes these steps: ``check_*`` first, then :meth:`RunFolder.clear` (under
overwrite), :meth:`RunFolder.start`, the work (each output recorded with
:meth:`RunFolder.record`), and :meth:`RunFolder.finish`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from neurovamp._jsonfile import read_json, write_json
from neurovamp._outputs import check_can_write, check_no_foreign, record_outputs, remove_outputs
from neurovamp.errors import DataError, NeurovampError, OutputExistsError

__all__ = ["RUNNING", "COMPLETE", "RunFolder", "changed_settings", "model_defaults"]

#: Status of a folder whose command is working (or was interrupted).
RUNNING = "running"
#: Status of a folder whose command finished.
COMPLETE = "complete"


def model_defaults() -> dict[str, Any]:
    """neurovamp's default model settings as this version has them (``ModelConfig().to_dict()``).

    Folders whose fits use the defaults (demo, the paper's ``"neurovamp"`` preset) record
    them in their marker, so that a resume under other defaults is refused instead of
    mixing two models.
    """
    from neurovamp.models.config import ModelConfig

    return ModelConfig().to_dict()


def changed_settings(old: Mapping[str, Any], new: Mapping[str, Any], *, prefix: str = "") -> list[str]:
    """The names of the settings whose values differ between two settings mappings.

    Parameters
    ----------
    old, new
        Settings (e.g. the marker file's and this call's), compared key by key.
    prefix
        Put before each name (e.g. ``"model."``).

    Returns
    -------
    list of str
        Sorted names of the keys present in either mapping whose values differ (a key
        missing on one side counts as ``None``).
    """
    return sorted(f"{prefix}{key}" for key in set(old) | set(new) if old.get(key) != new.get(key))


class RunFolder:
    """An output folder of one command: its marker file, status, manifest and checks.

    Parameters
    ----------
    path
        The folder (need not exist yet).
    marker
        Name of the marker file inside it (e.g. ``"run.json"``).
    format, version
        The marker's ``"format"`` and ``"version"``.
    what
        What the folder is, for messages (e.g. ``"neurovamp demo folder"``).
    indent
        Indentation of the marker's JSON text.

    Examples
    --------
    >>> folder = RunFolder("out", marker="demo.json", format="neurovamp-demo", what="demo folder")
    >>> folder.check_is_folder(); folder.check_can_write()           # doctest: +SKIP
    >>> folder.start({"settings": {...}}, files=["demo.json"])          # doctest: +SKIP
    >>> folder.finish(info, seconds=12.0)                               # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike, *, marker: str, format: str, version: int = 1,
                 what: str = "neurovamp folder", indent: int | None = 2) -> None:
        self.path = Path(path)
        self.marker = marker
        self.format = format
        self.version = version
        self.what = what
        self.indent = indent

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r}, marker={self.marker!r})"

    @property
    def marker_path(self) -> Path:
        """The marker file."""
        return self.path / self.marker

    # ------------------------------------------------------------------ reading
    def read(self) -> dict[str, Any] | None:
        """The marker file's content, or None when it is missing, unreadable or of another format.

        Returns
        -------
        dict or None
        """
        try:
            info = read_json(self.marker_path, what=self.what)
        except DataError:
            return None
        return info if isinstance(info, dict) and info.get("format") == self.format else None

    def read_any(self) -> Any:
        """The marker file's parsed JSON whatever it holds (None when missing or not JSON)."""
        try:
            return read_json(self.marker_path, what=self.what)
        except DataError:
            return None

    def status(self) -> str | None:
        """The marker's ``"status"`` (None without a readable marker)."""
        info = self.read()
        return None if info is None else info.get("status")

    def is_complete(self) -> bool:
        """Whether the marker says the command finished."""
        return self.status() == COMPLETE

    def holds_other_files(self) -> bool:
        """Whether the folder exists, is not empty and has no marker file (another folder)."""
        return self.path.is_dir() and not self.marker_path.is_file() and any(self.path.iterdir())

    # ------------------------------------------------------------------ checks (before any write)
    def check_is_folder(self, error: type[NeurovampError] = OutputExistsError, message: str | None = None) -> None:
        """Refuse a path that exists and is not a folder.

        Raises
        ------
        NeurovampError
            ``error`` (default :class:`~neurovamp.errors.OutputExistsError`), with
            ``message`` or a default line naming the path.
        """
        if self.path.exists() and not self.path.is_dir():
            raise error(message or f"{self.path}: exists and is not a folder; choose another output folder")

    def check_same_settings(self, old: Mapping[str, Any], new: Mapping[str, Any], message: str, *,
                            error: type[NeurovampError] = OutputExistsError, prefix: str = "") -> None:
        """Refuse to continue a folder made with other settings, naming each that differs.

        Parameters
        ----------
        old, new
            The folder's settings and this call's (compared by :func:`changed_settings`).
        message, error
            As for :meth:`refuse_changes`.
        prefix
            Put before each name.

        Raises
        ------
        NeurovampError
            When any setting differs.
        """
        self.refuse_changes(changed_settings(old, new, prefix=prefix), message, error=error)

    def refuse_changes(self, changed: Iterable[str], message: str, *,
                       error: type[NeurovampError] = OutputExistsError) -> None:
        """Raise ``error(message)`` when ``changed`` (names of differing settings) is not empty.

        Parameters
        ----------
        changed
            The differing settings' names.
        message
            The one-line message; ``{path}`` is replaced by the folder and ``{changed}`` by
            the sorted, comma-separated names.
        error
            The exception class (default :class:`~neurovamp.errors.OutputExistsError`).
        """
        changed = sorted(changed)
        if changed:
            raise error(message.format(path=self.path, changed=", ".join(changed)))

    def check_no_foreign(self, names: Iterable[str], *, legacy: Iterable[str] = (), what: str = "this command") -> None:
        """Refuse when writing ``names`` would replace a file neurovamp did not write there.

        See :func:`neurovamp._outputs.check_no_foreign`.
        """
        if self.path.is_dir():
            check_no_foreign(self.path, names, legacy=legacy, what=what)

    def check_can_write(self) -> None:
        """Check (with a probe file) that the folder, or its nearest existing parent, is writable.

        Raises
        ------
        OutputError
            One line naming the folder and the reason.
        """
        check_can_write(self.path)

    # ------------------------------------------------------------------ writing
    def clear(self, *, only: Sequence[str] | None = None, legacy: Iterable[str] = ()) -> list[str]:
        """Remove what neurovamp recorded as written here (overwrite); a user's files stay.

        Parameters
        ----------
        only
            Restrict to recorded files under these relative paths (e.g. ``["figures"]``).
        legacy
            The fixed outputs of a folder written before manifests (see
            :func:`neurovamp._outputs.written`).

        Returns
        -------
        list of str
            The removed files, relative to the folder.
        """
        return remove_outputs(self.path, only=only, legacy=legacy)

    def record(self, files: Iterable[str | os.PathLike] = (), folders: Iterable[str | os.PathLike] = (), *,
               legacy: Iterable[str] = ()) -> None:
        """Record outputs in the folder's manifest (so that overwrite removes them, and only them)."""
        record_outputs(self.path, files, folders, legacy=legacy)

    def write(self, info: Mapping[str, Any]) -> Path:
        """Write the marker file (strict JSON, atomically, replacing the earlier one).

        Parameters
        ----------
        info
            The content; its ``"format"`` must be this folder's (a bug of the caller otherwise).

        Returns
        -------
        Path
            The marker file.
        """
        if info.get("format") != self.format:
            raise ValueError(f"{self.marker_path}: marker format {info.get('format')!r}, expected {self.format!r}")
        return write_json(self.marker_path, info, overwrite=True, indent=self.indent)

    def new_info(self, **fields: Any) -> dict[str, Any]:
        """A marker's content: ``format``, ``version``, then ``fields`` (``status`` "running" unless given)."""
        return {"format": self.format, "version": self.version, **fields, "status": fields.get("status", RUNNING)}

    def start(self, info: Mapping[str, Any], *, files: Iterable[str] = (), folders: Iterable[str] = (),
              legacy: Iterable[str] = ()) -> None:
        """Create the folder, record ``files``/``folders`` (the marker included) and write the marker.

        Call it after every check: it is the first write.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        self.record([self.marker, *files], folders, legacy=legacy)
        self.write(info)

    def finish(self, info: dict[str, Any], **fields: Any) -> Path:
        """Mark the folder complete: ``info`` gets ``status`` "complete" and ``fields``; the marker is rewritten."""
        info.update(status=COMPLETE, **fields)
        return self.write(info)
