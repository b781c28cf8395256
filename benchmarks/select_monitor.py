"""Choose by measurement which validation term early stopping monitors.

The MMVM VAE's regulariser (the KL of each rat's posterior to the mixture of the rats'
posteriors) tends to rise on held-out pairs while reconstruction still improves, so
early stopping on the validation loss (the negative ELBO, ``monitor="loss"``) may stop
MMVM fits before reconstruction has converged. This script fits the MMVM VAE and two
baselines (``independent``, ``mopoe``) with the current default model settings
(:class:`neurovamp.models.config.ModelConfig`) on the simulated data of
``benchmarks/select_defaults.py`` (its default data, pairing and sub-windows; ``--seeds``
data sets, data seed = model seed) twice: early stopping on the validation loss
(``monitor="loss"``) and on its reconstruction term (``monitor="rec"``), with the same
patience, and scores each fit on the held-out test trials with
:func:`select_defaults.evaluate` (``rec_bps``, ``cross_bps``, ``true_r2``, ``impute_r2``,
``decode``, ``shared``, ``align_r2``; see that script's docstring), plus ``epochs`` (run),
``best_epoch`` (restored), ``fit_s`` (wall time of ``fit``) and, from the training
history, the epochs at which the validation loss and the validation reconstruction term
were lowest (``argmin_loss``, ``argmin_rec``).

Raw rows (one per fit, with the settings) are appended to
``benchmarks/results/monitor.jsonl``; the table of means and the paired differences
(``rec`` minus ``loss`` on the same data set and seed) are written to
``benchmarks/results/monitor.md`` (refused if it exists, unless ``--overwrite``).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/select_monitor.py              # 3 models x 2 monitors x 3 seeds
    python benchmarks/select_monitor.py --seeds 1 --models mmvm --out /tmp/m.jsonl --table /tmp/m.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from select_defaults import evaluate, make_data, run_meta  # noqa: E402

from neurovamp._files import atomic_output, check_writable  # noqa: E402
from neurovamp.data.pairing import PairedData  # noqa: E402
from neurovamp.models.estimator import MultiAnimalModel  # noqa: E402
from neurovamp.models.training import MONITOR_TERMS  # noqa: E402

HERE = Path(__file__).resolve().parent / "results"
MODELS = ("mmvm", "independent", "mopoe")
SCORES = ("rec_bps", "cross_bps", "true_r2", "impute_r2", "decode", "shared", "align_r2")
"""Held-out scores, higher is better."""
COSTS = ("epochs", "best_epoch", "fit_s")
"""Training cost columns (reported, not ranked)."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options.

    Parameters
    ----------
    argv
        Arguments (``sys.argv[1:]`` when ``None``).

    Returns
    -------
    argparse.Namespace
        The parsed options.
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3, help="simulated data sets (and model seeds)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--monitors", nargs="+", default=list(MONITOR_TERMS), choices=list(MONITOR_TERMS))
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--patience", type=int, default=20)
    p.add_argument("--window", type=int, default=10, help="sub-window length in bins")
    p.add_argument("--stride", type=int, default=2, help="bins between sub-windows")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--out", type=Path, default=HERE / "monitor.jsonl", help="JSON lines, appended")
    p.add_argument("--table", type=Path, default=HERE / "monitor.md", help="Markdown results")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --table")
    return p.parse_args(argv)


def _argmin_epoch(history: Any, column: str) -> int:
    """1-based epoch of the lowest value of a history column (0 when absent)."""
    if column not in history:
        return 0
    values = np.asarray(history[column], dtype=float)
    return int(history["epoch"].iloc[int(np.nanargmin(values))])


def fit_one(model_name: str, monitor: str, seed: int, sim: Any, paired: PairedData,
            args: argparse.Namespace) -> dict[str, Any]:
    """Fit one model with one monitor and score it.

    Parameters
    ----------
    model_name
        ``MultiAnimalModel`` model name.
    monitor
        ``TrainingConfig.monitor``.
    seed
        Model seed (= data seed).
    sim, paired
        The simulation (ground truth) and its paired data.
    args
        Options (epochs, patience).

    Returns
    -------
    dict
        One result row: scores, costs, history argmins and settings.
    """
    model = MultiAnimalModel(model_name, seed=seed, device="cpu")
    t0 = time.perf_counter()
    model.fit(paired, epochs=args.epochs, patience=args.patience, monitor=monitor, progress=False)
    fit_s = time.perf_counter() - t0
    history = model.history_
    return {
        "model": model_name,
        "monitor": monitor,
        "seed": seed,
        **evaluate(model, sim, paired),
        "epochs": model.fit_info_["epochs_run"],
        "best_epoch": model.fit_info_["best_epoch"],
        "fit_s": fit_s,
        "argmin_loss": _argmin_epoch(history, "val/loss"),
        "argmin_rec": _argmin_epoch(history, "val/rec"),
        "model_config": model.config.to_dict(),
        "training_config": model.training_config_.to_dict(),
    }


def _cell(values: Sequence[float], fmt: str) -> str:
    """``mean ± half-range`` of a metric over seeds."""
    mean = statistics.mean(values)
    if len(values) == 1:
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} ± {(max(values) - min(values)) / 2:{fmt}}"


