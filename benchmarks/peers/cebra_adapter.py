"""CEBRA multi-session (one encoder per animal) on neurovamp's paired data.

Settings: CEBRA's documented defaults for a data set of this size (about 10^4 time
points per animal): ``model_architecture="offset10-model"`` (a 10-bin receptive field,
the length of neurovamp's sub-windows), ``batch_size=512``, ``learning_rate=3e-4``,
``temperature=1``, ``distance="cosine"``, ``output_dimension`` = neurovamp's latent
dimension, multi-session training with a **discrete label = the pairing condition**
(odor) of every time bin, ``max_iterations`` from the caller (CEBRA's default is 10 000;
the benchmark uses fewer on its 2 shared cores and says how many).

CEBRA's discrete multi-session sampler needs every label in every session (a session
without some label fails inside ``sample_conditional`` with an ``IndexError``), so CEBRA
trains on the conditions *every* animal has (here odors A-C: ``rat4`` never smelled D);
the D trials of the other rats are embedded by the trained encoders and scored like
every other test trial.

Data: each animal's *training* trials (of those conditions), concatenated along time into one session
(CEBRA's time-series input, ``(time, unit)`` counts per bin). The offset10 model's
receptive field is exactly one neurovamp sub-window, so ``latents`` feeds each
sub-window ``(unit, 10 bins)`` through the animal's trained CEBRA encoder (the embedding
``transform`` gives at that sub-window's centre bin, without edge padding) and has the
same ``(trial, time, latent)`` layout as neurovamp's. CEBRA has no decoder: it cannot generate or impute.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from neurovamp.data.pairing import PairedData

from .base import Method, label_coords, split_rows
from .windows import cut


class CebraMultiSession(Method):
    """CEBRA multi-session with discrete condition labels."""

    name = "CEBRA multi-session"
    can_generate = False

    def __init__(self, seed: int = 0, quick: bool = False, max_iterations: int = 2000, latent_dim: int = 8) -> None:
        super().__init__(seed, quick)
        self.max_iterations = 50 if quick else int(max_iterations)
        self.latent_dim = int(latent_dim)
        self.model = None

    def _settings(self) -> dict[str, Any]:
        return dict(model_architecture="offset10-model", batch_size=512, learning_rate=3e-4, temperature=1.0,
                    output_dimension=self.latent_dim, max_iterations=self.max_iterations, distance="cosine",
                    device="cpu", verbose=False)

    def _fit(self, paired: PairedData) -> dict[str, Any]:
        import cebra
        import torch

        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        self.conditions = [c for c in paired.conditions
                           if all(c in set(np.asarray(paired.modalities[a][paired.pair_by].values).tolist())
                                  for a in paired.animals)]
        xs, ys = [], []
        for m, animal in enumerate(paired.animals):
            rows = split_rows(paired, animal, "train")
            counts = paired.counts[m][rows]  # (trial, unit, time)
            xs.append(np.ascontiguousarray(counts.transpose(0, 2, 1).reshape(-1, counts.shape[1])).astype(np.float32))
            labels = np.asarray(paired.modalities[animal][paired.pair_by].values)[rows]
            code = np.array([self.conditions.index(v) if v in self.conditions else -1 for v in labels])
            keep = np.repeat(code >= 0, counts.shape[2])
            xs[-1] = xs[-1][keep]
            ys.append(np.repeat(code, counts.shape[2])[keep].astype(np.int64))
        self.model = cebra.CEBRA(**self._settings())
        self.model.fit(xs, ys)
        return {"samples": 512 * self.max_iterations, "iterations": self.max_iterations,
                "settings": self._settings(), "label": "discrete " + str(paired.pair_by),
                "trained_conditions": list(self.conditions)}

    def latents(self, paired: PairedData, animal: str, split: str) -> xr.DataArray:
        import torch

        m = paired.animals.index(animal)
        rows = split_rows(paired, animal, split)
        model = self.model.solver_._get_model(session_id=m)
        width = len(model.get_offset())
        if width != paired.window:
            raise ValueError(f"CEBRA's receptive field ({width} bins) differs from the sub-window ({paired.window})")
        # Each sub-window is exactly one receptive field: (sample, unit, time) -> (sample, latent).
        x = cut(paired.counts[m][rows], paired.window_starts, paired.window)
        n_units = paired.counts[m].shape[1]
        x = torch.from_numpy(x.reshape(-1, n_units, paired.window))
        model.eval()
        with torch.no_grad():
            z = torch.cat([model(chunk) for chunk in x.split(4096)]).reshape(rows.size, -1, self.latent_dim)
        coords = label_coords(paired, animal, rows)
        return xr.DataArray(z.numpy().astype(np.float64), dims=("trial", "time", "latent"), coords=coords)
