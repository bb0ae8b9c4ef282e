"""DRS against closed forms, on every operator of the registry."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pnp_rgm.errors import TaskError
from pnp_rgm.operators import make_operator
from pnp_rgm.solvers import drs, tv_prior_step
from pnp_rgm.tasks import TVConfig, clean_shape, restore_baseline


@pytest.mark.parametrize("lam, mu", [(1.0, 0.5), (4.0, 0.1)])
def test_drs_with_quadratic_prior_reaches_closed_form(op_case, rng, lam, mu):
    # prior step u = prox of (mu/2)||x||^2 (step 1): DRS with prox_{lam f} then minimizes
    # ½||Ax − y||² + (mu / (2 lam)) ||x||², whose minimizer is (AᵀA + (mu/lam) I)⁻¹ Aᵀ y.
    op, _, dense = op_case
    y = rng.standard_normal((1, op.out_numel))
    ref = np.linalg.solve(dense.T @ dense + (mu / lam) * np.eye(op.in_numel), dense.T @ y[0])
    yt = torch.from_numpy(y).reshape(1, *op.out_shape)
    state = drs(op, yt, lambda x, it: x / (1.0 + mu), lam=lam, iters=400,
                x0=torch.zeros(1, *op.in_shape, dtype=torch.float64))
    for est in (state.u, state.w):
        got = est.reshape(-1).numpy()
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-6


def test_drs_callback_and_early_stop():
    op = make_operator("sr2", (1, 8, 8))
    y = op(torch.rand(1, 1, 8, 8, dtype=torch.float64))
    seen = []
    state = drs(op, y, lambda x, it: x, lam=1.0, iters=50, callback=lambda s: seen.append(s.it) or s.it < 3)
    assert seen == [1, 2, 3] and state.it == 3


def test_drs_rejects_bad_parameters():
    op = make_operator("denoise", (1, 4, 4))
    y = torch.zeros(1, 1, 4, 4)
    with pytest.raises(TaskError, match="iters"):
        drs(op, y, lambda x, it: x, lam=1.0, iters=0)
    with pytest.raises(TaskError, match="lam"):
        drs(op, y, lambda x, it: x, lam=0.0, iters=1)


def test_tv_step_is_a_denoiser():
    x = torch.zeros(2, 3, 16, 16, dtype=torch.float64)
    x[..., 8:] = 1
    noisy = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = tv_prior_step(0.1)(noisy, 0)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert (out - x).pow(2).mean() < 0.3 * (noisy - x).pow(2).mean()
    with pytest.raises(TaskError):
        tv_prior_step(0.0)


def test_tv_restoration_beats_pinv_on_noisy_denoising():
    import skimage.data
    from skimage.transform import resize

    x = torch.from_numpy(resize(skimage.data.astronaut(), (64, 64), anti_aliasing=True).transpose(2, 0, 1).copy())[None]
    op = make_operator("denoise", (3, 64, 64))
    y = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    err = lambda z: (z - x).pow(2).mean().item()  # noqa: E731
    assert err(restore_baseline(op, y, "tv", sigma=0.1)) < 0.5 * err(restore_baseline(op, y, "none"))


def test_tv_config_defaults_and_overrides():
    assert TVConfig.for_task("sr4", 0.0).lam == float("inf")
    assert TVConfig.for_task("deblur-gauss", 0.0).lam == 1000.0
    assert TVConfig.for_task("denoise", 0.1).tv_weight == pytest.approx(0.05)
    assert TVConfig.for_task("sr4", 0.0, iters="7").iters == 7
    with pytest.raises(TaskError, match="unknown setting"):
        TVConfig.for_task("sr4", 0.0, foo=1)
    with pytest.raises(TaskError, match="must be an integer"):
        TVConfig.for_task("sr4", 0.0, iters="many")


def test_clean_shape_geometry():
    assert clean_shape("sr4", (3, 10, 12)) == (3, 40, 48)
    assert clean_shape("sr3-bicubic", (1, 5, 5)) == (1, 15, 15)
    assert clean_shape("colorize", (1, 5, 6)) == (3, 5, 6)
    assert clean_shape("deblur-gauss", (3, 5, 6)) == (3, 5, 6)
