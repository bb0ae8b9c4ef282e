"""Exact linear degradation operators with SVD-based pseudo-inverse and proximal maps.

Entry point: :func:`make_operator`. Observation model of every task: ``y = A x + σ n`` with
``n ~ N(0, I)``; the noise level ``σ`` (in [0, 1] image units) belongs to the task, not to the
operator — see :func:`observe`.

==================  ================================================================
task name           observation model (per channel unless stated)
==================  ================================================================
``denoise``         ``y = x``
``srN``             ``y = N×N block average of x`` (N any integer ≥ 2; H, W divisible by N)
``srN-bicubic``     ``y = S_N (k_bic * x)``: separable antialiased bicubic filter + stride N
``colorize``        ``y = (R + G + B) / 3`` per pixel (3-channel input, 1-channel output)
``inpaint``         ``y = m ⊙ x``, mask ``m`` (1 = known); missing pixels observed as 0
``deblur-gauss``    ``y = k_g * x``, separable Gaussian (std ``width``, odd ``size``), zero or free boundary
``deblur-uniform``  ``y = k_u * x``, separable ``size × size`` box, zero or free boundary
``matrix``          ``y = A x`` for a dense ``matrix`` (small problems, tests)
==================  ================================================================
"""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import torch

from pnp_rgm.errors import ShapeError, TaskError, as_number

from .base import SVDOperator
from .library import (
    BlockAverage,
    Colorize,
    Identity,
    Inpaint,
    MatrixOperator,
    Separable,
    bicubic_down_matrix,
    conv_matrix,
    gaussian_kernel,
    uniform_kernel,
)
from .masks import box_mask, fill_missing, mask_from_image, random_mask

__all__ = [
    "SVDOperator", "Identity", "BlockAverage", "Colorize", "Inpaint", "Separable", "MatrixOperator",
    "make_operator", "observe", "TASK_NAMES", "random_mask", "box_mask", "mask_from_image", "fill_missing",
    "conv_matrix", "gaussian_kernel", "uniform_kernel", "bicubic_down_matrix",
    "WINDOWED_TASKS", "BLUR_TASKS", "BOUNDARIES", "MAX_SR_FACTOR", "is_windowed",
]

#: Task names accepted by :func:`make_operator` (``srN`` stands for sr2, sr3, sr4, ...).
TASK_NAMES = ("denoise", "srN", "srN-bicubic", "colorize", "inpaint", "deblur-gauss", "deblur-uniform", "matrix")

_PARAMS: dict[str, tuple[str, ...]] = {
    "denoise": (),
    "sr": (),
    "sr-bicubic": (),
    "colorize": (),
    "inpaint": ("mask", "missing", "box", "seed"),
    "deblur-gauss": ("width", "size", "boundary"),
    "deblur-uniform": ("size", "boundary"),
    "matrix": ("matrix", "out_shape"),
}


def _check_shape(shape: Any) -> tuple[int, int, int]:
    try:
        vals = tuple(shape)
        ok = len(vals) == 3 and all(int(v) == v and int(v) > 0 for v in vals)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ShapeError(f"shape must be (C, H, W) with positive integers, got {shape!r}")
    return tuple(int(v) for v in vals)  # type: ignore[return-value]


def _odd_size(size: Any, what: str) -> int:
    n = as_number(f"{what} kernel size", size, int)
    if n < 1 or n % 2 == 0:
        raise TaskError(f"{what} kernel size must be an odd positive integer, got {size!r}")
    return n


#: the largest srN factor (an N×N block's orthonormal basis is N²×N²)
MAX_SR_FACTOR = 32
#: tasks whose operator reaches beyond an observation pixel's own clean pixels (a blur's or a
#: bicubic filter's support): a tile of them is exact only over the clean pixels its rows see
WINDOWED_TASKS = ("deblur-gauss", "deblur-uniform", "srN-bicubic")
#: the blurs, whose ``boundary`` parameter says how the scene goes on beyond the image
BLUR_TASKS = ("deblur-gauss", "deblur-uniform")


def _key(name: str) -> str:
    """The parameter table's key of a task name (``sr4`` -> ``sr``, ``sr4-bicubic`` -> ``sr-bicubic``)."""
    m = re.fullmatch(r"sr([1-9]\d*|0)(-bicubic)?", name)
    return ("sr-bicubic" if m.group(2) else "sr") if m else name


def is_windowed(name: str) -> bool:
    """Whether ``make_operator(name, ..., window=...)`` applies: the task is one of :data:`WINDOWED_TASKS`."""
    return _key(name) in ("sr-bicubic", *BLUR_TASKS)


