"""Algorithm 3 of RGM: generate from pure noise in K restoration steps.

All functions here work in the network's [-1, 1] space except :func:`sample`, which returns
images in [0, 1]. ``G`` is a generator (``kind`` ``rgm`` or ``mmse``), ``process`` a
:class:`~pnp_rgm.processes.ForwardProcess`.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from pnp_rgm.errors import ShapeError

__all__ = ["to_net", "from_net", "restore_step", "sample_net", "sample", "sample_one_step", "sample_ode", "image_grid"]


def to_net(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] image -> [-1, 1] network space."""
    return x * 2.0 - 1.0


def from_net(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] network space -> [0, 1] image (clamped)."""
    return ((x + 1.0) * 0.5).clamp(0.0, 1.0)


def net_attr(G, name: str, default):
    """An attribute of a generator, looked up through a DDP/compile wrapper's ``module`` too."""
    return getattr(G, name, getattr(getattr(G, "module", None), name, default))


def restore_step(G, process, x_k: torch.Tensor, k, z: Optional[torch.Tensor] = None) -> torch.Tensor:
    """x0_hat = G(x_k, z, k) for an RGM generator; for a noise-level conditioned one (an MMSE twin,
    or an RGM generator with EDM preconditioning) the state is rescaled to
    x_k / a_k = x0 + (sigma_k / a_k) eps and the network is conditioned on log(sigma_k / a_k)
    (a twin has no latent and ignores z)."""
    b = x_k.shape[0]
    kk = torch.full((b,), int(k), dtype=torch.long) if isinstance(k, int) else k.to("cpu", torch.long).reshape(-1)
    if net_attr(G, "sigma_conditioned", False):
        a = process.a[kk].to(x_k.device, torch.float32)
        s = process.sigma[kk].to(x_k.device, torch.float32)
        return G(x_k / a.view(-1, *([1] * (x_k.dim() - 1))), torch.log(s / a), z)
    return G(x_k, kk.to(x_k.device).float(), z)


@torch.no_grad()
def sample_net(G, process, shape, *, generator: Optional[torch.Generator] = None, device=None,
               posterior: bool = False, z_mode: str = "random") -> torch.Tensor:
    """One batch of Algorithm 3 in network space: x_K ~ prior; for k = K..1: x0_hat = G(x_k, z, k),
    x_{k-1} ~ q(x_{k-1} | x_k, x0_hat) (``posterior``) or q(x_{k-1} | x0_hat). Returns x0_hat."""
    x = process.prior_sample(shape, device=device, generator=generator)
    nz = net_attr(G, "nz", 0)
    x0 = x
    for k in range(process.K, 0, -1):
        z = None
        if nz and z_mode == "random":
            z = torch.randn((shape[0], nz), device=device, generator=generator)
        x0 = restore_step(G, process, x, k, z).float()
        if k > 1:
            x = process.step_back(x, x0, k, posterior=posterior, generator=generator)
    return x0


def _batches(n: int, batch_size: int, progress: bool):
    it = range(math.ceil(n / batch_size))
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="sampling", unit="batch")
    return it


def _generator(device, seed: Optional[int]) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**31 - 1, (1,)).item()))
    return gen


@torch.no_grad()
def sample_one_step(G, log_sigma_gen: float, n: int, size: int | tuple[int, int] = 64, channels: int = 3, *,
                    seed: Optional[int] = None, batch_size: int = 16, device=None, progress: bool = False) -> torch.Tensor:
    """``n`` images (n, C, H, W) in [0, 1] from a one-step (RSD) generator: x = G(σ_g z, log σ_g)."""
    from pnp_rgm.rsd import one_step

    h, w = (size, size) if isinstance(size, int) else size
    if h <= 0 or w <= 0:
        raise ShapeError(f"size: must be positive, got {h}x{w}")
    device = device if device is not None else next(G.parameters()).device
    gen = _generator(device, seed)
    out = []
    for i in _batches(n, batch_size, progress):
        b = min(batch_size, n - i * batch_size)
        z = torch.randn((b, channels, h, w), device=device, generator=gen)
        out.append(from_net(one_step(G, z, log_sigma_gen).float()).cpu())
    return torch.cat(out, dim=0)


