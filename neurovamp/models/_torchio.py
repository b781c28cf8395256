"""Reading torch files (weights, checkpoints) safely, with one-line errors for users.

``torch.load(weights_only=True)`` refuses pickled code, but its message for a refused
file is several lines of advice, including that ``weights_only=False`` "will likely
succeed", which is unsafe to pass on to users. :func:`load_tensors` turns every failure
into one line that says what is wrong with the file, never how to disable the guard.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from neurovamp.errors import DataError

__all__ = ["load_tensors"]


def _reason(exc: BaseException, path: Path) -> str:
    """What is wrong with the file, in a few words (no library advice)."""
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc):
        return ("it holds Python objects other than tensors and plain values, which neurovamp refuses to "
                "unpickle (they could run code); it was not written by neurovamp or has been altered")
    try:
        if path.stat().st_size == 0:
            return "the file is empty"
    except OSError as err:
        return err.strerror or type(err).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return "the file is corrupt or truncated, or was not written by neurovamp"


def load_tensors(path: str | os.PathLike, *, map_location: str | torch.device = "cpu", what: str = "file") -> Any:
    """``torch.load(path, weights_only=True)`` with a one-line :class:`DataError` on failure.

    Parameters
    ----------
    path
        A file written by :func:`torch.save`.
    map_location
        Where to put the tensors.
    what
        What the file is, for the message (``"checkpoint"``, ``"weights"``).

    Returns
    -------
    Any
        The loaded object (tensors, dicts, lists and plain values only).

    Raises
    ------
    DataError
        If the file is missing, a folder, empty, corrupt or holds anything but tensors and
        plain values.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a {what} file")
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are not for users
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt, truncated, foreign or hostile file
        raise DataError(f"{path}: cannot read {what}: {_reason(exc, path)}") from None
