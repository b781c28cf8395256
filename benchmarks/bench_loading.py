"""Benchmark the data layer: NWB binning throughput and release conversion time.

Two measurements, printed and appended as one JSON line to
``benchmarks/results/loading.jsonl``:

1. ``read_nwb`` on a large synthetic NWB file (homogeneous Poisson spikes, many units and
   trials): spikes binned per second (all spikes in the file / wall time of ``read_nwb``,
   best of ``--repeats``), and the same for the binning kernel alone.
2. ``convert_release`` on a release-sized stand-in (five rats with the real unit counts,
   ``--release-trials`` trials of 400 bins, Poisson counts at ``--release-rate`` Hz), then
   reading every rat back (checked to reproduce the counts exactly).

Usage::

    python benchmarks/bench_loading.py            # defaults below
    python benchmarks/bench_loading.py --units 50 --duration 600   # quick run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from neurovamp.io.nwb import bin_spike_times, read_nwb, write_nwb
from neurovamp.io.release import BIN_SIZE, N_BINS, RELEASE_UNITS, WINDOW, convert_release

RESULTS = Path(__file__).resolve().parent / "results" / "loading.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of the benchmark."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=200, help="units in the large NWB file")
    p.add_argument("--duration", type=float, default=3600.0, help="session length of the large file, s")
    p.add_argument("--rate", type=float, default=5.0, help="firing rate of every unit in the large file, Hz")
    p.add_argument("--trials", type=int, default=1000, help="trials in the large file")
    p.add_argument("--window", type=float, nargs=2, default=(-0.5, 1.0), help="binned window around trial start, s")
    p.add_argument("--bin", type=float, default=0.01, help="bin width, s")
    p.add_argument("--release-trials", type=int, default=250, help="trials per rat of the release stand-in")
    p.add_argument("--release-rate", type=float, default=2.0, help="firing rate of the release stand-in, Hz")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of read_nwb (best is kept)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS, help="JSON-lines file to append the result to")
    return p.parse_args(argv)


def bench_read(args: argparse.Namespace, workdir: Path, rng: np.random.Generator) -> dict:
    """Write a large synthetic NWB file and time ``read_nwb`` on it."""
    n_per_unit = rng.poisson(args.rate * args.duration, size=args.units)
    spikes = [np.sort(rng.uniform(0.0, args.duration, n)) for n in n_per_unit]
    period = args.duration / args.trials
    start = np.arange(args.trials) * period + max(0.0, -args.window[0])
    trials = pd.DataFrame(
        {"start_time": start, "stop_time": start + period / 2, "odor": np.array(list("ABCDE"))[np.arange(args.trials) % 5]}
    )
    path = workdir / "large.nwb"
    t0 = time.perf_counter()
    write_nwb(path, subject_id="bench", spike_times=spikes, trials=trials, session_description="benchmark")
    write_s = time.perf_counter() - t0

    read_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        da = read_nwb(path, window=tuple(args.window), bin_size=args.bin)
        read_times.append(time.perf_counter() - t0)
    n_spikes = int(n_per_unit.sum())

    times = np.concatenate(spikes)
    ends = np.cumsum(n_per_unit)
    edges = da["event_time"].values[:, None] + da.attrs["window_start"] + args.bin * np.arange(da.sizes["time"] + 1)
    kernel_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        kernel = bin_spike_times(times, ends, edges)
        kernel_times.append(time.perf_counter() - t0)
    kernel_s = min(kernel_times)
    assert np.array_equal(kernel, da.values)
    return {
        "units": args.units,
        "trials": args.trials,
        "bins_per_trial": int(da.sizes["time"]),
        "spikes_in_file": n_spikes,
        "spikes_in_windows": int(da.values.sum()),
        "file_mb": round(path.stat().st_size / 1e6, 2),
        "write_s": round(write_s, 3),
        "read_s": round(min(read_times), 3),
        "spikes_binned_per_s": round(n_spikes / min(read_times)),
        "kernel_s": round(kernel_s, 3),
        "kernel_spikes_per_s": round(n_spikes / kernel_s),
    }


def bench_release(args: argparse.Namespace, workdir: Path, rng: np.random.Generator) -> dict:
    """Convert a release-sized stand-in and read it back."""
    release = workdir / "release"
    truth = {}
    for rat, n_units in RELEASE_UNITS.items():
        n_trials = 245 if rat == "SuperChris" and args.release_trials == 250 else args.release_trials
        counts = rng.poisson(args.release_rate * BIN_SIZE, size=(n_trials, n_units, N_BINS)).astype(np.float64)
        info = np.column_stack(
            [
                rng.integers(0, 2, n_trials),
                rng.integers(0, 2, n_trials),
                np.arange(n_trials) % 5 + 1,
                rng.integers(1, 6, n_trials),
                rng.normal(size=(n_trials, 3)),
            ]
        )
        (release / rat).mkdir(parents=True)
        np.save(release / rat / f"{rat.lower()}_spike_data_binned.npy", counts)
        np.save(release / rat / f"{rat.lower()}_trial_info.npy", info)
        truth[rat] = counts
    t0 = time.perf_counter()
    paths = convert_release(release, workdir / "nwb", progress=False)
    convert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for rat, path in paths.items():
        da = read_nwb(path, event="odor_onset", window=WINDOW, bin_size=BIN_SIZE, allow_silent_units=True)
        assert np.array_equal(da.values, truth[rat]), rat
    read_s = time.perf_counter() - t0
    return {
        "rats": len(paths),
        "trials": {rat: int(c.shape[0]) for rat, c in truth.items()},
        "rate_hz": args.release_rate,
        "spikes": int(sum(c.sum() for c in truth.values())),
        "nwb_mb": round(sum(p.stat().st_size for p in paths.values()) / 1e6, 2),
        "convert_s": round(convert_s, 3),
        "read_back_s": round(read_s, 3),
        "round_trip_exact": True,
    }


def main(argv: list[str] | None = None) -> int:
    """Run both benchmarks, print them and append a JSON line to ``--out``."""
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory(prefix="neurovamp-bench-") as tmp:
        read = bench_read(args, Path(tmp), rng)
        release = bench_release(args, Path(tmp), rng)
    import pynwb

    record = {
        "benchmark": "loading",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "pynwb": pynwb.__version__,
        },
        "read_nwb": read,
        "convert_release": release,
    }
    print(
        f"read_nwb: {read['spikes_in_file']:,} spikes, {read['units']} units x {read['trials']} trials x "
        f"{read['bins_per_trial']} bins in {read['read_s']:.2f} s -> {read['spikes_binned_per_s']:,.0f} spikes/s "
        f"(binning kernel alone {read['kernel_spikes_per_s']:,.0f} spikes/s; file {read['file_mb']} MB)"
    )
    print(
        f"convert_release: {release['rats']} rats, {release['spikes']:,} spikes in {release['convert_s']:.2f} s; "
        f"reading back {release['read_back_s']:.2f} s (exact)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    print(f"appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
