"""Choose neurovamp's default model settings by measurement on simulated data.

Fits the MMVM VAE on a medium simulated experiment (:class:`neurovamp.simulate.SimulationConfig`:
4 rats with 60/50/70/40 units, 200 trials each, -0.1..0.8 s around odor onset in 10 ms
bins, ``rat4`` never smells odor D; odors A-D paired across rats, 70/15/15
train/val/test trials per odor; 10-bin sub-windows every 2 bins) for a small grid that
varies one factor at a time from a base configuration (the defaults before this study):

- likelihood: poisson (base), negbin, gaussian
- decoder: linear (base), mlp
- latent_dim: 8 (base), 2, 4, 16
- encoder hidden width: 128 (base), 64
- alpha: 0 (base), 0.1

plus two combinations of the one-factor winners (``mlp+alpha0.1``, ``mlp+hidden64``).
Training: Adam lr 1e-3, batch 128, at most ``--epochs`` epochs, early stopping on the
validation loss (patience ``--patience``), best weights restored. Every fit is scored on
the **held-out test trials**:

- ``rec_bps``: bits per spike of each rat's activity reconstructed from itself
  (:func:`neurovamp.analysis.metrics.bits_per_spike`, null = each unit's mean rate on the
  evaluated trials), averaged over rats;
- ``cross_bps``: bits per spike of rat t's test trials predicted from rat s's paired test
  trial of the same odor (cross-animal generation; the rats were not recorded together,
  so only odor-locked structure is predictable), averaged over ordered pairs;
- ``true_r2``: R² of the reconstructed rates against the simulator's true rates
  (reference: each unit's mean, so only within-unit modulation counts);
- ``impute_r2``: the same R² for ``rat4``'s never-experienced odor D, imputed from the
  other rats' D trials (mean over trials and sources) against its true expected rate; a
  noisy diagnostic (one condition's within-unit modulation is small);
- ``decode``: balanced accuracy of odor decoded from the latent trajectory (non-overlapping
  sub-window latent means of a trial, flattened) by a logistic regression trained on the
  rat's training trials and tested on its test trials, averaged over rats (chance 0.25);
- ``shared``: the same with one classifier trained on the *other* rats' test latents
  (leave-one-rat-out, :func:`neurovamp.analysis.decode.decode_shared`): high only when
  latents of different rats are aligned;
- ``align_r2``: cross-validated (leave-one-odor-out) R² of a linear map between rats'
  odor-averaged test latent trajectories (:func:`neurovamp.analysis.alignment.alignment_matrix`),
  mean over ordered pairs;
- ``fit_s``: wall time of ``MultiAnimalModel.fit`` (1 torch thread by default).

Each configuration is fitted on ``--seeds`` simulated data sets (data seed = model seed);
the table reports the mean and half the range over seeds. Results are printed, appended
as JSON lines to ``benchmarks/results/defaults.jsonl`` and the table is written to
``benchmarks/results/defaults_table.md`` (``defaults.md`` holds it with the conclusion).

Usage::

    python benchmarks/select_defaults.py                 # 12 configurations x 2 seeds: ~6 min on an idle
                                                         # core, ~15 min when the 2 cores are shared
    python benchmarks/select_defaults.py --seeds 1 --only base latent2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurovamp.analysis.alignment import alignment_matrix, condition_average
from neurovamp.analysis.decode import decode_shared, transfer_decode
from neurovamp.analysis.metrics import bits_per_spike
from neurovamp.data.dataset import make_dataset
from neurovamp.data.pairing import PairedData, pair_trials
from neurovamp.models.config import ModelConfig
from neurovamp.models.estimator import MultiAnimalModel
from neurovamp.simulate import Simulation, SimulationConfig, simulate_experiment

HERE = Path(__file__).resolve().parent / "results"
CONDITIONS = ("A", "B", "C", "D")

BASE = dict(likelihood="poisson", decoder="linear", latent_dim=8, hidden=(128,), alpha=0.0)
GRID = {
    "base": {},
    "negbin": {"likelihood": "negbin"},
    "gaussian": {"likelihood": "gaussian"},
    "mlp": {"decoder": "mlp"},
    "latent2": {"latent_dim": 2},
    "latent4": {"latent_dim": 4},
    "latent16": {"latent_dim": 16},
    "hidden64": {"hidden": (64,)},
    "alpha0.1": {"alpha": 0.1},
}
"""One factor at a time from BASE (run by default)."""
COMBOS = {
    "mlp+alpha0.1": {"decoder": "mlp", "alpha": 0.1},
    "mlp+hidden64": {"decoder": "mlp", "hidden": (64,)},
    "mlp+hidden64+alpha0.1": {"decoder": "mlp", "hidden": (64,), "alpha": 0.1},
}
"""Combinations of the one-factor winners (checked before choosing the defaults; ``--only``)."""
CONFIGS = {**GRID, **COMBOS}
DEFAULT_RUN = [*GRID, "mlp+alpha0.1", "mlp+hidden64"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=2, help="simulated data sets (and model seeds) per configuration")
    p.add_argument("--only", nargs="*", default=None,
                   help=f"configurations to run (default {DEFAULT_RUN}); choose from {list(CONFIGS)}")
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--patience", type=int, default=15)
    p.add_argument("--window", type=int, default=10, help="sub-window length in bins")
    p.add_argument("--stride", type=int, default=2, help="bins between sub-windows")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads (1: fit times stay comparable on a shared machine)")
    p.add_argument("--out", type=Path, default=HERE / "defaults.jsonl")
    p.add_argument("--table", type=Path, default=HERE / "defaults_table.md",
                   help="Markdown table written for defaults.md")
    return p.parse_args(argv)


def simulation_config(seed: int) -> SimulationConfig:
    """The medium experiment: 4 rats, 200 trials each, -0.1..0.8 s around odor onset in 10 ms bins.

    ``rat4`` never experiences odor D (scored by ``impute_r2``).
    """
    return SimulationConfig(
        n_rats=4, n_units=(60, 50, 70, 40), n_trials=200, window=(-0.1, 0.8), missing={"rat4": ("D",)},
        seed=seed,
    )


def make_data(seed: int, window: int, stride: int) -> tuple[Simulation, PairedData]:
    sim = simulate_experiment(simulation_config(seed))
    tree = make_dataset([sim.to_modality(rat) for rat in sim.rats])
    paired = pair_trials(tree, by="odor", conditions=list(CONDITIONS), window=window, stride=stride, seed=seed)
    return sim, paired


def _trial_features(latents, step: int) -> np.ndarray:  # noqa: ANN001
    """(trial, time * latent): latent means of every ``step``-th sub-window, flattened.

    ``step = window // stride`` keeps non-overlapping sub-windows, so the decoder sees
    the whole trajectory with few features (logistic regression on hundreds of
    features of a few dozen trials is slow and no more informative).
    """
    values = np.asarray(latents.values)[:, ::step]
    return values.reshape(values.shape[0], -1)


def _true_rates(sim: Simulation, paired: PairedData, rat: str, rows: np.ndarray) -> np.ndarray:
    """Simulator's true expected counts per bin of the paired data's trial rows."""
    # Simulation.to_modality numbers trials 0..n-1, the rows of the ground truth.
    trial_ids = np.asarray(paired.modalities[rat]["trial"].values)[rows]
    return np.asarray(sim.ground_truth.rates[rat], dtype=np.float64)[trial_ids] * sim.config.bin_size


def _unit_r2(pred: np.ndarray, truth: np.ndarray) -> float:
    """R² of predicted vs true rates; reference = each unit's mean (unit axis -2)."""
    other = tuple(a for a in range(truth.ndim) if a != truth.ndim - 2)
    ref = truth.mean(axis=other, keepdims=True)
    return float(1.0 - np.sum((pred - truth) ** 2) / np.sum((truth - ref) ** 2))


