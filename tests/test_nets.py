"""Networks, forward processes and the Prior wrapper: shapes, any-size inference, consistency."""
from __future__ import annotations

import pytest
import torch


from pnp_rgm.nets import Generator, ToyDiscriminator, ToyGenerator, build_discriminator
from pnp_rgm.processes import BlockAverage, GeometricNoiseProcess, MultiscaleProcess, NoiseProcess, make_process
from pnp_rgm.train.config import ModelConfig, ProcessConfig, load_run_config

from tiny import TINY_MODEL as TINY  # noqa: E402


@pytest.mark.parametrize("kind, stem, c", [("rgm", 1, 3), ("rgm", 2, 1), ("mmse", 1, 3)])
@pytest.mark.parametrize("hw", [(16, 16), (17, 30), (5, 9)])
def test_generator_any_size(kind, stem, c, hw):
    torch.manual_seed(0)
    cfg = ModelConfig(kind=kind, channels=c, stem_stride=stem, **TINY)
    G = Generator(cfg)
    x = torch.randn(2, c, *hw)
    cond = torch.tensor([1.0, 3.0]) if kind == "rgm" else torch.log(torch.tensor([0.1, 0.5]))
    z = torch.randn(2, 8) if kind == "rgm" else None
    y = G(x, cond, z)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert all(p.grad is not None for p in G.parameters())


def test_generator_z_changes_output_and_attention():
    torch.manual_seed(0)
    cfg = ModelConfig(attention_levels=(1,), **TINY)
    G = Generator(cfg)
    for p in G.parameters():  # zero-initialised output layers hide z; perturb everything
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.randn(1, 3, 16, 16)
    k = torch.tensor([2.0])
    a, b = G(x, k, torch.randn(1, 8)), G(x, k, torch.randn(1, 8))
    assert not torch.allclose(a, b)
    assert torch.allclose(G(x, k, None), G(x, k, torch.zeros(1, 8)))


def test_discriminator_and_toy_shapes():
    D = build_discriminator(ModelConfig(**TINY))
    logit, phi = D(torch.randn(3, 3, 20, 24), torch.randn(3, 3, 20, 24), torch.tensor([1.0, 2.0, 4.0]))
    assert logit.shape == (3,) and phi.shape == (3, D.feat_dim)
    G, Dt = ToyGenerator(nz=2), ToyDiscriminator()
    y = G(torch.randn(5, 2), torch.ones(5), torch.randn(5, 2))
    assert y.shape == (5, 2)
    lt, ft = Dt(torch.randn(5, 2), torch.randn(5, 2), torch.ones(5))
    assert lt.shape == (5,) and ft.shape == (5, Dt.feat_dim)


def test_noise_process_marginals_match_chain():
    torch.manual_seed(0)
    p = NoiseProcess(4, 0.1, 20.0)
    assert p.K == 4 and float(p.a[-1]) < 0.01 and abs(float(p.sigma[-1]) - 1) < 1e-3
    x0 = torch.full((20000, 1), 0.5)
    for k in range(1, 5):
        xp, xk = p.pair(x0, k)
        assert abs(xk.mean().item() - 0.5 * float(p.a[k])) < 0.03
        assert abs(xk.std().item() - float(p.sigma[k])) < 0.03
        assert abs(xp.std().item() - float(p.sigma[k - 1])) < 0.03
    post = p.posterior(torch.randn(8, 3, 4, 4), torch.randn(8, 3, 4, 4), torch.randint(1, 5, (8,)))
    assert post.shape == (8, 3, 4, 4)


def test_geometric_process_levels_and_marginals():
    """Step k's equivalent [0, 1]-unit noise level σ_k / (2 a_k) is geometric from level_min to
    level_max; the process is variance preserving, and its one-step chain has the closed-form marginals."""
    torch.manual_seed(0)
    p = GeometricNoiseProcess(5, 0.01, 0.16)
    levels = (p.noise_to_signal()[1:] / 2).tolist()
    assert levels == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.16], rel=1e-9)
    assert torch.allclose(p.a ** 2 + p.sigma ** 2, torch.ones(6, dtype=torch.float64))
    x0 = torch.full((20000, 1), 0.5)
    for k in range(1, 6):
        xp, xk = p.pair(x0, k)
        assert abs(xk.mean().item() - 0.5 * float(p.a[k])) < 0.01
        assert xk.std().item() == pytest.approx(float(p.sigma[k]), rel=0.03)
        assert xp.std().item() == pytest.approx(float(p.sigma[k - 1]), rel=0.03, abs=1e-6)
    q = make_process(ProcessConfig(kind="geometric", num_steps=5, level_min=0.01, level_max=0.16))
    assert torch.equal(q.sigma, p.sigma) and q.name == "geometric"
    with pytest.raises(Exception, match="level_min"):
        ProcessConfig(kind="geometric", level_min=0.3, level_max=0.2)


