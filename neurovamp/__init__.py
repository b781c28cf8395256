"""neurovamp: multi-animal models of shared neural structure.

Data flows one way: NWB files (:mod:`neurovamp.io`) → per-animal modalities and the
multi-animal set (:mod:`neurovamp.data`) → paired, split samples → models
(:mod:`neurovamp.models`) → analysis (:mod:`neurovamp.analysis`).
"""

__version__ = "0.1.0"
