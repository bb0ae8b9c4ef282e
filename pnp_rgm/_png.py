"""A minimal PNG codec (numpy + zlib) for what Pillow cannot do.

Pillow decodes 16-bit RGB/RGBA (and gray+alpha) PNGs by truncating them to 8 bits and cannot
write 16-bit colour PNGs at all.  This module fills that gap; :mod:`pnp_rgm.io` uses it only
for 16-bit PNGs and lets Pillow handle everything else.

Supported: colour types 0 (gray), 2 (RGB), 4 (gray+alpha) and 6 (RGBA) at bit depth 8 or 16,
non-interlaced, all five row filters, ``tRNS`` colour keys (decoded into an alpha channel).
Not supported: palette images, bit depths below 8, Adam7 interlacing (all raise
:class:`PngError`).  Every chunk CRC is verified when decoding and written when encoding.

Unfiltering (PNG spec, section 9) works on the raw bytes with ``bpp`` bytes per pixel:

* None and Up are plain vectorised additions (mod 256);
* Sub is a cumulative sum (mod 256) along the row, independently for each byte lane;
* Average and Paeth depend on the reconstructed byte to the left *and* on the row above, so a
  block of rows starting at an Average/Paeth row (up to the last such row within the next
  ``max(W, 16)`` rows; rows of other types inside it just use their own predictor) is
  reconstructed along anti-diagonals ("wavefront"): pixel ``(y, x)`` only needs
  ``(y, x-1)``, ``(y-1, x)`` and ``(y-1, x-1)``, so every pixel on the diagonal
  ``x + y = d`` can be computed at once.  A block of ``L`` rows of width ``W`` takes
  ``L + W - 1`` vectorised steps (a lone row degenerates to the plain per-pixel loop,
  vectorised over the bytes of a pixel).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = ["PngError", "PngHeader", "decode_png", "encode_png", "read_header", "SIGNATURE"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: channels per colour type supported by this codec
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
_COLOR_TYPE_FOR_CHANNELS = {1: 0, 3: 2, 2: 4, 4: 6}
_IDAT_CHUNK = 1 << 20  # split compressed data into 1 MiB IDAT chunks


class PngError(ValueError):
    """Malformed or unsupported PNG data (one-line message; :mod:`pnp_rgm.io` adds the path)."""


@dataclass(frozen=True)
class PngHeader:
    """The fields of an ``IHDR`` chunk."""

    width: int
    height: int
    bit_depth: int
    color_type: int
    interlace: int


def read_header(data: bytes) -> PngHeader:
    """Parse the signature and ``IHDR`` chunk at the start of ``data`` (33 bytes suffice)."""
    if data[:8] != SIGNATURE:
        raise PngError("not a PNG file (bad signature)")
    if len(data) < 33:
        raise PngError("truncated PNG header")
    length, ctype = struct.unpack(">I4s", data[8:16])
    if ctype != b"IHDR" or length != 13:
        raise PngError("first chunk is not a valid IHDR")
    width, height, depth, color, comp, filt, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if width == 0 or height == 0:
        raise PngError(f"invalid image size {width}x{height}")
    if comp != 0 or filt != 0 or interlace not in (0, 1):
        raise PngError("invalid IHDR (unknown compression, filter or interlace method)")
    return PngHeader(width, height, depth, color, interlace)


def _iter_chunks(data: bytes):
    """Yield ``(type, payload)`` for every chunk, verifying lengths and CRCs."""
    pos = 8
    n = len(data)
    while pos < n:
        if pos + 12 > n:
            raise PngError("truncated chunk header")
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > n:
            raise PngError(f"truncated {ctype!r} chunk")
        payload = data[pos + 8 : end]
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(ctype + payload) & 0xFFFFFFFF != crc:
            raise PngError(f"CRC mismatch in {ctype.decode('latin-1')!r} chunk")
        yield ctype, payload
        if ctype == b"IEND":
            return
        pos = end + 4
    raise PngError("missing IEND chunk (truncated file)")


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Paeth predictor on int arrays (ties broken a, then b, then c)."""
    p = a + b - c
    pa = np.abs(p - a)
    pb = np.abs(p - b)
    pc = np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _unfilter_wavefront(
    filt: np.ndarray, types: np.ndarray, prior: np.ndarray
) -> np.ndarray:
    """Reconstruct a block of rows (any filter types) along anti-diagonals.

    ``filt``: (L, W, bpp) filtered bytes, ``types``: (L,) filter types in 0-4,
    ``prior``: (W, bpp) reconstructed row above the block (zeros for the first image row).

    The rows are stored *skewed*: row ``r`` (1-based; row 0 is ``prior``) is shifted right by
    ``r`` columns, so that pixel ``(r, x)`` lives in column ``k = x + r + 1`` and column ``r``
    is a zero pad standing for ``x = -1``.  Then all pixels of one anti-diagonal share the
    column ``k``, and their left, up and up-left neighbours are the plain slices
    ``[rows, k-1]``, ``[rows-1, k-1]`` and ``[rows-1, k-2]``.
    """
    n_rows, width, bpp = filt.shape
    rr = np.arange(1, n_rows + 1)[:, None]
    kk = np.arange(width)[None, :] + rr + 1
    skew = np.zeros((n_rows + 1, n_rows + width + 1, bpp), dtype=np.int16)
    skew[0, 1 : width + 1] = prior
    fskew = np.zeros_like(skew)
    fskew[rr, kk] = filt
    t = types.astype(np.intp)[:, None]  # (L, 1), broadcasts against (rows, bpp)
    is_sub, is_up, is_avg, is_paeth = (t == 1), (t == 2), (t == 3), (t == 4)
    for k in range(2, n_rows + width + 1):
        r0 = max(1, k - width)
        r1 = min(n_rows, k - 1)
        a = skew[r0 : r1 + 1, k - 1]
        b = skew[r0 - 1 : r1, k - 1]
        c = skew[r0 - 1 : r1, k - 2]
        rows = slice(r0 - 1, r1)
        pred = (
            np.where(is_paeth[rows], _paeth(a, b, c), 0)
            + np.where(is_avg[rows], (a + b) >> 1, 0)
            + np.where(is_up[rows], b, 0)
            + np.where(is_sub[rows], a, 0)
        )
        skew[r0 : r1 + 1, k] = (fskew[r0 : r1 + 1, k] + pred) & 0xFF
    return skew[rr, kk].astype(np.uint8)


