"""A release-sized stand-in for the five-rat hippocampal release, and the full ``neurovamp paper`` run on it.

The public release (Dryad doi:10.7280/D14X30) cannot be downloaded here, so this script
writes a stand-in with the release's layout and sizes and planted odor structure, runs
``neurovamp paper`` on it and records the outcome in
``benchmarks/results/paper_standin.md``.

The stand-in
------------
* Folders ``Barat/ Buchanan/ Mitt/ Stella/ SuperChris/`` holding
  ``<rat>_spike_data_binned.npy`` (float64 counts, ``(trials, units, 400)``, 10 ms bins
  from -2 s to +2 s around odor onset; bin 200 starts at 0 s) and
  ``<rat>_trial_info.npy`` (``(trials, 6)``: correct, in-sequence, position 1-5, odor
  1-5, two bookkeeping columns). Units 92/79/104/49/46, 250 trials (SuperChris 245).
* Trials come in sequences ABCDE; about 10 % are out of sequence (another odor at that
  position) and about 8 % incorrect. A couple of units per rat never fire (the release
  has silent units too).
* Rates: every unit has a log-normal baseline (median 8 Hz). Inside the rat's paper
  window (25 bins from bin 225 for Barat, Buchanan, SuperChris and from bin 250 for Mitt
  and Stella) the log-rate gets ``envelope(t) * W_rat @ c(odor, trial)``: ``c`` is a
  **shared 2-D odor code** (odors A-D on a circle, E at the centre) plus per-trial
  jitter, ``W_rat`` is a rat-specific random tuning matrix (units x 2) and ``envelope``
  rises and falls over the window. Each trial also gets **private variability**: a rat-
  and trial-specific 3-D Gaussian latent through another random tuning matrix, active
  over the whole trial. Counts are Poisson.

The *gain* stand-in (``--kind gain``, issue 10; :func:`make_gain_rat`) has the same
layout and trial structure but no shared code: baseline rates of 0.5-6 Hz, and in the
first 600 ms after odor onset (release bins 200-259) each responsive unit's rate is
multiplied by an odor-specific gain drawn for that rat's own units, with modest per-trial
variability. It checks what ``neurovamp paper`` with neurovamp's defaults gets from
release-like sparse data: held-out odor decoding from MMVM's latents against raw counts,
and held-out imputation bits/spike per rat, beside the true rates' bits/spike (the
ceiling) and a training-trial flat-rate reference.

Because the odor code is shared up to each rat's tuning, a model whose latent spaces
are aligned across rats (MMVM) lets one classifier decode the odor of every rat, while
independent VAEs learn an arbitrary rotation/reflection per rat.

Usage::

    python benchmarks/paper_standin.py                       # write stand-in + full run
    python benchmarks/paper_standin.py --seeds 0 --jobs 2 --threads 1   # the recorded run
    python benchmarks/paper_standin.py --write-only          # only write the stand-in
    # issue 10's stand-in, neurovamp preset, 3 models x 3 seeds (the recorded gain section):
    OMP_NUM_THREADS=1 python benchmarks/paper_standin.py --kind gain --models mmvm moe independent \
        --seeds 0 1 2 --jobs 2 --threads 1 --overwrite
    # controlled MMVM variants on it (one setting changed), then their table:
    python benchmarks/paper_standin.py --kind gain --variant beta2 beta=2.0 --models mmvm --seeds 0
    python benchmarks/paper_standin.py --summarise-variants

The stand-in (about 400 MB of float64 counts) and the run folder go to
``$TMPDIR/neurovamp-paper-standin/`` by default (``-gain`` appended for ``--kind gain``;
``--workdir``); only the summaries are written into the repository. ``--overwrite`` replaces an earlier run folder.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

#: Units and trials per rat, as in the public release.
UNITS = {"Barat": 92, "Buchanan": 79, "Mitt": 104, "Stella": 49, "SuperChris": 46}
TRIALS = {"Barat": 250, "Buchanan": 250, "Mitt": 250, "Stella": 250, "SuperChris": 245}
#: First bin of the 25-bin window the paper analysed, per rat.
WINDOW_STARTS = {"Barat": 225, "Buchanan": 225, "Mitt": 250, "Stella": 250, "SuperChris": 225}
WINDOW_LENGTH = 25
N_BINS = 400
BIN_SIZE = 0.01

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def odor_code(n_odors: int = 5) -> np.ndarray:
    """The shared 2-D odor code: odors A-D on the unit circle, E at the centre.

    Parameters
    ----------
    n_odors
        Number of odors (5 for A-E).

    Returns
    -------
    numpy.ndarray
        ``(n_odors, 2)``.
    """
    angles = np.deg2rad([20.0, 110.0, 200.0, 290.0])
    code = np.zeros((n_odors, 2))
    code[:4] = np.column_stack([np.cos(angles), np.sin(angles)])
    return code


def _trial_info(n_trials: int, rng: np.random.Generator) -> np.ndarray:
    position = np.arange(n_trials) % 5 + 1
    odor = position.copy()
    out = rng.random(n_trials) < 0.10
    out &= position > 1  # the first odor of a sequence is always in sequence
    odor[out] = (position[out] + rng.integers(1, 5, out.sum()) - 1) % 5 + 1
    correct = rng.random(n_trials) > 0.08
    extra = np.column_stack([np.arange(n_trials) // 5, rng.normal(1.2, 0.3, n_trials)])
    return np.column_stack([correct, ~out, position, odor, extra]).astype(np.float64)


def make_rat(
    rat: str,
    n_units: int,
    n_trials: int,
    window_start: int,
    rng: np.random.Generator,
    *,
    gain: float = 2.5,
    jitter: float = 0.25,
    private_dim: int = 3,
    private_gain: float = 0.2,
    n_silent: int = 2,
    base_rate: float = 0.08,
) -> tuple[np.ndarray, np.ndarray]:
    """One rat's stand-in counts and trial info.

    Parameters
    ----------
    rat
        Rat name (only used in messages).
    n_units, n_trials
        Sizes.
    window_start
        First bin of the 25-bin window that carries the odor code.
    rng
        Random generator.
    gain
        Scale of the odor tuning (log-rate change per unit of odor code).
    jitter
        Standard deviation of the per-trial jitter of the odor code.
    private_dim, private_gain
        Dimension and tuning scale of the rat's private per-trial variability.
    n_silent
        Units that never fire.
    base_rate
        Median baseline spike count per 10 ms bin (0.08 = 8 Hz).

    Returns
    -------
    counts, info
        float64 ``(n_trials, n_units, 400)`` and ``(n_trials, 6)``.
    """
    info = _trial_info(n_trials, rng)
    odor = info[:, 3].astype(int) - 1
    code = odor_code()[odor] + jitter * rng.normal(size=(n_trials, 2))  # (trial, 2)
    tuning = gain * rng.normal(size=(n_units, 2)) / np.sqrt(2.0)
    private_tuning = private_gain * rng.normal(size=(n_units, private_dim)) / np.sqrt(private_dim)
    private = rng.normal(size=(n_trials, private_dim))
    baseline = np.log(base_rate) + 0.6 * rng.normal(size=n_units)  # per-bin log-rate

    t = np.arange(WINDOW_LENGTH)
    envelope = np.zeros(N_BINS)
    envelope[window_start : window_start + WINDOW_LENGTH] = np.sin(np.pi * (t + 0.5) / WINDOW_LENGTH) ** 0.5
    log_rate = (
        baseline[None, :, None]
        + (code @ tuning.T)[:, :, None] * envelope[None, None, :]
        + (private @ private_tuning.T)[:, :, None]
    )
    rates = np.exp(np.clip(log_rate, -10.0, 2.0))
    counts = rng.poisson(rates).astype(np.float64)
    if n_silent:
        counts[:, rng.choice(n_units, size=min(n_silent, n_units), replace=False), :] = 0.0
    return counts, info


#: Odor-onset bin of the release (bin 200 starts at 0 s) and the bins the gain stand-in's odor acts in.
ONSET_BIN = 200
GAIN_BINS = 60  # 600 ms


def make_gain_rat(
    rat: str,
    n_units: int,
    n_trials: int,
    window_start: int,
    rng: np.random.Generator,
    *,
    rate_range: tuple[float, float] = (0.5, 6.0),
    responsive: float = 0.7,
    gain_sd: float = 0.8,
    trial_sd: float = 0.2,
    unit_trial_sd: float = 0.1,
    n_silent: int = 2,
    return_rates: bool = False,
) -> tuple[np.ndarray, ...]:
    """One rat of the *gain* stand-in (issue 10): odor acts as a per-unit gain after onset.

    Every unit fires at a baseline rate drawn log-uniformly in ``rate_range`` (Hz) over the
    whole trial. In the first 600 ms after odor onset (release bins 200-259) the rate of
    each *responsive* unit is multiplied by an odor-specific gain ``exp(g[unit, odor])``
    with ``g ~ N(0, gain_sd)``, drawn for this rat's units alone: the rats share the odor
    identity and nothing else (no common code, no common tuning). Trial-to-trial
    variability: a per-trial log-gain ``N(0, trial_sd)`` on all units of the trial and a
    per-(trial, unit) log-gain ``N(0, unit_trial_sd)``. Counts are Poisson.

    Parameters
    ----------
    rat
        Rat name (only used in messages).
    n_units, n_trials
        Sizes.
    window_start
        Unused (the odor acts at fixed release bins whatever the analysis window); kept so
        that both kinds share :func:`write_standin`'s call.
    rng
        Random generator.
    rate_range
        Lowest and highest baseline rate (Hz).
    responsive
        Fraction of units whose rate the odor changes.
    gain_sd
        Standard deviation of the per-unit, per-odor log-gain.
    trial_sd, unit_trial_sd
        Standard deviations of the per-trial and per-(trial, unit) log-gains.
    n_silent
        Units that never fire.
    return_rates
        Also return the odor-conditional expected counts (the truth an imputation from
        other rats can at best recover: the trial's own gains averaged out).

    Returns
    -------
    counts, info[, rates]
        float64 ``(n_trials, n_units, 400)`` and ``(n_trials, 6)``; with ``return_rates``
        also ``(n_trials, n_units, 400)`` expected counts per bin given the odor (0 for
        the silent units).
    """
    del rat, window_start
    info = _trial_info(n_trials, rng)
    odor = info[:, 3].astype(int) - 1
    lo, hi = np.log(rate_range[0]), np.log(rate_range[1])
    base = np.exp(rng.uniform(lo, hi, n_units)) * BIN_SIZE  # expected count per bin
    log_gain = gain_sd * rng.normal(size=(n_units, 5))
    log_gain[rng.random(n_units) >= responsive] = 0.0
    trial = trial_sd * rng.normal(size=(n_trials, 1)) + unit_trial_sd * rng.normal(size=(n_trials, n_units))
    in_odor = np.zeros(N_BINS)
    in_odor[ONSET_BIN : ONSET_BIN + GAIN_BINS] = 1.0
    log_rate = (
        np.log(base)[None, :, None]
        + trial[:, :, None]
        + log_gain.T[odor][:, :, None] * in_odor[None, None, :]
    )
    counts = rng.poisson(np.exp(log_rate)).astype(np.float64)
    silent = rng.choice(n_units, size=min(n_silent, n_units), replace=False) if n_silent else []
    counts[:, silent, :] = 0.0
    if not return_rates:
        return counts, info
    noise = np.exp((trial_sd**2 + unit_trial_sd**2) / 2)  # E[exp(trial log-gains)]
    rates = noise * np.exp(np.log(base)[None, :, None] + log_gain.T[odor][:, :, None] * in_odor[None, None, :])
    rates[:, silent, :] = 0.0
    return counts, info, rates


#: Stand-in kinds: ``"code"`` (the first, recorded one) and ``"gain"`` (issue 10's).
KINDS = {"code": make_rat, "gain": make_gain_rat}


def write_standin(
    out_dir: str | os.PathLike,
    *,
    units: Mapping[str, int] = UNITS,
    trials: Mapping[str, int] = TRIALS,
    window_starts: Mapping[str, int] = WINDOW_STARTS,
    seed: int = 0,
    kind: str = "code",
    **kwargs: float,
) -> Path:
    """Write a stand-in release (one folder per rat) to ``out_dir``.

    Parameters
    ----------
    out_dir
        Output folder (created; existing rat files are replaced).
    units, trials, window_starts
        Per-rat unit counts, trial counts and the first bin of the odor window.
    seed
        Seed of everything random.
    kind
        ``"code"`` (:func:`make_rat`) or ``"gain"`` (:func:`make_gain_rat`).
    **kwargs
        Passed to the kind's rat maker (``gain``, ``jitter``, ``gain_sd``, ...).

    Returns
    -------
    Path
        ``out_dir``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    out_dir = Path(out_dir)
    for k, rat in enumerate(units):
        rng = np.random.default_rng([seed, k])
        counts, info = KINDS[kind](rat, units[rat], trials[rat], window_starts[rat], rng, **kwargs)
        folder = out_dir / rat
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"{rat.lower()}_spike_data_binned.npy", counts)
        np.save(folder / f"{rat.lower()}_trial_info.npy", info)
    return out_dir


