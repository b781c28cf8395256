"""MultiVae's MoPoE and MMVAE+ on neurovamp's paired data.

Install workaround (MultiVae 1.0.3)
-----------------------------------
``pip install multivae`` would replace ``torch==2.13.0+cpu`` (its resolution pulls
torch 2.14 with CUDA, through torchvision), and the torchvision wheels on this machine's
index (0.28.0, 0.29.x) fail to import next to the CPU build of torch 2.13
(``RuntimeError: operator torchvision::nms does not exist``). So MultiVae and pythae are
installed with ``--no-deps`` plus their real needs (``pip install .[peers]`` lists them),
and torchvision is replaced by a shim (``benchmarks/peers/torchvision_shim``) that is put
on ``sys.path`` only when the real torchvision cannot be imported. MultiVae imports
torchvision at module level for its image datasets, image grids and FID metrics only;
none of these run here, and the shim raises if anything tries to use them.

Models, sized like neurovamp's defaults
---------------------------------------
Per-animal encoder ``D_m → 128 → (μ, log σ²)`` of the 8-dimensional shared latent
(LeakyReLU), per-animal decoder ``8 → 128 → D_m`` (``D_m`` = units × sub-window bins,
the same flattened sub-window samples neurovamp trains on). MMVAE+ adds a private latent
of ``private_dim`` dimensions per animal (its encoders also output the private posterior;
its decoders read ``[shared, private]``); otherwise MultiVae's defaults (``K=10``
importance samples, DReG loss, Laplace posteriors, learned private priors).

MultiVae's decoder distributions are ``normal``, ``bernoulli``, ``laplace`` and
``categorical``; it has no count likelihood. The one change to the library's models is
therefore the reconstruction log-probability: it is set to the **Poisson** log-likelihood
of the counts with the decoder output as log-rate (neurovamp's default likelihood and
link), so that the comparison is of the multimodal objectives, not of the likelihoods.

Training: the same protocol as neurovamp's fit (Adam, lr 1e-3, batch 128, early
stopping on the validation loss with the same patience, best weights restored), on the
same train/validation samples (pairs × sub-windows), with MultiVae's own loss
(``model(batch).loss``); animals missing from a pair are passed as MultiVae's
``IncompleteDataset`` masks.
"""

from __future__ import annotations

import copy
import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from neurovamp.data.pairing import PairedData

from .base import Method, label_coords, split_rows
from .windows import cut, stitch

SHIM = Path(__file__).resolve().parent / "torchvision_shim"


def import_multivae() -> tuple[Any, bool]:
    """Import MultiVae, with the torchvision shim when the real torchvision cannot be imported.

    Returns
    -------
    module, bool
        ``multivae`` and whether the shim was used.
    """
    shim = False
    try:
        importlib.import_module("torchvision")
    except Exception:  # noqa: BLE001 - ImportError or the RuntimeError of a mismatched wheel
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.path.insert(0, str(SHIM))
        shim = True
    import multivae.models  # noqa: F401

    return importlib.import_module("multivae"), shim