@pytest.mark.parametrize("variant", ["alternate", "naive"])
def test_multiscale_process_blocks(variant):
    torch.manual_seed(0)
    p = MultiscaleProcess(4, variant=variant)
    x0 = torch.rand(2, 3, 32, 32) * 2 - 1
    for k in range(1, 5):
        m = int(p.level[k])
        xk = p.degrade(x0, k)
        b = 2 ** m
        blocks = xk.reshape(2, 3, 32 // b, b, 32 // b, b)
        assert torch.allclose(blocks, blocks[:, :, :, :1, :, :1].expand_as(blocks), atol=1e-5)
    xp, xk = p.pair(x0, torch.tensor([1, 4]))
    assert xp.shape == xk.shape == x0.shape
    assert p.prior_sample((2, 3, 32, 32)).shape == (2, 3, 32, 32)
    with pytest.raises(Exception, match="divisible"):
        p.degrade(torch.rand(1, 3, 30, 30), 2)


def test_block_average_backends_agree():
    x = torch.rand(2, 3, 16, 24)
    t, o = BlockAverage("torch"), BlockAverage("operator")
    for m in (1, 2):
        assert torch.allclose(t(x, m), o(x, m).to(x.dtype), atol=1e-5)
        assert torch.allclose(t.down(x, m), o.down(x, m).to(x.dtype), atol=1e-5)
    assert len(o._ops) == 2  # cached by level and shape
    o(x, 1)
    assert len(o._ops) == 2
    assert BlockAverage("auto").backend == "operator"


def test_make_process_from_config():
    assert make_process(ProcessConfig()).K == 4
    assert make_process(ProcessConfig(kind="multiscale", num_steps=4)).max_level == 2
    assert make_process(ProcessConfig(kind="multiscale", num_steps=3, variant="naive")).max_level == 3


def test_prior_wrapper_any_size():
    from pnp_rgm.priors import Prior

    torch.manual_seed(0)
    cfg = load_run_config({"model": dict(TINY)})
    prior = Prior(Generator(cfg.model), cfg)
    x0 = torch.rand(2, 3, 19, 23)
    xk = prior.degrade(x0, 2)
    out = prior.restore(xk, 2, z="random")
    assert out.shape == x0.shape and 0 <= out.min() and out.max() <= 1
    assert prior.restore(xk, torch.tensor([1, 4])).shape == x0.shape
    assert prior.denoise(x0 + 0.1 * torch.randn_like(x0), 0.1).shape == x0.shape
    assert prior.noise_levels().shape == (4,)
    s = prior.sample(3, size=16, seed=1)
    assert s.shape == (3, 3, 16, 16)
    assert torch.equal(s, prior.sample(3, size=16, seed=1))
    with pytest.raises(Exception, match="channel"):
        prior.restore(torch.rand(1, 1, 8, 8), 1)
    with pytest.raises(Exception, match="1..4"):
        prior.restore(xk, 5)

    mcfg = load_run_config({"model": dict(TINY, kind="mmse"), "objective": {"kind": "mmse"}})
    twin = Prior(Generator(mcfg.model), mcfg)
    assert twin.denoise(x0, 0.05).shape == x0.shape
    assert twin.restore(twin.degrade(x0, 1), 1).shape == x0.shape


@pytest.mark.slow
def test_cpu_config_forward_speed():
    import time

    cfg = load_run_config("rgm-kld-d-cpu")
    G = Generator(cfg.model).eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 256, 256).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        G(x, torch.ones(1))
        t = time.perf_counter()
        G(x, torch.ones(1))
    assert time.perf_counter() - t < 5.0


def test_multiscale_prior_sample_and_denoise_refusal():
    from pnp_rgm.errors import PnpRgmError
    from pnp_rgm.priors import Prior

    cfg = load_run_config({"model": dict(TINY), "process": {"kind": "multiscale", "num_steps": 4}, "data": {"crop": 16}})
    prior = Prior(Generator(cfg.model), cfg)
    assert prior.sample(2, size=16, seed=0).shape == (2, 3, 16, 16)
    with pytest.raises(PnpRgmError, match="multiscale"):
        prior.denoise(torch.rand(1, 3, 16, 16), 0.1)
    with pytest.raises(PnpRgmError, match="divisible"):
        prior.sample(1, size=18)


@pytest.mark.parametrize("name", ["rgm-kld-d-gpu", "mmse-gpu", "rgm-kld-sr-cpu"])
def test_shipped_models_forward(name):
    cfg = load_run_config(name)
    G = Generator(cfg.model).eval()
    x = torch.rand(1, 3, 24, 40) * 2 - 1
    with torch.no_grad():
        cond = torch.ones(1) if cfg.model.kind == "rgm" else torch.zeros(1)
        assert G(x, cond).shape == x.shape
        if cfg.model.kind == "rgm":
            logit, _ = build_discriminator(cfg.model)(x, x, torch.ones(1))
            assert logit.shape == (1,)
