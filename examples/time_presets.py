#!/usr/bin/env python
"""Seconds per 256² image for every task's default preset (what ``pnp-rgm restore`` runs).

    python examples/time_presets.py --threads 2            # CPU
    python examples/time_presets.py --device cuda          # GPU
    python examples/time_presets.py --precision fp32,bf16  # one column per precision (default: auto)

Restores a simulated observation of a 256² crop of scikit-image's astronaut once to warm up, then
``--repeat`` times, and prints one Markdown row per task: prior, generator calls, median seconds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import skimage.data
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pnp_rgm.api import Restorer  # noqa: E402
from pnp_rgm.tasks import known_pixels, simulate_observation, with_default_boundary  # noqa: E402

TASKS = ["sr2", "sr4", "sr8", "sr4-bicubic", "colorize", "denoise", "inpaint", "deblur-gauss", "deblur-uniform"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto", help="comma-separated: auto, fp32, bf16 (a column each)")
    a = ap.parse_args(argv)
    precisions = a.precision.split(",")
    if a.threads:
        torch.set_num_threads(a.threads)
    img = skimage.data.astronaut()[:a.size, 128:128 + a.size] / 255.0
    x = torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None]
    cols = " | ".join(f"s / {a.size}² image, {p}" for p in precisions)
    print(f"| task | prior | generator calls | {cols} |")
    print("|---|---|---|" + "---|" * len(precisions))
    for task in a.tasks.split(","):
        sigma = 25 / 255 if task == "denoise" else 0.0
        op, y = simulate_observation(task, x, sigma, seed=0, **with_default_boundary(task, {}))  # as restore models it
        mask = known_pixels(op)
        cells = []
        for precision in precisions:
            r = Restorer(task, sigma=sigma, device=a.device, precision=precision)
            r.restore_tensor(y, mask)  # warm-up
            times = []
            for _ in range(a.repeat):
                if r.device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                r.restore_tensor(y, mask)
                if r.device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            cells.append(f"{statistics.median(times):.2f}")
        calls = r.config.calls if r.method == "rgm" else 0
        name = r.prior.path.name if r.method == "rgm" and r.prior.path else r.method
        print(f"| {task} | {name} | {calls} | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
