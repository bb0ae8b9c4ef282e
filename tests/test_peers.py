"""Peers' algorithms: exactness with an oracle denoiser on every registry operator, and runs with a tiny prior."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pnp_rgm import peers
from pnp_rgm.peers import ddrm, diffpir, dpir_hqs, geometric


def _oracle(x_true):
    return lambda x, sigma: x_true.to(x.dtype)


@pytest.mark.parametrize("method", [ddrm, dpir_hqs, diffpir])
def test_oracle_denoiser_noiseless_returns_truth_and_fits_y(op_case, rng, method):
    # with D(x, σ) = x_true and σ_y = 0 each algorithm must return x_true, hence A x = y exactly
    op, _, dense = op_case
    x_true = torch.from_numpy(rng.random((1, *op.in_shape)))
    y = op.forward(x_true)
    kw = {"generator": torch.Generator().manual_seed(0)} if method is not dpir_hqs else {}
    x, nfe = method(op, y, _oracle(x_true), 0.0, **kw)
    assert nfe > 0 and x.shape == x_true.shape
    s = op.singulars().numpy()
    if s.min() > 1e-6 * s.max():  # well-conditioned: the result reproduces y
        assert torch.allclose(op.forward(x), y, atol=1e-8)
    assert torch.allclose(x, x_true, atol=1e-6)


def test_ddrm_eta_b_below_one_is_not_exactly_consistent_but_close():
    from pnp_rgm.operators import make_operator

    op = make_operator("sr2", (1, 8, 8))
    x_true = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    y = op.forward(x_true)
    noisy_oracle = lambda x, s: (x_true + 0.05).to(x.dtype)  # noqa: E731 a biased denoiser
    x, _ = ddrm(op, y, noisy_oracle, 0.0, eta_b=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(op.forward(x), y, atol=1e-10)  # η_b = 1 enforces the data
    x2, _ = ddrm(op, y, noisy_oracle, 0.0, eta_b=0.5, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(op.forward(x2), y, atol=1e-3)


def test_geometric_schedule():
    g = geometric(1.0, 0.01, 3)
    assert np.allclose(g, [1.0, 0.1, 0.01])
    assert geometric(0.5, 0.1, 1) == [0.5]


@pytest.mark.parametrize("method, task", [("dpir-hqs", "sr2"), ("ddrm", "sr2"), ("diffpir", "sr2"), ("denoiser", "denoise")])
def test_methods_run_with_a_tiny_mmse_prior(method, task, tmp_path):
    import skimage.data
    from skimage.transform import resize
    from tiny import TINY_MODEL

    from pnp_rgm.benchmark import read_rows, run_benchmark
    from pnp_rgm.io import write_image
    from pnp_rgm.nets import Generator
    from pnp_rgm.priors import save_prior
    from pnp_rgm.train.config import load_run_config

    cfg = load_run_config({"model": {**TINY_MODEL, "kind": "mmse"}, "objective": {"kind": "mmse", "prior": "none"}})
    torch.manual_seed(0)
    ckpt = save_prior(Generator(cfg.model), tmp_path / "mmse", cfg)
    d = tmp_path / "data"
    write_image(d / "a.png", resize(skimage.data.astronaut(), (32, 24), anti_aliasing=True))
    run_benchmark(task, d, tmp_path / "out", [method], sigma=0.02, prior=str(ckpt), progress=False)
    (row,) = read_rows(tmp_path / "out" / "results.csv")
    assert int(row["nfe"]) > 0 and np.isfinite(float(row["psnr"]))


def test_bm3d_methods_or_a_clear_message(tmp_path):
    import skimage.data
    from skimage.transform import resize

    from pnp_rgm.benchmark import read_rows, run_benchmark
    from pnp_rgm.errors import TaskError
    from pnp_rgm.io import write_image

    d = tmp_path / "data"
    write_image(d / "a.png", resize(skimage.data.astronaut(), (32, 32), anti_aliasing=True))
    try:
        import bm3d  # noqa: F401
    except ImportError:
        with pytest.raises(TaskError, match=r"pnp-rgm\[bench\]"):
            run_benchmark("denoise", d, tmp_path / "o", ["bm3d"], sigma=0.1, progress=False)
        return
    run_benchmark("denoise", d, tmp_path / "o", ["bm3d", "tv"], sigma=0.1, progress=False)
    rows = {r["method"]: float(r["psnr"]) for r in read_rows(tmp_path / "o" / "results.csv")}
    assert rows["bm3d"] > 24.0


def test_samplers_start_at_the_top_of_the_priors_trained_range(monkeypatch):
    """ddrm/diffpir in the benchmark start at the prior's trained sigma_max, not at 1."""
    from pnp_rgm.operators import make_operator
    from tiny import tiny_mmse_prior, tiny_prior

    from pnp_rgm import benchmark, peers

    twin = tiny_mmse_prior()
    assert benchmark.trained_sigma_max(twin) == min(1.0, twin.config.objective.sigma_max)
    rgm = tiny_prior()
    assert benchmark.trained_sigma_max(rgm) == pytest.approx(min(1.0, float(rgm.noise_levels().max())))
    seen = {}
    monkeypatch.setattr(peers, "ddrm", lambda op, y, d, s, **kw: (seen.update(kw), (op.pinv(y), 1))[1])
    ctx = type("Ctx", (), {"prior": twin, "seed": 0, "sigma": 0.0})()
    op = make_operator("sr2", (3, 8, 8))
    benchmark._peer("ddrm")(op, op.forward(torch.rand(1, 3, 8, 8, dtype=torch.float64)), ctx)
    assert seen["sigma_max"] == twin.config.objective.sigma_max


