"""Data commands: ``convert-release`` (public release → NWB) and ``info`` (summarise recordings)."""

from __future__ import annotations

import argparse

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurovamp.cli.recording_options import add_binning_options, add_recording_options, recording_settings

__all__ = ["register", "convert_release_command", "info_command", "format_modality_info", "format_file_contents"]

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
    add_binning_options(info)
    info.add_argument(
        "--label", dest="labels", action="extend", nargs="+", metavar="COL",
        help="trials columns to tabulate, one or more (e.g. --label odor position; default: all labels)",
    )
    info.add_argument("--allow-silent-units", action="store_true", help="accept units with no spikes at all")
    info.add_argument(
        "--drop-missing-events", action="store_true",
        help="leave out trials whose event time is NaN (e.g. aborted trials) instead of stopping",
    )
    info.add_argument(
        "--contents", action="store_true",
        help="also list each NWB file's intervals tables, unit columns and locations, electrodes and time "
             "series (listed anyway for a file without a trials table when neither --trials nor --windows is given)",
    )
    add_recording_options(info)
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
    """Run ``neurovamp info``: what each NWB file holds, then units, trials and labels per animal.

    With ``--contents``, each NWB file's intervals tables (rows, columns), units (columns,
    locations), electrode locations and time series are listed first. The files are then
    binned with the options given; when no option chooses trials (``--trials`` /
    ``--windows``) and a file has no ``trials`` table, its contents and a hint on how to
    bin it replace the per-animal summary.

    Parameters
    ----------
    args
        Parsed arguments (``paths``, ``event``, ``window``, ``bin_size``, ``labels``,
        ``allow_silent_units``, ``drop_missing_events`` and the recording options).

    Returns
    -------
    int
        0 on success (user errors raise :class:`~neurovamp.errors.NeurovampError`).
    """
    from neurovamp.data.dataset import DATASET_SUFFIXES, animals, get_modality
    from neurovamp.io.recordings import load_recordings
    from neurovamp.io.nwb_info import describe_nwb

    recording = recording_settings(args)
    contents = [describe_nwb(p) for p in args.paths if Path(p).suffix.lower() not in DATASET_SUFFIXES]
    blocks = [format_file_contents(c) for c in contents] if args.contents else []
    untrialled = [c["path"] for c in contents if "trials" not in c["intervals"]]
    if untrialled and "trials" not in recording and "windows" not in recording:
        if not args.contents:
            blocks = [format_file_contents(c) for c in contents]
        blocks.append(
            f"no trials table in {', '.join(untrialled)}: choose an intervals table with --trials TABLE, "
            "or cut the session into windows with --windows SECONDS (and --behavior NAME for a behaviour series)"
        )
        print("\n\n".join(blocks))
        return 0
    tree = load_recordings(
        args.paths,
        event=args.event,
        window=tuple(args.window),
        bin_size=args.bin_size,
        labels=args.labels,
        allow_silent_units=args.allow_silent_units,
        drop_missing_events=args.drop_missing_events,
        **recording,
    )
    for animal in animals(tree):
        block = format_modality_info(get_modality(tree, animal))
        node = tree[animal].to_dataset()
        for name, var in node.data_vars.items():
            if name != "counts":
                unit = var.attrs.get("unit") or "unit not given"
                dims = ", ".join(map(str, var[var.dims[2]].values)) if var.ndim == 3 else ""
                block += f"\n  behaviour {name} ({var.attrs.get('series', '')}): dimensions {dims}; {unit}"
        blocks.append(block)
    print("\n\n".join(blocks))
    return 0


def format_file_contents(contents: dict[str, Any]) -> str:
    """Readable listing of :func:`neurovamp.io.nwb_info.describe_nwb`'s result.

    Parameters
    ----------
    contents
        The description of one NWB file.

    Returns
    -------
    str
        Several lines: subject and session, intervals tables, units, electrodes and time series.
    """
    lines = [
        f"{contents['path']}",
        f"  subject {contents['subject'] or '(blank)'}, session {contents['session']}",
    ]
    if contents["intervals"]:
        lines.append("  intervals tables:")
        for name, table in contents["intervals"].items():
            lines.append(f"    {name}: {table['rows']} rows; columns {', '.join(table['columns'])}")
    else:
        lines.append("  no intervals tables")
    units = contents["units"]
    if units is None:
        lines.append("  no units table")
    else:
        where = ", ".join(f"{loc} {n}" for loc, n in units["locations"].items()) or "not given"
        lines.append(f"  units: {units['count']}; columns {', '.join(units['columns'])}; locations {where}")
    if contents["electrodes"]:
        lines.append("  electrodes by location: " + ", ".join(f"{loc} {n}" for loc, n in contents["electrodes"].items()))
    if contents["series"]:
        lines.append("  time series:")
        for name, info in contents["series"].items():
            if "series" in info:
                lines.append(f"    {name} ({info['type']}, {info['where']}): series {', '.join(info['series'])}")
            else:
                lines.append(
                    f"    {name} ({info['type']}, {info['where']}): shape {info['shape']}, "
                    f"{info['unit'] or 'unit not given'}, {info['start']:.6g} to {info['stop']:.6g} s"
                )
    else:
        lines.append("  no time series")
    return "\n".join(lines)


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
