"""The ``neurovamp`` command line.

Each command group lives in its own module exposing ``register(subparsers)``; this
module only assembles them and turns :class:`~neurovamp.errors.NeurovampError` into a
one-line message and a non-zero exit status (no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from neurovamp.errors import NeurovampError

__all__ = ["main", "build_parser"]

# Command modules, in the order their commands appear in ``neurovamp --help``.
_COMMAND_MODULES = (
    "neurovamp.cli.simulate_command",
    "neurovamp.cli.data_commands",
    "neurovamp.cli.fit_commands",
    "neurovamp.cli.analysis_commands",
    "neurovamp.cli.paper_commands",
    "neurovamp.cli.demo_command",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every available command registered.

    Returns
    -------
    argparse.ArgumentParser
        Parser whose parsed namespace carries the command's handler as ``func``.
    """
    from neurovamp import __version__

    parser = argparse.ArgumentParser(
        prog="neurovamp",
        description="Multi-animal neural population models from NWB recordings.",
        epilog="example: neurovamp simulate sim --small, then neurovamp fit sim/rat*.nwb --out runs/mmvm "
               "--event odor_onset (see `neurovamp COMMAND --help`)",
    )
    parser.add_argument("--version", action="version", version=f"neurovamp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command group not built yet
            if exc.name == name:
                continue
            raise
        module.register(sub)
    for command in sub.choices.values():  # keep the indented example lines of every epilog as written
        command.formatter_class = _ExampleFormatter
    return parser


class _ExampleFormatter(argparse.HelpFormatter):
    """Help formatter that wraps prose but prints indented lines (examples) verbatim."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = text.split("\n\n")
        return "\n\n".join(
            p if p.startswith("  ") else super(_ExampleFormatter, self)._fill_text(p, width, indent)
            for p in paragraphs
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``neurovamp`` command line.

    Parameters
    ----------
    argv
        Arguments without the program name; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        Exit status: 0 on success, 2 on a user error (message printed to stderr),
        130 when interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except NeurovampError as exc:
        print(f"neurovamp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = getattr(args, "interrupt_hint", None)
        print(f"neurovamp {args.command}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
