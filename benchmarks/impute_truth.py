"""Imputation of a never-experienced condition against simulated ground truth, MMVM vs baselines.

On simulated data of the simulator's default kind (five rats, the release's unit counts,
the last rat never smells the last odor), over several seeds, every model is fitted with
neurovamp's current defaults (``MultiAnimalModel(model)`` and ``fit``'s defaults) and scored
on the task users run it for: imputing the rat's never-smelled odor from the other rats.

Scores per (model, seed) (definitions in ``DESIGN.md``, "Metrics", and
:mod:`neurovamp.analysis.metrics`):

``r``
    correlation of the imputed condition mean with the true rates (pooled over units, bins);
``generic_r``
    the same for the generic prediction (the rat's own mean over the odors it smelled);
``cond_r`` / ``cond_r2``
    :func:`~neurovamp.analysis.metrics.condition_specific_score` of the imputation against
    the truth, relative to the *true* generic rate (the mean of the rat's true rates over the
    odors it smelled; the empirical generic would add its own sampling noise to both sides);
``bps`` / ``generic_bps`` / ``bps_vs_generic``
    bits/spike on fresh Poisson trials drawn from the true rates: the imputation vs each
    unit's flat rate (its mean count over those trials: an oracle null that knows the
    condition's mean rates), the empirical generic prediction (``rates_generic``, from the
    rat's trials of the odors it smelled) vs flat, the imputation vs the empirical generic;
``true_generic_r`` / ``true_generic_bps`` / ``bps_vs_true_generic``
    the same with the noise-free generic rate (the mean of the rat's true rates over the
    odors it smelled: the generic prediction of a lab with unlimited trials);
``coverage`` / ``coverage_posterior``
    :func:`~neurovamp.analysis.metrics.band_coverage` of the 95 % band ``rates_lo``/``rates_hi``
    with the model error measured in-sample (band ``"predictive"``) and of the posterior-only
    band over the true rates, with the median band width (Hz);
``coverage_loco_pP`` / ``band_width_loco_pP_hz``
    the same for the calibrated band (``"predictive-loco"``): the model error measured by
    leave-one-condition-out fits of the target (each odor it smelled hidden from it in turn,
    the same defaults and seed; :mod:`neurovamp.analysis.calibration`), with the error
    variance scaled by rate**P, P = 0, 1, 2 (what was tried; the acceptance line uses
    neurovamp's default ``RATE_POWER``); ``coverage_loco_pP_top`` on the third of the
    units with the highest true rate (where a band of one width for every unit fails);
    ``coverage_oracle_scale``: the default error model with its scale fitted on this very
    condition's true error (is the shape right when the level is?) and ``loco_scale_ratio``
    the LOCO scale over that oracle scale (> 1: LOCO overstates this condition's error);
    ``loco_seconds`` the LOCO fits' time;
``alignment``
    ``metrics.json``'s ``alignment.mean_r2`` (cross-validated linear alignment) and
    ``identity_mean_r2`` (no map).

Reuse: :func:`run_benchmark` returns the table (a pandas DataFrame, one row per model and
seed) and :func:`score_model` scores one fitted model, so another study (e.g. one that
re-chooses the defaults) can call them with its own ``model_kwargs`` / ``fit_kwargs``.

Which condition is missing
--------------------------
By default the simulator's own choice: the last rat never smells the last odor (E), on
every seed. ``--missing rotate`` withholds a different odor on each seed, ``MISSABLE[seed %
4]`` (B, C, D, E; the first odor starts every sequence and cannot be missing), from the same
rat: a band calibrated on the target's other conditions must cover whichever condition is
the missing one, and a single odor may be easier or harder to impute than the rest.

Commands that produced ``results/impute_truth.md`` and ``results/impute_truth_rotate.md``
(see those files)::

    OMP_NUM_THREADS=1 python benchmarks/impute_truth.py --seeds 0 1 2 3 4 5 --models mmvm independent
    OMP_NUM_THREADS=1 python benchmarks/impute_truth.py --seeds 0 1 2 3 4 5 6 7 --models mmvm independent \
        --missing rotate --name impute_truth_rotate

(``--no-loco`` skips the leave-one-condition-out fits and their columns.)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

RESULTS = Path(__file__).resolve().parent / "results"
#: Settings of the data (the README's pairing on the simulator's default experiment).
DATA = dict(bin_size=0.02, window=10, stride=2, label="odor")
LEVEL = 0.95


#: Experiment sizes: ``"small"`` is the kind of neurovamp's embedded default data
#: (``SimulationConfig.small``: 3 rats, 24/30/18 units, ~60 trials, rat3 never smells E);
#: ``"default"`` is ``SimulationConfig()`` (5 rats of the release's unit counts, ~220 trials,
#: rat5 never smells E), about ten times the compute.
SIZES = ("small", "default")
#: Odors ``--missing rotate`` withholds, by seed (the first odor, A, starts every sequence).
MISSABLE = ("B", "C", "D", "E")


def simulate(seed: int, size: str = "small", **overrides: Any):
    """A simulated experiment of ``size`` at ``DATA["bin_size"]``."""
    from neurovamp.simulate import SimulationConfig, simulate_experiment

    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    settings = dict(seed=seed, bin_size=DATA["bin_size"], **overrides)
    config = SimulationConfig.small(**settings) if size == "small" else SimulationConfig(**settings)
    return simulate_experiment(config)


def rotated_missing(seed: int, size: str = "small") -> dict[str, tuple[str, ...]]:
    """``SimulationConfig.missing`` of ``--missing rotate``: the simulator's rat, odor ``MISSABLE[seed % 4]``."""
    from neurovamp.simulate import SimulationConfig

    config = SimulationConfig.small(seed=seed) if size == "small" else SimulationConfig(seed=seed)
    (rat,) = config.missing  # the rat the simulator withholds an odor from
    return {rat: (MISSABLE[seed % len(MISSABLE)],)}


