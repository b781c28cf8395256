"""neurovamp's MMVM side by side with the tools labs would pick instead: CEBRA and MultiVae.

On one simulated experiment with ground truth (:func:`neurovamp.simulate.simulate_experiment`:
4 rats with 40/30/50/25 units, 120 trials each, -0.1..0.8 s around odor onset in 20 ms
bins, ``rat4`` never smells odor D; odors A-D paired across rats by
:func:`neurovamp.data.pairing.pair_trials`, 70/15/15 train/validation/test trials, 10-bin
sub-windows every 2 bins) every method is fitted on the same training trials and scored
on the same held-out test trials by the same scorers (``benchmarks/peers/scoring.py``,
built on neurovamp's own):

- ``neurovamp MMVM``: :class:`neurovamp.MultiAnimalModel` with its defaults;
- ``CEBRA multi-session``: one encoder per rat, discrete label = the odor
  (``benchmarks/peers/cebra_adapter.py``);
- ``MultiVae MoPoE`` and ``MultiVae MMVAE+``: per-rat encoders/decoders sized like
  neurovamp's (``benchmarks/peers/multivae_adapter.py``).

Scores (held-out test trials; nulls beside them):

- ``decode``: odor balanced accuracy per rat (trained on the rat's training trials),
  mean over rats; ``shared``: one classifier for every rat (leave-one-rat-out); chance
  0.25;
- ``align_r2``: neurovamp's cross-validated (leave-one-odor-out) R² of a linear map
  between rats' odor-averaged latent trajectories (null about 0 or below);
  ``consistency``: CEBRA's consistency score on the same trajectories (in sample, so it
  flatters every method);
- generative methods only: ``heldout_bps`` / ``heldout_bps_generic``: bits/spike of rat
  t's test trials predicted from rat s's paired test trial, against the flat-rate null
  and the target's own mean response (generic null; 0 = no better than the null);
  ``heldout_r``: condition-specific r against the true rates; ``novel_*``: the same for
  ``rat4``'s never-experienced odor D (imputed from the other rats' D trials; scored on
  Poisson draws from its true rate);
- ``fit_s``: wall-clock fit time (1 torch thread); ``samples_per_s``: training samples
  processed per second (VAEs: samples × epochs; CEBRA: batch × iterations; the units
  differ, see peers.md).

Each seed simulates a new experiment (data seed = model seed). Results: one JSON line
per (seed, method) appended to ``benchmarks/results/peers.jsonl``, the table and figure
in ``benchmarks/results/peers.md`` / ``peers.png``.

Install (a separate environment; never the package's)::

    python3 -m venv /work/venv-peers && /work/venv-peers/bin/pip install torch==2.13.0
    /work/venv-peers/bin/pip install -e '.[test,peers]'           # CEBRA 0.6 and MultiVae's real needs
    /work/venv-peers/bin/pip install --no-deps multivae==1.0.3 pythae==0.1.2

MultiVae workaround: ``pip install multivae`` resolves to torch 2.14 + torchvision 0.29
(replacing the pinned CPU torch 2.13), and the torchvision wheels available (0.28.0,
0.29.x) fail to import with ``torch==2.13.0+cpu`` (``operator torchvision::nms does not
exist``). MultiVae is therefore installed without its dependencies and imported with a
torchvision shim (``benchmarks/peers/torchvision_shim``; MultiVae only uses torchvision
for image data sets, grids and metrics). The ``peers`` extra holds CEBRA and what MultiVae
and pythae really need (pydantic, torchmetrics, nltk, imageio, cloudpickle); MultiVae and
pythae themselves need ``--no-deps``.

Usage::

    OMP_NUM_THREADS=1 /work/venv-peers/bin/python benchmarks/bench_peers.py --quick   # 1 seed, few epochs
    OMP_NUM_THREADS=1 /work/venv-peers/bin/python benchmarks/bench_peers.py --jobs 3  # the recorded run
    /work/venv-peers/bin/python benchmarks/bench_peers.py --from-jsonl  # rewrite peers.md from peers.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from peers.base import Method, NeurovampMMVM  # noqa: E402
from peers.scoring import score_generation, score_latents  # noqa: E402

from neurovamp.data.dataset import make_dataset  # noqa: E402
from neurovamp.data.pairing import PairedData, pair_trials  # noqa: E402
from neurovamp.simulate import Simulation, SimulationConfig, simulate_experiment  # noqa: E402

RESULTS = HERE / "results"
CONDITIONS = ("A", "B", "C", "D")
METHODS = ("mmvm", "cebra", "mopoe", "mmvae+")
LATENT_COLS = ("decode", "shared", "align_r2", "consistency")
GEN_COLS = ("heldout_bps", "heldout_bps_generic", "heldout_r", "novel_bps", "novel_bps_generic", "novel_r")
COST_COLS = ("fit_s", "fit_cpu_s", "samples_per_s")
COLUMNS = LATENT_COLS + GEN_COLS + COST_COLS
TITLES = {
    "decode": "odor acc. per rat", "shared": "odor acc. shared", "align_r2": "align R² (CV)",
    "consistency": "CEBRA consistency", "heldout_bps": "held-out bps (flat null)",
    "heldout_bps_generic": "held-out bps (generic null)", "heldout_r": "held-out cond. r",
    "novel_bps": "novel odor bps (flat)", "novel_bps_generic": "novel odor bps (generic)",
    "novel_r": "novel odor cond. r", "fit_s": "fit s (wall)", "fit_cpu_s": "fit CPU s",
    "samples_per_s": "samples/s (wall)",
}
LOWER_IS_BETTER = {"fit_s", "fit_cpu_s"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 seed, a few epochs/iterations (a smoke run, not recorded)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    p.add_argument("--epochs", type=int, default=60, help="VAEs: most epochs (early stopping on validation)")
    p.add_argument("--patience", type=int, default=8)
    p.add_argument("--cebra-iterations", type=int, default=300,
                   help="CEBRA iterations (its default is 10000; ~1 s each on a shared core here)")
    p.add_argument("--mmvae-k", type=int, default=3, help="MMVAE+ importance samples K (MultiVae's default is 10)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per fit")
    p.add_argument("--jobs", type=int, default=1, help="seeds fitted in parallel processes")
    p.add_argument("--out", type=Path, default=RESULTS / "peers.jsonl")
    p.add_argument("--report", type=Path, default=RESULTS / "peers.md")
    p.add_argument("--from-jsonl", action="store_true",
                   help="fit nothing: rewrite --report from the last run recorded in --out")
    return p.parse_args(argv)


def simulation_config(seed: int) -> SimulationConfig:
    """The benchmark's experiment (see the module docstring)."""
    return SimulationConfig(n_rats=4, n_units=(40, 30, 50, 25), n_trials=120, window=(-0.1, 0.8),
                            bin_size=0.02, missing={"rat4": ("D",)}, seed=seed)


