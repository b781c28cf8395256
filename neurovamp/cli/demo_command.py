"""The ``demo`` command: fit MMVM and every baseline on the embedded data and write a report."""

from __future__ import annotations

import argparse

__all__ = ["register", "demo_command"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` command.

    Parameters
    ----------
    subparsers
        The sub-parser collection of the ``neurovamp`` parser.
    """
    from neurovamp.pipelines.demo import DEMO_MODELS

    p = subparsers.add_parser(
        "demo",
        help="fit MMVM and the baselines on the embedded simulated data and write a comparison report",
        description=(
            "End-to-end demo on the embedded simulated data set (3 rats; rat3 never smelled odor E): bin the NWB "
            "files around odor onset, pair trials by odor, fit MMVM and the baselines (independent, poe, moe, mopoe, "
            "avg) with neurovamp's defaults, evaluate them and write OUT/report.md, OUT/metrics.json, "
            "OUT/comparison.csv and one `neurovamp fit` run folder per model in OUT/runs/. Running it again on an "
            "unfinished OUT resumes it (complete models are skipped); on a complete one it stops and says so "
            "(--overwrite redoes it)."
        ),
        epilog="example (5-10 minutes on 2 CPU cores; --quick: seconds, numbers not meaningful):\n\n"
               "  neurovamp demo --out neurovamp-demo",
    )
    p.add_argument("--out", default="neurovamp-demo", metavar="DIR", help="output folder (default: ./neurovamp-demo)")
    p.add_argument(
        "--models", nargs="+", choices=DEMO_MODELS, metavar="MODEL",
        help=f"models to compare, from {', '.join(DEMO_MODELS)} (default: all; with --quick: mmvm independent)",
    )
    p.add_argument("--epochs", type=int, metavar="N", help="maximum epochs per model (default: 200; --quick: 2)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of everything random (default: 0)")
    p.add_argument("--seeds", type=int, metavar="N", dest="n_seeds",
                   help="fit every model with N seeds (--seed, --seed + 1, ...) and report mean ± SD (default: 3; "
                        "--quick: 1)")
    p.add_argument(
        "--quick", action="store_true", help="tiny settings that run in seconds (for tests; numbers not meaningful)"
    )
    p.add_argument(
        "--overwrite", action="store_true",
        help="redo everything in an existing demo folder (only what the demo wrote is removed)",
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to train (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=demo_command, interrupt_hint="rerun the same command to continue (finished models are reused)")


def demo_command(args: argparse.Namespace) -> int:
    """Run ``neurovamp demo``.

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

    from neurovamp.pipelines.demo import run_demo

    matplotlib.use("Agg", force=False)  # figures go to files; no display needed
    result = run_demo(
        args.out,
        models=args.models,
        epochs=args.epochs,
        seed=args.seed,
        n_seeds=args.n_seeds,
        quick=args.quick,
        overwrite=args.overwrite,
        device=args.device,
        progress=not args.no_progress,
    )
    done = ", ".join(result.fitted) or "none"
    reused = f"; reused {', '.join(result.reused)}" if result.reused else ""
    print(f"demo finished in {result.seconds:.0f} s (fitted and evaluated: {done}{reused}); report: {result.report}")
    return 0
