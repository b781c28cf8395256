"""Benchmark the training engine: samples/s of the paper's MMVM preset against the FLOP bound.

What is measured (all in one run, interleaved, on one device):

1. **Real path** — :class:`neurovamp.models.training.Trainer` fitting a
   :class:`~neurovamp.models.module.MultiAnimalVAE` with ``ModelConfig.paper("mmvm")`` on a
   :class:`~neurovamp.data.pairing.PairedData` of five animals with the release's unit
   counts (92/79/104/49/46) and 10-bin sub-windows (inputs 920/790/1040/490/460, latent 2)
   at batch 128: TensorBatcher gathers, forward, backward, Adam step, and the engine's
   per-batch bookkeeping (loss checks, running sums, the per-epoch parameter check), i.e. exactly
   what ``Trainer.fit`` runs. The validation split is empty so only training is timed.
   Measured twice: with the engine's defaults (eager PyTorch) and with
   ``TrainingConfig(compile=True)`` (the training loss through ``torch.compile``; its
   one-off compilation is timed separately and not counted in samples/s).
2. **FLOP bound** — the dense matmul rate of this machine measured with ``torch.mm`` on
   exactly the GEMMs one training step needs (every ``nn.Linear`` of the model at batch
   B: forward ``X @ W.T``, input gradient ``dY @ W`` and weight gradient ``dY.T @ X``,
   fp32, in the layouts autograd uses), turned into samples/s:
   ``bound = rate / flops_per_sample``.
   Counting rule: a linear layer ``in -> out`` costs ``2 * in * out`` FLOPs per sample
   forward (one multiply-add = 2 FLOPs) and twice that backward (input and weight
   gradients), so a training step costs ``3 * 2 * sum(in * out)`` FLOPs per sample.
   Biases, activations, the likelihood, the KL terms and the optimiser are not counted
   (they are O(width), not O(width^2)). The first encoder layer's input gradient is not
   actually needed (the data does not require grad); the "exact" count without it is
   reported too.
3. **Per-animal loop** — a plain reference implementation of the same MMVM loss written
   here: a Python loop over animals (encode, ``torch.distributions.Normal`` rsample,
   decode, Normal log-likelihood) and over all pairs of animals (``kl_divergence`` one
   pair at a time), trained with a textbook loop (``zero_grad``/``backward``/``step``,
   default ``torch.optim.Adam``) on the same TensorBatcher batches. Its loss is checked
   to equal ``MultiAnimalVAE.loss`` on a batch with the same noise.

Each throughput is the median (and best) over ``--repeats`` timed blocks of
``--epochs-per-repeat`` epochs after a warm-up epoch; the three measurements are
interleaved so that load from other processes hits them alike. Optional
``--profile`` runs :mod:`torch.profiler` over some real-path steps and reports where the
time goes. Results are printed and appended as one JSON line to
``benchmarks/results/training.jsonl``.

Usage::

    python benchmarks/bench_training.py                    # CPU, defaults below
    python benchmarks/bench_training.py --profile          # plus an operator profile
    python benchmarks/bench_training.py --device cuda      # skipped when no GPU
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

from neurovamp.data.dataset import make_dataset
from neurovamp.data.modality import make_modality
from neurovamp.data.pairing import PairedData, pair_trials
from neurovamp.data.tensors import TensorBatcher
from neurovamp.models.config import ModelConfig
from neurovamp.models.module import MultiAnimalVAE
from neurovamp.models.training import Trainer, TrainingConfig

RESULTS = Path(__file__).resolve().parent / "results" / "training.jsonl"
RELEASE_UNITS = {"Barat": 92, "Buchanan": 79, "Mitt": 104, "Stella": 49, "SuperChris": 46}
ODORS = ("A", "B", "C", "D")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of the benchmark."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="'cpu' or 'cuda[:N]' (cuda is skipped when unavailable)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--trials", type=int, default=160, help="trials per animal (odors A-D, equal counts)")
    p.add_argument("--bins", type=int, default=25, help="bins per trial (the paper's 250 ms window)")
    p.add_argument("--window", type=int, default=10, help="sub-window length in bins")
    p.add_argument("--repeats", type=int, default=9, help="timed blocks per measurement")
    p.add_argument("--epochs-per-repeat", type=int, default=1, help="epochs per timed block")
    p.add_argument("--gemm-repeats", type=int, default=5, help="GEMM-set timings per block")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--no-compiled", action="store_true",
                   help="skip the compile=True real path (it needs a C++ compiler on CPU)")
    p.add_argument("--profile", action="store_true", help="profile some real-path steps with torch.profiler")
    p.add_argument("--old-engine", action="store_true",
                   help="patch the engine's pre-optimisation behaviour back in (see use_old_engine) "
                        "for before/after runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--note", default="", help="free text stored with the result")
    p.add_argument("--out", type=Path, default=RESULTS, help="JSON-lines file to append the result to")
    p.add_argument("--no-save", action="store_true", help="do not append to --out")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- data
def make_paired(n_trials: int, n_bins: int, window: int, seed: int) -> PairedData:
    """Release-shaped Poisson counts (odor-tuned units), paired by odor, all in the train split."""
    rng = np.random.default_rng(seed)
    odors = np.resize(np.array(ODORS), n_trials)
    mods = []
    for animal, n_units in RELEASE_UNITS.items():
        base = rng.uniform(0.01, 0.08, size=(1, n_units, 1))  # 1-8 Hz in 10 ms bins
        gain = np.exp(rng.normal(0.0, 0.5, size=(len(ODORS), n_units, 1)))
        rates = base * gain[np.searchsorted(ODORS, odors)] * np.ones((1, 1, n_bins))
        mods.append(
            make_modality(
                rng.poisson(rates).astype(np.float64), animal=animal, bin_size=0.01, window_start=0.25,
                trial_labels={"odor": odors},
            )
        )
    return pair_trials(make_dataset(mods), by="odor", window=window, stride=1, split=(1.0, 0.0, 0.0), seed=seed)


# ----------------------------------------------------------------------------- FLOPs
def linear_layers(vae: MultiAnimalVAE) -> list[tuple[int, int, bool]]:
    """``(in, out, is_first_encoder_layer)`` of every nn.Linear in the model."""
    layers = []
    for nets, encoder in ((vae.encoders, True), (vae.decoders, False)):
        for net in nets:
            first = True
            for module in net.modules():
                if isinstance(module, nn.Linear):
                    layers.append((module.in_features, module.out_features, encoder and first))
                    first = False
    return layers


def flop_counts(layers: list[tuple[int, int, bool]]) -> dict[str, float]:
    """FLOPs per sample of forward and of a training step (see the module docstring)."""
    macs = sum(i * o for i, o, _ in layers)
    first = sum(i * o for i, o, f in layers if f)
    return {
        "forward_flops_per_sample": 2.0 * macs,
        "train_flops_per_sample": 3 * 2.0 * macs,
        "train_flops_per_sample_exact": 3 * 2.0 * macs - 2.0 * first,
        "parameters_in_linears": float(macs),
    }


class GemmSet:
    """The GEMMs of one training step at batch B, run with torch.mm (fp32)."""

    def __init__(self, layers: list[tuple[int, int, bool]], batch: int, device: torch.device, seed: int) -> None:
        g = torch.Generator(device="cpu").manual_seed(seed)
        self.ops = []
        self.flops = 0.0
        for n_in, n_out, _ in layers:
            x = torch.randn(batch, n_in, generator=g).to(device)
            w = torch.randn(n_out, n_in, generator=g).to(device)
            dy = torch.randn(batch, n_out, generator=g).to(device)
            self.ops.append((x, w, dy))
            self.flops += 3 * 2.0 * batch * n_in * n_out
        self.device = device

    def run(self) -> None:
        for x, w, dy in self.ops:
            torch.mm(x, w.t())  # forward (nn.Linear: x @ W^T)
            torch.mm(dy, w)  # input gradient
            torch.mm(dy.t(), x)  # weight gradient

    def time(self, repeats: int) -> list[float]:
        out = []
        for _ in range(repeats):
            _sync(self.device)
            t0 = time.perf_counter()
            self.run()
            _sync(self.device)
            out.append(time.perf_counter() - t0)
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- reference
def reference_loss(vae: MultiAnimalVAE, xs: list[torch.Tensor], mask: torch.Tensor,
                   eps: torch.Tensor | None = None) -> torch.Tensor:
    """The MMVM negative ELBO written plainly: loops over animals and pairs, torch.distributions.

    Same objective as ``MultiAnimalVAE.loss`` for the Gaussian likelihood:
    rec = -sum_m log N(x_m; dec_m(z_m), s^2) with z_m ~ q_m, and
    reg = sum_m [(1 - a) / |O| sum_n KL(q_m || q_n) + a KL(q_m || N(0, I))] over observed m, n.
    """
    cfg = vae.config
    assert cfg.model == "mmvm" and cfg.likelihood == "gaussian"
    obs = mask.T.to(xs[0].dtype)
    n_obs = obs.sum(0).clamp_min(1.0)
    posteriors = []
    rec = torch.zeros_like(n_obs)
    for m, x in enumerate(xs):
        mu, logvar = vae.encoders[m](x)
        q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
        posteriors.append(q)
        z = q.rsample() if eps is None else mu + torch.exp(0.5 * logvar) * eps[m]
        likelihood = Independent(Normal(vae.decoders[m](z), cfg.gaussian_scale), 1)
        rec = rec - likelihood.log_prob(x) * obs[m]
    reg = torch.zeros_like(n_obs)
    for m, q_m in enumerate(posteriors):
        to_mixture = torch.zeros_like(n_obs)
        for n, q_n in enumerate(posteriors):
            to_mixture = to_mixture + kl_divergence(q_m, q_n) * obs[n]
        reg_m = (1.0 - cfg.alpha) * to_mixture / n_obs
        if cfg.alpha > 0:
            prior = Independent(Normal(torch.zeros_like(q_m.mean), torch.ones_like(q_m.mean)), 1)
            reg_m = reg_m + cfg.alpha * kl_divergence(q_m, prior)
        reg = reg + reg_m * obs[m]
    return (rec + cfg.beta * reg).mean()


class ReferenceLoop:
    """Textbook training loop of :func:`reference_loss` on the same batches."""

    def __init__(self, vae: MultiAnimalVAE, paired: PairedData, batch_size: int, device: torch.device,
                 seed: int) -> None:
        self.vae = vae.to(device)
        self.batcher = TensorBatcher(paired, "train", device=device)
        self.batch_size = batch_size
        self.optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
        self.seed = seed
        self.epoch = 0

    def run_epoch(self) -> None:
        self.epoch += 1
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.vae.train()
        for xs, mask in self.batcher.batches(self.batch_size, shuffle=True, generator=generator):
            self.optimizer.zero_grad()
            loss = reference_loss(self.vae, xs, mask)
            loss.backward()
            self.optimizer.step()


def check_reference(vae: MultiAnimalVAE, paired: PairedData, device: torch.device) -> float:
    """Relative difference of the reference and the module loss on one batch, same noise."""
    xs, mask = next(TensorBatcher(paired, "train", device=device).batches(64, shuffle=False))
    eps = torch.randn(vae.n_animals, 64, vae.config.latent_dim, device=device)
    with torch.no_grad():
        ours = float(vae.loss(xs, mask, eps=eps)["loss"])
        ref = float(reference_loss(vae, xs, mask, eps=eps))
    return abs(ours - ref) / max(abs(ref), 1e-12)


# ----------------------------------------------------------------------------- real path
class RealPath:
    """``Trainer.fit`` extended by a few epochs per timed block (no validation, no checkpoints).

    Training settings are the engine's defaults except ``patience=None`` (no early stop) and
    ``compile`` as asked:
    with ``restore_best=True`` the best weights are copied at every improving epoch, as
    in a real fit.
    """

    def __init__(self, vae: MultiAnimalVAE, paired: PairedData, batch_size: int, device: torch.device,
                 seed: int, compile: bool = False) -> None:
        config = TrainingConfig(
            epochs=1, batch_size=batch_size, patience=None, seed=seed, device=str(device), compile=compile,
        )
        self.trainer = Trainer(vae, paired, config, progress=False)

    def run_epochs(self, n: int) -> None:
        self.trainer.config.epochs += n
        self.trainer.fit()


def timed(fn: Callable[[], None], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def optimizer_step_ms(vae: MultiAnimalVAE, device: torch.device, repeats: int = 5) -> dict[str, float]:
    """Median time of one Adam step on this model's parameters, per implementation."""
    model = copy.deepcopy(vae).to(device)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    out = {}
    variants = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    for name, kwargs in variants.items():
        try:
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, **kwargs)
            opt.step()
        except (RuntimeError, TypeError, ValueError):
            continue
        times = []
        for _ in range(repeats):
            times.append(timed(opt.step, device))
        out[name] = round(1e3 * statistics.median(times), 2)
    return out


