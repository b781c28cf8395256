"""Models: MMVM VAE and baselines (networks, likelihoods, priors), the estimator, training.

Modules: :mod:`~neurovamp.models.config` (``ModelConfig``), :mod:`~neurovamp.models.module`
(``MultiAnimalVAE``), :mod:`~neurovamp.models.networks`, :mod:`~neurovamp.models.likelihoods`,
:mod:`~neurovamp.models.gaussians` (KL, sampling), :mod:`~neurovamp.models.aggregation`
(PoE/MoE/MoPoE/AVG), :mod:`~neurovamp.models.objectives` (MMVM regulariser).
"""

from neurovamp.models.config import ModelConfig
from neurovamp.models.module import MultiAnimalVAE

__all__ = ["ModelConfig", "MultiAnimalVAE"]
