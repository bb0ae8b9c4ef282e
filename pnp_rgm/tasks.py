"""Tasks: how an observation file maps to an operator, and the prior-free restorations.

A *task* is an operator name (see :mod:`pnp_rgm.operators`) plus the observation noise level
``sigma``. This module knows the geometry linking the observation to the clean image
(``sr4``: 4× larger; ``colorize``: 1 → 3 channels) and runs the baseline restorations
``none`` (pseudo-inverse) and ``tv`` (TV-regularized Douglas–Rachford).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pnp_rgm.errors import ShapeError, TaskError, as_number
from pnp_rgm.operators import BLUR_TASKS, Inpaint, SVDOperator, fill_missing, is_windowed, make_operator, observe
from pnp_rgm.solvers import DRSState, drs, tv_prior_step

if TYPE_CHECKING:
    from pnp_rgm.tiling import Tile

#: task names accepted by ``restore``/``degrade`` (srN stands for any integer factor >= 2)
TASKS = ("denoise", "sr2", "sr4", "sr8", "srN", "srN-bicubic", "colorize", "inpaint", "deblur-gauss", "deblur-uniform")
#: operator parameters per task that may be set from the CLI (--set key=value)
OPERATOR_KEYS = ("width", "size", "boundary", "missing", "box", "seed")
#: the border model ``restore`` and ``degrade`` give a blur unless told: ``free`` (a photo's
#: scene goes on outside it). The operator's own default and the benchmarks' is ``zero``
#: (DDRM's and DPIR's): on a photo's blur it restored 13.0 dB (Gaussian) and 8.0 dB (box) where
#: ``free`` restored 26.4 and 37.6 (README, "Deblurring a photo")
RESTORE_BOUNDARY = "free"
#: restoration methods without a learned prior (bm3d: the optional bm3d package)
BASELINES = ("none", "tv", "bm3d")
#: the solver settings a ``bm3d`` run takes (from the task's preset unless given): RGM-DRS's
#: σ-schedule with (C)BM3D as the denoiser
BM3D_SETTINGS = ("outer", "steps", "sigma_max", "sigma_min", "alpha", "lam")


_TASK_NAME = re.compile(r"denoise|colorize|inpaint|deblur-gauss|deblur-uniform|sr\d+(-bicubic)?")


def check_task(task: str) -> None:
    """A :class:`TaskError` listing :data:`TASKS` unless ``task`` names one (an ``srN`` factor out of
    range is left to the operator, which names the valid factors)."""
    if not isinstance(task, str):
        raise TaskError(f"task must be a task name (a string such as 'sr4'), got {task!r}")
    if not _TASK_NAME.fullmatch(task) or re.fullmatch(r"sr0\d+.*", task):
        raise TaskError(f"unknown task {task!r}; valid: {', '.join(TASKS)} (srN: e.g. sr2, sr4, sr4-bicubic)")


def with_default_boundary(task: str, params: dict) -> dict:
    """``params`` with ``boundary: RESTORE_BOUNDARY`` added for a blur task that does not set one."""
    if task in BLUR_TASKS and "boundary" not in params:
        return {**params, "boundary": RESTORE_BOUNDARY}
    return params


def sr_factor(task: str) -> int | None:
    """The integer factor of an ``srN``/``srN-bicubic`` task, else ``None``."""
    m = re.fullmatch(r"sr([1-9]\d*|0)(-bicubic)?", task)
    return int(m.group(1)) if m else None


def clean_shape(task: str, obs_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Shape ``(C, H, W)`` of the clean image behind an observation of shape ``obs_shape``."""
    c, h, w = obs_shape
    n = sr_factor(task)
    if n is not None:
        return (c, h * n, w * n)
    if task == "colorize":
        if c != 1:
            raise ShapeError(f"task 'colorize' restores a 1-channel (grayscale) observation; got {c} channels")
        return (3, h, w)
    return (c, h, w)


def grayscale_observation(img: np.ndarray, where: str = "input") -> np.ndarray:
    """Accept a gray image as (H, W, 1) or as RGB with equal channels; return (H, W, 1)."""
    if img.shape[2] == 1:
        return img
    if img.shape[2] == 3 and np.allclose(img, img[..., :1], atol=1.5 / 255):
        return img[..., :1].copy()
    raise ShapeError(f"{where}: task 'colorize' needs a grayscale image (1 channel or RGB with equal channels); "
                     "this image has distinct colour channels")


@dataclass(frozen=True)
class TVConfig:
    """TV-regularized DRS: PnP-DRS with scikit-image's Chambolle TV denoiser (weight ``tv_weight``)
    as the prior step and the exact data prox ``prox_{lam·f}``; its fixed point minimizes
    ``½‖Ax − y‖² + (tv_weight / lam)·TV(x)`` (``lam = inf``: ``TV(x)`` subject to ``Ax = y``).
    The loop starts from ``A⁺y`` with singular values below ``init_rcond·max(s)`` dropped, so
    ill-conditioned blurs do not start from amplified noise."""

    tv_weight: float = 0.2
    lam: float = float("inf")
    iters: int = 20
    init_rcond: float = 1e-2

    @classmethod
    def for_task(cls, task: str, sigma: float, **overrides: Any) -> "TVConfig":
        """Defaults by task and noise level (tuned on Set14 centre crops), then ``overrides``."""
        if sigma > 0:  # ½‖Ax − y‖² + (σ/2)·TV(x)
            base = cls(tv_weight=0.5 * sigma, lam=1.0)
        elif task.startswith("deblur"):  # ill-conditioned: 8-bit quantization noise must not be inverted
            base = cls(tv_weight=0.01, lam=1000.0)
        else:  # well-conditioned, noiseless: constrained TV minimization
            base = cls()
        valid = {f.name for f in fields(cls)}
        bad = sorted(set(overrides) - valid)
        if bad:
            raise TaskError(f"unknown setting(s) {', '.join(bad)} for prior 'tv'; valid: {', '.join(sorted(valid))}")
        vals = {f.name: getattr(base, f.name) for f in fields(cls)}
        for k, v in overrides.items():
            vals[k] = as_number(k, v, type(vals[k]))
        return cls(**vals)


