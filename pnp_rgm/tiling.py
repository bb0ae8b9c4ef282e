"""Restoring images of any size with bounded memory: overlapping tiles, blended without seams.

Tiles are cut in the *observation* domain and mapped to the clean domain through the task's
geometry (``srN``: N× larger, other tasks: same size), so every tile is an exact sub-problem:
the tile's observation pixels and the operator rows that made them. For pixel- and block-local
operators that is the task's operator on the tile's shape (and, for inpainting, its own piece of
the mask); a blur or a bicubic filter also reaches clean pixels outside the tile, so its tile
problem runs over those too (:func:`pnp_rgm.operators.make_operator`'s ``window``) and only the
tile's own pixels are kept. Each tile's outer ``overlap`` pixels — where a context-starved prior
is least reliable — are dropped (outer half) or faded in (inner half). Weights are separable; the
output is the weighted sum divided by the summed weights, so any overlap blends smoothly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from pnp_rgm.errors import TaskError


@dataclass(frozen=True)
class Tile:
    """One tile: ``top``, ``left``, ``height``, ``width`` in observation pixels of an
    ``image_height × image_width`` observation."""

    top: int
    left: int
    height: int
    width: int
    image_height: int
    image_width: int

    @property
    def window(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """``((top, bottom), (left, right))``, the ``window`` of :func:`pnp_rgm.operators.make_operator`."""
        return (self.top, self.top + self.height), (self.left, self.left + self.width)


#: ``restore_tile(y_tile, mask_tile, tile) -> x_tile`` with y ``(B, C', h, w)`` and x ``(B, C, h·s, w·s)``,
#: the restoration of the tile's own clean pixels
TileFn = Callable[[torch.Tensor, Optional[np.ndarray], Tile], torch.Tensor]


@dataclass(frozen=True)
class TileSpec:
    """Tile geometry in observation pixels: ``tile`` (side), ``overlap`` (on each shared edge)."""

    tile: int = 256
    overlap: int = 32

    def __post_init__(self) -> None:
        if self.tile < 8:
            raise TaskError(f"tile size must be >= 8 pixels, got {self.tile}")
        if not 0 <= self.overlap < self.tile // 2:
            raise TaskError(f"tile overlap must be in [0, tile/2) = [0, {self.tile // 2}), got {self.overlap}")


def _starts(n: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``[0, n)`` with tiles of ``tile`` that overlap by at least ``overlap``."""
    if n <= tile:
        return [0]
    step = tile - overlap
    count = int(np.ceil((n - overlap) / step))
    # spread the tiles evenly so every overlap is >= the requested one
    return [int(round(i * (n - tile) / (count - 1))) for i in range(count)]


def tile_boxes(h: int, w: int, spec: TileSpec) -> Iterator[tuple[int, int, int, int]]:
    """Boxes ``(top, left, height, width)`` tiling an ``h × w`` observation."""
    th, tw = min(spec.tile, h), min(spec.tile, w)
    for top in _starts(h, th, spec.overlap):
        for left in _starts(w, tw, spec.overlap):
            yield top, left, th, tw


def _ramp(n: int, lo: int, hi: int) -> torch.Tensor:
    """1-D weights of length ``n`` for a tile that shares ``lo`` samples at its start and ``hi`` at
    its end with neighbours: 0 on the outer half of each shared band (the pixels a tile restores
    with the least context), a linear ramp over the inner half, 1 elsewhere."""
    w = torch.ones(n, dtype=torch.float64)
    for band, flip in ((lo, False), (hi, True)):
        if band:
            cut = band // 2
            edge = torch.zeros(band, dtype=torch.float64)
            edge[cut:] = (torch.arange(band - cut, dtype=torch.float64) + 0.5) / (band - cut)
            edge = edge.flip(0) if flip else edge
            sl = slice(n - band, n) if flip else slice(0, band)
            w[sl] = torch.minimum(w[sl], edge)
    return w


def restore_tiled(y: torch.Tensor, scale: int, out_channels: int, restore_tile: TileFn,
                  spec: TileSpec = TileSpec(), mask: np.ndarray | None = None,
                  progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Restore ``y`` ``(B, C', H, W)`` tile by tile; returns ``(B, out_channels, H·scale, W·scale)``.

    ``mask`` (``(H, W)`` or ``(C, H, W)``, inpainting) is cut along with the observation.
    ``progress(done, total)`` is called after each tile.
    """
    b, _, h, w = y.shape
    boxes = list(tile_boxes(h, w, spec))
    out = torch.zeros(b, out_channels, h * scale, w * scale, dtype=torch.float64)
    weight = torch.zeros(h * scale, w * scale, dtype=torch.float64)
    ov = spec.overlap * scale
    for i, (top, left, th, tw) in enumerate(boxes):
        y_t = y[..., top:top + th, left:left + tw]
        m_t = None if mask is None else mask[..., top:top + th, left:left + tw]
        x_t = restore_tile(y_t, m_t, Tile(top, left, th, tw, h, w)).to("cpu", torch.float64)
        # ramps only on edges shared with another tile
        wy = _ramp(th * scale, ov if top > 0 else 0, ov if top + th < h else 0)
        wx = _ramp(tw * scale, ov if left > 0 else 0, ov if left + tw < w else 0)
        wt = wy[:, None] * wx[None, :]
        r0, c0 = top * scale, left * scale
        out[..., r0:r0 + th * scale, c0:c0 + tw * scale] += x_t * wt
        weight[r0:r0 + th * scale, c0:c0 + tw * scale] += wt
        if progress is not None:
            progress(i + 1, len(boxes))
    return (out / weight).to(y.dtype)
