"""pnp-rgm: plug-and-play image restoration with exact SVD operators and RGM priors."""
from __future__ import annotations

__version__ = "0.1.0"

from pnp_rgm.errors import PnpRgmError  # noqa: E402

__all__ = ["__version__", "PnpRgmError"]
