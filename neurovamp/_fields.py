"""The one check of a mapping's keys against a settings dataclass's fields."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from neurovamp.errors import ConfigError

__all__ = ["check_fields"]


def check_fields(cls: Any, names: Iterable[str], what: str, kind: str = "field") -> None:
    """Refuse names that are not fields of dataclass ``cls``.

    Parameters
    ----------
    cls
        A dataclass (or an instance of one).
    names
        The names given (e.g. a ``from_dict`` mapping's keys).
    what
        What is being built, first in the message (e.g. ``"ModelConfig"``).
    kind
        What a field is called to the user (``"field"``, ``"setting"``, ``"option"``).

    Raises
    ------
    ConfigError
        One line naming the unknown names and the known ones.
    """
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ConfigError(f"{what}: unknown {kind}(s) {unknown}; {kind}s: {known}")
