"""Image file I/O and numpy <-> torch layout conversion.

Images in memory are float32 numpy arrays of shape (H, W, C), C in {1, 3}, values in [0, 1];
networks and operators use float32 torch tensors of shape (1, C, H, W).

Reading (:func:`read_image`) supports PNG, JPEG, BMP and TIFF, 8 and 16 bits per sample,
gray, gray+alpha, RGB, RGBA and palette images (and float TIFFs with values in [0, 1]).  The
format is detected from the file's first bytes, not its extension.  An alpha channel must be
fully opaque and is then dropped; a palette image whose colours are all gray reads as one
channel.  16-bit colour PNGs are decoded by :mod:`pnp_rgm._png` because Pillow truncates them
to 8 bits; everything else goes through Pillow (PNG/JPEG/BMP) or tifffile (TIFF).

Writing (:func:`write_image`) picks the format from the extension, quantises to 8 or 16 bits
and is atomic: the data goes to a hidden temporary file in the destination directory which
is then moved into place, so a failed write never leaves a partial output behind.

Every bad input raises a :class:`~pnp_rgm.errors.PnpRgmError` subclass with a one-line
message naming the path or value.
"""

from __future__ import annotations

import contextlib
import io as _bytesio
import logging
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Union

import numpy as np
import torch

from pnp_rgm import _png
from pnp_rgm.errors import ImageError, OutputExistsError, ShapeError

__all__ = [
    "READ_FORMATS",
    "WRITE_EXTENSIONS",
    "read_image",
    "write_image",
    "image_to_tensor",
    "tensor_to_image",
]

PathLike = Union[str, os.PathLike]

READ_FORMATS = ("PNG", "JPEG", "BMP", "TIFF")
#: extension -> (format name, allowed bit depths)
WRITE_EXTENSIONS: dict[str, tuple[str, tuple[int, ...]]] = {
    ".png": ("PNG", (8, 16)),
    ".tif": ("TIFF", (8, 16)),
    ".tiff": ("TIFF", (8, 16)),
    ".jpg": ("JPEG", (8,)),
    ".jpeg": ("JPEG", (8,)),
    ".bmp": ("BMP", (8,)),
}
JPEG_QUALITY = 95  # with 4:4:4 chroma (no subsampling): restoration outputs keep colour detail


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _one_line(exc: BaseException, limit: int = 160) -> str:
    """A short single-line description of an exception for embedding in a message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _sniff(data: bytes) -> str | None:
    """Detect the container format from the magic bytes."""
    if data.startswith(_png.SIGNATURE):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"BM") and len(data) >= 26:
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    return None


def _to_float(arr: np.ndarray, where: str) -> np.ndarray:
    """Scale integer samples to [0, 1] (8-bit /255, 16-bit /65535; bool as 0/1) and check
    that float samples are finite and already in [0, 1]."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255.0)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535.0)
    if np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise ImageError(f"cannot read image {where}: float samples contain NaN or inf")
        lo, hi = float(out.min()), float(out.max())
        if lo < 0.0 or hi > 1.0:
            raise ImageError(
                f"cannot read image {where}: float samples span [{lo:g}, {hi:g}]; "
                "only float images with values in [0, 1] are supported"
            )
        return out
    raise ImageError(
        f"cannot read image {where}: unsupported sample type {arr.dtype} "
        "(supported: 8/16-bit unsigned integers, floats in [0, 1])"
    )


