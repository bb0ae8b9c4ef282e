"""Every operator against its dense matrix (float64, relative tolerances)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pnp_rgm.errors import ShapeError, TaskError
from pnp_rgm.operators import (
    bicubic_down_matrix,
    make_operator,
    observe,
)

RTOL = 1e-10


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def _t(a, shape):
    return torch.from_numpy(np.ascontiguousarray(a)).reshape(-1, *shape)


def _pinv(a, rcond):
    try:
        return np.linalg.pinv(a, rtol=rcond)
    except TypeError:  # NumPy < 2
        return np.linalg.pinv(a, rcond=rcond)


def test_forward_matches_reference(op_case, rng):
    op, ref, dense = op_case
    x = rng.standard_normal((3, *op.in_shape))
    y = op.forward(torch.from_numpy(x)).numpy()
    assert y.shape == (3, *op.out_shape)
    assert rel_err(y.reshape(3, -1), x.reshape(3, -1) @ dense.T) < RTOL
    if ref is not None:
        assert rel_err(y, ref(x)) < RTOL


def test_singular_values_match_dense_svd(op_case):
    op, _, dense = op_case
    s = op.singulars().numpy()
    assert s.shape == (op.rank,) and op.rank <= min(op.in_numel, op.out_numel)
    assert np.all(s >= 0)
    ref = np.linalg.svd(dense, compute_uv=False)
    ours = np.sort(np.concatenate([s, np.zeros(len(ref) - len(s))]))[::-1]
    assert rel_err(ours, ref) < RTOL


def test_svd_pieces_are_orthonormal_and_reassemble_A(op_case):
    op, _, dense = op_case
    n, m, k = op.in_numel, op.out_numel, op.rank
    eye_n = torch.eye(n, dtype=torch.float64)
    eye_m = torch.eye(m, dtype=torch.float64)
    v = op.V(eye_n).reshape(n, n).T.numpy()  # columns = right singular vectors
    u = op.U(eye_m).reshape(m, m).T.numpy()
    assert rel_err(v.T @ v, np.eye(n)) < RTOL
    assert rel_err(u.T @ u, np.eye(m)) < RTOL
    vt = op.Vt(eye_n.reshape(n, *op.in_shape)).numpy().T  # (N, N): Vt applied to basis
    ut = op.Ut(eye_m.reshape(m, *op.out_shape)).numpy().T
    assert rel_err(vt, v.T) < RTOL and rel_err(ut, u.T) < RTOL
    s = op.singulars().numpy()
    assert rel_err(u[:, :k] @ np.diag(s) @ v[:, :k].T, dense) < RTOL


def test_head_maps_are_V_and_U_of_zero_padded_coefficients(op_case, rng):
    op, _, _ = op_case
    n, m, k = op.in_numel, op.out_numel, op.rank
    v = op.V(torch.eye(n, dtype=torch.float64)).reshape(n, n).T.numpy()
    u = op.U(torch.eye(m, dtype=torch.float64)).reshape(m, m).T.numpy()
    c = rng.standard_normal((2, k))
    assert rel_err(op.V_head(torch.from_numpy(c)).reshape(2, n).numpy(), c @ v[:, :k].T) < RTOL
    assert rel_err(op.U_head(torch.from_numpy(c)).reshape(2, m).numpy(), c @ u[:, :k].T) < RTOL


def test_adjoint(op_case, rng):
    op, _, dense = op_case
    y = rng.standard_normal((2, op.out_numel))
    got = op.adjoint(_t(y, op.out_shape)).reshape(2, -1).numpy()
    assert rel_err(got, y @ dense) < RTOL


@pytest.mark.parametrize("rcond", [1e-10, 1e-3])
def test_pinv_matches_numpy(op_case, rng, rcond):
    op, _, dense = op_case
    y = rng.standard_normal((2, op.out_numel))
    got = op.pinv(_t(y, op.out_shape), rcond=rcond).reshape(2, -1).numpy()
    assert rel_err(got, y @ _pinv(dense, rcond).T) < 1e-8


def test_pinv_default_rcond(op_case, rng):
    op, _, dense = op_case
    y = rng.standard_normal((1, op.out_numel))
    rcond = op.default_rcond(torch.float64)
    got = op.pinv(_t(y, op.out_shape)).reshape(1, -1).numpy()
    assert rel_err(got, y @ _pinv(dense, rcond).T) < 1e-8


@pytest.mark.parametrize("gamma", [1e-3, 0.5, 1.0, 7.0, 1e4])
def test_prox_matches_linear_solve(op_case, rng, gamma):
    op, _, dense = op_case
    v = rng.standard_normal((2, op.in_numel))
    y = rng.standard_normal((2, op.out_numel))
    got = op.prox_l2(_t(v, op.in_shape), _t(y, op.out_shape), gamma).reshape(2, -1).numpy()
    lhs = gamma * dense.T @ dense + np.eye(op.in_numel)
    ref = np.linalg.solve(lhs, (v + gamma * y @ dense).T).T
    assert rel_err(got, ref) < 1e-8


def test_prox_per_item_gamma(op_case, rng):
    op, _, dense = op_case
    v = rng.standard_normal((2, op.in_numel))
    y = rng.standard_normal((2, op.out_numel))
    gammas = [0.3, 5.0]
    got = op.prox_l2(_t(v, op.in_shape), _t(y, op.out_shape), torch.tensor(gammas, dtype=torch.float64)).reshape(2, -1).numpy()
    for i, g in enumerate(gammas):
        ref = np.linalg.solve(g * dense.T @ dense + np.eye(op.in_numel), v[i] + g * dense.T @ y[i])
        assert rel_err(got[i], ref) < 1e-8


def test_prox_gamma_inf_is_consistent_projection(op_case, rng):
    op, _, dense = op_case
    x_true = rng.standard_normal((1, op.in_numel))
    y = x_true @ dense.T  # consistent observation
    v = rng.standard_normal((1, op.in_numel))
    got = op.prox_l2(_t(v, op.in_shape), _t(y, op.out_shape), float("inf")).reshape(1, -1).numpy()
    s = op.singulars().numpy()
    if np.all(s > 1e-12 * s.max()):
        assert rel_err(got @ dense.T, y) < 1e-8
    # it is the orthogonal projection: v - got is orthogonal to the null space of A
    null = np.linalg.svd(dense)[2][np.linalg.matrix_rank(dense):].T
    if null.size:
        assert np.abs((v - got) @ null).max() < 1e-8


def test_prox_gamma_inf_uses_pinvs_rcond_on_an_ill_conditioned_blur():
    """A 64x64 Gaussian blur has singular values down to ~1e-18: the projection keeps v's coefficients
    below rcond (as pinv drops them) instead of dividing rounding error by them."""
    op = make_operator("deblur-gauss", (1, 64, 64))
    x = torch.rand(1, 1, 64, 64)
    s = op.singulars(x)
    assert float(s.min()) < 1e-10 * float(s.max())  # the case this test is about
    y = op.forward(x)
    v = x + 0.05 * torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    got = op.prox_l2(v, y, float("inf"))
    assert torch.isfinite(got).all() and float((got - x).abs().max()) < 1.0
    keep = op.resolved(s, dtype=x.dtype)
    assert bool(keep.any()) and not bool(keep.all())
    cg, cv = op.Vt(got)[0, : op.rank], op.Vt(v)[0, : op.rank]
    assert torch.allclose(cg[~keep], cv[~keep], atol=1e-5)  # unresolved: kept from v
    ref = op.Vt(op.pinv(y))[0, : op.rank]
    assert rel_err(cg[keep].numpy(), ref[keep].numpy()) < 1e-4  # resolved: A+y's coefficients
    with pytest.raises(TaskError, match="rcond"):
        op.prox_l2(v, y, float("inf"), rcond=-1.0)


def test_float32_and_batch(op_case):
    op, ref, dense = op_case
    x = torch.rand(4, *op.in_shape, dtype=torch.float32)
    y = op.forward(x)
    assert y.dtype == torch.float32 and y.shape == (4, *op.out_shape)
    assert rel_err(y.reshape(4, -1).numpy(), x.double().reshape(4, -1).numpy() @ dense.T) < 1e-5
    assert op.prox_l2(x, y, 0.5).dtype == torch.float32


def test_bicubic_interior_matches_torch_antialias():
    # Away from the border our MATLAB-style matrix equals torch's antialiased bicubic resize.
    x = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    for n in (2, 4):
        a = torch.from_numpy(bicubic_down_matrix(32, n))
        ours = a @ x @ a.T
        ref = F.interpolate(x, scale_factor=1 / n, mode="bicubic", antialias=True, align_corners=False)
        inner = slice(2, 32 // n - 2)
        assert torch.allclose(ours[..., inner, inner], ref[..., inner, inner], atol=1e-12)
    assert np.allclose(bicubic_down_matrix(12, 3).sum(1), 1.0)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "name, shape, params, exc, text",
    [
        ("sr5", (3, 12, 10), {}, ShapeError, "divisible by 5"),
        ("sr4-bicubic", (3, 8, 6), {}, ShapeError, "divisible by 4"),
        ("sr1", (3, 8, 8), {}, TaskError, "in [2, 32]"),
        ("sr0", (3, 8, 8), {}, TaskError, "in [2, 32]"),
        ("sr1000", (3, 8, 8), {}, TaskError, "in [2, 32]"),  # not an N²×N² basis of 7 TiB
        ("sr04", (3, 8, 8), {}, TaskError, "valid tasks"),
        ("sr", (3, 8, 8), {}, TaskError, "valid tasks"),  # was taken for 'matrix'
        ("sr-bicubic", (3, 8, 8), {}, TaskError, "valid tasks"),
        ("deblur-gauss", (3, 8, 8), {"window": ((0, 4), (0, 4)), "width": 1.0}, None, ""),
        ("colorize", (3, 8, 8), {"window": ((0, 4), (0, 4))}, TaskError, "window: only for"),
        ("blur", (3, 8, 8), {}, TaskError, "valid tasks"),
        ("colorize", (1, 8, 8), {}, ShapeError, "3-channel"),
        ("denoise", (3, 8), {}, ShapeError, "(C, H, W)"),
        ("denoise", (3, 0, 8), {}, ShapeError, "(C, H, W)"),
        ("denoise", (3, 8, 8), {"width": 2}, TaskError, "unknown parameter"),
        ("deblur-gauss", (3, 8, 8), {"size": 4}, TaskError, "odd"),
        ("deblur-gauss", (3, 8, 8), {"width": -1}, TaskError, "width"),
        ("deblur-uniform", (3, 8, 8), {"size": 0}, TaskError, "odd"),
        ("inpaint", (3, 8, 8), {}, TaskError, "exactly one"),
        ("inpaint", (3, 8, 8), {"missing": 0.5, "box": "center"}, TaskError, "exactly one"),
        ("inpaint", (3, 8, 8), {"mask": np.ones((4, 4))}, ShapeError, "mask"),
        ("inpaint", (3, 8, 8), {"mask": np.zeros((8, 8))}, TaskError, "no pixel"),
        ("inpaint", (3, 8, 8), {"missing": 1.5}, TaskError, "[0, 1)"),
        ("inpaint", (3, 8, 8), {"box": (0, 0, 9, 9)}, TaskError, "inside"),
        ("matrix", (1, 2, 2), {"matrix": np.ones((3, 5))}, ShapeError, "(M, 4)"),
    ],
)
def test_bad_input_raises_clear_error(name, shape, params, exc, text):
    if exc is None:  # the valid neighbour of a case below
        make_operator(name, shape, **params)
        return
    with pytest.raises(exc) as info:
        make_operator(name, shape, **params)
    assert text in str(info.value)
    assert "\n" not in str(info.value)


def test_wrong_tensor_shape_is_reported():
    op = make_operator("sr2", (3, 8, 8))
    with pytest.raises(ShapeError, match=r"expects \(B, 3, 8, 8\)"):
        op.forward(torch.zeros(1, 3, 8, 6))
    with pytest.raises(ShapeError):
        op.pinv(torch.zeros(1, 3, 8, 8))
    with pytest.raises(TaskError, match="gamma"):
        op.prox_l2(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 4, 4), -1.0)


def test_errors_are_value_errors():
    assert issubclass(TaskError, ValueError) and issubclass(ShapeError, ValueError)


# ----------------------------------------------------------------------------- observe
def test_observe_noise_level_and_seed():
    op = make_operator("sr2", (3, 64, 64))
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    y1 = observe(op, x, 0.1, torch.Generator().manual_seed(0))
    y2 = observe(op, x, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(y1, y2)
    resid = (y1 - op.forward(x)).std().item()
    assert abs(resid - 0.1) < 0.01
    assert torch.equal(observe(op, x, 0.0), op.forward(x))
    with pytest.raises(TaskError, match=r"\[0, 1\]"):
        observe(op, x, 2.0)


def test_observe_inpaint_keeps_missing_pixels_zero():
    op = make_operator("inpaint", (3, 16, 16), missing=0.5, seed=1)
    y = observe(op, torch.rand(1, 3, 16, 16), 0.05, torch.Generator().manual_seed(0))
    assert torch.all(y[:, ~op.mask] == 0)
    assert (y[:, op.mask] != 0).float().mean() > 0.99


def test_large_image_operators_are_fast_enough():
    # A photo-sized operator builds and applies (smoke test of the non-dense paths).
    for name, dtype in (("sr4", torch.float32), ("sr4-bicubic", torch.float32),
                        ("colorize", torch.float32), ("deblur-gauss", torch.float64)):
        x = torch.rand(1, 3, 256, 192, dtype=dtype)
        op = make_operator(name, (3, 256, 192))
        y = op.forward(x)
        assert torch.allclose(op.forward(op.pinv(y)), y, atol=1e-4)


def test_fill_missing_keeps_known_pixels_and_fills_holes_smoothly():
    from pnp_rgm.errors import TaskError
    from pnp_rgm.operators import box_mask, fill_missing, random_mask

    torch.manual_seed(0)
    for known in (box_mask((37, 30)), random_mask((37, 30), 0.7, seed=1)):
        m = torch.from_numpy(known)
        x = torch.rand(2, 3, 37, 30, dtype=torch.float64)
        f = fill_missing(x * m, m)
        assert torch.equal(f[..., m], x[..., m])  # known pixels untouched, whatever the holes held
        assert torch.allclose(fill_missing(torch.full_like(x, 0.3) * m, m), torch.full_like(x, 0.3))  # constants exactly
        lo, hi = x[..., m].amin(-1), x[..., m].amax(-1)  # a convex blend: inside the known range
        assert bool((f[..., ~m] >= lo[..., None] - 1e-12).all() and (f[..., ~m] <= hi[..., None] + 1e-12).all())
    ramp = torch.linspace(0, 1, 40, dtype=torch.float64).expand(1, 1, 40, 40)
    m = torch.from_numpy(box_mask((40, 40)))
    err = (fill_missing(ramp * m, m) - ramp).abs()[..., ~m]
    assert err.max() < 0.15 and err.mean() < 0.05 < (ramp[..., ~m]).mean()  # a smooth image nearly recovered (0-fill: 0.5)
    with pytest.raises(TaskError, match="no known pixel"):
        fill_missing(ramp, torch.zeros(40, 40))
