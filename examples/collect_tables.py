#!/usr/bin/env python
"""Collect ``pnp-rgm benchmark`` folders named TASK-DATASET into one Markdown table per metric.

    python examples/collect_tables.py bench/            # bench/sr4-Set5, bench/sr4-CBSD68, ...

Prints, per task and dataset, the mean PSNR / SSIM of every method found in ``results.csv``
(the same means as each folder's ``summary.md``), plus the preset's generator calls and seconds
per image.
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

ORDER = ["preset", "bm3d", "tv", "bicubic", "pinv"]
TASKS = ["sr2", "sr4", "sr8", "sr4-bicubic", "colorize", "denoise", "inpaint", "deblur-gauss", "deblur-uniform"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--datasets", default="Set5,Set14,CBSD68,McMaster")
    a = ap.parse_args(argv)
    sets = a.datasets.split(",")
    table: dict = defaultdict(dict)
    for folder in sorted(p for p in a.root.iterdir() if (p / "results.csv").is_file()):
        task, _, ds = folder.name.rpartition("-")
        by = defaultdict(lambda: defaultdict(list))
        with (folder / "results.csv").open() as fh:
            for r in csv.DictReader(fh):
                for k in ("psnr", "ssim", "nfe", "seconds"):
                    by[r["method"]][k].append(float(r[k] or 0))
        table[task][ds] = {m: {k: float(np.mean(v)) for k, v in d.items()} | {"n": len(d["psnr"])} for m, d in by.items()}
    tasks = [t for t in TASKS if t in table] + sorted(set(table) - set(TASKS))
    for metric, fmt in (("psnr", "{:.2f}"), ("ssim", "{:.4f}")):
        print(f"\n### {metric.upper()}\n")
        print("| task | method | " + " | ".join(sets) + " |")
        print("|---|---|" + "---|" * len(sets))
        for t in tasks:
            methods = [m for m in ORDER if any(m in table[t].get(s, {}) for s in sets)]
            for m in methods:
                label = "gray image (A⁺y)" if (m == "pinv" and t == "colorize") else m
                cells = [fmt.format(table[t][s][m][metric]) if m in table[t].get(s, {}) else "—" for s in sets]
                print(f"| {t} | {label} | " + " | ".join(cells) + " |")
    print("\n### preset cost (256² crops, CPU)\n")
    print("| task | generator calls | s / image (" + ", ".join(sets) + ") |")
    print("|---|---|---|")
    for t in tasks:
        rows = [table[t][s]["preset"] for s in sets if "preset" in table[t].get(s, {})]
        if rows:
            secs = ", ".join(f"{table[t][s]['preset']['seconds']:.2f}" if "preset" in table[t].get(s, {}) else "—"
                             for s in sets)
            print(f"| {t} | {rows[0]['nfe']:.0f} | {secs} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
