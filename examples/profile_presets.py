#!/usr/bin/env python
"""Where a preset's time goes, and the floor it cannot go below.

    python examples/profile_presets.py --threads 2                   # sr4, denoise, inpaint on CPU
    python examples/profile_presets.py --tasks colorize --size 512

For each task, on a 256² crop of scikit-image's astronaut (as time_presets.py):

1. the forward FLOPs of one generator call (torch.utils.flop_counter: convolutions and matmuls),
2. the machine's fp32 matmul throughput (a 2048² sgemm, best of 5) and the floor it implies:
   FLOPs × generator calls / throughput, the time a restore would take if every call ran at the
   speed of a large matmul and nothing else cost anything,
3. one restore under torch.profiler: seconds in total, inside generator calls and outside them
   (the exact SVD data step, flips, the solver's arithmetic), and the five most expensive operators.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import skimage.data
import torch
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pnp_rgm.api import Restorer  # noqa: E402
from pnp_rgm.priors import PRECISIONS  # noqa: E402
from pnp_rgm.tasks import known_pixels, simulate_observation, with_default_boundary  # noqa: E402


def matmul_gflops(n: int = 2048, repeat: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def call_flops(prior, size: int) -> int:
    x = torch.rand(1, prior.channels, size, size)
    with FlopCounterMode(display=False) as fc:
        prior.denoise(x, 0.05)
    return fc.get_total_flops()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="sr4,denoise,inpaint")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS,
                    help="the network's precision (default fp32: the floor is an fp32 matmul's)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    peak = matmul_gflops()
    print(f"threads: {torch.get_num_threads()}; fp32 matmul throughput {peak:.1f} GFLOP/s (2048² sgemm, best of 5)\n")
    img = skimage.data.astronaut()[:a.size, 128:128 + a.size] / 255.0
    x = torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None]
    print("| task | prior | calls | GFLOP / call | floor s | measured s | in generator s | outside s | "
          "achieved GFLOP/s in generator |")
    print("|---|---|---|---|---|---|---|---|---|")
    tops = {}
    for task in a.tasks.split(","):
        sigma = 25 / 255 if task == "denoise" else 0.0
        op, y = simulate_observation(task, x, sigma, seed=0, **with_default_boundary(task, {}))  # as restore models it
        mask = known_pixels(op)
        r = Restorer(task, sigma=sigma, precision=a.precision)
        if r.method != "rgm":
            print(f"| {task} | {r.method} | 0 | — | — | — | — | — | — |")
            continue
        r.restore_tensor(y, mask)  # warm-up
        prior = r.prior
        gflop = call_flops(prior, a.size) / 1e9
        denoise = prior.denoise

        def timed_denoise(*args, **kw):  # label every generator call for the profiler
            with record_function("generator_call"):
                return denoise(*args, **kw)

        prior.denoise = timed_denoise
        try:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                t0 = time.perf_counter()
                r.restore_tensor(y, mask)
                total = time.perf_counter() - t0
        finally:
            del prior.denoise  # back to the class method
        events = prof.key_averages()
        in_gen = sum(e.cpu_time_total for e in events if e.key == "generator_call") / 1e6
        calls = r.config.calls
        floor = gflop * calls / peak
        print(f"| {task} | {prior.path.name if prior.path else 'prior'} | {calls} | {gflop:.2f} | {floor:.3f} | "
              f"{total:.2f} | {in_gen:.2f} | {total - in_gen:.2f} | {gflop * calls / max(in_gen, 1e-9):.1f} |",
              flush=True)
        tops[task] = sorted((e for e in events if e.key != "generator_call"), key=lambda e: -e.self_cpu_time_total)[:5]
    for task, top in tops.items():
        print(f"\n{task}: the five operators with the most self CPU time")
        for e in top:
            print(f"  {e.key:40s} {e.self_cpu_time_total / 1e6:7.3f} s  ({e.count} calls)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
