"""Plug-and-play Douglas–Rachford splitting (DRS) over an operator's exact data prox.

Solves ``min_x  f(x) + g(x)`` with the data term ``f(x) = ½‖Ax − y‖²`` and a prior ``g`` that is
only available through a *prior step* ``D`` (a proximal map of ``g``, a denoiser, or an RGM
restoration). One iteration, as the RGM reference runs it::

    u = D(x)                        # prior step
    w = prox_{λf}(2u − x)           # exact data step (SVD prox of the operator)
    x = x + (w − u)                 # DRS update

The two interfaces are small on purpose: any object with ``prox_l2(v, y, gamma)`` and
``pinv(y)`` (every :class:`~pnp_rgm.operators.SVDOperator`), and any callable
``prior_step(x, it) -> u`` on ``(B, C, H, W)`` tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

import numpy as np
import torch

from pnp_rgm.errors import TaskError


class ProxOperator(Protocol):
    """What DRS needs from an operator."""

    def prox_l2(self, v: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor: ...

    def pinv(self, y: torch.Tensor) -> torch.Tensor: ...


#: prior step: ``u = D(x)`` at iteration ``it`` (0-based)
PriorStep = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass
class DRSState:
    """The solver state after iteration ``it`` (1-based count of finished iterations)."""

    x: torch.Tensor  #: the DRS variable
    u: torch.Tensor  #: output of the prior step
    w: torch.Tensor  #: output of the data step (consistent with y as λ → ∞)
    it: int


#: called after every iteration; returning ``False`` stops early
Callback = Callable[[DRSState], Optional[bool]]


@dataclass
class PSNRTrace:
    """A DRS callback for tuning and plots: the PSNR (dB, mean over the batch) of every iterate's
    data step ``w`` (clipped to [0, 1]) against a known ``truth`` ``(B, C, H, W)`` in [0, 1], in
    ``psnr``; with ``patience`` it stops the loop once that many iterations have passed without a
    new best. Independent chains batched with the images (``samples`` > 1) are averaged first."""

    truth: torch.Tensor
    patience: Optional[int] = None
    psnr: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.patience is not None and int(self.patience) < 1:
            raise TaskError(f"patience must be >= 1 iteration (or None), got {self.patience}")

    def __call__(self, state: DRSState) -> Optional[bool]:
        t = self.truth.to(state.w.device, state.w.dtype)
        w = state.w.clamp(0, 1).reshape(-1, *t.shape).mean(0)
        mse = (w - t).square().flatten(1).mean(1).clamp_min(1e-20)
        self.psnr.append(float((-10 * torch.log10(mse)).mean()))
        best = max(range(len(self.psnr)), key=self.psnr.__getitem__)
        if self.patience is not None and len(self.psnr) - 1 - best >= self.patience:
            return False
        return None


def drs(op: ProxOperator, y: torch.Tensor, prior_step: PriorStep, *, lam: float, iters: int,
        x0: torch.Tensor | None = None, callback: Callback | None = None) -> DRSState:
    """Run ``iters`` DRS iterations from ``x0`` (default ``A⁺y``) and return the final state.

    ``lam`` (λ) weighs the data term in the prox ``prox_{λf}``; ``float('inf')`` enforces
    ``A w = y`` exactly (noiseless observations).
    """
    if int(iters) < 1:
        raise TaskError(f"iters must be >= 1, got {iters}")
    if not float(lam) > 0:
        raise TaskError(f"lam must be > 0 (inf allowed), got {lam}")
    x = op.pinv(y) if x0 is None else x0
    state = DRSState(x=x, u=x, w=x, it=0)
    for it in range(int(iters)):
        u = prior_step(x, it)                # u = D(x)
        w = op.prox_l2(2 * u - x, y, lam)    # w = prox_{λf}(2u − x)
        x = x + (w - u)                      # x ← x + (w − u)
        state = DRSState(x=x, u=u, w=w, it=it + 1)
        if callback is not None and callback(state) is False:
            break
    return state


def denoiser_prior_step(denoise: Callable[[torch.Tensor, float], torch.Tensor], sigmas: list[float],
                        alpha: float = 1.0) -> PriorStep:
    """Prior step ``u = (1 − alpha)·x + alpha·denoise(x, σ_it)`` over a schedule of noise levels
    (cycled): any ``denoise(x, sigma)`` plugs into :func:`drs`, e.g. BM3D."""
    def step(x: torch.Tensor, it: int) -> torch.Tensor:
        return (1.0 - alpha) * x + alpha * denoise(x, sigmas[it % len(sigmas)])

    return step


def tv_prior_step(weight: float) -> PriorStep:
    """Prior step ``D(x) = argmin_u ½‖u − x‖² + weight·TV(u)`` by scikit-image's Chambolle
    algorithm (isotropic TV, channels coupled), applied per batch item."""
    from skimage.restoration import denoise_tv_chambolle

    if not float(weight) > 0:
        raise TaskError(f"tv_weight must be > 0, got {weight}")

    def step(x: torch.Tensor, it: int) -> torch.Tensor:
        arr = x.detach().cpu().double().numpy()
        out = np.stack([
            denoise_tv_chambolle(a.transpose(1, 2, 0), weight=float(weight), channel_axis=-1).transpose(2, 0, 1)
            for a in arr
        ])
        return torch.from_numpy(out).to(dtype=x.dtype, device=x.device)

    return step
