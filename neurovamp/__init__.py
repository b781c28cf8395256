"""neurovamp: multi-animal models of shared neural structure.

Data flows one way: NWB files (:mod:`neurovamp.io`) → per-animal modalities and the
multi-animal set (:mod:`neurovamp.data`) → paired, split samples → models
(:mod:`neurovamp.models`) → analysis (:mod:`neurovamp.analysis`).

The names most users need are available here directly (imported lazily, so that
``import neurovamp`` stays cheap and imports neither torch nor matplotlib)::

    import neurovamp as nv
    tree = nv.load_recordings(paths, event="odor_onset", window=(0.0, 0.5), bin_size=0.01)
    paired = nv.pair_trials(tree, by="odor")
    model = nv.MultiAnimalModel("mmvm").fit(paired)
    rates = nv.impute_condition_mean(model, paired, target="rat3", condition={"odor": ["E"]})
    metrics = nv.evaluate_model(model, paired)

Each floor has its own face with every public function of its modules (reachable as
``nv.io``, ``nv.data``, ``nv.models``, ``nv.analysis``, ``nv.pipelines`` after ``import neurovamp as nv``):
:mod:`neurovamp.io`, :mod:`neurovamp.data`, :mod:`neurovamp.models`,
:mod:`neurovamp.analysis` (e.g. ``nv.analysis.bits_per_spike``, ``nv.analysis.plot_latents``),
:mod:`neurovamp.pipelines` (the commands that write a folder: ``fit_run``, ``run_demo``, ``run_paper``).

Names
-----
A face never exports a name that is also one of its package's submodules: after
``import neurovamp.analysis.impute`` Python binds ``neurovamp.analysis.impute`` to the
*module*, so a function of that name would mean one thing before the import and another
after it. The imputation function (``neurovamp.analysis.impute.impute``, where existing
code keeps finding it) is therefore exported as ``impute_rates`` (it returns each
sample's imputed rates in Hz; ``impute_condition_mean`` averages them over the
condition), here and in :mod:`neurovamp.analysis` alike, so one name means one thing on
every face. The faces' tests (``tests/test_faces.py``) hold every face to this rule.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__version__ = "0.1.0"


def _lazy_face(
    namespace: dict[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` that import a face's names on first access.

    The one implementation of the lazy faces (``neurovamp``, ``neurovamp.io``,
    ``neurovamp.data``, ``neurovamp.analysis``), after CEBRA's ``cebra/__init__.py``.
    Public submodules are reachable as attributes too, imported on first access
    (``nv.analysis.plots`` after a bare ``import neurovamp as nv``).

    Parameters
    ----------
    namespace
        The face module's ``globals()``; a name is cached there once imported.
    exports
        Public name → ``"module"`` (the module's attribute of that name) or
        ``"module:attribute"`` (exported under another name).

    Returns
    -------
    tuple
        ``(__getattr__, __dir__)`` to assign in the face module: ``dir()`` lists the
        public names (``__all__``) and the submodules.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is not None:
            module, _, attribute = target.partition(":")
            value = getattr(importlib.import_module(module), attribute or name)
        elif name in _submodules(namespace):
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace.get("__all__", exports), *_submodules(namespace)})

    return __getattr__, __dir__


def _submodules(namespace: Mapping[str, Any]) -> set[str]:
    """Names of the public modules and packages inside a package (from its ``__path__``)."""
    import pkgutil

    return {info.name for info in pkgutil.iter_modules(namespace.get("__path__", ())) if not info.name.startswith("_")}


_EXPORTS = {
    # io
    "read_nwb": "neurovamp.io.nwb",
    "write_nwb": "neurovamp.io.nwb",
    "convert_release": "neurovamp.io.release",
    # data
    "make_modality": "neurovamp.data.modality",
    "make_dataset": "neurovamp.data.dataset",
    "load_recordings": "neurovamp.io.recordings",
    "save_dataset": "neurovamp.data.dataset",
    "load_dataset": "neurovamp.data.dataset",
    "animals": "neurovamp.data.dataset",
    "get_modality": "neurovamp.data.dataset",
    "pair_trials": "neurovamp.data.pairing",
    "select_window": "neurovamp.data.pairing",
    "PairedData": "neurovamp.data.pairing",
    # models
    "ModelConfig": "neurovamp.models.config",
    "MultiAnimalModel": "neurovamp.models.estimator",
    # analysis
    "model_latents": "neurovamp.analysis.evaluate",
    "evaluate_model": "neurovamp.analysis.evaluate",
    "read_metrics": "neurovamp.analysis.evaluate",
    "write_metrics": "neurovamp.analysis.evaluate",
    "impute_rates": "neurovamp.analysis.impute:impute",
    "impute_condition_mean": "neurovamp.analysis.impute",
    "decode_labels": "neurovamp.analysis.decode",
    "decode_shared": "neurovamp.analysis.decode",
    "decode_over_time": "neurovamp.analysis.decode",
    "linear_alignment": "neurovamp.analysis.alignment",
    "alignment_matrix": "neurovamp.analysis.alignment",
    "condition_average": "neurovamp.analysis.alignment",
    "bits_per_spike": "neurovamp.analysis.metrics",
    "psth_r2": "neurovamp.analysis.metrics",
    "write_figures": "neurovamp.analysis.figures",
    "plot_latents": "neurovamp.analysis.plots",
    # pipelines and the embedded data
    "default_dataset_path": "neurovamp.pipelines.default_data",
    "default_nwb_paths": "neurovamp.pipelines.default_data",
    "simulate_experiment": "neurovamp.simulate",
    "load_ground_truth": "neurovamp.simulate",
    "fit_run": "neurovamp.pipelines.fit",
    "load_run": "neurovamp.pipelines.fit",
}

__all__ = ["__version__", *_EXPORTS]

__getattr__, __dir__ = _lazy_face(globals(), _EXPORTS)
