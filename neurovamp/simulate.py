"""Simulated multi-rat odor-sequence experiments with known ground truth.

The simulator stands in for the hippocampal recordings of the five-rat release (see
``datasets/README.md``): several rats, each with its own number of units, sample odors
``A``..``E`` presented in sequences at one port; some trials are out of sequence (another
odor is presented at that position). Units of every rat are driven by one
low-dimensional latent trajectory shared across rats, through rat-specific tuning, plus
trial-to-trial variability private to each rat. Spikes are written as standard NWB (one
file per rat) and the ground truth is kept so that recovery and imputation can be scored,
including for odors a rat never experienced.

Generative model
----------------
Time ``t`` is measured from odor onset. For a trial of odor ``o`` at sequence position
``p`` the *shared* latent (``K = latent_dim``) is::

    zbar(t) = k_early(t) * e_o + k_late(t) * (l_o + w_p)

with fixed odor directions ``e_o``, ``l_o`` (norm ``odor_scale``, drawn once per seed as
the best separated of many random draws), a smaller position direction ``w_p`` and
smooth kernels ``k(t) = (t/τ)² exp(2(1 - t/τ))`` for ``t > 0`` (zero before onset, peak
1 at ``t = τ``). Trial ``n`` of rat ``r`` sees ``z_rn(t) = g_rn zbar(t) + k_priv(t) δ_rn``
with a private gain ``g_rn ~ N(1, gain_sd²)`` and offset ``δ_rn ~ N(0, offset_sd² I)``,
``k_priv = (k_early + k_late) / 2``. Unit ``i`` of rat ``r`` has its own tuning ``C_ri``
(random direction, norm uniform in ``[tuning_scale / 2, tuning_scale]``) and log-normal
baseline ``exp(b_ri)``, and fires as an inhomogeneous Poisson process with intensity
``λ(t) = exp(b_ri + C_ri · z_rn(t))`` (Hz), piecewise constant on a fine grid
(``fine_dt``, 1 ms). Spike counts are drawn per analysis bin (``bin_size``, 10 ms) with
mean ``bin_size × rate`` where the bin's *true rate* is the mean fine intensity over the
bin; each spike is then placed in a fine sub-bin with probability proportional to its
intensity and uniformly within it. Between trial windows units fire at their baseline
``exp(b_ri)``.

Ground truth (:class:`GroundTruth`) is given on the analysis grid aligned to odor onset:
bin-centre latents per trial, true rates per trial, tuning ``C_r``, log-baselines ``b_r``,
private gains/offsets, and the odor/position directions from which the mean latent
(:meth:`GroundTruth.condition_latent`) and the expected rate of any condition for any rat
(:meth:`GroundTruth.condition_rate`) follow, whether or not the rat experienced it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neurovamp._fields import check_fields
from neurovamp._files import atomic_output, check_writable
from neurovamp._outputs import check_can_write, check_no_foreign, move_into, record_outputs, remove_outputs
from neurovamp.errors import ConfigError, DataError, OutputExistsError

__all__ = [
    "SimulationConfig",
    "GroundTruth",
    "Simulation",
    "simulate_experiment",
    "write_simulation",
    "load_ground_truth",
    "simulate",
    "TRIAL_COLUMNS",
    "GROUND_TRUTH_FILE",
    "CONFIG_FILE",
]

#: Trials table columns written by the simulator, in this order.
TRIAL_COLUMNS = ("start_time", "stop_time", "odor_onset", "odor", "position", "in_sequence", "correct")
#: File name of the ground truth inside a simulation folder.
GROUND_TRUTH_FILE = "ground_truth.npz"
#: File name of the configuration inside a simulation folder.
CONFIG_FILE = "simulation.json"

_DEFAULT_UNITS = (92, 79, 104, 49, 46)
_DEFAULT_TRIALS = (220, 200, 240, 180, 245)
#: Per-animal unit-count ranges (inclusive) of :meth:`SimulationConfig.many`.
MANY_UNITS = {"small": (8, 32), "full": (40, 110)}
#: Per-animal trial-count ranges (inclusive) of :meth:`SimulationConfig.many`.
MANY_TRIALS = {"small": (40, 64), "full": (180, 245)}
_SESSION_START = datetime(2024, 1, 1, 9, 0, 0, tzinfo=timezone.utc)
# Spikes keep this fraction of a fine sub-bin away from its edges, so that binning at any
# multiple of ``fine_dt`` is unambiguous despite floating-point rounding.
_EDGE_GUARD = 1e-3
_MAX_REDRAWS = 100


def _per_rat(value: Any, defaults: Sequence[int], n_rats: int, name: str) -> tuple[int, ...]:
    """Resolve a per-rat integer setting (``None``, one int, or one per rat)."""
    if value is None:
        return tuple(int(defaults[i % len(defaults)]) for i in range(n_rats))
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * n_rats
    try:
        values = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"SimulationConfig.{name}: expected an int or one int per rat, got {value!r}") from None
    if len(values) != n_rats:
        raise ConfigError(f"SimulationConfig.{name}: expected {n_rats} values (one per rat), got {len(values)}")
    return values


def _is_multiple(value: float, step: float) -> bool:
    ratio = value / step
    return abs(ratio - round(ratio)) < 1e-6 and round(ratio) >= 1


@dataclass(frozen=True)
class SimulationConfig:
    """Settings of a simulated multi-rat odor-sequence experiment (JSON round trip).

    Parameters
    ----------
    n_rats
        Number of rats (animals).
    n_units
        Units per rat: one int for all, one per rat, or ``None`` for defaults in the
        spirit of the real release (92, 79, 104, 49, 46, cycled).
    n_trials
        Trials per rat: one int, one per rat, or ``None`` for defaults (220, 200, 240,
        180, 245, cycled).
    rat_names
        Subject ids; ``"rat1"``, ``"rat2"``, ... when ``None``.
    odors
        Odor names in sequence order; odor ``odors[p - 1]`` belongs at position ``p``.
    out_of_sequence_rate
        Probability that a trial at position 2 or later presents another odor
        (uniformly among the rat's other odors); position 1 is always in sequence.
    correct_rate_in_sequence, correct_rate_out_of_sequence
        Probability that the rat responds correctly (does not affect spiking).
    latent_dim
        Dimension ``K`` of the shared latent.
    bin_size
        Analysis bin (s) of the ground-truth grid.
    window
        Trial window ``(start, stop)`` in seconds relative to odor onset; trials'
        ``start_time``/``stop_time`` span exactly this window.
    fine_dt
        Resolution (s) of the piecewise-constant spike intensity; divides ``bin_size``.
    baseline_rate, baseline_spread, baseline_range
        Units' baseline rates (Hz): log-normal with median ``baseline_rate`` and
        log-standard deviation ``baseline_spread``, clipped to ``baseline_range``.
    tuning_scale
        Largest norm of a unit's loading vector ``C_ri`` (log-rate per latent unit);
        norms are uniform in ``[tuning_scale / 2, tuning_scale]``.
    odor_scale
        Norm of each odor's latent directions.
    position_scale
        Typical norm of the position latent directions.
    early_peak, late_peak
        Peak times (s after onset) of the early and late temporal kernels.
    gain_sd, offset_sd
        Private trial-to-trial variability: latent gain ``N(1, gain_sd²)`` and latent
        offset ``N(0, offset_sd²)`` per dimension, both private to each rat and trial.
    iti
        Range (s) of the gap between consecutive trial windows.
    sequence_gap
        Extra gap (s) between sequences.
    missing
        Rat name → odors that rat never experiences. ``None`` means the last rat never
        gets the last odor (when there are at least two rats); ``{}`` means none missing.
    seed
        Seed of every random draw.

    Raises
    ------
    ConfigError
        If a value is out of range or inconsistent (message names the field).
    """

    n_rats: int = 5
    n_units: tuple[int, ...] | int | None = None
    n_trials: tuple[int, ...] | int | None = None
    rat_names: tuple[str, ...] | None = None
    odors: tuple[str, ...] = ("A", "B", "C", "D", "E")
    out_of_sequence_rate: float = 0.15
    correct_rate_in_sequence: float = 0.92
    correct_rate_out_of_sequence: float = 0.6
    latent_dim: int = 3
    bin_size: float = 0.01
    window: tuple[float, float] = (-0.5, 1.0)
    fine_dt: float = 0.001
    baseline_rate: float = 3.5
    baseline_spread: float = 0.5
    baseline_range: tuple[float, float] = (1.2, 10.0)
    tuning_scale: float = 1.3
    odor_scale: float = 1.0
    position_scale: float = 0.4
    early_peak: float = 0.2
    late_peak: float = 0.5
    gain_sd: float = 0.15
    offset_sd: float = 0.25
    iti: tuple[float, float] = (1.0, 2.5)
    sequence_gap: float = 2.0
    missing: Mapping[str, Sequence[str]] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if isinstance(self.n_rats, bool) or not isinstance(self.n_rats, (int, np.integer)) or self.n_rats < 1:
            raise ConfigError(f"SimulationConfig.n_rats: expected a positive int, got {self.n_rats!r}")
        n = int(self.n_rats)
        set_(self, "n_rats", n)
        set_(self, "n_units", _per_rat(self.n_units, _DEFAULT_UNITS, n, "n_units"))
        set_(self, "n_trials", _per_rat(self.n_trials, _DEFAULT_TRIALS, n, "n_trials"))
        if any(u < 1 for u in self.n_units):
            raise ConfigError(f"SimulationConfig.n_units: every rat needs at least 1 unit, got {self.n_units}")
        if any(t < 10 for t in self.n_trials):
            raise ConfigError(f"SimulationConfig.n_trials: every rat needs at least 10 trials, got {self.n_trials}")
        names = tuple(f"rat{i + 1}" for i in range(n)) if self.rat_names is None else tuple(map(str, self.rat_names))
        if len(names) != n or len(set(names)) != n or any(not s or "/" in s for s in names):
            raise ConfigError(
                f"SimulationConfig.rat_names: expected {n} distinct non-empty names without '/', got {names}"
            )
        set_(self, "rat_names", names)
        odors = tuple(map(str, self.odors))
        if len(odors) < 2 or len(set(odors)) != len(odors):
            raise ConfigError(f"SimulationConfig.odors: expected at least 2 distinct odor names, got {odors}")
        set_(self, "odors", odors)
        for name in ("out_of_sequence_rate", "correct_rate_in_sequence", "correct_rate_out_of_sequence"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"SimulationConfig.{name}: expected a probability in [0, 1], got {value}")
            set_(self, name, value)
        if isinstance(self.latent_dim, bool) or int(self.latent_dim) != self.latent_dim or self.latent_dim < 1:
            raise ConfigError(f"SimulationConfig.latent_dim: expected a positive int, got {self.latent_dim!r}")
        set_(self, "latent_dim", int(self.latent_dim))
        for name in ("bin_size", "fine_dt", "baseline_rate", "early_peak", "late_peak"):
            value = float(getattr(self, name))
            if not np.isfinite(value) or value <= 0:
                raise ConfigError(f"SimulationConfig.{name}: expected a positive number, got {value}")
            set_(self, name, value)
        for name in ("baseline_spread", "tuning_scale", "odor_scale", "position_scale", "gain_sd", "offset_sd",
                     "sequence_gap"):
            value = float(getattr(self, name))
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"SimulationConfig.{name}: expected a non-negative number, got {value}")
            set_(self, name, value)
        window = tuple(float(v) for v in self.window)
        if len(window) != 2 or not window[0] < 0.0 < window[1]:
            raise ConfigError(
                f"SimulationConfig.window: expected (start, stop) around odor onset with start < 0 < stop, "
                f"got {self.window!r}"
            )
        if not _is_multiple(window[1] - window[0], self.bin_size) or not _is_multiple(-window[0], self.bin_size):
            raise ConfigError(
                f"SimulationConfig.window: start and length must be multiples of bin_size={self.bin_size}, "
                f"got {window}"
            )
        set_(self, "window", window)
        if not _is_multiple(self.bin_size, self.fine_dt):
            raise ConfigError(
                f"SimulationConfig.fine_dt: must divide bin_size={self.bin_size}, got {self.fine_dt}"
            )
        lo, hi = (float(v) for v in self.baseline_range)
        if not 0 < lo <= hi:
            raise ConfigError(f"SimulationConfig.baseline_range: expected 0 < low <= high, got {self.baseline_range!r}")
        set_(self, "baseline_range", (lo, hi))
        iti = tuple(float(v) for v in self.iti)
        if len(iti) != 2 or not 0 <= iti[0] <= iti[1]:
            raise ConfigError(f"SimulationConfig.iti: expected (low, high) with 0 <= low <= high, got {self.iti!r}")
        set_(self, "iti", iti)
        if self.missing is None:
            missing = {names[-1]: (odors[-1],)} if n >= 2 else {}
        else:
            if not isinstance(self.missing, Mapping):
                raise ConfigError(f"SimulationConfig.missing: expected a mapping rat -> odors, got {self.missing!r}")
            missing = {}
            for rat, rat_odors in self.missing.items():
                if rat not in names:
                    raise ConfigError(f"SimulationConfig.missing: unknown rat {rat!r}; rats are {names}")
                rat_odors = (rat_odors,) if isinstance(rat_odors, str) else tuple(map(str, rat_odors))
                unknown = [o for o in rat_odors if o not in odors]
                if unknown:
                    raise ConfigError(f"SimulationConfig.missing[{rat!r}]: unknown odors {unknown}; odors are {odors}")
                if len(odors) - len(set(rat_odors)) < 2:
                    raise ConfigError(f"SimulationConfig.missing[{rat!r}]: a rat must keep at least 2 odors")
                if odors[0] in rat_odors:
                    raise ConfigError(
                        f"SimulationConfig.missing[{rat!r}]: the first odor {odors[0]!r} starts every sequence "
                        "and cannot be missing"
                    )
                if rat_odors:
                    missing[rat] = tuple(o for o in odors if o in rat_odors)
        set_(self, "missing", missing)
        if isinstance(self.seed, bool) or int(self.seed) != self.seed or self.seed < 0:
            raise ConfigError(f"SimulationConfig.seed: expected a non-negative int, got {self.seed!r}")
        set_(self, "seed", int(self.seed))

    @classmethod
    def small(cls, seed: int = 0, **overrides: Any) -> SimulationConfig:
        """A small experiment (3 rats, 24/30/18 units, ~60 trials) that runs in about a second.

        Parameters
        ----------
        seed
            Seed of every random draw.
        **overrides
            Any other field to change.

        Returns
        -------
        SimulationConfig
            ``rat3`` never experiences the last odor.
        """
        settings: dict[str, Any] = dict(
            n_rats=3, n_units=(24, 30, 18), n_trials=(60, 64, 56), missing={"rat3": ("E",)}, seed=seed
        )
        settings.update(overrides)
        return cls(**settings)

    @classmethod
    def many(cls, n_animals: int, seed: int = 0, *, small: bool = True, **overrides: Any) -> SimulationConfig:
        """An experiment with many animals (2 to hundreds), each with its own units and odors.

        Unit and trial counts are drawn per animal, uniformly from
        :data:`MANY_UNITS` / :data:`MANY_TRIALS` (``small`` or full-size ranges), and every
        animal but the first misses 0, 1 or 2 of the odors after the first (probabilities
        0.6, 0.3, 0.1), so animals differ in width and in conditions. Names are ``rat001``,
        ``rat002``, ... (zero-padded to the width of ``n_animals``, so they sort). The
        draws come from ``(seed, n_animals)``; the spikes from ``seed`` as usual.

        Parameters
        ----------
        n_animals
            Number of animals, at least 2.
        seed
            Seed of every random draw.
        small
            Small animals (8-32 units, 40-64 trials: about 0.3 s per animal to simulate and
            write) instead of release-sized ones (40-110 units, 180-245 trials).
        **overrides
            Any other field to change (``n_units``, ``n_trials`` or ``missing`` replace the
            drawn values).

        Returns
        -------
        SimulationConfig

        Raises
        ------
        ConfigError
            If ``n_animals`` is not an integer >= 2.
        """
        if isinstance(n_animals, bool) or not isinstance(n_animals, (int, np.integer)) or n_animals < 2:
            raise ConfigError(f"SimulationConfig.many: n_animals must be an integer >= 2, got {n_animals!r}")
        n = int(n_animals)
        size = "small" if small else "full"
        rng = np.random.default_rng([int(seed), n, 16])
        lo_u, hi_u = MANY_UNITS[size]
        lo_t, hi_t = MANY_TRIALS[size]
        names = tuple(f"rat{i + 1:0{len(str(n))}d}" for i in range(n))
        odors = tuple(overrides.get("odors", cls.odors))
        missing: dict[str, tuple[str, ...]] = {}
        for name in names[1:]:
            k = int(rng.choice(3, p=(0.6, 0.3, 0.1)))
            k = min(k, len(odors) - 2)
            if k > 0:
                gone = set(rng.choice(len(odors) - 1, size=k, replace=False) + 1)
                missing[name] = tuple(o for i, o in enumerate(odors) if i in gone)
        settings: dict[str, Any] = dict(
            n_rats=n,
            rat_names=names,
            n_units=tuple(int(u) for u in rng.integers(lo_u, hi_u + 1, size=n)),
            n_trials=tuple(int(t) for t in rng.integers(lo_t, hi_t + 1, size=n)),
            missing=missing,
            seed=seed,
        )
        settings.update(overrides)
        return cls(**settings)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable settings (lists for tuples), resolved per rat.

        Returns
        -------
        dict
            Accepted by :meth:`from_dict`.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = {k: list(v) for k, v in value.items()}
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimulationConfig:
        """Build a configuration from :meth:`to_dict` output.

        Parameters
        ----------
        data
            Settings; unknown keys are an error.

        Returns
        -------
        SimulationConfig

        Raises
        ------
        ConfigError
            On unknown keys or invalid values.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"SimulationConfig: expected a mapping of settings, got {type(data).__name__}")
        check_fields(cls, data, "SimulationConfig", kind="setting")
        return cls(**dict(data))

    @property
    def n_bins(self) -> int:
        """Number of analysis bins in the trial window."""
        return int(round((self.window[1] - self.window[0]) / self.bin_size))

    @property
    def time(self) -> np.ndarray:
        """Bin centres (s, relative to odor onset) of the ground-truth grid."""
        return self.window[0] + self.bin_size * (np.arange(self.n_bins) + 0.5)

    def odors_of(self, rat: str) -> tuple[str, ...]:
        """Odors rat ``rat`` experiences (all odors minus its missing ones).

        Parameters
        ----------
        rat
            Rat name.

        Returns
        -------
        tuple of str
        """
        if rat not in self.rat_names:
            raise ConfigError(f"rat: unknown rat {rat!r}; rats are {self.rat_names}")
        gone = set(self.missing.get(rat, ()))
        return tuple(o for o in self.odors if o not in gone)


