"""The ``neurovamp`` command line.

Each command group lives in its own module exposing ``register(subparsers)``; this
module only assembles them and turns :class:`~neurovamp.errors.NeurovampError` into a
one-line message and a non-zero exit status (no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

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


class _Parser(argparse.ArgumentParser):
    """An argument parser that prints its usage block only for usage errors.

    A bad *value* of a known option (``--model unknown``, ``--epochs x``) is one line naming
    the option and what it accepts; a missing or unknown argument also shows the usage.
    """

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument ") and ("invalid choice" in message or " value: " in message):
            self.exit(2, f"{self.prog}: error: {message}\n")
        super().error(message)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> str:
    """Warnings as ``neurovamp: warning: ...`` lines (no source line) in the command line."""
    return f"neurovamp: warning: {message}\n"


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every available command registered.

    Returns
    -------
    argparse.ArgumentParser
        Parser whose parsed namespace carries the command's handler as ``func``.
    """
    from neurovamp import __version__

    parser = _Parser(
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
    formatwarning = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    try:
        result = args.func(args)
    except NeurovampError as exc:
        print(f"neurovamp {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused (read-only, full, permissions): not a neurovamp bug
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"neurovamp {args.command}: error: {where}{exc.strerror or _one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = getattr(args, "interrupt_hint", None)
        print(f"neurovamp {args.command}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatwarning
    return int(result or 0)


def _one_line(exc: BaseException) -> str:
    """An error message on one line (line breaks of a library's text joined)."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
