"""Adapters that fit the peers of neurovamp (CEBRA, MultiVae) on neurovamp's paired data.

Used by ``benchmarks/bench_peers.py`` only; nothing in the ``neurovamp`` package imports
this folder. Every adapter exposes the same small interface (see :mod:`.base`): ``fit``,
``latents`` (a ``(trial, time, latent)`` DataArray carrying the trial labels) and, for
methods that can generate, ``generate`` (expected counts of a target animal from a
source animal's trials).
"""
