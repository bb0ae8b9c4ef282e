#!/usr/bin/env python
"""PSNR of one denoiser call of each prior on noisy crops of a folder, at several noise levels.

    python examples/denoise_eval.py --data ../shared/datasets/CBSD68 --limit 20 --sigmas 0.2,0.3,0.5 \
        PRIOR [PRIOR ...]                       # bundled names or checkpoint folders

Compares, e.g., a denoiser learned from noisy data only (``objective.kind: ambient``) with one learned
from clean data. Crops are the 256² centre crops of the benchmark; the noise of image i is drawn
from seed i, the same for every prior. Prints one Markdown row per noise level.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pnp_rgm.benchmark import center_crop, list_images  # noqa: E402
from pnp_rgm.io import image_to_tensor, read_image  # noqa: E402
from pnp_rgm.metrics import psnr  # noqa: E402
from pnp_rgm.priors import load_prior  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("priors", nargs="+")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--sigmas", default="0.1,0.2,0.3")
    ap.add_argument("--floors", default="", help="ambient priors: comma list of sigma_floor factors (x sigma_n) "
                    "to compare, one column each (how AMBIENT_FLOOR was chosen)")
    a = ap.parse_args(argv)
    priors = {}
    for p in a.priors:
        prior = load_prior(p)
        if a.floors and prior.sigma_floor > 0:
            for fac in (float(v) for v in a.floors.split(",")):
                q = load_prior(p)
                q.sigma_floor = fac * q.config.corruption.sigma_n
                priors[f"{p} (floor {fac:g} σ_n)"] = q
        else:
            priors[p] = prior
    files = list_images(a.data, a.limit)
    sigmas = [float(s) for s in a.sigmas.split(",")]
    print("| σ | " + " | ".join(priors) + " |")
    print("|---|" + "---|" * len(priors))
    for sigma in sigmas:
        scores = {p: [] for p in priors}
        for i, f in enumerate(files):
            img = center_crop(read_image(f), a.crop, 8)
            if img.shape[2] == 1:
                img = np.repeat(img, 3, axis=2)
            x = image_to_tensor(img)
            y = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(i))
            for p, prior in priors.items():
                with torch.no_grad():
                    gen = torch.Generator().manual_seed(10_000 + i)  # noise an ambient prior adds below its floor
                    scores[p].append(float(psnr(x[0], prior.denoise(y, sigma, generator=gen).clamp(0, 1)[0])))
        print(f"| {sigma:g} | " + " | ".join(f"{np.mean(v):.2f}" for v in scores.values()) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