def make_data(seed: int) -> tuple[Simulation, PairedData]:
    """Simulate and pair (the same for every method of a seed)."""
    sim = simulate_experiment(simulation_config(seed))
    tree = make_dataset([sim.to_modality(rat) for rat in sim.rats])
    paired = pair_trials(tree, by="odor", conditions=list(CONDITIONS), window=10, stride=2, seed=seed)
    return sim, paired


def make_method(name: str, seed: int, args: argparse.Namespace) -> Method:
    """The adapter of one method."""
    if name == "mmvm":
        return NeurovampMMVM(seed, args.quick, epochs=args.epochs, patience=args.patience)
    if name == "cebra":
        from peers.cebra_adapter import CebraMultiSession

        return CebraMultiSession(seed, args.quick, max_iterations=args.cebra_iterations)
    from peers.multivae_adapter import MultiVaeMethod

    return MultiVaeMethod(name, seed, args.quick, epochs=args.epochs, patience=args.patience, K=args.mmvae_k)


def run_one(method: Method, sim: Simulation, paired: PairedData) -> dict[str, Any]:
    """Fit and score one method on one seed's data."""
    info = method.fit(paired)
    step = max(1, paired.window // paired.stride)
    row: dict[str, Any] = {"method": method.name, **{k: v for k, v in info.items()}}
    row.update(score_latents(lambda a, s: method.latents(paired, a, s), paired.animals, CONDITIONS, step))
    if method.can_generate:
        bin_size = sim.config.bin_size

        def true_rates(animal: str, rows: np.ndarray) -> np.ndarray:
            trial_ids = np.asarray(paired.modalities[animal]["trial"].values)[rows]
            return np.asarray(sim.ground_truth.rates[animal], dtype=np.float64)[trial_ids] * bin_size

        def condition_rate(animal: str, cond: str) -> np.ndarray:
            return sim.ground_truth.condition_rate(animal, cond) * bin_size

        row.update(score_generation(method.generate, paired, true_rates, condition_rate, CONDITIONS,
                                    seed=method.seed))
    else:
        row.update({k: None for k in GEN_COLS})
    return row


# --------------------------------------------------------------------------- report
def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, tuple[float, float, int]]]:
    """Method → column → (mean, sd over seeds, n); None/NaN values are left out."""
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    for name in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == name]
        out[name] = {}
        for col in COLUMNS:
            vals = [float(r[col]) for r in mine if r.get(col) is not None and np.isfinite(float(r[col]))]
            if vals:
                sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
                out[name][col] = (float(np.mean(vals)), sd, len(vals))
    return out