def _fmt(mean: float | None, sd: float | None, digits: int = 3) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if sd is not None else f"{mean:.{digits}f}"


def record(run: Path, seconds: float, argv: Sequence[str], out: Path) -> str:
    """Summarise a finished run in markdown and write it to ``out``.

    Parameters
    ----------
    run
        The ``neurovamp paper`` run folder.
    seconds
        Wall-clock time of the whole command.
    argv
        The command's arguments.
    out
        Markdown file to write (replaced).

    Returns
    -------
    str
        The markdown.
    """
    from neurovamp.pipelines.paper import read_paper_metrics

    metrics = read_paper_metrics(run / "metrics.json")
    lines = [
        "# `neurovamp paper` on the release-sized stand-in",
        "",
        f"Recorded {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on "
        f"{platform.machine()} ({os.cpu_count()} CPU cores visible; other jobs shared the cores).",
        "",
        "Stand-in: `benchmarks/paper_standin.py` (release layout and sizes: units 92/79/104/49/46, "
        "250 trials, SuperChris 245, 400 bins; a shared 2-D odor code through rat-specific random "
        "tuning in each rat's paper window, private per-trial variability, Poisson counts).",
        "",
        "Command: `neurovamp paper " + " ".join(argv) + "`",
        "",
        f"**Total wall-clock time: {seconds / 60:.1f} min** (conversion, {metrics['n_fits']} fits, "
        "evaluation, figures, report).",
        "",
        "Odor decoding (balanced accuracy, chance 0.25) from the latent means (2-D for the paper preset, "
        "8-D for neurovamp's defaults), mean ± sd over seeds, averaged over rats. *Shared* = one classifier for all rats; *own* = one per rat. *Held-out* = "
        "classifier fitted on training-trial latents and scored on test trials the model never saw; "
        "*train* = scored on the training trials the model was fitted on (own: CV over them; shared: trained on "
        "the other rats), which is how the original code scored.",
        "",
        "| preset | model | shared, held-out | shared, train | own, held-out | own, train | fit time (s) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for preset, models in metrics["summary"].items():
        for model, s in models.items():
            mean = s["mean"]
            sd = s["sd"]
            lines.append(
                f"| {preset} | {model} | {_fmt(mean['shared_heldout'], sd['shared_heldout'])} | "
                f"{_fmt(mean['shared_train'], sd['shared_train'])} | {_fmt(mean['own_heldout'], sd['own_heldout'])} | "
                f"{_fmt(mean['own_train'], sd['own_train'])} | {_fmt(mean['fit_seconds'], sd['fit_seconds'], 1)} |"
            )
    lines += ["", "Shared classifier on held-out trials (the acceptance check), MMVM vs independent VAEs:", ""]
    for preset, models in metrics["summary"].items():
        if "mmvm" in models and "independent" in models:
            m = models["mmvm"]["mean"]["shared_heldout"]
            i = models["independent"]["mean"]["shared_heldout"]
            mt = models["mmvm"]["mean"]["shared_train"]
            it = models["independent"]["mean"]["shared_train"]
            lines.append(
                f"- {preset} preset: MMVM {m:.3f} vs independent {i:.3f} (margin {m - i:+.3f}); "
                f"on training trials {mt:.3f} vs {it:.3f}."
            )
    seeds = metrics["config"]["seeds"]
    lines += [
        "",
        f"Seeds: {', '.join(map(str, seeds))}; parallel fits: {metrics['platform'].get('jobs', 1)}, torch threads "
        f"each: {metrics['platform']['torch_threads']}; "
        f"max epochs {metrics['config']['epochs']}, patience {metrics['config']['patience']}. "
        "The full report (per-rat tables, latent figures) is `report.md` in the run folder.",
    ]
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, out)
    return text