# ----------------------------------------------------------------------------- phases
class _Clock:
    """Accumulates wall time per phase name (device-synchronised)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.total: dict[str, float] = {}

    def wrap(self, name: str, fn: Callable) -> Callable:
        def timed_call(*a, **kw):  # noqa: ANN002, ANN003, ANN202
            _sync(self.device)
            t0 = time.perf_counter()
            out = fn(*a, **kw)
            _sync(self.device)
            self.total[name] = self.total.get(name, 0.0) + time.perf_counter() - t0
            return out

        return timed_call

    def wrap_iterator(self, name: str, iterator):  # noqa: ANN001, ANN202
        nxt = self.wrap(name, lambda: next(iterator))
        while True:
            try:
                yield nxt()
            except StopIteration:
                return


def phase_breakdown(vae: MultiAnimalVAE, paired: PairedData, batch_size: int, device: torch.device,
                    epochs: int) -> dict:
    """Where one real-path step's time goes: the Trainer's own epoch with its calls timed.

    ``Trainer.fit`` runs unchanged; the batcher, ``module.loss``, ``Tensor.backward``, the
    gradient-norm check, ``optimizer.zero_grad``/``step`` and the loss-term transfer are
    wrapped with timers. The rest of the epoch is the per-batch bookkeeping and the
    end-of-epoch work (best-state copy, history).
    """
    import neurovamp.models.training as training_mod

    real = RealPath(vae, paired, batch_size, device, seed=1)
    real.run_epochs(1)  # warm-up
    trainer = real.trainer
    clock = _Clock(device)
    batches = trainer._train.batches
    # (object, attribute, replacement, restore): instance attributes shadowing a class method
    # are deleted afterwards; module/class attributes get their original back.
    patches = [
        (trainer._train, "batches",
         lambda *a, **kw: clock.wrap_iterator("data (TensorBatcher gather)", batches(*a, **kw)), None),
        (trainer.module, "loss", clock.wrap("forward (module.loss)", trainer.module.loss), None),
        (trainer.optimizer, "step", clock.wrap("Adam step", trainer.optimizer.step), None),
        (trainer.optimizer, "zero_grad", clock.wrap("zero_grad", trainer.optimizer.zero_grad), None),
        (torch.Tensor, "backward", clock.wrap("backward", torch.Tensor.backward), torch.Tensor.backward),
    ]
    # Engine internals (skipped if the engine is refactored and they no longer exist).
    for attr, name in (("_parameters_finite", "parameter check (per epoch)"),
                       ("_clip_gradients", "gradient clipping"), ("_term_values", "loss terms to host")):
        if hasattr(training_mod, attr):
            original = getattr(training_mod, attr)
            patches.append((training_mod, attr, clock.wrap(name, original), original))
    try:
        for obj, attr, replacement, _ in patches:
            setattr(obj, attr, replacement)
        total = timed(lambda: real.run_epochs(epochs), device)
    finally:
        for obj, attr, _, original in patches:
            if original is None:
                delattr(obj, attr)
            else:
                setattr(obj, attr, original)
    steps = epochs * trainer._train.n_batches(batch_size)
    phases = dict(clock.total)
    phases["other (bookkeeping, epoch end)"] = max(0.0, total - sum(phases.values()))
    return {
        "steps": steps,
        "step_ms": round(1e3 * total / steps, 2),
        "ms_per_step": {k: round(1e3 * v / steps, 2) for k, v in sorted(phases.items(), key=lambda kv: -kv[1])},
        "pct": {k: round(100 * v / total, 1) for k, v in sorted(phases.items(), key=lambda kv: -kv[1])},
    }


# ----------------------------------------------------------------------------- profile
_CATEGORIES = (
    ("matmul (addmm/mm/bmm/linear)", ("addmm", "aten::mm", "bmm", "matmul", "linear")),
    ("optimizer (Adam)", ("adam", "optimizer")),
    ("data gather (index/unfold)", ("index", "gather", "unfold", "randperm")),
)


def profile_real_path(vae: MultiAnimalVAE, paired: PairedData, batch_size: int, device: torch.device) -> dict:
    """Self time per operator over one real-path epoch (``Trainer.fit``'s own code)."""
    from torch.profiler import ProfilerActivity, profile

    real = RealPath(vae, paired, batch_size, device, seed=1)
    real.run_epochs(1)  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=False) as prof:
        real.run_epochs(1)
    events = prof.key_averages()
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    rows = []
    total = 0.0
    for ev in events:
        t = float(getattr(ev, key, 0.0) or getattr(ev, "self_device_time_total", 0.0) or 0.0)
        if ev.key.startswith("ProfilerStep"):
            continue
        total += t
        rows.append((ev.key, t, int(ev.count)))
    rows.sort(key=lambda r: -r[1])
    cats: dict[str, float] = {}
    for name, t, _ in rows:
        lname = name.lower()
        for cat, needles in _CATEGORIES:
            if any(n in lname for n in needles):
                cats[cat] = cats.get(cat, 0.0) + t
                break
        else:
            cats["other (elementwise, reductions, autograd glue)"] = (
                cats.get("other (elementwise, reductions, autograd glue)", 0.0) + t
            )
    return {
        "total_self_ms": round(total / 1e3, 1),
        "categories_pct": {k: round(100 * v / total, 1) for k, v in sorted(cats.items(), key=lambda kv: -kv[1])},
        "top_ops": [
            {"op": name, "self_ms": round(t / 1e3, 2), "pct": round(100 * t / total, 1), "calls": n}
            for name, t, n in rows[:15]
        ],
    }


