#!/usr/bin/env python
"""Teacher vs one-step student on natural-image patches: Laplacian-pyramid sliced Wasserstein
distance (LP-SWD, PGGAN) of generated 64x64 patches to clean CBSD68 patches, plus sample grids.

    python examples/rsd_patches.py --teacher RUN/teacher/checkpoint --student RUN/student/checkpoint \\
        --reference ../shared/datasets/CBSD68 --train-data ../shared/datasets/CBSD432 --out runs/rsd-patches

Rows: the training images as the user has them (noisy, σ_n of the teacher's corruption), the same
patches clean (not available to such a user; the floor of the table), the teacher sampled by the
probability-flow ODE (``--ode-steps`` noise levels from σ_max down to σ_n, Heun steps between
them, then one denoiser call: 2·steps − 1 calls), and each student (one call). Every row has ``--n`` patches; the reference set is ``--n``
random CBSD68 crops (seeded). Writes OUT/patches.json, OUT/grid_<row>.png (32 patches a row),
OUT/samples.jpg (8 patches of every row, in the table's order) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pnp_rgm.io import write_image  # noqa: E402
from pnp_rgm.priors import load_prior  # noqa: E402
from pnp_rgm.sampling import image_grid, sample_ode  # noqa: E402
from pnp_rgm.swd import laplacian_swd  # noqa: E402
from pnp_rgm.train.data import ImageFolder  # noqa: E402


def crops(folder: Path, n: int, size: int, seed: int, noise: float = 0.0) -> torch.Tensor:
    ds = ImageFolder(folder, size, 3, hflip=False, cache=True, noise_sigma=noise, noise_seed=seed)
    np.random.seed(seed)
    return torch.stack([ds[i % len(ds)] for i in range(n)]).clamp(0, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--student", action="append", default=[], metavar="[NAME=]PATH", help="repeatable")
    ap.add_argument("--reference", type=Path, required=True, help="clean images (CBSD68)")
    ap.add_argument("--train-data", type=Path, required=True, help="the clean images the teacher's data came from")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--ode-steps", default="18", help="comma list: one teacher row per step count (empty: none)")
    ap.add_argument("--fresh-masks", action="store_true", help="mask teachers: a fresh mask at every ODE call "
                    "(default: one mask per trajectory, Ambient Diffusion's fixed-mask sampler)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    teacher = load_prior(a.teacher)
    cor = teacher.config.corruption
    ref = crops(a.reference, a.n, a.size, a.seed + 1)
    rows: dict[str, tuple[torch.Tensor, int, float]] = {}
    rows["training patches, clean (not available)"] = (crops(a.train_data, a.n, a.size, a.seed), 0, 0.0)
    if cor.operator == "denoise":
        rows[f"training patches, noisy (σ_n {cor.sigma_n:g}: the data)"] = (
            crops(a.train_data, a.n, a.size, a.seed, noise=cor.sigma_n), 0, 0.0)
    if teacher.spectral is not None:  # blurred data: the same patches through the corruption
        ds = ImageFolder(a.train_data, a.size, 3, hflip=False, cache=True, noise_sigma=cor.sigma_n, noise_seed=a.seed,
                         degrade=teacher.spectral.degrade_image)
        np.random.seed(a.seed)
        rows[f"training patches, {cor.operator} + σ_n {cor.sigma_n:g} (the data)"] = (
            torch.stack([ds[i % len(ds)] for i in range(a.n)]).clamp(0, 1), 0, 0.0)
    lo = max(cor.sigma_n, teacher.config.objective.sigma_min, teacher.sigma_floor if teacher.spectral else 0.0)
    for st in (int(s) for s in a.ode_steps.split(",") if s):
        t0 = time.time()
        imgs = sample_ode(teacher.generator, a.n, a.size, teacher.channels, sigma_max=teacher.config.objective.sigma_max,
                          sigma_min=lo, steps=st, seed=a.seed, progress=True, mask_known=teacher.mask_known,
                          fixed_mask=not a.fresh_masks, view=teacher.view if teacher.spectral else None)
        rows[f"teacher, ODE {st} steps"] = (imgs, 2 * st - 1, time.time() - t0)
    for spec in a.student:
        name, _, path = spec.rpartition("=")
        p = load_prior(path)
        t0 = time.time()
        imgs = p.sample(a.n, a.size, seed=a.seed, progress=True)
        rows[f"student {name or Path(path).parent.name}, one step"] = (imgs, 1, time.time() - t0)
    res = {"args": {k: str(v) for k, v in vars(a).items()}, "rows": {}}
    dists = {name: laplacian_swd(imgs, ref, seed=a.seed) for name, (imgs, _, _) in rows.items()}
    scales = list(next(iter(dists.values()))["levels"]) if dists else []  # the pyramid's levels, as computed
    print(f"\nLP-SWD x1e3 to {a.n} clean {a.reference.name} {a.size}² patches (lower is closer)")
    print("| samples | calls | s / patch | " + " | ".join(f"{s}²" for s in scales) + " | avg |")
    print("|---|---|---|" + "---|" * (len(scales) + 1))
    for i, (name, (imgs, calls, secs)) in enumerate(rows.items()):
        d = dists[name]
        res["rows"][name] = {"calls": calls, "seconds_per_patch": secs / a.n, **d}
        lv = " | ".join(f"{v:.1f}" for v in d["levels"].values())
        print(f"| {name} | {calls} | {secs / a.n:.3f} | {lv} | {d['avg']:.1f} |")
        write_image(a.out / f"grid_{i}.png", image_grid(imgs[:32], 8), overwrite=True)
        res["rows"][name]["grid"] = f"grid_{i}.png"
    (a.out / "patches.json").write_text(json.dumps(res, indent=1, ensure_ascii=False))
    # one compact figure: the first 8 patches of every row, in the table's order
    write_image(a.out / "samples.jpg", image_grid(torch.cat([imgs[:8] for imgs, _, _ in rows.values()]), 8),
                overwrite=True)
    print(f"wrote {a.out / 'patches.json'}, grid_*.png and samples.jpg (rows: {', '.join(rows)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
