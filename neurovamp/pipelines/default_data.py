"""The embedded default dataset: a small simulated experiment generated on first use.

The real five-rat release cannot ship with the package (users download it themselves,
see ``datasets/README.md``), so demos, notebooks and quick starts use a small simulated
experiment instead: :meth:`neurovamp.simulate.SimulationConfig.small` with the fixed seed
:data:`DEFAULT_SEED` (3 rats with 24/30/18 units and 60/64/56 trials; ``rat3`` never
smells odor ``E``). It is generated reproducibly the first time it is asked for (about a
second) into a cache folder and reused afterwards.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from neurovamp._jsonfile import json_safe, read_json
from neurovamp.errors import DataError
from neurovamp.simulate import (
    CONFIG_FILE,
    GROUND_TRUTH_FILE,
    SimulationConfig,
    simulate_experiment,
    write_simulation,
)

__all__ = ["DEFAULT_SEED", "DEFAULT_NAME", "default_config", "default_dataset_path", "default_nwb_paths"]

#: Seed of the default dataset (never change it; bump :data:`DEFAULT_NAME` instead).
DEFAULT_SEED = 2024
#: Folder name of the default dataset inside the cache; versioned so that a future
#: change of the simulator gets a new folder instead of silently different data.
DEFAULT_NAME = "default-v1"
#: Environment variable naming the cache root (the folder that holds ``default-v1``).
ENV_VAR = "NEUROVAMP_DATA"


def default_config() -> SimulationConfig:
    """Settings of the default dataset.

    Returns
    -------
    SimulationConfig
        ``SimulationConfig.small(seed=DEFAULT_SEED)``.
    """
    return SimulationConfig.small(seed=DEFAULT_SEED)


def _cache_root(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "neurovamp"


def _is_complete(path: Path, config: SimulationConfig) -> bool:
    """Whether ``path`` holds the full default dataset for ``config``."""
    try:
        stored = read_json(path / CONFIG_FILE)
    except DataError:
        return False
    if stored != json_safe(config.to_dict()):
        return False
    if not zipfile.is_zipfile(path / GROUND_TRUTH_FILE):
        return False
    for rat in config.rat_names:
        nwb = path / f"{rat}.nwb"
        if not nwb.is_file() or nwb.stat().st_size == 0:
            return False
    return True


def default_dataset_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the default simulated dataset, generating it on first use.

    The folder holds ``rat1.nwb``, ``rat2.nwb``, ``rat3.nwb`` (align trials to
    ``odor_onset``), ``ground_truth.npz`` (:func:`neurovamp.simulate.load_ground_truth`)
    and ``simulation.json``. It is written under a temporary name and renamed into
    place, so an interrupted run never leaves a partial dataset behind; an incomplete or
    outdated folder found at that place is regenerated.

    Parameters
    ----------
    cache_dir
        Cache root; the dataset lives in ``<cache_dir>/default-v1``. Defaults to
        ``$NEUROVAMP_DATA`` when set, else ``~/.cache/neurovamp``.

    Returns
    -------
    Path
        ``<cache root>/default-v1``.
    """
    config = default_config()
    path = _cache_root(cache_dir) / DEFAULT_NAME
    if _is_complete(path, config):
        return path
    if path.exists() or path.is_symlink():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    write_simulation(simulate_experiment(config), path, overwrite=True)
    return path


def default_nwb_paths(cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """NWB files of the default dataset (one per rat), generating it on first use.

    Parameters
    ----------
    cache_dir
        Cache root, as for :func:`default_dataset_path`.

    Returns
    -------
    list of Path
        ``[<root>/default-v1/rat1.nwb, ...]`` in rat order.
    """
    path = default_dataset_path(cache_dir)
    return [path / f"{rat}.nwb" for rat in default_config().rat_names]
