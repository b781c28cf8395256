"""Output folders: which files in a folder neurovamp wrote, so that overwrite deletes only those.

Every command that writes into a folder (``fit``, ``evaluate``, ``simulate``, ``demo``,
``paper``) records the files it wrote in the folder's manifest, ``.neurovamp-outputs.json``
(paths relative to the folder, ``/``-separated). ``--overwrite`` then removes exactly the
recorded files (and the folders that become empty by it), never a file or sub-folder a user
put there. A recorded *sub-folder* (``"folders"``: e.g. a demo's ``runs/mmvm``) is itself an
output folder with its own manifest; removing the parent removes what that manifest lists.

Folders written before manifests existed have none; their command passes ``legacy``, the
fixed names it has always written, which stand in for the manifest until one is written.

This module also checks, before any work, that a destination can be written at all
(:func:`check_can_write`), so a read-only or missing destination fails in one line first.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from neurovamp._jsonfile import read_json, write_json
from neurovamp.errors import DataError, OutputError, OutputExistsError

__all__ = [
    "MANIFEST_NAME",
    "written",
    "record_outputs",
    "foreign_outputs",
    "check_no_foreign",
    "remove_outputs",
    "move_into",
    "check_can_write",
]

MANIFEST_NAME = ".neurovamp-outputs.json"
_FORMAT = "neurovamp-outputs"


def _rel(name: str | os.PathLike) -> str:
    return Path(name).as_posix().strip("/")


def _read(folder: Path) -> dict[str, list[str]] | None:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except DataError:
        return None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:  # no "version": a damaged one reads as none
        return None
    clean = {}
    for key in ("files", "folders"):
        values = data.get(key)
        clean[key] = [_rel(v) for v in values if isinstance(v, str) and ".." not in Path(v).parts] \
            if isinstance(values, list) else []
    return clean


def written(folder: str | os.PathLike, legacy: Iterable[str] = ()) -> tuple[set[str], set[str]]:
    """The files and sub-folders recorded as written by neurovamp in ``folder``.

    Parameters
    ----------
    folder
        An output folder.
    legacy
        Relative names that stand in for the manifest when the folder has none (outputs of
        a neurovamp from before manifests); only those that exist count.

    Returns
    -------
    files, folders : set of str
        Relative paths.
    """
    folder = Path(folder)
    data = _read(folder)
    if data is None:
        files = set()
        for name in legacy:
            target = folder / name
            if target.is_file():
                files.add(_rel(name))
            elif target.is_dir():
                files.update(_rel(p.relative_to(folder)) for p in target.rglob("*") if p.is_file())
        return files, set()
    return set(data["files"]), set(data["folders"])


def record_outputs(
    folder: str | os.PathLike, files: Iterable[str | os.PathLike] = (), folders: Iterable[str | os.PathLike] = (),
    *, legacy: Iterable[str] = (),
) -> None:
    """Add ``files`` (and output sub-folders ``folders``) to ``folder``'s manifest.

    Parameters
    ----------
    folder
        The output folder (must exist).
    files
        Files written there, relative to ``folder`` (or absolute paths inside it).
    folders
        Sub-folders holding their own manifest (e.g. a demo's run folders).
    legacy
        As in :func:`written` (adopted into the manifest when there is none yet).
    """
    folder = Path(folder)
    old_files, old_folders = written(folder, legacy)

    def rel(p: str | os.PathLike) -> str:
        p = Path(p)
        return _rel(p.relative_to(folder) if p.is_absolute() else p)

    new_files = sorted(old_files | {rel(f) for f in files})
    new_folders = sorted(old_folders | {rel(f) for f in folders})
    write_json(folder / MANIFEST_NAME, {"format": _FORMAT, "files": new_files, "folders": new_folders},
               overwrite=True, indent=1)


def foreign_outputs(folder: str | os.PathLike, names: Iterable[str], *, legacy: Iterable[str] = ()) -> list[str]:
    """Which of ``names`` exist in ``folder`` without having been written by neurovamp.

    A name that is a folder counts as foreign when it holds any file that is not recorded.

    Parameters
    ----------
    folder
        The output folder.
    names
        Relative paths a command is about to write.
    legacy
        As in :func:`written`.

    Returns
    -------
    list of str
        The foreign paths (files), relative to ``folder``.
    """
    folder = Path(folder)
    files, _ = written(folder, legacy)
    out = []
    for name in names:
        target = folder / name
        if target.is_dir():
            out += [r for p in sorted(target.rglob("*")) if not p.is_dir()
                    and (r := _rel(p.relative_to(folder))) not in files]
        elif target.exists() or target.is_symlink():
            if _rel(name) not in files:
                out.append(_rel(name))
    return out


def check_no_foreign(folder: str | os.PathLike, names: Iterable[str], *, legacy: Iterable[str] = (),
                     what: str = "this command") -> None:
    """Refuse (before any write) when an output would replace a file neurovamp did not write.

    Raises
    ------
    OutputExistsError
        Naming the first such files.
    """
    foreign = foreign_outputs(folder, names, legacy=legacy)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputExistsError(
            f"{folder}: holds {shown}, which neurovamp did not write; {what} would replace "
            f"{'it' if len(foreign) == 1 else 'them'} even with --overwrite, so it refuses: move "
            f"{'it' if len(foreign) == 1 else 'them'} away or choose another output folder"
        )


def _prune(folder: Path, start: Path) -> None:
    """Remove ``start`` and its parents up to (not including) ``folder`` while they are empty."""
    current = start
    while current != folder and folder in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent


def remove_outputs(
    folder: str | os.PathLike, *, only: Sequence[str] | None = None, legacy: Iterable[str] = ()
) -> list[str]:
    """Delete what neurovamp recorded as written in ``folder`` (nothing else).

    Parameters
    ----------
    folder
        The output folder (a missing folder removes nothing).
    only
        Restrict to recorded files under these relative paths (e.g. ``["figures"]``);
        ``None`` removes every recorded file and sub-folder, then the manifest itself.
    legacy
        As in :func:`written`.

    Returns
    -------
    list of str
        The removed files, relative to ``folder``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files, folders = written(folder, legacy)

    def selected(name: str) -> bool:
        return only is None or any(name == o or name.startswith(_rel(o) + "/") for o in only)

    removed = []
    for sub in sorted(f for f in folders if selected(f)):
        removed += [f"{sub}/{name}" for name in remove_outputs(folder / sub)]
        _prune(folder, folder / sub)
    for name in sorted(f for f in files if selected(f)):
        target = folder / name
        if target.is_file() or target.is_symlink():
            target.unlink()
            removed.append(name)
        _prune(folder, target.parent)
    keep_files = {f for f in files if not selected(f)}
    keep_folders = {f for f in folders if not selected(f)}
    manifest = folder / MANIFEST_NAME
    if keep_files or keep_folders:
        write_json(manifest, {"format": _FORMAT, "files": sorted(keep_files), "folders": sorted(keep_folders)},
                   overwrite=True, indent=1)
    else:
        manifest.unlink(missing_ok=True)
    return removed


def move_into(source: str | os.PathLike, folder: str | os.PathLike, *, last: Sequence[str] = ()) -> list[str]:
    """Move every file of the folder ``source`` into ``folder`` (same layout) and record them.

    Each file replaces its namesake atomically (:func:`os.replace`); files of ``folder``
    that ``source`` lacks are untouched. ``source`` is removed afterwards.

    Parameters
    ----------
    source
        A folder on the same file system (e.g. one written by ``atomic_output(directory=True)``
        under a temporary name beside ``folder``).
    folder
        The destination output folder (created when missing).
    last
        Relative names moved after all others (e.g. the file that marks the output complete).

    Returns
    -------
    list of str
        The moved files, relative to ``folder``.
    """
    source, folder = Path(source), Path(folder)
    names = sorted(_rel(p.relative_to(source)) for p in source.rglob("*") if p.is_file())
    names = [n for n in names if n not in last] + [n for n in names if n in last]
    folder.mkdir(parents=True, exist_ok=True)
    record_outputs(folder, names)  # recorded first: a crash mid-move leaves nothing unknown behind
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(source / name, folder / name)
    for p in sorted(source.rglob("*"), reverse=True):
        if p.is_dir():
            p.rmdir()
    source.rmdir()
    return names


def check_can_write(path: str | os.PathLike) -> Path:
    """Check that the folder ``path`` (or, when missing, its nearest existing parent) is writable.

    A tiny probe file is created there and removed at once, so read-only, missing-permission
    and some full destinations fail here, in one line, before any work.

    Parameters
    ----------
    path
        The output folder (or a file's parent folder).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OutputError
        If ``path`` or a parent is a file, or nothing can be written there (names the reason).
    """
    path = Path(path)
    target = path
    while not target.exists():
        if target.parent == target:
            break
        target = target.parent
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: is a file, not a folder; cannot write {path} there")
    try:
        fd, name = tempfile.mkstemp(prefix=".neurovamp-probe.", dir=target)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OutputError(
            f"{path}: cannot write there ({exc.strerror or exc}{'' if target == path else f' in {target}'})"
        ) from None
    return path
