"""The ``fit`` command: load recordings, pair trials, train a model, write a run folder."""

from __future__ import annotations

import argparse
import datetime as _dt
import shutil
from pathlib import Path
from typing import Any

__all__ = ["register", "fit_command"]

_MODELS = ("mmvm", "independent", "poe", "moe", "mopoe", "avg")
_LIKELIHOODS = ("poisson", "negbin", "gaussian")
_STRATEGIES = ("truncate", "resample", "index")


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
            "RUN/checkpoints/ (continue an interrupted run with --resume)."
        ),
    )
    p.add_argument("paths", nargs="+", metavar="NWB_OR_DATASET", help="NWB files and/or a saved dataset (.nc)")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder to write")
    data = p.add_argument_group("data")
    data.add_argument("--event", default="start_time", metavar="COL", help="trials column to align bins to (default: start_time)")
    data.add_argument(
        "--window", nargs=2, type=float, default=(0.0, 0.5), metavar=("START", "STOP"),
        help="window around the event in seconds (default: 0 0.5)",
    )
    data.add_argument("--bin", dest="bin_size", type=float, default=0.01, metavar="SECONDS", help="bin width (default: 0.01)")
    data.add_argument(
        "--label", dest="labels", action="extend", nargs="+", metavar="COL",
        help="trials columns to keep as labels (repeatable; default: all)",
    )
    data.add_argument("--allow-silent-units", action="store_true", help="accept units with no spikes at all")
    pairing = p.add_argument_group("pairing")
    pairing.add_argument("--pair-by", default="odor", metavar="COL", help="trial label to pair animals on (default: odor)")
    pairing.add_argument("--strategy", choices=_STRATEGIES, default="truncate", help="pairing strategy (default: truncate)")
    pairing.add_argument(
        "--filter", dest="filters", action="extend", nargs="+", metavar="COL=VALUE",
        help="keep trials whose label equals the value (e.g. correct=true odor=A,B); repeatable",
    )
    pairing.add_argument("--conditions", nargs="+", metavar="VALUE", help="values of --pair-by to keep, in order (e.g. A B C D)")
    pairing.add_argument(
        "--split", nargs=3, type=float, default=(0.7, 0.15, 0.15), metavar=("TRAIN", "VAL", "TEST"),
        help="fractions of trials per split (default: 0.7 0.15 0.15)",
    )
    pairing.add_argument("--subwindow", type=int, metavar="BINS", help="sub-window length in bins (default: whole trials)")
    pairing.add_argument("--stride", type=int, default=1, metavar="BINS", help="bins between sub-windows (default: 1)")
    model = p.add_argument_group("model")
    model.add_argument("--model", choices=_MODELS, default="mmvm", help="model (default: mmvm)")
    model.add_argument("--preset", choices=("neurovamp", "paper"), default="neurovamp", help="starting settings (default: neurovamp)")
    model.add_argument("--likelihood", choices=_LIKELIHOODS, help="observation model (default: from the preset)")
    model.add_argument("--latent-dim", type=int, metavar="N", help="latent dimension (default: from the preset)")
    train = p.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=100, metavar="N", help="maximum epochs (default: 100)")
    train.add_argument("--batch-size", type=int, default=128, metavar="N", help="samples per batch (default: 128)")
    train.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    train.add_argument("--patience", type=int, default=20, metavar="N", help="early-stopping patience in epochs; 0 disables (default: 20)")
    train.add_argument("--checkpoint-every", type=int, default=10, metavar="N", help="epochs between checkpoints (default: 10)")
    train.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the split, pairing and training (default: 0)")
    train.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to train (default: auto)")
    out = p.add_argument_group("output")
    out.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    out.add_argument("--resume", action="store_true", help="continue an interrupted run from RUN/checkpoints")
    out.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=fit_command)


def _labels_to_load(args: argparse.Namespace, filters: dict[str, list[str]]) -> list[str] | None:
    if not args.labels:
        return None
    wanted = list(dict.fromkeys([*args.labels, args.pair_by, *filters]))
    return wanted


def _run_settings(args: argparse.Namespace, tree: Any, filters_text: dict[str, list[str]]) -> dict[str, Any]:
    """The data and pairing sections of run.json (filter/condition values typed)."""
    from neurovamp.run import coerce_label_values

    filters = {col: coerce_label_values(tree, col, values) for col, values in filters_text.items()} or None
    conditions = coerce_label_values(tree, args.pair_by, args.conditions) if args.conditions else None
    return {
        "data": {
            "paths": [str(Path(p).resolve()) for p in args.paths],
            "event": args.event,
            "window": [float(args.window[0]), float(args.window[1])],
            "bin_size": float(args.bin_size),
            "labels": _labels_to_load(args, filters_text),
            "allow_silent_units": bool(args.allow_silent_units),
        },
        "pairing": {
            "by": args.pair_by,
            "strategy": args.strategy,
            "filters": filters,
            "conditions": conditions,
            "split": [float(f) for f in args.split],
            "seed": int(args.seed),
            "window": args.subwindow,
            "stride": int(args.stride),
        },
    }


def _check_resumable(run_dir: Path, settings: dict[str, Any], model_config: dict[str, Any]) -> None:
    """A resumed run must load, pair and model the data as the interrupted one did."""
    from neurovamp.errors import ConfigError
    from neurovamp.run import RUN_FILE, read_run_info

    if not (run_dir / RUN_FILE).is_file():
        return
    previous = read_run_info(run_dir)
    changed = [
        f"{section}.{key}"
        for section, current in (*settings.items(), ("model", model_config))
        for key in set(current) | set(previous.get(section, {}))
        if previous.get(section, {}).get(key) != current.get(key)
    ]
    if changed:
        raise ConfigError(
            f"{run_dir}: --resume with different settings than the interrupted run ({', '.join(sorted(changed))}); "
            "use the same options, or --overwrite to start afresh"
        )


