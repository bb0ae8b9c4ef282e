#!/usr/bin/env python
"""What does learning a prior without clean data cost in restoration? Runs the PnP solvers with
each prior on the same simulated observations (``pnp-rgm benchmark``) and tabulates mean PSNR/SSIM.

    python examples/ambient_prior_eval.py --data ../shared/datasets/CBSD68 --out runs/ambient-eval \\
        --prior noisy-data=RUN/teacher/checkpoint --prior clean-data=RUN/clean/checkpoint

Tasks (``--tasks``, ``task:sigma`` comma list, default denoise at 25/255 and 50/255, and noiseless
sr4; ``--op width=1.5 --op size=9`` sets a blur's kernel); methods: one denoiser call (denoise only), rgm-drs (the task preset's DRS schedule with the
prior in place of the preset's) and dpir-hqs (HQS). Each run is resumable and keeps the
benchmark's results.csv / summary.md / grid.png under OUT/<prior>/<task>_<sigma>/. Writes
OUT/ambient_eval.json and OUT/ambient_eval.png (matplotlib, optional) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pnp_rgm.plotting import pyplot, save_figure  # noqa: E402

from pnp_rgm.benchmark import read_rows, run_benchmark  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--prior", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tasks", default="denoise:0.098,denoise:0.196,sr4:0")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--op", action="append", default=[], metavar="KEY=VALUE",
                    help="operator setting of the simulated degradation (e.g. width=1.5, size=9 for deblur-gauss); repeatable")
    a = ap.parse_args(argv)
    try:
        op_settings = {k: float(v) if k == "width" else int(v) for k, v in (o.split("=", 1) for o in a.op)}
    except ValueError:
        ap.error(f"--op: expected KEY=VALUE with a number (width=1.5, size=9), got {a.op}")
    torch.set_num_threads(a.threads)
    priors = dict(p.split("=", 1) if "=" in p else (Path(p).parent.name, p) for p in a.prior)
    tasks = [(t.split(":")[0], float(t.split(":")[1]) if ":" in t else 0.0) for t in a.tasks.split(",")]
    res: dict = {}
    for name, path in priors.items():
        for task, sigma in tasks:
            methods = (["denoiser"] if task == "denoise" else []) + ["rgm-drs", "dpir-hqs"]
            out = a.out / name / f"{task}_{sigma:g}"
            run_benchmark(task, a.data, out, methods, sigma=sigma, limit=a.limit, crop=a.crop, prior=path,
                          settings=op_settings if task != "denoise" else None)
            rows = read_rows(out / "results.csv")
            for m in methods:
                mine = [r for r in rows if r["method"] == m]
                res.setdefault(f"{task} σ={sigma:g}", {}).setdefault(m, {})[name] = {
                    "psnr": float(np.mean([float(r["psnr"]) for r in mine])),
                    "ssim": float(np.mean([float(r["ssim"]) for r in mine])),
                    "calls": float(np.mean([float(r["nfe"]) for r in mine])), "images": len(mine)}
    names = list(priors)
    print(f"\nmean PSNR / SSIM on {a.data.name} ({a.crop}² centre crops)")
    print("| task | method | " + " | ".join(names) + " | difference |")
    print("|---|---|" + "---|" * (len(names) + 1))
    for tk, by_m in res.items():
        for m, by_p in by_m.items():
            cells = [f"{by_p[n]['psnr']:.2f} / {by_p[n]['ssim']:.3f}" for n in names]
            diff = f"{by_p[names[0]]['psnr'] - by_p[names[-1]]['psnr']:+.2f} dB" if len(names) > 1 else ""
            print(f"| {tk} | {m} | " + " | ".join(cells) + f" | {diff} |")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "ambient_eval.json").write_text(json.dumps({"priors": priors, "data": str(a.data), "results": res},
                                                        indent=1, ensure_ascii=False))
    plt = pyplot("figure")
    if plt is None:
        return 0
    labels = [f"{tk}\n{m}" for tk, by_m in res.items() for m in by_m]
    fig, ax = plt.subplots(figsize=(1.3 * len(labels) + 2, 3.6))
    for j, n in enumerate(names):
        vals = [by_p[n]["psnr"] for by_m in res.values() for by_p in by_m.values()]
        ax.bar(np.arange(len(labels)) + (j - (len(names) - 1) / 2) * 0.8 / len(names), vals,
               width=0.8 / len(names), label=n)
    ax.set_xticks(np.arange(len(labels)), labels, fontsize=7)
    ax.set_ylabel("PSNR (dB)")
    lo = min(by_p[n]["psnr"] for by_m in res.values() for by_p in by_m.values() for n in names)
    ax.set_ylim(lo - 2, None)
    ax.legend()
    save_figure(fig, a.out / "ambient_eval.png")
    print(f"wrote {a.out / 'ambient_eval.json'} and ambient_eval.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