def use_old_engine() -> None:
    """Make ``Trainer`` behave as before the performance changes (for before/after runs).

    Before: default for-loop Adam, a gradient-norm pass (``clip_grad_norm_`` with an
    infinite bound) before every step, one ``float()`` per loss term, batches gathered
    from the strided sub-window view, out-of-place activations.
    """
    import neurovamp.data.tensors as tensors_mod
    import neurovamp.models.networks as networks_mod
    import neurovamp.models.training as training_mod

    class GuardedAdam(torch.optim.Adam):
        def step(self, closure=None):  # noqa: ANN001, ANN202
            params = [p for group in self.param_groups for p in group["params"]]
            norm = torch.nn.utils.clip_grad_norm_(params, float("inf"))
            if not bool(torch.isfinite(norm)):
                raise RuntimeError("non-finite gradient")
            return super().step(closure)

    def adam(module: nn.Module, *, lr: float, weight_decay: float) -> torch.optim.Adam:
        return GuardedAdam(module.parameters(), lr=lr, weight_decay=weight_decay)

    def term_values(terms: dict) -> dict[str, float]:
        return {key: float(value.detach()) for key, value in terms.items()}

    make_activation = networks_mod.make_activation
    training_mod._adam = adam
    training_mod._term_values = term_values
    networks_mod.make_activation = lambda name, inplace=False: make_activation(name, inplace=False)
    init = tensors_mod.TensorBatcher.__init__
    init.__defaults__ = init.__defaults__[:-1] + (0,)  # materialize_bytes=0: strided gathers


