#!/usr/bin/env python
"""Collect ``pnp-rgm benchmark`` folders named VARIANT-DATASET into Markdown tables.

    python examples/collect_tables.py bench/            # bench/sr4-Set5, bench/denoise25-CBSD68, ...

Prints, per task variant and dataset, the mean PSNR and SSIM of every method found in
``results.csv`` (the same means as each folder's ``summary.md``; the best learned-or-not method of
each cell in bold), then generator calls and mean seconds per image for every method.
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

ORDER = ["preset", "rgm-drs", "rgm-drs-sr", "dpir-hqs", "ddrm", "diffpir", "denoiser", "bm3d", "bm3d-pnp", "tv",
         "bicubic", "pinv"]
TASKS = ["sr2", "sr4", "sr8", "sr4-bicubic", "colorize", "denoise", "denoise25", "denoise50", "inpaint", "inpaint-box",
         "deblur-gauss", "deblur-uniform"]


def load(root: Path) -> dict:
    """{variant: {dataset: {method: {psnr, ssim, nfe, seconds, n}}}} from root/VARIANT-DATASET/results.csv."""
    table: dict = defaultdict(dict)
    for folder in sorted(p for p in root.iterdir() if (p / "results.csv").is_file()):
        task, _, ds = folder.name.rpartition("-")
        by = defaultdict(lambda: defaultdict(list))
        with (folder / "results.csv").open() as fh:
            for r in csv.DictReader(fh):
                for k in ("psnr", "ssim", "nfe", "seconds"):
                    by[r["method"]][k].append(float(r[k] or 0))
        table[task][ds] = {m: {k: float(np.mean(v)) for k, v in d.items()} | {"n": len(d["psnr"])} for m, d in by.items()}
    return table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--datasets", default="Set5,Set14,CBSD68,McMaster")
    a = ap.parse_args(argv)
    sets = a.datasets.split(",")
    table = load(a.root)
    tasks = [t for t in TASKS if t in table] + sorted(set(table) - set(TASKS))
    order = lambda t: [m for m in ORDER if any(m in table[t].get(s, {}) for s in sets)] + sorted(  # noqa: E731
        {m for s in sets for m in table[t].get(s, {})} - set(ORDER))
    for metric, fmt in (("psnr", "{:.2f}"), ("ssim", "{:.4f}")):
        print(f"\n### {metric.upper()}\n")
        print("| task | method | " + " | ".join(sets) + " |")
        print("|---|---|" + "---|" * len(sets))
        for t in tasks:
            best = {s: max((v[metric] for v in table[t].get(s, {}).values()), default=None) for s in sets}
            for m in order(t):
                label = "gray image (A⁺y)" if (m == "pinv" and t == "colorize") else m
                cells = []
                for s in sets:
                    v = table[t].get(s, {}).get(m)
                    cell = fmt.format(v[metric]) if v else "—"
                    cells.append(f"**{cell}**" if v and v[metric] == best[s] else cell)
                print(f"| {t} | {label} | " + " | ".join(cells) + " |")
    print("\n### generator calls and seconds per image (as the folders ran them: see their settings.yaml)\n")
    print("| task | method | calls | s / image (" + ", ".join(sets) + ") |")
    print("|---|---|---|---|")
    for t in tasks:
        for m in order(t):
            rows = [table[t][s][m] for s in sets if m in table[t].get(s, {})]
            secs = ", ".join(f"{table[t][s][m]['seconds']:.2f}" if m in table[t].get(s, {}) else "—" for s in sets)
            print(f"| {t} | {m} | {rows[0]['nfe']:.0f} | {secs} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