def evaluate(model: MultiAnimalModel, sim: Simulation, paired: PairedData) -> dict[str, float]:
    """Held-out scores of a fitted model (see the module docstring)."""
    rats = paired.animals
    step = max(1, paired.window // paired.stride)
    split = {rat: np.asarray(paired.trial_split[rat]) for rat in rats}
    rec, r2s = [], []
    for m, rat in enumerate(rats):
        rows = np.flatnonzero(split[rat] == "test")
        counts = paired.counts[m][rows]
        pred = np.asarray(model.generate(counts, rat, rat).values, dtype=np.float64)
        rec.append(bits_per_spike(pred, counts))
        truth = _true_rates(sim, paired, rat, rows)
        r2s.append(_unit_r2(pred, truth))
    cross = []
    pairs = paired.pairs["test"]
    for s, src in enumerate(rats):
        for t, tgt in enumerate(rats):
            if s == t:
                continue
            both = (pairs[:, s] >= 0) & (pairs[:, t] >= 0)
            pred = np.asarray(model.generate(paired.counts[s][pairs[both, s]], src, tgt).values, dtype=np.float64)
            cross.append(bits_per_spike(pred, paired.counts[t][pairs[both, t]]))
    impute = []
    for t, tgt in enumerate(rats):
        have = set(np.asarray(paired.modalities[tgt]["odor"].values).tolist())
        for odor in (c for c in CONDITIONS if c not in have):
            preds = []
            for s, src in enumerate(rats):
                rows = np.flatnonzero(np.asarray(paired.modalities[src]["odor"].values) == odor)
                if s != t and rows.size:
                    preds.append(np.asarray(model.generate(paired.counts[s][rows], src, tgt).values).mean(axis=0))
            truth = sim.ground_truth.condition_rate(tgt, odor) * sim.config.bin_size  # (unit, time)
            impute.append(_unit_r2(np.mean(preds, axis=0), truth))
    decode, feats, labels, traj = [], {}, {}, {}
    for rat in rats:
        z_train = model.latents(paired, rat, split="train")
        z_test = model.latents(paired, rat, split="test")
        res = transfer_decode(_trial_features(z_train, step), z_train["odor"].values,
                              _trial_features(z_test, step), z_test["odor"].values)
        decode.append(res.score)
        feats[rat] = _trial_features(z_test, step)
        labels[rat] = z_test["odor"].values
        traj[rat] = condition_average(z_test, "odor", conditions=list(CONDITIONS))
    shared = decode_shared(feats, labels, within=False)
    align = alignment_matrix(traj).values
    off = ~np.eye(len(rats), dtype=bool)
    return {
        "rec_bps": float(np.mean(rec)),
        "cross_bps": float(np.mean(cross)),
        "true_r2": float(np.mean(r2s)),
        "decode": float(np.mean(decode)),
        "shared": float(np.mean(list(shared.leave_one_out.values()))),
        "align_r2": float(np.mean(align[off])),
        "impute_r2": float(np.mean(impute)) if impute else float("nan"),
    }


METRICS = ("rec_bps", "cross_bps", "true_r2", "impute_r2", "decode", "shared", "align_r2", "fit_s", "epochs")


def markdown_table(rows: list[dict], seeds: int) -> str:
    """Mean (± half the range over seeds) of every metric per configuration."""
    header = ("| config | changed | " + " | ".join(METRICS) + " |\n"
              + "|---|---|" + "---|" * len(METRICS) + "\n")
    lines = []
    for name in CONFIGS:
        mine = [r for r in rows if r["config"] == name]
        if not mine:
            continue
        cells = []
        for metric in METRICS:
            vals = [r[metric] for r in mine]
            mean = statistics.mean(vals)
            spread = (max(vals) - min(vals)) / 2
            fmt = ".0f" if metric in ("fit_s", "epochs") else ".3f"
            cells.append(f"{mean:{fmt}}" + (f" ± {spread:{fmt}}" if len(vals) > 1 else ""))
        changed = ", ".join(f"{k}={v}" for k, v in CONFIGS[name].items()) or "(base)"
        lines.append(f"| {name} | {changed} | " + " | ".join(cells) + " |")
    return header + "\n".join(lines) + f"\n\nMean over {seeds} simulated data set(s); ± is half the range.\n"


def run_meta(args: argparse.Namespace, elapsed: float, load_before: tuple[float, float, float]) -> dict[str, Any]:
    """What a selection run records beside every result row: data, pairing, training, machine.

    Parameters
    ----------
    args
        The run's options (``seeds``, ``window``, ``stride``, ``epochs``, ``patience``).
    elapsed
        Wall time of the run's fits in seconds.
    load_before
        ``os.getloadavg()`` when the run started.

    Returns
    -------
    dict
        JSON-serialisable settings, load averages and the defaults at run time.
    """
    return {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "simulation": simulation_config(0).to_dict() | {"seed": list(range(args.seeds))},
        "pairing": {"conditions": list(CONDITIONS), "window": args.window, "stride": args.stride,
                    "split": [0.7, 0.15, 0.15]},
        "training": {"epochs": args.epochs, "patience": args.patience, "batch_size": 128, "lr": 1e-3},
        "torch_threads": torch.get_num_threads(),
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "elapsed_s": round(elapsed, 1),
        "defaults_at_run": ModelConfig().to_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the grid, print and save the results."""
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    names = list(DEFAULT_RUN) if not args.only else args.only
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
    rows = []
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    for seed in range(args.seeds):
        sim, paired = make_data(seed, args.window, args.stride)
        if seed == 0:
            print(f"data: rats {paired.animals}, inputs {paired.input_dims}, "
                  f"samples train/val/test {[paired.n_samples(s) for s in ('train', 'val', 'test')]}")
        for name in names:
            settings = {**BASE, **CONFIGS[name]}
            model = MultiAnimalModel("mmvm", seed=seed, device="cpu", **settings)
            t0 = time.perf_counter()
            model.fit(paired, epochs=args.epochs, patience=args.patience, progress=False)
            fit_s = time.perf_counter() - t0
            scores = evaluate(model, sim, paired)
            row = {"config": name, "seed": seed, **scores, "fit_s": fit_s,
                   "epochs": model.fit_info_["epochs_run"], "best_epoch": model.fit_info_["best_epoch"],
                   "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}}
            rows.append(row)
            print(f"seed {seed} {name:<9} " + " ".join(
                f"{k}={row[k]:.3f}" if isinstance(row[k], float) else f"{k}={row[k]}" for k in METRICS))
    elapsed = time.perf_counter() - t_start
    meta = run_meta(args, elapsed, load_before)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({**meta, **row}) + "\n")
    table = markdown_table(rows, args.seeds)
    args.table.write_text(table, encoding="utf-8")
    print(table)
    print(f"total {elapsed:.0f} s; load {meta['loadavg_before'][0]:.2f} -> {meta['loadavg_after'][0]:.2f}; "
          f"appended to {args.out}, table in {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