def _unfilter(raw: np.ndarray, height: int, width: int, bpp: int) -> np.ndarray:
    """Undo the per-row filters of non-interlaced image data; returns (H, W*bpp) uint8.

    None/Sub/Up rows are reconstructed one row at a time (vectorised over the row).  When an
    Average or Paeth row is met, the block from it up to the last Average/Paeth row among
    the next ``max(W, 16)`` rows goes through :func:`_unfilter_wavefront` (the cap keeps the
    skewed buffer at most about twice the block).
    """
    stride = width * bpp
    rows = raw[: height * (stride + 1)].reshape(height, stride + 1)
    types = rows[:, 0]
    if types.max(initial=0) > 4:
        raise PngError(f"invalid row filter type {int(types.max())} (valid: 0-4)")
    filt = rows[:, 1:].reshape(height, width, bpp)
    out = np.empty((height, width, bpp), dtype=np.uint8)
    prior = np.zeros((width, bpp), dtype=np.uint8)
    cap = max(width, 16)
    y = 0
    while y < height:
        t = int(types[y])
        if t == 0:
            out[y] = filt[y]
        elif t == 1:
            out[y] = (np.cumsum(filt[y], axis=0, dtype=np.int64) & 0xFF).astype(np.uint8)
        elif t == 2:
            out[y] = filt[y] + prior  # uint8 arithmetic wraps mod 256
        else:
            window = types[y : y + cap]
            end = y + int(np.flatnonzero(window >= 3)[-1]) + 1
            out[y:end] = _unfilter_wavefront(filt[y:end], types[y:end], prior)
            prior = out[end - 1]
            y = end
            continue
        prior = out[y]
        y += 1
    return out.reshape(height, stride)


def decode_png(data: bytes) -> np.ndarray:
    """Decode a non-interlaced 8/16-bit gray, gray+alpha, RGB or RGBA PNG.

    Returns an array of shape (H, W, C), dtype uint8 (8-bit) or uint16 (16-bit), with C = 1,
    2, 3 or 4 (gray, gray+alpha, RGB, RGBA).  A ``tRNS`` colour key on a gray/RGB image is
    turned into an alpha channel (0 where the pixel matches the key, max elsewhere).
    Raises :class:`PngError` for malformed or unsupported files.
    """
    header = read_header(data)
    if header.color_type not in _CHANNELS:
        raise PngError(f"colour type {header.color_type} is not supported by the numpy decoder")
    if header.bit_depth not in (8, 16):
        raise PngError(f"bit depth {header.bit_depth} is not supported by the numpy decoder")
    if header.interlace:
        raise PngError("interlaced (Adam7) 16-bit colour PNGs are not supported; "
                       "re-save the file without interlacing")
    channels = _CHANNELS[header.color_type]
    bytes_per_sample = header.bit_depth // 8
    bpp = channels * bytes_per_sample
    width, height = header.width, header.height

    idat: list[bytes] = []
    trns: bytes | None = None
    for ctype, payload in _iter_chunks(data):
        if ctype == b"IDAT":
            idat.append(payload)
        elif ctype == b"tRNS":
            trns = payload
    if not idat:
        raise PngError("no IDAT chunk (no image data)")

    expected = height * (width * bpp + 1)
    decomp = zlib.decompressobj()
    try:
        raw = decomp.decompress(b"".join(idat), expected)
    except zlib.error as exc:
        raise PngError(f"corrupt compressed image data ({exc})") from None
    if len(raw) < expected:
        raise PngError(f"image data too short ({len(raw)} of {expected} bytes; truncated file)")

    pixels = _unfilter(np.frombuffer(raw, dtype=np.uint8), height, width, bpp)
    if bytes_per_sample == 2:
        img = pixels.view(">u2").astype(np.uint16)
    else:
        img = pixels
    img = img.reshape(height, width, channels)

    if trns is not None and channels in (1, 3):
        if len(trns) != 2 * channels:
            raise PngError("invalid tRNS chunk length")
        key = np.array(struct.unpack(f">{channels}H", trns), dtype=np.uint32)
        opaque = np.iinfo(img.dtype).max
        alpha = np.where(np.all(img == key, axis=-1), 0, opaque).astype(img.dtype)
        img = np.concatenate([img, alpha[..., None]], axis=-1)
    return img