# --------------------------------------------------------------------------- the gain stand-in (issue 10)
#: Marks the start of the gain stand-in's section in ``paper_standin.md`` (kept by :func:`record`).
GAIN_MARKER = "<!-- gain stand-in: written by benchmarks/paper_standin.py --kind gain -->"
#: Per-rat metrics of a paper fit record read here, plus two imputation references of its evaluation.
_RAT_KEYS = ("own_heldout", "raw_heldout", "shared_heldout", "bits_per_spike", "bits_per_spike_weighted", "chance")
_IMPUTATION_REFS = ("generic_bits_per_spike", "own_psth_bits_per_spike", "bits_per_spike_vs_generic")


VARIANTS_MARKER = "<!-- gain stand-in variants: written by benchmarks/paper_standin.py --summarise-variants -->"
MARKERS = (GAIN_MARKER, VARIANTS_MARKER)


def _rat_rows(fit: Mapping) -> dict[str, dict[str, float | None]]:
    """Per-rat numbers of one paper fit record (``metrics.json`` ``fits`` entry)."""
    out = {}
    for rat, values in fit["rats"].items():
        row = {k: values.get(k) for k in _RAT_KEYS}
        imp = fit.get("evaluation", {}).get("animals", {}).get(rat, {}).get("imputation", {})
        row.update({k: imp.get(k) for k in _IMPUTATION_REFS})
        own, raw = row["own_heldout"], row["raw_heldout"]
        row["ratio"] = own / raw if own is not None and raw else None
        out[rat] = row
    return out


def _mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return None, None
    return float(np.mean(finite)), (float(np.std(finite, ddof=1)) if len(finite) > 1 else None)


def gain_summary(fits: Sequence[Mapping]) -> dict[str, dict]:
    """Per model: per-rat mean/sd over seeds of the acceptance numbers, and rat averages.

    Parameters
    ----------
    fits
        Fit records of one preset (``metrics.json`` ``fits``).

    Returns
    -------
    dict
        ``{model: {"seeds", "per_rat": {rat: {key: (mean, sd)}}, "average": {key: (mean, sd)},
        "per_seed": [{seed, rats, average, epochs_run, best_epoch}]}}``; the rat average of
        each seed is taken first, then mean/sd over seeds. ``ratio`` is own/raw held-out
        decoding per rat; the average ratio is the ratio of the rat-averaged accuracies.
    """
    by_model: dict[str, list] = {}
    for fit in fits:
        by_model.setdefault(fit["model"], []).append(fit)
    out = {}
    keys = (*_RAT_KEYS, *_IMPUTATION_REFS, "ratio")
    for model, group in by_model.items():
        group = sorted(group, key=lambda f: f["seed"])
        per_seed = []
        for fit in group:
            rats = _rat_rows(fit)
            avg = {k: _mean_sd([r[k] for r in rats.values()])[0] for k in keys}
            avg["ratio"] = avg["own_heldout"] / avg["raw_heldout"] if avg["own_heldout"] and avg["raw_heldout"] else None
            for key in ("bits_per_spike", "bits_per_spike_weighted"):
                avg[f"min_{key}"] = min((r[key] for r in rats.values() if r[key] is not None), default=None)
            per_seed.append({"seed": fit["seed"], "rats": rats, "average": avg,
                             "epochs_run": fit.get("epochs_run"), "best_epoch": fit.get("best_epoch"),
                             "fit_seconds": fit.get("fit_seconds")})
        rats = list(per_seed[0]["rats"])
        out[model] = {
            "seeds": [p["seed"] for p in per_seed],
            "per_rat": {rat: {k: _mean_sd([p["rats"][rat][k] for p in per_seed]) for k in keys} for rat in rats},
            "average": {k: _mean_sd([p["average"][k] for p in per_seed])
                        for k in (*keys, "min_bits_per_spike", "min_bits_per_spike_weighted")},
            "per_seed": per_seed,
        }
    return out


def _cell(stat: tuple[float | None, float | None], digits: int = 3) -> str:
    return _fmt(stat[0], stat[1], digits)


def _not_above(per_seed: Mapping, key: str = "bits_per_spike") -> str:
    """``"; seed S: rat bps, ..."`` for the rats of one seed whose ``key`` is not above 0 (or ``""``)."""
    low = [f"{rat} {r[key]:.3f}" for rat, r in per_seed["rats"].items() if r[key] is not None and r[key] <= 0]
    return f"; seed {per_seed['seed']}: {', '.join(low)} not above the flat rate" if low else ""


