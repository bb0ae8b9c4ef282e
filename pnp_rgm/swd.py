"""Sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018, PGGAN), a
distribution distance between two sets of images that needs no pretrained network.

    from pnp_rgm.swd import laplacian_swd
    d = laplacian_swd(a, b, seed=0)   # a, b: (N, C, H, W) in [0, 1]; {"levels": {16: .., 32: .., 64: ..}, "avg": ..}

Each image is split into a Laplacian pyramid (5-tap binomial blur, factor 2, down to
``min_size``); from every level, ``patches_per_image`` random 7x7 neighbourhoods are taken as
descriptors, normalised per channel by their set's own mean and std (as PGGAN), and the sliced
Wasserstein-1 distance between the two descriptor sets is averaged over ``n_dirs`` random unit
directions, ``repeats`` times. Values are x 1e3 (PGGAN's reporting unit); lower is closer. The
finest level measures texture and noise, the coarsest colour and layout.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from pnp_rgm.errors import ShapeError

__all__ = ["laplacian_pyramid", "patch_descriptors", "sliced_wasserstein", "laplacian_swd"]

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = (_BINOMIAL[:, None] * _BINOMIAL[None]).to(x)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, groups=c)


def laplacian_pyramid(x: torch.Tensor, min_size: int = 16) -> list[torch.Tensor]:
    """Band-pass levels from the finest (full size) down, then the low-pass residual at ``min_size``."""
    levels = []
    while x.shape[-1] > min_size and x.shape[-2] > min_size:
        down = _blur(x)[..., ::2, ::2]
        up = torch.zeros_like(x)
        up[..., ::2, ::2] = down  # zero insertion, then the same blur x 4
        levels.append(x - 4 * _blur(up))
        x = down
    levels.append(x)
    return levels


def patch_descriptors(level: torch.Tensor, per_image: int, size: int = 7,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(N * per_image, C * size * size) random size x size neighbourhoods, normalised per channel."""
    n, c, h, w = level.shape
    ys = torch.randint(0, h - size + 1, (n, per_image), generator=generator)
    xs = torch.randint(0, w - size + 1, (n, per_image), generator=generator)
    off = torch.arange(size)
    rows = (ys[..., None] + off)[..., :, None].expand(n, per_image, size, size)
    cols = (xs[..., None] + off)[..., None, :].expand(n, per_image, size, size)
    idx = torch.arange(n)[:, None, None, None].expand_as(rows)
    d = level.permute(0, 2, 3, 1)[idx, rows, cols]  # (n, per_image, size, size, c)
    d = d.reshape(-1, size * size, c)
    d = (d - d.mean(dim=(0, 1))) / d.std(dim=(0, 1)).clamp_min(1e-8)
    return d.reshape(d.shape[0], -1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_dirs: int = 512, repeats: int = 4,
                       generator: Optional[torch.Generator] = None) -> float:
    """Mean over random unit directions of W1 between the 1-D projections of two equal-size sets."""
    m = min(a.shape[0], b.shape[0])
    a, b = a[:m], b[:m]
    out = []
    for _ in range(repeats):
        d = torch.randn(a.shape[1], n_dirs, generator=generator)
        d = d / d.norm(dim=0, keepdim=True)
        pa, _ = torch.sort(a @ d, dim=0)
        pb, _ = torch.sort(b @ d, dim=0)
        out.append(float((pa - pb).abs().mean()))
    return sum(out) / len(out)


def laplacian_swd(a: torch.Tensor, b: torch.Tensor, *, patches_per_image: int = 128, min_size: int = 16,
                  n_dirs: int = 512, repeats: int = 4, seed: int = 0) -> dict:
    """LP-SWD (x 1e3) between image sets ``a`` and ``b`` (N, C, H, W), per pyramid level (keyed by
    its side) and averaged. Both sets must share C, H, W; sets of different sizes are compared on
    the first min(N_a, N_b) descriptors of each."""
    if a.dim() != 4 or b.dim() != 4 or a.shape[1:] != b.shape[1:]:
        raise ShapeError(f"laplacian_swd: need two (N, C, H, W) sets of the same C, H, W, got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(a.shape[-2:]) < 7 or min_size < 7:
        raise ShapeError(f"laplacian_swd: images and min_size must be >= 7 pixels, got {tuple(a.shape[-2:])}, {min_size}")
    g = torch.Generator().manual_seed(seed)
    la, lb = laplacian_pyramid(a.float().cpu(), min_size), laplacian_pyramid(b.float().cpu(), min_size)
    res = {}
    for xa, xb in zip(la, lb):
        da = patch_descriptors(xa, patches_per_image, generator=g)
        db = patch_descriptors(xb, patches_per_image, generator=g)
        res[int(xa.shape[-1])] = 1e3 * sliced_wasserstein(da, db, n_dirs, repeats, generator=g)
    return {"levels": res, "avg": sum(res.values()) / len(res)}