def _chunk(ctype: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + ctype
        + payload
        + struct.pack(">I", zlib.crc32(ctype + payload) & 0xFFFFFFFF)
    )


def _filter_rows(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Adaptive filtering: apply all five filters (vectorised) and per row keep the one with
    the smallest sum of absolute values as signed bytes (the libpng heuristic).

    ``rows``: (H, stride) uint8.  Returns (H, stride + 1) uint8 with the type byte first.
    Works in blocks of rows to bound the temporary memory (five int16 candidates per byte).
    """
    height, stride = rows.shape
    out = np.empty((height, stride + 1), dtype=np.uint8)
    block = max(1, (1 << 22) // max(stride, 1))
    for start in range(0, height, block):
        stop = min(height, start + block)
        x = rows[start:stop].astype(np.int16)
        up = rows[start - 1 : stop - 1] if start > 0 else None
        a = np.zeros_like(x)
        a[:, bpp:] = x[:, :-bpp]
        b = np.zeros_like(x)
        if up is not None:
            b[:] = up
        else:
            b[1:] = x[:-1]
        c = np.zeros_like(x)
        c[:, bpp:] = b[:, :-bpp]
        candidates = np.stack(
            [x, x - a, x - b, x - ((a + b) >> 1), x - _paeth(a, b, c)]
        ) & 0xFF  # (5, rows, stride)
        signed = np.where(candidates > 127, 256 - candidates, candidates)
        best = np.argmin(signed.sum(axis=2, dtype=np.int64), axis=0)
        out[start:stop, 0] = best
        out[start:stop, 1:] = np.take_along_axis(candidates, best[None, :, None], axis=0)[0]
    return out


def encode_png(pixels: np.ndarray, *, compress_level: int = 6) -> bytes:
    """Encode an (H, W) or (H, W, C) uint8/uint16 array as a PNG (C = 1, 2, 3 or 4).

    uint8 gives bit depth 8, uint16 bit depth 16.  Rows are adaptively filtered, the data is
    zlib-compressed at ``compress_level`` and split into IDAT chunks with correct CRCs.
    """
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in _COLOR_TYPE_FOR_CHANNELS:
        raise PngError(f"cannot encode array of shape {pixels.shape} as PNG; "
                       "expected (H, W) or (H, W, C) with C in 1-4")
    if arr.dtype == np.uint8:
        depth = 8
        raw = np.ascontiguousarray(arr)
    elif arr.dtype == np.uint16:
        depth = 16
        raw = np.ascontiguousarray(arr.astype(">u2"))
    else:
        raise PngError(f"cannot encode dtype {arr.dtype} as PNG; expected uint8 or uint16")
    height, width, channels = arr.shape
    if height == 0 or width == 0:
        raise PngError(f"cannot encode an empty image of shape {pixels.shape}")
    bpp = channels * depth // 8
    rows = raw.view(np.uint8).reshape(height, width * bpp)
    filtered = _filter_rows(rows, bpp)
    compressed = zlib.compress(filtered.tobytes(), compress_level)

    ihdr = struct.pack(">IIBBBBB", width, height, depth,
                       _COLOR_TYPE_FOR_CHANNELS[channels], 0, 0, 0)
    parts = [SIGNATURE, _chunk(b"IHDR", ihdr)]
    for start in range(0, len(compressed), _IDAT_CHUNK):
        parts.append(_chunk(b"IDAT", compressed[start : start + _IDAT_CHUNK]))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)
