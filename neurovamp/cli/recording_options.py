"""Options of every command that reads NWB recordings beyond the bins: which table, units and behaviour.

:func:`add_recording_options` adds them to a command's option group and
:func:`recording_settings` turns the parsed values into the keyword arguments of
:func:`neurovamp.io.recordings.load_recordings` (JSON-safe, so that ``run.json`` can record
them).
"""

from __future__ import annotations

import argparse
from typing import Any


from neurovamp.io.settings import RECORDING_DEFAULTS

__all__ = ["add_binning_options", "add_recording_options", "recording_settings", "parse_unit_selection"]


def add_binning_options(group: argparse._ActionsContainer) -> None:
    """Add ``--event``, ``--window`` and ``--bin``, with the defaults of :class:`~neurovamp.io.settings.RecordingSettings`.

    Parameters
    ----------
    group
        A parser or an argument group.
    """
    d = RECORDING_DEFAULTS
    group.add_argument("--event", default=d.event, metavar="COL", help=f"trials column to align bins to (default: {d.event})")
    group.add_argument(
        "--window", nargs=2, type=float, default=d.window, metavar=("START", "STOP"),
        help=f"window around the event in seconds (default: {d.window[0]:g} {d.window[1]:g})",
    )
    group.add_argument("--bin", dest="bin_size", type=float, default=d.bin_size, metavar="SECONDS",
                       help=f"bin width (default: {d.bin_size:g})")


def add_recording_options(group: argparse._ActionsContainer) -> None:
    """Add ``--trials``, ``--event-relative-to``, ``--units``, ``--behavior``, ``--windows`` and ``--drop-uncovered``.

    Parameters
    ----------
    group
        A parser or an argument group (beside ``--event``, ``--window`` and ``--bin``).
    """
    group.add_argument(
        "--trials", metavar="TABLE",
        help="intervals table holding the trials (e.g. encoding_table, epochs; default: trials, "
             "or the whole session with --windows); `neurovamp info FILE` lists the tables",
    )
    group.add_argument(
        "--event-relative-to", metavar="COL",
        help="trials column the --event values count from (e.g. start_time, when pole_in_time is in "
             "seconds from each trial's start)",
    )
    group.add_argument(
        "--units", dest="unit_selection", action="append", metavar="COL=VALUE",
        help="keep units whose column equals the value (comma-separated values: any of them; case-insensitive), "
             "e.g. --units location=CA1 --units quality=good; location may come from the electrodes table",
    )
    group.add_argument(
        "--behavior", action="append", metavar="NAME",
        help="behaviour series (TimeSeries/SpatialSeries or a container such as Position) binned beside the "
             "counts; its trial means become labels <name>_<dim> (e.g. position_x); once per series, e.g. "
             "--behavior Position --behavior CompassDirection",
    )
    group.add_argument(
        "--windows", type=float, metavar="SECONDS",
        help="cut the session (or each interval of --trials) into consecutive windows of SECONDS instead of "
             "aligning to --event (--window is then ignored)",
    )
    group.add_argument(
        "--drop-uncovered", action="store_true",
        help="leave out trials/windows a --behavior series does not cover instead of stopping",
    )


def parse_unit_selection(items: list[str] | None) -> dict[str, list[str]] | None:
    """``COL=VALUE[,VALUE...]`` items of ``--units`` as ``{column: [values]}``.

    Parameters
    ----------
    items
        The values of ``--units`` (or None).

    Returns
    -------
    dict or None
        Values of one column given twice are merged (either matches).

    Raises
    ------
    ConfigError
        For an item without ``=`` or with an empty column or value.
    """
    from neurovamp.data.labels import parse_assignments

    if not items:
        return None
    return parse_assignments(items, message="--units expects COL=VALUE (e.g. location=CA1), got {item!r}")


def recording_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The recording options as keyword arguments of ``load_recordings`` (only those given).

    Parameters
    ----------
    args
        Parsed arguments of a command with :func:`add_recording_options`.

    Returns
    -------
    dict
        Some of ``trials``, ``event_relative_to``, ``units``, ``behavior``, ``windows``,
        ``drop_uncovered``.
    """
    settings: dict[str, Any] = {
        "trials": args.trials,
        "event_relative_to": args.event_relative_to,
        "units": parse_unit_selection(args.unit_selection),
        "behavior": list(args.behavior) if args.behavior else None,
        "windows": args.windows,
        "drop_uncovered": bool(args.drop_uncovered) or None,
    }
    return {key: value for key, value in settings.items() if value is not None}
