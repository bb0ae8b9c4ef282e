#!/usr/bin/env python
"""Compare one method's per-image rows of two benchmark runs (e.g. bf16 against fp32).

    python examples/compare_runs.py NEW_ROOT benchmarks/results [--method preset]

NEW_ROOT holds ``pnp-rgm benchmark`` folders named VARIANT-SET (``NEW_ROOT/sr4-Set5/results.csv``);
the reference is ``REF_DIR/VARIANT-SET.csv`` (the layout of ``benchmarks/results``). Prints a
Markdown row per folder: mean PSNR of each run, the mean and largest per-image PSNR difference,
the mean SSIM difference and the mean seconds per image of each run.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path


def rows(path: Path, method: str) -> dict[str, dict]:
    with path.open(newline="") as f:
        return {r["image"]: r for r in csv.DictReader(f) if r["method"] == method}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("new", type=Path)
    ap.add_argument("ref", type=Path)
    ap.add_argument("--method", default="preset")
    a = ap.parse_args(argv)
    print("| run | images | PSNR ref | PSNR new | mean diff | max abs diff | SSIM diff | s / image ref | new |")
    print("|---|---|---|---|---|---|---|---|---|")
    for res in sorted(a.new.glob("*/results.csv")):
        name = res.parent.name
        ref_file = a.ref / f"{name}.csv"
        if not ref_file.is_file():
            print(f"{name}: no {ref_file}", file=sys.stderr)
            continue
        new, ref = rows(res, a.method), rows(ref_file, a.method)
        common = sorted(set(new) & set(ref))
        if not common or len(common) != len(ref):
            print(f"{name}: {len(common)} of {len(ref)} images in both; skipped", file=sys.stderr)
            continue

        def mean(run, key):
            return statistics.mean(float(run[k][key]) for k in common)

        dp = [float(new[k]["psnr"]) - float(ref[k]["psnr"]) for k in common]
        print(f"| {name} | {len(common)} | {mean(ref, 'psnr'):.3f} | {mean(new, 'psnr'):.3f} | "
              f"{statistics.mean(dp):+.4f} | {max(abs(d) for d in dp):.4f} | "
              f"{mean(new, 'ssim') - mean(ref, 'ssim'):+.5f} | {mean(ref, 'seconds'):.2f} | {mean(new, 'seconds'):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
