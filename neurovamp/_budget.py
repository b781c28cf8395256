"""A memory budget: refuse, before allocating, work whose size cannot fit in memory.

Sizes are estimated from the settings (bins, units, trials, layer widths) before any array
or network is made; beyond the limit the error gives the numbers and the option to change
(e.g. "binning 3 files at 1e-06 s bins needs about 5.4 GiB ...; use a larger --bin").

The limit is half of the machine's memory, or what the environment variable
``NEUROVAMP_MEMORY_LIMIT`` says (bytes, or a number with a unit: ``16GiB``, ``500MB``,
``2e10``); ``NEUROVAMP_MEMORY_LIMIT=0`` disables the check.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from neurovamp.errors import ConfigError

__all__ = ["ENV_VAR", "memory_limit", "check_memory", "format_bytes", "model_bytes"]

ENV_VAR = "NEUROVAMP_MEMORY_LIMIT"
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 2**10, "m": 1e6, "mb": 1e6, "mib": 2**20, "g": 1e9,
          "gb": 1e9, "gib": 2**30, "t": 1e12, "tb": 1e12, "tib": 2**40}
_FALLBACK = 8 * 2**30


def format_bytes(n: float) -> str:
    """``n`` bytes as text (``"5.4 GiB"``)."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def memory_limit() -> float:
    """The memory limit in bytes (``inf`` when disabled).

    Returns
    -------
    float
        ``$NEUROVAMP_MEMORY_LIMIT`` when set, else half the physical memory.

    Raises
    ------
    ConfigError
        If the variable is not a size.
    """
    text = os.environ.get(ENV_VAR, "").strip()
    if text:
        match = re.fullmatch(r"([0-9.eE+]+)\s*([a-zA-Z]*)", text)
        unit = match.group(2).lower() if match else None
        try:
            value = float(match.group(1)) * _UNITS[unit] if match and unit in _UNITS else None
        except ValueError:
            value = None
        if value is None or value < 0:
            raise ConfigError(f"{ENV_VAR}={text!r} is not a size; use e.g. 16GiB, 500MB or a number of bytes")
        return float("inf") if value == 0 else value
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2
    except (ValueError, OSError, AttributeError):
        return _FALLBACK


def check_memory(nbytes: float, what: str, advice: str) -> None:
    """Refuse ``what`` when it needs more than :func:`memory_limit`.

    Parameters
    ----------
    nbytes
        Estimated bytes.
    what
        What needs them (``"binning 3 files at 1e-06 s bins"``).
    advice
        The option to change (``"use a larger --bin or a shorter --window"``).

    Raises
    ------
    ConfigError
        With the numbers, the advice and how to raise the limit.
    """
    limit = memory_limit()
    if nbytes > limit:
        raise ConfigError(
            f"{what} needs about {format_bytes(nbytes)}, more than the memory limit of {format_bytes(limit)}; "
            f"{advice} (or raise the limit with {ENV_VAR}, e.g. {ENV_VAR}=64GiB)"
        )


def model_bytes(input_dims: Sequence[int], hidden_widths: Sequence[Sequence[int]], latent_dim: int) -> float:
    """Training memory of a model with one encoder and decoder MLP per animal (estimate).

    Parameters
    ----------
    input_dims
        Input width per animal.
    hidden_widths
        Encoder hidden widths per animal (the decoder mirrors them).
    latent_dim
        Latent dimension.

    Returns
    -------
    float
        Bytes of float32 weights times 5 (weights, gradients, two Adam moments, best weights).
    """
    params = 0.0
    for d_in, widths in zip(input_dims, hidden_widths):
        chain = [int(d_in), *map(int, widths)]
        encoder = sum((a + 1) * b for a, b in zip(chain[:-1], chain[1:])) + (chain[-1] + 1) * 2 * int(latent_dim)
        back = [int(latent_dim), *map(int, reversed(widths)), 2 * int(d_in)]
        decoder = sum((a + 1) * b for a, b in zip(back[:-1], back[1:]))
        params += encoder + decoder
    return params * 4 * 5
