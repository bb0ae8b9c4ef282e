"""Image quality metrics: PSNR, SSIM and (optionally) LPIPS.

PSNR and SSIM wrap scikit-image (:func:`skimage.metrics.peak_signal_noise_ratio` and
:func:`skimage.metrics.structural_similarity`).  SSIM uses the standard settings of
Wang et al. (2004): an 11x11 Gaussian window with sigma 1.5 (``gaussian_weights=True``),
population covariances (``use_sample_covariance=False``), K1 = 0.01, K2 = 0.03; colour images
are scored per channel and averaged.  Both compute in float64.

Inputs may be numpy arrays (H, W) or (H, W, C), or torch tensors (C, H, W) or (B, C, H, W);
the two images may mix numpy and torch as long as they describe the same shape.  A batched
tensor gives a numpy array of per-image values, anything else a Python float.

LPIPS (Zhang et al., 2018) needs the optional ``lpips`` package (``pip install
'pnp-rgm[lpips]'``) and, once, a download of the torchvision backbone weights; it is imported
lazily inside :func:`lpips`, never when this module is imported.  :func:`lpips_available`
says whether it can run here without raising.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch

from pnp_rgm.errors import PnpRgmError, ShapeError

__all__ = ["MetricUnavailable", "psnr", "ssim", "lpips", "lpips_available"]

ArrayLike = Union[np.ndarray, torch.Tensor]
Score = Union[float, np.ndarray]

#: SSIM settings of Wang et al. (2004), passed to skimage's structural_similarity
SSIM_KWARGS = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}
_SSIM_MIN_SIDE = 11  # window size skimage derives from sigma=1.5: 2 * int(3.5 * 1.5 + 0.5) + 1

LPIPS_INSTALL_HINT = "pip install 'pnp-rgm[lpips]'"


class MetricUnavailable(RuntimeError):
    """An optional metric cannot run here (missing package or model weights)."""


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def _shape_of(x: object) -> tuple[int, ...]:
    return tuple(getattr(x, "shape", ()))


def _to_batch(x: object, name: str) -> tuple[np.ndarray, bool]:
    """Return (images as float64 (B, H, W, C), batched?) for a numpy or torch input."""
    if isinstance(x, torch.Tensor):
        t = x.detach().to(device="cpu", dtype=torch.float64)
        if t.ndim == 4:
            return t.permute(0, 2, 3, 1).numpy(), True
        if t.ndim == 3:
            return t.permute(1, 2, 0).numpy()[None], False
        if t.ndim == 2:
            return t.numpy()[None, :, :, None], False
        raise ShapeError(
            f"{name} has tensor shape {tuple(x.shape)}; expected (C, H, W), (B, C, H, W) or (H, W)"
        )
    if isinstance(x, np.ndarray):
        if x.dtype == np.bool_ or not (
            np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
        ):
            raise ShapeError(f"{name} has dtype {x.dtype}; expected a real-valued image")
        a = x.astype(np.float64, copy=False)
        if a.ndim == 2:
            return a[None, :, :, None], False
        if a.ndim == 3:
            return a[None], False
        raise ShapeError(f"{name} has array shape {x.shape}; expected (H, W) or (H, W, C)")
    raise ShapeError(f"{name} is a {type(x).__name__}; expected a numpy array or torch tensor")


def _prepare(x: ArrayLike, y: ArrayLike, border: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Convert, check matching shapes and crop ``border`` pixels from every side."""
    if isinstance(border, bool) or not isinstance(border, (int, np.integer)) or border < 0:
        raise ShapeError(f"border={border!r} is not valid; expected an integer >= 0")
    xb, x_batched = _to_batch(x, "x")
    yb, y_batched = _to_batch(y, "y")
    if xb.shape != yb.shape or x_batched != y_batched:
        raise ShapeError(
            f"image shapes differ: x has shape {_shape_of(x)}, y has shape {_shape_of(y)}"
        )
    _, h, w, _ = xb.shape
    if h - 2 * border < 1 or w - 2 * border < 1:
        raise ShapeError(
            f"border={border} leaves no pixels of a {h}x{w} image; "
            f"use border < {(min(h, w) + 1) // 2}"
        )
    if border:
        xb = xb[:, border:-border, border:-border]
        yb = yb[:, border:-border, border:-border]
    return xb, yb, x_batched


