"""Analysis commands: ``evaluate`` (metrics.json + figures of a run) and ``impute``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register", "evaluate_command", "impute_command", "parse_condition"]

METRICS_FILE = "metrics.json"
FIGURES_DIR = "figures"
_DATA_DIR_HELP = ("folder that now holds the run's data files (by file name), when they were moved since "
                  "`neurovamp fit` (default: where run.json records them)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` and ``impute`` commands.

    Parameters
    ----------
    subparsers
        The sub-parser collection of the ``neurovamp`` parser.
    """
    ev = subparsers.add_parser(
        "evaluate",
        help="score a fitted run: decoding, alignment, imputation (RUN/metrics.json, RUN/figures/)",
        description=(
            "Load a run written by `neurovamp fit`, decode trial labels from the latents (held-out "
            "and cross-validated, per animal and with one classifier shared across animals), measure "
            "cross-animal alignment and leave-one-animal-out imputation of held-out trials, and write "
            "RUN/metrics.json and the figures in RUN/figures/. The run's data files are found where "
            "run.json records them; --data-dir points at a folder they were moved to."
        ),
        epilog="example:\n\n  neurovamp evaluate runs/mmvm --label odor position",
    )
    ev.add_argument("run", metavar="RUN", help="run folder written by `neurovamp fit`")
    ev.add_argument(
        "--label", dest="labels", action="extend", nargs="+", metavar="COL",
        help="trial labels to decode, one or more (e.g. --label odor position); the first is the one the "
             "figures show (default: the pairing label)",
    )
    ev.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the cross-validation folds (default: 0)")
    ev.add_argument("--folds", type=int, default=5, metavar="N", help="cross-validation folds (default: 5)")
    ev.add_argument("--no-figures", action="store_true", help="write metrics.json only")
    ev.add_argument("--data-dir", metavar="DIR", help=_DATA_DIR_HELP)
    ev.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"), help="where to run the model (default: cpu)")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing metrics.json and figures/")
    from neurovamp.cli.loco_command import add_loco_options

    add_loco_options(ev)
    ev.set_defaults(func=evaluate_command)

    im = subparsers.add_parser(
        "impute",
        help="predict one animal's rates in a condition from the other animals (NetCDF, Hz)",
        description=(
            "Map the other animals' trials of a condition through a fitted run's model to ANIMAL and "
            "write the condition-averaged rates (Hz) with their uncertainty to a NetCDF file: "
            "variables rates, rates_sd, rates_sem (unit, time) and rates_by_source; time = bin "
            "centres in seconds from the event. Works for conditions ANIMAL never experienced. "
            "Beside them rates_generic: ANIMAL's own mean rate over the conditions it has (the other "
            "values of the condition's label), the null an imputation must beat to add information. "
            "With --samples N, also a --level band for the rate: N latents per sub-window are drawn "
            "from the sources' posteriors and the model error is added (rates_lo, rates_hi; the "
            "posterior-only band is rates_posterior_lo/hi, the mean over draws rates_posterior_mean). "
            "The model error is measured out of sample when RUN holds leave-one-condition-out results "
            "of ANIMAL (`neurovamp evaluate RUN --leave-condition-out`; attribute band="
            "'predictive-loco', the calibrated band), else in-sample on ANIMAL's experienced "
            "conditions (band='predictive', too narrow for a condition ANIMAL never had)."
        ),
        epilog="example (rat3 never smelled odor E):\n\n"
               "  neurovamp impute runs/mmvm --target rat3 --condition odor=E --samples 200 --out rat3_E.nc",
    )
    im.add_argument("run", metavar="RUN", help="run folder written by `neurovamp fit`")
    im.add_argument("--target", required=True, metavar="ANIMAL", help="animal to predict")
    im.add_argument(
        "--condition", dest="conditions", action="extend", nargs="+", required=True, metavar="COL=VALUE",
        help="trials of the sources to use, one or more COL=VALUE, e.g. odor=E or odor=A,B (several values) "
             "or odor=E correct=true (several columns, all must hold)",
    )
    im.add_argument("--sources", nargs="+", metavar="ANIMAL", help="source animals (default: every other animal)")
    im.add_argument(
        "--split", choices=("all", "train", "val", "test"), default="all",
        help="use only this split's source trials (default: all)",
    )
    im.add_argument("--combine", choices=("mixture", "geometric"), default="mixture", help="how sources are combined (default: mixture)")
    im.add_argument(
        "--samples", type=int, default=0, metavar="N",
        help="posterior draws for a credible band (0: none, the default; a few hundred for a 95%% band)",
    )
    im.add_argument(
        "--level", type=float, default=0.95, metavar="P",
        help="credible level of the band, between 0 and 1 (default: 0.95)",
    )
    im.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the posterior draws (default: 0)")
    im.add_argument("--out", required=True, metavar="FILE.nc", help="NetCDF file to write")
    im.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"), help="where to run the model (default: cpu)")
    im.add_argument("--data-dir", metavar="DIR", help=_DATA_DIR_HELP)
    im.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    im.set_defaults(func=impute_command)


def parse_condition(items: list[str] | None) -> dict[str, list[str]]:
    """Parse ``COL=VALUE`` options into ``{column: [value, ...]}`` (values as text).

    Parameters
    ----------
    items
        Option strings such as ``odor=E`` or ``odor=A,B``.

    Returns
    -------
    dict
        Column → values (typed later against the data's labels).

    Raises
    ------
    ConfigError
        For an item that is not ``COL=VALUE``.
    """
    from neurovamp.data.labels import parse_assignments

    return parse_assignments(items, message="--condition {item!r} must look like COL=VALUE (e.g. odor=E or odor=A,B)")


