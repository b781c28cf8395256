"""Models: MMVM VAE and baselines (networks, likelihoods, priors), the estimator, training.

The names are imported on first use (torch only then), so the settings
(:mod:`~neurovamp.models.config`: ``ModelConfig``, ``TrainingConfig``) are readable
without torch::

    import neurovamp as nv
    model = nv.models.MultiAnimalModel("mmvm", config=nv.models.ModelConfig(latent_dim=8))

Modules: :mod:`~neurovamp.models.config` (``ModelConfig``, ``TrainingConfig``),
:mod:`~neurovamp.models.module` (``MultiAnimalVAE``, the torch module),
:mod:`~neurovamp.models.networks`, :mod:`~neurovamp.models.likelihoods`,
:mod:`~neurovamp.models.gaussians` (KL, sampling), :mod:`~neurovamp.models.aggregation`
(PoE/MoE/MoPoE/AVG), :mod:`~neurovamp.models.objectives` (MMVM regulariser),
:mod:`~neurovamp.models.training` (the training engine) and
:mod:`~neurovamp.models.estimator` (``MultiAnimalModel``, the user-facing estimator).
"""

from __future__ import annotations

from neurovamp import _lazy_face

_EXPORTS = {
    "ModelConfig": "neurovamp.models.config",
    "TrainingConfig": "neurovamp.models.config",
    "MultiAnimalModel": "neurovamp.models.estimator",
    "MultiAnimalVAE": "neurovamp.models.module",
    "fit_module": "neurovamp.models.training",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = _lazy_face(globals(), _EXPORTS)