def _check_range(data_range: float) -> float:
    try:
        value = float(data_range)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value) or value <= 0:
        raise PnpRgmError(f"data_range={data_range!r} is not valid; expected a number > 0")
    return value


def _result(values: list[float], batched: bool) -> Score:
    return np.asarray(values, dtype=np.float64) if batched else float(values[0])


# --------------------------------------------------------------------------------------------
# PSNR / SSIM
# --------------------------------------------------------------------------------------------


def psnr(x: ArrayLike, y: ArrayLike, *, data_range: float = 1.0, border: int = 0) -> Score:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``.

    Args:
        x, y: images as numpy (H, W) / (H, W, C) or torch (C, H, W) / (B, C, H, W); same shape.
        data_range: the span of possible values (1.0 for images in [0, 1]).
        border: pixels cropped from every side before comparing (e.g. the scale factor in
            super-resolution benchmarks).

    Returns:
        A float, or for a batched (B, C, H, W) input a numpy array of B per-image values.
        Identical images give ``inf`` (the MSE is zero).

    Raises:
        ShapeError: the shapes differ, a shape is not supported, or ``border`` is invalid.
    """
    from skimage.metrics import peak_signal_noise_ratio

    dr = _check_range(data_range)
    xb, yb, batched = _prepare(x, y, border)
    values = []
    with np.errstate(divide="ignore"):
        for xi, yi in zip(xb, yb):
            values.append(float(peak_signal_noise_ratio(xi, yi, data_range=dr)))
    return _result(values, batched)


def ssim(x: ArrayLike, y: ArrayLike, *, data_range: float = 1.0, border: int = 0) -> Score:
    """Structural similarity (Wang et al., 2004), mean over the image (and channels).

    Uses scikit-image with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``
    (11x11 Gaussian window, K1 = 0.01, K2 = 0.03), the settings of the original paper and of
    most restoration benchmarks.  Colour images are scored per channel and averaged.

    Args:
        x, y: images as numpy (H, W) / (H, W, C) or torch (C, H, W) / (B, C, H, W); same shape,
            at least 11x11 after cropping.
        data_range: the span of possible values (1.0 for images in [0, 1]).
        border: pixels cropped from every side before comparing.

    Returns:
        A float in [-1, 1] (1 for identical images), or for a batched input a numpy array of
        per-image values.

    Raises:
        ShapeError: the shapes differ, a shape is not supported, the (cropped) image is
            smaller than the 11x11 window, or ``border`` is invalid.
    """
    from skimage.metrics import structural_similarity

    dr = _check_range(data_range)
    xb, yb, batched = _prepare(x, y, border)
    _, h, w, c = xb.shape
    if min(h, w) < _SSIM_MIN_SIDE:
        raise ShapeError(
            f"SSIM needs images of at least {_SSIM_MIN_SIDE}x{_SSIM_MIN_SIDE} pixels "
            f"(after border={border} cropping), got {h}x{w}"
        )
    values = []
    for xi, yi in zip(xb, yb):
        if c == 1:
            value = structural_similarity(xi[..., 0], yi[..., 0], data_range=dr, **SSIM_KWARGS)
        else:
            value = structural_similarity(xi, yi, data_range=dr, channel_axis=-1, **SSIM_KWARGS)
        values.append(float(value))
    return _result(values, batched)


# --------------------------------------------------------------------------------------------
# LPIPS (optional)
# --------------------------------------------------------------------------------------------

#: lpips network name -> (torchvision weights enum, attribute, fallback checkpoint file name)
_LPIPS_BACKBONES = {
    "alex": ("AlexNet_Weights", "IMAGENET1K_V1", "alexnet-owt-7be5be79.pth", "AlexNet"),
    "vgg": ("VGG16_Weights", "IMAGENET1K_V1", "vgg16-397923af.pth", "VGG16"),
    "squeeze": ("SqueezeNet1_1_Weights", "IMAGENET1K_V1", "squeezenet1_1-b8a52dc0.pth",
                "SqueezeNet 1.1"),
}

# torchvision's C++ operator schemas that its Python code registers fake kernels for at import
# time (torchvision/_meta_registrations.py).  When the compiled extension cannot be loaded (e.g.
# a CUDA build of torchvision next to a CPU build of torch) ``import torchvision`` fails with
# "operator torchvision::nms does not exist"; defining the schemas (without kernels) lets the
# import -- and everything lpips needs -- work.  Same schemas as torchvision/csrc/ops.
_TORCHVISION_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_shim_libraries: list[torch.library.Library] = []  # keep registrations alive
_lock = threading.Lock()
_models: dict[tuple[str, str], torch.nn.Module] = {}


def _one_line(exc: BaseException, limit: int = 160) -> str:
    """A short single-line description of an exception."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _torchvision_op_defined(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def _define_missing_torchvision_ops() -> list[str]:
    """Define the torchvision operator schemas that are not registered yet; returns their
    names.  Idempotent."""
    missing = [n for n in _TORCHVISION_SCHEMAS if not _torchvision_op_defined(n)]
    if missing:
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for name in missing:
            lib.define(_TORCHVISION_SCHEMAS[name])
        _shim_libraries.append(lib)
    return missing


