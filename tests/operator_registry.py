"""One registry of tiny operator instances shared by the operator and solver tests.

Each entry: id -> (task name, shape, params, reference forward in NumPy written independently
of the SVD machinery, or None where the SVD itself is the definition)."""
from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from pnp_rgm.operators import gaussian_kernel, random_mask


def _block_mean(x, n):
    return F.avg_pool2d(torch.from_numpy(x), n).numpy()


def _sep_correlate(x, k):
    out = ndi.correlate1d(x, k, axis=-2, mode="constant", cval=0.0)
    return ndi.correlate1d(out, k, axis=-1, mode="constant", cval=0.0)


_RNG = np.random.default_rng(1234)
_MAT_WIDE = _RNG.standard_normal((7, 12))
_MAT_TALL = _RNG.standard_normal((15, 12))
_MASK_C = _RNG.random((3, 3, 4)) > 0.5
_MASK_C[0, 0, 0] = True

REGISTRY = {
    "denoise-1x5x3": ("denoise", (1, 5, 3), {}, lambda x: x),
    "sr2-3x4x6": ("sr2", (3, 4, 6), {}, lambda x: _block_mean(x, 2)),
    "sr3-1x6x3": ("sr3", (1, 6, 3), {}, lambda x: _block_mean(x, 3)),
    "sr2-bicubic-1x8x6": ("sr2-bicubic", (1, 8, 6), {}, None),
    "sr3-bicubic-3x6x9": ("sr3-bicubic", (3, 6, 9), {}, None),
    "colorize-3x4x5": ("colorize", (3, 4, 5), {}, lambda x: x.mean(axis=1, keepdims=True)),
    "inpaint-random-3x4x5": ("inpaint", (3, 4, 5), {"missing": 0.4, "seed": 3},
                             lambda x: x * random_mask((4, 5), 0.4, seed=3)),
    "inpaint-chanmask-3x3x4": ("inpaint", (3, 3, 4), {"mask": _MASK_C}, lambda x: x * _MASK_C),
    "inpaint-box-1x6x6": ("inpaint", (1, 6, 6), {"box": "center"}, None),
    "deblur-gauss-1x7x5": ("deblur-gauss", (1, 7, 5), {"width": 1.0, "size": 5},
                           lambda x: _sep_correlate(x, gaussian_kernel(5, 1.0))),
    "deblur-gauss-3x6x4": ("deblur-gauss", (3, 6, 4), {"width": 0.8, "size": 3},
                           lambda x: _sep_correlate(x, gaussian_kernel(3, 0.8))),
    "deblur-uniform-1x6x7": ("deblur-uniform", (1, 6, 7), {"size": 3},
                             lambda x: _sep_correlate(x, np.full(3, 1 / 3))),
    # boundary free: the input is the image plus size // 2 pixels of scene on every side; the
    # observation is the blur's valid part
    "deblur-gauss-free-1x5x4": ("deblur-gauss", (1, 5, 4), {"width": 1.0, "size": 5, "boundary": "free"},
                                lambda x: _sep_correlate(x, gaussian_kernel(5, 1.0))[..., 2:-2, 2:-2]),
    "deblur-uniform-free-2x4x6": ("deblur-uniform", (2, 4, 6), {"size": 3, "boundary": "free"},
                                  lambda x: _sep_correlate(x, np.full(3, 1 / 3))[..., 1:-1, 1:-1]),
    "matrix-wide-1x3x4": ("matrix", (1, 3, 4), {"matrix": _MAT_WIDE},
                          lambda x: (x.reshape(x.shape[0], -1) @ _MAT_WIDE.T).reshape(x.shape[0], 1, 1, 7)),
    "matrix-tall-1x3x4": ("matrix", (1, 3, 4), {"matrix": _MAT_TALL, "out_shape": (1, 3, 5)},
                          lambda x: (x.reshape(x.shape[0], -1) @ _MAT_TALL.T).reshape(x.shape[0], 1, 3, 5)),
}
