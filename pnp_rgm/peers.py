"""Peers' algorithms over the shared interfaces: an :class:`~pnp_rgm.operators.SVDOperator` and a
σ-conditioned denoiser ``denoise(x, sigma) -> x0_hat`` (images in [0, 1], ``sigma`` in [0, 1]
units; e.g. the MMSE twin's :meth:`Prior.denoise`). Our own code, written from the papers:

* :func:`dpir_hqs` — half-quadratic splitting with a decreasing noise schedule (Zhang et al., DPIR 2021).
* :func:`ddrm` — Denoising Diffusion Restoration Models in the operator's spectral space
  (Kawar et al. 2022), variance-exploding form ``x_t = x_0 + σ_t ε``, with η and η_b.
* :func:`diffpir` — DiffPIR (Zhu et al. 2023): denoise, exact data prox, re-noise with ζ.

Each returns ``(x, nfe)``: the estimate and the number of denoiser calls.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from pnp_rgm.errors import TaskError
from pnp_rgm.operators import SVDOperator

Denoiser = Callable[[torch.Tensor, float], torch.Tensor]


def geometric(start: float, stop: float, n: int) -> list[float]:
    """``n`` levels from ``start`` to ``stop`` (inclusive), evenly spaced in log."""
    if n < 1 or not (start > 0 and stop > 0):
        raise TaskError(f"a noise schedule needs n >= 1 and positive levels, got n={n}, {start}..{stop}")
    if n == 1:
        return [float(start)]
    return [float(start * (stop / start) ** (i / (n - 1))) for i in range(n)]


def dpir_hqs(op: SVDOperator, y: torch.Tensor, denoise: Denoiser, sigma_y: float, *, iters: int = 8,
             sigma_max: float = 49 / 255, lam: float = 0.23, x0: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """DPIR: ``x_k = argmin ½‖Ax − y‖² + (λσ_y²/(2σ_k²))‖x − z_{k−1}‖²`` (exact prox), ``z_k = D(x_k, σ_k)``,
    σ_k geometric from ``sigma_max`` to ``max(σ_y, 1/255)``, ``z_0 = x0`` (default ``A⁺y``). Noiseless
    data: the data step is the projection onto ``Ax = y``."""
    levels = geometric(sigma_max, max(sigma_y, 1 / 255), iters)
    z = op.pinv(y) if x0 is None else x0
    for s in levels:
        gamma = float("inf") if sigma_y == 0 else s * s / (lam * sigma_y * sigma_y)
        x = op.prox_l2(z, y, gamma)
        z = denoise(x, s)
    return z, len(levels)


def ddrm(op: SVDOperator, y: torch.Tensor, denoise: Denoiser, sigma_y: float, *, steps: int = 20,
         sigma_max: float = 1.0, sigma_min: float = 0.002, eta: float = 0.85, eta_b: float = 1.0,
         generator: torch.Generator | None = None, x0: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """DDRM sampling in the spectral domain of ``op`` (Kawar et al. 2022, Eq. 7–8, VE form).

    With ``y_bar = Σ⁺Uᵀy`` and coefficients ``x̄ = Vᵀx``: null-space coefficients follow DDIM with
    η; observed ones with ``σ_{t−1} < σ_y/s`` are pulled towards ``y_bar``; the others are set
    from ``(1 − η_b)x̄₀ + η_b ȳ`` plus the missing noise. With ``σ_y = 0`` and ``η_b = 1`` the
    result satisfies ``A x = y`` exactly on the resolved singular values. The null-space start is
    ``Vᵀx0 + σ_T ε``: with ``x0 = None`` its mean is 0, right for a start at pure noise (σ_T ≫ 1);
    a start lower in the prior's range needs a guess of the null space there (e.g. inpainting's
    filled holes, :func:`pnp_rgm.tasks.initial_estimate`).
    """
    levels = geometric(sigma_max, sigma_min, steps) + [0.0]
    k = op.rank
    s = op.singulars(y)
    pos = op.resolved(s, dtype=y.dtype)  # as pinv: s at rounding level counts as zero (null space)
    s_safe = torch.where(pos, s, torch.ones_like(s))
    y_bar = torch.where(pos, op.Ut(y)[:, :k] / s_safe, torch.zeros_like(s))
    ny = torch.where(pos, sigma_y / s_safe, torch.full_like(s, math.inf))  # σ_y / s_i (inf on s = 0)

    def randn(like):
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device="cpu").to(like.device)

    # initialization at σ_T
    st = levels[0]
    c = randn(torch.empty(y.shape[0], op.in_numel, dtype=y.dtype, device=y.device)) * st
    if x0 is not None:  # null-space mean from x0 (coefficients past the rank, and unresolved ones)
        null = torch.cat([~pos.expand(c.shape[0], k), torch.ones_like(c[:, k:], dtype=torch.bool)], dim=1)
        c = c + torch.where(null, op.Vt(x0), torch.zeros_like(c))
    head = torch.where(pos, y_bar + torch.sqrt((st * st - ny * ny).clamp_min(0)) * c[:, :k] / st, c[:, :k])
    c = torch.cat([head, c[:, k:]], dim=1)
    nfe = 0
    for st, sn in zip(levels[:-1], levels[1:]):
        x0 = denoise(op.V(c), st)
        nfe += 1
        c0 = op.Vt(x0)
        eps = randn(c)
        # null space: DDIM with eta
        null = c0 + math.sqrt(1 - eta**2) * sn * (c - c0) / st + eta * sn * eps
        h0, he = c0[:, :k], eps[:, :k]
        below = h0 + math.sqrt(1 - eta**2) * sn * (y_bar - h0) / torch.where(pos, ny, torch.ones_like(ny)) \
            + eta * sn * he
        above = (1 - eta_b) * h0 + eta_b * y_bar + torch.sqrt((sn * sn - (ny * eta_b) ** 2).clamp_min(0)) * he
        head = torch.where(~pos, null[:, :k], torch.where(sn < ny, below, above))
        c = torch.cat([head, null[:, k:]], dim=1)
    return op.V(c), nfe


def diffpir(op: SVDOperator, y: torch.Tensor, denoise: Denoiser, sigma_y: float, *, steps: int = 20,
            sigma_max: float = 1.0, sigma_min: float = 0.002, lam: float = 7.0, zeta: float = 0.3,
            generator: torch.Generator | None = None, x0: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """DiffPIR (VE form): ``x̂₀ = D(x_t, σ_t)``; data step ``x̂₀ ← prox(x̂₀, y, γ_t)`` with
    ``γ_t = σ_t²/(λσ_y²)`` (projection when ``σ_y = 0``); ``x_{t−1} = x̂₀ + σ_{t−1}(√(1−ζ)·ε̂ + √ζ·ε)``
    with ``ε̂ = (x_t − x̂₀)/σ_t``. The start is ``x_T = x0 + √(σ_max² − σ_y²)·ε`` (``x0`` default
    A⁺y): the observation's own noise counts towards σ_max, so for denoising ``sigma_max = σ_y``
    starts from ``y`` itself, the state the sampler would reach at that level (adding σ_max of fresh
    noise on top of a noisy ``y`` left 24.4 dB where this start gives 28–29 on CBSD432 crops at
    σ = 25/255)."""
    levels = geometric(sigma_max, sigma_min, steps) + [0.0]
    x0 = op.pinv(y) if x0 is None else x0
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device="cpu").to(x0.device)
    x = x0 + math.sqrt(max(levels[0] ** 2 - sigma_y ** 2, 0.0)) * noise
    nfe = 0
    for st, sn in zip(levels[:-1], levels[1:]):
        x0 = denoise(x, st)
        nfe += 1
        gamma = float("inf") if sigma_y == 0 else st * st / (lam * sigma_y * sigma_y)
        x0 = op.prox_l2(x0, y, gamma)
        eps_hat = (x - x0) / st
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
        x = x0 + sn * (math.sqrt(1 - zeta) * eps_hat + math.sqrt(zeta) * eps)
    return x0, nfe


def bm3d_denoiser() -> Denoiser:
    """BM3D (CBM3D for colour) from the optional ``bm3d`` package as a ``denoise(x, sigma)`` callable."""
    try:
        import bm3d
    except ImportError:
        raise TaskError("BM3D needs the optional bm3d package: pip install 'pnp-rgm[bench]'") from None
    import numpy as np

    def denoise(x: torch.Tensor, sigma: float) -> torch.Tensor:
        out = []
        for img in x.detach().cpu().double().numpy():
            hwc = img.transpose(1, 2, 0)
            if hwc.shape[2] == 3:
                d = bm3d.bm3d_rgb(hwc, float(sigma))
            else:
                d = np.stack([bm3d.bm3d(hwc[..., c], float(sigma)) for c in range(hwc.shape[2])], axis=-1)
            out.append(np.asarray(d).transpose(2, 0, 1))
        return torch.from_numpy(np.stack(out)).to(dtype=x.dtype, device=x.device)

    return denoise