def gain_section(metrics: Mapping, seconds: float, command: str, *, preset: str = "neurovamp",
                 references: Mapping[int, Mapping[str, Mapping[str, float]]] | None = None) -> str:
    """Markdown section of a paper run on the gain stand-in, generated from its metrics.

    Parameters
    ----------
    metrics
        ``RUN/metrics.json`` of the run.
    seconds
        Wall-clock time of the run.
    command
        The command that produced it (shown verbatim).
    preset
        Preset whose fits are tabulated.
    references
        :func:`reference_bits_per_spike` of the run's seeds (truth and held-out flat null columns).

    Returns
    -------
    str
    """
    fits = [f for f in metrics["fits"] if f["preset"] == preset]
    summary = gain_summary(fits)
    refs = references or {}
    rats_all = metrics["data"]["rats"]

    def ref(key: str, rat: str | None = None, model: str | None = None) -> tuple[float | None, float | None]:
        """Mean/sd over seeds of a reference (``truth``/``train_flat``), or of a model's bps against train_flat."""
        values = []
        for seed, by_rat in refs.items():
            names = [rat] if rat else rats_all
            if model is None:
                values.append(np.mean([by_rat[r][key] for r in names]))
            else:
                fit = next((p for p in summary[model]["per_seed"] if p["seed"] == int(seed)), None)
                if fit is None:
                    continue
                values.append(np.mean([fit["rats"][r]["bits_per_spike"] - by_rat[r]["train_flat"] for r in names]))
        return _mean_sd(values)
    config = metrics["config"]
    lines = [
        GAIN_MARKER,
        "## Gain stand-in (issue 10): odor as a per-unit gain in the first 600 ms, rates 0.5-6 Hz",
        "",
        f"Recorded {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {platform.machine()} "
        f"({os.cpu_count()} CPU cores visible, shared with other jobs).",
        "",
        "Stand-in: `benchmarks/paper_standin.py --kind gain` (`make_gain_rat`): release layout and sizes (units "
        "92/79/104/49/46, 250 trials, SuperChris 245, 400 bins of 10 ms, ~10 % out of sequence, ~8 % incorrect, "
        "2 silent units per rat); baseline rates log-uniform in 0.5-6 Hz; in release bins 200-259 (0-600 ms after "
        "odor onset) 70 % of each rat's units are multiplied by an odor-specific gain exp(N(0, 0.8)) drawn for that "
        "rat's units alone (the rats share only the odor identity); per-trial log-gain N(0, 0.2) and per-(trial, unit) "
        "log-gain N(0, 0.1); Poisson counts. The gain size was set so that raw-count decoding averages about 0.70, "
        "as on the issue's stand-in. Mitt's and Stella's paper windows (bins 250-274) overlap the odor's 600 ms by "
        "10 bins only, so 6 of their 16 sub-windows carry no odor information for any decoder.",
        "",
        f"Command: `{command}`",
        "",
        f"**Wall-clock time: {seconds / 60:.1f} min** ({len(fits)} fits of the {preset} preset, models "
        f"{', '.join(summary)}, seeds {', '.join(map(str, config['seeds']))}; {config.get('jobs', 1)} parallel fit(s), "
        f"max epochs {config['epochs']}, patience {config['patience']}).",
        "",
        "Scores, all on held-out test trials (the model and the classifiers saw only training trials): *latent* = "
        "each rat's own logistic-regression classifier on the latent means of its training-trial sub-windows, scored "
        "on its test-trial sub-windows (balanced accuracy; `own_heldout`); *raw* = the same classifier family on the "
        "same samples' raw counts (each unit's spikes summed over the sub-window; `raw_heldout`); ratio = latent / raw; "
        "*bits/spike* = the rat's test trials imputed from the other rats' test trials of the same odor (mixture of "
        "the sources' odor-mean predictions), Poisson log-likelihood against each unit's flat mean rate over those "
        "trials (> 0 beats the flat rate; `bits_per_spike`); *generic* = the rat's own training-trial mean over "
        "odors as the prediction (same null); *own PSTH* = the rat's own training-trial odor means as the prediction "
        "(smoothed like the generic null, `NULL_SMOOTH_S`); *weighted* = the imputation stacked on the rat's "
        "validation trials: the sources and the rat's generic prediction mixed by the weights that best predicted "
        "those trials (`bits_per_spike_weighted`); *truth* = the "
        "stand-in's true odor-conditional rates (trial gains averaged out) as the prediction, the ceiling of an "
        "imputation from rats that share only the odor; *train-flat* = each unit's mean rate over the rat's training "
        "trials, flat, as the prediction (what estimating a unit's level from training trials costs against the "
        "in-sample flat null of ~30 test trials); *vs held-out flat* = bits/spike − train-flat, i.e. the imputation "
        "against the training-trial flat rate as the null. Mean ± sd over seeds (sd omitted for one seed).",
        "",
    ]
    for model, s in summary.items():
        lines += [
            f"### {model}",
            "",
            "| rat | latent | raw | ratio | chance | shared | bits/spike | weighted | truth | train-flat | "
            "vs held-out flat | generic | own PSTH |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for rat, r in s["per_rat"].items():
            lines.append(
                f"| {rat} | {_cell(r['own_heldout'])} | {_cell(r['raw_heldout'])} | {_cell(r['ratio'], 2)} | "
                f"{_cell(r['chance'], 2)} | {_cell(r['shared_heldout'])} | {_cell(r['bits_per_spike'])} | "
                f"{_cell(r['bits_per_spike_weighted'])} | {_cell(ref('truth', rat))} | {_cell(ref('train_flat', rat))} | {_cell(ref('', rat, model))} | "
                f"{_cell(r['generic_bits_per_spike'])} | {_cell(r['own_psth_bits_per_spike'])} |"
            )
        a = s["average"]
        lines.append(
            f"| mean over rats | {_cell(a['own_heldout'])} | {_cell(a['raw_heldout'])} | {_cell(a['ratio'], 2)} | "
            f"{_cell(a['chance'], 2)} | {_cell(a['shared_heldout'])} | {_cell(a['bits_per_spike'])} | "
            f"{_cell(a['bits_per_spike_weighted'])} | {_cell(ref('truth'))} | {_cell(ref('train_flat'))} | {_cell(ref('', None, model))} | "
            f"{_cell(a['generic_bits_per_spike'])} | {_cell(a['own_psth_bits_per_spike'])} |"
        )
        lines += ["", "Per seed: " + "; ".join(
            f"seed {p['seed']}: latent {p['average']['own_heldout']:.3f} vs raw {p['average']['raw_heldout']:.3f} "
            f"(ratio {p['average']['ratio']:.2f}), bits/spike min over rats {p['average']['min_bits_per_spike']:.3f}, "
            f"epochs run {p['epochs_run']}, best epoch {p['best_epoch']}, fit {p['fit_seconds']:.0f} s"
            for p in s["per_seed"]) + ".", ""]
    if "mmvm" in summary:
        s = summary["mmvm"]
        ratios = [p["average"]["ratio"] for p in s["per_seed"]]
        mins = [p["average"]["min_bits_per_spike"] for p in s["per_seed"]]
        ratio = s["average"]["ratio"][0]
        low = [rat for rat, r in s["per_rat"].items() if r["ratio"][0] is not None and r["ratio"][0] < 0.9]
        neg = [rat for rat, r in s["per_rat"].items() if r["bits_per_spike"][0] is not None and r["bits_per_spike"][0] <= 0]
        lines += [
            "Acceptance (issue 10: MMVM with neurovamp's defaults decodes odor from its latents on held-out trials at "
            ">= 90 % of raw-count decoding, and imputes held-out trials with bits/spike > 0 for every rat):",
            "",
            f"- decoding, rat average: latent / raw = {ratio:.2f} (mean over seeds; per seed "
            f"{', '.join(f'{r:.2f}' for r in ratios)}): **{'met' if ratio >= 0.9 else 'not met'}**"
            + (f"; on {sum(r >= 0.9 for r in ratios)}/{len(ratios)} seeds." if len(ratios) > 1 else ".")
            + (f" Per rat below 90 %: {', '.join(low)}." if low else " Every rat at or above 90 % (mean over seeds)."),
            f"- bits/spike > 0 for every rat: lowest rat (mean over seeds) "
            f"{min(r['bits_per_spike'][0] for r in s['per_rat'].values()):.3f}; lowest rat per seed "
            f"{', '.join(f'{m:.3f}' for m in mins)}: **{'met' if not neg and all(m > 0 for m in mins) else 'not met'}**"
            + (f" (not above the flat rate, mean over seeds: {', '.join(neg)})" if neg else "")
            + "".join(_not_above(p) for p in s["per_seed"]) + ".",
        ]
        weighted = [p["average"]["min_bits_per_spike_weighted"] for p in s["per_seed"]]
        if all(w is not None for w in weighted):
            lines.append(
                "- the same stacked on each rat's validation trials (sources and the rat's generic prediction, "
                "`bits_per_spike_weighted`): "
                f"lowest rat per seed {', '.join(f'{w:.3f}' for w in weighted)}: "
                f"**{'met' if all(w > 0 for w in weighted) else 'not met'}**"
                + "".join(_not_above(p, "bits_per_spike_weighted") for p in s["per_seed"]) + ".")
        if refs:
            held = {rat: ref("", rat, "mmvm")[0] for rat in s["per_rat"]}
            truth_rat = {rat: ref("truth", rat)[0] for rat in s["per_rat"]}
            flat_rat = {rat: ref("train_flat", rat)[0] for rat in s["per_rat"]}
            lines += [
                "- for reference (not the acceptance's null): against each unit's training-trial flat rate (a "
                "held-out null) MMVM's imputation scores "
                + ", ".join(f"{rat} {v:+.3f}" for rat, v in held.items())
                + "; estimating only each unit's flat level from training trials already scores "
                + ", ".join(f"{rat} {v:+.3f}" for rat, v in flat_rat.items())
                + " against the in-sample flat null, and the true odor-conditional rates score "
                + ", ".join(f"{rat} {v:+.3f}" for rat, v in truth_rat.items()) + ".",
            ]
        lines.append("")
    return "\n".join(lines) + "\n"


def gain_truth(standin_seed: int = 0, *, units: Mapping[str, int] = UNITS,
               trials: Mapping[str, int] = TRIALS) -> dict[str, np.ndarray]:
    """The odor-conditional expected counts per bin the gain stand-in planted, per rat.

    The same draws as :func:`write_standin` with ``kind="gain"`` and the same ``seed``,
    ``units`` and ``trials`` (``(trials, units, 400)`` each; see :func:`make_gain_rat`).
    """
    out = {}
    for k, rat in enumerate(units):
        rng = np.random.default_rng([standin_seed, k])
        _, _, out[rat] = make_gain_rat(rat, units[rat], trials[rat], WINDOW_STARTS.get(rat, 0), rng, return_rates=True)
    return out


def reference_bits_per_spike(run: Path, seeds: Sequence[int], standin_seed: int = 0) -> dict[int, dict[str, dict]]:
    """Two references for ``neurovamp paper``'s imputation bits/spike, on each seed's held-out trials.

    Both are scored like ``bits_per_spike`` of ``neurovamp paper`` (test trials of the paper
    window, each unit's flat mean rate over *those* trials as the null):

    * ``truth``: the rates :func:`make_gain_rat` planted given the odor, with the trial's
      own gains averaged out: the ceiling of an imputation from other rats, which share
      only the odor;
    * ``train_flat``: each unit's mean rate over the rat's *training* trials, flat over the
      window: what estimating a unit's level from training data alone costs against the
      in-sample flat null. ``bits_per_spike - train_flat`` is the imputation's bits/spike
      against this held-out flat null (the log-likelihood difference is additive).

    Parameters
    ----------
    run
        The paper run folder (its ``nwb/`` is read).
    seeds
        Model seeds (each draws the split).
    standin_seed
        Seed the stand-in was written with.

    Returns
    -------
    dict
        ``{seed: {rat: {"truth": bits/spike, "train_flat": bits/spike}}}``.
    """
    from neurovamp.analysis.metrics import bits_per_spike
    from neurovamp.pipelines.paper import PaperConfig, load_paper_data, pair_paper_trials

    config = PaperConfig(presets=("neurovamp",), models=("mmvm",), seeds=tuple(seeds))
    tree = load_paper_data({rat: run / "nwb" / f"{rat}.nwb" for rat in config.rats}, config)
    rates = gain_truth(standin_seed)
    out: dict[int, dict[str, float]] = {}
    for seed in seeds:
        paired = pair_paper_trials(tree, config, seed)
        out[seed] = {}
        for m, rat in enumerate(paired.animals):
            rows = np.asarray(paired.modalities[rat]["trial"].values).astype(int)  # release trial index
            test = np.asarray(paired.trial_split[rat]) == "test"
            start = config.window_starts[rat]
            truth = rates[rat][rows][:, :, start : start + config.window_length][test]
            counts = np.asarray(paired.counts[m], dtype=float)
            train = np.asarray(paired.trial_split[rat]) == "train"
            flat = np.broadcast_to(counts[train].mean(axis=(0, 2))[None, :, None], counts[test].shape)
            out[seed][rat] = {"truth": float(bits_per_spike(truth, counts[test])),
                              "train_flat": float(bits_per_spike(flat, counts[test]))}
    return out


def write_section(out: Path, section: str, marker: str = GAIN_MARKER) -> None:
    """Replace one generated section of ``out`` (from its ``marker`` to the next marker), atomically.

    The file's head (the ``--kind code`` record) is kept; the generated sections follow it
    in the order of :data:`MARKERS`.
    """
    text = out.read_text() if out.is_file() else ""
    positions = sorted((text.index(m), m) for m in MARKERS if m in text)
    head = text[: positions[0][0]] if positions else text
    sections = {}
    for k, (pos, m) in enumerate(positions):
        end = positions[k + 1][0] if k + 1 < len(positions) else len(text)
        sections[m] = text[pos:end].rstrip("\n") + "\n"
    sections[marker] = section
    body = "\n".join(sections[m] for m in MARKERS if m in sections)
    text = head.rstrip("\n") + "\n\n" + body if head.strip() else body
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, out)