def _separable(shape: tuple[int, int, int], factor, scale: int, window, margin: int = 0) -> SVDOperator:
    """``Separable(shape, factor(H), factor(W))`` with ``factor(n, rows)`` the 1-D matrix of an axis of
    ``n`` clean pixels (``rows``: only those observation rows). With ``window = ((r0, r1), (c0, c1))``
    (observation rows and columns; ``scale`` clean pixels per observation pixel) it is the exact
    operator of those observation pixels alone: the rows of the full image's factors, on the
    clean pixels they touch and the window's own. ``op.crop`` (two slices) locates the window's
    own clean pixels in its input. ``margin`` (a blur's ``boundary: free``): the image is the
    middle of a scene ``margin`` pixels larger on every side, which its observation also saw."""
    c, h, w = shape
    if window is None and not margin:
        return Separable(shape, factor(h, None), factor(w, None))
    window = window or ((0, h // scale), (0, w // scale))
    subs, crop = [], []
    for n, (start, stop) in zip((h, w), window):
        n, start, stop = n + 2 * margin, start + margin, stop + margin  # in the scene's pixels
        a = factor(n, (start, stop))
        touched = np.flatnonzero(np.abs(a).sum(0) > 0)
        lo, hi = min(int(touched.min()), start * scale), max(int(touched.max()) + 1, stop * scale)
        subs.append(a[:, lo:hi])
        crop.append(slice(start * scale - lo, stop * scale - lo))
    op = Separable((c, subs[0].shape[1], subs[1].shape[1]), subs[0], subs[1])
    op.crop = tuple(crop)
    return op


#: how a blur treats the image's border: ``zero`` (the scene is black outside the image, DDRM's and
#: DPIR's model, the benchmarks'), ``free`` (a photo: the scene goes on outside, unknown)
BOUNDARIES = ("zero", "free")


def _margin(name: str, params: dict, size: int) -> int:
    """The blur's reach beyond the image that ``boundary: free`` adds to the unknowns (0: zero boundary)."""
    b = params.get("boundary", "zero")
    if b not in BOUNDARIES:
        raise TaskError(f"{name} boundary must be one of {', '.join(BOUNDARIES)}, got {b!r}")
    return size // 2 if b == "free" else 0


def make_operator(name: str, shape: tuple[int, int, int], *, window=None, **params: Any) -> SVDOperator:
    """Build the operator of task ``name`` for clean images of shape ``shape = (C, H, W)``.

    Parameters by task:

    * ``inpaint``: exactly one of ``mask`` (array ``(H, W)``/``(C, H, W)``, 1 = known),
      ``missing`` (fraction of pixels removed at random, with ``seed``), or
      ``box`` (``(top, left, height, width)`` removed, or ``"center"`` for the centred half box).
    * ``deblur-gauss``: ``width`` (std in pixels, default 3.0), ``size`` (odd, default
      ``2·ceil(3·width) + 1``), ``boundary``.
    * ``deblur-uniform``: ``size`` (odd, default 9), ``boundary``.
      ``boundary: zero`` (default): the scene is black outside the image (``A`` is square).
      ``boundary: free``: the observation of a photo, the blur of a scene that goes on outside
      the image; ``A`` acts on the image plus ``size // 2`` unknown pixels on every side
      (``op.in_shape`` is that much larger than ``shape``) and ``op.crop`` locates the image.
    * ``matrix``: ``matrix`` (``M × C·H·W``), ``out_shape`` (default ``(1, 1, M)``).

    ``window = ((r0, r1), (c0, c1))`` (``deblur-*`` and ``srN-bicubic``, whose pixels see beyond their
    own clean pixels): the exact operator of those observation rows and columns of an image of
    ``shape``, on the clean pixels they touch; ``op.crop`` locates the window's own clean pixels
    in its input (how :mod:`pnp_rgm.tiling` cuts a large image into exact sub-problems).

    Raises :class:`~pnp_rgm.errors.TaskError` for unknown names or parameters and
    :class:`~pnp_rgm.errors.ShapeError` for shapes the task cannot take.
    """
    if not isinstance(name, str):
        raise TaskError(f"task name must be a string, got {name!r}")
    m = re.fullmatch(r"sr([1-9]\d*|0)(-bicubic)?", name)
    key = _key(name)
    if key not in _PARAMS or (key in ("sr", "sr-bicubic") and not m):
        raise TaskError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)} (srN: e.g. sr2, sr4, sr4-bicubic)")
    if m and not 2 <= int(m.group(1)) <= MAX_SR_FACTOR:
        raise TaskError(f"super-resolution factor must be in [2, {MAX_SR_FACTOR}], got {name!r}")
    unknown = sorted(set(params) - set(_PARAMS[key]))
    if unknown:
        valid = ", ".join(_PARAMS[key]) or "none"
        raise TaskError(f"unknown parameter(s) {', '.join(unknown)} for task {name!r}; valid: {valid}")
    if window is not None and not is_windowed(name):
        raise TaskError(f"window: only for {', '.join(WINDOWED_TASKS)} (a tile of another task is the task's "
                        f"operator on the tile), not {name!r}")
    shape = _check_shape(shape)
    c, h, w = shape

    if m:
        factor = int(m.group(1))
        if h % factor or w % factor:
            raise ShapeError(f"task {name!r} needs height and width divisible by {factor}; got {h}x{w}")
        if key == "sr":
            op: SVDOperator = BlockAverage(shape, factor)
        else:
            op = _separable(shape, lambda n, rows: bicubic_down_matrix(n, factor, rows), factor, window)
    elif key == "denoise":
        op = Identity(shape)
    elif key == "colorize":
        if c != 3:
            raise ShapeError(f"task 'colorize' needs 3-channel (RGB) images; got {c} channel(s)")
        op = Colorize(shape)
    elif key == "inpaint":
        given = [k for k in ("mask", "missing", "box") if params.get(k) is not None]
        if len(given) != 1:
            raise TaskError("task 'inpaint' needs exactly one of mask=..., missing=<fraction>, box=(top, left, height, width)|'center'"
                            + (f"; got {', '.join(given)}" if given else ""))
        if given[0] == "mask":
            mask = params["mask"]
            if isinstance(mask, torch.Tensor):
                mask = mask.detach().cpu().numpy()
            mask = np.asarray(mask)
            if mask.ndim == 3 and mask.shape[-1] in (1, 3) and mask.shape[:2] == (h, w):
                mask = mask_from_image(mask)  # an (H, W, C) image array
            elif mask.dtype != bool:
                mask = mask > 0.5
        elif given[0] == "missing":
            mask = random_mask((h, w), as_number("inpaint missing", params["missing"]),
                               seed=as_number("inpaint seed", params.get("seed") or 0, int))
        else:
            box = params["box"]
            mask = box_mask((h, w), None if box == "center" else box)
        op = Inpaint(shape, mask)
    elif key == "deblur-gauss":
        width = as_number("deblur-gauss width", params.get("width", 3.0))
        if not (width > 0 and math.isfinite(width)):
            raise TaskError(f"deblur-gauss width must be > 0, got {params.get('width')!r}")
        size = _odd_size(params.get("size", 2 * math.ceil(3 * width) + 1), "deblur-gauss")
        k = gaussian_kernel(size, width)
        op = _separable(shape, lambda n, rows: conv_matrix(k, n, rows), 1, window, _margin(name, params, size))
    elif key == "deblur-uniform":
        size = _odd_size(params.get("size", 9), "deblur-uniform")
        k = uniform_kernel(size)
        op = _separable(shape, lambda n, rows: conv_matrix(k, n, rows), 1, window, _margin(name, params, size))
    else:  # matrix
        if params.get("matrix") is None:
            raise TaskError("task 'matrix' needs matrix=<(M, C*H*W) array>")
        op = MatrixOperator(shape, params["matrix"], params.get("out_shape"))
    op.name = name
    return op


def observe(op: SVDOperator, x: torch.Tensor, sigma: float = 0.0,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Simulate an observation ``y = A x + σ n`` with ``n ~ N(0, I)``.

    ``sigma`` is in [0, 1] image units. Coordinates that ``A`` never reaches (the missing
    pixels of ``inpaint``) stay exactly 0: the noise is kept only on observed coordinates.
    """
    sigma = float(sigma)
    if not 0.0 <= sigma <= 1.0:
        raise TaskError(f"sigma must be in [0, 1] (image units; e.g. 25/255 = 0.098), got {sigma}")
    y = op.forward(x)
    if sigma > 0:
        n = torch.randn(y.shape, generator=generator, dtype=y.dtype, device="cpu").to(y.device)
        if op.out_numel > op.rank:
            n = op.U_head(op.Ut(n)[:, : op.rank])
        y = y + sigma * n
    return y
