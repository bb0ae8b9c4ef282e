"""Tiled restoration matches untiled restoration."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from skimage.transform import resize

from pnp_rgm.errors import TaskError
from pnp_rgm.metrics import psnr
from pnp_rgm.operators import observe
from pnp_rgm.tasks import make_task_operator, restore_baseline, sr_factor
from pnp_rgm.tiling import TileSpec, restore_tiled, tile_boxes


def _photo(h=96, w=80):
    return torch.from_numpy(resize(skimage.data.astronaut(), (h, w), anti_aliasing=True).transpose(2, 0, 1).copy()).float()[None]


def _tile_fn(task, method, sigma=0.0, **settings):
    def fn(y_t, m_t):
        op = make_task_operator(task, tuple(y_t.shape[1:]), mask=m_t)
        return restore_baseline(op, y_t, method, sigma=sigma, **settings)
    return fn


@pytest.mark.parametrize("h, w, tile, overlap", [(96, 80, 32, 8), (100, 37, 40, 4), (20, 20, 64, 8), (65, 129, 64, 16)])
def test_boxes_cover_the_image(h, w, tile, overlap):
    cover = np.zeros((h, w), int)
    for top, left, th, tw in tile_boxes(h, w, TileSpec(tile, overlap)):
        assert 0 <= top and top + th <= h and 0 <= left and left + tw <= w
        cover[top:top + th, left:left + tw] += 1
    assert cover.min() >= 1


@pytest.mark.parametrize("task", ["sr4", "colorize", "inpaint"])
def test_tiled_pseudo_inverse_is_exact(task):
    # pixel/block-local operators: tiles aligned to the geometry give exactly the untiled result
    x = _photo()
    mask = None
    kw = {}
    if task == "inpaint":
        rng = np.random.default_rng(0)
        mask = rng.random((96, 80)) > 0.5
    op_full = make_task_operator(task, (3, 96, 80) if task != "sr4" else (3, 24, 20), mask=mask, **kw) \
        if task != "colorize" else make_task_operator(task, (1, 96, 80))
    y = observe(op_full, x)
    n = sr_factor(task) or 1
    out_c = 3
    full = restore_baseline(op_full, y, "none")
    tiled = restore_tiled(y, n, out_c, _tile_fn(task, "none"), TileSpec(16 if n > 1 else 32, 4), mask=mask)
    assert tiled.shape == full.shape
    assert torch.allclose(tiled, full, atol=1e-6)


@pytest.mark.parametrize("task, sigma", [("denoise", 0.1), ("sr2", 0.0), ("deblur-gauss", 0.0)])
def test_tiled_tv_close_to_untiled(task, sigma):
    x = _photo()
    n = sr_factor(task) or 1
    settings = {"width": 1.0} if task.startswith("deblur") else {}
    op = make_task_operator(task, (3, 96 // n, 80 // n), **settings)
    y = observe(op, x, sigma, torch.Generator().manual_seed(0))

    def fn(y_t, m_t):
        return restore_baseline(make_task_operator(task, tuple(y_t.shape[1:]), **settings), y_t, "tv", sigma=sigma)

    full = restore_baseline(op, y, "tv", sigma=sigma)
    tiled = restore_tiled(y, n, 3, fn, TileSpec(48 // n, 12 // n))
    assert psnr(full[0], tiled[0]) > 35.0  # tiles agree with the whole image
    assert abs(psnr(x[0], tiled[0]) - psnr(x[0], full[0])) < 0.3  # and restore as well


def test_progress_and_bad_specs():
    calls = []
    y = torch.rand(1, 3, 40, 40)
    restore_tiled(y, 1, 3, lambda t, m: t, TileSpec(16, 4), progress=lambda i, n: calls.append((i, n)))
    assert calls[-1][0] == calls[-1][1] == len(calls) > 1
    with pytest.raises(TaskError):
        TileSpec(4, 0)
    with pytest.raises(TaskError):
        TileSpec(32, 16)