def variants_section(path: Path) -> str:
    """Markdown table of the controlled variants in ``path`` (JSON lines of :func:`run_variants`), generated."""
    import json

    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    groups: dict[tuple, list] = {}
    for rec in records:
        groups.setdefault((rec["variant"], rec["model"]), []).append(rec)
    rats = list(records[0]["rats"]) if records else []
    lines = [
        VARIANTS_MARKER,
        "### Controlled variants (one setting changed at a time, fitted outside `neurovamp paper` as its neurovamp "
        "preset fits)",
        "",
        f"`python benchmarks/paper_standin.py --kind gain --variant NAME KEY=VALUE ... --models mmvm --seeds S`; records in "
        f"`{path.relative_to(HERE.parent) if path.is_relative_to(HERE.parent) else path}`. Same stand-in (seed 0), same "
        "split/pairs per seed, same scores as above (held-out latent and raw decoding, rat-averaged; imputation "
        "bits/spike per rat). `default` = neurovamp's defaults as `neurovamp paper` applies them (epochs 100, "
        "patience 15, KL warm-up 50, batch 128, lr 1e-3). *All source trials*: the same imputation of each rat's "
        "test trials from every trial (train, val, test) of the other rats instead of their test trials only "
        "(`evaluate_imputation(..., source_split=None)`; recorded for the later runs only). *Validation-weighted "
        "sources*: the imputation stacked on each rat's validation trials, the sources and the rat's generic "
        "prediction mixed by the weights that best predicted them (`bits_per_spike_weighted`; recorded for the "
        "latest runs only). *self bps* is in the "
        "JSON lines. Mean ± sd over the seeds listed.",
        "",
        "| variant | model | seeds | latent | raw | ratio | " + " | ".join(f"bps {r}" for r in rats)
        + " | min bps | min bps, all source trials | min bps, validation-stacked | epochs | best epoch | fit (s) |",
        "| --- " * (12 + len(rats)) + "|",
    ]
    for (variant, model), group in groups.items():
        group = sorted({g["seed"]: g for g in group}.values(), key=lambda g: g["seed"])  # last record per seed
        cells = [_cell(_mean_sd([g[k] for g in group])) for k in ("own_heldout", "raw_heldout")]
        cells.append(_cell(_mean_sd([g["ratio"] for g in group]), 2))
        cells += [_cell(_mean_sd([g["rats"][r]["bits_per_spike"] for g in group])) for r in rats]
        cells.append(_cell(_mean_sd([g["min_bits_per_spike"] for g in group])))
        cells.append(_cell(_mean_sd([g.get("min_bits_per_spike_all_sources") for g in group])))
        cells.append(_cell(_mean_sd([g.get("min_bits_per_spike_weighted") for g in group])))
        cells += [_cell(_mean_sd([g[k] for g in group]), 0) for k in ("epochs_run", "best_epoch", "fit_seconds")]
        changes = ", ".join(f"{k}={v}" for k, v in group[0]["changes"].items()) or "neurovamp's defaults"
        lines.append(f"| {variant} ({changes}) | {model} | {', '.join(str(g['seed']) for g in group)} | "
                     + " | ".join(cells) + " |")
    both, decode_only = [], []
    for (variant, model), group in groups.items():
        group = list({g["seed"]: g for g in group}.values())
        name = f"{variant} ({model}, {len(group)} seed{'s' if len(group) > 1 else ''})"
        if all(g["ratio"] >= 0.9 for g in group):
            (both if all(g["min_bits_per_spike"] > 0 for g in group) else decode_only).append(name)
    weighted_both = [f"{variant} ({model})" for (variant, model), group in groups.items()
                     if all(g["ratio"] >= 0.9 and (g.get("min_bits_per_spike_weighted") or 0) > 0
                            for g in {g["seed"]: g for g in group}.values())]
    lines += [
        "",
        "- Latent decoding >= 90 % of raw and bits/spike > 0 for every rat, on every seed fitted: "
        + (", ".join(both) or "none") + ".",
        "- Latent decoding >= 90 % of raw on every seed, but some rat at or below the flat rate: "
        + (", ".join(decode_only) or "none") + ".",
        "- The same with the validation-stacked imputation (bits/spike > 0 for every rat on every seed): "
        + (", ".join(weighted_both) or "none") + ".",
    ]
    lines += _diagnosis(groups)
    return "\n".join(lines) + "\n"


def _diagnosis(groups: Mapping[tuple, list]) -> list[str]:
    """Per-rat table of where the default MMVM's imputation bits/spike come from (records with self scores)."""
    keys = {
        "bits_per_spike": "imputed from other rats' test trials (the paper's score)",
        "bits_per_spike_all_sources": "imputed from all of the other rats' trials",
        "bits_per_spike_weighted": "imputed from other rats' test trials, stacked with the rat's generic on the "
                                   "validation trials",
        "self_train_bits_per_spike": "own training trials reconstructed, odor means",
        "self_bits_per_spike": "own test trials reconstructed, odor means (partly in-sample)",
    }
    group = [g for g in groups.get(("default", "mmvm"), [])
             if "self_train_bits_per_spike" in next(iter(g["rats"].values()))]
    group = sorted({g["seed"]: g for g in group}.values(), key=lambda g: g["seed"])
    if not group:
        return []
    rats = list(group[0]["rats"])
    out = [
        "",
        f"Where MMVM's (neurovamp's defaults) imputation bits/spike come from, seeds {', '.join(str(g['seed']) for g in group)} "
        "(each rat's test trials predicted by odor means of the named reconstructions; null = flat rate over the test trials):",
        "",
        "| prediction | " + " | ".join(rats) + " |",
        "| --- " * (1 + len(rats)) + "|",
    ]
    for key, title in keys.items():
        out.append(f"| {title} | " + " | ".join(_cell(_mean_sd([g["rats"][r].get(key) for g in group])) for r in rats) + " |")
    return out + _region_table(group) + _source_table(group)