def _kernel(t: np.ndarray, peak: float) -> np.ndarray:
    """Smooth bump ``(t/τ)² exp(2(1 - t/τ))`` for ``t > 0``, zero before; peak 1 at ``τ``."""
    s = np.clip(np.asarray(t, dtype=float) / peak, 0.0, None)
    return s**2 * np.exp(2.0 * (1.0 - s))


def _kernels(config: SimulationConfig, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    early = _kernel(t, config.early_peak)
    late = _kernel(t, config.late_peak)
    return early, late, 0.5 * (early + late)


def _spread_directions(rng: np.random.Generator, n: int, dim: int, scale: float, tries: int = 256) -> np.ndarray:
    """``n`` vectors of norm ``scale`` (in ``[-scale, scale]`` when ``dim == 1``), the best
    separated (largest smallest pairwise distance) of ``tries`` random draws."""
    best, best_gap = None, -1.0
    for _ in range(tries):
        if dim == 1:
            v = rng.uniform(-scale, scale, (n, 1))
        else:
            v = rng.standard_normal((n, dim))
            v *= scale / np.linalg.norm(v, axis=1, keepdims=True)
        d = np.sqrt(((v[:, None, :] - v[None, :, :]) ** 2).sum(-1))
        gap = d[np.triu_indices(n, 1)].min() if n > 1 else 0.0
        if gap > best_gap:
            best, best_gap = v, gap
    return best


@dataclass
class GroundTruth:
    """The true latents, rates and parameters of a simulation.

    All time axes are the ground-truth grid ``time`` (bin centres, seconds relative to
    odor onset, ``bin_size`` apart; the same bins :func:`~neurovamp.io.nwb.read_nwb`
    makes with ``event="odor_onset"``, ``window=config.window``,
    ``bin_size=config.bin_size``).

    Attributes
    ----------
    config
        The simulation settings.
    time
        ``(n_bins,)`` bin centres.
    odor_early, odor_late
        ``(n_odors, K)`` odor directions of the early and late kernels (rows in
        ``config.odors`` order).
    position_dirs
        ``(n_odors, K)`` direction of positions ``1..n_odors``.
    tuning
        rat → ``(n_units, K)`` loading matrix ``C_r``.
    log_baseline
        rat → ``(n_units,)`` log baseline rate ``b_r`` (log Hz).
    gain, offset
        rat → ``(n_trials,)`` private latent gains and ``(n_trials, K)`` offsets.
    latents
        rat → ``(n_trials, n_bins, K)`` float32 trial latents ``z_rn`` at bin centres.
    rates
        rat → ``(n_trials, n_units, n_bins)`` float32 true rates (Hz): mean intensity per
        bin (the spike count of a bin is Poisson with mean ``rate * bin_size``).
    trial_odor, trial_position
        rat → ``(n_trials,)`` each trial's odor and position (rows as the trials table).
    """

    config: SimulationConfig
    time: np.ndarray
    odor_early: np.ndarray
    odor_late: np.ndarray
    position_dirs: np.ndarray
    tuning: dict[str, np.ndarray]
    log_baseline: dict[str, np.ndarray]
    gain: dict[str, np.ndarray]
    offset: dict[str, np.ndarray]
    latents: dict[str, np.ndarray]
    rates: dict[str, np.ndarray]
    trial_odor: dict[str, np.ndarray]
    trial_position: dict[str, np.ndarray]

    @property
    def rats(self) -> tuple[str, ...]:
        """Rat names."""
        return self.config.rat_names

    def _odor_index(self, odor: str) -> int:
        try:
            return self.config.odors.index(str(odor))
        except ValueError:
            raise ConfigError(f"odor: unknown odor {odor!r}; odors are {self.config.odors}") from None

    def _position_index(self, odor: str, position: int | None) -> int:
        if position is None:
            return self._odor_index(odor)
        n = len(self.config.odors)
        if isinstance(position, bool) or int(position) != position or not 1 <= position <= n:
            raise ConfigError(f"position: expected an int in 1..{n}, got {position!r}")
        return int(position) - 1

    def _check_rat(self, rat: str) -> str:
        if rat not in self.rats:
            raise ConfigError(f"rat: unknown rat {rat!r}; rats are {self.rats}")
        return rat

    def _mean_latent_at(self, t: np.ndarray, odor: str, position: int | None) -> np.ndarray:
        o = self._odor_index(odor)
        p = self._position_index(odor, position)
        early, late, _ = _kernels(self.config, t)
        return early[:, None] * self.odor_early[o] + late[:, None] * (self.odor_late[o] + self.position_dirs[p])

    def condition_latent(self, odor: str, position: int | None = None) -> np.ndarray:
        """Mean latent trajectory of a condition, shared by every rat.

        Parameters
        ----------
        odor
            Odor name.
        position
            Sequence position (1-based); the odor's in-sequence position when ``None``.

        Returns
        -------
        numpy.ndarray
            ``(n_bins, K)`` latent at the bin centres (the mean of the trial latents
            over the private variability).
        """
        return self._mean_latent_at(self.time, odor, position)

    def condition_means(self) -> dict[tuple[str, int], np.ndarray]:
        """Mean latent trajectory of every (odor, position) condition.

        Returns
        -------
        dict
            ``(odor, position)`` → ``(n_bins, K)``, for all odors and positions
            (whether or not any rat experienced the combination).
        """
        n = len(self.config.odors)
        return {(o, p): self.condition_latent(o, p) for o in self.config.odors for p in range(1, n + 1)}

    def condition_rate(self, rat: str, odor: str, position: int | None = None, *, expected: bool = True) -> np.ndarray:
        """True rate of every unit of ``rat`` in a condition, experienced or not.

        Parameters
        ----------
        rat
            Rat name.
        odor
            Odor name (may be one ``rat`` never experienced).
        position
            Sequence position (1-based); the odor's in-sequence position when ``None``.
        expected
            ``True``: the expected rate over the rat's private trial-to-trial
            variability (what a trial-averaged PSTH, or the best imputation from
            another rat, estimates). ``False``: the rate at the mean latent.

        Returns
        -------
        numpy.ndarray
            ``(n_units, n_bins)`` rates in Hz, each bin the mean over its fine sub-bins
            (as :attr:`rates`).
        """
        rat = self._check_rat(rat)
        cfg = self.config
        n_sub = int(round(cfg.bin_size / cfg.fine_dt))
        t_fine = cfg.window[0] + cfg.fine_dt * (np.arange(cfg.n_bins * n_sub) + 0.5)
        zbar = self._mean_latent_at(t_fine, odor, position)  # (F, K)
        tuning = self.tuning[rat]
        drive = zbar @ tuning.T  # (F, U)
        eta = self.log_baseline[rat][None, :] + drive
        if expected:
            _, _, k_priv = _kernels(cfg, t_fine)
            var = cfg.gain_sd**2 * drive**2 + cfg.offset_sd**2 * (k_priv**2)[:, None] * np.sum(tuning**2, axis=1)
            eta = eta + 0.5 * var
        fine = np.exp(eta).T  # (U, F)
        return fine.reshape(fine.shape[0], cfg.n_bins, n_sub).mean(axis=-1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat name → array mapping as stored in ``ground_truth.npz``.

        Returns
        -------
        dict
            Global arrays plus ``"<rat>/<field>"`` entries per rat.
        """
        out: dict[str, np.ndarray] = {
            "config_json": np.array(json.dumps(self.config.to_dict(), sort_keys=True)),
            "time": self.time,
            "odor_early": self.odor_early,
            "odor_late": self.odor_late,
            "position_dirs": self.position_dirs,
        }
        for rat in self.rats:
            for name in ("tuning", "log_baseline", "gain", "offset", "latents", "rates", "trial_position"):
                out[f"{rat}/{name}"] = getattr(self, name)[rat]
            out[f"{rat}/trial_odor"] = np.asarray(self.trial_odor[rat], dtype=str)
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], source: str = "ground truth") -> GroundTruth:
        """Rebuild from :meth:`to_arrays` output.

        Parameters
        ----------
        arrays
            Name → array mapping (e.g. an opened ``.npz``).
        source
            Where the arrays came from, for error messages.

        Returns
        -------
        GroundTruth

        Raises
        ------
        DataError
            If an entry is missing.
        """
        try:
            config = SimulationConfig.from_dict(json.loads(str(arrays["config_json"])))
            per_rat = {
                name: {rat: np.asarray(arrays[f"{rat}/{name}"]) for rat in config.rat_names}
                for name in ("tuning", "log_baseline", "gain", "offset", "latents", "rates", "trial_position",
                             "trial_odor")
            }
            return cls(
                config=config,
                time=np.asarray(arrays["time"]),
                odor_early=np.asarray(arrays["odor_early"]),
                odor_late=np.asarray(arrays["odor_late"]),
                position_dirs=np.asarray(arrays["position_dirs"]),
                **per_rat,
            )
        except KeyError as exc:
            raise DataError(f"{source}: ground truth is missing entry {exc.args[0]!r}") from None


@dataclass
class Simulation:
    """An in-memory simulated experiment.

    Attributes
    ----------
    config
        The settings it was generated from.
    spike_times
        rat → one sorted float64 array of spike times (s, session clock) per unit.
    trials
        rat → trials table with exactly the columns :data:`TRIAL_COLUMNS`.
    counts
        rat → ``(n_trials, n_units, n_bins)`` int64 spike counts on the ground-truth grid.
    ground_truth
        The true latents, rates and parameters.
    """

    config: SimulationConfig
    spike_times: dict[str, list[np.ndarray]]
    trials: dict[str, pd.DataFrame]
    counts: dict[str, np.ndarray]
    ground_truth: GroundTruth

    @property
    def rats(self) -> tuple[str, ...]:
        """Rat names."""
        return self.config.rat_names

    def to_modality(self, rat: str) -> xr.DataArray:
        """The binned counts of one rat as a modality (as read from its NWB file).

        Parameters
        ----------
        rat
            Rat name.

        Returns
        -------
        xarray.DataArray
            Aligned to ``odor_onset`` over ``config.window``, labels odor, position,
            in_sequence, correct.
        """
        from neurovamp.data.modality import make_modality

        if rat not in self.rats:
            raise ConfigError(f"rat: unknown rat {rat!r}; rats are {self.rats}")
        trials = self.trials[rat]
        return make_modality(
            self.counts[rat],
            animal=rat,
            bin_size=self.config.bin_size,
            window_start=self.config.window[0],
            trial_labels={c: trials[c].to_numpy() for c in ("odor", "position", "in_sequence", "correct")},
            event_time=trials["odor_onset"].to_numpy(),
            event="odor_onset",
        )


def _make_trials(config: SimulationConfig, rat: str, rng: np.random.Generator) -> pd.DataFrame:
    """Sequences of the rat's odors with out-of-sequence substitutions and timing."""
    odors = config.odors
    allowed = config.odors_of(rat)
    n = config.n_trials[config.rat_names.index(rat)]
    rows: list[tuple[str, int, bool, bool]] = []  # odor, position, in_sequence, new sequence
    while len(rows) < n:
        for k, odor in enumerate(allowed):
            if len(rows) == n:
                break
            position = odors.index(odor) + 1
            in_seq = True
            if k > 0 and rng.random() < config.out_of_sequence_rate:
                others = [o for o in allowed if o != odor]
                odor = others[int(rng.integers(len(others)))]
                in_seq = False
            rows.append((odor, position, in_seq, k == 0))
    in_sequence = np.array([r[2] for r in rows], dtype=bool)
    p_correct = np.where(in_sequence, config.correct_rate_in_sequence, config.correct_rate_out_of_sequence)
    correct = rng.random(n) < p_correct
    length = config.window[1] - config.window[0]
    gaps = rng.uniform(config.iti[0], config.iti[1], n)
    gaps += np.array([r[3] for r in rows], dtype=float) * config.sequence_gap
    gaps[0] = 1.0 + config.sequence_gap  # lead-in before the first trial
    gaps = np.round(gaps, 3)
    starts = np.round(np.cumsum(gaps) + length * np.arange(n), 3)
    onsets = np.round(starts - config.window[0], 6)
    return pd.DataFrame(
        {
            "start_time": starts.astype(np.float64),
            "stop_time": np.round(starts + length, 6).astype(np.float64),
            "odor_onset": onsets.astype(np.float64),
            "odor": pd.Series([r[0] for r in rows], dtype=object),
            "position": np.array([r[1] for r in rows], dtype=np.int64),
            "in_sequence": in_sequence,
            "correct": correct.astype(bool),
        },
        columns=list(TRIAL_COLUMNS),
    )


def _window_spikes(
    rng: np.random.Generator,
    config: SimulationConfig,
    z_fine: np.ndarray,
    onsets: np.ndarray,
    tuning: np.ndarray,
    log_baseline: np.ndarray,
    chunk: int = 16,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw spikes inside the trial windows for the given units.

    Returns true rates and counts ``(n_trials, n_units, n_bins)`` and the spikes as
    ``(unit_index, time)`` arrays.
    """
    n_trials, n_fine, _ = z_fine.shape
    n_units = tuning.shape[0]
    n_sub = int(round(config.bin_size / config.fine_dt))
    n_bins = n_fine // n_sub
    rates = np.empty((n_trials, n_units, n_bins))
    counts = np.empty((n_trials, n_units, n_bins), dtype=np.int64)
    spike_units: list[np.ndarray] = []
    spike_times: list[np.ndarray] = []
    for lo in range(0, n_trials, chunk):
        hi = min(lo + chunk, n_trials)
        eta = log_baseline[None, :, None] + np.einsum("uk,tfk->tuf", tuning, z_fine[lo:hi])
        fine = np.exp(eta).reshape(hi - lo, n_units, n_bins, n_sub)
        rate = fine.mean(axis=-1)
        cnt = rng.poisson(rate * config.bin_size)
        rates[lo:hi] = rate
        counts[lo:hi] = cnt
        ti, ui, bi = np.nonzero(cnt)
        n_each = cnt[ti, ui, bi]
        total = int(n_each.sum())
        if total == 0:
            continue
        weights = fine[ti, ui, bi]  # (nnz, n_sub)
        cdf = np.cumsum(weights, axis=1)
        cdf /= cdf[:, -1:]
        owner = np.repeat(np.arange(ti.size), n_each)
        u = rng.random(total)
        sub = np.minimum((cdf[owner] < u[:, None]).sum(axis=1), n_sub - 1)
        jitter = rng.uniform(_EDGE_GUARD, 1.0 - _EDGE_GUARD, total)
        times = (
            onsets[lo + ti[owner]]
            + config.window[0]
            + bi[owner] * config.bin_size
            + (sub + jitter) * config.fine_dt
        )
        spike_units.append(ui[owner])
        spike_times.append(times)
    units = np.concatenate(spike_units) if spike_units else np.empty(0, dtype=np.int64)
    times = np.concatenate(spike_times) if spike_times else np.empty(0)
    return rates, counts, units, times


def _gap_spikes(
    rng: np.random.Generator, trials: pd.DataFrame, log_baseline: np.ndarray, tail: float
) -> tuple[np.ndarray, np.ndarray]:
    """Baseline-rate spikes outside the trial windows (session start to last trial + tail)."""
    starts = trials["start_time"].to_numpy()
    stops = trials["stop_time"].to_numpy()
    gap_lo = np.concatenate([[0.0], stops])
    gap_hi = np.concatenate([starts, [stops[-1] + tail]])
    lengths = np.clip(gap_hi - gap_lo, 0.0, None)
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    n_each = rng.poisson(np.exp(log_baseline) * cum[-1])
    units = np.repeat(np.arange(log_baseline.size), n_each)
    pos = rng.uniform(0.0, cum[-1], units.size)
    which = np.clip(np.searchsorted(cum, pos, side="right") - 1, 0, lengths.size - 1)
    times = gap_lo[which] + (pos - cum[which])
    return units, times


def _split_by_unit(units: np.ndarray, times: np.ndarray, n_units: int) -> list[np.ndarray]:
    order = np.lexsort((times, units))
    units, times = units[order], times[order]
    bounds = np.searchsorted(units, np.arange(n_units + 1))
    return [np.ascontiguousarray(times[bounds[i] : bounds[i + 1]], dtype=np.float64) for i in range(n_units)]


def simulate_experiment(config: SimulationConfig | None = None) -> Simulation:
    """Simulate a multi-rat odor-sequence experiment in memory.

    Parameters
    ----------
    config
        Settings; :class:`SimulationConfig` defaults (5 rats) when ``None``.

    Returns
    -------
    Simulation
        Spike times, trials tables, binned counts and ground truth per rat. The same
        configuration (seed included) always gives identical output.

    Notes
    -----
    A unit that fires no spike in any trial window (the NWB reader rejects silent units)
    has its window spikes drawn again; this only happens at very low rates.
    """
    config = SimulationConfig() if config is None else config
    if not isinstance(config, SimulationConfig):
        raise ConfigError(f"config: expected a SimulationConfig, got {type(config).__name__}")
    root = np.random.SeedSequence(config.seed)
    shared_seq, *rat_seqs = root.spawn(1 + config.n_rats)
    shared = np.random.default_rng(shared_seq)
    n_odors, dim = len(config.odors), config.latent_dim
    odor_early = _spread_directions(shared, n_odors, dim, config.odor_scale)
    odor_late = _spread_directions(shared, n_odors, dim, config.odor_scale)
    position_dirs = shared.standard_normal((n_odors, dim)) * (config.position_scale / np.sqrt(dim))

    n_sub = int(round(config.bin_size / config.fine_dt))
    t_fine = config.window[0] + config.fine_dt * (np.arange(config.n_bins * n_sub) + 0.5)
    time = config.time
    k_fine = _kernels(config, t_fine)
    k_bin = _kernels(config, time)

    def trial_latents(kernels: tuple[np.ndarray, ...], o: np.ndarray, p: np.ndarray, g: np.ndarray,
                      d: np.ndarray) -> np.ndarray:
        early, late, priv = kernels
        zbar = early[None, :, None] * odor_early[o][:, None, :] + late[None, :, None] * (
            odor_late[o] + position_dirs[p]
        )[:, None, :]
        return g[:, None, None] * zbar + priv[None, :, None] * d[:, None, :]

    spikes: dict[str, list[np.ndarray]] = {}
    tables: dict[str, pd.DataFrame] = {}
    counts_by_rat: dict[str, np.ndarray] = {}
    truth: dict[str, dict[str, np.ndarray]] = {
        k: {} for k in ("tuning", "log_baseline", "gain", "offset", "latents", "rates", "trial_odor",
                        "trial_position")
    }
    lo_rate, hi_rate = np.log(config.baseline_range[0]), np.log(config.baseline_range[1])
    for r, rat in enumerate(config.rat_names):
        rng = np.random.default_rng(rat_seqs[r])
        n_units = config.n_units[r]
        tuning = rng.standard_normal((n_units, dim))
        norms = rng.uniform(0.5, 1.0, (n_units, 1)) * config.tuning_scale
        tuning *= norms / np.linalg.norm(tuning, axis=1, keepdims=True)
        log_baseline = np.clip(
            np.log(config.baseline_rate) + config.baseline_spread * rng.standard_normal(n_units), lo_rate, hi_rate
        )
        trials = _make_trials(config, rat, rng)
        n_trials = len(trials)
        o_idx = np.array([config.odors.index(o) for o in trials["odor"]])
        p_idx = trials["position"].to_numpy() - 1
        gain = 1.0 + config.gain_sd * rng.standard_normal(n_trials)
        offset = config.offset_sd * rng.standard_normal((n_trials, dim))
        latents = trial_latents(k_bin, o_idx, p_idx, gain, offset)
        z_fine = trial_latents(k_fine, o_idx, p_idx, gain, offset)
        onsets = trials["odor_onset"].to_numpy()

        rates, counts, w_units, w_times = _window_spikes(rng, config, z_fine, onsets, tuning, log_baseline)
        # A unit silent in every trial window would be rejected by the NWB reader: redraw it.
        for _ in range(_MAX_REDRAWS):
            silent = np.flatnonzero(counts.sum(axis=(0, 2)) == 0)
            if silent.size == 0:
                break
            _, c2, u2, t2 = _window_spikes(rng, config, z_fine, onsets, tuning[silent], log_baseline[silent])
            counts[:, silent] = c2
            keep = ~np.isin(w_units, silent)
            w_units = np.concatenate([w_units[keep], silent[u2]])
            w_times = np.concatenate([w_times[keep], t2])
        else:  # pragma: no cover - needs absurdly low rates
            raise ConfigError(
                f"SimulationConfig: rat {rat!r} has units that never fire in the trial windows; "
                "raise baseline_rate or n_trials"
            )
        g_units, g_times = _gap_spikes(rng, trials, log_baseline, tail=1.0 + config.sequence_gap)
        spikes[rat] = _split_by_unit(
            np.concatenate([w_units, g_units]), np.concatenate([w_times, g_times]), n_units
        )
        tables[rat] = trials
        counts_by_rat[rat] = counts
        truth["tuning"][rat] = tuning
        truth["log_baseline"][rat] = log_baseline
        truth["gain"][rat] = gain
        truth["offset"][rat] = offset
        truth["latents"][rat] = latents.astype(np.float32)
        truth["rates"][rat] = rates.astype(np.float32)
        truth["trial_odor"][rat] = trials["odor"].to_numpy(dtype=str)
        truth["trial_position"][rat] = trials["position"].to_numpy()
    ground_truth = GroundTruth(
        config=config,
        time=time,
        odor_early=odor_early,
        odor_late=odor_late,
        position_dirs=position_dirs,
        **truth,
    )
    return Simulation(config=config, spike_times=spikes, trials=tables, counts=counts_by_rat,
                      ground_truth=ground_truth)


def _legacy_outputs(path: Path) -> list[str]:
    """What a simulation folder written before manifests holds (its rats from simulation.json)."""
    try:
        rats = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8")).get("rat_names") or []
    except (OSError, ValueError, AttributeError):
        rats = []
    return [CONFIG_FILE, GROUND_TRUTH_FILE, *(f"{rat}.nwb" for rat in rats if isinstance(rat, str))]


def _looks_like_simulation(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file() or not any(path.iterdir())


def write_simulation(sim: Simulation, out_dir: str | os.PathLike, *, overwrite: bool = False) -> dict[str, Any]:
    """Write a simulation as one NWB file per rat plus its ground truth.

    The folder is assembled under a temporary name and moved into place, so
    ``out_dir`` holds either nothing, the previous complete output, or the new one.

    Parameters
    ----------
    sim
        Output of :func:`simulate_experiment`.
    out_dir
        Folder to create: ``<rat>.nwb`` per rat (subject id = rat name; trials table
        with :data:`TRIAL_COLUMNS`; align to ``odor_onset``), ``ground_truth.npz``
        (read with :func:`load_ground_truth`) and ``simulation.json`` (the config).
    overwrite
        Replace an existing ``out_dir``. Only a previous simulation folder (one with
        ``simulation.json``) or an empty folder is ever replaced.

    Returns
    -------
    dict
        ``{"nwb": {rat: Path}, "ground_truth": Path, "config": Path}`` (final paths).

    Raises
    ------
    OutputExistsError
        If ``out_dir`` exists and ``overwrite`` is false, or it exists and is not a
        simulation folder.
    """
    from neurovamp.io.nwb import write_nwb

    if not isinstance(sim, Simulation):
        raise ConfigError(f"sim: expected a Simulation, got {type(sim).__name__}")
    out_dir = Path(out_dir)
    if overwrite and out_dir.exists():
        if not out_dir.is_dir() or not _looks_like_simulation(out_dir):
            raise OutputExistsError(
                f"{out_dir}: exists and is not a simulation folder (no {CONFIG_FILE}); refusing to replace it"
            )
    config_json = json.dumps(sim.config.to_dict(), indent=2, sort_keys=True)
    replacing = overwrite and out_dir.is_dir()
    if replacing:  # written beside it, then moved in file by file: a user's own files in out_dir stay
        names = [CONFIG_FILE, GROUND_TRUTH_FILE, *(f"{rat}.nwb" for rat in sim.rats)]
        check_no_foreign(out_dir, names, legacy=_legacy_outputs(out_dir), what="simulate --overwrite")
        check_can_write(out_dir)
        target = out_dir.with_name(f".{out_dir.name}.new")
        shutil.rmtree(target, ignore_errors=True)
    else:
        target = out_dir
    with atomic_output(target, overwrite=overwrite, directory=True) as tmp:
        for rat in sim.rats:
            write_nwb(
                tmp / f"{rat}.nwb",
                subject_id=rat,
                spike_times=sim.spike_times[rat],
                trials=sim.trials[rat],
                spike_time_resolution=sim.config.fine_dt,
                session_description=(
                    f"Simulated odor-sequence experiment (neurovamp.simulate), subject {rat}; "
                    "align trials to odor_onset."
                ),
                notes=(
                    "Simulated data: spikes from an inhomogeneous Poisson process driven by a latent shared "
                    "across rats. Ground truth in ground_truth.npz beside this file. Settings: "
                    + json.dumps(sim.config.to_dict(), sort_keys=True)
                ),
                session_start_time=_SESSION_START,
            )
        np.savez_compressed(tmp / GROUND_TRUTH_FILE, **sim.ground_truth.to_arrays())
        (tmp / CONFIG_FILE).write_text(config_json + "\n", encoding="utf-8")
        if not replacing:
            record_outputs(tmp, [p.name for p in tmp.iterdir()])
    if replacing:
        remove_outputs(out_dir, legacy=_legacy_outputs(out_dir))
        move_into(target, out_dir, last=[CONFIG_FILE])
    return {
        "nwb": {rat: out_dir / f"{rat}.nwb" for rat in sim.rats},
        "ground_truth": out_dir / GROUND_TRUTH_FILE,
        "config": out_dir / CONFIG_FILE,
    }


def load_ground_truth(out_dir: str | os.PathLike) -> GroundTruth:
    """Read the ground truth of a simulation folder written by :func:`write_simulation`.

    Parameters
    ----------
    out_dir
        The simulation folder (or its ``ground_truth.npz``).

    Returns
    -------
    GroundTruth

    Raises
    ------
    DataError
        If the file is missing or incomplete.
    """
    path = Path(out_dir)
    if path.is_dir():
        path = path / GROUND_TRUTH_FILE
    if not path.is_file():
        raise DataError(f"{path}: ground truth file not found; expected a folder written by write_simulation")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable ground truth .npz ({exc})") from None
    return GroundTruth.from_arrays(arrays, source=str(path))


def simulate(
    out_dir: str | os.PathLike, *, seed: int = 0, small: bool = False, overwrite: bool = False,
    animals: int | None = None,
) -> Path:
    """Simulate an experiment and write it to ``out_dir`` (NWB per rat + ground truth).

    Parameters
    ----------
    out_dir
        Output folder (see :func:`write_simulation`).
    seed
        Seed of every random draw.
    small
        Use :meth:`SimulationConfig.small` (3 rats, ~60 trials each) instead of the
        5-rat defaults.
    overwrite
        Replace an existing simulation folder.
    animals
        Number of animals (>= 2): :meth:`SimulationConfig.many` with ``small`` choosing
        small or release-sized animals, each with its own units and odors. None: the
        3-rat (``small``) or 5-rat experiment.

    Returns
    -------
    Path
        ``out_dir``.
    """
    if animals is not None:
        config = SimulationConfig.many(animals, seed=seed, small=small)
    else:
        config = SimulationConfig.small(seed=seed) if small else SimulationConfig(seed=seed)
    check_writable(out_dir, overwrite, kind="folder")  # before simulating
    check_can_write(out_dir)
    write_simulation(simulate_experiment(config), out_dir, overwrite=overwrite)
    return Path(out_dir)

