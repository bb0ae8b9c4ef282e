"""Inpainting masks: 1 (True) = known pixel, 0 (False) = missing."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pnp_rgm.errors import TaskError


def random_mask(shape: tuple[int, int], missing: float, seed: int = 0) -> np.ndarray:
    """Boolean ``(H, W)`` mask with a fraction ``missing`` of pixels removed uniformly at random
    (exactly ``round(missing·H·W)`` of them), reproducible by ``seed``."""
    if not 0.0 <= float(missing) < 1.0:
        raise TaskError(f"missing fraction must be in [0, 1), got {missing}")
    h, w = (int(v) for v in shape)
    n_missing = int(round(float(missing) * h * w))
    rng = np.random.default_rng(seed)
    mask = np.ones(h * w, dtype=bool)
    mask[rng.choice(h * w, size=n_missing, replace=False)] = False
    return mask.reshape(h, w)


def box_mask(shape: tuple[int, int], box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Boolean ``(H, W)`` mask with the rectangle ``box = (top, left, height, width)`` missing.

    ``box=None`` removes the centred box of half the height and half the width."""
    h, w = (int(v) for v in shape)
    if box is None:
        box = (h // 4, w // 4, h // 2, w // 2)
    top, left, bh, bw = (int(v) for v in box)
    if bh <= 0 or bw <= 0 or top < 0 or left < 0 or top + bh > h or left + bw > w:
        raise TaskError(f"box (top, left, height, width) = {tuple(box)} must lie inside the {h}x{w} image")
    if bh * bw == h * w:
        raise TaskError(f"box {tuple(box)} covers the whole {h}x{w} image; nothing would be known")
    mask = np.ones((h, w), dtype=bool)
    mask[top : top + bh, left : left + bw] = False
    return mask


def mask_from_image(img: np.ndarray) -> np.ndarray:
    """Mask from an image array in [0, 1] (H, W) or (H, W, C): white (> 0.5) = known.

    A colour mask must have equal channels."""
    img = np.asarray(img)
    if img.ndim == 3:
        if img.shape[2] > 1 and not np.allclose(img, img[..., :1]):
            raise TaskError("mask image has differing colour channels; use a grayscale or black/white image")
        img = img[..., 0]
    return img > 0.5


def fill_missing(x: torch.Tensor, known) -> torch.Tensor:
    """Fill the missing pixels of ``x`` (B, C, H, W) from the known ones (``known``: (H, W), 1 =
    known) by push-pull: mask-weighted 2× averages down to a level with no hole, then bilinear
    upsampling back, each level keeping what it knows. Known pixels are returned unchanged; a hole
    gets a smooth blend of the pixels around it at the scale of the hole. Linear in ``x``; O(HW)."""
    m = torch.as_tensor(known, dtype=x.dtype, device=x.device).reshape(1, 1, *x.shape[-2:])
    if not bool((m > 0).any()):
        raise TaskError("fill_missing: no known pixel to fill from")

    def level(v: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        if bool((k > 0).all()) or min(v.shape[-2:]) <= 1:
            return v
        s = F.avg_pool2d(v * k, 2, ceil_mode=True)
        c = F.avg_pool2d(k.expand_as(v[:, :1]), 2, ceil_mode=True)
        coarse = level(s / c.clamp_min(1e-12), (c > 0).to(v.dtype))
        return k * v + (1 - k) * F.interpolate(coarse, size=v.shape[-2:], mode="bilinear", align_corners=False)

    return level(x, m)
