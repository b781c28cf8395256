"""Choose neurovamp's defaults on the mission's task: imputing a condition an animal never experienced.

A compact search (CPU is scarce): a few candidate settings of the MMVM VAE, each fitted on
simulated experiments of the simulator's default kind
(:meth:`neurovamp.simulate.SimulationConfig.small`: 3 rats with 24/30/18 units, -0.2..1.0 s
around odor onset in 20 ms bins, odors A-E, ``rat3`` never smells E) at two sizes
(``--sizes``, trials per rat: a few dozen and a few hundred), over ``--seeds`` data sets
(data seed = model seed). Every fit is scored on:

- ``imp_r``: condition-specific correlation of rat3's imputed odor E (mean over the other
  rats' E trials) with the truth, after subtracting the generic prediction (rat3's own
  mean over the odors it smelled): (imputed - generic) vs (true rate - generic);
- ``imp_r2``: 1 - SS(imputed - truth) / SS(generic - truth) (0 = the generic prediction);
- ``imp_bps_gen``: bits/spike of the imputed rates against the generic prediction on 200
  Poisson draws of the true E rate (> 0: the imputation adds condition information);
- ``self_bps``: held-out bits/spike of each rat reconstructed from itself (flat null);
- ``loco_r``, ``loco_bps_gen``: leave-one-condition-out at the small size only
  (:func:`neurovamp.analysis.loco.fit_and_score`: odor A hidden from rat1, refitted,
  imputed and scored against rat1's real A trials) - the ground-truth-free version;
- ``pc1``: share of latent variance on the first principal component (collapse check);
- ``epochs``, ``best``, ``fit_s``.

The scores are the shared ones of :mod:`neurovamp.analysis.metrics`
(``generic_prediction``, ``condition_scores``), through ``benchmarks/convergence.py``.

Usage::

    python benchmarks/select_task_defaults.py --sizes 60 --seeds 0 1 2 --loco
    python benchmarks/select_task_defaults.py --sizes 200 --seeds 0 1 2
    python benchmarks/select_task_defaults.py --table      # table from the JSON lines
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convergence import TARGET, MISSING, impute_scores, latent_pc1, self_bps  # noqa: E402

from neurovamp.analysis.loco import fit_and_score  # noqa: E402
from neurovamp.data.dataset import make_dataset  # noqa: E402
from neurovamp.data.pairing import pair_trials  # noqa: E402
from neurovamp.models.config import ModelConfig  # noqa: E402
from neurovamp.models.estimator import MultiAnimalModel  # noqa: E402
from neurovamp.simulate import SimulationConfig, simulate_experiment  # noqa: E402

HERE = Path(__file__).resolve().parent / "results"
CONDITIONS = ("A", "B", "C", "D", "E")
BIN = 0.02

#: name -> (ModelConfig overrides, training overrides, sub-window (None = whole trials), stride)
CANDIDATES: dict[str, tuple[dict[str, Any], dict[str, Any], int | None, int]] = {
    "old": ({}, {"kl_warmup": 0}, 10, 2),
    "warmup": ({}, {"kl_warmup": 50}, 10, 2),
    "linear+warmup": ({"decoder": "linear"}, {"kl_warmup": 50}, 10, 2),
    "latent4+warmup": ({"latent_dim": 4}, {"kl_warmup": 50}, 10, 2),
    "alpha0.1+warmup": ({"alpha": 0.1}, {"kl_warmup": 50}, 10, 2),
    "whole+linear+warmup": ({"decoder": "linear"}, {"kl_warmup": 50}, None, 1),
}
METRICS = ("imp_r", "imp_r2", "imp_bps_gen", "self_bps", "loco_r", "loco_bps_gen", "pc1", "epochs", "best", "fit_s")


def simulation(seed: int, trials: int):  # noqa: ANN201
    cfg = SimulationConfig.small(seed=1000 + seed, n_trials=trials, window=(-0.2, 1.0), bin_size=BIN)
    sim = simulate_experiment(cfg)
    return sim, make_dataset([sim.to_modality(rat) for rat in sim.rats])


def pairer(seed: int, window: int | None, stride: int):  # noqa: ANN201
    return functools.partial(pair_trials, by="odor", strategy="resample", conditions=list(CONDITIONS),
                             split=(0.7, 0.15, 0.15), seed=seed, window=window, stride=stride)


def run_one(name: str, seed: int, trials: int, loco: bool, epochs: int, patience: int) -> dict[str, Any]:
    from neurovamp.analysis.truth import true_condition_rates

    model_kw, train_kw, window, stride = CANDIDATES[name]
    sim, tree = simulation(seed, trials)
    pair = pairer(seed, window, stride)
    paired = pair(tree)
    fit_kw = {"epochs": epochs, "patience": patience, **train_kw}
    model = MultiAnimalModel("mmvm", seed=seed, device="cpu", **model_kw)
    t0 = time.perf_counter()
    model.fit(paired, progress=False, **fit_kw)
    fit_s = time.perf_counter() - t0
    time_axis = np.asarray(paired.modalities[TARGET]["time"].values, dtype=float)
    truth = true_condition_rates(sim.ground_truth, TARGET, MISSING, time_axis, BIN)
    imp = impute_scores(model, paired, truth, BIN, seed,
                        lambda c: true_condition_rates(sim.ground_truth, TARGET, c, time_axis, BIN))
    row: dict[str, Any] = {
        "candidate": name, "seed": seed, "trials": trials, "model_kw": model_kw, "train_kw": train_kw,
        "subwindow": window, "stride": stride,
        "imp_r": imp["r"], "imp_r2": imp["r2"], "imp_bps_gen": imp["bps_generic"], "imp_bps_flat": imp["bps_flat"],
        "generic_r_total": imp["generic_r_total"], "imputed_r_total": imp["imputed_r_total"],
        "self_bps": self_bps(model, paired), "pc1": latent_pc1(model, paired),
        "epochs": int(model.fit_info_["epochs_run"]), "best": int(model.fit_info_["best_epoch"]),
        "fit_s": round(fit_s, 1),
    }
    if loco:
        config = ModelConfig(**model_kw).to_dict()
        scores = fit_and_score(tree, "rat1", "A", by="odor", pair=pair, model_config=config, training=fit_kw,
                               seed=seed)
        row["loco_r"], row["loco_bps_gen"] = scores["r"], scores["bps_generic"]
    return row


def table(rows: list[dict[str, Any]]) -> str:
    """Mean ± sd over seeds of every metric, per size and candidate."""
    lines = ["| trials/rat | candidate | n | " + " | ".join(METRICS) + " |",
             "|---|---|---|" + "---|" * len(METRICS)]
    for trials in sorted({r["trials"] for r in rows}):
        for name in CANDIDATES:
            mine = [r for r in rows if r["candidate"] == name and r["trials"] == trials]
            if not mine:
                continue
            cells = []
            for m in METRICS:
                vals = [float(r[m]) for r in mine if m in r and r[m] is not None and np.isfinite(r[m])]
                if not vals:
                    cells.append("")
                    continue
                fmt = ".0f" if m in ("epochs", "best", "fit_s") else ".3f"
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f"{statistics.mean(vals):{fmt}} ± {sd:{fmt}}")
            lines.append(f"| {trials} | {name} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_differences(rows: list[dict[str, Any]], base: str = "old") -> str:
    """Candidate - ``base`` per seed (same data set), mean and the number of seeds where it is higher."""
    keys = ("imp_r", "imp_bps_gen", "loco_r", "loco_bps_gen", "self_bps")
    lines = ["| trials/rat | candidate - " + base + " | seeds | " + " | ".join(keys) + " |",
             "|---|---|---|" + "---|" * len(keys)]
    for trials in sorted({r["trials"] for r in rows}):
        ref = {r["seed"]: r for r in rows if r["candidate"] == base and r["trials"] == trials}
        for name in CANDIDATES:
            if name == base:
                continue
            mine = {r["seed"]: r for r in rows if r["candidate"] == name and r["trials"] == trials}
            seeds = sorted(set(ref) & set(mine))
            if not seeds:
                continue
            cells = []
            for k in keys:
                diffs = [mine[s][k] - ref[s][k] for s in seeds
                         if mine[s].get(k) is not None and ref[s].get(k) is not None]
                cells.append(f"{np.mean(diffs):+.3f} ({sum(d > 0 for d in diffs)}/{len(diffs)} higher)" if diffs else "")
            lines.append(f"| {trials} | {name} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[60])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--only", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    p.add_argument("--loco", action="store_true", help="also one leave-one-condition-out fit per run")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--patience", type=int, default=20)
    p.add_argument("--out", type=Path, default=HERE / "task_defaults.jsonl")
    p.add_argument("--table", action="store_true", help="only print the table of --out")
    args = p.parse_args(argv)
    if args.table:
        rows = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]
        print(table(rows))
        print(paired_differences(rows))
        return 0
    torch.set_num_threads(1)
    for trials in args.sizes:
        for seed in args.seeds:
            for name in args.only:
                row = run_one(name, seed, trials, args.loco, args.epochs, args.patience)
                row["timestamp"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
                row["command"] = "python benchmarks/select_task_defaults.py " + " ".join(argv or sys.argv[1:])
                with args.out.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(" ".join(f"{k}={row[k]:.3f}" if isinstance(row.get(k), float) else f"{k}={row.get(k)}"
                               for k in ("candidate", "trials", "seed", *METRICS)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