def _prepare_torchvision() -> None:
    """Make ``import torchvision`` work even when its compiled ops do not match torch.

    If torchvision is installed, first try to load its own compiled extension (exactly what
    torchvision does at import); only the schemas still missing afterwards are defined, so a
    working torchvision is left untouched.
    """
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.origin:
        return  # not installed: the lpips import reports it
    if all(_torchvision_op_defined(n) for n in _TORCHVISION_SCHEMAS):
        return
    package_dir = Path(spec.origin).parent
    for lib_path in sorted(package_dir.glob("_C*.so")) + sorted(package_dir.glob("_C*.pyd")):
        try:
            torch.ops.load_library(str(lib_path))
        except Exception:  # noqa: BLE001 - a mismatched build fails here; fall back below
            pass
    _define_missing_torchvision_ops()


def _import_lpips():
    """Import the lpips package (after the torchvision shim) or raise MetricUnavailable."""
    with _lock:
        try:
            _prepare_torchvision()
        except Exception:  # noqa: BLE001 - the import below reports the real problem
            pass
        try:
            import lpips as lpips_pkg
        except Exception as exc:  # ImportError, or torchvision failing during import
            missing = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
            what = (
                f"the '{missing}' package is not installed"
                if missing in ("lpips", "torchvision")
                else f"importing lpips failed ({_one_line(exc)})"
            )
            raise MetricUnavailable(
                f"LPIPS is unavailable: {what}; install it with {LPIPS_INSTALL_HINT} "
                "(the AlexNet backbone weights must also be downloadable once or already cached)"
            ) from None
    return lpips_pkg


def _bad_net_message(net: object) -> str:
    return f"net={net!r} is not valid for LPIPS; valid: {', '.join(_LPIPS_BACKBONES)}"


def _check_net(net: str) -> str:
    if net not in _LPIPS_BACKBONES:
        raise PnpRgmError(_bad_net_message(net))
    return net


