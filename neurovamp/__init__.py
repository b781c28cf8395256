"""neurovamp: multi-animal models of shared neural structure.

Data flows one way: NWB files (:mod:`neurovamp.io`) → per-animal modalities and the
multi-animal set (:mod:`neurovamp.data`) → paired, split samples → models
(:mod:`neurovamp.models`) → analysis (:mod:`neurovamp.analysis`).

The names most users need are available here directly (imported lazily, so that
``import neurovamp`` stays cheap)::

    import neurovamp as nv
    tree = nv.load_recordings(paths, event="odor_onset", window=(0.0, 0.5), bin_size=0.01)
    paired = nv.pair_trials(tree, by="odor")
    model = nv.MultiAnimalModel("mmvm").fit(paired)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "read_nwb": "neurovamp.io.nwb",
    "write_nwb": "neurovamp.io.nwb",
    "convert_release": "neurovamp.io.release",
    "make_modality": "neurovamp.data.modality",
    "make_dataset": "neurovamp.data.dataset",
    "load_recordings": "neurovamp.data.dataset",
    "save_dataset": "neurovamp.data.dataset",
    "load_dataset": "neurovamp.data.dataset",
    "pair_trials": "neurovamp.data.pairing",
    "select_window": "neurovamp.data.pairing",
    "PairedData": "neurovamp.data.pairing",
    "ModelConfig": "neurovamp.models.config",
    "MultiAnimalModel": "neurovamp.models.estimator",
    "default_dataset_path": "neurovamp.default_data",
    "fit_run": "neurovamp.run",
    "load_run": "neurovamp.run",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Import the public names listed in ``__all__`` on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'neurovamp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
