"""Atomic, non-clobbering file output shared by every writer in neurovamp."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from neurovamp.errors import OutputExistsError

__all__ = ["atomic_output", "check_writable", "keep_copy"]


def check_writable(path: str | os.PathLike, overwrite: bool = False, kind: str | None = None) -> Path:
    """Refuse to clobber an existing output unless asked.

    Parameters
    ----------
    path
        Output file or folder.
    overwrite
        Whether an existing ``path`` may be replaced.
    kind
        ``"file"`` or ``"folder"``: what ``path`` will be; an existing ``path`` of the other
        kind is refused even with ``overwrite`` (``None``: not checked).

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false, or is a folder where a file is
        expected (or the reverse).
    """
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise OutputExistsError(f"{path}: is a folder; expected the path of a file to write inside it or elsewhere")
    if kind == "folder" and path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path}: is a file; expected a folder to write into")
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{path}: output already exists; pass overwrite=True (CLI: --overwrite) to replace it"
        )
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False, directory: bool = False) -> Iterator[Path]:
    """Write a file (or folder) under a temporary name, then move it into place.

    The temporary path lies beside ``path`` (same file system) so the final
    :func:`os.replace` is atomic: readers see either the old output or the complete
    new one, never a partial file. If the body raises, the temporary output is removed
    and ``path`` is untouched.

    Parameters
    ----------
    path
        Final output path.
    overwrite
        Whether an existing ``path`` may be replaced.
    directory
        Yield a temporary *folder* instead of a file path.

    Yields
    ------
    Path
        The temporary path to write to.
    """
    path = check_writable(path, overwrite, kind="folder" if directory else "file")
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes owner-only folders; outputs get normal permissions
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(name)
        tmp = Path(name)
    try:
        yield tmp
        if directory and path.exists():
            old = path.with_name(f".{path.name}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def keep_copy(path: str | os.PathLike, copy: str | os.PathLike) -> None:
    """Put a copy of file ``path`` at ``copy`` (replacing it), leaving ``path`` in place.

    A hard link where the file system has them, else a byte copy; either is made under a
    temporary name and moved into place with :func:`os.replace`, so at every instant both
    ``path`` and ``copy`` are complete files (a rename of ``path`` itself would leave a
    moment with no ``path``: a crash or a reader then finds nothing).

    Parameters
    ----------
    path
        Existing file.
    copy
        Where the copy goes, on the same file system.
    """
    path, copy = Path(path), Path(copy)
    fd, name = tempfile.mkstemp(prefix=f".{copy.name}.", suffix=".tmp", dir=copy.parent)
    os.close(fd)
    os.unlink(name)
    try:
        try:
            os.link(path, name)
        except OSError:  # no hard links here (some network and FAT file systems)
            shutil.copy2(path, name)
        os.replace(name, copy)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
