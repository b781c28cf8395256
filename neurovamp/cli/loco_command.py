"""``neurovamp evaluate RUN --leave-condition-out``: the options and the command."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Any

__all__ = ["add_loco_options", "loco_command"]


def add_loco_options(parser: argparse.ArgumentParser) -> None:
    """Add the leave-one-condition-out options to the ``evaluate`` parser.

    Parameters
    ----------
    parser
        The ``evaluate`` sub-parser.
    """
    group = parser.add_argument_group("leave-one-condition-out")
    group.add_argument(
        "--leave-condition-out", action="store_true",
        help="for every animal and condition, refit the run's model with that condition hidden from that animal, "
             "impute it from the others and score it against the real trials (metrics.json key "
             "'leave_condition_out'; finished fits are kept in RUN/loco/ and skipped on a re-run)",
    )
    group.add_argument("--jobs", type=int, default=1, metavar="N", help="fits run in parallel (default: 1)")
    group.add_argument("--threads", type=int, default=1, metavar="N", help="torch threads per fit (default: 1)")
    group.add_argument("--animals", nargs="+", metavar="ANIMAL", help="leave conditions out of these animals only")
    group.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def loco_command(args: argparse.Namespace, metrics_path: Path) -> int:
    """Run the leave-one-condition-out evaluation of a run and add it to ``metrics.json``.

    Parameters
    ----------
    args
        Parsed ``evaluate`` arguments.
    metrics_path
        The run's ``metrics.json`` (created, or updated under the key
        :data:`neurovamp.analysis.loco.LOCO_KEY`; its other keys are kept).

    Returns
    -------
    int
        0 on success.
    """
    from neurovamp.analysis.evaluate import write_metrics
    from neurovamp.analysis.loco import LOCO_DIR, LOCO_KEY, leave_condition_out
    from neurovamp.errors import DataError
    from neurovamp.pipelines.fit import _load_tree, _pair, read_run_info

    run_dir = metrics_path.parent
    info = read_run_info(run_dir)
    try:
        data, pairing, training, model = info["data"], info["pairing"], dict(info["training"]), info["model"]
    except KeyError as exc:
        raise DataError(f"{run_dir}: run.json is missing setting {exc.args[0]!r}") from exc
    missing = [str(p) for p in data["paths"] if not Path(p).exists()]
    if missing:
        raise DataError(f"data file(s) of the run not found: {missing} (moved or deleted since `neurovamp fit`?)")
    seed = int(training.pop("seed", 0))
    training.pop("device", None)
    result = leave_condition_out(
        _load_tree(data), by=pairing["by"], pair=functools.partial(_pair, pairing=pairing), model_config=model,
        training=training, seed=seed, out_dir=run_dir / LOCO_DIR, animals=args.animals, jobs=args.jobs,
        threads=args.threads, progress=not args.no_progress, overwrite=args.overwrite,
    )
    metrics: dict[str, Any] = {}
    if metrics_path.is_file():
        from neurovamp._jsonfile import read_json

        metrics = read_json(metrics_path, what="metrics file")
    metrics[LOCO_KEY] = result
    write_metrics(metrics, metrics_path, overwrite=True)
    s = result["summary"]
    print(
        f"leave-one-condition-out: {s['n_fits']} fits; imputed vs the generic prediction "
        f"{s['bps_generic']['mean']:.3f} ± {s['bps_generic']['sd']:.3f} bits/spike (beats it in "
        f"{100 * s['beats_generic']:.0f} % of fits), vs a flat rate {s['bps_flat']['mean']:.3f} "
        f"(generic: {s['generic_bps_flat']['mean']:.3f}); condition-specific r {s['r']['mean']:.3f}, "
        f"R² {s['r2']['mean']:.3f}; wrote {metrics_path} ({LOCO_KEY})"
    )
    return 0