def _remove_outputs(run_dir: Path) -> None:
    """Delete the outputs of an earlier run in ``run_dir`` (only the files fit writes)."""
    from neurovamp.models.training import CHECKPOINT_NAME
    from neurovamp.run import CHECKPOINT_DIR, HISTORY_FILE, LOSS_PLOT, MODEL_DIR, RUN_FILE

    for name in (RUN_FILE, HISTORY_FILE, LOSS_PLOT, f"{CHECKPOINT_DIR}/{CHECKPOINT_NAME}"):
        (run_dir / name).unlink(missing_ok=True)
    if (run_dir / MODEL_DIR).is_dir():
        shutil.rmtree(run_dir / MODEL_DIR)


def _write_loss_plot(history: Any, path: Path) -> None:
    """Loss curves via neurovamp.analysis.plots, falling back to a minimal plot."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    columns = ["epoch"] + [c for c in history.columns if c in ("train/loss", "val/loss")]
    try:
        from neurovamp.analysis.plots import plot_training_curves, save_figure
    except ImportError:  # plots module not available: a plain matplotlib figure
        import matplotlib.pyplot as plt

        from neurovamp._files import atomic_output

        fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
        for col in columns[1:]:
            ax.plot(history["epoch"], history[col], label=col)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(frameon=False)
        with atomic_output(path, overwrite=True) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
        plt.close(fig)
        return
    import matplotlib.pyplot as plt

    fig = plot_training_curves(history[columns])
    try:
        save_figure(fig, path, overwrite=True, format="png")
    finally:
        plt.close(fig)


def fit_command(args: argparse.Namespace) -> int:
    """Run ``neurovamp fit``.

    Parameters
    ----------
    args
        Parsed arguments (see :func:`register`).

    Returns
    -------
    int
        0 on success (user errors raise :class:`~neurovamp.errors.NeurovampError`).
    """
    import neurovamp
    from neurovamp._files import atomic_output, check_writable
    from neurovamp.data.dataset import load_recordings
    from neurovamp.data.pairing import pair_trials
    from neurovamp.errors import ConfigError
    from neurovamp.models.config import ModelConfig
    from neurovamp.models.estimator import MultiAnimalModel
    from neurovamp.run import (
        CHECKPOINT_DIR,
        HISTORY_FILE,
        LOSS_PLOT,
        MODEL_DIR,
        RUN_FORMAT,
        RUN_VERSION,
        parse_filters,
        write_run_info,
    )

    run_dir = Path(args.out)
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other: resume continues a run, overwrite restarts it")
    if not args.resume:
        check_writable(run_dir, overwrite=args.overwrite)
    elif not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: nothing to resume, the run folder does not exist")
    if args.patience is not None and args.patience < 0:
        raise ConfigError(f"--patience must be >= 0, got {args.patience}")

    filters_text = parse_filters(args.filters)
    tree = load_recordings(
        args.paths,
        event=args.event,
        window=tuple(args.window),
        bin_size=args.bin_size,
        labels=_labels_to_load(args, filters_text),
        allow_silent_units=args.allow_silent_units,
    )
    settings = _run_settings(args, tree, filters_text)
    pairing = settings["pairing"]
    paired = pair_trials(
        tree,
        by=pairing["by"],
        strategy=pairing["strategy"],
        filters=pairing["filters"],
        conditions=pairing["conditions"],
        split=tuple(pairing["split"]),
        seed=pairing["seed"],
        window=pairing["window"],
        stride=pairing["stride"],
    )

    overrides = {}
    if args.likelihood is not None:
        overrides["likelihood"] = args.likelihood
    if args.latent_dim is not None:
        overrides["latent_dim"] = args.latent_dim
    config = ModelConfig.from_preset(args.preset, args.model, **overrides)
    model = MultiAnimalModel(config=config, seed=args.seed, device=args.device)
    training = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "patience": args.patience or None,
        "checkpoint_every": args.checkpoint_every,
    }
    if args.resume:
        _check_resumable(run_dir, settings, config.to_dict())

    info: dict[str, Any] = {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "neurovamp_version": neurovamp.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **settings,
        "model": config.to_dict(),
        "training": {**training, "seed": args.seed, "device": args.device},
        "outputs": {"model": MODEL_DIR, "history": HISTORY_FILE, "loss_plot": LOSS_PLOT, "checkpoints": CHECKPOINT_DIR},
        "status": "running",
    }
    if args.overwrite and run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: exists and is not a folder; remove it or choose another --out")
    if args.overwrite and run_dir.is_dir():
        _remove_outputs(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_run_info(run_dir, info)

    model.fit(
        paired,
        checkpoint_dir=run_dir / CHECKPOINT_DIR,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        **training,
    )

    model.save(run_dir / MODEL_DIR, overwrite=True)
    with atomic_output(run_dir / HISTORY_FILE, overwrite=True) as tmp:
        model.history_.to_csv(tmp, index=False)
    _write_loss_plot(model.history_, run_dir / LOSS_PLOT)
    info["status"] = "complete"
    info["fit"] = {key: value for key, value in model.fit_info_.items()}
    write_run_info(run_dir, info)

    fit = model.fit_info_
    print(
        f"fitted {config.model} on {len(paired.animals)} animals ({', '.join(paired.animals)}): "
        f"{fit['epochs_run']} epochs, best {fit['monitor']} {fit['best_score']:.4g} at epoch {fit['best_epoch']}; "
        f"wrote {run_dir}"
    )
    return 0
