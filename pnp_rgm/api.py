"""The restoration API: :class:`Restorer` (keeps a prior loaded for batches) and :func:`restore`.

``prior`` is ``"none"`` (pseudo-inverse), ``"tv"`` (TV-regularized DRS), ``"bm3d"`` (DRS with (C)BM3D as
the denoiser, on the task preset's noise-level schedule; the optional ``bm3d`` package), a bundled prior name or
checkpoint folder (RGM-DRS with that prior), or a loaded :class:`~pnp_rgm.priors.Prior`.
Images larger than ``max_pixels`` (clean-image pixels) are restored in overlapping tiles
(:mod:`pnp_rgm.tiling`), so memory stays bounded for any image size.
"""
from __future__ import annotations

import math
import os
from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from pnp_rgm.errors import ShapeError, TaskError, as_number
from pnp_rgm.pnp import RGMDRSConfig, rgm_prior_step
from pnp_rgm.solvers import denoiser_prior_step, drs
from pnp_rgm.operators import BLUR_TASKS
from pnp_rgm.tasks import (BASELINES, OPERATOR_KEYS, check_task, clean_shape, grayscale_observation, initial_estimate,
                           make_task_operator, restore_baseline, sr_factor, with_default_boundary)
from pnp_rgm.tiling import Tile, TileSpec, restore_tiled

ArrayOrTensor = Union[np.ndarray, torch.Tensor]
#: the rounding noise of an 8-bit image, 1/(255·√12): what a blur's solver assumes of an image file
ROUNDING_SIGMA_8BIT = 1 / (255 * math.sqrt(12))


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise TaskError(f"unknown device {str(device)!r}; valid: auto, cpu, cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TaskError(f"device {str(device)!r} requested but no CUDA GPU is available; use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise TaskError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} GPU(s), "
                        f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return dev


def _rgm_config(settings: dict[str, Any]) -> RGMDRSConfig:
    defaults = RGMDRSConfig()
    valid = {f.name for f in fields(RGMDRSConfig)}
    bad = sorted(set(settings) - valid)
    if bad:
        raise TaskError(f"unknown setting(s) {', '.join(bad)} for a learned prior; valid: {', '.join(sorted(valid))}")
    vals: dict[str, Any] = {}
    for k, v in settings.items():
        default = getattr(defaults, k)
        try:
            if isinstance(default, tuple):
                vals[k] = tuple(as_number(k, j, int) for j in (v if isinstance(v, (list, tuple)) else [v]))
            elif isinstance(default, str):
                vals[k] = str(v)
            elif isinstance(default, bool):
                if not isinstance(v, bool):
                    raise ValueError(v)
                vals[k] = v
            else:
                vals[k] = as_number(k, v, type(default))
        except TaskError:
            raise
        except (TypeError, ValueError):
            kind = {bool: "a boolean (true/false)"}.get(type(default), f"a {type(default).__name__}")
            raise TaskError(f"setting {k}={v!r} must be {kind}") from None
    return RGMDRSConfig(**vals)


