"""Data layer: modalities, the multi-animal container, pairing across animals, torch batches.

Every public function of the data modules is available here, imported on first use::

    import neurovamp as nv
    tree = nv.io.load_recordings(paths, event="odor_onset", window=(0.0, 1.0), bin_size=0.02)
    paired = nv.data.pair_trials(tree, by="odor")

Modules: :mod:`~neurovamp.data.modality` (one animal's ``(trial, unit, time)`` counts),
:mod:`~neurovamp.data.dataset` (the multi-animal ``DataTree``, NetCDF files),
:mod:`~neurovamp.data.pairing` (``PairedData``), :mod:`~neurovamp.data.tensors` (torch
batches; torch is imported only when ``TensorBatcher`` is first used).
"""

from __future__ import annotations

from neurovamp import _lazy_face

_EXPORTS = {
    # modality
    "make_modality": "neurovamp.data.modality",
    "validate_modality": "neurovamp.data.modality",
    "label_names": "neurovamp.data.modality",
    "bin_edges": "neurovamp.data.modality",
    # dataset
    "make_dataset": "neurovamp.data.dataset",
    "animals": "neurovamp.data.dataset",
    "get_modality": "neurovamp.data.dataset",
    "save_dataset": "neurovamp.data.dataset",
    "load_dataset": "neurovamp.data.dataset",
    "dataset_nodes": "neurovamp.data.dataset",
    # pairing
    "PairedData": "neurovamp.data.pairing",
    "pair_trials": "neurovamp.data.pairing",
    "select_window": "neurovamp.data.pairing",
    # tensors
    "TensorBatcher": "neurovamp.data.tensors",
    # settings and labels
    "PairingSettings": "neurovamp.data.settings",
    "parse_assignments": "neurovamp.data.labels",
    "coerce_label_values": "neurovamp.data.labels",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = _lazy_face(globals(), _EXPORTS)