def _finish(arr: np.ndarray, where: str) -> np.ndarray:
    """(H, W) or (H, W, C) samples, C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA ->
    float32 (H, W, 1 or 3) in [0, 1], after checking that any alpha is fully opaque."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ImageError(
            f"cannot read image {where}: unsupported array shape {arr.shape}; "
            "expected a single 2-D image with 1-4 channels"
        )
    h, w, c = arr.shape
    if h == 0 or w == 0:
        raise ImageError(f"cannot read image {where}: image is empty ({h}x{w} pixels)")
    if c > 4:
        raise ImageError(
            f"cannot read image {where}: {c} channels; supported are gray, gray+alpha, "
            "RGB and RGBA (1-4 channels)"
        )
    img = _to_float(arr, where)
    if c in (2, 4):
        alpha = img[..., -1]
        n_transparent = int(np.count_nonzero(alpha < 1.0))
        if n_transparent:
            raise ImageError(
                f"cannot read image {where}: the image has transparency "
                f"({n_transparent} of {h * w} pixels have alpha < 1); "
                "flatten it onto a background first"
            )
        img = img[..., :-1]
    return np.ascontiguousarray(img, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# decoders: each returns raw samples (H, W[, C]) with C in 1-4 (gray, GA, RGB, RGBA)
# --------------------------------------------------------------------------------------------


def _png_is_16bit_colour(data: bytes) -> bool:
    """True for PNGs Pillow would truncate: bit depth 16 with colour type 2, 4 or 6."""
    try:
        header = _png.read_header(data)
    except _png.PngError:
        return False  # let Pillow report the problem
    return header.bit_depth == 16 and header.color_type in (2, 4, 6)


def _decode_pillow(data: bytes, fmt: str, where: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(_bytesio.BytesIO(data)) as im:
            im.load()
            return _pillow_samples(im, where)
    except ImageError:
        raise
    except Exception as exc:  # Pillow raises many types for corrupt data
        from PIL import UnidentifiedImageError

        detail = "not decodable" if isinstance(exc, UnidentifiedImageError) else _one_line(exc)
        raise ImageError(
            f"cannot read image {where}: corrupt or unsupported {fmt} data ({detail})"
        ) from None


def _pillow_samples(im, where: str) -> np.ndarray:
    """Turn a loaded PIL image into raw samples, resolving palettes and transparency."""
    mode = im.mode
    has_key = "transparency" in im.info
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.array(im)
        if arr.dtype != np.uint16:
            if arr.size and (arr.min() < 0 or arr.max() > 65535):
                raise ImageError(
                    f"cannot read image {where}: 32-bit integer samples outside 0-65535 "
                    "are not supported"
                )
            arr = arr.astype(np.uint16)
        if has_key and isinstance(im.info["transparency"], int):
            alpha = np.where(arr == im.info["transparency"], 0, 65535).astype(np.uint16)
            arr = np.stack([arr, alpha], axis=-1)
        return arr
    if mode == "F":
        return np.array(im)
    if mode == "1":
        return np.array(im.convert("L"))
    if mode in ("L", "RGB") and has_key:
        return np.array(im.convert("LA" if mode == "L" else "RGBA"))
    if mode in ("L", "LA", "RGB", "RGBA"):
        return np.array(im)
    if mode in ("P", "PA"):
        with_alpha = mode == "PA" or has_key
        arr = np.array(im.convert("RGBA" if with_alpha else "RGB"))
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
            arr = arr[..., [0, 3]] if with_alpha else arr[..., 0]  # gray palette -> gray
        return arr
    if mode in ("La", "RGBa"):
        return np.array(im.convert("LA" if mode == "La" else "RGBA"))
    if mode in ("RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        return np.array(im.convert("RGB"))
    raise ImageError(f"cannot read image {where}: unsupported pixel mode {mode!r}")


def _decode_png16(data: bytes, where: str) -> np.ndarray:
    try:
        return _png.decode_png(data)
    except _png.PngError as exc:
        raise ImageError(f"cannot read image {where}: {exc}") from None


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Silence a library's log messages (tifffile logs what it then raises as errors)."""
    logger = logging.getLogger(name)
    old = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(old)


def _decode_tiff(data: bytes, where: str) -> np.ndarray:
    import tifffile

    try:
        with _quiet_logger("tifffile"), tifffile.TiffFile(_bytesio.BytesIO(data)) as tif:
            if not tif.pages:
                raise ImageError(f"cannot read image {where}: TIFF file has no pages")
            page = tif.pages[0]
            if not hasattr(page, "axes"):  # a TiffFrame; load the full page
                page = page.aspage()
            arr = page.asarray()
            axes = page.axes
            photometric = int(page.photometric)
            colormap = page.colormap
            compression = int(page.compression)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(
            f"cannot read image {where}: corrupt or unsupported TIFF data ({_one_line(exc)})"
        ) from None

    if axes == "SYX":
        arr = np.moveaxis(arr, 0, -1)
    elif axes not in ("YX", "YXS"):
        raise ImageError(
            f"cannot read image {where}: unsupported TIFF layout (axes {axes!r}, shape "
            f"{arr.shape}); expected a single 2-D gray or colour image"
        )

    PH = tifffile.PHOTOMETRIC
    if photometric == PH.PALETTE:
        if colormap is None or arr.ndim != 2:
            raise ImageError(f"cannot read image {where}: malformed palette TIFF")
        return _apply_tiff_colormap(np.asarray(colormap), arr, where)
    if photometric == PH.MINISWHITE:
        if np.issubdtype(arr.dtype, np.integer):
            arr = np.iinfo(arr.dtype).max - arr
        elif arr.dtype == np.bool_:
            arr = ~arr
        else:
            arr = 1.0 - arr
        return arr
    if photometric in (PH.MINISBLACK, PH.RGB):
        return arr
    if photometric == PH.YCBCR and compression in (6, 7):  # JPEG-in-TIFF decodes to RGB
        return arr
    try:
        name = PH(photometric).name
    except ValueError:
        name = str(photometric)
    raise ImageError(
        f"cannot read image {where}: unsupported TIFF photometric interpretation "
        f"{name} (supported: MINISBLACK, MINISWHITE, RGB, PALETTE)"
    )


