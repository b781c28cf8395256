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

Because the odor code is shared up to each rat's tuning, a model whose latent spaces
are aligned across rats (MMVM) lets one classifier decode the odor of every rat, while
independent VAEs learn an arbitrary rotation/reflection per rat.

Usage::

    python benchmarks/paper_standin.py                       # write stand-in + full run
    python benchmarks/paper_standin.py --seeds 0 --jobs 2 --threads 1   # the recorded run
    python benchmarks/paper_standin.py --write-only          # only write the stand-in

The stand-in (about 400 MB of float64 counts) and the run folder go to
``$TMPDIR/neurovamp-paper-standin/`` by default (``--workdir``); only the summary is
written into the repository. ``--overwrite`` replaces an earlier run folder.
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


def write_standin(
    out_dir: str | os.PathLike,
    *,
    units: Mapping[str, int] = UNITS,
    trials: Mapping[str, int] = TRIALS,
    window_starts: Mapping[str, int] = WINDOW_STARTS,
    seed: int = 0,
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
    **kwargs
        Passed to :func:`make_rat` (``gain``, ``jitter``, ``private_gain``, ...).

    Returns
    -------
    Path
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    for k, rat in enumerate(units):
        rng = np.random.default_rng([seed, k])
        counts, info = make_rat(rat, units[rat], trials[rat], window_starts[rat], rng, **kwargs)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Write the stand-in and run ``neurovamp paper`` on it (see the module docstring).

    Parameters
    ----------
    argv
        Command-line arguments; unknown ones are passed on to ``neurovamp paper``.

    Returns
    -------
    int
        Exit status of the run.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    workdir = Path(tempfile.gettempdir()) / "neurovamp-paper-standin"
    parser.add_argument("--workdir", type=Path, default=workdir, help=f"stand-in and run folder (default: {workdir})")
    parser.add_argument("--record", type=Path, default=RESULTS / "paper_standin.md", help="markdown summary")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stand-in")
    parser.add_argument("--write-only", action="store_true", help="only write the stand-in release")
    args, rest = parser.parse_known_args(argv)

    release, run = args.workdir / "release", args.workdir / "run"
    write_standin(release, seed=args.seed)
    print(f"stand-in release written to {release}", flush=True)
    if args.write_only:
        return 0
    sys.path.insert(0, str(HERE.parent))
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
