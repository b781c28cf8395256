"""The ``fit`` command: parse options, then :func:`neurovamp.pipelines.fit.fit_run` writes the run folder.

This module only turns command-line text into typed values (filter and condition values
are read as the type of their trial label; model options become
:class:`~neurovamp.models.config.ModelConfig` overrides, validated there) and prints a
one-line summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neurovamp.cli.recording_options import add_binning_options, add_recording_options, recording_settings
from neurovamp.data.settings import PAIRING_DEFAULTS as _PAIRING
from neurovamp.data.settings import STRATEGIES
from neurovamp.models.config import MONITOR_TERMS
from neurovamp.models.config import TrainingConfig as _TRAINING

if TYPE_CHECKING:
    from neurovamp.models.config import ModelConfig

__all__ = ["register", "fit_command"]

_MODELS = ("mmvm", "independent", "poe", "moe", "mopoe", "avg")
_LIKELIHOODS = ("poisson", "negbin", "gaussian")
#: ``--hidden`` value meaning "no hidden layer" (as is ``--hidden`` with no value).
_NO_HIDDEN = "none"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fit`` command.

    Parameters
    ----------
    subparsers
        The sub-parser collection of the ``neurovamp`` parser.
    """
    p = subparsers.add_parser(
        "fit",
        help="fit a multi-animal model (MMVM VAE or a baseline) and write a run folder",
        description=(
            "Bin NWB files (one animal each) or read a saved dataset (.nc), pair trials across "
            "animals by a label, split them into train/val/test and fit a model. Writes RUN/model/, "
            "RUN/run.json (how to rebuild the data), RUN/history.csv, RUN/loss.png and "
            "RUN/checkpoints/ (continue an interrupted run with --resume). Data paths are recorded "
            "relative to RUN where they share a folder with it, so a project folder can be moved as a whole."
        ),
        epilog=(
            "example (the README's; `neurovamp simulate sim --small --seed 2024` writes sim/):\n\n"
            "  neurovamp fit sim/rat*.nwb --out runs/mmvm --event odor_onset --window 0 1 --bin 0.02 \\\n"
            "      --label odor position in_sequence correct --pair-by odor --strategy resample \\\n"
            "      --subwindow 10 --stride 2 --epochs 200"
        ),
    )
    p.add_argument("paths", nargs="+", metavar="NWB_OR_DATASET", help="NWB files and/or a saved dataset (.nc)")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder to write")
    data = p.add_argument_group("data")
    add_binning_options(data)
    data.add_argument(
        "--label", dest="labels", action="extend", nargs="+", metavar="COL",
        help="trials columns to keep as labels, one or more (e.g. --label odor position); the option may be "
             "given again to add more (default: all)",
    )
    data.add_argument("--allow-silent-units", action="store_true", help="accept units with no spikes at all")
    data.add_argument(
        "--drop-missing-events", action="store_true",
        help="leave out trials whose event time is NaN (e.g. aborted trials) instead of stopping",
    )
    add_recording_options(data)
    pairing = p.add_argument_group("pairing")
    pairing.add_argument("--pair-by", default=_PAIRING.by, metavar="COL",
                         help=f"trial label to pair animals on (default: {_PAIRING.by})")
    pairing.add_argument("--strategy", choices=STRATEGIES, default=_PAIRING.strategy,
                         help=f"pairing strategy (default: {_PAIRING.strategy})")
    pairing.add_argument(
        "--filter", dest="filters", action="extend", nargs="+", metavar="COL=VALUE",
        help="keep trials whose label equals the value, one or more COL=VALUE (e.g. --filter correct=true "
             "odor=A,B); the option may be given again to add more",
    )
    pairing.add_argument(
        "--pair-bins", type=int, metavar="N",
        help="pair on N equal bins of a continuous --pair-by label (e.g. position from --behavior); "
             "bins an animal never visited are masked",
    )
    pairing.add_argument("--conditions", nargs="+", metavar="VALUE", help="values of --pair-by to keep, in order (e.g. A B C D)")
    pairing.add_argument(
        "--split", nargs=3, type=float, default=_PAIRING.split, metavar=("TRAIN", "VAL", "TEST"),
        help=f"fractions of trials per split (default: {' '.join(f'{v:g}' for v in _PAIRING.split)})",
    )
    pairing.add_argument("--subwindow", type=int, metavar="BINS", help="sub-window length in bins (default: whole trials)")
    pairing.add_argument("--stride", type=int, default=_PAIRING.stride, metavar="BINS",
                         help=f"bins between sub-windows (default: {_PAIRING.stride})")
    model = p.add_argument_group("model")
    model.add_argument("--model", choices=_MODELS, default="mmvm", help="model (default: mmvm)")
    model.add_argument("--preset", choices=("neurovamp", "paper"), default="neurovamp", help="starting settings (default: neurovamp)")
    model.add_argument("--likelihood", choices=_LIKELIHOODS, help="observation model (default: from the preset)")
    model.add_argument("--latent-dim", type=int, metavar="N", help="latent dimension (default: from the preset)")
    model.add_argument(
        "--hidden", nargs="*", metavar="W",
        help="encoder hidden-layer widths, input side first (the MLP decoder uses them reversed): positive "
             "integers or 'input' (as wide as the animal's input), e.g. --hidden 128 64 or --hidden input input; "
             f"--hidden alone or --hidden {_NO_HIDDEN} means no hidden layer (default: from the preset)",
    )
    model.add_argument(
        "--decoder", metavar="KIND",
        help="'mlp' (hidden layers as --hidden, reversed) or 'linear' (log-rate, or the Gaussian mean, affine in the latent) "
             "(default: from the preset)",
    )
    model.add_argument(
        "--alpha", type=float, metavar="A",
        help="weight of the N(0, I) component in the MMVM prior, in [0, 1] (mmvm only; default: from the preset)",
    )
    model.add_argument(
        "--beta", type=float, metavar="B", help="weight of the KL regulariser, >= 0 (default: from the preset)",
    )
    train = p.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=_TRAINING.epochs, metavar="N",
                       help=f"maximum epochs (default: {_TRAINING.epochs})")
    train.add_argument("--batch-size", type=int, default=_TRAINING.batch_size, metavar="N",
                       help=f"samples per batch (default: {_TRAINING.batch_size})")
    train.add_argument("--lr", type=float, default=_TRAINING.lr, help=f"Adam learning rate (default: {_TRAINING.lr:g})")
    train.add_argument("--patience", type=int, default=_TRAINING.patience, metavar="N",
                       help=f"early-stopping patience in epochs; 0 disables (default: {_TRAINING.patience})")
    train.add_argument(
        "--max-grad-norm", type=float, metavar="X",
        help="clip the global gradient norm to X (default: no clipping; a remedy for an exploding loss)",
    )
    train.add_argument(
        "--monitor", choices=MONITOR_TERMS, default=_TRAINING.monitor,
        help=f"validation term early stopping watches: the whole loss or reconstruction only (default: {_TRAINING.monitor})",
    )
    train.add_argument(
        "--kl-warmup", type=int, metavar="N",
        help="epochs over which the KL term's weight rises linearly to 1; early stopping starts after them "
             f"(default: {_TRAINING.kl_warmup}; 0: none; --resume keeps the run's own)",
    )
    train.add_argument("--checkpoint-every", type=int, default=_TRAINING.checkpoint_every, metavar="N",
                       help=f"epochs between checkpoints (default: {_TRAINING.checkpoint_every})")
    train.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the split, pairing and training (default: 0)")
    train.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to train (default: auto)")
    train.add_argument(
        "--compile", action="store_true",
        help="compile the training steps with torch.compile: 2-4 %% faster per epoch after a one-off "
             "compilation (5-15 s with torch's cache warm, ~45 s cold); needs a C++ compiler on CPU",
    )
    train.add_argument(
        "--nproc", type=int, default=1, metavar="N",
        help="train data-parallel on N local processes (torch.distributed, gloo on CPU, NCCL on GPU); "
             "the same loss as one process up to float rounding (default: 1). On a cluster launch with "
             "torchrun instead: torchrun --nproc-per-node N -m neurovamp fit ... (see the README)",
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--overwrite", action="store_true",
        help="restart an existing run folder (removes only what neurovamp wrote there; your own files stay)",
    )
    out.add_argument("--resume", action="store_true", help="continue an interrupted run from RUN/checkpoints")
    out.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=fit_command, interrupt_hint="rerun the same command with --resume to continue from the last checkpoint")


