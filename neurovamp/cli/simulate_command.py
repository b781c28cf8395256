"""``neurovamp simulate``: write a simulated multi-rat experiment (NWB per rat + ground truth)."""

from __future__ import annotations

import argparse
from typing import Any

from neurovamp.simulate import simulate

__all__ = ["register", "run_simulate"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``simulate`` command to the ``neurovamp`` parser.

    Parameters
    ----------
    subparsers
        The object returned by :meth:`argparse.ArgumentParser.add_subparsers`.

    Returns
    -------
    argparse.ArgumentParser
        The command's parser (its handler is set as ``func``).
    """
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a multi-rat odor-sequence experiment (NWB per rat + ground truth)",
        description=(
            "Simulate rats sampling odors A-E in sequences, with units driven by a latent shared "
            "across rats. Writes OUT/<rat>.nwb (align trials to odor_onset), OUT/ground_truth.npz "
            "and OUT/simulation.json. --small --seed 2024 writes the embedded default data set."
        ),
        epilog="example:\n\n  neurovamp simulate sim --small --seed 2024",
    )
    parser.add_argument("out", metavar="OUT", help="output folder (must not exist unless --overwrite)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--small", action="store_true", help="3 rats with ~60 trials each instead of 5 rats (seconds to make)"
    )
    parser.add_argument(
        "--animals", type=int, metavar="N",
        help="N >= 2 animals (rat001 ...), each with its own unit count and odors; small ones with --small "
             "(about 0.3 s each to write), release-sized otherwise",
    )
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing simulation (only the files it wrote; your own files in OUT stay)",
    )
    parser.set_defaults(func=run_simulate)
    return parser


def run_simulate(args: argparse.Namespace) -> int:
    """Handle ``neurovamp simulate``.

    Parameters
    ----------
    args
        Parsed arguments with ``out``, ``seed``, ``small``, ``animals`` and ``overwrite``.

    Returns
    -------
    int
        0 on success (user errors propagate as :class:`~neurovamp.errors.NeurovampError`).
    """
    path = simulate(args.out, seed=args.seed, small=args.small, overwrite=args.overwrite,
                    animals=args.animals)
    print(f"wrote simulated experiment to {path}")
    return 0
