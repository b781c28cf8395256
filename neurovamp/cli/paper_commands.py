"""The ``paper`` command: the paper's hippocampal analysis from the public five-rat release."""

from __future__ import annotations

import argparse

from neurovamp.errors import ConfigError

__all__ = ["register", "paper_command", "parse_window_starts"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``paper`` command.

    Parameters
    ----------
    subparsers
        The sub-parser collection of the ``neurovamp`` parser.
    """
    from neurovamp.models.config import LIKELIHOODS, MODELS
    from neurovamp.pipelines.paper import (
        DEFAULT_EPOCHS,
        DEFAULT_PATIENCE,
        DEFAULT_SEEDS,
        PAPER_ODORS,
        PAPER_RATS,
        PAPER_SUBWINDOW,
        PAPER_WINDOW_LENGTH,
        PAPER_WINDOW_STARTS,
    )

    starts = " ".join(f"{r}={b}" for r, b in PAPER_WINDOW_STARTS.items())
    p = subparsers.add_parser(
        "paper",
        help="reproduce the paper's hippocampal results from the public five-rat release",
        description=(
            "Convert the public five-rat release (Barat/ Buchanan/ Mitt/ Stella/ SuperChris/) to NWB (RUN/nwb, "
            "reused when present), cut each rat's 25-bin window at the paper's release bins "
            f"({starts}; bin 200 starts at odor onset, so bin 225 is 250 ms after it), take sliding 10-bin sub-windows, keep odors A-D, split trials into train/val/test and pair "
            "them by odor across rats (truncated to the smallest count), fit MMVM and every baseline with the "
            "paper's settings and with neurovamp's defaults over several seeds, evaluate on held-out and on "
            "training trials, and write RUN/metrics.json, RUN/figures/ and RUN/report.md. Running it again on an "
            "unfinished RUN with the same options resumes it (finished fits are skipped)."
        ),
        epilog="example (the release downloaded as in datasets/README.md; hours on a CPU):\n\n"
               "  neurovamp paper ~/data/hippocampus-release --out runs/paper",
    )
    p.add_argument("release_dir", metavar="RELEASE_DIR", help="folder holding one sub-folder per rat")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder to write")
    data = p.add_argument_group("data")
    data.add_argument(
        "--rats", nargs="+", default=list(PAPER_RATS), metavar="RAT",
        help=f"rat folders to use (default: {' '.join(PAPER_RATS)})",
    )
    data.add_argument(
        "--odors", nargs="+", default=list(PAPER_ODORS), metavar="ODOR",
        help=f"odors to keep and pair on (default: {' '.join(PAPER_ODORS)})",
    )
    data.add_argument(
        "--window-start", dest="window_start", action="extend", nargs="+", metavar="RAT=BIN", default=None,
        help=f"first release bin of a rat's window (bin 200 starts at odor onset; default: {starts})",
    )
    data.add_argument(
        "--window-length", type=int, default=PAPER_WINDOW_LENGTH, metavar="BINS",
        help=f"window length in bins (default: {PAPER_WINDOW_LENGTH})",
    )
    data.add_argument(
        "--subwindow", type=int, default=PAPER_SUBWINDOW, metavar="BINS",
        help=f"sub-window (sample) length in bins (default: {PAPER_SUBWINDOW})",
    )
    data.add_argument("--stride", type=int, default=1, metavar="BINS", help="bins between sub-windows (default: 1)")
    data.add_argument(
        "--split", nargs=3, type=float, default=(0.7, 0.15, 0.15), metavar=("TRAIN", "VAL", "TEST"),
        help="fractions of each rat's trials per split (default: 0.7 0.15 0.15)",
    )
    data.add_argument("--correct-only", action="store_true", help="keep only correct trials")
    data.add_argument("--in-sequence-only", action="store_true", help="keep only in-sequence trials")
    model = p.add_argument_group("models")
    model.add_argument(
        "--models", nargs="+", choices=MODELS, default=list(MODELS), metavar="MODEL",
        help=f"models to fit (default: {' '.join(MODELS)})",
    )
    model.add_argument("--latent-dim", type=int, default=2, metavar="N", help="latent dimension of the paper preset (default: 2)")
    model.add_argument(
        "--likelihood", choices=LIKELIHOODS, default="gaussian", help="likelihood of the paper preset (default: gaussian)"
    )
    model.add_argument(
        "--no-defaults", action="store_true", help="fit only the paper preset, not neurovamp's defaults as well"
    )
    train = p.add_argument_group("training")
    train.add_argument(
        "--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS), metavar="N",
        help=f"seeds (split, pairs and initialisation; default: {' '.join(map(str, DEFAULT_SEEDS))})",
    )
    train.add_argument(
        "--epochs", type=int, default=DEFAULT_EPOCHS, metavar="N", help=f"maximum epochs per fit (default: {DEFAULT_EPOCHS})"
    )
    train.add_argument(
        "--patience", type=int, default=DEFAULT_PATIENCE, metavar="N",
        help=f"early-stopping patience in epochs; 0 disables (default: {DEFAULT_PATIENCE})",
    )
    train.add_argument("--folds", type=int, default=5, metavar="N", help="folds of the cross-validated decoding (default: 5)")
    train.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to train (default: auto)")
    train.add_argument(
        "--threads", type=int, metavar="N",
        help="CPU threads for torch and BLAS (default: library defaults; 1 is often fastest on a shared machine)",
    )
    train.add_argument(
        "--jobs", type=int, default=1, metavar="N",
        help="fits run in parallel, one process each (default: 1; e.g. the number of CPU cores)",
    )
    out = p.add_argument_group("output")
    out.add_argument("--save-models", action="store_true", help="keep every fitted model in RUN/fits (large for the paper preset)")
    out.add_argument("--overwrite", action="store_true", help="replace a finished run or one with other options")
    out.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=paper_command, interrupt_hint="rerun the same command to continue (finished fits are reused)")


def parse_window_starts(items: list[str] | None) -> dict[str, int]:
    """Parse ``RAT=BIN`` items of ``--window-start``.

    Parameters
    ----------
    items
        Values of ``--window-start`` (or None).

    Returns
    -------
    dict
        Rat → first bin, for the rats named in ``items`` only.

    Raises
    ------
    ConfigError
        For an item that is not ``RAT=BIN`` with an integer bin.
    """
    starts: dict[str, int] = {}
    for item in items or []:
        rat, sep, value = item.partition("=")
        try:
            if not sep or not rat:
                raise ValueError
            starts[rat] = int(value)
        except ValueError:
            raise ConfigError(f"--window-start expects RAT=BIN with an integer bin (e.g. Mitt=250), got {item!r}") from None
    return starts


def paper_command(args: argparse.Namespace) -> int:
    """Run ``neurovamp paper``.

    Parameters
    ----------
    args
        Parsed arguments.

    Returns
    -------
    int
        0 on success (user errors raise :class:`~neurovamp.errors.NeurovampError`).
    """
    from pathlib import Path

    from neurovamp.pipelines.paper import PAPER_WINDOW_STARTS, PaperConfig, run_paper

    given = parse_window_starts(args.window_start)
    unknown = [r for r in given if r not in args.rats]
    if unknown:
        raise ConfigError(f"--window-start names rat(s) {unknown} that are not in --rats ({' '.join(args.rats)})")
    starts = {**PAPER_WINDOW_STARTS, **given}
    config = PaperConfig(
        rats=tuple(args.rats),
        odors=tuple(args.odors),
        window_starts={r: starts[r] for r in args.rats if r in starts},
        window_length=args.window_length,
        subwindow=args.subwindow,
        stride=args.stride,
        split=tuple(args.split),
        latent_dim=args.latent_dim,
        likelihood=args.likelihood,
        models=tuple(args.models),
        presets=("paper",) if args.no_defaults else ("paper", "neurovamp"),
        seeds=tuple(args.seeds),
        epochs=args.epochs,
        patience=None if args.patience == 0 else args.patience,
        correct_only=args.correct_only,
        in_sequence_only=args.in_sequence_only,
        folds=args.folds,
        device=args.device,
        threads=args.threads,
        jobs=args.jobs,
        save_models=args.save_models,
    )
    metrics = run_paper(args.release_dir, args.out, config, overwrite=args.overwrite, progress=not args.no_progress)
    out = Path(args.out)
    print(f"report: {out / 'report.md'}")
    print(f"metrics: {out / 'metrics.json'}")
    for preset, models in metrics["summary"].items():
        for model, stats in models.items():
            shared = stats["mean"].get("shared_heldout")
            own = stats["mean"].get("own_heldout")
            text = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
            print(f"{preset:>9} {model:<11} odor decoding held-out: shared {text(shared)}, own {text(own)}")
    return 0
