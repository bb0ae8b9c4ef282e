#!/usr/bin/env python
"""Grid-search the solver settings of one task's preset on a tuning set; prints a table.

    python examples/tune_presets.py --task sr4 --prior mmse-color --data ../shared/datasets/Set14 \\
        --limit 6 --crop 192 --grid steps=8,16 sigma_max=0.1,0.2 sigma_min=0.005,0.01

Every combination restores the same simulated observations (``simulate_observation``, seeded);
rows are sorted by mean PSNR (RGB, [0, 1] scale). Settings not in the grid come from the task's
preset (``pnp_rgm/presets.yaml``) and ``--set``. Tune on images you will not report as test results.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pnp_rgm.api import Restorer  # noqa: E402
from pnp_rgm.benchmark import center_crop, list_images  # noqa: E402
from pnp_rgm.io import image_to_tensor, read_image  # noqa: E402
from pnp_rgm.metrics import psnr  # noqa: E402
from pnp_rgm.presets import preset_for  # noqa: E402
from pnp_rgm.tasks import OPERATOR_KEYS, known_pixels, simulate_observation, sr_factor, with_default_boundary  # noqa: E402


def parse_pairs(items: list[str]) -> dict:
    out = {}
    for it in items:
        key, _, vals = it.partition("=")
        out[key] = [yaml.safe_load(v) for v in vals.split(",")] if "," in vals or not vals.startswith("[") \
            else [yaml.safe_load(vals)]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", required=True)
    ap.add_argument("--prior", default=None, help="prior name/folder (default: the preset's)")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--sigma", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grid", nargs="*", default=[], help="key=v1,v2,... (each combination is run)")
    ap.add_argument("--set", nargs="*", default=[], help="key=value fixed for every run")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    preset = preset_for(a.task)
    prior = a.prior or preset.prior
    fixed = {**preset.settings, **{k: v[0] for k, v in parse_pairs(a.set).items()}}
    grid = parse_pairs(a.grid)
    keys = list(grid)
    mult = sr_factor(a.task) or 1
    # the operator as restore models it (a blur: boundary free unless --set), for simulation and Restorer alike
    op_params = with_default_boundary(a.task, {k: v for k, v in fixed.items() if k in OPERATOR_KEYS})
    cases = []
    for i, f in enumerate(list_images(a.data, a.limit)):
        img = read_image(f)
        if img.shape[2] == 1:
            continue  # colour priors and colorize: skip gray images
        x = image_to_tensor(center_crop(img, a.crop, mult))
        op, y = simulate_observation(a.task, x, a.sigma, seed=a.seed + i, **op_params)
        cases.append((x, y, known_pixels(op)))
    rows = []
    loaded = None
    for combo in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
        settings = {**fixed, **dict(zip(keys, combo))}
        t0 = time.perf_counter()
        r = Restorer(a.task, loaded or prior, sigma=a.sigma, seed=a.seed, device="cpu", **settings)
        loaded = loaded or r.prior
        vals = [psnr(x[0], r.restore_tensor(y, mask)[0]) for x, y, mask in cases]
        rows.append((float(np.mean(vals)), dict(zip(keys, combo)), (time.perf_counter() - t0) / len(cases)))
        print(f"{rows[-1][0]:7.3f} dB  {rows[-1][1]}  {rows[-1][2]:.2f} s/img", flush=True)
    print(f"\n{a.task}, sigma={a.sigma}, {len(cases)} images of {a.data} (crop {a.crop}), prior {prior}, fixed {({k: v for k, v in fixed.items() if k not in keys})}")
    for p, combo, s in sorted(rows, key=lambda r: -r[0]):
        print(f"{p:7.3f} dB  {combo}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
