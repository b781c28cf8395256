"""Why does MMVM stop early? Fit it with several training settings and record the curves.

Data: ``demo`` (the embedded default set, binned and paired as ``neurovamp demo`` does:
0-1 s after odor onset, 20 ms bins, odors A-E paired by resampling, 70/15/15 split,
10-bin sub-windows every 2 bins; rat3 never smelled E) or ``sim`` (the simulator's
default kind with ``--trials`` trials per rat).

For each training variant the script records, per epoch, the training and validation
reconstruction and regulariser, and after the fit: epochs run, best epoch, the share of
latent variance on the first principal component (test trials, all rats), held-out
self-reconstruction bits/spike, and the imputation of rat3's never-smelled odor E
against the simulator's truth: condition-specific r (imputed - generic vs truth -
generic, generic = rat3's mean over the odors it smelled) and bits/spike against the
generic prediction on Poisson draws of the true rate
(:func:`neurovamp.analysis.metrics.condition_scores`).

Usage::

    python benchmarks/convergence.py --data demo --variants base warmup monitor_rec
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurovamp.analysis.metrics import bits_per_spike, condition_scores, generic_prediction
from neurovamp.data.pairing import PairedData, pair_trials
from neurovamp.models.estimator import MultiAnimalModel

HERE = Path(__file__).resolve().parent / "results"
CONDITIONS = ("A", "B", "C", "D", "E")
TARGET, MISSING = "rat3", "E"

VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "patience50": {"patience": 50},
    "monitor_rec": {"monitor": "rec"},
    "warmup": {"kl_warmup": 50},
    "warmup20": {"kl_warmup": 20},
    "dropout": {"model": {"dropout": 0.2}},
    "warmup_dropout": {"kl_warmup": 20, "model": {"dropout": 0.2}},
    "alpha0.1": {"model": {"alpha": 0.1}},
    "warmup_rec": {"kl_warmup": 50, "monitor": "rec"},
    "beta0.5": {"model": {"beta": 0.5}},
    "lr3e-3": {"lr": 3e-3},
    "wd": {"weight_decay": 1e-4},
    "linear": {"model": {"decoder": "linear"}},
    "linear_warmup": {"model": {"decoder": "linear"}, "kl_warmup": 50},
}


def demo_data(seed: int, trials: int | None = None):  # noqa: ANN201
    """(paired, ground truth, bin size) of the embedded default set, as the demo pairs it."""
    from neurovamp.io.recordings import load_recordings
    from neurovamp.pipelines.default_data import default_dataset_path, default_nwb_paths
    from neurovamp.simulate import load_ground_truth

    paths = default_nwb_paths()
    tree = load_recordings(paths, event="odor_onset", window=(0.0, 1.0), bin_size=0.02,
                           labels=["odor", "position"])
    paired = pair_trials(tree, by="odor", strategy="resample", conditions=list(CONDITIONS),
                         split=(0.7, 0.15, 0.15), seed=seed, window=10, stride=2)
    return paired, load_ground_truth(default_dataset_path()), 0.02


def sim_data(seed: int, trials: int):  # noqa: ANN201
    """(paired, ground truth, bin size) of a simulated experiment of the simulator's default kind."""
    from neurovamp.data.dataset import make_dataset
    from neurovamp.simulate import SimulationConfig, simulate_experiment

    cfg = SimulationConfig.small(seed=1000 + seed, n_trials=trials, window=(-0.2, 1.0), bin_size=0.02)
    sim = simulate_experiment(cfg)
    tree = make_dataset([sim.to_modality(rat) for rat in sim.rats])
    paired = pair_trials(tree, by="odor", strategy="resample", conditions=list(CONDITIONS),
                         split=(0.7, 0.15, 0.15), seed=seed, window=10, stride=2)
    return paired, sim.ground_truth, cfg.bin_size


def impute_scores(model: MultiAnimalModel, paired: PairedData, truth_rates: np.ndarray, bin_size: float,
                  seed: int, true_rates_of) -> dict[str, float]:  # noqa: ANN001
    """rat3's never-smelled odor E imputed from every other rat vs the truth (see module docstring)."""
    preds = []
    for src in paired.animals:
        if src == TARGET:
            continue
        mod = paired.modalities[src]
        rows = np.flatnonzero(np.asarray(mod["odor"].values) == MISSING)
        if rows.size:
            preds.append(np.asarray(model.generate(mod.isel(trial=rows), src, TARGET).values).mean(axis=0))
    imputed = np.mean(preds, axis=0)
    target = paired.modalities[TARGET]
    from neurovamp.analysis.metrics import NULL_SMOOTH_S

    generic = generic_prediction(np.asarray(target.values), np.asarray(target["odor"].values),
                                 sigma_bins=NULL_SMOOTH_S / bin_size)
    truth = truth_rates * bin_size
    seen = [c for c in dict.fromkeys(np.asarray(target["odor"].values).tolist())]
    true_generic = np.mean([true_rates_of(c) for c in seen], axis=0) * bin_size
    ok = np.isfinite(imputed).all(axis=0)  # bins no sub-window reached are left out
    rng = np.random.default_rng(seed)
    draws = rng.poisson(np.broadcast_to(truth, (200, *truth.shape))).astype(float)
    # bits/spike against the data's generic prediction; the condition-specific r / R²
    # against the true generic (the truth's mean over the seen odors), free of sampling noise
    out = condition_scores(imputed[:, ok], generic[:, ok], draws[:, :, ok], observed=truth[:, ok],
                           generic_pred=true_generic[:, ok], generic_obs=true_generic[:, ok])
    out["generic_r_total"] = float(np.corrcoef(generic[:, ok].ravel(), truth[:, ok].ravel())[0, 1])
    out["imputed_r_total"] = float(np.corrcoef(imputed[:, ok].ravel(), truth[:, ok].ravel())[0, 1])
    return out