# ----------------------------------------------------------------------------- main
def summarise(times: list[float], samples: int) -> dict[str, float]:
    rates = [samples / t for t in times]
    return {
        "samples_per_s_median": round(statistics.median(rates), 1),
        "samples_per_s_best": round(max(rates), 1),
        "seconds": [round(t, 4) for t in times],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a summary and append a JSON line to ``--out``."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"device {args.device!r} requested but CUDA is not available: skipped")
        return 0
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.old_engine:
        use_old_engine()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 GEMMs, as on the CPU
        torch.backends.cudnn.allow_tf32 = False
    load_before = os.getloadavg()
    torch.manual_seed(args.seed)

    paired = make_paired(args.trials, args.bins, args.window, args.seed)
    config = ModelConfig.paper("mmvm")
    base = MultiAnimalVAE(paired.input_dims, config, names=paired.animals)
    layers = linear_layers(base)
    flops = flop_counts(layers)
    n_samples = paired.n_samples("train")
    per_block = n_samples * args.epochs_per_repeat
    rel_diff = check_reference(copy.deepcopy(base).to(device), paired, device)
    if rel_diff > 1e-4:
        raise SystemExit(f"reference loss differs from MultiAnimalVAE.loss by {rel_diff:.2e} (relative)")

    gemm = GemmSet(layers, args.batch_size, device, args.seed)
    real = RealPath(copy.deepcopy(base), paired, args.batch_size, device, args.seed)
    ref = ReferenceLoop(copy.deepcopy(base), paired, args.batch_size, device, args.seed)
    compiled = None if args.no_compiled else RealPath(copy.deepcopy(base), paired, args.batch_size, device,
                                                      args.seed, compile=True)
    gemm.time(2)
    real.run_epochs(1)  # warm-up: allocations, Adam state
    ref.run_epoch()
    compile_seconds = None if compiled is None else timed(lambda: compiled.run_epochs(1), device)

    gemm_times: list[float] = []
    real_times: list[float] = []
    ref_times: list[float] = []
    compiled_times: list[float] = []
    for _ in range(args.repeats):  # interleaved so that outside load hits all of them alike
        gemm_times.append(min(gemm.time(args.gemm_repeats)))
        real_times.append(timed(lambda: real.run_epochs(args.epochs_per_repeat), device))
        if compiled is not None:
            compiled_times.append(timed(lambda: compiled.run_epochs(args.epochs_per_repeat), device))
        ref_times.append(timed(lambda: [ref.run_epoch() for _ in range(args.epochs_per_repeat)], device))
    load_after = os.getloadavg()

    gflops = [gemm.flops / t / 1e9 for t in gemm_times]
    rate_median = statistics.median(gflops) * 1e9
    rate_best = max(gflops) * 1e9
    bound = rate_median / flops["train_flops_per_sample"]
    bound_best = rate_best / flops["train_flops_per_sample"]
    # Per-block fraction (same block's GEMM rate), median over blocks: robust to load drift.
    def measured(times: list[float]) -> dict:
        blocks = [(per_block / t) / (gemm.flops / gt / flops["train_flops_per_sample"])
                  for t, gt in zip(times, gemm_times)]
        return {**summarise(times, per_block), "fraction_of_bound": round(statistics.median(blocks), 3),
                "fraction_of_bound_blocks": [round(v, 3) for v in blocks]}

    phases = phase_breakdown(copy.deepcopy(base), paired, args.batch_size, device, args.epochs_per_repeat)
    # The same step's GEMMs at the measured rate, for comparison with the phases.
    phases["gemm_ms_at_measured_rate"] = round(1e3 * gemm.flops / rate_median, 2)

    profile = None
    if args.profile:
        profile = profile_real_path(copy.deepcopy(base), paired, args.batch_size, device)

    record = {
        "benchmark": "training",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "note": args.note,
        "old_engine": bool(args.old_engine),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "python": sys.version.split()[0],
            "loadavg_before": [round(v, 2) for v in load_before],
            "loadavg_after": [round(v, 2) for v in load_after],
        },
        "setup": {
            "preset": "ModelConfig.paper('mmvm')",
            "animals": list(paired.animals),
            "input_dims": list(paired.input_dims),
            "latent_dim": config.latent_dim,
            "batch_size": args.batch_size,
            "train_samples_per_epoch": n_samples,
            "epochs_per_block": args.epochs_per_repeat,
            "blocks": args.repeats,
            "parameters": int(sum(p.numel() for p in base.parameters())),
            "reference_loss_rel_diff": rel_diff,
        },
        "flops": {
            **{k: float(v) for k, v in flops.items()},
            "counting_rule": "3 x 2 x sum(in*out) over nn.Linear layers per sample (fwd + input grad + weight grad); "
                             "exact = minus 2*in*out of each encoder's first layer (no input gradient needed)",
            "gemm_set_flops": gemm.flops,
            "gemm_gflops_median": round(rate_median / 1e9, 2),
            "gemm_gflops_best": round(rate_best / 1e9, 2),
            "gemm_gflops_blocks": [round(v, 2) for v in gflops],
        },
        "flop_bound": {
            "samples_per_s_median": round(bound, 1),
            "samples_per_s_best": round(bound_best, 1),
            "samples_per_s_exact_rule_median": round(rate_median / flops["train_flops_per_sample_exact"], 1),
        },
        "real_path": measured(real_times),
        "real_path_compiled": None if compiled is None else {
            **measured(compiled_times), "compile_seconds": round(compile_seconds, 1),
        },
        "per_animal_loop": measured(ref_times),
        "phases": phases,
        "adam_step_ms": optimizer_step_ms(base, device),
        "profile": profile,
    }
    print(
        f"device {record['machine']['device']}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load {load_before[0]:.2f} -> {load_after[0]:.2f}"
    )
    print(
        f"paper preset mmvm, inputs {list(paired.input_dims)}, latent {config.latent_dim}, batch {args.batch_size}: "
        f"{flops['train_flops_per_sample'] / 1e6:.1f} MFLOP/sample per training step"
    )
    print(f"GEMM rate (torch.mm, the model's shapes): {rate_median / 1e9:.1f} GFLOP/s median, {rate_best / 1e9:.1f} best")
    print(f"FLOP bound:      {bound:8.1f} samples/s (median rate)")
    rows = [("real path", "real_path"), ("real, compiled", "real_path_compiled"), ("per-animal loop", "per_animal_loop")]
    for label, key in rows:
        result = record[key]
        if result is None:
            continue
        print(
            f"{label + ':':<16} {result['samples_per_s_median']:8.1f} samples/s median "
            f"({result['samples_per_s_best']:.1f} best) = {result['fraction_of_bound']:.1%} of bound"
        )
    if compiled is not None:
        print(f"(compile=True: one-off compilation + first epoch {compile_seconds:.1f} s, not counted)")
    print(f"Adam step (ms): {record['adam_step_ms']}")
    print(f"real-path step {phases['step_ms']:.1f} ms (its GEMMs at the measured rate: "
          f"{phases['gemm_ms_at_measured_rate']:.1f} ms); phases (ms/step):")
    for name, ms in phases["ms_per_step"].items():
        print(f"  {name:<34} {ms:8.2f}  {phases['pct'][name]:5.1f}%")
    if profile:
        print("profile (share of self time):", profile["categories_pct"])
        for row in profile["top_ops"][:10]:
            print(f"  {row['op']:<40} {row['self_ms']:9.1f} ms {row['pct']:5.1f}% ({row['calls']} calls)")
    if not args.no_save:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        print(f"appended to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
