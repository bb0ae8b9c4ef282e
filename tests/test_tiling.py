"""Tiled restoration matches untiled restoration."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from skimage.transform import resize

from pnp_rgm.api import Restorer
from pnp_rgm.errors import TaskError
from pnp_rgm.metrics import psnr
from pnp_rgm.operators import make_operator, observe
from pnp_rgm.tasks import make_task_operator, restore_baseline, simulate_observation, sr_factor
from pnp_rgm.tiling import Tile, TileSpec, restore_tiled, tile_boxes


def _photo(h=96, w=80):
    return torch.from_numpy(resize(skimage.data.astronaut(), (h, w), anti_aliasing=True).transpose(2, 0, 1).copy()).float()[None]


def _tile_fn(task, method, sigma=0.0, **settings):
    def fn(y_t, m_t, tile):
        op = make_task_operator(task, tuple(y_t.shape[1:]), mask=m_t, tile=tile)
        x = restore_baseline(op, y_t, method, sigma=sigma, **settings)
        return x if op.crop is None else x[..., op.crop[0], op.crop[1]]
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


@pytest.mark.parametrize("task, params", [("deblur-gauss", {"width": 1.0}), ("deblur-uniform", {"size": 5}),
                                          ("deblur-gauss", {"width": 1.0, "boundary": "free"}),
                                          ("sr4-bicubic", {}), ("sr3-bicubic", {})])
def test_tile_operator_is_the_full_operators_rows(task, params):
    # a blur's or bicubic filter's tile sees clean pixels outside the tile: its operator is the
    # full operator's rows of the tile's observation pixels, on the clean pixels they touch
    n = sr_factor(task) or 1
    shape = (2, 12 * n, 10 * n)
    full = make_operator(task, shape, **params)
    m = full.crop[0].start if full.crop else 0  # boundary free: the scene's margin around the image
    scene = full.in_shape
    dense = full.forward(torch.eye(full.in_numel, dtype=torch.float64).reshape(-1, *scene)).reshape(full.in_numel, -1).T
    h, w = shape[1] // n, shape[2] // n
    for top, left, th, tw in tile_boxes(h, w, TileSpec(8, 3)):
        tile = Tile(top, left, th, tw, h, w)
        op = make_task_operator(task, (2, th, tw), tile=tile, **params)
        # where the tile's own clean pixels sit in the operator's input
        r0, c0 = top * n + m - op.crop[0].start, left * n + m - op.crop[1].start
        assert op.crop[0].stop - op.crop[0].start == th * n and op.crop[1].stop - op.crop[1].start == tw * n
        ci, hi, wi = op.in_shape
        rows = torch.zeros(shape[0], h, w, dtype=torch.bool)
        rows[:, top:top + th, left:left + tw] = True
        cols = torch.zeros(scene, dtype=torch.bool)
        cols[:, r0:r0 + hi, c0:c0 + wi] = True
        sub = dense[rows.reshape(-1)][:, cols.reshape(-1)]
        outside = dense[rows.reshape(-1)][:, ~cols.reshape(-1)]
        assert outside.numel() > 0 and outside.abs().max() < 1e-12  # nothing outside it
        mine = op.forward(torch.eye(op.in_numel, dtype=torch.float64).reshape(-1, *op.in_shape)).reshape(op.in_numel, -1).T
        assert torch.allclose(mine, sub, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("task, params, tile, loss", [
    ("deblur-gauss", {"boundary": "zero"}, 48, 0.5), ("deblur-gauss", {"boundary": "free"}, 48, 0.5),
    ("sr4-bicubic", {}, 48, 0.5), ("deblur-uniform", {"size": 5, "boundary": "zero"}, 64, 6.0)])
def test_tiled_learned_preset_matches_untiled(task, params, tile, loss):
    # the bundled prior with the task's preset: tiles that ignored the blur beyond their edge lost
    # everything (9 dB against the untiled result); exact tile operators agree closely. A box blur
    # hides period-`size` patterns that a tile's edges leave open and only the image's border pins
    # down, so its small tiles restore less well than the whole image (README: 0.66 dB at 256-pixel
    # tiles on a 400 x 300 image)
    x = _photo(96, 80)
    n = sr_factor(task) or 1
    _, y = simulate_observation(task, x.double(), **params)
    y = y.float()
    full = Restorer(task, device="cpu", **params).restore_tensor(y)
    tiled = Restorer(task, device="cpu", max_pixels=64 * 64, tile=tile // n, overlap=tile // 4 // n,
                     **params).restore_tensor(y)
    assert psnr(full[0], tiled[0]) > 35.0
    assert abs(psnr(x[0], tiled[0]) - psnr(x[0], full[0])) < loss


@pytest.mark.parametrize("task, sigma", [("denoise", 0.1), ("sr2", 0.0), ("deblur-gauss", 0.0)])
def test_tiled_tv_close_to_untiled(task, sigma):
    x = _photo()
    n = sr_factor(task) or 1
    settings = {"width": 1.0} if task.startswith("deblur") else {}
    op = make_task_operator(task, (3, 96 // n, 80 // n), **settings)
    y = observe(op, x, sigma, torch.Generator().manual_seed(0))

    def fn(y_t, m_t, tile):
        op = make_task_operator(task, tuple(y_t.shape[1:]), tile=tile, **settings)
        x = restore_baseline(op, y_t, "tv", sigma=sigma)
        return x if op.crop is None else x[..., op.crop[0], op.crop[1]]

    full = restore_baseline(op, y, "tv", sigma=sigma)
    tiled = restore_tiled(y, n, 3, fn, TileSpec(48 // n, 12 // n))
    assert psnr(full[0], tiled[0]) > 35.0  # tiles agree with the whole image
    assert abs(psnr(x[0], tiled[0]) - psnr(x[0], full[0])) < 0.3  # and restore as well


def test_progress_and_bad_specs():
    calls = []
    y = torch.rand(1, 3, 40, 40)
    restore_tiled(y, 1, 3, lambda t, m, tile: t, TileSpec(16, 4), progress=lambda i, n: calls.append((i, n)))
    assert calls[-1][0] == calls[-1][1] == len(calls) > 1
    with pytest.raises(TaskError):
        TileSpec(4, 0)
    with pytest.raises(TaskError):
        TileSpec(32, 16)