def latent_pc1(model: MultiAnimalModel, paired: PairedData) -> float:
    """Share of the test latents' variance on their first principal component."""
    z = np.concatenate([np.asarray(model.latents(paired, rat, split="test").values).reshape(-1, model.config.latent_dim)
                        for rat in paired.animals])
    ev = np.linalg.eigvalsh(np.cov(z.T))[::-1]
    return float(ev[0] / ev.sum())


def self_bps(model: MultiAnimalModel, paired: PairedData) -> float:
    """Held-out bits/spike of each rat reconstructed from itself, mean over rats."""
    out = []
    for rat in paired.animals:
        mod = paired.modalities[rat]
        rows = np.flatnonzero(np.asarray(paired.trial_split[rat]) == "test")
        pred = np.asarray(model.generate(mod.isel(trial=rows), rat, rat).values)
        counts = np.asarray(mod.values)[rows]
        ok = np.isfinite(pred).all(axis=(0, 1))
        out.append(bits_per_spike(pred[..., ok], counts[..., ok]))
    return float(np.mean(out))


def run_variant(name: str, seed: int, data: str, trials: int, epochs: int) -> dict[str, Any]:
    spec = dict(VARIANTS[name])
    model_kw = spec.pop("model", {})
    fit_kw = {"epochs": epochs, "patience": 20, **spec}
    paired, gt, bin_size = (demo_data if data == "demo" else sim_data)(seed, trials)
    from neurovamp.analysis.truth import true_condition_rates

    time_axis = np.asarray(paired.modalities[TARGET]["time"].values, dtype=float)
    truth = true_condition_rates(gt, TARGET, MISSING, time_axis, bin_size)
    model = MultiAnimalModel("mmvm", seed=seed, device="cpu", **model_kw)
    t0 = time.perf_counter()
    model.fit(paired, progress=False, **fit_kw)
    fit_s = time.perf_counter() - t0
    h = model.history_
    best = int(model.fit_info_["best_epoch"])
    row = {
        "variant": name, "seed": seed, "data": data, "trials": trials if data == "sim" else None,
        "fit_kw": fit_kw, "model_kw": model_kw,
        "epochs_run": int(model.fit_info_["epochs_run"]), "best_epoch": best, "fit_s": round(fit_s, 1),
        "val_rec": [round(v, 2) for v in h["val/rec"]], "val_reg": [round(v, 2) for v in h["val/reg"]],
        "train_rec": [round(v, 2) for v in h["train/rec"]], "train_reg": [round(v, 2) for v in h["train/reg"]],
        "pc1": latent_pc1(model, paired), "self_bps": self_bps(model, paired),
        **{f"impute_{k}": v for k, v in impute_scores(
            model, paired, truth, bin_size, seed,
            lambda c: true_condition_rates(gt, TARGET, c, time_axis, bin_size)).items()},
    }
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=("demo", "sim"), default="demo")
    p.add_argument("--trials", type=int, default=60, help="trials per rat (--data sim)")
    p.add_argument("--variants", nargs="+", default=["base"], choices=list(VARIANTS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--out", type=Path, default=HERE / "convergence.jsonl")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for seed in args.seeds:
        for name in args.variants:
            row = run_variant(name, seed, args.data, args.trials, args.epochs)
            row["timestamp"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            with args.out.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")
            vr, vg, tg = row["val_rec"], row["val_reg"], row["train_reg"]
            b = row["best_epoch"] - 1
            print(f"{args.data} seed {seed} {name:<14} epochs {row['epochs_run']:>3} best {row['best_epoch']:>3} "
                  f"val rec {vr[0]:.1f}->{vr[b]:.1f}->{vr[-1]:.1f} val reg {vg[0]:.2f}->{vg[b]:.2f}->{vg[-1]:.2f} "
                  f"train reg {tg[b]:.2f}->{tg[-1]:.2f} pc1 {row['pc1']:.2f} self {row['self_bps']:.3f} "
                  f"imp r {row['impute_r']:.2f} bps/gen {row['impute_bps_generic']:.3f} "
                  f"({row['fit_s']:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
