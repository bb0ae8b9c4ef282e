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
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from pnp_rgm.errors import ShapeError, TaskError, as_number
from pnp_rgm.pnp import RGMDRSConfig, rgm_prior_step
from pnp_rgm.solvers import denoiser_prior_step, drs
from pnp_rgm.tasks import (BASELINES, OPERATOR_KEYS, clean_shape, initial_estimate, make_task_operator,
                           restore_baseline, sr_factor)
from pnp_rgm.tiling import TileSpec, restore_tiled

ArrayOrTensor = Union[np.ndarray, torch.Tensor]


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
        raise TaskError("device 'cuda' requested but no CUDA GPU is available; use --device cpu or auto")
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
                vals[k] = tuple(int(j) for j in (v if isinstance(v, (list, tuple)) else [v]))
            elif isinstance(default, str):
                vals[k] = str(v)
            elif isinstance(default, bool):
                if not isinstance(v, bool):
                    raise ValueError(v)
                vals[k] = v
            else:
                vals[k] = type(default)(v)
        except (TypeError, ValueError):
            kind = {bool: "boolean (true/false)", int: "integer", float: "number"}.get(type(default), type(default).__name__)
            raise TaskError(f"setting {k}={v!r} must be a {kind}") from None
    return RGMDRSConfig(**vals)