def test_diffpir_for_denoising_starts_from_the_observation():
    """sigma_max = sigma_y: the observation's own noise is the start's noise, no fresh noise on top."""
    from pnp_rgm.operators import make_operator

    op = make_operator("denoise", (3, 8, 8))
    y = torch.rand(1, 3, 8, 8)
    calls = []

    def oracle(x, s):
        calls.append((x.clone(), s))
        return x

    peers.diffpir(op, y, oracle, 0.1, steps=3, sigma_max=0.1, zeta=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(calls[0][0], y) and calls[0][1] == pytest.approx(0.1)
    calls.clear()
    peers.diffpir(op, y, oracle, 0.1, steps=3, sigma_max=0.5, generator=torch.Generator().manual_seed(0))
    assert float((calls[0][0] - y).std()) == pytest.approx((0.5 ** 2 - 0.1 ** 2) ** 0.5, rel=0.3)


def test_benchmark_diffpir_settings_per_task(monkeypatch):
    """The benchmark runs DiffPIR with the tuned zeta of each task, and from y when denoising."""
    from pnp_rgm.operators import make_operator
    from tiny import tiny_mmse_prior

    from pnp_rgm import benchmark

    seen = {}
    monkeypatch.setattr(peers, "diffpir", lambda op, y, d, s, **kw: (seen.update(kw), (op.pinv(y), 1))[1])
    twin = tiny_mmse_prior()
    for task, sigma in (("denoise", 0.1), ("sr2", 0.0)):
        ctx = type("Ctx", (), {"prior": twin, "seed": 0, "sigma": sigma, "task": task})()
        op = make_operator(task, (3, 8, 8))
        benchmark._peer("diffpir")(op, op.forward(torch.rand(1, 3, 8, 8)), ctx)
        if task == "denoise":
            assert seen["sigma_max"] == pytest.approx(0.1) and seen["zeta"] == 0.0
        else:
            assert seen["sigma_max"] == benchmark.trained_sigma_max(twin) and seen["zeta"] == 1.0


@pytest.mark.parametrize("method", [ddrm, dpir_hqs, diffpir])
def test_peers_start_from_x0(method):
    """x0 replaces A+y as the start: with a tiny sigma_max the first denoiser input is x0 itself
    (here inpainting's filled holes, which agree with y on the known pixels)."""
    from pnp_rgm.operators import make_operator
    from pnp_rgm.tasks import initial_estimate, known_pixels

    op = make_operator("inpaint", (3, 16, 16), missing=0.5, seed=1)
    x = torch.rand(1, 3, 16, 16)
    y = op.forward(x)
    x0 = initial_estimate(op, y)
    assert not torch.allclose(x0, op.pinv(y))  # holes filled, not 0
    assert torch.equal(x0[..., torch.from_numpy(known_pixels(op))], op.pinv(y)[..., torch.from_numpy(known_pixels(op))])
    first = []

    def record(z, s):
        first.append(z.clone())
        return z

    kw = {"sigma_max": 1e-6} if method is dpir_hqs else {"sigma_max": 1e-6, "sigma_min": 1e-7,
                                                          "generator": torch.Generator().manual_seed(0)}
    method(op, y, record, 0.0, x0=x0, **kw)
    assert float((first[0] - x0).abs().max()) < 1e-4
