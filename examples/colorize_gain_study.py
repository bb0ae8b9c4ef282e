#!/usr/bin/env python
"""How much of the colorize preset's loss is its chroma gain? Per-image gain study on training images.

    python examples/colorize_gain_study.py --data ../shared/datasets/CBSD432 --crop 256 \\
        --holdout ../shared/datasets/T91 --holdout-crop 128

The colorize preset outputs ``gray + g·m`` with ``m`` the chroma of the twin's 8-orientation mean
(one call per orientation at σ 0.15, ν 1, as the preset) and ``g = 2α`` fixed. For each image this
prints what the gray image, the fixed gain, and the per-image best gain ``g* = <c, m> / |m|²`` (an
oracle: ``c`` is the true chroma) score, then gains predicted from what the restorer can see:
``g = exp(w·φ)`` with φ from {log |m|², log of the orientations' disagreement, log std, mean and
log gradient energy of the gray image, log max |m|}, and the disagreement shrink
``g = g0·|m|² / (|m|² + k·disagreement)``. Each is fitted to maximise mean PSNR (5-fold
cross-validation on ``--data``) and scored on ``--holdout`` after fitting on all of ``--data``.
PSNR comes from three sums per image (no clipping to [0, 1]); the preset clips, so its numbers
differ from ``tune_presets.py`` by a few hundredths of a dB.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pnp_rgm.benchmark import center_crop, list_images  # noqa: E402
from pnp_rgm.io import image_to_tensor, read_image  # noqa: E402
from pnp_rgm.pnp import _orient  # noqa: E402
from pnp_rgm.priors import load_prior  # noqa: E402

FEATURES = ["1", "log|m|²", "log disagreement", "log gray std", "gray mean", "log gradient energy", "log max|m|"]


def measure(prior, data: Path, limit: int, crop: int, sigma: float) -> np.ndarray:
    """Rows of [|m|², disagreement, gray std, gray mean, gradient energy, max|m|, |c|², <c,m>, |m|², N]."""
    rows = []
    for i, f in enumerate(list_images(data, limit)):
        img = read_image(f)
        if img.shape[2] == 1:
            continue
        x = image_to_tensor(center_crop(img, crop, 2)).double()
        gray = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
        c = x - gray
        if float((c ** 2).mean()) < 1e-8:  # a gray image stored as RGB: PSNR of any gain 0 is infinite
            continue
        gen = torch.Generator().manual_seed(i)
        outs = []
        with torch.no_grad():
            for t in range(8):
                xn = gray.float() + sigma * torch.randn(gray.shape, generator=gen)
                d = _orient(prior.denoise(_orient(xn, t), sigma, generator=gen), t, inverse=True).double()
                outs.append(d - d.mean(1, keepdim=True))
        d = torch.stack(outs)
        m = d.mean(0)
        g = gray[:, :1]
        grad = float(((g[..., 1:, :] - g[..., :-1, :]) ** 2).mean() + ((g[..., 1:] - g[..., :-1]) ** 2).mean())
        rows.append([float((m ** 2).sum(1).mean()), float(d.var(0, unbiased=False).sum(1).mean()), float(g.std()),
                     float(g.mean()), grad, float(m.abs().amax()),
                     float((c ** 2).sum()), float((c * m).sum()), float((m ** 2).sum()), c.numel()])
    return np.array(rows)


def features(a: np.ndarray) -> np.ndarray:
    m2, dis, gs, gm, ge, mx = a[:, :6].T
    return np.stack([np.ones_like(m2), np.log(m2), np.log(dis), np.log(gs + 1e-6), gm, np.log(ge + 1e-9),
                     np.log(mx)], 1)


def psnr(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    cc, cm, mm, n = a[:, 6:].T
    return -10 * np.log10(np.maximum((cc - 2 * g * cm + g * g * mm) / n, 1e-12))


def log_linear(w, a, cols):
    return np.exp(np.clip(features(a)[:, cols] @ w, -10, 3))


def shrink(w, a, _cols):
    return np.exp(w[0]) * a[:, 0] / (a[:, 0] + np.exp(w[1]) * a[:, 1])


def fit(model, a, cols, w0):
    loss = lambda w: -psnr(a, model(w, a, cols)).mean() + 1e-3 * float((np.asarray(w)[1:] ** 2).sum())  # noqa: E731
    return minimize(loss, w0, method="Nelder-Mead", options=dict(maxiter=20000, xatol=1e-6, fatol=1e-8)).x


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="fit set (training images)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--holdout", type=Path, required=True, help="scored after fitting on all of --data")
    ap.add_argument("--holdout-crop", type=int, default=128)
    ap.add_argument("--prior", default="mmse-gray")
    ap.add_argument("--sigma", type=float, default=0.15, help="the preset's noise level")
    ap.add_argument("--gain", type=float, default=1.1, help="the preset's fixed gain 2α")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    prior = load_prior(a.prior, device="cpu")
    prior.set_precision("auto")
    fit_set = measure(prior, a.data, a.limit, a.crop, a.sigma)
    hold = measure(prior, a.holdout, 0, a.holdout_crop, a.sigma)
    print(f"| gain | {a.data.name} ({len(fit_set)}, {a.crop}²) | {a.holdout.name} ({len(hold)}, {a.holdout_crop}²) |")
    print("|---|---|---|")
    for name, g in (("0 (the gray image)", lambda s: 0.0 * s[:, 0]), (f"{a.gain} (the preset)", lambda s: a.gain + 0 * s[:, 0]),
                    ("per-image best (oracle)", lambda s: np.clip(s[:, 7] / s[:, 8], 0, None))):
        print(f"| {name} | {psnr(fit_set, g(fit_set)).mean():.3f} | {psnr(hold, g(hold)).mean():.3f} |")
    folds = np.array_split(np.random.default_rng(0).permutation(len(fit_set)), 5)
    models = [("disagreement shrink g0·|m|²/(|m|² + k·dis)", shrink, None, [np.log(a.gain), 0.0])]
    for cols in ([0, 1], [0, 2], [0, 3], [0, 6], [0, 1, 2], [0, 1, 2, 3], list(range(7))):
        w0 = np.zeros(len(cols))
        w0[0] = np.log(a.gain)
        models.append(("exp(w·φ), φ = " + ", ".join(FEATURES[c] for c in cols), log_linear, cols, w0))
    for name, model, cols, w0 in models:
        cv = []
        for k in range(5):
            train = np.concatenate([folds[j] for j in range(5) if j != k])
            w = fit(model, fit_set[train], cols, w0)
            cv.append(psnr(fit_set[folds[k]], model(w, fit_set[folds[k]], cols)))
        w = fit(model, fit_set, cols, w0)
        print(f"| {name} (5-fold) | {np.concatenate(cv).mean():.3f} | {psnr(hold, model(w, hold, cols)).mean():.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