def _apply_tiff_colormap(colormap: np.ndarray, index: np.ndarray, where: str) -> np.ndarray:
    """Map palette indices through a TIFF colormap (3, N) of 16-bit values."""
    if colormap.ndim != 2 or colormap.shape[0] != 3:
        raise ImageError(f"cannot read image {where}: malformed TIFF colormap")
    if index.size and int(index.max()) >= colormap.shape[1]:
        raise ImageError(f"cannot read image {where}: palette index out of range")
    cmap = colormap.astype(np.uint32)
    if np.all(cmap % 257 == 0):
        table = (cmap // 257).astype(np.uint8)  # 8-bit palette stored as v * 257
    elif cmap.max() < 256:
        table = cmap.astype(np.uint8)
    elif np.all(cmap % 256 == 0):
        table = (cmap // 256).astype(np.uint8)  # 8-bit palette stored as v << 8
    else:
        table = cmap.astype(np.uint16)
    rgb = table[:, index].transpose(1, 2, 0)
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0]
    return rgb


# --------------------------------------------------------------------------------------------
# public API: reading
# --------------------------------------------------------------------------------------------


def _check_path(path: object, verb: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ImageError(f"cannot {verb} image {path!r}: expected a file path (str or Path)")
    return Path(path)


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as a float32 array of shape (H, W, C), C in {1, 3}, values in [0, 1].

    Supports PNG, JPEG, BMP and TIFF (detected from the file contents) with 8 or 16 bits per
    sample; gray, gray+alpha, RGB, RGBA and palette images; float TIFFs whose values lie in
    [0, 1].  8-bit samples are divided by 255, 16-bit samples by 65535.  An alpha channel
    (or a ``tRNS`` colour key) must be fully opaque and is dropped.

    Raises:
        ImageError: the path is missing, a directory, empty, not one of the supported
            formats, corrupt, has transparency, more than 4 channels or an unsupported
            layout.  The message names the path.
    """
    p = _check_path(path, "read")
    where = f"'{p}'"
    try:
        if not p.exists():
            raise ImageError(f"cannot read image {where}: no such file")
        if p.is_dir():
            raise ImageError(f"cannot read image {where}: is a directory, not an image file")
        data = p.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read image {where}: {exc.strerror or _one_line(exc)}") from None
    if not data:
        raise ImageError(f"cannot read image {where}: file is empty")
    fmt = _sniff(data)
    if fmt is None:
        raise ImageError(f"cannot read image {where}: not a PNG/JPEG/BMP/TIFF file")
    if fmt == "TIFF":
        raw = _decode_tiff(data, where)
    elif fmt == "PNG" and _png_is_16bit_colour(data):
        raw = _decode_png16(data, where)
    else:
        raw = _decode_pillow(data, fmt, where)
    return _finish(raw, where)


# --------------------------------------------------------------------------------------------
# public API: writing
# --------------------------------------------------------------------------------------------


def _float_hwc(arr: np.ndarray, what: str, channels: tuple[int, ...] | None = None) -> np.ndarray:
    """``arr`` as a float (H, W, C) array ((H, W) becomes one channel); ``channels`` limits C.
    Raises ShapeError/ImageError whose message starts with ``what``."""
    out = arr[:, :, None] if arr.ndim == 2 else arr
    if out.ndim != 3 or (channels is not None and out.shape[2] not in channels):
        valid = "(H, W) or (H, W, C)" if channels is None else "(H, W) or (H, W, C) with C in " + str(set(channels))
        raise ShapeError(f"{what} shape {arr.shape} is not valid; expected {valid}")
    if not np.issubdtype(out.dtype, np.floating):
        raise ImageError(f"{what} dtype {out.dtype} is not valid; expected a float array with values in [0, 1]")
    return out


def _as_hwc(image: object, where: str) -> np.ndarray:
    """Validate an image to write and return it as a float (H, W, C) numpy array, C in {1, 3}."""
    if isinstance(image, torch.Tensor):
        t = image.detach()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim == 2:
            t = t[None]
        if t.ndim != 3 or t.shape[0] not in (1, 3):
            raise ShapeError(
                f"cannot write image {where}: tensor shape {tuple(image.shape)} is not valid; "
                "expected (C, H, W) or (1, C, H, W) with C in {1, 3}"
            )
        if not t.is_floating_point():
            raise ImageError(
                f"cannot write image {where}: tensor dtype {t.dtype} is not valid; "
                "expected a float tensor with values in [0, 1]"
            )
        arr = t.to(device="cpu", dtype=torch.float64).permute(1, 2, 0).numpy()
    elif isinstance(image, np.ndarray):
        arr = _float_hwc(image, f"cannot write image {where}: array", channels=(1, 3))
    else:
        raise ImageError(
            f"cannot write image {where}: expected a numpy array or torch tensor, "
            f"got {type(image).__name__}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ShapeError(f"cannot write image {where}: image is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise ImageError(f"cannot write image {where}: image contains NaN or inf values")
    return arr


def _quantize(arr: np.ndarray, bits: int) -> np.ndarray:
    """Clip to [0, 1] and round to unsigned integers of the given bit depth."""
    maxval = 255.0 if bits == 8 else 65535.0
    q = np.rint(np.clip(arr.astype(np.float64), 0.0, 1.0) * maxval)
    return q.astype(np.uint8 if bits == 8 else np.uint16)


def _write_png(fh: BinaryIO, q: np.ndarray) -> None:
    if q.dtype == np.uint16:  # Pillow cannot write 16-bit colour PNGs: use our encoder
        fh.write(_png.encode_png(q))
        return
    from PIL import Image

    Image.fromarray(q[..., 0] if q.shape[2] == 1 else q).save(fh, format="PNG")


def _write_jpeg(fh: BinaryIO, q: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(q[..., 0] if q.shape[2] == 1 else q).save(
        fh, format="JPEG", quality=JPEG_QUALITY, subsampling=0
    )


def _write_bmp(fh: BinaryIO, q: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(q[..., 0] if q.shape[2] == 1 else q).save(fh, format="BMP")


def _write_tiff(fh: BinaryIO, q: np.ndarray) -> None:
    import tifffile

    buf = _bytesio.BytesIO()  # tifffile wants a named file or an in-memory buffer
    if q.shape[2] == 1:
        tifffile.imwrite(buf, q[..., 0], photometric="minisblack", compression="zlib")
    else:
        tifffile.imwrite(buf, q, photometric="rgb", compression="zlib")
    fh.write(buf.getbuffer())


_WRITERS: dict[str, Callable[[BinaryIO, np.ndarray], None]] = {
    "PNG": _write_png,
    "JPEG": _write_jpeg,
    "BMP": _write_bmp,
    "TIFF": _write_tiff,
}


def _temp_path(target: Path) -> tuple[Path, int]:
    """Create a fresh hidden temporary file next to ``target`` (permissions follow the umask)."""
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
        except FileExistsError:
            continue
        return tmp, fd


def check_image_output(path: PathLike, bits: int = 8) -> tuple[Path, str]:
    """The checks :func:`write_image` makes of ``path`` and ``bits`` before any data (extension,
    bit depth), so a command can refuse a bad output name before it computes the image. Returns
    the path and the format's name."""
    p = _check_path(path, "write")
    where = f"'{p}'"
    ext = p.suffix.lower()
    if ext not in WRITE_EXTENSIONS:
        valid = ", ".join(WRITE_EXTENSIONS)
        raise ImageError(
            f"cannot write image {where}: unknown extension {p.suffix!r}; valid: {valid}"
        )
    fmt, depths = WRITE_EXTENSIONS[ext]
    if isinstance(bits, bool) or bits not in (8, 16):
        raise ImageError(f"cannot write image {where}: bits={bits!r} is not valid; use 8 or 16")
    if bits not in depths:
        raise ImageError(
            f"cannot write image {where}: {fmt} supports only 8 bits per sample, got bits={bits}; "
            "use .png or .tif for 16-bit output"
        )
    return p, fmt


def write_image(
    path: PathLike, image: np.ndarray | torch.Tensor, *, bits: int = 8, overwrite: bool = False
) -> Path:
    """Write an image with values in [0, 1] to ``path``; returns the path written.

    Args:
        path: output file; the extension picks the format: ``.png`` (8 or 16 bits),
            ``.tif``/``.tiff`` (8 or 16 bits, zlib-compressed), ``.jpg``/``.jpeg``
            (8 bits, quality 95, no chroma subsampling) or ``.bmp`` (8 bits).  Missing
            parent directories are created.
        image: float numpy array (H, W), (H, W, 1) or (H, W, 3), or a float torch tensor
            (C, H, W) or (1, C, H, W) with C in {1, 3}.  Values are clipped to [0, 1] and
            rounded to the nearest integer level.
        bits: 8 or 16 bits per sample.
        overwrite: replace an existing file; otherwise an existing path is an error.

    The file is written atomically: the data goes to a temporary file in the same directory
    which then replaces ``path`` (``os.replace``; without ``overwrite`` it is hard-linked into
    place so an existing file is never clobbered).  On any failure the temporary file is
    removed and ``path`` is left as it was.

    Raises:
        ImageError: unknown extension, unsupported ``bits`` for the format, non-float or
            non-finite data, or an OS error while writing.
        ShapeError: the image shape is not one of the accepted layouts.
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
    """
    p, fmt = check_image_output(path, bits)
    where = f"'{p}'"
    q = _quantize(_as_hwc(image, where), bits)

    if p.is_dir():
        raise ImageError(f"cannot write image {where}: is a directory")
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{where} exists; pass overwrite=True (CLI: --overwrite)")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageError(
            f"cannot write image {where}: cannot create directory '{p.parent}' "
            f"({exc.strerror or _one_line(exc)})"
        ) from None

    try:
        tmp, fd = _temp_path(p)
    except OSError as exc:
        raise ImageError(f"cannot write image {where}: {exc.strerror or _one_line(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            _WRITERS[fmt](fh, q)
            fh.flush()
            os.fsync(fh.fileno())
        _move_into_place(tmp, p, overwrite, where)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # already moved into place or removed
        if isinstance(exc, OSError):
            raise ImageError(
                f"cannot write image {where}: {exc.strerror or _one_line(exc)}"
            ) from None
        raise
    return p


def _move_into_place(tmp: Path, target: Path, overwrite: bool, where: str) -> None:
    """Atomically publish ``tmp`` as ``target``; without ``overwrite`` never clobber."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # atomic create-if-absent
    except FileExistsError:
        raise OutputExistsError(f"{where} exists; pass overwrite=True (CLI: --overwrite)") from None
    except OSError:
        # hard links unsupported on this file system: check, then replace
        if target.exists():
            raise OutputExistsError(
                f"{where} exists; pass overwrite=True (CLI: --overwrite)"
            ) from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


# --------------------------------------------------------------------------------------------
# numpy <-> torch
# --------------------------------------------------------------------------------------------


def image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """Convert a float image (H, W, C) (or (H, W), treated as one channel) to a float32
    tensor of shape (1, C, H, W).  The result does not share memory with ``img``.

    Raises:
        ShapeError: ``img`` is not 2-D or 3-D.
        ImageError: ``img`` is not a float array.
    """
    if not isinstance(img, np.ndarray):
        raise ImageError(f"image_to_tensor expects a numpy array, got {type(img).__name__}")
    img = _float_hwc(img, "image_to_tensor: image")
    chw = np.array(img.transpose(2, 0, 1), dtype=np.float32, order="C", copy=True)
    return torch.from_numpy(chw).unsqueeze(0)


def tensor_to_image(t: torch.Tensor) -> np.ndarray:
    """Convert a tensor (1, C, H, W) or (C, H, W) to a float32 numpy image (H, W, C).

    The tensor is detached and moved to the CPU; the result never shares memory with it.

    Raises:
        ShapeError: the tensor is not 3-D or 4-D with batch size 1.
    """
    if not isinstance(t, torch.Tensor):
        raise ShapeError(f"tensor_to_image expects a torch tensor, got {type(t).__name__}")
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3:
        raise ShapeError(
            f"tensor shape {tuple(t.shape)} is not valid for tensor_to_image; "
            "expected (C, H, W) or (1, C, H, W)"
        )
    arr = t.detach().to(device="cpu", dtype=torch.float32).permute(1, 2, 0).numpy()
    return np.array(arr, dtype=np.float32, copy=True, order="C")


#: file extensions read by :func:`read_image` when a folder is given
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def image_files(folder: PathLike, recursive: bool = False) -> list[Path]:
    """Sorted image files (by :data:`IMAGE_EXTENSIONS`) in ``folder`` (and below, if ``recursive``)."""
    root = Path(folder)
    found = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
