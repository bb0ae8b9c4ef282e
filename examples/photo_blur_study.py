"""How the border model matters on a photo's blur: a camera records the blur of a scene that goes
on beyond the frame. Each image's centre crop (``--crop`` + the blur's reach on every side) is
blurred and only the valid part kept, the observation a camera would give of the crop (stored in
8 bits, as an image file is: ``--bits 0`` keeps it float); it is
restored with the task's preset under ``boundary: zero`` (the scene black outside the frame: DDRM's
and DPIR's model, the benchmarks') and ``boundary: free`` (``restore``'s default).

    python examples/photo_blur_study.py --task deblur-gauss --data ../shared/datasets/CBSD68 --limit 20
    python examples/photo_blur_study.py --task deblur-uniform --data ../shared/datasets/CBSD432 --set alpha=1.0  # tune
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import yaml

from pnp_rgm.api import Restorer
from pnp_rgm.benchmark import list_images
from pnp_rgm.io import image_to_tensor, read_image
from pnp_rgm.metrics import psnr, ssim
from pnp_rgm.tasks import make_task_operator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="deblur-gauss", choices=["deblur-gauss", "deblur-uniform"])
    ap.add_argument("--data", required=True)
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--bits", type=int, default=8, choices=[0, 8], help="8: round the observation to 8 bits; 0: float")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="solver settings over the preset's")
    args = ap.parse_args()
    over = {k: yaml.safe_load(v) for k, _, v in (kv.partition("=") for kv in args.set)}
    restorers = {b: Restorer(args.task, boundary=b, device="cpu", precision=args.precision, **over)
                 for b in ("zero", "free")}
    # sigma 1e-9: the data step trusts the 8-bit file as exact (lam 10^4), as before the rounding noise was modelled
    restorers["free, rounding ignored"] = Restorer(args.task, boundary="free", sigma=1e-9, device="cpu",
                                                   precision=args.precision, **over)
    c = make_task_operator(args.task, (3, 64, 64), boundary="free").crop[0].start  # the blur's reach: size // 2
    s = args.crop + 2 * c
    blur = make_task_operator(args.task, (3, s, s))  # over the larger scene; keep the valid part
    rows = []
    for f in list_images(Path(args.data), args.limit):
        img = image_to_tensor(read_image(f)).double()
        if img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        top, left = (img.shape[-2] - s) // 2, (img.shape[-1] - s) // 2
        scene = img[..., top:top + s, left:left + s]
        y = blur.forward(scene)[..., c:-c, c:-c].float()
        if args.bits:
            y = (y.clamp(0, 1) * 255).round() / 255
        truth = scene[..., c:-c, c:-c].float()
        row = [psnr(truth[0], y[0])]
        for b, r in restorers.items():
            x = r.restore_tensor(y)
            row += [psnr(truth[0], x[0]), ssim(truth[0], x[0])]
        rows.append(row)
        print(f"{f.name}: blurred {row[0]:.2f} dB, " + ", ".join(
            f"{b} {row[1 + 2 * i]:.2f} / {row[2 + 2 * i]:.4f}" for i, b in enumerate(restorers)), flush=True)
    m = np.mean(rows, axis=0)
    kind = "8-bit" if args.bits else "float"
    print(f"\n| {args.task}, {len(rows)} images of {Path(args.data).name} ({args.crop}² crops, {kind}) | PSNR | SSIM |")
    print("|---|---|---|")
    print(f"| the blurred observation | {m[0]:.2f} | — |")
    for i, b in enumerate(restorers):
        print(f"| boundary {b}{' (restore' + chr(39) + 's default)' if b == 'free' else ''} | {m[1 + 2 * i]:.2f} | "
              f"{m[2 + 2 * i]:.4f} |")


if __name__ == "__main__":
    main()