def winners(summary: dict[str, dict[str, tuple[float, float, int]]]) -> dict[str, str]:
    """Column → the method with the best mean (lowest for fit time)."""
    best = {}
    for col in COLUMNS:
        if col == "samples_per_s":  # CEBRA's samples are not the VAEs' samples: no winner
            continue
        have = {m: s[col][0] for m, s in summary.items() if col in s}
        if have:
            pick = min if col in LOWER_IS_BETTER else max
            best[col] = pick(have, key=have.get)
    return best


def _cell(stat: tuple[float, float, int] | None, col: str) -> str:
    if stat is None:
        return "—"
    mean, sd, _ = stat
    digits = 0 if col in COST_COLS else 3
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def markdown_table(summary: dict[str, dict[str, tuple[float, float, int]]], cols: tuple[str, ...]) -> str:
    """One table of mean ± sd; the best mean of each column in bold (columns nobody has are left out)."""
    best = winners(summary)
    cols = tuple(c for c in cols if any(c in stats for stats in summary.values()))
    head = "| method | " + " | ".join(TITLES[c] for c in cols) + " |\n|---|" + "---|" * len(cols) + "\n"
    lines = []
    for name, stats in summary.items():
        cells = []
        for c in cols:
            text = _cell(stats.get(c), c)
            cells.append(f"**{text}**" if best.get(c) == name and c in stats else text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def write_figure(summary: dict[str, dict[str, tuple[float, float, int]]], path: Path) -> None:
    """Bar chart (mean ± sd over seeds) of the quality columns, nulls as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = LATENT_COLS + GEN_COLS
    nulls = {"decode": 0.25, "shared": 0.25, "align_r2": 0.0, "heldout_bps": 0.0, "heldout_bps_generic": 0.0,
             "heldout_r": 0.0, "novel_bps": 0.0, "novel_bps_generic": 0.0, "novel_r": 0.0}
    methods = list(summary)
    colors = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e"]
    fig, axes = plt.subplots(2, 5, figsize=(17, 6.5))
    for ax, col in zip(axes.ravel(), cols):
        for i, m in enumerate(methods):
            stat = summary[m].get(col)
            if stat is None:
                ax.text(i, 0.5, "n/a", ha="center", va="center", fontsize=8, color="grey",
                        transform=ax.get_xaxis_transform())
                continue
            ax.bar(i, stat[0], yerr=stat[1], color=colors[i % len(colors)], capsize=3)
        if col in nulls:
            ax.axhline(nulls[col], ls="--", color="k", lw=0.8)
        ax.set_title(TITLES[col], fontsize=10)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels([m.replace(" ", "\n", 1) for m in methods], fontsize=7)
    for ax in axes.ravel()[len(cols):]:
        ax.axis("off")
    fig.suptitle("Held-out scores, mean ± sd over seeds (dashed: null / chance)", fontsize=11)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_report(rows: list[dict[str, Any]], meta: dict[str, Any], path: Path) -> None:
    """peers.md: settings, the command, the tables and the figure, generated from ``rows``."""
    summary = summarise(rows)
    best = winners(summary)
    fig = path.with_suffix(".png")
    write_figure(summary, fig)
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        "# neurovamp vs CEBRA and MultiVae (`bench_peers.py`)",
        "",
        f"Generated by `benchmarks/bench_peers.py` on {meta['timestamp']}. Command: `{meta['command']}`.",
        f"Wall time of the whole run: {meta['elapsed_s']:.0f} s on {meta['machine']} "
        f"(load average {meta['loadavg_before'][0]:.2f} → {meta['loadavg_after'][0]:.2f}; "
        f"{meta['torch_threads']} torch thread per fit, {meta['jobs']} seed(s) in parallel). Seeds {seeds} (each a new simulated experiment); "
        "mean ± sd over seeds; bold = best mean of the column.",
        "",
        "Data: " + meta["data"],
        "",
        "## Latents: decoding and cross-animal alignment (held-out test trials)",
        "",
        markdown_table(summary, LATENT_COLS),
        "Chance of both decoding columns: 0.25 (4 odors, balanced accuracy). `align R² (CV)`: neurovamp's "
        "leave-one-odor-out R² of a linear map between rats' odor-averaged test trajectories (≤ 0 = no alignment). "
        "`CEBRA consistency`: CEBRA's own score (`cebra.sklearn.metrics.consistency_score`, between datasets) on the "
        "same trajectories restricted to the odors every rat has, fitted and scored in sample (no held-out "
        "condition), mean over ordered pairs of rats.",
        "",
        "## Generation: imputing a rat from another (held-out test trials) and a never-experienced odor",
        "",
        markdown_table(summary, GEN_COLS),
        "Bits/spike > 0 beats the null: *flat* = each unit's mean rate over the scored trials, *generic* = the "
        "target rat's own mean response (per unit and bin, over its training trials of every odor it has, with one "
        "pseudo-trial at the unit's mean rate and a 2-bin Gaussian smoothing over time so that the null is not "
        "handicapped by its own noise). `cond. r`: correlation of (imputed − generic) with (true − generic) rates, "
        "pooled over odors, units and bins, with generic = the mean *true* rate of the target's training trials "
        "(0 = the imputation carries no condition-specific information). Novel odor: `rat4` never smelled D; its D response is imputed from the other rats' D trials and "
        "scored against the simulator's expected rate (bits/spike on 50 Poisson draws from it). "
        "CEBRA has no decoder (—).",
        "",
        "## Cost",
        "",
        markdown_table(summary, COST_COLS),
        f"Fit time is wall clock with 1 torch thread per fit and {meta['jobs']} seed(s) fitted at once, on 2 cores "
        f"shared with other work (load average {meta['loadavg_before'][0]:.1f} → {meta['loadavg_after'][0]:.1f}): "
        "every fit got a similar small share of a core, so compare methods within this run only. samples/s: "
        "VAEs count training samples (pair × sub-window) × epochs run; CEBRA counts batch size × iterations "
        "(time points, with its negatives), so the two are not the same unit and the column has no winner.",
        "",
        f"![held-out scores]({fig.name})",
        "",
        "## Best method per column",
        "",
        "\n".join(f"- {TITLES[c]}: {m}" for c, m in best.items()),
        "",
        "## Settings",
        "",
        "- neurovamp MMVM: `MultiAnimalModel(\"mmvm\")` defaults "
        f"({meta.get('mmvm_config', '?')}), Adam lr 1e-3, batch 128, ≤ {meta['max_epochs']} epochs, "
        f"early stopping (patience {meta['patience']}).",
        f"- CEBRA {meta['versions'].get('cebra', '?')} multi-session: offset10-model, batch 512, lr 3e-4, "
        f"temperature 1, cosine distance, output dimension 8, discrete label = odor, {meta['cebra_iterations']} "
        "iterations (CEBRA's default is 10 000; fewer here to fit the 2 shared cores: CEBRA is undertrained), trained on the training "
        "trials concatenated per rat, of the odors every rat has (A-C: CEBRA's discrete multi-session sampler fails with an "
        "IndexError when a session lacks a label, and rat4 never smelled D); each 10-bin sub-window is one receptive field "
        "of the rat's encoder, so its latents line up with the VAEs' sub-window latents.",
        f"- MultiVae {meta['versions'].get('multivae', '?')} MoPoE and MMVAE+ (K = {meta['mmvae_k']} importance "
        "samples, MultiVae's default is 10; private latent 4 per rat): per-rat MLP encoders/decoders 128 wide, latent 8 (neurovamp's default sizes), Poisson "
        "reconstruction log-likelihood (MultiVae has none; set in place of its Gaussian default), the same training "
        "loop and early stopping as neurovamp, the same samples.",
        "- Scorers: `benchmarks/peers/scoring.py` (neurovamp's `transfer_decode`, `decode_shared`, "
        "`alignment_matrix`, `bits_per_spike`; local generic null, condition-specific r and CEBRA consistency "
        "until neurovamp has them).",
        "",
        "## Install workaround (MultiVae 1.0.3)",
        "",
        "`pip install multivae` would replace the pinned `torch==2.13.0+cpu` (it resolves torch 2.14 and "
        "torchvision 0.29), and the torchvision wheels on the index (0.28.0, 0.29.x) fail to import with the CPU "
        "torch 2.13 (`RuntimeError: operator torchvision::nms does not exist`). MultiVae and pythae are installed "
        "with `--no-deps` plus their real needs, and `benchmarks/peers/torchvision_shim` stands in for torchvision "
        "(MultiVae imports it at module level only for image data sets, grids and FID metrics; the shim raises if "
        "any of those is used). Torch is unchanged. "
        f"Shim used in this run: {meta.get('torchvision_shim')}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
    ]
    if meta.get("failures"):
        lines += ["## Failures", "", *[f"- {f}" for f in meta["failures"]], ""]
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, path)


META_KEYS = ("timestamp", "command", "quick", "elapsed_s", "machine", "loadavg_before", "loadavg_after",
             "torch_threads", "jobs", "data", "max_epochs", "patience", "cebra_iterations", "mmvae_k", "mmvm_config",
             "torchvision_shim", "versions", "failures")


def last_run(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows and run metadata of the last run appended to a JSONL record."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not records:
        raise SystemExit(f"{path} holds no results")
    stamp = records[-1]["timestamp"]
    rows = [r for r in records if r["timestamp"] == stamp]
    meta = {k: rows[0].get(k) for k in META_KEYS}
    if meta["max_epochs"] is None:  # records before "max_epochs": the rows' "epochs" is epochs *run*
        meta["max_epochs"] = parse_args(shlex.split(meta["command"])[3:]).epochs
    meta["jobs"] = meta["jobs"] or 1
    return rows, meta


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for pkg in ("neurovamp", "torch", "cebra", "multivae", "pythae"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def run_seed(seed: int, args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str]]:
    """Every method on one seed's data (one process; ``args.threads`` torch threads)."""
    torch.set_num_threads(args.threads)
    sim, paired = make_data(seed)
    print(f"seed {seed} data: rats {paired.animals}, inputs {paired.input_dims}, samples train/val/test "
          f"{[paired.n_samples(s) for s in ('train', 'val', 'test')]}", flush=True)
    rows, failures = [], []
    for name in args.methods:
        try:
            method = make_method(name, seed, args)
            row = run_one(method, sim, paired)
        except Exception as err:  # noqa: BLE001 - a failing peer is recorded, not fatal
            failures.append(f"seed {seed} {name}: {type(err).__name__}: {err}")
            traceback.print_exc()
            continue
        row["seed"] = seed
        rows.append(row)
        print(f"seed {seed} {row['method']:<20} " + " ".join(
            f"{c}={row[c]:.3f}" for c in COLUMNS if isinstance(row.get(c), float)), flush=True)
    return rows, failures


def main(argv: list[str] | None = None) -> int:
    """Run every method on every seed, append the JSON lines, write the report."""
    args = parse_args(argv)
    if args.from_jsonl:
        rows, meta = last_run(args.out)
        write_report(rows, meta, args.report)
        print(f"report {args.report} rewritten from {len(rows)} rows of the run of {meta['timestamp']} in {args.out}")
        return 0
    torch.set_num_threads(args.threads)
    seeds = 1 if args.quick else args.seeds
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    rows, failures, shim = [], [], None
    jobs = max(1, min(args.jobs, seeds))
    if jobs == 1:
        results = [run_seed(seed, args) for seed in range(seeds)]
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(run_seed, range(seeds), [args] * seeds))
    for seed_rows, seed_failures in results:
        rows += seed_rows
        failures += seed_failures
    shim = next((r["torchvision_shim"] for r in rows if "torchvision_shim" in r), None)
    elapsed = time.perf_counter() - t_start
    mmvm = next((r.get("config") for r in rows if r["method"] == "neurovamp MMVM"), None)
    meta = {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "OMP_NUM_THREADS=1 python benchmarks/bench_peers.py " + shlex.join(argv if argv is not None
                                                                                      else sys.argv[1:]),
        "quick": args.quick,
        "elapsed_s": elapsed,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
        "torch_threads": args.threads,
        "jobs": max(1, min(args.jobs, seeds)),
        "data": (f"{simulation_config(0).n_rats} simulated rats, units {simulation_config(0).n_units}, "
                 f"{simulation_config(0).n_trials} trials each, window {simulation_config(0).window} s, {simulation_config(0).bin_size * 1000:.0f} ms bins, "
                 "rat4 never smells D; odors A-D paired (`pair_trials`, truncate), 70/15/15 % train/val/test trials, "
                 "10-bin sub-windows every 2 bins."),
        "max_epochs": args.epochs, "patience": args.patience, "cebra_iterations": args.cebra_iterations,
        "mmvae_k": args.mmvae_k,
        "mmvm_config": None if mmvm is None else ", ".join(
            f"{k}={mmvm[k]}" for k in ("likelihood", "latent_dim", "hidden", "decoder", "alpha", "beta") if k in mmvm),
        "torchvision_shim": shim,
        "versions": _versions(),
        "failures": failures,
    }
    if args.quick:
        args.out = args.out.with_name(args.out.stem + "_quick.jsonl")
        args.report = args.report.with_name(args.report.stem + "_quick.md")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({**{k: v for k, v in meta.items()}, **row}, default=str) + "\n")
    if rows:
        write_report(rows, meta, args.report)
    print(f"total {elapsed:.0f} s; {len(rows)} fits, {len(failures)} failures; "
          f"appended to {args.out}, report {args.report}", flush=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
