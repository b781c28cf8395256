"""Pipelines: the commands that write a folder, composed from the library's floors.

The top floor (above :mod:`neurovamp.analysis`, below :mod:`neurovamp.cli`); nothing
below it imports it. Every public name is imported on first use::

    import neurovamp as nv
    model = nv.pipelines.fit_run(paths, "runs/mmvm", pair_by="odor")   # also nv.fit_run

Modules: :mod:`~neurovamp.pipelines.fit` (run folders: ``fit_run``, ``load_run``, behind
``neurovamp fit``/``evaluate``/``impute``), :mod:`~neurovamp.pipelines.demo` (``neurovamp
demo``), :mod:`~neurovamp.pipelines.paper` (``neurovamp paper``),
:mod:`~neurovamp.pipelines.default_data` (the embedded simulated data set),
:mod:`~neurovamp.pipelines.folder` (``RunFolder``: marker file, status, resume checks and
overwrite of every folder these commands write).
"""

from __future__ import annotations

from neurovamp import _lazy_face

_EXPORTS = {
    # fit (run folders)
    "fit_run": "neurovamp.pipelines.fit",
    "load_run": "neurovamp.pipelines.fit",
    "build_paired": "neurovamp.pipelines.fit",
    "read_run_info": "neurovamp.pipelines.fit",
    # the folder rules every command shares
    "RunFolder": "neurovamp.pipelines.folder",
    # demo and paper
    "run_demo": "neurovamp.pipelines.demo",
    "run_paper": "neurovamp.pipelines.paper",
    # the embedded data
    "default_dataset_path": "neurovamp.pipelines.default_data",
    "default_nwb_paths": "neurovamp.pipelines.default_data",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = _lazy_face(globals(), _EXPORTS)