def poisson_log_prob(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Elementwise Poisson log-likelihood of counts ``target`` with log-rate ``recon``."""
    return target * recon - torch.exp(recon) - torch.lgamma(target + 1.0)


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.LeakyReLU(0.01), nn.Linear(hidden, d_out))


class _Net:
    """Encoder/decoder classes on pythae's base classes (built lazily, after the import)."""

    @staticmethod
    def classes():  # noqa: ANN205
        from pythae.models.base.base_utils import ModelOutput
        from pythae.models.nn import BaseDecoder, BaseEncoder

        class Encoder(BaseEncoder):
            def __init__(self, d_in: int, hidden: int, latent: int, private: int = 0) -> None:
                super().__init__()
                self.latent, self.private = latent, private
                self.net = _mlp(d_in, hidden, 2 * (latent + private))

            def forward(self, x: torch.Tensor) -> ModelOutput:
                h = self.net(x)
                k, p = self.latent, self.private
                out = ModelOutput(embedding=h[:, :k], log_covariance=h[:, k : 2 * k])
                if p:
                    out["style_embedding"] = h[:, 2 * k : 2 * k + p]
                    out["style_log_covariance"] = h[:, 2 * k + p :]
                return out

        class Decoder(BaseDecoder):
            def __init__(self, latent: int, hidden: int, d_out: int) -> None:
                super().__init__()
                self.net = _mlp(latent, hidden, d_out)

            def forward(self, z: torch.Tensor) -> ModelOutput:
                shape = z.shape[:-1]
                out = self.net(z.reshape(-1, z.shape[-1]))
                return ModelOutput(reconstruction=out.reshape(*shape, -1))

        return Encoder, Decoder


class MultiVaeMethod(Method):
    """A MultiVae model (``"mopoe"`` or ``"mmvae+"``) trained on neurovamp's samples."""

    can_generate = True

    def __init__(self, kind: str, seed: int = 0, quick: bool = False, epochs: int = 150, patience: int = 15,
                 latent_dim: int = 8, hidden: int = 128, private_dim: int = 4, batch_size: int = 128,
                 lr: float = 1e-3, K: int = 10) -> None:
        super().__init__(seed, quick)
        if kind not in ("mopoe", "mmvae+"):
            raise ValueError(f"kind must be 'mopoe' or 'mmvae+', got {kind!r}")
        self.kind = kind
        self.name = "MultiVae MoPoE" if kind == "mopoe" else "MultiVae MMVAE+"
        self.epochs, self.patience = (3, 3) if quick else (int(epochs), int(patience))
        self.latent_dim, self.hidden, self.private_dim = latent_dim, hidden, private_dim
        self.batch_size, self.lr, self.K = batch_size, lr, K
        self.model = None
        self.shim = False

    # ------------------------------------------------------------------ model
    def _build(self, paired: PairedData) -> Any:
        multivae, self.shim = import_multivae()
        from multivae.models import MMVAEPlus, MMVAEPlusConfig, MoPoE, MoPoEConfig

        Encoder, Decoder = _Net.classes()
        dims = {a: int(d) for a, d in zip(paired.animals, paired.input_dims)}
        input_dims = {a: (d,) for a, d in dims.items()}
        private = self.private_dim if self.kind == "mmvae+" else 0
        encoders = {a: Encoder(d, self.hidden, self.latent_dim, private) for a, d in dims.items()}
        decoders = {a: Decoder(self.latent_dim + private, self.hidden, d) for a, d in dims.items()}
        n = len(dims)
        if self.kind == "mopoe":
            config = MoPoEConfig(n_modalities=n, latent_dim=self.latent_dim, input_dims=input_dims)
            model = MoPoE(config, encoders=encoders, decoders=decoders)
        else:
            config = MMVAEPlusConfig(n_modalities=n, latent_dim=self.latent_dim, input_dims=input_dims,
                                     modalities_specific_dim=self.private_dim, K=self.K)
            model = MMVAEPlus(config, encoders=encoders, decoders=decoders)
        for a in dims:  # MultiVae has no count likelihood (see the module docstring)
            model.recon_log_probs[a] = poisson_log_prob
        self.multivae_version = getattr(multivae, "__version__", "1.0.3")
        return model

    # ------------------------------------------------------------------ data
    def _samples(self, paired: PairedData, split: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        pairs = paired.pairs[split]
        starts, w = np.asarray(paired.window_starts), paired.window
        data, masks = {}, {}
        for m, a in enumerate(paired.animals):
            x = cut(paired.counts[m], starts, w)  # (trial, window, D)
            present = pairs[:, m] >= 0
            rows = np.where(present, pairs[:, m], 0)
            xs = x[rows] * present[:, None, None]
            data[a] = torch.from_numpy(xs.reshape(-1, x.shape[-1]))
            masks[a] = torch.from_numpy(np.repeat(present, starts.size))
        return data, masks

    def _batch(self, data: dict, masks: dict, idx: torch.Tensor) -> Any:
        from multivae.data.datasets.base import IncompleteDataset

        return IncompleteDataset(data={a: v[idx] for a, v in data.items()},
                                 masks={a: v[idx] for a, v in masks.items()})

    def _fit(self, paired: PairedData) -> dict[str, Any]:
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        self.paired = paired
        self.model = self._build(paired)
        train, val = self._samples(paired, "train"), self._samples(paired, "val")
        n_train = len(next(iter(train[0].values())))
        n_val = len(next(iter(val[0].values())))
        opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        best, best_state, since, epochs = np.inf, None, 0, 0
        for epoch in range(self.epochs):
            self.model.train()
            for idx in torch.randperm(n_train, generator=gen).split(self.batch_size):
                loss = self.model(self._batch(*train, idx)).loss
                opt.zero_grad()
                loss.backward()
                opt.step()
            epochs += 1
            self.model.eval()
            total = 0.0
            # MMVAE+'s DReG loss registers gradient hooks, so its validation loss needs autograd on
            with torch.set_grad_enabled(self.kind == "mmvae+"):
                for idx in torch.arange(n_val).split(1024):
                    total += float(self.model(self._batch(*val, idx)).loss.detach()) * len(idx)
            val_loss = total / n_val
            if val_loss < best:
                best, best_state, since = val_loss, copy.deepcopy(self.model.state_dict()), 0
            else:
                since += 1
                if since >= self.patience:
                    break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        self.model.eval()
        return {"samples": n_train * epochs, "epochs": epochs, "best_val_loss": best,
                "torchvision_shim": self.shim, "private_dim": self.private_dim if self.kind == "mmvae+" else 0,
                "K": self.K if self.kind == "mmvae+" else None}

    # ------------------------------------------------------------------ outputs
    def _encode_mean(self, x: np.ndarray, source: str) -> Any:
        from multivae.data.datasets.base import MultimodalBaseDataset

        # MoPoE's encode runs every animal's encoder before picking the source's subset, so the
        # other animals get zeros (their encodings are not used for cond_mod=[source]).
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        dims = dict(zip(self.paired.animals, self.paired.input_dims))
        data = MultimodalBaseDataset(data={a: x if a == source else torch.zeros(len(x), int(d))
                                           for a, d in dims.items()})
        with torch.no_grad():
            return self.model.encode(data, cond_mod=[source], return_mean=True)

    def latents(self, paired: PairedData, animal: str, split: str) -> xr.DataArray:
        m = paired.animals.index(animal)
        rows = split_rows(paired, animal, split)
        x = cut(paired.counts[m][rows], paired.window_starts, paired.window)
        z = self._encode_mean(x.reshape(-1, x.shape[-1]), animal).z
        z = np.asarray(z.reshape(rows.size, x.shape[1], -1), dtype=np.float64)
        return xr.DataArray(z, dims=("trial", "time", "latent"), coords=label_coords(paired, animal, rows))

    def generate(self, counts: np.ndarray, source: str, target: str) -> np.ndarray:
        p = self.paired
        x = cut(counts, p.window_starts, p.window)
        emb = self._encode_mean(x.reshape(-1, x.shape[-1]), source)
        with torch.no_grad():
            log_rate = self.model.decode(emb, [target])[target]
        rate = np.exp(np.asarray(log_rate, dtype=np.float64)).reshape(x.shape[0], x.shape[1], -1)
        return stitch(rate, p.window_starts, p.window, counts.shape[2])