def _tree(sim):
    from neurovamp.data.dataset import make_dataset

    return make_dataset([sim.to_modality(r) for r in sim.rats])


def missing_case(sim) -> tuple[str, str]:
    """The (rat, odor) the simulation withholds (the first of its ``missing`` entries)."""
    rat, odors = next(iter(sim.config.missing.items()))
    return rat, odors[0]


def score_model(model: Any, sim, paired, *, n_samples: int = 200, seed: int = 0, n_trials: int = 200,
                loco: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Scores of one fitted model on the simulation's withheld (rat, odor).

    Parameters
    ----------
    model
        A fitted :class:`~neurovamp.models.estimator.MultiAnimalModel`.
    sim
        The :class:`~neurovamp.simulate.Simulation` it was fitted on.
    paired
        The :class:`~neurovamp.data.pairing.PairedData` it was fitted on.
    n_samples
        Posterior draws of the band.
    seed
        Seed of the draws and of the fresh Poisson trials.
    n_trials
        Fresh trials drawn from the true rates for bits/spike.
    loco
        Leave-one-condition-out results of the target (:func:`loco_fits`) for the
        calibrated band's columns; None: without them.

    Returns
    -------
    dict
        The scores listed in the module docstring.
    """
    from neurovamp.analysis.evaluate import alignment_entry, evaluate_alignment
    from neurovamp.analysis.impute import impute_condition_mean
    from neurovamp.analysis.metrics import band_coverage, bits_per_spike, condition_specific_score

    rat, odor = missing_case(sim)
    gt = sim.ground_truth
    result = impute_condition_mean(model, paired, target=rat, condition={DATA["label"]: odor},
                                   n_samples=n_samples, level=LEVEL, seed=seed)
    imputed = result["rates"].values
    truth = gt.condition_rate(rat, odor)
    smelled = [o for o in sim.config.odors if o != odor and o in sim.config.odors_of(rat)]
    true_generic = np.mean([gt.condition_rate(rat, o) for o in smelled], axis=0)
    generic = result["rates_generic"].values
    cond = condition_specific_score(imputed, truth, true_generic)
    rng = np.random.default_rng(seed)
    bin_size = DATA["bin_size"]
    counts = rng.poisson(np.broadcast_to(truth * bin_size, (n_trials,) + truth.shape)).astype(float)
    tile = lambda x: np.broadcast_to(x * bin_size, counts.shape)  # noqa: E731
    row: dict[str, Any] = {
        "target": rat, "odor": odor,
        "r": float(np.corrcoef(imputed.ravel(), truth.ravel())[0, 1]),
        "generic_r": float(np.corrcoef(generic.ravel(), truth.ravel())[0, 1]),
        "cond_r": cond["r"], "cond_r2": cond["r2"],
        "bps": bits_per_spike(tile(imputed), counts),
        "generic_bps": bits_per_spike(tile(generic), counts),
        "bps_vs_generic": bits_per_spike(tile(imputed), counts, null_rates=tile(generic)),
        "true_generic_r": float(np.corrcoef(true_generic.ravel(), truth.ravel())[0, 1]),
        "true_generic_bps": bits_per_spike(tile(true_generic), counts),
        "bps_vs_true_generic": bits_per_spike(tile(imputed), counts, null_rates=tile(true_generic)),
    }
    if "rates_lo" in result:
        row["coverage"] = band_coverage(result["rates_lo"].values, result["rates_hi"].values, truth)
        row["band_width_hz"] = float(np.median(result["rates_hi"].values - result["rates_lo"].values))
    if "rates_posterior_lo" in result:
        row["coverage_posterior"] = band_coverage(result["rates_posterior_lo"].values,
                                                  result["rates_posterior_hi"].values, truth)
    if loco is not None and n_samples:
        from neurovamp.analysis.calibration import RATE_FLOOR_HZ, RATE_POWER, LocoErrorModel, model_error_from_loco

        for power in (0, 1, 2):
            error = model_error_from_loco(loco, rat, result["unit"].values, power=power)
            banded = impute_condition_mean(model, paired, target=rat, condition={DATA["label"]: odor},
                                           n_samples=n_samples, level=LEVEL, seed=seed, model_error=error)
            row[f"coverage_loco_p{power}"] = band_coverage(banded["rates_lo"].values, banded["rates_hi"].values, truth)
            top = np.argsort(truth.mean(axis=1))[-max(1, truth.shape[0] // 3):]  # busiest third of the units
            row[f"coverage_loco_p{power}_top"] = band_coverage(banded["rates_lo"].values[top],
                                                               banded["rates_hi"].values[top], truth[top])
            row[f"band_width_loco_p{power}_hz"] = float(np.median(banded["rates_hi"].values - banded["rates_lo"].values))
        # the same error model with its scale k fitted on the truth of this very condition: how well the
        # shape (variance ∝ rate**RATE_POWER) does when the level is right; loco_scale_ratio = k_LOCO / k_truth
        loco_k = model_error_from_loco(loco, rat, result["unit"].values).scale
        oracle_k = float(((imputed - truth) ** 2).sum() / (np.maximum(imputed, RATE_FLOOR_HZ) ** RATE_POWER).sum())
        oracle = LocoErrorModel(rat, oracle_k, RATE_POWER, RATE_FLOOR_HZ, [odor], [], truth.size, 0.0)
        banded = impute_condition_mean(model, paired, target=rat, condition={DATA["label"]: odor},
                                       n_samples=n_samples, level=LEVEL, seed=seed, model_error=oracle)
        row["coverage_oracle_scale"] = band_coverage(banded["rates_lo"].values, banded["rates_hi"].values, truth)
        row["loco_scale_ratio"] = loco_k / oracle_k if oracle_k > 0 else float("nan")
    alignment = alignment_entry(evaluate_alignment(model, paired, by=DATA["label"]))
    row["alignment_mean_r2"] = alignment["mean_r2"]
    row["alignment_identity_mean_r2"] = alignment.get("identity_mean_r2")
    return row


def loco_fits(model: Any, sim, seed: int, fit_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Leave-one-condition-out fits of the withheld rat (every odor it smelled, in turn).

    Same data, pairing, model settings (``model.config``), fit options and seed as the
    benchmark's fit of ``model``.
    """
    import functools

    from neurovamp.analysis.loco import leave_condition_out
    from neurovamp.data.pairing import pair_trials

    rat, _ = missing_case(sim)
    pair = functools.partial(pair_trials, by=DATA["label"], strategy="resample", window=DATA["window"],
                             stride=DATA["stride"], seed=seed)
    return leave_condition_out(_tree(sim), by=DATA["label"], pair=pair, model_config=model.config.to_dict(),
                               training=dict(fit_kwargs or {}), seed=seed, animals=[rat], progress=False)


def run_case(model_name: str, seed: int, *, size: str = "small", model_kwargs: Mapping[str, Any] | None = None,
             fit_kwargs: Mapping[str, Any] | None = None, sim_overrides: Mapping[str, Any] | None = None,
             n_samples: int = 200, loco: bool = True) -> dict[str, Any]:
    """Simulate (seed), pair, fit ``model_name`` (seed) and score it.

    Parameters
    ----------
    model_name
        ``"mmvm"``, ``"independent"``, ... (:class:`~neurovamp.models.estimator.MultiAnimalModel`).
    seed
        Seed of the simulation, the pairing, the fit and the draws.
    model_kwargs, fit_kwargs
        Passed to ``MultiAnimalModel`` and ``fit`` (default: neurovamp's defaults).
    sim_overrides
        :class:`~neurovamp.simulate.SimulationConfig` fields to change.
    n_samples
        Posterior draws of the band.
    loco
        Also fit the leave-one-condition-out models of the target for the calibrated
        band (:func:`loco_fits`).

    Returns
    -------
    dict
        One table row.
    """
    from neurovamp.data.pairing import pair_trials
    from neurovamp.models.estimator import MultiAnimalModel

    sim = simulate(seed, size, **dict(sim_overrides or {}))
    paired = pair_trials(_tree(sim), by=DATA["label"], strategy="resample", window=DATA["window"],
                         stride=DATA["stride"], seed=seed)
    start = time.perf_counter()
    model = MultiAnimalModel(model_name, seed=seed, device="cpu", **dict(model_kwargs or {}))
    model.fit(paired, progress=False, **dict(fit_kwargs or {}))
    fit_seconds = time.perf_counter() - start
    loco_result, loco_seconds = None, None
    if loco:
        start = time.perf_counter()
        loco_result = loco_fits(model, sim, seed, fit_kwargs)
        loco_seconds = round(time.perf_counter() - start, 1)
    row = {"model": model_name, "seed": seed, "size": size,
           **score_model(model, sim, paired, n_samples=n_samples, seed=seed, loco=loco_result)}
    if loco_seconds is not None:
        row["loco_seconds"] = loco_seconds
    row.update(fit_seconds=round(fit_seconds, 1), epochs_run=model.fit_info_.get("epochs_run"),
               best_epoch=model.fit_info_.get("best_epoch"))
    return row


def run_benchmark(models: Sequence[str] = ("mmvm", "independent"), seeds: Sequence[int] = (0, 1, 2), *,
                  size: str = "small", model_kwargs: Mapping[str, Any] | None = None, fit_kwargs: Mapping[str, Any] | None = None,
                  sim_overrides: Mapping[str, Any] | None = None, n_samples: int = 200,
                  progress: bool = True, loco: bool = True, missing: str = "default") -> pd.DataFrame:
    """The benchmark table: one row per model and seed.

    Parameters
    ----------
    models, seeds
        What to run.
    model_kwargs, fit_kwargs, sim_overrides, n_samples, loco
        As in :func:`run_case` (the same for every model).
    progress
        Print a line per fit.
    missing
        ``"default"`` (the simulator's missing odor) or ``"rotate"`` (:func:`rotated_missing`
        per seed; overrides ``sim_overrides["missing"]``).

    Returns
    -------
    pandas.DataFrame
    """
    rows = []
    for name in models:
        for seed in seeds:
            overrides = dict(sim_overrides or {})
            if missing == "rotate":
                overrides["missing"] = rotated_missing(seed, size)
            row = run_case(name, seed, size=size, model_kwargs=model_kwargs, fit_kwargs=fit_kwargs,
                           sim_overrides=overrides, n_samples=n_samples, loco=loco)
            rows.append(row)
            if progress:
                print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}),
                      flush=True)
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean ± sd over seeds of every numeric score, per model."""
    numeric = [c for c in table.columns if c not in ("model", "seed", "size", "target", "odor")
               and pd.api.types.is_numeric_dtype(table[c])]
    grouped = table.groupby("model", sort=False)[numeric]
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    out = pd.DataFrame(index=mean.index)
    for col in numeric:
        out[col] = [f"{m:.3f} ± {s:.3f}" if np.isfinite(s) else f"{m:.3f}" for m, s in zip(mean[col], sd[col])]
    return out


def _verdict(mean_ok: bool, hits: int, n: int, what: str) -> str:
    """Both readings of an acceptance figure: over the seeds (their mean) and on every seed."""
    return (f"mean over seeds {'met' if mean_ok else 'not met'}; on every seed "
            f"{'met' if hits == n else 'not met'} ({hits} of {n} seeds {what})")


def checks(table: pd.DataFrame, reference: str = "mmvm", baseline: str = "independent") -> list[str]:
    """Sentences on the issue's acceptance figures, generated from the table's numbers.

    Each figure gets two verdicts: on its mean over the seeds, and on every seed by itself
    (a band measured on other conditions cannot promise the second; see ``docs/model.md``).
    """
    out = []
    if reference not in set(table["model"]):
        return out
    ref = table[table["model"] == reference]
    n = len(ref)

    def stat(col: str, frame: pd.DataFrame = ref) -> str:
        values = frame[col].astype(float)
        return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1 else f"{values.mean():.3f}"

    held = int((ref["cond_r"] >= 0.4).sum())
    out.append(f"- Condition-specific r ≥ 0.4 ({reference} {stat('cond_r')}): "
               f"{_verdict(ref['cond_r'].mean() >= 0.4, held, n, 'at or above 0.4')}.")
    for col, what in (("bps_vs_generic", "the empirical generic prediction"),
                      ("bps_vs_true_generic", "the noise-free generic rate")):
        if col in ref:
            wins = int((ref[col] > 0).sum())
            out.append(f"- Beats {what} in bits/spike ({stat(col)} bits/spike relative to it): "
                       f"{_verdict(ref[col].mean() > 0, wins, n, 'above 0')}.")
    from neurovamp.analysis.calibration import RATE_POWER

    col = f"coverage_loco_p{RATE_POWER}"
    if col in ref and ref[col].notna().all():
        cov = ref[col].astype(float)
        inside = int(((cov >= 0.90) & (cov <= 0.98)).sum())
        tried = "; ".join(f"rate**{p}: {stat(f'coverage_loco_p{p}')}" for p in (0, 1, 2)
                          if f"coverage_loco_p{p}" in ref)
        out.append(f"- 95 % band (model error from leave-one-condition-out, neurovamp's default: variance "
                   f"∝ rate**{RATE_POWER}) covers the truth 90-98 % of the time (coverage {stat(col)}, per seed "
                   f"{cov.min():.2f}-{cov.max():.2f}): {_verdict(0.90 <= cov.mean() <= 0.98, inside, n, 'inside')}; "
                   f"median width {stat(f'band_width_loco_p{RATE_POWER}_hz')} Hz; all scalings tried: {tried}.")
        tops = "; ".join(f"rate**{p}: {stat(f'coverage_loco_p{p}_top')}" for p in (0, 1, 2)
                         if f"coverage_loco_p{p}_top" in ref)
        if tops:
            out.append(f"- The same band on the busiest third of the units (highest true rate): {tops}.")
        if "coverage_oracle_scale" in ref:
            out.append(f"- With the error scale fitted on the imputed condition's true error (oracle level, same "
                       f"shape) the band covers {stat('coverage_oracle_scale')}; the LOCO scale is "
                       f"{stat('loco_scale_ratio')} times that oracle scale.")
    if "coverage" in ref:
        cov = ref["coverage"].astype(float)
        inside = int(((cov >= 0.90) & (cov <= 0.98)).sum())
        out.append(f"- 95 % band with the in-sample model error covers the truth 90-98 % of the time (coverage "
                   f"{stat('coverage')}; the latent posterior alone {stat('coverage_posterior')}): "
                   f"{_verdict(0.90 <= cov.mean() <= 0.98, inside, n, 'inside')}.")
    if baseline in set(table["model"]):
        base = table[table["model"] == baseline]
        for col, what in (("alignment_mean_r2", "cross-validated linear alignment"),
                          ("alignment_identity_mean_r2", "map-free (identity) alignment")):
            a, b = ref[col].astype(float), base[col].astype(float)
            gap = a.mean() - b.mean()
            noise = float(np.sqrt(a.var(ddof=1) + b.var(ddof=1))) if n > 1 and len(b) > 1 else float("nan")
            clear = np.isfinite(noise) and gap > 2 * noise
            out.append(f"- {what}, {reference} vs {baseline}: {stat(col)} vs {stat(col, base)} "
                       f"(difference {gap:+.3f}, {'more than' if clear else 'not more than'} twice the "
                       f"combined sd {noise:.3f}).")
    return out


def _markdown(table: pd.DataFrame, command: str, meta: Mapping[str, Any]) -> str:
    summary = summarise(table)
    by_seed = table.drop_duplicates("seed").sort_values("seed")
    odors = sorted(set(by_seed["odor"]))
    missing = (f"odor {odors[0]}" if len(odors) == 1 else
               "one odor per seed: " + ", ".join(f"seed {s} {o}" for s, o in zip(by_seed["seed"], by_seed["odor"])))
    lines = [
        "# Imputing a never-experienced condition against simulated truth",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {meta['machine']}; torch {meta['torch']} on {meta['threads']} thread(s); "
        f"{meta['seconds']:.0f} s in all; {meta['timestamp']}.",
        "",
        f"Data: simulated, size `{table['size'].iloc[0]}` (see `SIZES` in the script), 20 ms bins, seed s "
        f"({table['target'].iloc[0]} never smells {missing}), paired by odor "
        f"(resample), sub-windows of {DATA['window']} bins at stride {DATA['stride']}; every model with "
        "neurovamp's current defaults. Scores (see the script's docstring): `r` / `generic_r` raw "
        "correlation with the true rates of the imputation / of the generic prediction; `cond_r`, "
        "`cond_r2` condition-specific score; bits/spike on fresh Poisson trials of the truth; "
        f"coverage of the {100 * LEVEL:g} % band; cross-validated alignment.",
        "",
        "Mean ± sd over seeds:",
        "",
        _table_md(summary.reset_index()),
        "",
        "Acceptance figures of issue 10 (generated from the numbers above):",
        "",
        *checks(table),
        "",
        "Per seed:",
        "",
        _table_md(table.round(3)),
        "",
    ]
    return "\n".join(lines)


def _table_md(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    out = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        out.append("| " + " | ".join("" if (isinstance(v, float) and not np.isfinite(v)) else str(v)
                                     for v in row.values) + " |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mmvm", "independent"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--size", choices=SIZES, default="small", help="experiment size (see SIZES)")
    parser.add_argument("--name", default="impute_truth", help="results file stem")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--missing", choices=("default", "rotate"), default="default",
                        help="which odor the last rat never smells: the simulator's (E) or MISSABLE[seed %% 4]")
    parser.add_argument("--no-loco", action="store_true",
                        help="skip the leave-one-condition-out fits (and the calibrated band's columns)")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild results/NAME.md from the rows of the last run recorded in results/NAME.jsonl")
    args = parser.parse_args(argv)
    if args.report_only:
        records = [json.loads(line) for line in (RESULTS / f"{args.name}.jsonl").read_text().splitlines() if line]
        last = [r for r in records if r["timestamp"] == records[-1]["timestamp"]]
        meta = {k: last[0][k] for k in ("machine", "torch", "threads", "seconds", "timestamp")}
        table = pd.DataFrame([{k: v for k, v in r.items() if k not in meta and k not in ("benchmark", "command")}
                              for r in last])
        (RESULTS / f"{args.name}.md").write_text(_markdown(table, last[0]["command"], meta))
        print("\n".join(checks(table)))
        return 0
    torch.set_num_threads(1)
    start = time.perf_counter()
    table = run_benchmark(args.models, args.seeds, size=args.size, n_samples=args.samples, loco=not args.no_loco,
                          missing=args.missing)
    meta = {
        "machine": f"{platform.platform()}, {platform.processor() or 'cpu'}",
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "seconds": time.perf_counter() - start,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    command = "OMP_NUM_THREADS=1 python benchmarks/impute_truth.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(summarise(table).to_string())
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.name}.md").write_text(_markdown(table, command, meta))
        with open(RESULTS / f"{args.name}.jsonl", "a") as fh:
            for row in table.to_dict(orient="records"):
                fh.write(json.dumps({"benchmark": "impute_truth", "command": command, **meta, **row}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
