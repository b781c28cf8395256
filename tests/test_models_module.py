"""ModelConfig and MultiAnimalVAE: config round trips and errors, loss against hand-written
computations, alpha = 1 and masked-animal equivalences, gradients, generation, and a toy
fit where the MMVM latents of different animals must agree."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pytest
import torch
from torch.distributions import Normal, Poisson, kl_divergence

from neurovamp.errors import ConfigError, DataError
from neurovamp.models import ModelConfig, MultiAnimalVAE

DIMS = (6, 9, 5)


def _batch(b: int = 7, dims: tuple[int, ...] = DIMS, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.poisson(torch.full((b, d), 2.0), generator=g) for d in dims]


def _mask(b: int = 7, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(b, len(DIMS), generator=g) < 0.6
    mask[0] = True
    mask[1] = torch.tensor([False, True, False])
    mask[2] = False  # nobody observed
    return mask


def _model(model: str = "mmvm", seed: int = 0, dims: tuple[int, ...] = DIMS, **kw: object) -> MultiAnimalVAE:
    torch.manual_seed(seed)
    config = ModelConfig(model=model, latent_dim=3, hidden=[8], **kw)
    return MultiAnimalVAE(dims, config)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small matrices: one thread is faster and robust to a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------- config
def test_config_defaults_and_json_round_trip() -> None:
    for config in [ModelConfig(), ModelConfig.paper(), ModelConfig(hidden="input", likelihood="negbin", dropout=0.1)]:
        text = json.dumps(config.to_dict())
        back = ModelConfig.from_dict(json.loads(text))
        assert back == config
        assert back.to_dict() == config.to_dict()
    default = ModelConfig()
    assert (default.model, default.likelihood, default.latent_dim, default.hidden, default.decoder) == (
        "mmvm",
        "poisson",
        8,
        (128,),
        "mlp",
    )
    assert ModelConfig(hidden="input").hidden == ("input",)
    assert ModelConfig(hidden=["input", 16]).hidden_widths(40) == [40, 16]


def test_paper_preset_values() -> None:
    paper = ModelConfig.paper()
    assert paper.latent_dim == 2 and paper.hidden == ("input", "input")
    assert paper.activation == "leaky_relu" and paper.decoder == "mlp" and paper.likelihood == "gaussian"
    assert paper.gaussian_scale == pytest.approx(1 / math.sqrt(2))
    assert paper.alpha == 0.0 and paper.beta == 1.0 and paper.encoder_bottleneck and paper.preset == "paper"
    assert ModelConfig.paper("poe").model == "poe"
    assert ModelConfig.from_preset("paper", "avg", beta=2.0).beta == 2.0
    # With the paper's variance 1/2, -log p is the summed squared error plus a constant.
    net = MultiAnimalVAE([4], paper)
    x, eta = torch.randn(3, 4), torch.randn(3, 4)
    nll = -net.likelihoods[0].log_prob(x, eta)
    const = 4 * 0.5 * math.log(math.pi)
    torch.testing.assert_close(nll, ((x - eta) ** 2).sum(-1) + const)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", "vamp"),
        ("latent_dim", 0),
        ("latent_dim", 2.5),
        ("hidden", "wide"),
        ("hidden", [16, -1]),
        ("hidden", [True]),
        ("activation", "gelu"),
        ("decoder", "conv"),
        ("likelihood", "bernoulli"),
        ("link", "identity"),
        ("gaussian_scale", 0.0),
        ("alpha", 1.5),
        ("beta", -1.0),
        ("beta", float("nan")),
        ("dropout", 1.0),
        ("encoder_bottleneck", "yes"),
        ("preset", ""),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"ModelConfig\.{field}"):
        ModelConfig(**{field: value})
    with pytest.raises(ConfigError, match=rf"ModelConfig\.{field}"):
        ModelConfig.from_dict({field: value})


@pytest.mark.parametrize("model", ["independent", "poe", "moe", "mopoe", "avg"])
def test_alpha_is_refused_for_models_without_the_mmvm_prior(model: str) -> None:
    message = (
        rf"ModelConfig\.alpha applies to model='mmvm' only \(got alpha=0\.5 with model='{model}'\); "
        "leave it at 0"
    )
    with pytest.raises(ConfigError, match=message):
        ModelConfig(model=model, alpha=0.5)
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_dict({"model": model, "alpha": 0.5})
    with pytest.raises(ConfigError, match=message):
        ModelConfig(alpha=0.5).replace(model=model)
    with pytest.raises(ConfigError, match=r"ModelConfig\.alpha applies to model='mmvm' only"):
        ModelConfig.paper(model, alpha=1.0)
    assert ModelConfig(model=model, alpha=0).alpha == 0.0  # the default stays accepted
    assert ModelConfig.paper(model).alpha == 0.0 and ModelConfig.from_preset("neurovamp", model).alpha == 0.0
    assert ModelConfig(alpha=0.5).alpha == 0.5


def test_config_choice_errors_list_allowed_values_and_unknown_fields() -> None:
    with pytest.raises(ConfigError, match="'mmvm'.*'avg'"):
        ModelConfig(model="vamp")
    with pytest.raises(ConfigError, match="latnt_dim"):
        ModelConfig.from_dict({"latnt_dim": 2})
    with pytest.raises(ConfigError, match="preset"):
        ModelConfig.from_preset("huge")
    with pytest.raises(ConfigError, match="latnt_dim"):
        ModelConfig().replace(latnt_dim=3)


# ---------------------------------------------------------------------- networks and shapes
def test_networks_follow_config() -> None:
    net = MultiAnimalVAE([10, 4], ModelConfig.paper())
    linears = [m for m in net.encoders[0].modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(10, 10), (10, 10), (10, 2), (2, 4)]
    linears = [m for m in net.decoders[1].modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2, 4), (4, 4), (4, 4)]
    linear = MultiAnimalVAE([10], ModelConfig(decoder="linear", latent_dim=3))
    assert [m.out_features for m in linear.decoders[0].modules() if isinstance(m, torch.nn.Linear)] == [10]
    # linear readout: log-rate affine in z
    z = torch.randn(5, 3)
    out = linear.decoders[0].out
    torch.testing.assert_close(linear.decode(z, 0), torch.exp(z @ out.weight.T + out.bias))


def test_shapes_and_names() -> None:
    torch.manual_seed(0)
    net = MultiAnimalVAE(DIMS, ModelConfig(latent_dim=3, hidden=[8]), names=["a", "b", "c"])
    xs = _batch()
    mu, logvar = net.encode(xs)
    assert mu.shape == logvar.shape == (3, 7, 3)
    assert net.decode(mu[1], "b").shape == (7, 9)
    assert net.decode(mu[1:], 1).shape == (2, 7, 9)
    assert net.log_likelihood(xs[2], mu[2], "c").shape == (7,)
    out = net.loss(xs)
    assert {"loss", "rec", "reg", "rec/a", "rec/b", "rec/c", "reg/a", "reg/b", "reg/c"} <= set(out)
    assert all(v.dim() == 0 for v in out.values())
    with pytest.raises(ConfigError, match="unknown animal"):
        net.decode(mu[0], "zz")


def test_bad_inputs_raise_data_errors() -> None:
    net = _model()
    xs = _batch()
    with pytest.raises(DataError, match="expected 3"):
        net.loss(xs[:2])
    with pytest.raises(DataError, match=r"xs\[1\]"):
        net.loss([xs[0], xs[2], xs[2]])
    with pytest.raises(DataError, match="mask"):
        net.loss(xs, torch.ones(7, 2, dtype=torch.bool))
    with pytest.raises(DataError, match="eps"):
        net.loss(xs, eps=torch.randn(7, 3))  # mmvm needs one noise draw per animal
    with pytest.raises(ConfigError, match="input_dims"):
        MultiAnimalVAE([5, 0])


# ---------------------------------------------------------------------- the objective
def _manual_mmvm(net: MultiAnimalVAE, xs, mask, eps, alpha: float, beta: float) -> torch.Tensor:  # noqa: ANN001
    """Per-sample loop with torch.distributions: the MMVM negative ELBO, batch mean."""
    total = torch.zeros(())
    std = Normal(torch.zeros(3), torch.ones(3))
    for b in range(mask.shape[0]):
        observed = [m for m in range(3) if mask[b, m]]
        posts = {}
        for m in observed:
            mu, logvar = net.encoders[m](xs[m][b : b + 1])
            posts[m] = (mu[0], logvar[0])
        for m in observed:
            mu, logvar = posts[m]
            q_m = Normal(mu, torch.exp(0.5 * logvar))
            z = mu + torch.exp(0.5 * logvar) * eps[m, b]
            rate = torch.exp(net.decoders[m](z))
            rec = Poisson(rate).log_prob(xs[m][b]).sum()
            to_mix = sum(
                kl_divergence(q_m, Normal(posts[j][0], torch.exp(0.5 * posts[j][1]))).sum() for j in observed
            ) / len(observed)
            reg = (1 - alpha) * to_mix + alpha * kl_divergence(q_m, std).sum()
            total = total - rec + beta * reg
    return total / mask.shape[0]


@pytest.mark.parametrize(("alpha", "beta"), [(0.0, 1.0), (0.25, 0.5)])
def test_mmvm_loss_matches_per_sample_computation(alpha: float, beta: float) -> None:
    net = _model(alpha=alpha, beta=beta)
    xs, mask = _batch(), _mask()
    eps = torch.randn(3, 7, 3)
    out = net.loss(xs, mask, eps=eps)
    torch.testing.assert_close(out["loss"], _manual_mmvm(net, xs, mask, eps, alpha, beta), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out["loss"], out["rec"] + beta * out["reg"])
    torch.testing.assert_close(sum(out[f"rec/{m}"] for m in range(3)), out["rec"])
    torch.testing.assert_close(sum(out[f"reg/{m}"] for m in range(3)), out["reg"])


def test_poe_loss_matches_closed_form() -> None:
    net = _model("poe")
    xs, mask = _batch(), _mask()
    eps = torch.randn(7, 3)
    out = net.loss(xs, mask, eps=eps)
    total = torch.zeros(())
    for b in range(7):
        observed = [m for m in range(3) if mask[b, m]]
        if not observed:
            continue
        precision, weighted = torch.ones(3), torch.zeros(3)
        for m in observed:
            mu, logvar = net.encoders[m](xs[m][b : b + 1])
            precision = precision + torch.exp(-logvar[0])
            weighted = weighted + mu[0] * torch.exp(-logvar[0])
        mu_j, var_j = weighted / precision, 1 / precision
        z = mu_j + var_j.sqrt() * eps[b]
        rec = sum(Poisson(torch.exp(net.decoders[m](z))).log_prob(xs[m][b]).sum() for m in observed)
        kl = kl_divergence(Normal(mu_j, var_j.sqrt()), Normal(torch.zeros(3), torch.ones(3))).sum()
        total = total - rec + kl
    torch.testing.assert_close(out["loss"], total / 7, rtol=1e-5, atol=1e-4)


def test_moe_and_mopoe_regulariser_is_average_component_kl() -> None:
    xs, mask = _batch(), _mask()
    for model in ["moe", "mopoe"]:
        net = _model(model)
        out = net.loss(xs, mask)
        mu, logvar = net.encode(xs)
        mixture = net.joint_posterior(mu, logvar, mask)
        std = Normal(torch.zeros(3), torch.ones(3))
        comp_kl = kl_divergence(Normal(mixture.mu, torch.exp(0.5 * mixture.logvar)), std).sum(-1)
        expected = (mixture.weights * comp_kl).sum(0) * mask.any(1)
        torch.testing.assert_close(out["reg"], expected.mean())


def test_mmvm_alpha_one_equals_independent() -> None:
    mmvm = _model("mmvm", alpha=1.0)
    independent = _model("independent")
    independent.load_state_dict(mmvm.state_dict())
    xs, mask = _batch(), _mask()
    torch.manual_seed(5)
    a = mmvm.loss(xs, mask)
    torch.manual_seed(5)
    b = independent.loss(xs, mask)
    for key in b:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("model", ["mmvm", "independent", "poe", "avg"])
def test_masked_animal_equals_model_without_it(model: str) -> None:
    full = _model(model)
    reduced = _model(model, seed=1, dims=(DIMS[0], DIMS[2]))
    state = {}
    for key, value in full.state_dict().items():
        kind, index, rest = key.split(".", 2)
        if index != "1":
            state[f"{kind}.{0 if index == '0' else 1}.{rest}"] = value
    reduced.load_state_dict(state)
    xs, mask = _batch(), _mask()
    mask[:, 1] = False
    xs[1] = torch.randn_like(xs[1]) * 50  # whatever a missing animal's rows hold
    eps = torch.randn(3, 7, 3) if model in ("mmvm", "independent") else torch.randn(7, 3)
    eps_reduced = eps[[0, 2]] if eps.dim() == 3 else eps
    a = full.loss(xs, mask, eps=eps)
    b = reduced.loss([xs[0], xs[2]], mask[:, [0, 2]], eps=eps_reduced)
    for key in ("loss", "rec", "reg"):
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-6)
    assert a["rec/1"] == 0


def test_samples_without_observed_animals_contribute_zero() -> None:
    xs, mask = _batch(), _mask()
    for model in ["mmvm", "poe", "moe", "mopoe", "avg"]:
        net = _model(model)
        eps = torch.randn(3, 7, 3) if model == "mmvm" else torch.randn(7, 3)
        keep = mask.any(1)
        full = net.loss(xs, mask, eps=eps)
        sub_eps = eps[:, keep] if eps.dim() == 3 else eps[keep]
        sub = net.loss([x[keep] for x in xs], mask[keep], eps=sub_eps)
        # moe/mopoe pick mixture components at random: compare their (deterministic) KL term
        key = "reg" if model in ("moe", "mopoe") else "loss"
        torch.testing.assert_close(full[key] * 7, sub[key] * int(keep.sum()))
    # animals given as None are treated as missing
    net = _model()
    eps = torch.randn(3, 7, 3)
    m2 = mask.clone()
    m2[:, 1] = False
    torch.testing.assert_close(net.loss([xs[0], None, xs[2]], mask, eps=eps)["loss"], net.loss(xs, m2, eps=eps)["loss"])


def test_gradients_reach_both_sides_of_the_kl() -> None:
    xs = _batch()
    net = _model("mmvm")
    net.loss(xs)["reg/0"].backward()
    grads = [p.grad for p in net.encoders[1].parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in net.decoders.parameters())
    net = _model("independent")
    net.loss(xs)["reg/0"].backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in net.encoders[1].parameters())


def test_every_model_and_likelihood_trains_one_step() -> None:
    xs, mask = _batch(), _mask()
    for model in ["mmvm", "independent", "poe", "moe", "mopoe", "avg"]:
        for likelihood in ["poisson", "negbin", "gaussian"]:
            net = _model(model, likelihood=likelihood, decoder="mlp", dropout=0.1, link="softplus")
            out = net.loss(xs, mask)
            out["loss"].backward()
            assert torch.isfinite(out["loss"])
            assert all(p.grad is None or torch.isfinite(p.grad).all() for p in net.parameters())


def test_mopoe_state_dict_has_no_subset_buffer() -> None:
    net = _model("mopoe")
    assert net.subsets.shape == (7, 3)
    assert not any("subsets" in key for key in net.state_dict())


# ---------------------------------------------------------------------- generation
def test_generate_single_source_and_combinations() -> None:
    net = _model()
    xs = _batch()
    mu, logvar = net.encode(xs)
    one = net.generate(xs, torch.tensor([True, False, False]), 2)
    torch.testing.assert_close(one, net.decode(mu[0], 2))
    # from a source only: other animals may be None
    torch.testing.assert_close(net.generate([xs[0], None, None], torch.tensor([True, False, False]), 2), one)
    both = net.generate(xs, torch.tensor([True, True, False]), 2, combine="mixture")
    torch.testing.assert_close(both, 0.5 * (net.decode(mu[0], 2) + net.decode(mu[1], 2)))
    poe = net.generate(xs, torch.tensor([True, True, False]), 2, combine="poe")
    prec = torch.exp(-logvar[:2]).sum(0)
    poe_mu = (mu[:2] * torch.exp(-logvar[:2])).sum(0) / prec
    torch.testing.assert_close(poe, net.decode(poe_mu, 2))
    with pytest.raises(ConfigError, match="combine"):
        net.generate(xs, torch.tensor([True, True, False]), 2, combine="sum")


def test_generate_joint_model_uses_its_aggregator() -> None:
    net = _model("poe")
    xs = _batch()
    mu, logvar = net.encode(xs)
    source = torch.tensor([True, False, True])
    joint = net.joint_posterior(mu, logvar, source.expand(7, 3))
    torch.testing.assert_close(net.generate(xs, source, 1), net.decode(joint.mu[0], 1))
    torch.testing.assert_close(net.sample_latent(xs, source.expand(7, 3), mean=True), joint.mu[0])
    assert net.sample_latent(xs, joint=False).shape == (3, 7, 3)


def test_init_output_bias_sets_rates_at_zero_latent() -> None:
    net = _model(decoder="linear")  # exact for a linear readout: the rate at z = 0 is link(bias)
    xs = _batch()
    means = [x.mean(0) + 0.1 for x in xs]
    net.init_output_bias(means)
    for m in range(3):
        torch.testing.assert_close(net.decode(torch.zeros(1, 3), m)[0], means[m])


# ---------------------------------------------------------------------- toy fit
def _toy(n: int = 512, dims: tuple[int, ...] = (20, 25, 15), seed: int = 0):  # noqa: ANN202
    """Poisson counts of 3 animals driven by one 2-D latent (an annulus) via private tuning."""
    g = torch.Generator().manual_seed(seed)
    angle = torch.rand(n, generator=g) * 2 * math.pi
    radius = 0.5 + torch.rand(n, generator=g)
    z = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1)
    xs = []
    for d in dims:
        weight = 0.6 * torch.randn(d, 2, generator=g)
        xs.append(torch.poisson(torch.exp(z @ weight.T + math.log(3.0)), generator=g))
    return z, xs


def _fit(model: str, xs: list[torch.Tensor], steps: int = 400) -> tuple[MultiAnimalVAE, list[float]]:
    torch.manual_seed(0)
    # The toy counts are a Poisson GLM of the latent: fit them with the matching linear readout.
    config = ModelConfig(model=model, latent_dim=2, hidden=[32], decoder="linear")
    net = MultiAnimalVAE([x.shape[1] for x in xs], config)
    net.init_output_bias([x.mean(0) for x in xs])
    optimiser = torch.optim.Adam(net.parameters(), lr=5e-3)
    losses = []
    for _ in range(steps):
        loss = net.loss(xs)["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return net, losses


def _disagreement(mu: torch.Tensor) -> float:
    """Mean squared distance between animals' latent means relative to their spread."""
    spread = (mu - mu.mean(1, keepdim=True)).square().sum(-1).mean()
    pairs = [(mu[a] - mu[b]).square().sum(-1).mean() for a in range(3) for b in range(a + 1, 3)]
    return float(torch.stack(pairs).mean() / spread)


