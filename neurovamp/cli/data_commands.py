"""Data commands: ``convert-release`` (public release → NWB) and ``info`` (summarise recordings)."""

from __future__ import annotations

import argparse

import numpy as np
import xarray as xr

__all__ = ["register", "convert_release_command", "info_command", "format_modality_info"]

#: Labels with more distinct values than this are summarised, not tabulated.
MAX_TABLE_VALUES = 12


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``convert-release`` and ``info`` commands.

    Parameters
    ----------
    subparsers
        The sub-parser collection of the ``neurovamp`` parser.
    """
    convert = subparsers.add_parser(
        "convert-release",
        help="convert the public five-rat release (npy) to one NWB file per rat",
        description=(
            "Convert the binned five-rat hippocampal release (folders Barat/ Buchanan/ Mitt/ "
            "Stella/ SuperChris/) to NWB files OUT/<Rat>.nwb. Spike times are only known to "
            "within the 10 ms bin. Some rats have units without a spike: reading their files "
            "(`neurovamp info`, `neurovamp fit`) then needs --allow-silent-units."
        ),
        epilog="example (the release downloaded as in datasets/README.md):\n\n"
               "  neurovamp convert-release ~/data/hippocampus-release nwb/",
    )
    convert.add_argument("release_dir", metavar="RELEASE_DIR", help="folder holding one sub-folder per rat")
    convert.add_argument("out", metavar="OUT", help="output folder for the NWB files")
    convert.add_argument("--rats", nargs="+", metavar="RAT", help="rat folders to convert (default: all found)")
    convert.add_argument("--overwrite", action="store_true", help="replace existing output files")
    convert.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    convert.set_defaults(func=convert_release_command)

    info = subparsers.add_parser(
        "info",
        help="summarise recordings: units, trials and trials per label value",
        description="Bin NWB files (or read a saved dataset .nc) and print one summary per animal.",
        epilog="example:\n\n  neurovamp info sim/rat*.nwb --event odor_onset --window 0 1 --label odor position",
    )
    info.add_argument("paths", nargs="+", metavar="PATH", help="NWB files and/or a saved dataset (.nc)")
    info.add_argument("--event", default="start_time", metavar="COL", help="trials column to align bins to (default: start_time)")
    info.add_argument(
        "--window", nargs=2, type=float, default=(0.0, 0.5), metavar=("START", "STOP"),
        help="window around the event in seconds (default: 0 0.5)",
    )
    info.add_argument("--bin", dest="bin_size", type=float, default=0.01, metavar="SECONDS", help="bin width (default: 0.01)")
    info.add_argument(
        "--label", dest="labels", action="extend", nargs="+", metavar="COL",
        help="trials columns to tabulate, one or more (e.g. --label odor position; default: all labels)",
    )
    info.add_argument("--allow-silent-units", action="store_true", help="accept units with no spikes at all")
    info.add_argument(
        "--drop-missing-events", action="store_true",
        help="leave out trials whose event time is NaN (e.g. aborted trials) instead of stopping",
    )
    info.set_defaults(func=info_command)


def convert_release_command(args: argparse.Namespace) -> int:
    """Run ``neurovamp convert-release``.

    Parameters
    ----------
    args
        Parsed arguments (``release_dir``, ``out``, ``rats``, ``overwrite``, ``no_progress``).

    Returns
    -------
    int
        0 on success (user errors raise :class:`~neurovamp.errors.NeurovampError`).
    """
    from neurovamp.io.release import convert_release

    written = convert_release(
        args.release_dir, args.out, rats=args.rats, overwrite=args.overwrite, progress=not args.no_progress
    )
    for rat, path in written.items():
        print(f"{rat}: {path}")
    return 0


def info_command(args: argparse.Namespace) -> int:
    """Run ``neurovamp info``: print units, trials and trials per label value per animal.

    Parameters
    ----------
    args
        Parsed arguments (``paths``, ``event``, ``window``, ``bin_size``, ``labels``,
        ``allow_silent_units``).

    Returns
    -------
    int
        0 on success (user errors raise :class:`~neurovamp.errors.NeurovampError`).
    """
    from neurovamp.data.dataset import animals, get_modality, load_recordings

    tree = load_recordings(
        args.paths,
        event=args.event,
        window=tuple(args.window),
        bin_size=args.bin_size,
        labels=args.labels,
        allow_silent_units=args.allow_silent_units,
        drop_missing_events=args.drop_missing_events,
    )
    blocks = [format_modality_info(get_modality(tree, animal)) for animal in animals(tree)]
    print("\n\n".join(blocks))
    return 0


def format_modality_info(da: xr.DataArray) -> str:
    """Readable summary of one modality: sizes, bins and a trials-per-label-value table.

    Parameters
    ----------
    da
        A modality.

    Returns
    -------
    str
        Several lines; labels with more than ``MAX_TABLE_VALUES`` distinct values are
        summarised by their number of distinct values.
    """
    from neurovamp.data.modality import label_names

    attrs = da.attrs
    n_spikes = int(np.asarray(da.values).sum())
    lines = [
        f"{attrs['animal']}" + (f"  ({attrs['source']})" if attrs.get("source") else ""),
        f"  units {da.sizes['unit']}, trials {da.sizes['trial']}, spikes in windows {n_spikes}",
        f"  {da.sizes['time']} bins of {attrs['bin_size'] * 1000:g} ms from {attrs['window_start']:g} s "
        f"to {attrs['window_stop']:g} s around {attrs['event']}",
    ]
    rows: list[tuple[str, str, str]] = []
    for name in label_names(da):
        values, counts = np.unique(np.asarray(da[name].values), return_counts=True)
        if values.size > MAX_TABLE_VALUES:
            rows.append((name, f"({values.size} distinct values)", ""))
            continue
        for i, (value, count) in enumerate(zip(values.tolist(), counts.tolist())):
            rows.append((name if i == 0 else "", str(value), str(count)))
    if rows:
        header = ("label", "value", "trials")
        widths = [max(len(r[c]) for r in [header, *rows]) for c in range(3)]
        fmt = "  {:<%d}  {:<%d}  {:>%d}" % tuple(widths)
        lines.append(fmt.format(*header))
        lines.append(fmt.format(*("-" * w for w in widths)))
        lines.extend(fmt.format(*row).rstrip() for row in rows)
    else:
        lines.append("  no trial labels")
    return "\n".join(lines)