def restore_baseline(op: SVDOperator, y: torch.Tensor, method: str = "tv", sigma: float = 0.0,
                     callback=None, **settings: Any) -> torch.Tensor:
    """Prior-free restoration of ``y`` (``(B, *op.out_shape)``).

    ``none``: the pseudo-inverse ``A⁺y`` (setting ``rcond``, default ``max(M, N)·eps``);
    ``tv``: TV-regularized DRS (:class:`TVConfig`). Returns ``(B, *op.in_shape)`` clipped to [0, 1].
    """
    if method == "none":
        bad = sorted(set(settings) - {"rcond"})
        if bad:
            raise TaskError(f"unknown setting(s) {', '.join(bad)} for prior 'none'; valid: rcond")
        rcond = settings.get("rcond")
        return op.pinv(y, rcond=None if rcond is None else as_number("rcond", rcond)).clamp(0, 1)
    if method != "tv":
        raise TaskError(f"unknown prior-free method {method!r}; valid: none, tv")
    cfg = TVConfig.for_task(op.name, sigma, **settings)
    x0 = initial_estimate(op, y, rcond=cfg.init_rcond)
    state: DRSState = drs(op, y, tv_prior_step(cfg.tv_weight), lam=cfg.lam, iters=cfg.iters, x0=x0,
                          callback=callback)
    return state.w.clamp(0, 1)


def make_task_operator(task: str, obs_shape: tuple[int, int, int], mask: np.ndarray | None = None,
                       tile: "Tile | None" = None, **params: Any) -> SVDOperator:
    """The operator of ``task`` for an observation of shape ``obs_shape`` (``(C, H, W)``).

    ``tile`` (a :class:`~pnp_rgm.tiling.Tile` of a larger observation, whose piece ``obs_shape``
    and ``mask`` are): the exact operator of the tile's observation pixels. Its ``crop`` (two
    slices, or ``None`` when the input is the tile's own clean pixels) says which of its
    restored pixels are the tile's."""
    if task == "inpaint" and mask is not None:
        params = {k: v for k, v in params.items() if k not in ("missing", "box", "seed")}
        params["mask"] = mask
    elif mask is not None:
        raise TaskError(f"a mask is only used by task 'inpaint', not {task!r}")
    if tile is not None and is_windowed(task):
        full = clean_shape(task, (obs_shape[0], tile.image_height, tile.image_width))
        return make_operator(task, full, window=tile.window, **params)
    return make_operator(task, clean_shape(task, obs_shape), **params)


def known_pixels(op: SVDOperator) -> np.ndarray | None:
    """The ``(H, W)`` boolean mask of pixels an inpaint operator observes in every channel (the
    ``mask`` argument of :class:`~pnp_rgm.api.Restorer`); ``None`` for every other operator."""
    return op.mask.all(dim=0).numpy() if isinstance(op, Inpaint) else None


def initial_estimate(op: SVDOperator, y: torch.Tensor, rcond: float | None = None) -> torch.Tensor:
    """Where every iterative method starts: ``A⁺y``, with an inpaint operator's holes filled from the
    known pixels around them (:func:`~pnp_rgm.operators.fill_missing`) instead of left at 0. The
    presets, the TV baseline and the peers' samplers in the benchmark all start here."""
    x0 = op.pinv(y, rcond=rcond)
    known = known_pixels(op)
    return fill_missing(x0, torch.from_numpy(known)) if known is not None and not known.all() else x0


def simulate_observation(task: str, x: torch.Tensor, sigma: float = 0.0, seed: int = 0,
                         mask: np.ndarray | None = None, **params: Any) -> tuple[SVDOperator, torch.Tensor]:
    """Degrade a clean ``x`` ``(B, C, H, W)`` exactly as ``pnp-rgm degrade`` does; returns ``(op, y)``.

    A blur with ``boundary: free`` blurs ``x`` extended by its mirror image, as a camera sees a
    scene that goes on beyond the frame (``op.in_shape`` is the extended image).

    ``inpaint`` uses ``mask`` when given, else ``params`` (``missing``/``box``), else 50 % random
    pixels; a random mask and the noise are both drawn from ``seed``."""
    if task == "inpaint":
        if mask is not None:
            params = {"mask": mask}
        elif not ({"missing", "box"} & set(params)):
            params = {**params, "missing": 0.5}
        if "missing" in params:
            params.setdefault("seed", seed)
    op = make_operator(task, tuple(x.shape[1:]), **params)
    if op.crop is not None:  # boundary: free: the scene beyond the image is taken as its mirror image
        rows, cols = op.crop
        pad = (cols.start, op.in_shape[2] - cols.stop, rows.start, op.in_shape[1] - rows.stop)
        mode = "reflect" if max(pad) < min(x.shape[-2:]) else "replicate"
        x = torch.nn.functional.pad(x, pad, mode=mode)
    return op, observe(op, x, sigma, torch.Generator().manual_seed(seed))
