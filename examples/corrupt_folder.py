#!/usr/bin/env python
"""Write a corrupted copy of an image folder, as a user without clean data would have it.

    python examples/corrupt_folder.py --data ../shared/datasets/CBSD432 --out DIR \
        --operator deblur-gauss --width 1.5 --size 9 --sigma-n 0.02 [--seed 0] [--bits 16]

The corruption is the trainer's (``corruption.*`` of a config, :mod:`pnp_rgm.spectral`): a blur
(same size, reflected borders) or an N×N block average (``srN``; 1/N of the size), then white
Gaussian noise of std ``sigma_n`` drawn from (seed, image index). Each image is what a colour
model's ``--corrupt`` training reads (``ImageFolder.image``; gray images become 3 equal channels).
Values are clipped to [0, 1] on writing (16-bit PNG by default, so quantization adds
no noise worth counting). Train an ambient teacher on the result with
``pnp-rgm train ambient-fourier-cpu --data DIR`` and the same ``corruption.*`` settings.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pnp_rgm.errors import PnpRgmError  # noqa: E402
from pnp_rgm.io import write_image  # noqa: E402
from pnp_rgm.spectral import SpectralAmbient  # noqa: E402
from pnp_rgm.train.config import CorruptionConfig  # noqa: E402
from pnp_rgm.train.data import ImageFolder  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--operator", required=True, help="deblur-gauss, deblur-uniform or srN")
    ap.add_argument("--width", type=float, default=0.0)
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--sigma-n", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bits", type=int, default=16, choices=(8, 16))
    a = ap.parse_args(argv)
    try:
        sp = SpectralAmbient(CorruptionConfig(operator=a.operator, width=a.width, size=a.size, sigma_n=a.sigma_n,
                                              seed=a.seed))
        ds = ImageFolder(a.data, crop=1, channels=3, degrade=sp.degrade_image, noise_sigma=a.sigma_n, noise_seed=a.seed)
    except PnpRgmError as exc:  # a bad setting, or no images under --data
        ap.error(str(exc))  # one line, exit 2
    if a.out.exists():
        ap.error(f"--out: {a.out} exists; give a new folder")
    a.out.mkdir(parents=True)
    for i, f in enumerate(tqdm(ds.files, desc="corrupt")):
        write_image(a.out / f.relative_to(a.data).with_suffix(".png"), np.clip(ds.image(i), 0, 1), bits=a.bits)
    print(f"{len(ds)} images -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
