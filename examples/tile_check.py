"""Tiled against untiled restoration with each task's preset (the README's numbers on tiles).

A 400 x 300 crop of ``skimage.data.astronaut()`` (clean pixels; sr tasks observe it N times smaller)
is degraded as ``restore`` models the task (a blur: ``boundary`` free), restored whole and in tiles
of ``--tile`` clean pixels (``max_pixels = tile²``, the default overlap), and both are scored against each other and the
truth.

    python examples/tile_check.py --tasks deblur-gauss,deblur-uniform,sr4-bicubic --tile 256
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import skimage.data
import torch

from pnp_rgm.api import Restorer
from pnp_rgm.metrics import psnr
from pnp_rgm.tasks import simulate_observation, sr_factor, with_default_boundary


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--tasks", default="deblur-gauss,deblur-uniform,sr4-bicubic")
    ap.add_argument("--tile", type=int, default=256, help="tile side in clean pixels (max_pixels = tile²)")
    ap.add_argument("--precision", default="fp32")
    a = ap.parse_args()
    x = torch.from_numpy(skimage.data.astronaut()[20:420, 60:360].astype(np.float32).transpose(2, 0, 1) / 255)[None]
    print("| task | tiles (clean px) | tiled vs untiled | untiled vs truth | tiled vs truth | s untiled | s tiled |")
    print("|---|---|---|---|---|---|---|")
    for task in a.tasks.split(","):
        n = sr_factor(task) or 1
        _, y = simulate_observation(task, x.double(), **with_default_boundary(task, {}))
        y = y.float()
        t0 = time.perf_counter()
        whole = Restorer(task, device="cpu", precision=a.precision).restore_tensor(y)
        t1 = time.perf_counter()
        tiled = Restorer(task, device="cpu", precision=a.precision, max_pixels=a.tile ** 2).restore_tensor(y)
        t2 = time.perf_counter()
        print(f"| {task} | {a.tile} | {psnr(whole[0], tiled[0]):.2f} | {psnr(x[0], whole[0]):.2f} | "
              f"{psnr(x[0], tiled[0]):.2f} | {t1 - t0:.1f} | {t2 - t1:.1f} |", flush=True)


if __name__ == "__main__":
    main()
