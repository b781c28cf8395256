"""Scaling benchmark: training-step throughput and memory against the number of animals.

What is measured (one run, on one device, variants interleaved in rounds so that load from
other jobs hits them alike):

1. **Animals sweep** at fixed units per animal (``--units``, 10-bin sub-windows): one
   training step (``MultiAnimalVAE.loss`` forward, backward, fused Adam) on TensorBatcher
   batches of ``--batch`` samples, for the per-animal loop (``set_step("loop")``, the
   reference) and the batched step (``set_step("batched")``), for M in ``--animals``;
   for two network sizes: neurovamp's default (hidden 128, latent 8) and a small one
   (hidden 32, latent 4) whose per-animal work is small enough for launches to matter.
2. **Units sweep** at fixed M (``--units-animals``) for ``--units-list``.
3. **Mixed widths**: M animals with unit counts drawn from 8-32 (as
   ``SimulationConfig.many`` does), where the batched step pads inside width groups.
4. **FLOP bound**: the matmul rate measured on exactly the step's GEMMs with
   ``benchmarks/bench_training.py``'s :class:`GemmSet` (its FLOP-counting rule,
   ``flop_counts``), interleaved with the steps; ``bound = rate / flops_per_sample``, and
   *cost per FLOP* = step time / real (unpadded) FLOPs of the step.
5. **Memory per step** (``--memory``): parameters, gradients and Adam moments plus every
   tensor autograd saves for the backward pass, counted with
   ``torch.autograd.graph.saved_tensors_hooks`` (:func:`step_memory`; the same on every
   device, no allocator noise).
6. **DDP world size 1 vs 2** (``--ddp``): samples/s of ``Trainer.fit`` epochs inside the
   processes of :func:`neurovamp.models.distributed.launch` (start-up not counted), on the
   same data and global batch.

Results are printed, appended as one JSON line to ``benchmarks/results/scaling.jsonl`` and
written as the table ``benchmarks/results/scaling.md`` (generated from the numbers).

Usage::

    python benchmarks/bench_scaling.py                  # CPU, the defaults below
    python benchmarks/bench_scaling.py --device cuda    # on a GPU machine
    python benchmarks/bench_scaling.py --quick          # a smoke run (small sweep)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import GemmSet, _sync, flop_counts, linear_layers  # noqa: E402

from neurovamp.data.dataset import make_dataset  # noqa: E402
from neurovamp.data.modality import make_modality  # noqa: E402
from neurovamp.data.pairing import PairedData, pair_trials  # noqa: E402
from neurovamp.data.tensors import TensorBatcher  # noqa: E402
from neurovamp.models.config import ModelConfig  # noqa: E402
from neurovamp.models.module import MultiAnimalVAE  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NETWORKS = {"default": {"hidden": (128,), "latent_dim": 8}, "small": {"hidden": (32,), "latent_dim": 4}}
ODORS = ("A", "B", "C", "D")
WINDOW = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--animals", type=int, nargs="+", default=[2, 5, 10, 20, 50, 100, 200])
    p.add_argument("--units", type=int, default=20, help="units per animal in the animals sweep")
    p.add_argument("--units-list", type=int, nargs="+", default=[5, 10, 20, 40, 80])
    p.add_argument("--units-animals", type=int, default=20, help="animals in the units sweep")
    p.add_argument("--mixed-animals", type=int, nargs="+", default=[10, 50])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--memory", action="store_true", help="also count the memory of a step")
    p.add_argument("--ddp", action="store_true", help="also measure DDP world size 1 vs 2")
    p.add_argument("--ddp-animals", type=int, default=10)
    p.add_argument("--ddp-epochs", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="a small sweep (smoke run)")
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--render", action="store_true", help="only rewrite scaling.md from the last line of scaling.jsonl")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- data
def make_paired(units: list[int], n_trials: int = 24, n_bins: int = 20, seed: int = 0) -> PairedData:
    """Odor-tuned Poisson counts for animals with the given unit counts, all in the train split."""
    rng = np.random.default_rng(seed)
    odors = np.resize(np.array(ODORS), n_trials)
    mods = []
    for m, n_units in enumerate(units):
        base = rng.uniform(0.01, 0.08, size=(1, n_units, 1))
        gain = np.exp(rng.normal(0.0, 0.5, size=(len(ODORS), n_units, 1)))
        rates = base * gain[np.searchsorted(ODORS, odors)] * np.ones((1, 1, n_bins))
        mods.append(make_modality(rng.poisson(rates).astype(np.float64), animal=f"a{m:03d}", bin_size=0.01, window_start=0.0,
                                  trial_labels={"odor": odors}))
    return pair_trials(make_dataset(mods), by="odor", window=WINDOW, stride=1, split=(1.0, 0.0, 0.0), seed=seed)


class Step:
    """One training step of a VAE on fixed batches (forward, backward, fused Adam)."""

    def __init__(self, paired: PairedData, network: str, step: str, batch: int, device: torch.device) -> None:
        torch.manual_seed(0)
        self.vae = MultiAnimalVAE(paired.input_dims, ModelConfig(**NETWORKS[network])).to(device).set_step(step)
        self.optimizer = torch.optim.Adam(self.vae.parameters(), lr=1e-3, fused=True)
        batcher = TensorBatcher(paired, "train", device=device)
        self.batches = list(batcher.batches(batch, shuffle=True, generator=torch.Generator().manual_seed(0),
                                            drop_last=True))[:4]
        self.i = 0
        self.device = device

    def run(self, n: int) -> None:
        for _ in range(n):
            xs, mask = self.batches[self.i % len(self.batches)]
            self.i += 1
            self.optimizer.zero_grad(set_to_none=True)
            self.vae.loss(xs, mask)["loss"].backward()
            self.optimizer.step()


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def measure(units: list[int], network: str, args: argparse.Namespace, device: torch.device) -> dict:
    """Loop vs batched vs the GEMM bound for one configuration, interleaved."""
    paired = make_paired(units)
    steps = {name: Step(paired, network, name, args.batch, device) for name in ("loop", "batched")}
    layers = linear_layers(steps["loop"].vae)
    flops = flop_counts(layers)["train_flops_per_sample"]
    gemm = GemmSet(layers, args.batch, device, seed=0)
    for s in steps.values():
        s.run(1)  # warm-up
    gemm.run()
    times: dict[str, list[float]] = {"loop": [], "batched": [], "gemm": []}
    for _ in range(args.rounds):
        for name, s in steps.items():
            times[name].append(_timed(lambda: s.run(args.steps), device) / args.steps)
        times["gemm"].append(min(gemm.time(2)))
    gemm_s = statistics.median(times["gemm"])
    step_flops = flops * args.batch
    row = {
        "network": network, "animals": len(units), "units_total": int(sum(units)),
        "units_min": int(min(units)), "units_max": int(max(units)),
        "groups": len(steps["batched"].vae._batched.groups),
        "flops_per_sample": flops, "gemm_s": gemm_s, "gemm_gflops": step_flops / gemm_s / 1e9,
        "bound_samples_per_s": args.batch / gemm_s,
    }
    for name in ("loop", "batched"):
        t = statistics.median(times[name])
        row[f"{name}_s"] = t
        row[f"{name}_samples_per_s"] = args.batch / t
        row[f"{name}_ns_per_flop"] = t / step_flops * 1e9
        row[f"{name}_fraction_of_bound"] = gemm_s / t
    row["speedup"] = row["loop_s"] / row["batched_s"]
    return row


# ----------------------------------------------------------------------------- memory
def step_memory(units: list[int], network: str, step: str, args: argparse.Namespace, device: torch.device) -> int:
    """Bytes a training step holds at its peak, counted (not sampled).

    Parameters, gradients and Adam's two moments (4 x parameter bytes) plus every tensor
    autograd saves for the backward pass (``torch.autograd.graph.saved_tensors_hooks``;
    each storage counted once: activations, the batched step's stacked weights, masks).
    On CUDA ``torch.cuda.max_memory_allocated`` over a step is measured as well.
    """
    s = Step(make_paired(units), network, step, args.batch, device)
    params = sum(p.numel() * p.element_size() for p in s.vae.parameters())
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    xs, mask = s.batches[0]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = s.vae.loss(xs, mask)["loss"]
    loss.backward()
    return 4 * params + sum(storages.values())


# ----------------------------------------------------------------------------- DDP
def _ddp_rank(paired: PairedData, batch: int, epochs: int, threads: int) -> float:
    """Inside one process of a launch: samples/s of Trainer.fit epochs (rank 0's clock)."""
    from torch import distributed as dist

    from neurovamp.models.training import Trainer, TrainingConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    vae = MultiAnimalVAE(paired.input_dims, ModelConfig(**NETWORKS["default"]))
    trainer = Trainer(vae, paired, TrainingConfig(epochs=1, batch_size=batch, patience=None, device="cpu"),
                      progress=False)
    trainer.fit()  # warm-up epoch
    if dist.is_initialized():
        dist.barrier()
    t0 = time.perf_counter()
    trainer.config.epochs += epochs
    trainer.fit()
    elapsed = time.perf_counter() - t0
    return paired.n_samples("train") * epochs / elapsed


def ddp(args: argparse.Namespace) -> list[dict]:
    from neurovamp.models.distributed import launch

    paired = make_paired([args.units] * args.ddp_animals, n_trials=48)
    rows = []
    for world in (1, 2):
        rate = launch(_ddp_rank, world, paired, args.batch, args.ddp_epochs, args.threads)
        rows.append({"world_size": world, "samples_per_s": rate, "threads_per_process": args.threads})
    return rows


# ----------------------------------------------------------------------------- report
def _fmt_bytes(n: int | None) -> str:
    return "" if n is None else f"{n / 2**20:.1f}"


def table(rows: list[dict], title: str) -> list[str]:
    out = [f"### {title}", "",
           "| network | M | units/animal | groups | weights MiB | GEMM bound (samples/s) | loop samples/s | batched samples/s "
           "| batched / loop | loop GFLOP/s | batched GFLOP/s | batched cost/FLOP vs M=5 | loop frac. of bound "
           "| batched frac. of bound | step memory MiB loop | step memory MiB batched |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        units = str(r["units_min"]) if r["units_min"] == r["units_max"] else f"{r['units_min']}-{r['units_max']}"
        rel = r.get("batched_cost_vs_5")
        out.append(
            f"| {r['network']} | {r['animals']} | {units} | {r['groups']} "
            f"| {r['flops_per_sample'] / 6 * 4 / 2**20:.1f} | {r['bound_samples_per_s']:.0f} "
            f"| {r['loop_samples_per_s']:.0f} | {r['batched_samples_per_s']:.0f} | {r['speedup']:.2f} "
            f"| {1 / r['loop_ns_per_flop']:.2f} | {1 / r['batched_ns_per_flop']:.2f} "
            f"| {'' if rel is None else f'{rel:.2f}'} | {r['loop_fraction_of_bound']:.2f} "
            f"| {r['batched_fraction_of_bound']:.2f} | {_fmt_bytes(r.get('loop_peak_bytes'))} "
            f"| {_fmt_bytes(r.get('batched_peak_bytes'))} |"
        )
    return out + [""]


def verdicts(rows: list[dict]) -> list[str]:
    """The issue's targets, checked on the animals sweep (text generated from the numbers)."""
    out = ["### Targets", ""]
    for network in NETWORKS:
        sweep = [r for r in rows if r["network"] == network]
        ref = next((r for r in sweep if r["animals"] == 5), None)
        if ref is None:
            continue
        span = [r for r in sweep if 5 <= r["animals"] <= 100]
        worst = max(span, key=lambda r: abs(r["batched_ns_per_flop"] / ref["batched_ns_per_flop"] - 1))
        dev = worst["batched_ns_per_flop"] / ref["batched_ns_per_flop"] - 1
        met = "met" if abs(dev) <= 0.30 else "missed"
        out.append(f"- {network} network: batched cost per FLOP from M=5 to 100 varies by at most {dev:+.1%} "
                   f"(at M={worst['animals']}; target within 30 %: {met}).")
        slow = [r for r in sweep if r["animals"] >= 10 and r["speedup"] <= 1.0]
        if slow:
            worst_slow = min(slow, key=lambda r: r["speedup"])
            out.append(f"- {network} network: batched faster than the loop at every M >= 10: missed at "
                       f"M = {', '.join(str(r['animals']) for r in slow)} (worst: batched/loop = "
                       f"{worst_slow['speedup']:.2f} at M={worst_slow['animals']}).")
        else:
            out.append(f"- {network} network: batched faster than the loop at every M >= 10: met "
                       f"(smallest speed-up {min(r['speedup'] for r in sweep if r['animals'] >= 10):.2f}).")
    return out + [""]


def write_markdown(result: dict, path: Path) -> None:
    cmd = result["command"]
    lines = [
        "# Scaling: training-step throughput against the number of animals",
        "",
        f"Generated by `{cmd}` on {result['date']} ({result['device']}, {result['threads']} torch thread(s), "
        f"{result['cpu']}; torch {result['torch']}). Raw numbers: `scaling.jsonl` (one line per run).",
        "",
        "**The machine was shared** with other developers' jobs during the run (2 cores for 7 people): "
        "absolute rates are noisy; compare the variants within a row (they were measured interleaved, "
        "in the same rounds), not across runs.",
        "",
        "One step = `MultiAnimalVAE.loss` forward + backward + fused Adam on a TensorBatcher batch of "
        f"{result['batch']} samples (Poisson likelihood, 10-bin sub-windows: an animal with u units has "
        "10u inputs). *GEMM bound*: the step's matmuls alone (bench_training's GemmSet and FLOP rule: "
        "3 x 2 x sum(in x out) per sample, real widths, no padding), run interleaved with the steps. "
        "*GFLOP/s*: counted FLOPs per second of the whole step; *cost/FLOP vs M=5*: the batched step's "
        "time per FLOP relative to its value at 5 animals (below 1: cheaper per FLOP). *weights MiB*: the "
        "linear layers' float32 weights. *Step memory*: parameters, gradients and Adam moments plus the "
        "tensors autograd saves for the backward pass (counted, see `step_memory`).",
        "",
    ]
    lines += table(result["animals_sweep"], f"Against the number of animals ({result['units']} units per animal)")
    lines += verdicts(result["animals_sweep"])
    lines += table(result["units_sweep"], f"Against units per animal ({result['units_animals']} animals)")
    if result.get("mixed"):
        lines += table(result["mixed"], "Mixed widths (8-32 units per animal, as SimulationConfig.many)")
    if result.get("ddp"):
        lines += ["### DDP world size (CPU, gloo)", "", "| world size | samples/s | threads per process |",
                  "|---:|---:|---:|"]
        lines += [f"| {r['world_size']} | {r['samples_per_s']:.0f} | {r['threads_per_process']} |"
                  for r in result["ddp"]]
        lines.append("")
    lines += ["### Reading", "", *result.get("notes", [])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        lines = (RESULTS / "scaling.jsonl").read_text(encoding="utf-8").strip().splitlines()
        result = json.loads(lines[-1])
        result["notes"] = notes(result)
        cuda = not result["device"].startswith("cpu")
        write_markdown(result, RESULTS / ("scaling_cuda.md" if cuda else "scaling.md"))
        return 0
    if args.quick:
        args.animals, args.units_list, args.mixed_animals, args.rounds, args.steps = [2, 5, 10], [5, 20], [10], 2, 2
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA not available; nothing measured")
        return 0
    result: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/bench_scaling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": args.threads, "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
        "batch": args.batch, "units": args.units, "units_animals": args.units_animals,
        "animals_sweep": [], "units_sweep": [], "mixed": [],
    }
    for network in NETWORKS:
        for m in args.animals:
            row = measure([args.units] * m, network, args, device)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
            result["animals_sweep"].append(row)
        ref = next((r for r in result["animals_sweep"] if r["network"] == network and r["animals"] == 5), None)
        for r in result["animals_sweep"]:
            if r["network"] == network and ref is not None:
                r["batched_cost_vs_5"] = r["batched_ns_per_flop"] / ref["batched_ns_per_flop"]
    for u in args.units_list:
        row = measure([u] * args.units_animals, "default", args, device)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        result["units_sweep"].append(row)
    rng = np.random.default_rng(0)
    for m in args.mixed_animals:
        units = [int(u) for u in rng.integers(8, 33, size=m)]
        row = measure(units, "default", args, device)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        result["mixed"].append(row)
    if args.memory:
        for r in result["animals_sweep"]:
            if r["network"] != "default":
                continue
            units = [args.units] * r["animals"]
            for step in ("loop", "batched"):
                r[f"{step}_peak_bytes"] = step_memory(units, r["network"], step, args, device)
            print("memory", r["network"], r["animals"], r["loop_peak_bytes"], r["batched_peak_bytes"], flush=True)
    if args.ddp and device.type == "cpu":
        result["ddp"] = ddp(args)
        print(json.dumps(result["ddp"]), flush=True)
    result["notes"] = notes(result)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        with open(RESULTS / "scaling.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(result) + "\n")
        suffix = "" if device.type == "cpu" else "_cuda"
        write_markdown(result, RESULTS / f"scaling{suffix}.md")
    print("\n".join(notes(result)))
    return 0


def notes(result: dict) -> list[str]:
    """Where the curves bend, from the numbers."""
    out = []
    for network in NETWORKS:
        sweep = sorted((r for r in result["animals_sweep"] if r["network"] == network), key=lambda r: r["animals"])
        if len(sweep) < 2:
            continue
        drops = [(b["gemm_gflops"] / a["gemm_gflops"], a, b) for a, b in zip(sweep, sweep[1:])]
        ratio, a, b = min(drops, key=lambda d: d[0])
        mib = lambda r: r["flops_per_sample"] / 6 * 4 / 2**20  # noqa: E731
        out.append(f"- {network} network: the GEMM rate bends between M={a['animals']} and M={b['animals']} "
                   f"({a['gemm_gflops']:.1f} -> {b['gemm_gflops']:.1f} GFLOP/s, x{ratio:.2f}), where the weights "
                   f"grow from {mib(a):.1f} to {mib(b):.1f} MiB.")
        per_animal = [(r["animals"], r["loop_s"] / r["animals"] * 1e3, r["batched_s"] / r["animals"] * 1e3)
                      for r in sweep]
        text = ", ".join(f"M={m}: {lo:.2f}/{ba:.2f}" for m, lo, ba in per_animal)
        out.append(f"- {network} network, ms per animal per step (loop/batched): {text}.")
        frac = [(r["animals"], r["loop_fraction_of_bound"], r["batched_fraction_of_bound"]) for r in sweep]
        best = max(frac, key=lambda f: f[2])
        out.append(f"  The batched step is closest to the GEMM bound at M={best[0]} ({best[2]:.2f} of it; loop "
                   f"{best[1]:.2f}).")
    if result.get("ddp"):
        by = {}
        for r in result["ddp"]:
            by.setdefault(r["world_size"], []).append(r["samples_per_s"])
        if 1 in by and 2 in by:
            ratio = statistics.median(by[2]) / statistics.median(by[1])
            out.append(f"- DDP on CPU: world size 2 reaches {ratio:.2f}x the samples/s of world size 1 "
                       f"(medians of {len(by[1])} and {len(by[2])} launches).")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