def _source_table(group: Sequence[Mapping]) -> list[str]:
    """Imputation bits/spike of each rat from each other rat alone (:func:`source_bits_per_spike`)."""
    group = [g for g in group if all("by_source" in r for r in g["rats"].values())]
    if not group:
        return []
    rats = list(group[0]["rats"])
    cell = lambda target, source: "–" if target == source else _cell(_mean_sd(  # noqa: E731
        [g["rats"][target]["by_source"].get(source) for g in group]))
    out = [
        "",
        f"Each rat (row) imputed from one other rat alone (column), seeds {', '.join(str(g['seed']) for g in group)}; "
        "the window's first release bin in brackets (bin 200 = odor onset; the gain acts in bins 200-259):",
        "",
        "| target \\ source | " + " | ".join(f"{r} ({WINDOW_STARTS[r]})" for r in rats) + " |",
        "| --- " * (1 + len(rats)) + "|",
    ]
    for target in rats:
        out.append(f"| {target} ({WINDOW_STARTS[target]}) | " + " | ".join(cell(target, s) for s in rats) + " |")
    out.append("")
    for target in rats:
        scores = {s: _mean_sd([g["rats"][target]["by_source"].get(s) for g in group])[0] for s in rats if s != target}
        scores = {s: v for s, v in scores.items() if v is not None}
        if not scores:
            continue
        best = max(scores, key=scores.get)
        same = [s for s in scores if WINDOW_STARTS[s] == WINDOW_STARTS[target]]
        text = (f"- {target}: best single source {best} ({scores[best]:+.3f})"
                + (f"; sources with the same window ({', '.join(same)}): "
                   + ", ".join(f"{scores[s]:+.3f}" for s in same) if same else "; no other rat has its window")
                + "; other windows: " + ", ".join(f"{s} {scores[s]:+.3f}" for s in scores if s not in same) + ".")
        out.append(text)
    return out