def _hidden(tokens: list[str]) -> list[int | str]:
    """``--hidden`` text as ModelConfig.hidden: integers where they parse, 'input' kept.

    No value or the single word ``none`` gives ``[]`` (no hidden layer); anything else
    that is not an integer is passed on as text for ModelConfig to reject by name.
    """
    if not tokens or [t.lower() for t in tokens] == [_NO_HIDDEN]:
        return []
    widths: list[int | str] = []
    for token in tokens:
        try:
            widths.append(int(token))
        except ValueError:
            widths.append(token)
    return widths


def _model_config(args: argparse.Namespace) -> ModelConfig:
    """The ModelConfig of the options (ConfigError naming the field for a bad value)."""
    from neurovamp.models.config import ModelConfig

    overrides: dict[str, Any] = {}
    for name in ("likelihood", "latent_dim", "decoder", "alpha", "beta"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.hidden is not None:
        overrides["hidden"] = _hidden(args.hidden)
    return ModelConfig.from_preset(args.preset, args.model, **overrides)


def fit_command(args: argparse.Namespace) -> int:
    """Run ``neurovamp fit``: check the options, :func:`neurovamp.pipelines.fit.fit_run`, print a summary.

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

    matplotlib.use("Agg", force=False)  # loss.png is written without a display

    from neurovamp.io.recordings import load_recordings
    from neurovamp.data.labels import coerce_label_values, labels_to_load
    from neurovamp.pipelines.fit import check_run_folder, fit_run, parse_filters

    config = _model_config(args)
    filters_text = parse_filters(args.filters)  # option errors first, then "the run folder exists"
    check_run_folder(args.out, overwrite=args.overwrite, resume=args.resume)  # before loading any data
    labels = labels_to_load(args.labels, args.pair_by, filters_text)
    recording = recording_settings(args)
    tree = load_recordings(args.paths, event=args.event, window=tuple(args.window), bin_size=args.bin_size,
                           labels=labels, allow_silent_units=args.allow_silent_units,
                           drop_missing_events=args.drop_missing_events, **recording)
    filters = {col: coerce_label_values(tree, col, values) for col, values in filters_text.items()} or None
    conditions = coerce_label_values(tree, args.pair_by, args.conditions) if args.conditions else None
    model = fit_run(
        args.paths, args.out, event=args.event, window=tuple(args.window), bin_size=args.bin_size,
        labels=args.labels, allow_silent_units=args.allow_silent_units,
        drop_missing_events=args.drop_missing_events, recording=recording, pair_by=args.pair_by,
        pair_bins=args.pair_bins,
        strategy=args.strategy, filters=filters, conditions=conditions, split=tuple(args.split),
        subwindow=args.subwindow, stride=args.stride, config=config, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, patience=args.patience, checkpoint_every=args.checkpoint_every,
        monitor=args.monitor, max_grad_norm=args.max_grad_norm, compile=args.compile, kl_warmup=args.kl_warmup,
        seed=args.seed, device=args.device, overwrite=args.overwrite, resume=args.resume,
        progress=not args.no_progress, recordings=tree, nproc=args.nproc,
    )
    from neurovamp.models.distributed import is_writer

    if not is_writer():  # another rank under torchrun: rank 0 reports
        return 0
    fit = model.fit_info_
    print(
        f"fitted {config.model} on {len(model.animals_)} animals ({', '.join(model.animals_)}): "
        f"{fit['epochs_run']} epochs, best {fit['monitor']} {fit['best_score']:.4g} at epoch {fit['best_epoch']}; "
        f"wrote {Path(args.out)}"
    )
    return 0