def _check_run_dir(run: str) -> Path:
    from neurovamp.errors import DataError

    run_dir = Path(run)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: run folder not found (expected the --out folder of `neurovamp fit`)")
    return run_dir


def evaluate_command(args: argparse.Namespace) -> int:
    """Run ``neurovamp evaluate``.

    Parameters
    ----------
    args
        Parsed arguments (see :func:`register`).

    Returns
    -------
    int
        0 on success (user errors raise :class:`~neurovamp.errors.NeurovampError`).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from neurovamp.analysis.evaluate import evaluate_model
    from neurovamp.data.validation import check_decoding_labels
    from neurovamp.errors import ConfigError
    from neurovamp.pipelines.fit import check_evaluation_outputs, load_run, write_evaluation

    run_dir = _check_run_dir(args.run)
    if args.leave_condition_out:
        from neurovamp.cli.loco_command import loco_command

        return loco_command(args, run_dir / METRICS_FILE)
    if args.folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {args.folds}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    metrics_path = run_dir / METRICS_FILE
    figures_dir = run_dir / FIGURES_DIR
    check_evaluation_outputs(run_dir, figures=not args.no_figures, overwrite=args.overwrite)  # before any work
    model, paired, info = load_run(run_dir, device=args.device, data_dir=args.data_dir)
    labels = args.labels or [paired.pair_by]
    check_decoding_labels(paired.modalities, labels)
    metrics = evaluate_model(model, paired, labels=labels, seed=args.seed, folds=args.folds)
    write_evaluation(run_dir, metrics, model=None if args.no_figures else model, paired=paired, label=labels[0],
                     seed=args.seed, overwrite=args.overwrite, info=info)
    summary = metrics["summary"]
    print(
        f"evaluated {metrics['model']} on {len(paired.animals)} animals: "
        f"{labels[0]} balanced accuracy {_fmt(summary['balanced_accuracy'].get(labels[0]))} "
        f"(shared {_fmt(summary['shared_balanced_accuracy'].get(labels[0]))}), "
        f"alignment R² {_fmt(summary['alignment_r2'])}, imputation {_fmt(summary['bits_per_spike'])} bits/spike; "
        f"wrote {metrics_path}" + ("" if args.no_figures else f" and {figures_dir}/")
    )
    return 0


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def impute_command(args: argparse.Namespace) -> int:
    """Run ``neurovamp impute``.

    Parameters
    ----------
    args
        Parsed arguments (see :func:`register`).

    Returns
    -------
    int
        0 on success (user errors raise :class:`~neurovamp.errors.NeurovampError`).
    """
    from neurovamp._files import atomic_output, check_writable
    from neurovamp._outputs import check_can_write
    from neurovamp.analysis.impute import impute_condition_mean
    from neurovamp.pipelines.fit import load_run

    run_dir = _check_run_dir(args.run)
    _check_band_options(args)
    condition = parse_condition(args.conditions)  # option errors first, then "the output exists"
    out = Path(args.out)
    check_writable(out, overwrite=args.overwrite, kind="file")
    check_can_write(out.parent)
    model, paired, _ = load_run(run_dir, device=args.device, data_dir=args.data_dir)
    split = None if args.split == "all" else args.split
    model_error = None
    if args.samples:
        from neurovamp.analysis.calibration import model_error_from_loco
        from neurovamp.analysis.loco import read_loco_results

        loco = read_loco_results(run_dir)
        model_error = None if loco is None else model_error_from_loco(loco, args.target)
    result = impute_condition_mean(
        model, paired, target=args.target, sources=args.sources, condition=condition, split=split,
        combine=args.combine, n_samples=args.samples, level=args.level, seed=args.seed, model_error=model_error,
    )
    result.attrs["run"] = str(run_dir.resolve())
    with atomic_output(out, overwrite=args.overwrite) as tmp:
        result.to_netcdf(tmp, engine="h5netcdf")
    what = ", ".join(f"{k}={','.join(map(str, v))}" for k, v in condition.items())
    band = f" with a {100 * args.level:g}% credible band from {args.samples} posterior draws" if args.samples else ""
    print(
        f"imputed {args.target} ({result.sizes['unit']} units x {result.sizes['time']} bins) for {what} from "
        f"{result.attrs['n_trials_total']} trials of {result.attrs['sources']}{band}; wrote {out}"
    )
    if args.samples:
        print(_band_line(result, run_dir))
    return 0


def _band_line(result: Any, run_dir: Path) -> str:
    """One line saying which band ``neurovamp impute`` wrote as rates_lo/rates_hi."""
    kind = result.attrs.get("band")
    if kind == "predictive-loco":
        return (f"band: predictive-loco (model error measured out of sample by leave-one-condition-out fits of "
                f"{result.attrs['target']}: held-out {result.attrs['model_error_conditions']}, from "
                f"{run_dir / 'metrics.json'})")
    if kind == "predictive":
        return ("band: predictive (model error measured in-sample on the target's experienced conditions: too "
                f"narrow for a condition it never had; run `neurovamp evaluate {run_dir} --leave-condition-out` "
                "for the calibrated band)")
    return ("band: posterior (latent posterior alone; no experienced condition of the target to measure the model "
            "error on)")


def _check_band_options(args: argparse.Namespace) -> None:
    """Reject ``--samples``, ``--level`` and ``--seed`` values the band cannot use.

    Parameters
    ----------
    args
        Parsed ``impute`` arguments.

    Raises
    ------
    ConfigError
        Naming the option and what it accepts.
    """
    from neurovamp.errors import ConfigError

    if args.samples < 0 or args.samples == 1:
        raise ConfigError(f"--samples must be 0 (no credible band) or at least 2, got {args.samples}")
    if not 0.0 < args.level < 1.0:
        raise ConfigError(f"--level must be strictly between 0 and 1 (e.g. 0.95), got {args.level:g}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
