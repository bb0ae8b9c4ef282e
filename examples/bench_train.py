#!/usr/bin/env python
"""Training-throughput benchmark: images/s of the trainer's step on synthetic data.

    python examples/bench_train.py rgm-kld-d-cpu --steps 10            # CPU
    python examples/bench_train.py rgm-kld-d-gpu --steps 50 --precision bf16   # GPU
    python examples/bench_train.py rgm-kld-d-cpu --forward 256         # + 256x256 G forward time

Prints one JSON line with images_per_s (per process), step time, parameter counts and the
precision used. Same D and G updates as ``pnp-rgm train`` (one process, no data loading).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pnp_rgm.nets import count_params  # noqa: E402
from pnp_rgm.train.config import load_run_config  # noqa: E402
from pnp_rgm.train.dist import DistInfo  # noqa: E402
from pnp_rgm.train.trainer import _autocast, build_components, train_step  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="shipped config name or YAML path")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--crop", type=int, default=None)
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default=None)
    ap.add_argument("--no-channels-last", action="store_true")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--forward", type=int, default=0, help="also time a no-grad G forward at this size (batch 1)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = load_run_config(a.config)
    cfg = replace(cfg, data=replace(cfg.data, batch_size=a.batch or cfg.data.batch_size, crop=a.crop or cfg.data.crop),
                  train=replace(cfg.train, precision=a.precision or cfg.train.precision,
                                channels_last=cfg.train.channels_last and not a.no_channels_last))
    dev = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) or a.device == "cuda" else "cpu")
    c = build_components(cfg, DistInfo(device=dev))
    mf = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    x0 = (torch.rand(cfg.data.batch_size, cfg.model.channels, cfg.data.crop, cfg.data.crop, device=dev) * 2 - 1)
    x0 = x0.contiguous(memory_format=mf)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for i in range(a.warmup):
        train_step(c, x0, i)
    sync()
    t = time.perf_counter()
    for i in range(a.steps):
        train_step(c, x0, a.warmup + i)
    sync()
    dt = (time.perf_counter() - t) / a.steps
    res = {"config": a.config, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu x{torch.get_num_threads()} threads",
           "precision": str(c.amp_dtype or "fp32").replace("torch.", ""), "channels_last": cfg.train.channels_last,
           "batch": cfg.data.batch_size, "crop": cfg.data.crop, "step_s": round(dt, 4),
           "images_per_s": round(cfg.data.batch_size / dt, 2), "G_params": count_params(c.G),
           "D_params": count_params(c.D) if c.D is not None else 0}
    if a.forward:
        G = c.ema.model
        x = torch.randn(1, cfg.model.channels, a.forward, a.forward, device=dev).contiguous(memory_format=mf)
        k = torch.ones(1, device=dev)
        with torch.no_grad(), _autocast(c):
            for _ in range(2):
                G(x, k)
            sync()
            t = time.perf_counter()
            for _ in range(5):
                G(x, k)
            sync()
        res[f"forward_{a.forward}_s"] = round((time.perf_counter() - t) / 5, 4)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