def _region_table(group: Sequence[Mapping]) -> list[str]:
    """Bits/spike by region of the window (:func:`region_bits_per_spike`) of the rats whose window straddles the odor's end."""
    group = [g for g in group if all("regions" in r for r in g["rats"].values())]
    if not group:
        return []
    rats = [r for r, v in group[0]["rats"].items() if "after" in v["regions"]]
    if not rats:
        return []
    stat = lambda r, region, key: _cell(_mean_sd([g["rats"][r]["regions"][region][key] for g in group]))  # noqa: E731
    out = [
        "",
        f"By region of the window, seeds {', '.join(str(g['seed']) for g in group)} ({', '.join(rats)}: the windows "
        "that straddle the end of the odor's gain; each region scored against its own in-sample flat null):",
        "",
        "| rat | region | bins | imputed | truth | train-flat | imputed − train-flat |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rats:
        for region in ("odor", "after", "all"):
            gap = _cell(_mean_sd([g["rats"][r]["regions"][region]["imputed"] - g["rats"][r]["regions"][region]["train_flat"]
                                  for g in group]))
            out.append(f"| {r} | {region} | {group[0]['rats'][r]['regions'][region]['bins']} | "
                       f"{stat(r, region, 'imputed')} | {stat(r, region, 'truth')} | {stat(r, region, 'train_flat')} | {gap} |")
    out.append("")
    for r in rats:
        odor_vals = {k: _mean_sd([g["rats"][r]["regions"]["odor"][k] for g in group])[0] for k in ("imputed", "truth", "train_flat")}
        after_vals = {k: _mean_sd([g["rats"][r]["regions"]["after"][k] for g in group])[0] for k in ("imputed", "train_flat")}
        span = odor_vals["truth"] - odor_vals["train_flat"]
        share = (odor_vals["imputed"] - odor_vals["train_flat"]) / span if span > 0 else float("nan")
        leak = after_vals["imputed"] - after_vals["train_flat"]
        out.append(f"- {r}: in the odor bins the imputation recovers {100 * share:.0f} % of the truth's gain over "
                   f"train-flat; in the bins after the odor it scores {leak:+.3f} bits/spike "
                   f"{'below' if leak < 0 else 'above'} train-flat"
                   + (" (the truth is flat there: what the imputation loses against train-flat is odor modulation or "
                      "level error where there is none)." if leak < 0 else "."))
    return out


def run_gain(args: argparse.Namespace, release: Path, run: Path) -> int:
    """Run :func:`neurovamp.pipelines.paper.run_paper` on the gain stand-in (one preset, chosen models) and record it."""
    from neurovamp.pipelines.paper import PaperConfig, run_paper

    config = PaperConfig(
        presets=tuple(args.presets), models=tuple(args.models), seeds=tuple(args.seeds), jobs=args.jobs,
        threads=args.threads, **({"epochs": args.epochs} if args.epochs else {}),
        **({"patience": args.patience} if args.patience is not None else {}),
    )
    import json

    stamp = run / "standin_command.json"
    if args.rerecord:  # the section again from the finished run (no fitting)
        from neurovamp.pipelines.paper import read_paper_metrics

        metrics = read_paper_metrics(run / "metrics.json")
        saved = json.loads(stamp.read_text())
        seconds, command = saved["seconds"], saved["command"]
        config = PaperConfig.from_dict(metrics["config"])
    else:
        start = time.perf_counter()
        metrics = run_paper(release, run, config, overwrite=args.overwrite, progress=True)
        seconds = time.perf_counter() - start
        command = "OMP_NUM_THREADS=1 python benchmarks/paper_standin.py " + " ".join(args.argv)
        stamp.write_text(json.dumps({"command": command, "seconds": seconds}))
    references = reference_bits_per_spike(run, config.seeds, args.seed)
    for preset in config.presets:
        section = gain_section(metrics, seconds, command, preset=preset, references=references)
        print(section)
        if args.record_gain:
            write_section(args.record, section)
    return 0


# --------------------------------------------------------------------------- controlled variants
#: Fit arguments of :meth:`MultiAnimalModel.fit` a variant may change (the rest are ModelConfig fields).
_FIT_KEYS = ("epochs", "patience", "lr", "batch_size", "kl_warmup", "monitor", "weight_decay", "min_delta")
VARIANTS = RESULTS / "paper_standin_variants.jsonl"


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(text.lower(), text)


def fit_variant(paired, model: str, seed: int, changes: Mapping[str, object], *, epochs: int, patience: int | None,
                folds: int = 5, standin_seed: int | None = None) -> dict:
    """Fit one model as ``neurovamp paper``'s neurovamp preset does, with some settings changed, and score it.

    The fit mirrors the paper pipeline (batch 128, Adam lr 1e-3, ``epochs``/``patience``
    of the paper run, the engine's KL warm-up) unless ``changes`` says otherwise; the
    scores are :func:`neurovamp.analysis.evaluate.evaluate_model`'s (held-out own and raw
    decoding, imputation bits/spike), read per rat.

    Parameters
    ----------
    paired
        :func:`neurovamp.pipelines.paper.pair_paper_trials` output.
    model, seed
        Model name and seed.
    changes
        ``ModelConfig`` fields and fit arguments (:data:`_FIT_KEYS`) to change.
    epochs, patience
        The paper run's defaults for these fit arguments.
    folds
        Folds of the cross-validated scores.
    standin_seed
        Seed the gain stand-in was written with: also score each rat's imputation in the
        bins where the odor acts and in the bins after it (:func:`region_bits_per_spike`).
        None: not scored.

    Returns
    -------
    dict
        JSON-safe record: settings, epochs run, best epoch, fit seconds, per-rat scores.
    """
    from neurovamp.analysis.evaluate import evaluate_imputation, evaluate_model
    from neurovamp.models.estimator import MultiAnimalModel

    fit_args = {"epochs": epochs, "batch_size": 128, "lr": 1e-3, "patience": patience}
    model_args = {}
    for key, value in changes.items():
        (fit_args if key in _FIT_KEYS else model_args)[key] = value
    est = MultiAnimalModel(model, seed=seed, device="cpu", **model_args)
    start = time.perf_counter()
    est.fit(paired, progress=False, **fit_args)
    fit_seconds = time.perf_counter() - start
    evaluation = evaluate_model(est, paired, labels=["odor"], seed=seed, folds=folds, over_time=False)
    rats = {}
    for rat, entry in evaluation["animals"].items():
        dec = entry["decoding"]["odor"]
        imp = entry["imputation"]
        rats[rat] = {
            "own_heldout": dec.get("balanced_accuracy"), "raw_heldout": dec.get("raw_balanced_accuracy"),
            "chance": dec.get("chance"), "shared_heldout": entry["shared_decoding"]["odor"].get("balanced_accuracy"),
            "bits_per_spike": imp.get("bits_per_spike"), "generic_bits_per_spike": imp.get("generic_bits_per_spike"),
            "own_psth_bits_per_spike": imp.get("own_psth_bits_per_spike"),
            "bits_per_spike_weighted": imp.get("bits_per_spike_weighted"), "source_weights": imp.get("source_weights"),
        }
    for m, rat in enumerate(paired.animals):  # self: the rat's own test trials through its own encoder/decoder
        rats[rat]["self_bits_per_spike"] = _self_bits_per_spike(est, paired, m, rat)
        rats[rat]["self_train_bits_per_spike"] = _self_bits_per_spike(est, paired, m, rat, "train")
    # the same imputation of each rat's test trials, from every trial of the other rats (not only their test trials)
    every = evaluate_imputation(est, paired, split="test", label="odor", source_split=None)
    for rat, entry in every.items():
        rats[rat]["bits_per_spike_all_sources"] = entry.get("bits_per_spike")
    if standin_seed is not None:
        means = odor_means_by_source(est, paired)  # the mapped test trials, shared by both diagnostics
        for rat, regions in region_bits_per_spike(means, paired, gain_truth(standin_seed)).items():
            rats[rat]["regions"] = regions
        for rat, by_source in source_bits_per_spike(means, paired).items():
            rats[rat]["by_source"] = by_source
    own = np.mean([r["own_heldout"] for r in rats.values()])
    raw = np.mean([r["raw_heldout"] for r in rats.values()])
    history = {col: [None if v != v else round(float(v), 3) for v in est.history_[col]]
               for col in est.history_.columns if col.startswith("val/") or col in ("train/loss", "train/rec")}
    return {
        "history": history,
        "model": model, "seed": seed, "changes": dict(changes), "fit_args": fit_args,
        "model_config": est.config.to_dict(), "epochs_run": est.fit_info_.get("epochs_run"),
        "best_epoch": est.fit_info_.get("best_epoch"), "fit_seconds": fit_seconds,
        "own_heldout": float(own), "raw_heldout": float(raw), "ratio": float(own / raw),
        "min_bits_per_spike": float(min(r["bits_per_spike"] for r in rats.values())),
        "min_bits_per_spike_all_sources": float(min(r["bits_per_spike_all_sources"] for r in rats.values())),
        "min_bits_per_spike_weighted": min((r["bits_per_spike_weighted"] for r in rats.values()
                                            if r["bits_per_spike_weighted"] is not None), default=None),
        "mean_bits_per_spike": float(np.mean([r["bits_per_spike"] for r in rats.values()])),
        "rats": rats,
    }


def _self_bits_per_spike(est, paired, m: int, rat: str, source: str = "test") -> float:
    """Odor means of a rat's own reconstructed ``source``-split trials as the prediction of its test trials.

    Scored like the cross-animal imputation (each test trial predicted by its odor's mean,
    flat mean rate over the test trials as the null), so the two differ only in where the
    latents come from. ``source="test"`` reconstructs the test trials themselves (their own
    latents: partly in-sample); ``source="train"`` uses the rat's training trials only
    (held-out: the model's own estimate of the rat's odor-conditional rates).
    """
    from neurovamp.analysis.metrics import bits_per_spike

    split = np.asarray(paired.trial_split[rat])
    test, rows = np.flatnonzero(split == "test"), np.flatnonzero(split == source)
    modality = paired.modalities[rat].isel(trial=rows)
    expected = np.asarray(est.generate(modality, rat, rat).transpose("trial", "unit", "time").values, dtype=float)
    odor_src = np.asarray(modality["odor"].values)
    odor = np.asarray(paired.modalities[rat]["odor"].values)[test]
    means = {level: expected[odor_src == level].mean(axis=0) for level in set(odor.tolist())}
    pred = np.stack([means[level] for level in odor.tolist()])
    obs = np.asarray(paired.counts[m], dtype=float)[test]
    valid = np.all(np.isfinite(pred), axis=(0, 1))
    return float(bits_per_spike(pred[:, :, valid], obs[:, :, valid]))


def region_bits_per_spike(means: Mapping[str, Mapping[str, Mapping[object, np.ndarray]]], paired,
                          truth_counts: Mapping[str, np.ndarray],
                          window_starts: Mapping[str, int] = WINDOW_STARTS) -> dict[str, dict[str, dict[str, float]]]:
    """The imputation's bits/spike in the bins where the odor acts and in the bins after it, per rat.

    Mitt's and Stella's paper windows (release bins 250-274) overlap the odor's gain (bins
    200-259) by 10 bins only; the other rats' windows lie inside it. Each region is scored
    on its own (each unit's flat mean rate over the test trials *in that region* as the
    null), for three predictions of every test trial: *imputed* (the odor mean of the
    other rats' test trials mapped to the rat, mixed over sources: the paper's imputation),
    *truth* (the planted odor-conditional rates) and *train-flat* (each unit's mean rate over
    the rat's training trials in that region). In a region without odor information the truth scores below
    0 (the in-sample null has fitted that region's level) and an imputation that leaks odor
    modulation into it scores below train-flat.

    Parameters
    ----------
    means
        :func:`odor_means_by_source` of the fitted model on ``paired``.
    paired
        :func:`neurovamp.pipelines.paper.pair_paper_trials` output (neurovamp preset windows).
    truth_counts
        :func:`gain_truth` of the stand-in: rat -> planted expected counts ``(trial, unit, 400)``
        over the release's trials and bins.
    window_starts
        First release bin of each rat's window.

    Returns
    -------
    dict
        ``{rat: {region: {"imputed", "truth", "train_flat": bits/spike, "bins": n}}}`` with
        regions ``"all"`` and, where the window holds both, ``"odor"`` and ``"after"``.
    """
    from neurovamp.analysis.metrics import bits_per_spike

    out: dict[str, dict[str, dict[str, float]]] = {}
    for t, rat in enumerate(paired.animals):
        split = np.asarray(paired.trial_split[rat])
        test, train = np.flatnonzero(split == "test"), split == "train"
        odor = np.asarray(paired.modalities[rat]["odor"].values)[test]
        counts = np.asarray(paired.counts[t], dtype=float)
        obs = counts[test]
        imputed = np.stack([np.mean([m[level] for m in means[rat].values() if level in m], axis=0)
                            for level in odor.tolist()])
        start = window_starts[rat]
        n_bins = obs.shape[2]
        release_rows = np.asarray(paired.modalities[rat]["trial"].values).astype(int)
        truth = np.asarray(truth_counts[rat])[release_rows][:, :, start : start + n_bins][test]
        inside = int(np.clip(ONSET_BIN + GAIN_BINS - start, 0, n_bins))
        regions = {"all": slice(0, n_bins)}
        if 0 < inside < n_bins:
            regions.update(odor=slice(0, inside), after=slice(inside, n_bins))
        out[rat] = {}
        for name, sl in regions.items():
            flat = np.broadcast_to(counts[train][:, :, sl].mean(axis=(0, 2))[None, :, None], obs[:, :, sl].shape)
            out[rat][name] = {"imputed": float(bits_per_spike(imputed[:, :, sl], obs[:, :, sl])),
                              "truth": float(bits_per_spike(truth[:, :, sl], obs[:, :, sl])),
                              "train_flat": float(bits_per_spike(flat, obs[:, :, sl])),
                              "bins": sl.stop - sl.start}
    return out


def odor_means_by_source(est, paired) -> dict[str, dict[str, dict[object, np.ndarray]]]:
    """Each rat's other rats' test trials mapped to it and averaged per odor.

    Returns ``{rat: {source: {odor: (unit, time) expected counts}}}``: what
    :func:`region_bits_per_spike` mixes and :func:`source_bits_per_spike` scores source by
    source (``est.generate`` once per ordered pair of rats).
    """
    out: dict[str, dict[str, dict[object, np.ndarray]]] = {}
    for rat in paired.animals:
        out[rat] = {}
        for source in paired.animals:
            if source == rat:
                continue
            rows = np.flatnonzero(np.asarray(paired.trial_split[source]) == "test")
            modality = paired.modalities[source].isel(trial=rows)
            pred = np.asarray(est.generate(modality, source, rat).transpose("trial", "unit", "time").values, float)
            labels = np.asarray(modality["odor"].values)
            out[rat][source] = {level: pred[labels == level].mean(axis=0) for level in dict.fromkeys(labels.tolist())}
    return out


def source_bits_per_spike(means: Mapping[str, Mapping[str, Mapping[object, np.ndarray]]],
                          paired) -> dict[str, dict[str, float]]:
    """Each rat's test trials imputed from one other rat alone: ``{rat: {source: bits/spike}}``.

    Scored like the paper's imputation (each test trial predicted by its odor's mean of the
    source's mapped test trials; each unit's flat mean rate over the test trials as the
    null), so the mixture over sources of :func:`region_bits_per_spike` can be read source
    by source: the rats' windows lie at different times after odor onset, and a source
    whose window holds another part of the odor's time course may mislead. ``means`` is
    :func:`odor_means_by_source` of the fitted model on ``paired``.
    """
    from neurovamp.analysis.metrics import bits_per_spike

    out: dict[str, dict[str, float]] = {}
    for t, rat in enumerate(paired.animals):
        test = np.flatnonzero(np.asarray(paired.trial_split[rat]) == "test")
        odor = np.asarray(paired.modalities[rat]["odor"].values)[test].tolist()
        obs = np.asarray(paired.counts[t], dtype=float)[test]
        out[rat] = {source: float(bits_per_spike(np.stack([by_odor[level] for level in odor]), obs))
                    for source, by_odor in means[rat].items() if all(level in by_odor for level in odor)}
    return out


def run_variants(args: argparse.Namespace, release: Path) -> int:
    """Fit ``--variant NAME KEY=VALUE ...`` for each model and seed; append records to :data:`VARIANTS`."""
    import json

    from neurovamp.io.release import convert_release
    from neurovamp.pipelines.paper import DEFAULT_EPOCHS, DEFAULT_PATIENCE, PaperConfig, load_paper_data, pair_paper_trials

    name, *pairs = args.variant
    changes = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--variant: expected KEY=VALUE after the name, got {item!r}")
        changes[key] = _parse_value(value)
    nwb = args.workdir / "nwb"
    config = PaperConfig(presets=("neurovamp",), models=tuple(args.models), seeds=tuple(args.seeds))
    if not all((nwb / f"{rat}.nwb").is_file() for rat in config.rats):
        convert_release(release, nwb, overwrite=True, progress=False)
    tree = load_paper_data({rat: nwb / f"{rat}.nwb" for rat in config.rats}, config)
    import torch

    torch.set_num_threads(args.threads)
    for seed in args.seeds:
        paired = pair_paper_trials(tree, config, seed)
        for model in args.models:
            rec = fit_variant(paired, model, seed, changes, epochs=args.epochs or DEFAULT_EPOCHS,
                              patience=args.patience if args.patience is not None else DEFAULT_PATIENCE,
                              standin_seed=args.seed)
            rec.update(variant=name, kind=args.kind, standin_seed=args.seed,
                       recorded=datetime.now(timezone.utc).isoformat(timespec="seconds"))
            print(f"{name} {model} seed {seed}: latent {rec['own_heldout']:.3f} raw {rec['raw_heldout']:.3f} "
                  f"ratio {rec['ratio']:.2f} bps min {rec['min_bits_per_spike']:.3f} mean "
                  f"{rec['mean_bits_per_spike']:.3f} epochs {rec['epochs_run']} best {rec['best_epoch']} "
                  f"fit {rec['fit_seconds']:.0f} s", flush=True)
            with open(args.variants_file, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Write the stand-in and run ``neurovamp paper`` on it (see the module docstring).

    Parameters
    ----------
    argv
        Command-line arguments; with ``--kind code`` unknown ones are passed on to
        ``neurovamp paper``.

    Returns
    -------
    int
        Exit status of the run.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    workdir = Path(tempfile.gettempdir()) / "neurovamp-paper-standin"
    parser.add_argument("--workdir", type=Path, default=None,
                        help=f"stand-in and run folder (default: {workdir}, {workdir}-gain for --kind gain)")
    parser.add_argument("--record", type=Path, default=RESULTS / "paper_standin.md", help="markdown summary")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stand-in")
    parser.add_argument("--kind", choices=sorted(KINDS), default="code",
                        help="stand-in: 'code' (shared 2-D code, the first record) or 'gain' (issue 10's)")
    parser.add_argument("--write-only", action="store_true", help="only write the stand-in release")
    gain = parser.add_argument_group("--kind gain (runs neurovamp.pipelines.paper.run_paper; other arguments are refused)")
    gain.add_argument("--presets", nargs="+", default=["neurovamp"], help="presets to fit (default: neurovamp)")
    gain.add_argument("--models", nargs="+", default=["mmvm", "moe", "independent"], help="models to fit")
    gain.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="model seeds")
    gain.add_argument("--jobs", type=int, default=2, help="parallel fits")
    gain.add_argument("--threads", type=int, default=1, help="torch threads per fit")
    gain.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: paper's)")
    gain.add_argument("--patience", type=int, default=None, help="patience (default: paper's)")
    gain.add_argument("--overwrite", action="store_true", help="replace an earlier run folder")
    gain.add_argument("--rerecord", action="store_true",
                      help="rewrite the gain section from the finished run folder without fitting")
    gain.add_argument("--no-record", dest="record_gain", action="store_false",
                      help="print the section but do not write it into --record")
    variants = parser.add_argument_group("controlled variants (--kind gain; MMVM fits outside `neurovamp paper`)")
    variants.add_argument("--variant", nargs="+", metavar="NAME [KEY=VALUE ...]",
                          help="fit --models x --seeds with these ModelConfig fields / fit arguments changed "
                          "(e.g. 'warmup0 kl_warmup=0'); appends to --variants-file")
    variants.add_argument("--variants-file", type=Path, default=VARIANTS, help=f"JSON lines (default: {VARIANTS})")
    variants.add_argument("--summarise-variants", action="store_true",
                          help="write the variants table of --variants-file into --record and stop")
    args, rest = parser.parse_known_args(argv)
    args.argv = argv
    if args.summarise_variants:
        section = variants_section(args.variants_file)
        print(section)
        write_section(args.record, section, VARIANTS_MARKER)
        return 0
    default = workdir.with_name(workdir.name + "-gain") if args.kind == "gain" else workdir
    args.workdir = args.workdir or default

    release, run = args.workdir / "release", args.workdir / "run"
    if args.rerecord:
        sys.path.insert(0, str(HERE.parent))
        return run_gain(args, release, run)
    if args.variant and (release / "Barat").is_dir() and (args.workdir / "nwb").is_dir():
        pass  # variants reuse the stand-in and its NWB files (written by an earlier call with the same seed)
    else:
        write_standin(release, seed=args.seed, kind=args.kind)
    print(f"stand-in release ({args.kind}): {release}", flush=True)
    if args.write_only:
        return 0
    sys.path.insert(0, str(HERE.parent))
    if args.variant:
        if args.kind != "gain" or rest:
            parser.error("--variant needs --kind gain and no other arguments")
        return run_variants(args, release)
    if args.kind == "gain":
        if rest:
            parser.error(f"unknown arguments for --kind gain: {' '.join(rest)}")
        return run_gain(args, release, run)
    from neurovamp.cli import main as cli_main

    run_args = [str(release), "--out", str(run), *rest]
    start = time.perf_counter()
    status = cli_main(["paper", *run_args])
    seconds = time.perf_counter() - start
    if status == 0:
        shown = ["RELEASE_DIR", "--out", "RUN", *rest]
        print(record(run, seconds, shown, args.record))
    return status


if __name__ == "__main__":
    sys.exit(main())