def karras_sigmas(sigma_max: float, sigma_min: float, steps: int, rho: float = 7.0) -> torch.Tensor:
    """Karras et al.'s (2022) noise levels from sigma_max down to sigma_min (``steps`` values)."""
    i = torch.arange(steps, dtype=torch.float64) / max(steps - 1, 1)
    return (sigma_max ** (1 / rho) + i * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho


@torch.no_grad()
def sample_ode(G, n: int, size: int | tuple[int, int] = 64, channels: int = 3, *, sigma_max: float = 1.0,
               sigma_min: float = 0.002, steps: int = 18, seed: Optional[int] = None, batch_size: int = 16,
               device=None, progress: bool = False, mask_known: Optional[float] = None,
               fixed_mask: bool = True, view=None) -> torch.Tensor:
    """``n`` images in [0, 1] from a noise-level-conditioned denoiser G(x, log σ) (an MMSE twin or an
    ambient teacher): Heun steps of the probability-flow ODE dx/dσ = (x − G(x, σ))/σ on Karras'
    grid from sigma_max down to sigma_min ([0, 1] units), then one last denoiser call at sigma_min
    (for an ambient teacher sigma_min is its data's noise level, below which it knows nothing).
    2·steps − 1 denoiser calls. ``mask_known`` (an ambient-mask teacher's ``prior.mask_known``):
    the denoiser sees the input through a random mask keeping that fraction of the pixels, one mask
    per image for the whole trajectory (``fixed_mask``, Ambient Diffusion's sampler) or a fresh
    one at every call. ``view(x, log σ, generator)`` (a spectral ambient teacher's
    ``prior.view``): the denoiser sees its input as the teacher's data showed it at that level."""
    h, w = (size, size) if isinstance(size, int) else size
    device = device if device is not None else next(G.parameters()).device
    gen = _generator(device, seed)
    sig = [float(v) for v in karras_sigmas(2 * sigma_max, 2 * sigma_min, steps)]  # network units

    from pnp_rgm.priors import random_known

    def den(x, s, known):
        ls = torch.full((x.shape[0],), math.log(s), device=device)
        if view is not None:
            x = view(x, ls, gen)
        if mask_known is None:
            return G(x, ls, None).float()
        if known is None:  # a fresh mask at every call
            known = random_known(x, mask_known, gen)
        return G(x * known, ls, None, mask=known).float()

    out = []
    for i in _batches(n, batch_size, progress):
        b = min(batch_size, n - i * batch_size)
        x = sig[0] * torch.randn((b, channels, h, w), device=device, generator=gen)
        fixed = random_known(x, mask_known, gen) if mask_known is not None and fixed_mask else None
        for a, c in zip(sig[:-1], sig[1:]):
            da = (x - den(x, a, fixed)) / a
            xc = x + (c - a) * da
            x = x + (c - a) * 0.5 * (da + (xc - den(xc, c, fixed)) / c)
        out.append(from_net(den(x, sig[-1], fixed)).cpu())
    return torch.cat(out, dim=0)


def sample(G, process, n: int, size: int | tuple[int, int] = 64, channels: int = 3, *, seed: Optional[int] = None,
           batch_size: int = 16, device=None, posterior: bool = False, progress: bool = False) -> torch.Tensor:
    """Generate ``n`` images (n, C, H, W) in [0, 1] from pure noise (Algorithm 3)."""
    h, w = (size, size) if isinstance(size, int) else size
    if h <= 0 or w <= 0 or h % process.multiple or w % process.multiple:
        raise ShapeError(f"size: must be positive and divisible by {process.multiple} for this process, got {h}x{w}")
    if device is None:
        device = next(G.parameters()).device
    gen = _generator(device, seed)
    out = []
    it = _batches(n, batch_size, progress)
    was_training = G.training
    G.eval()
    try:
        for i in it:
            b = min(batch_size, n - i * batch_size)
            out.append(from_net(sample_net(G, process, (b, channels, h, w), generator=gen, device=device,
                                           posterior=posterior)).cpu())
    finally:
        G.train(was_training)
    return torch.cat(out, dim=0)


def image_grid(imgs: torch.Tensor, nrow: int, pad: int = 2) -> np.ndarray:
    """(N, C, H, W) images in [0, 1] -> one (H', W', C) float32 grid, ``nrow`` images per row,
    white ``pad``-pixel borders (ready for :func:`pnp_rgm.io.write_image`)."""
    n, c, h, w = imgs.shape
    nrow = max(1, min(nrow, n))
    rows = math.ceil(n / nrow)
    out = np.ones((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), np.float32)
    a = imgs.detach().float().clamp(0, 1).cpu().numpy().transpose(0, 2, 3, 1)
    for i in range(n):
        r, q = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[y:y + h, x:x + w] = a[i]
    return out
