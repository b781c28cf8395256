"""Checks that need a CUDA device (marker ``cuda``; skipped without one). Run by benchmarks/gpu_check.sh."""

from __future__ import annotations

import pytest
import torch

from neurovamp.models.config import ModelConfig
from neurovamp.models.module import MultiAnimalVAE
from neurovamp.models.objectives import mmvm_regulariser

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

DIMS = (70, 80, 90, 200, 210, 40, 120, 125, 60, 300, 310, 80)


def _batch(dims, batch, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.poisson(torch.rand(batch, d, generator=g) * 2, generator=g).to(device) for d in dims]
    mask = (torch.rand(batch, len(dims), generator=g) < 0.7).to(device)
    return [x * mask[:, m : m + 1] for m, x in enumerate(xs)], mask


@pytest.mark.parametrize("model", ["mmvm", "independent", "poe", "moe", "mopoe", "avg"])
def test_batched_step_equals_loop_on_cuda(model):
    device = torch.device("cuda")
    torch.manual_seed(0)
    config = ModelConfig(model=model, latent_dim=4, hidden=(64,), likelihood="negbin")
    loop = MultiAnimalVAE(DIMS, config).to(device).set_step("loop")
    batched = MultiAnimalVAE(DIMS, config).to(device)
    batched.load_state_dict(loop.state_dict())
    batched.set_step("auto")  # on CUDA with 12 animals: the batched step
    assert batched._batched is not None
    xs, mask = _batch(DIMS, 64, device)
    eps = torch.randn((64, 4) if config.is_joint else (len(DIMS), 64, 4), device=device)
    results = []
    for vae in (loop, batched):
        torch.manual_seed(1)
        vae.zero_grad()
        terms = vae.loss(xs, mask, eps=eps)
        terms["loss"].backward()
        results.append((terms, {n: p.grad for n, p in vae.named_parameters()}))
    (t_ref, g_ref), (t, g) = results
    for key in t_ref:
        torch.testing.assert_close(t[key], t_ref[key], rtol=1e-4, atol=1e-3, msg=key)
    for name in g_ref:
        torch.testing.assert_close(g[name], g_ref[name], rtol=1e-3, atol=1e-4, msg=name)


def test_mmvm_regulariser_memory_at_200_animals():
    """Sufficient statistics: O(M B K) memory instead of the pairs' (M, M, B, K)."""
    device = torch.device("cuda")
    m, b, k = 200, 128, 8
    mu = torch.randn(m, b, k, device=device, requires_grad=True)
    logvar = (0.3 * torch.randn(m, b, k, device=device)).requires_grad_()
    mask = torch.rand(b, m, device=device) < 0.5
    peaks = {}
    values = {}
    for name, limit in (("pairwise", 10**6), ("sufficient", 16)):
        import neurovamp.models.objectives as objectives

        saved = objectives.PAIRWISE_MAX_ANIMALS
        objectives.PAIRWISE_MAX_ANIMALS = limit
        try:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            reg = mmvm_regulariser(mu, logvar, mask, 0.0)
            reg.sum().backward()
            torch.cuda.synchronize()
            peaks[name] = torch.cuda.max_memory_allocated() - base
            values[name] = reg.detach()
            mu.grad = logvar.grad = None
        finally:
            objectives.PAIRWISE_MAX_ANIMALS = saved
    pair_bytes = m * m * b * k * 4
    assert peaks["pairwise"] >= pair_bytes  # at least one (M, M, B, K) float32 intermediate
    assert peaks["sufficient"] < pair_bytes / 20
    torch.testing.assert_close(values["sufficient"], values["pairwise"], rtol=1e-3, atol=1e-2)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP on NCCL needs 2 GPUs")
def test_nccl_ddp_fit_equals_one_process(nwb_files):
    from neurovamp.io.recordings import load_recordings
    from neurovamp.data.pairing import pair_trials
    from neurovamp.models.estimator import MultiAnimalModel

    tree = load_recordings(nwb_files, event="odor_onset", window=(0.0, 0.4), bin_size=0.05, labels=["odor"])
    paired = pair_trials(tree, by="odor", window=4, stride=2, seed=0)
    fits = [MultiAnimalModel("mmvm", latent_dim=2, hidden=(16,), device="cuda").fit(
        paired, epochs=3, batch_size=25, progress=False, nproc=n) for n in (None, 2)]
    torch.testing.assert_close(
        torch.tensor(fits[1].history_["train/loss"].to_numpy()),
        torch.tensor(fits[0].history_["train/loss"].to_numpy()), rtol=1e-4, atol=0,
    )
