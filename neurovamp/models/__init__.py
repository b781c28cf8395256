"""Models: MMVM VAE and baselines (networks, likelihoods, priors), the estimator, training.

Modules: :mod:`~neurovamp.models.config` (``ModelConfig``), :mod:`~neurovamp.models.module`
(``MultiAnimalVAE``, the torch module), :mod:`~neurovamp.models.networks`,
:mod:`~neurovamp.models.likelihoods`, :mod:`~neurovamp.models.gaussians` (KL, sampling),
:mod:`~neurovamp.models.aggregation` (PoE/MoE/MoPoE/AVG), :mod:`~neurovamp.models.objectives`
(MMVM regulariser), :mod:`~neurovamp.models.training` (the training engine) and
:mod:`~neurovamp.models.estimator` (``MultiAnimalModel``, the user-facing estimator).
"""

from neurovamp.models.config import ModelConfig
from neurovamp.models.estimator import MultiAnimalModel
from neurovamp.models.module import MultiAnimalVAE
from neurovamp.models.training import TrainingConfig, fit_module

__all__ = ["ModelConfig", "MultiAnimalModel", "MultiAnimalVAE", "TrainingConfig", "fit_module"]
