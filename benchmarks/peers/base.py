"""The interface every method of ``bench_peers.py`` offers, and neurovamp's MMVM behind it."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import xarray as xr

from neurovamp.data.pairing import PairedData
from neurovamp.models.estimator import MultiAnimalModel


class Method:
    """A method fitted on neurovamp's paired data.

    Subclasses set ``name`` and ``can_generate`` and implement :meth:`_fit` (returning the
    number of training samples processed, for samples/s), :meth:`latents` and, when
    ``can_generate``, :meth:`generate`.
    """

    name = "method"
    can_generate = False

    def __init__(self, seed: int = 0, quick: bool = False) -> None:
        self.seed = int(seed)
        self.quick = bool(quick)
        self.fit_info: dict[str, Any] = {}

    def fit(self, paired: PairedData) -> dict[str, Any]:
        """Fit on the train split (validation split for early stopping where the method has it).

        Returns
        -------
        dict
            ``fit_s`` (wall clock), ``fit_cpu_s`` (CPU time of this process), ``samples`` (training samples processed),
            ``samples_per_s`` and method-specific entries (epochs, iterations).
        """
        t0, c0 = time.perf_counter(), time.process_time()
        info = self._fit(paired)
        fit_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        self.fit_info = {"fit_s": fit_s, "fit_cpu_s": cpu_s, **info, "samples_per_s": info["samples"] / fit_s}
        return self.fit_info

    def _fit(self, paired: PairedData) -> dict[str, Any]:
        raise NotImplementedError

    def latents(self, paired: PairedData, animal: str, split: str) -> xr.DataArray:
        """``(trial, time, latent)`` latents of one animal's trials of a split, with trial labels."""
        raise NotImplementedError

    def generate(self, counts: np.ndarray, source: str, target: str) -> np.ndarray:
        """Expected counts ``(trial, unit_target, time)`` of ``target`` from ``source``'s trials."""
        raise NotImplementedError(f"{self.name} cannot generate")


def label_coords(paired: PairedData, animal: str, rows: np.ndarray) -> dict[str, Any]:
    """Trial coordinates (id and every ``(trial,)`` label) of an animal's trial rows."""
    mod = paired.modalities[animal].isel(trial=rows)
    return {name: ("trial", np.asarray(c.values)) if name != "trial" else np.asarray(c.values)
            for name, c in mod.coords.items() if c.dims == ("trial",)}


def split_rows(paired: PairedData, animal: str, split: str) -> np.ndarray:
    """Row indices of an animal's trials in a split."""
    return np.flatnonzero(np.asarray(paired.trial_split[animal]) == split)


class NeurovampMMVM(Method):
    """neurovamp's MMVM VAE with MultiAnimalModel's defaults."""

    name = "neurovamp MMVM"
    can_generate = True

    def __init__(self, seed: int = 0, quick: bool = False, epochs: int = 150, patience: int = 15) -> None:
        super().__init__(seed, quick)
        self.epochs, self.patience = (5, 5) if quick else (epochs, patience)
        self.model = MultiAnimalModel("mmvm", seed=self.seed, device="cpu")

    def _fit(self, paired: PairedData) -> dict[str, Any]:
        self.model.fit(paired, epochs=self.epochs, patience=self.patience, progress=False)
        epochs = int(self.model.fit_info_["epochs_run"])
        return {"samples": paired.n_samples("train") * epochs, "epochs": epochs,
                "config": self.model.config.to_dict()}

    def latents(self, paired: PairedData, animal: str, split: str) -> xr.DataArray:
        return self.model.latents(paired, animal, split=split)

    def generate(self, counts: np.ndarray, source: str, target: str) -> np.ndarray:
        return np.asarray(self.model.generate(counts, source, target).values, dtype=np.float64)
