"""Exception types raised by neurovamp.

Every error a user can cause (bad files, bad options, missing labels) is raised as a
:class:`NeurovampError` subclass whose message names the file or field at fault and
what was expected. The command-line interface prints such messages as one line and
exits non-zero; any other exception is a bug.
"""

from __future__ import annotations

__all__ = [
    "NeurovampError",
    "DataError",
    "OutputExistsError",
    "OutputError",
    "ConfigError",
    "TrainingError",
]


class NeurovampError(Exception):
    """Base class of all errors a user can cause."""


class DataError(NeurovampError, ValueError):
    """Input data is missing, malformed or inconsistent (files, columns, shapes, NaNs)."""


class OutputExistsError(NeurovampError, FileExistsError):
    """An output path exists and overwriting was not requested."""


class OutputError(NeurovampError, OSError):
    """An output cannot be written there (read-only or full destination, a folder where a file is expected)."""


class ConfigError(NeurovampError, ValueError):
    """An option or configuration value is invalid."""


class TrainingError(NeurovampError, RuntimeError):
    """Training failed (non-finite or exploding loss); the last good checkpoint is kept."""