class Restorer:
    """Restore observations of one task with one prior; reuse it for many images.

    Parameters: ``task`` (see :data:`pnp_rgm.tasks.TASKS`), ``prior`` (see module docstring;
    ``None`` = the task's preset from ``pnp_rgm/presets.yaml``),
    ``sigma`` (observation noise std, [0, 1] units), ``device`` (``auto``/``cpu``/``cuda``),
    ``seed``, tiling (``max_pixels``, ``tile``, ``overlap`` in observation pixels), ``precision`` of a
    learned prior's network (``auto``: bf16 on a CPU with native bf16, else fp32; ``fp32``; ``bf16``), and
    ``settings``: operator parameters (``width``, ``size``) and solver settings
    (``tv``: ``tv_weight``, ``lam``, ``iters``, ``init_rcond``; learned priors: the fields of
    :class:`~pnp_rgm.pnp.RGMDRSConfig`; ``none``: ``rcond``). An explicit MMSE-twin ``prior``
    starts from the solver settings of the task's preset (tuned for twins); an RGM generator from
    the :class:`~pnp_rgm.pnp.RGMDRSConfig` defaults (its own levels, as the reference runs it).
    """

    def __init__(self, task: str, prior: Any = None, *, sigma: float = 0.0, device: str = "auto", seed: int = 0,
                 max_pixels: int = 1024 * 1024, tile: int = 256, overlap: int = 32, precision: str = "auto",
                 **settings: Any) -> None:
        from pnp_rgm.presets import preset_for

        preset = preset_for(task)
        explicit = prior is not None
        if not explicit:  # the task's preset (pnp_rgm/presets.yaml); explicit settings win
            prior, settings = preset.prior, {**preset.settings, **settings}
        sigma = float(sigma)
        if not 0.0 <= sigma <= 1.0:
            raise TaskError(f"sigma must be in [0, 1] (image units; 25/255 = 0.098), got {sigma}")
        if task == "denoise" and sigma == 0:
            raise TaskError("task 'denoise' needs the noise level: pass sigma > 0 (CLI: --sigma)")
        from pnp_rgm.priors import check_precision

        check_precision(precision)  # here too for the prior-free methods, which never set it
        self.task, self.sigma, self.seed = task, sigma, int(seed)
        self.device = resolve_device(device)
        self.op_params = {k: settings.pop(k) for k in list(settings) if k in OPERATOR_KEYS}
        self.max_pixels = as_number("max_pixels", max_pixels, int)
        if self.max_pixels < 64 * 64:
            raise TaskError(f"max_pixels must be >= 4096, got {max_pixels}")
        # a tile's clean image (tile·N for srN) stays within max_pixels
        n = sr_factor(task) or 1
        tile, overlap = as_number("tile", tile, int), as_number("overlap", overlap, int)
        side = min(tile, max(8, math.isqrt(self.max_pixels) // n))
        if side < tile:  # a tile shrunk to the budget keeps a valid overlap
            overlap = min(overlap, max(0, (side - 1) // 2))
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
                raise TaskError(f"unknown prior {str(prior)!r}; valid: none, tv, a bundled prior ({bundled}) "
                                "or a checkpoint folder")
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
    def _restore_one(self, y: torch.Tensor, mask: np.ndarray | None, callback=None) -> torch.Tensor:
        op = make_task_operator(self.task, tuple(y.shape[1:]), mask=mask, **self.op_params)
        if self.method == "none":
            return restore_baseline(op, y, "none", **self.settings)
        if self.method == "tv":
            return restore_baseline(op, y, "tv", sigma=self.sigma, callback=callback, **self.settings)
        if self.method == "bm3d":  # (C)BM3D at the schedule's noise levels
            step = denoiser_prior_step(self.denoiser, self.config.sigmas(self.sigma), self.config.alpha)
        else:
            gen = torch.Generator(device=self.prior.device).manual_seed(self.seed)
            step = rgm_prior_step(self.prior, self.config, gen, sigma_y=self.sigma)
        r = self.config.samples  # independent chains, batched, then averaged
        yr = y.repeat(r, *([1] * (y.dim() - 1))) if r > 1 else y
        x0 = initial_estimate(op, yr)  # A+y; an inpaint hole starts from its surroundings, not from 0
        state = drs(op, yr, step, lam=self.config.data_weight(self.sigma), iters=self.config.iters,
                    x0=x0, callback=callback)
        w = state.w.reshape(r, *y.shape[:1], *state.w.shape[1:]).mean(0) if r > 1 else state.w
        return w.clamp(0, 1)

    @torch.no_grad()
    def restore_tensor(self, y: torch.Tensor, mask: np.ndarray | None = None, progress=None,
                       callback=None) -> torch.Tensor:
        """``y``: ``(B, C', H, W)`` observation -> ``(B, C, H', W')`` restoration in [0, 1].

        ``callback(state)`` gets the :class:`~pnp_rgm.solvers.DRSState` after every DRS iteration of
        an untiled run (e.g. :class:`~pnp_rgm.solvers.PSNRTrace` against a known ground truth);
        returning ``False`` stops early. A tiled run has no whole-image iterate, so a callback there
        is an error. ``progress(done, total)`` is called after each tile of a tiled run."""
        if not isinstance(y, torch.Tensor) or y.dim() != 4:
            raise ShapeError(f"observation must be a (B, C, H, W) tensor, got {getattr(y, 'shape', type(y).__name__)}")
        if not torch.isfinite(y).all():
            raise ShapeError(f"observation has {int((~torch.isfinite(y)).sum())} NaN or infinite value(s); "
                             "give finite values in [0, 1] (noisy observations may stray a little outside)")
        if self.task == "inpaint" and mask is None:
            raise TaskError("task 'inpaint' needs a mask (1 = known pixel)")
        if mask is not None:
            mask = np.asarray(mask).astype(bool)
            if mask.shape[-2:] != tuple(y.shape[-2:]):
                raise ShapeError(f"mask has shape {mask.shape}; the observation is {tuple(y.shape[-2:])}")
        c, h, w = clean_shape(self.task, tuple(y.shape[1:]))
        y = y.to(self.device, torch.float32)
        if h * w <= self.max_pixels:
            out = self._restore_one(y, mask, callback)
        elif callback is not None:
            raise TaskError(f"a callback needs an untiled run: the restored image has {h}x{w} pixels, more than "
                            f"max_pixels={self.max_pixels}; raise max_pixels or drop the callback")
        else:
            out = restore_tiled(y, sr_factor(self.task) or 1, c, self._restore_one, self.tiles, mask=mask,
                                progress=progress)
        return out.to(torch.float32)

    def __call__(self, observation: ArrayOrTensor, mask: np.ndarray | None = None, callback=None) -> ArrayOrTensor:
        """Restore an ``H×W×C`` float array in [0, 1] (returns the same kind) or a ``(B, C, H, W)`` tensor;
        ``callback`` as in :meth:`restore_tensor`."""
        if isinstance(observation, torch.Tensor):
            return self.restore_tensor(observation, mask, callback=callback).to(observation.device)
        arr = np.asarray(observation, dtype=np.float32)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise ShapeError(f"observation array must be H x W or H x W x C, got shape {arr.shape}")
        if self.task == "colorize":
            from pnp_rgm.tasks import grayscale_observation

            arr = grayscale_observation(arr)
        y = torch.from_numpy(arr.transpose(2, 0, 1).copy())[None]
        return self.restore_tensor(y, mask, callback=callback)[0].permute(1, 2, 0).cpu().numpy()


def restore(observation: ArrayOrTensor, task: str = "sr4", prior: Any = None, sigma: float = 0.0,
            mask: np.ndarray | None = None, seed: int = 0, device: str = "auto", callback=None,
            **overrides: Any) -> ArrayOrTensor:
    """One-call restoration; see :class:`Restorer` for the parameters and :meth:`Restorer.restore_tensor`
    for ``callback`` (e.g. ``PSNRTrace(truth)``)."""
    return Restorer(task, prior, sigma=sigma, device=device, seed=seed, **overrides)(observation, mask, callback)