def _backbone_checkpoint(net: str) -> Path:
    """Where torch.hub caches the backbone weights torchvision downloads for ``net``."""
    enum_name, member, fallback, _ = _LPIPS_BACKBONES[net]
    filename = fallback
    try:
        import torchvision.models as tvm  # only called after a successful lpips import

        url = getattr(getattr(tvm, enum_name), member).url
        filename = os.path.basename(url)
    except Exception:  # noqa: BLE001
        pass
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _get_model(net: str, device: str) -> torch.nn.Module:
    key = (net, str(device))
    model = _models.get(key)
    if model is not None:
        return model
    lpips_pkg = _import_lpips()
    label = _LPIPS_BACKBONES[net][3]
    try:
        with warnings.catch_warnings():  # torchvision's 'pretrained' deprecation notices
            warnings.simplefilter("ignore", UserWarning)
            model = lpips_pkg.LPIPS(net=net, verbose=False)
    except Exception as exc:  # download failure (URLError, HTTPError, RuntimeError, OSError)
        raise MetricUnavailable(
            f"LPIPS is unavailable: could not load the {label} backbone weights "
            f"({_one_line(exc)}); they are downloaded once to {_backbone_checkpoint(net)} "
            f"(run once with network access, or copy the file there; package: {LPIPS_INSTALL_HINT})"
        ) from None
    try:
        model = model.to(device).eval()
    except Exception as exc:  # bad device string, CUDA unavailable
        raise PnpRgmError(f"device={device!r} is not usable for LPIPS ({_one_line(exc)})") from None
    for p in model.parameters():
        p.requires_grad_(False)
    _models[key] = model
    return model


def lpips_available(net: str = "alex") -> tuple[bool, str]:
    """Whether :func:`lpips` can run here without network access; never raises.

    Returns ``(True, description)`` when the ``lpips`` package imports and the backbone
    weights for ``net`` are in the torch hub cache (or the model is already loaded), else
    ``(False, reason)`` with a one-line reason saying what is missing and how to fix it.
    """
    try:
        if net not in _LPIPS_BACKBONES:
            return False, _bad_net_message(net)
        if any(key[0] == net for key in _models):
            return True, f"LPIPS ({net}) model is loaded"
        _import_lpips()
        checkpoint = _backbone_checkpoint(net)
        label = _LPIPS_BACKBONES[net][3]
        if not checkpoint.is_file():
            return False, (
                f"the lpips package is installed but the {label} backbone weights are not cached "
                f"at {checkpoint}; they are downloaded on first use, which needs network access"
            )
        return True, f"LPIPS ({net}) is available; backbone weights at {checkpoint}"
    except MetricUnavailable as exc:
        return False, str(exc)
    except Exception as exc:  # noqa: BLE001 - must never raise
        return False, f"LPIPS is unavailable: {_one_line(exc)}"


def _to_lpips_tensor(arr: np.ndarray) -> torch.Tensor:
    """float64 images (B, H, W, C) in [0, 1] -> float32 tensor (B, 3, H, W) in [-1, 1]."""
    c = arr.shape[-1]
    if c == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif c != 3:
        raise ShapeError(f"images have {c} channels; LPIPS needs 1 (gray) or 3 (RGB) channels")
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2), dtype=np.float32))
    return t * 2.0 - 1.0


def lpips(x: ArrayLike, y: ArrayLike, *, net: str = "alex", device: str = "cpu") -> Score:
    """Learned perceptual image patch similarity (Zhang et al., 2018); lower is more similar.

    Args:
        x, y: images with values in [0, 1], numpy (H, W) / (H, W, C) or torch (C, H, W) /
            (B, C, H, W), same shape; gray images are replicated to three channels.  They are
            rescaled to the [-1, 1] range LPIPS expects.
        net: backbone, ``"alex"`` (the standard choice), ``"vgg"`` or ``"squeeze"``.
        device: torch device to run on.

    Returns:
        A float, or a numpy array of per-image values for a batched input.

    Raises:
        MetricUnavailable: the ``lpips`` package is not installed or the backbone weights
            cannot be downloaded/loaded.
        ShapeError: the shapes differ or are unsupported.
    """
    _check_net(net)
    xb, yb, batched = _prepare(x, y, 0)
    xt, yt = _to_lpips_tensor(xb), _to_lpips_tensor(yb)
    model = _get_model(net, device)
    with torch.no_grad():
        dist = model(xt.to(device), yt.to(device))
    values = [float(v) for v in dist.reshape(dist.shape[0], -1).mean(dim=1).cpu()]
    return _result(values, batched)
