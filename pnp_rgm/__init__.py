"""pnp-rgm: plug-and-play image restoration with exact SVD operators and RGM priors.

Top-level names are imported lazily (``import pnp_rgm`` stays cheap)::

    pnp_rgm.make_operator, pnp_rgm.observe        # operators
    pnp_rgm.read_image, pnp_rgm.write_image       # image I/O
    pnp_rgm.psnr, pnp_rgm.ssim                    # metrics
    pnp_rgm.drs, pnp_rgm.PSNRTrace, pnp_rgm.restore_baseline   # solvers, a PSNR callback
    pnp_rgm.restore, pnp_rgm.Restorer             # whole-image restoration API
    pnp_rgm.load_prior, pnp_rgm.save_prior        # learned priors (checkpoint folders)
"""
from __future__ import annotations

import importlib
from typing import Any

from pnp_rgm.errors import PnpRgmError

__version__ = "0.1.0"

_LAZY = {
    "make_operator": "pnp_rgm.operators",
    "observe": "pnp_rgm.operators",
    "read_image": "pnp_rgm.io",
    "write_image": "pnp_rgm.io",
    "image_to_tensor": "pnp_rgm.io",
    "tensor_to_image": "pnp_rgm.io",
    "psnr": "pnp_rgm.metrics",
    "ssim": "pnp_rgm.metrics",
    "lpips": "pnp_rgm.metrics",
    "drs": "pnp_rgm.solvers",
    "PSNRTrace": "pnp_rgm.solvers",
    "restore_baseline": "pnp_rgm.tasks",
    "restore": "pnp_rgm.api",
    "Restorer": "pnp_rgm.api",
    "load_prior": "pnp_rgm.priors",
    "save_prior": "pnp_rgm.priors",
    "Prior": "pnp_rgm.priors",
}

__all__ = ["__version__", "PnpRgmError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pnp_rgm' has no attribute {name!r}")