def means_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table: mean ± half the range over seeds per model and monitor.

    Parameters
    ----------
    rows
        Result rows of :func:`fit_one`.

    Returns
    -------
    str
        The table.
    """
    columns = (*SCORES, *COSTS)
    lines = ["| model | monitor | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for model in dict.fromkeys(r["model"] for r in rows):
        for monitor in dict.fromkeys(r["monitor"] for r in rows):
            mine = [r for r in rows if r["model"] == model and r["monitor"] == monitor]
            if not mine:
                continue
            cells = [_cell([r[c] for r in mine], ".0f" if c in COSTS else ".3f") for c in columns]
            lines.append(f"| {model} | {monitor} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def paired_differences(rows: Sequence[dict[str, Any]], a: str = "rec", b: str = "loss") -> str:
    """Markdown table of ``a − b`` per model on the same data set and seed.

    Each score cell is the mean difference and, in brackets, the number of seeds where
    ``a`` scored higher; cost cells are the mean difference.

    Parameters
    ----------
    rows
        Result rows of :func:`fit_one`.
    a, b
        The monitors compared.

    Returns
    -------
    str
        The table (empty string when a model lacks either monitor).
    """
    columns = (*SCORES, *COSTS)
    lines = ["| model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for model in dict.fromkeys(r["model"] for r in rows):
        by_seed = {(r["monitor"], r["seed"]): r for r in rows if r["model"] == model}
        seeds = sorted(s for (m, s) in by_seed if m == a and (b, s) in by_seed)
        if not seeds:
            continue
        cells = []
        for column in columns:
            diffs = [by_seed[(a, s)][column] - by_seed[(b, s)][column] for s in seeds]
            if column in COSTS:
                cells.append(f"{statistics.mean(diffs):+.0f}")
            else:
                wins = sum(d > 0 for d in diffs)
                cells.append(f"{statistics.mean(diffs):+.3f} ({wins}/{len(seeds)})")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def report(rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The Markdown results file: settings, means table, paired differences.

    Parameters
    ----------
    rows
        Result rows of :func:`fit_one`.
    meta
        Run description (settings, timing, load).

    Returns
    -------
    str
        Markdown text.
    """
    training = meta["training"]
    head = (
        "# Early-stopping monitor: validation loss vs reconstruction term\n\n"
        "Produced by `benchmarks/select_monitor.py` (raw rows in `monitor.jsonl`). Data, pairing and "
        "scores as in `select_defaults.py` (`defaults.md`): the medium simulated experiment, "
        f"data seeds {meta['seeds']} (model seed = data seed), scores on held-out test trials "
        "(higher is better). Models with the default `ModelConfig` "
        f"(MLP decoder, latent 8, Poisson); `fit(epochs={training['epochs']}, "
        f"patience={training['patience']}, monitor=...)`, Adam lr 1e-3, batch 128, best weights restored. "
        f"{meta['n_fits']} fits and their evaluations in {meta['elapsed_s']:.0f} s, "
        f"{meta['torch_threads']} torch thread, load average {meta['loadavg_before'][0]:.2f} -> "
        f"{meta['loadavg_after'][0]:.2f} (2 shared cores).\n\n"
        "`epochs` = epochs run, `best_epoch` = epoch restored, `fit_s` = wall time of `fit`.\n\n"
    )
    argmins = "\n".join(
        f"- {r['model']} seed {r['seed']} (monitor={r['monitor']}): val/loss lowest at epoch "
        f"{r['argmin_loss']}, val/rec lowest at epoch {r['argmin_rec']} of {r['epochs']}"
        for r in rows
    )
    return (
        head
        + "## Mean ± half the range over data sets\n\n" + means_table(rows)
        + "\n## Paired differences, rec − loss (same data set and seed; mean, seeds where rec is higher)\n\n"
        + paired_differences(rows)
        + "\n## Where the validation terms were lowest (from each fit's history)\n\n" + argmins + "\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fits, append the rows, write the Markdown results.

    Parameters
    ----------
    argv
        Command-line arguments.

    Returns
    -------
    int
        Exit status.
    """
    args = parse_args(argv)
    check_writable(args.table, overwrite=args.overwrite)
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    t_start, load_before = time.perf_counter(), os.getloadavg()
    for seed in range(args.seeds):
        sim, paired = make_data(seed, args.window, args.stride)
        for model_name in args.models:
            for monitor in args.monitors:
                row = fit_one(model_name, monitor, seed, sim, paired, args)
                rows.append(row)
                print(f"seed {seed} {model_name:<11} {monitor:<4} " + " ".join(
                    f"{k}={row[k]:.3f}" if isinstance(row[k], float) else f"{k}={row[k]}"
                    for k in (*SCORES, *COSTS, "argmin_loss", "argmin_rec")), flush=True)
    meta = {**run_meta(args, time.perf_counter() - t_start, load_before),
            "seeds": list(range(args.seeds)), "n_fits": len(rows)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({**meta, **row}) + "\n")
    text = report(rows, meta)
    with atomic_output(args.table, overwrite=args.overwrite) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    print(text)
    print(f"appended {len(rows)} rows to {args.out}; results in {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
