"""Smoke test of examples/toy2d.py (the quantitative 8-Gaussian experiment)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("toy2d", ROOT / "examples" / "toy2d.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_metrics_on_perfect_and_bad_samples():
    toy = _load()
    good = toy.data(800, torch.Generator().manual_seed(0))
    m = toy.metrics(good)
    assert m["modes_covered"] == 8 and m["high_quality_frac"] > 0.95
    m = toy.metrics(torch.zeros(100, 2))
    assert m["modes_covered"] == 0 and m["high_quality_frac"] == 0.0


@pytest.mark.parametrize("prior", ["kld", "mmd", "dswd", "mmse"])
def test_toy2d_runs(tmp_path, prior):
    toy = _load()
    threads = torch.get_num_threads()
    try:
        rc = toy.main(["--prior", prior, "--iters", "5", "--samples", "64", "--quiet",
                       "--json", str(tmp_path / "o.json"), "--plot", str(tmp_path / "o.png")])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    res = json.loads((tmp_path / "o.json").read_text())
    assert 0 <= res["modes_covered"] <= 8 and 0.0 <= res["high_quality_frac"] <= 1.0
    assert (tmp_path / "o.png").stat().st_size > 0


@pytest.mark.slow
def test_toy2d_map_beats_mmse(tmp_path):
    """The paper's claim on the 2-D mixture: the MAP (GAN) prior recovers the modes in K=4 steps,
    MMSE lands between them. A GAN's run depends on its seed (and on the CPU's arithmetic: seed 0
    covered 8 modes when this was written, 4 on the Xeon, whose seeds 1-3 covered 6, 8 and 8), so
    the claim is checked on the mean of four seeds. ~1-2 min on 2 cores."""
    toy = _load()
    threads = torch.get_num_threads()
    runs = []
    try:
        for seed in range(4):
            out = tmp_path / f"kld{seed}.json"
            toy.main(["--prior", "kld", "--iters", "3000", "--seed", str(seed), "--quiet", "--json", str(out)])
            runs.append(json.loads(out.read_text()))
        toy.main(["--prior", "mmse", "--iters", "3000", "--quiet", "--json", str(tmp_path / "mmse.json")])
    finally:
        torch.set_num_threads(threads)
    mmse = json.loads((tmp_path / "mmse.json").read_text())
    modes = np.mean([r["modes_covered"] for r in runs])
    quality = np.mean([r["high_quality_frac"] for r in runs])
    assert modes >= 6 and quality > 0.4, runs
    assert mmse["high_quality_frac"] < 0.1 and mmse["modes_covered"] <= 1, mmse