class Restorer:
    """Restore observations of one task with one prior; reuse it for many images.

    Parameters: ``task`` (see :data:`pnp_rgm.tasks.TASKS`), ``prior`` (see module docstring;
    ``None`` = the task's preset from ``pnp_rgm/presets.yaml``),
    ``sigma`` (observation noise std, [0, 1] units), ``device`` (``auto``/``cpu``/``cuda``),
    ``seed``, tiling (``max_pixels``, ``tile``, ``overlap`` in observation pixels), ``precision`` of a
    learned prior's network (``auto``: bf16 on a CPU with native bf16, else fp32; ``fp32``; ``bf16``), and
    ``settings``: operator parameters (``width``, ``size``, ``boundary``: a blur's border model, here
    ``free`` unless given — a photo's scene goes on beyond its frame; ``zero`` as the benchmarks
    simulate) and solver settings
    (``tv``: ``tv_weight``, ``lam``, ``iters``, ``init_rcond``; learned priors: the fields of
    :class:`~pnp_rgm.pnp.RGMDRSConfig`; ``none``: ``rcond``). An explicit MMSE-twin ``prior``
    starts from the solver settings of the task's preset (tuned for twins); an RGM generator from
    the :class:`~pnp_rgm.pnp.RGMDRSConfig` defaults (its own levels, as the reference runs it).
    """

    def __init__(self, task: str, prior: Any = None, *, sigma: float = 0.0, device: str = "auto", seed: int = 0,
                 max_pixels: int = 1024 * 1024, tile: int = 256, overlap: int = 32, precision: str = "auto",
                 **settings: Any) -> None:
        from pnp_rgm.presets import preset_for

        check_task(task)
        if prior is not None and not isinstance(prior, (str, os.PathLike)) and not _is_prior(prior):
            raise TaskError(f"prior must be a name, a checkpoint folder or a loaded Prior, got {prior!r}")
        preset = preset_for(task)
        explicit = prior is not None
        if not explicit:  # the task's preset (pnp_rgm/presets.yaml); explicit settings win
            prior, settings = preset.prior, {**preset.settings, **settings}
        sigma = as_number("sigma", sigma)
        if not 0.0 <= sigma <= 1.0:
            raise TaskError(f"sigma must be in [0, 1] (image units; 25/255 = 0.098), got {sigma}")
        if task == "denoise" and sigma == 0:
            raise TaskError("task 'denoise' needs the noise level: pass sigma > 0 (CLI: --sigma)")
        from pnp_rgm.priors import check_precision

        check_precision(precision)  # here too for the prior-free methods, which never set it
        seed = as_number("seed", seed, int)
        if not 0 <= seed < 2**63:
            raise TaskError(f"seed must be an integer in [0, 2**63), got {seed}")
        self.task, self.sigma, self.seed = task, sigma, seed
        self.device = resolve_device(device)
        self.op_params = with_default_boundary(task, {k: settings.pop(k) for k in list(settings) if k in OPERATOR_KEYS})
        self.max_pixels = as_number("max_pixels", max_pixels, int)
        if self.max_pixels < 64 * 64:
            raise TaskError(f"max_pixels must be >= 4096, got {max_pixels}")
        # a tile's clean image (tile·N for srN) stays within max_pixels
        n = sr_factor(task) or 1
        tile, overlap = as_number("tile", tile, int), as_number("overlap", overlap, int)
        side = min(tile, max(8, math.isqrt(self.max_pixels) // n))
        if side < tile:  # a tile shrunk to the budget keeps a valid overlap
            overlap = min(overlap, max(0, side // 2 - 1))
        self.tiles = TileSpec(side, overlap)
        # validate the task name and its operator parameters once, on a tiny shape
        probe = dict(self.op_params)
        if task == "inpaint":  # the mask given to restore() decides; missing/box only say how it was drawn
            probe = {**{k: v for k, v in probe.items() if k not in ("missing", "box", "seed")}, "missing": 0.5}
        make_task_operator(task, (1 if task == "colorize" else 3, 2 * n, 2 * n), **probe)
        if isinstance(prior, str) and prior in BASELINES:
            self.prior, self.method = None, prior
            self.settings = settings
            if prior == "tv":
                from pnp_rgm.tasks import TVConfig

                TVConfig.for_task(task, sigma, **settings)  # reject bad settings now
            if prior == "bm3d":  # the preset's σ-schedule DRS with BM3D as the denoiser
                from pnp_rgm.peers import bm3d_denoiser
                from pnp_rgm.tasks import BM3D_SETTINGS

                self.denoiser = bm3d_denoiser()  # the optional package, or a one-line error now
                bad = sorted(set(settings) - set(BM3D_SETTINGS))
                if bad:
                    raise TaskError(f"unknown setting(s) {', '.join(bad)} for prior 'bm3d'; "
                                    f"valid: {', '.join(BM3D_SETTINGS)}")
                preset_solver = {k: v for k, v in preset.settings.items() if k in BM3D_SETTINGS}
                self.config = _rgm_config({"steps": 1, **preset_solver, **settings})
        else:
            from pnp_rgm.priors import Prior, available_priors, load_prior

            if isinstance(prior, (str, os.PathLike)) and not Path(prior).is_dir() and prior not in available_priors():
                bundled = ", ".join(available_priors()) or "none bundled"
                what = "is a file, not a checkpoint folder" if Path(prior).is_file() else "is unknown"
                raise TaskError(f"prior {str(prior)!r} {what}; valid: none, tv, bm3d, a bundled prior ({bundled}) "
                                "or a checkpoint folder (model.safetensors, config.yaml)")
            self.prior = prior if isinstance(prior, Prior) else load_prior(prior)
            self.prior.to(self.device)
            self.prior.set_precision(precision)
            self.method = "rgm"
            if explicit and self.prior.generator.sigma_conditioned and preset.prior not in BASELINES:
                # a σ-conditioned prior (a twin, or an RGM generator with EDM preconditioning) runs the
                # preset's tuned solver settings (step-conditioned RGM generators: the reference's)
                solver = {f.name for f in fields(RGMDRSConfig)}
                settings = {**{k: v for k, v in preset.settings.items() if k in solver}, **settings}
            self.config = _rgm_config(settings)
            self.settings = settings

    # ------------------------------------------------------------------ core
    def _restore_one(self, y: torch.Tensor, mask: np.ndarray | None, tile: Tile | None = None,
                     callback=None, sigma: float | None = None) -> torch.Tensor:
        """Restore ``y`` whole, or as ``tile`` of a larger observation (its own clean pixels);
        ``sigma``: the observation's noise level for a learned prior (default ``self.sigma``)."""
        op = make_task_operator(self.task, tuple(y.shape[1:]), mask=mask, tile=tile, **self.op_params)
        x = self._solve(op, y, callback, self.sigma if sigma is None else sigma)
        return x if op.crop is None else x[..., op.crop[0], op.crop[1]]

    def data_sigma(self, y: torch.Tensor, low_precision: bool = False) -> float:
        """The observation noise a learned prior's solver assumes: ``sigma``, or for a blur given
        ``sigma = 0`` whose observation lies on the 8-bit grid (an image file), that grid's rounding
        noise 1/(255·√12) = 0.00113. A blur's data step at ``lam`` 10⁴ amplified the rounding of
        8-bit files: 20.6 dB against 29.6 with it on 20 CBSD68 crops under the box blur, 24.6
        against 25.1 under the Gaussian (README, "Deblurring a photo")."""
        if self.sigma > 0 or self.task not in BLUR_TASKS:
            return self.sigma
        if low_precision or y.dtype in (torch.bfloat16, torch.float16):  # rounded at least as coarsely
            return ROUNDING_SIGMA_8BIT
        v = y.double() * 255
        return ROUNDING_SIGMA_8BIT if bool(((v - v.round()).abs() < 0.01).all()) else 0.0

    def _solve(self, op, y: torch.Tensor, callback=None, sigma: float = 0.0) -> torch.Tensor:
        if self.method == "none":
            return restore_baseline(op, y, "none", **self.settings)
        if self.method == "tv":
            return restore_baseline(op, y, "tv", sigma=self.sigma, callback=callback, **self.settings)
        if self.method == "bm3d":  # (C)BM3D at the schedule's noise levels
            step = denoiser_prior_step(self.denoiser, self.config.sigmas(sigma), self.config.alpha)
        else:
            gen = torch.Generator(device=self.prior.device).manual_seed(self.seed)
            step = rgm_prior_step(self.prior, self.config, gen, sigma_y=sigma)
        r = self.config.samples  # independent chains, batched, then averaged
        yr = y.repeat(r, *([1] * (y.dim() - 1))) if r > 1 else y
        x0 = initial_estimate(op, yr)  # A+y; an inpaint hole starts from its surroundings, not from 0
        state = drs(op, yr, step, lam=self.config.data_weight(sigma), iters=self.config.iters,
                    x0=x0, callback=callback)
        w = state.w.reshape(r, *y.shape[:1], *state.w.shape[1:]).mean(0) if r > 1 else state.w
        return w.clamp(0, 1)

    @torch.no_grad()
    def restore_tensor(self, y: torch.Tensor, mask: np.ndarray | None = None, progress=None,
                       callback=None) -> torch.Tensor:
        """``y``: ``(B, C', H, W)`` observation -> ``(B, C, H', W')`` float32 restoration in [0, 1].

        The images of a batch are restored one after another, each as if alone (its result does
        not depend on the rest of the batch). ``callback(state)`` gets the
        :class:`~pnp_rgm.solvers.DRSState` after every DRS iteration of an untiled run (e.g.
        :class:`~pnp_rgm.solvers.PSNRTrace` against a known ground truth); returning ``False``
        stops early. A tiled run has no whole-image iterate, so a callback there is an error.
        ``progress(done, total)`` is called after each tile of a tiled run (counted over the batch).
        ``mask`` (inpaint; 1/True = known): ``(H, W)`` or ``(C, H, W)`` shared by the batch, or
        ``(B, C, H, W)`` (C may be 1), one per image."""
        if not isinstance(y, torch.Tensor) or y.dim() != 4:
            raise ShapeError(f"observation must be a (B, C, H, W) tensor, got {getattr(y, 'shape', type(y).__name__)}")
        if y.numel() == 0:
            raise ShapeError(f"observation is empty: shape {tuple(y.shape)}")
        if callback is not None and not callable(callback):
            raise TaskError(f"callback must be callable (state -> bool | None), got {callback!r}")
        if not y.is_floating_point():
            raise ShapeError(f"observation tensor must be floating point in [0, 1], got {y.dtype} "
                             "(divide uint8 data by 255)")
        if not torch.isfinite(y).all():
            raise ShapeError(f"observation has {int((~torch.isfinite(y)).sum())} NaN or infinite value(s); "
                             "give finite values in [0, 1] (noisy observations may stray a little outside)")
        # noisy observations stray outside [0, 1], but not by far more than their noise
        slack = max(0.5, 6.0 * self.sigma)
        lo, hi = float(y.min()), float(y.max())
        if lo < -slack or hi > 1.0 + slack:
            raise ShapeError(f"observation values must be in [0, 1] (noise may add up to {slack:g}); got "
                             f"[{lo:.4g}, {hi:.4g}] (8-bit data: divide by 255)")
        if self.task == "colorize" and y.shape[1] == 3:  # a gray image stored as RGB (the batch as one strip)
            strip = y.float().permute(0, 2, 3, 1).reshape(-1, y.shape[-1], 3).numpy(force=True)
            grayscale_observation(strip, "observation")
            y = y[:, :1]
        if self.task == "inpaint" and mask is None:
            raise TaskError("task 'inpaint' needs a mask (1 = known pixel)")
        if mask is not None:
            mask = _known_mask(mask, tuple(y.shape[-2:]))
            if mask.ndim == 4 and mask.shape[0] != y.shape[0]:
                raise ShapeError(f"a (B, C, H, W) mask gives one mask per image: {mask.shape[0]} masks for "
                                 f"{y.shape[0]} image(s)")
        c, h, w = clean_shape(self.task, tuple(y.shape[1:]))
        low = y.dtype in (torch.bfloat16, torch.float16)
        y = y.to(self.device, torch.float32)
        chains = getattr(getattr(self, "config", None), "samples", 1)  # a learned prior's chains run side by side
        outs = []
        b = y.shape[0]
        for i in range(b):
            mi = mask[i] if mask is not None and mask.ndim == 4 else mask  # one per image, or shared
            yi, mi = y[i:i + 1], (mi[0] if mi is not None and mi.ndim == 3 and mi.shape[0] == 1 else mi)
            sigma = self.data_sigma(yi, low)
            if h * w * chains <= self.max_pixels:
                outs.append(self._restore_one(yi, mi, callback=callback, sigma=sigma))
            elif callback is not None:
                raise TaskError(f"a callback needs an untiled run: the restored image has {h}x{w} pixels "
                                f"(x {chains} samples), more than max_pixels={self.max_pixels}; raise max_pixels "
                                "or drop the callback")
            else:
                count = None if progress is None else (lambda d, n, i=i: progress(i * n + d, b * n))  # whole batch
                outs.append(restore_tiled(yi, sr_factor(self.task) or 1, c, partial(self._restore_one, sigma=sigma),
                                          self.tiles, mask=mi, progress=count))
        return torch.cat(outs).to(torch.float32)

    def __call__(self, observation: ArrayOrTensor, mask: np.ndarray | None = None, callback=None) -> ArrayOrTensor:
        """Restore an ``H×W×C`` (or ``H×W``) array in [0, 1] — float, or uint8/uint16 scaled by
        1/255 or 1/65535 — into a C-contiguous float32 ``H'×W'×C'`` array (``H'×W'`` when the input
        was 2-D and the output has one channel), or a floating ``(B, C, H, W)`` tensor into one of
        its dtype and device; ``callback`` as in :meth:`restore_tensor`."""
        if isinstance(observation, torch.Tensor):
            out = self.restore_tensor(observation, mask, callback=callback)
            dtype = observation.dtype if observation.is_floating_point() else torch.float32
            return out.to(observation.device, dtype)
        if isinstance(observation, (str, os.PathLike)):
            raise ShapeError(f"observation must be an image array or tensor, got the path {str(observation)!r} "
                             "(read it with pnp_rgm.io.read_image)")
        arr = np.asarray(observation)
        if arr.dtype in (np.uint8, np.uint16):
            arr = arr.astype(np.float32) / np.iinfo(arr.dtype).max
        elif arr.dtype.kind not in "fiub":
            raise ShapeError(f"observation must be a numeric image array, got dtype {arr.dtype}")
        arr = arr.astype(np.float32)
        flat = arr.ndim == 2
        if flat:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise ShapeError(f"observation array must be H x W or H x W x C, got shape {arr.shape}")
        y = torch.from_numpy(arr.transpose(2, 0, 1).copy())[None]
        out = self.restore_tensor(y, mask, callback=callback)[0].permute(1, 2, 0).cpu().numpy()
        return np.ascontiguousarray(out[..., 0] if flat and out.shape[-1] == 1 else out)


def _is_prior(obj: Any) -> bool:
    from pnp_rgm.priors import Prior

    return isinstance(obj, Prior)


def _known_mask(mask: Any, hw: tuple[int, int]) -> np.ndarray:
    """An inpainting mask (1/True = known) as a boolean array: booleans, or numbers in [0, 1]
    thresholded at 0.5 (as the CLI reads a mask image)."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.shape[-2:] != hw or not 2 <= mask.ndim <= 4:
        raise ShapeError(f"mask has shape {mask.shape}; the observation is {hw}: give (H, W), (C, H, W) or "
                         "(B, C, H, W)")
    if mask.dtype == bool:
        return mask
    if mask.dtype.kind not in "iuf":
        raise ShapeError(f"mask must be boolean or numbers in [0, 1] (1 = known), got dtype {mask.dtype}")
    m = mask.astype(np.float64)
    if not np.isfinite(m).all() or m.min() < 0 or m.max() > 1:
        raise ShapeError(f"mask values must be in [0, 1] (1 = known, thresholded at 0.5), got "
                         f"[{np.nanmin(m):g}, {np.nanmax(m):g}]" + (" and NaN" if np.isnan(m).any() else ""))
    return m > 0.5


def restore(observation: ArrayOrTensor, task: str = "sr4", prior: Any = None, sigma: float = 0.0,
            mask: np.ndarray | None = None, seed: int = 0, device: str = "auto", callback=None,
            **overrides: Any) -> ArrayOrTensor:
    """One-call restoration; see :class:`Restorer` for the parameters and :meth:`Restorer.restore_tensor`
    for ``callback`` (e.g. ``PSNRTrace(truth)``)."""
    return Restorer(task, prior, sigma=sigma, device=device, seed=seed, **overrides)(observation, mask, callback)