def _r2(latent: torch.Tensor, truth: torch.Tensor) -> float:
    design = torch.cat([latent, torch.ones(len(latent), 1)], 1)
    coef = torch.linalg.lstsq(design, truth).solution
    return float(1 - (design @ coef - truth).square().sum() / (truth - truth.mean(0)).square().sum())


def test_toy_fit_mmvm_latents_agree_across_animals(one_thread: None) -> None:
    truth, xs = _toy()
    mmvm, losses = _fit("mmvm", xs)
    assert losses[-1] < 0.5 * losses[0]
    # The fit explains the counts far better than each unit's flat mean rate.
    null = sum(-Poisson(x.mean(0)).log_prob(x).sum(1).mean() for x in xs)
    with torch.no_grad():
        assert mmvm.loss(xs)["rec"] < 0.85 * null
    with torch.no_grad():
        mu_mmvm, _ = mmvm.encode(xs)
    for m in range(3):
        assert _r2(mu_mmvm[m], truth) > 0.8
    # The mixture prior aligns the animals' latents in one frame; independent VAEs do not.
    independent, _ = _fit("independent", xs)
    with torch.no_grad():
        mu_indep, _ = independent.encode(xs)
    assert _disagreement(mu_mmvm) < 0.3
    assert _disagreement(mu_indep) > 3 * _disagreement(mu_mmvm)
