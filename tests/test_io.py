"""Tests for pnp_rgm.io (image reading/writing, tensor conversion) and pnp_rgm._png."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import tifffile
import torch
from PIL import Image

from pnp_rgm import _png
from pnp_rgm import io as pio
from pnp_rgm.errors import ImageError, OutputExistsError, PnpRgmError, ShapeError
from pnp_rgm.io import image_to_tensor, read_image, tensor_to_image, write_image

RNG_SEED = 1234


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def _rgb() -> np.ndarray:
    """A 48x40 colour crop of the astronaut with added fine detail, float64 in [0, 1]."""
    base = skimage.data.astronaut()[100:148, 180:220].astype(np.float64) / 255.0
    noise = np.random.default_rng(RNG_SEED).uniform(-0.02, 0.02, base.shape)
    return np.clip(base + noise, 0.0, 1.0)


def _gray() -> np.ndarray:
    base = skimage.data.camera()[200:248, 200:240].astype(np.float64) / 255.0
    noise = np.random.default_rng(RNG_SEED + 1).uniform(-0.02, 0.02, base.shape)
    return np.clip(base + noise, 0.0, 1.0)


def _levels(img: np.ndarray, bits: int) -> np.ndarray:
    maxval = 2**bits - 1
    return np.rint(np.clip(img, 0, 1) * maxval).astype(np.int64)


def _assert_one_line_error(excinfo: pytest.ExceptionInfo, *needles: str) -> None:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)


def _listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def _chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(ctype + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def _paeth_byte(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _forward_filter(rows: np.ndarray, bpp: int, types: list[int]) -> bytes:
    """Test-local PNG forward filtering (spec section 9.2), one plain loop per byte."""
    out = bytearray()
    height, stride = rows.shape
    for y in range(height):
        t = types[y]
        out.append(t)
        for i in range(stride):
            x = int(rows[y, i])
            a = int(rows[y, i - bpp]) if i >= bpp else 0
            b = int(rows[y - 1, i]) if y > 0 else 0
            c = int(rows[y - 1, i - bpp]) if (y > 0 and i >= bpp) else 0
            pred = [0, a, b, (a + b) // 2, _paeth_byte(a, b, c)][t]
            out.append((x - pred) % 256)
    return bytes(out)


def _manual_png(pixels: np.ndarray, types: list[int], *, interlace: int = 0) -> bytes:
    """A PNG built by the test: rows filtered with the given per-row filter types."""
    h, w, c = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = pixels.astype(">u2") if depth == 16 else pixels
    rows = np.ascontiguousarray(raw).view(np.uint8).reshape(h, -1)
    bpp = c * depth // 8
    data = zlib.compress(_forward_filter(rows, bpp, types), 9)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, interlace)
    # split the data over two IDAT chunks to exercise concatenation
    half = len(data) // 2
    return (
        _png.SIGNATURE
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", data[:half])
        + _chunk(b"IDAT", data[half:])
        + _chunk(b"IEND", b"")
    )


# every filter type, plus runs of consecutive Average/Paeth rows and mixed blocks
FILTER_SEQUENCE = [0, 1, 2, 3, 4, 4, 4, 3, 3, 4, 1, 0, 2, 3, 1, 4, 2, 2, 0, 3, 4, 1, 3, 4]


# ------------------------------------------------------------------------------------------
# round trips
# ------------------------------------------------------------------------------------------

LOSSLESS = [(".png", 8), (".png", 16), (".tif", 8), (".tiff", 16), (".bmp", 8)]


@pytest.mark.parametrize("ext,bits", LOSSLESS)
@pytest.mark.parametrize("kind", ["rgb", "gray2d", "gray3d"])
def test_lossless_round_trip_is_exact(tmp_path, ext, bits, kind):
    img = {"rgb": _rgb(), "gray2d": _gray(), "gray3d": _gray()[:, :, None]}[kind]
    path = tmp_path / f"img{ext}"
    assert write_image(path, img, bits=bits) == path
    out = read_image(path)
    channels = 3 if kind == "rgb" else 1
    assert out.shape == (48, 40, channels)
    assert out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    expected = _levels(img.reshape(48, 40, channels), bits)
    maxval = 2**bits - 1
    got = np.rint(out.astype(np.float64) * maxval).astype(np.int64)
    np.testing.assert_array_equal(got, expected)
    # and the float values are the levels divided by the maximum, to float32 precision
    np.testing.assert_allclose(out, expected / maxval, rtol=0, atol=1e-7)


@pytest.mark.parametrize("ext", [".jpg", ".jpeg"])
@pytest.mark.parametrize("kind", ["rgb", "gray"])
def test_jpeg_round_trip_is_close(tmp_path, ext, kind):
    img = _rgb() if kind == "rgb" else _gray()
    path = tmp_path / f"img{ext}"
    write_image(path, img)
    out = read_image(path)
    assert out.shape == (48, 40, 3 if kind == "rgb" else 1)
    assert np.mean(np.abs(out - img.reshape(out.shape))) < 0.02


def test_full_size_16bit_rgb_png_keeps_all_16_bits(tmp_path):
    img = skimage.data.astronaut().astype(np.float64) / 255.0
    img = img + np.random.default_rng(0).uniform(0, 1 / 255.0, img.shape) * 0.999
    img = np.clip(img, 0, 1)
    path = tmp_path / "big16.png"
    write_image(path, img, bits=16)
    out = read_image(path)
    np.testing.assert_array_equal(np.rint(out.astype(np.float64) * 65535), _levels(img, 16))
    # Pillow alone would have truncated this file to 8 bits
    levels = np.rint(out * 65535).astype(np.int64)
    assert np.count_nonzero(levels % 257) > levels.size // 2


def test_uppercase_extension_and_str_path(tmp_path):
    path = str(tmp_path / "IMG.PNG")
    write_image(path, _gray())
    assert read_image(path).shape == (48, 40, 1)


def test_values_are_clipped_and_rounded(tmp_path):
    img = np.array([[-0.5, 0.0, 0.5 / 255, 0.49 / 255], [1.0, 1.5, 0.2, 254.6 / 255]])
    path = tmp_path / "clip.png"
    write_image(path, img)
    levels = np.rint(read_image(path)[..., 0] * 255).astype(int)
    np.testing.assert_array_equal(levels, [[0, 0, 0, 0], [255, 255, 51, 255]])


def test_missing_parent_directories_are_created(tmp_path):
    path = tmp_path / "results" / "deep" / "x.png"
    write_image(path, _rgb())
    assert read_image(path).shape == (48, 40, 3)


def test_written_file_permissions_follow_umask(tmp_path):
    path = tmp_path / "perm.png"
    write_image(path, _gray())
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)


# ------------------------------------------------------------------------------------------
# reading: channels, alpha, palette
# ------------------------------------------------------------------------------------------


def _save_pil(path: Path, arr: np.ndarray, **kw) -> None:
    Image.fromarray(arr).save(path, **kw)


def test_rgba_opaque_reads_as_rgb(tmp_path):
    rgb = (_rgb() * 255).round().astype(np.uint8)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    _save_pil(tmp_path / "a.png", rgba)
    out = read_image(tmp_path / "a.png")
    assert out.shape == (48, 40, 3)
    np.testing.assert_array_equal(np.rint(out * 255), rgb)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_rgba_transparent_is_an_error(tmp_path, ext):
    rgb = (_rgb() * 255).round().astype(np.uint8)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[3, 4] = 128
    path = tmp_path / f"t{ext}"
    if ext == ".png":
        _save_pil(path, np.dstack([rgb, alpha]))
    else:
        tifffile.imwrite(path, np.dstack([rgb, alpha]), photometric="rgb", extrasamples=[2])
    with pytest.raises(ImageError) as excinfo:
        read_image(path)
    _assert_one_line_error(excinfo, str(path), "transparency")


def test_rgba_tiff_opaque_reads_as_rgb(tmp_path):
    rgb = (_rgb() * 255).round().astype(np.uint8)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    tifffile.imwrite(tmp_path / "o.tif", rgba, photometric="rgb", extrasamples=[2])
    out = read_image(tmp_path / "o.tif")
    np.testing.assert_array_equal(np.rint(out * 255), rgb)


def test_gray_alpha_opaque_and_transparent(tmp_path):
    gray = (_gray() * 255).round().astype(np.uint8)
    la = np.dstack([gray, np.full(gray.shape, 255, np.uint8)])
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    out = read_image(tmp_path / "la.png")
    assert out.shape == (48, 40, 1)
    np.testing.assert_array_equal(np.rint(out[..., 0] * 255), gray)

    la[0, 0, 1] = 0
    Image.fromarray(la, mode="LA").save(tmp_path / "la_t.png")
    with pytest.raises(ImageError, match="transparency"):
        read_image(tmp_path / "la_t.png")


def test_palette_colour_image(tmp_path):
    rgb = (_rgb() * 255).round().astype(np.uint8)
    pal = Image.fromarray(rgb).quantize(colors=32)
    pal.save(tmp_path / "p.png")
    expected = np.asarray(pal.convert("RGB"))
    out = read_image(tmp_path / "p.png")
    assert out.shape == (48, 40, 3)
    np.testing.assert_array_equal(np.rint(out * 255), expected)
    pal.save(tmp_path / "p.bmp")
    np.testing.assert_array_equal(np.rint(read_image(tmp_path / "p.bmp") * 255), expected)


def test_palette_with_gray_entries_reads_as_gray(tmp_path):
    gray = (_gray() * 255).round().astype(np.uint8)
    im = Image.fromarray(gray).convert("P")  # converting L -> P keeps a gray palette
    im.putpalette([v for i in range(256) for v in (i, i, i)])
    im.save(tmp_path / "pg.png")
    out = read_image(tmp_path / "pg.png")
    assert out.shape == (48, 40, 1)


def test_palette_with_transparent_entry_is_an_error(tmp_path):
    rgb = (_rgb() * 255).round().astype(np.uint8)
    pal = Image.fromarray(rgb).quantize(colors=16)
    used = int(np.asarray(pal)[0, 0])
    pal.save(tmp_path / "pt.png", transparency=used)
    with pytest.raises(ImageError, match="transparency"):
        read_image(tmp_path / "pt.png")


def test_rgb_colour_key_transparency_is_an_error(tmp_path):
    rgb = (_rgb() * 255).round().astype(np.uint8)
    key = tuple(int(v) for v in rgb[5, 5])
    Image.fromarray(rgb).save(tmp_path / "key.png", transparency=key)
    with pytest.raises(ImageError, match="transparency"):
        read_image(tmp_path / "key.png")


def test_bilevel_image(tmp_path):
    bits = _gray() > 0.5
    Image.fromarray(bits).save(tmp_path / "b.png")
    out = read_image(tmp_path / "b.png")
    np.testing.assert_array_equal(out[..., 0], bits.astype(np.float32))


# ------------------------------------------------------------------------------------------
# the 16-bit PNG codec
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_codec_round_trip(channels, dtype):
    info = np.iinfo(dtype)
    pixels = np.random.default_rng(channels).integers(
        0, int(info.max) + 1, (29, 31, channels), dtype=np.int64
    ).astype(dtype)
    pixels[:10] = pixels[:1]  # smooth region: different filters get chosen
    data = _png.encode_png(pixels)
    decoded = _png.decode_png(data)
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded, pixels)


@pytest.mark.parametrize("channels", [3, 4])
def test_decoder_unfilters_every_filter_type_16bit(tmp_path, channels):
    rng = np.random.default_rng(7)
    h, w = len(FILTER_SEQUENCE), 13
    # a smooth ramp plus noise, so predictions and wrap-around both matter
    ramp = np.linspace(0, 60000, w)[None, :, None] + np.linspace(0, 3000, h)[:, None, None]
    pixels = np.clip(ramp + rng.integers(-3000, 3000, (h, w, channels)), 0, 65535)
    pixels = pixels.astype(np.uint16)
    pixels[2, 3] = [65535] * channels
    pixels[3, 3] = [0] * channels
    if channels == 4:
        pixels[..., 3] = 65535  # opaque: read_image accepts it
    data = _manual_png(pixels, FILTER_SEQUENCE)
    np.testing.assert_array_equal(_png.decode_png(data), pixels)
    path = tmp_path / "filters.png"
    path.write_bytes(data)
    out = read_image(path)
    np.testing.assert_array_equal(np.rint(out * 65535).astype(np.uint16), pixels[..., :3])


def test_test_encoder_agrees_with_pillow_8bit():
    """Sanity check of the test-local filter encoder itself against Pillow (8-bit RGB)."""
    rgb = (_rgb()[: len(FILTER_SEQUENCE), :13] * 255).round().astype(np.uint8)
    data = _manual_png(rgb, FILTER_SEQUENCE)
    import io as _io

    np.testing.assert_array_equal(np.asarray(Image.open(_io.BytesIO(data))), rgb)
    np.testing.assert_array_equal(_png.decode_png(data), rgb)


def test_decoder_long_runs_of_paeth_and_average_rows():
    """Runs longer than the image width (wavefront blocks are capped) and a 1-pixel width."""
    rng = np.random.default_rng(3)
    for h, w in [(40, 3), (20, 1), (3, 17)]:
        pixels = rng.integers(0, 65536, (h, w, 3)).astype(np.uint16)
        types = [4 if (y // 7) % 2 == 0 else 3 for y in range(h)]
        np.testing.assert_array_equal(_png.decode_png(_manual_png(pixels, types)), pixels)


def test_16bit_gray_pillow_and_numpy_decoder_agree(tmp_path):
    gray = np.rint(_gray() * 65535).astype(np.uint16)
    gray[0, 0] = 1  # a value that is not a multiple of 257
    path = tmp_path / "g16.png"
    Image.fromarray(gray).save(path)  # Pillow writes mode I;16 as 16-bit gray
    ours = _png.decode_png(path.read_bytes())
    np.testing.assert_array_equal(ours[..., 0], gray)
    via_read = read_image(path)  # goes through Pillow
    np.testing.assert_array_equal(np.rint(via_read[..., 0] * 65535).astype(np.uint16), gray)
    # and the other way round: our encoder's 16-bit gray file decoded by Pillow
    path2 = tmp_path / "g16_ours.png"
    path2.write_bytes(_png.encode_png(gray))
    np.testing.assert_array_equal(np.asarray(Image.open(path2)), gray)


def test_16bit_rgba_and_gray_alpha_pngs(tmp_path):
    rgb = np.rint(_rgb() * 65535).astype(np.uint16)
    opaque = np.dstack([rgb, np.full(rgb.shape[:2], 65535, np.uint16)])
    (tmp_path / "o.png").write_bytes(_png.encode_png(opaque))
    out = read_image(tmp_path / "o.png")
    np.testing.assert_array_equal(np.rint(out * 65535).astype(np.uint16), rgb)

    opaque[1, 1, 3] = 65534
    (tmp_path / "t.png").write_bytes(_png.encode_png(opaque))
    with pytest.raises(ImageError, match="transparency"):
        read_image(tmp_path / "t.png")

    gray = rgb[..., 0]
    ga = np.dstack([gray, np.full(gray.shape, 65535, np.uint16)])
    (tmp_path / "ga.png").write_bytes(_png.encode_png(ga))
    out = read_image(tmp_path / "ga.png")
    assert out.shape == (48, 40, 1)
    np.testing.assert_array_equal(np.rint(out[..., 0] * 65535).astype(np.uint16), gray)


def test_16bit_rgb_trns_colour_key(tmp_path):
    rgb = np.rint(_rgb() * 65535).astype(np.uint16)
    data = _png.encode_png(rgb)
    key = _chunk(b"tRNS", struct.pack(">3H", *(int(v) for v in rgb[2, 2])))
    iend = data.rindex(b"IEND") - 4
    (tmp_path / "k.png").write_bytes(data[:iend] + key + data[iend:])
    with pytest.raises(ImageError, match="transparency"):
        read_image(tmp_path / "k.png")


def test_interlaced_16bit_colour_png_is_an_error(tmp_path):
    pixels = np.zeros((4, 4, 3), np.uint16)
    path = tmp_path / "inter.png"
    path.write_bytes(_manual_png(pixels, [0] * 4, interlace=1))
    with pytest.raises(ImageError) as excinfo:
        read_image(path)
    _assert_one_line_error(excinfo, str(path), "interlaced")


@pytest.mark.parametrize("bits", [8, 16])
def test_corrupt_png_crc_and_truncation(tmp_path, bits):
    path = tmp_path / "c.png"
    write_image(path, _rgb(), bits=bits)
    data = bytearray(path.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 10] ^= 0xFF  # flip a byte inside the compressed data
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError) as excinfo:
        read_image(path)
    _assert_one_line_error(excinfo, str(path))

    write_image(path, _rgb(), bits=bits, overwrite=True)
    path.write_bytes(path.read_bytes()[: len(data) // 2])
    with pytest.raises(ImageError) as excinfo:
        read_image(path)
    _assert_one_line_error(excinfo, str(path))


def test_decoder_rejects_bad_filter_type():
    pixels = np.zeros((2, 2, 3), np.uint16)
    good = _manual_png(pixels, [0, 0])
    raw = bytearray(zlib.decompress(_png_idat(good)))
    raw[0] = 7
    bad = (
        _png.SIGNATURE
        + _chunk(b"IHDR", good[16:29])
        + _chunk(b"IDAT", zlib.compress(bytes(raw)))
        + _chunk(b"IEND", b"")
    )
    with pytest.raises(_png.PngError, match="filter type 7"):
        _png.decode_png(bad)


def _png_idat(data: bytes) -> bytes:
    out, pos = b"", 8
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        if ctype == b"IDAT":
            out += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return out


def test_encoder_writes_valid_crcs():
    data = _png.encode_png(np.arange(12, dtype=np.uint16).reshape(2, 2, 3))
    pos, seen = 8, []
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(ctype + payload) & 0xFFFFFFFF
        seen.append(ctype)
        pos += 12 + length
    assert seen[0] == b"IHDR" and seen[-1] == b"IEND" and b"IDAT" in seen


# ------------------------------------------------------------------------------------------
# TIFF specifics
# ------------------------------------------------------------------------------------------


def test_float_tiff_in_range_is_accepted(tmp_path):
    img = _rgb().astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", img, photometric="rgb")
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif"), img)


def test_float_tiff_out_of_range_is_an_error(tmp_path):
    img = _gray().astype(np.float32) * 2.0
    path = tmp_path / "f2.tif"
    tifffile.imwrite(path, img)
    with pytest.raises(ImageError) as excinfo:
        read_image(path)
    _assert_one_line_error(excinfo, str(path), "[0, 1]")


def test_tiff_with_too_many_channels_is_an_error(tmp_path):
    arr = np.zeros((8, 8, 5), np.uint8)
    path = tmp_path / "five.tif"
    tifffile.imwrite(path, arr, photometric="minisblack", planarconfig="contig")
    with pytest.raises(ImageError) as excinfo:
        read_image(path)
    _assert_one_line_error(excinfo, str(path))


def test_planar_rgb_tiff(tmp_path):
    rgb = (_rgb() * 255).round().astype(np.uint8)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb",
                     planarconfig="separate")
    np.testing.assert_array_equal(np.rint(read_image(tmp_path / "planar.tif") * 255), rgb)


def test_tiff_via_pillow_palette(tmp_path):
    rgb = (_rgb() * 255).round().astype(np.uint8)
    pal = Image.fromarray(rgb).quantize(colors=8)
    pal.save(tmp_path / "pal.tif")
    out = read_image(tmp_path / "pal.tif")
    np.testing.assert_array_equal(np.rint(out * 255), np.asarray(pal.convert("RGB")))


# ------------------------------------------------------------------------------------------
# reading errors
# ------------------------------------------------------------------------------------------


def test_read_errors(tmp_path):
    cases = {
        "missing.png": None,
        "empty.png": b"",
        "text.png": b"hello, this is not an image\n",
        "random.jpg": bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)),
        "corrupt.jpg": b"\xff\xd8\xff\xe0" + b"\x00" * 50,
        "corrupt.bmp": b"BM" + b"\x00" * 60,
        "corrupt.tif": b"II*\x00" + b"\xff" * 40,
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(ImageError) as excinfo:
            read_image(path)
        _assert_one_line_error(excinfo, str(path))
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="empty"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match="not a PNG/JPEG/BMP/TIFF file"):
        read_image(tmp_path / "text.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageError, match="directory") as excinfo:
        read_image(tmp_path / "dir.png")
    _assert_one_line_error(excinfo, "dir.png")


def test_truncated_jpeg_is_an_error(tmp_path):
    path = tmp_path / "t.jpg"
    write_image(path, _rgb())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageError) as excinfo:
        read_image(path)
    _assert_one_line_error(excinfo, str(path))


def test_read_errors_are_value_errors(tmp_path):
    with pytest.raises(ValueError):
        read_image(tmp_path / "nope.png")
    assert issubclass(ImageError, PnpRgmError)


def test_read_rejects_non_path():
    with pytest.raises(ImageError):
        read_image(42)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# writing errors, overwrite protection, atomicity
# ------------------------------------------------------------------------------------------


def test_unknown_extension_lists_valid_ones(tmp_path):
    with pytest.raises(ImageError) as excinfo:
        write_image(tmp_path / "x.gif", _gray())
    _assert_one_line_error(excinfo, "x.gif", ".png", ".tif", ".jpg", ".bmp")
    with pytest.raises(ImageError):
        write_image(tmp_path / "noext", _gray())
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".bmp"])
def test_16bit_needs_png_or_tiff(tmp_path, ext):
    with pytest.raises(ImageError) as excinfo:
        write_image(tmp_path / f"x{ext}", _rgb(), bits=16)
    _assert_one_line_error(excinfo, "bits=16")
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("bits", [0, 12, 32, True])
def test_invalid_bits(tmp_path, bits):
    with pytest.raises(ImageError, match="bits"):
        write_image(tmp_path / "x.png", _rgb(), bits=bits)


def test_overwrite_protection(tmp_path):
    path = tmp_path / "out.png"
    write_image(path, _gray())
    before = path.read_bytes()
    with pytest.raises(OutputExistsError) as excinfo:
        write_image(path, 1.0 - _gray())
    _assert_one_line_error(excinfo, str(path), "overwrite=True", "--overwrite")
    assert path.read_bytes() == before
    write_image(path, 1.0 - _gray(), overwrite=True)
    assert path.read_bytes() != before
    assert _listing(tmp_path) == ["out.png"]


def test_overwrite_race_does_not_clobber(tmp_path, monkeypatch):
    """A file that appears while encoding is not replaced without overwrite=True."""
    path = tmp_path / "race.png"
    real = pio._WRITERS["PNG"]

    def writer(fh, q):
        path.write_bytes(b"someone else")
        real(fh, q)

    monkeypatch.setitem(pio._WRITERS, "PNG", writer)
    with pytest.raises(OutputExistsError):
        write_image(path, _gray())
    assert path.read_bytes() == b"someone else"
    assert _listing(tmp_path) == ["race.png"]


def test_write_to_directory_path_is_an_error(tmp_path):
    (tmp_path / "d.png").mkdir()
    with pytest.raises(ImageError, match="directory"):
        write_image(tmp_path / "d.png", _gray(), overwrite=True)


def test_failed_encoder_leaves_nothing_behind(tmp_path, monkeypatch):
    def boom(pixels, **kw):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(pio._png, "encode_png", boom)
    with pytest.raises(RuntimeError, match="exploded"):
        write_image(tmp_path / "x16.png", _rgb(), bits=16)
    assert _listing(tmp_path) == []


def test_partial_write_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    def partial(fh, q):
        fh.write(b"\x89PNG partial data")
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(pio._WRITERS, "PNG", partial)
    with pytest.raises(ImageError) as excinfo:
        write_image(tmp_path / "x.png", _rgb())
    _assert_one_line_error(excinfo, "x.png", "No space left on device")
    assert _listing(tmp_path) == []


def test_failed_overwrite_keeps_the_original(tmp_path, monkeypatch):
    path = tmp_path / "keep.tif"
    write_image(path, _gray())
    before = path.read_bytes()

    def boom(fh, q):
        fh.write(b"II*\x00garbage")
        raise KeyboardInterrupt

    monkeypatch.setitem(pio._WRITERS, "TIFF", boom)
    with pytest.raises(KeyboardInterrupt):
        write_image(path, 1.0 - _gray(), overwrite=True)
    assert path.read_bytes() == before
    assert _listing(tmp_path) == ["keep.tif"]


def test_failed_replace_leaves_no_temp_file(tmp_path, monkeypatch):
    def no_replace(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pio.os, "replace", no_replace)
    with pytest.raises(ImageError, match="Permission denied"):
        write_image(tmp_path / "x.bmp", _rgb(), overwrite=True)
    assert _listing(tmp_path) == []


@pytest.mark.parametrize(
    "image,error",
    [
        (np.zeros((8, 8, 4)), ShapeError),
        (np.zeros((8, 8, 2)), ShapeError),
        (np.zeros((2, 8, 8, 3)), ShapeError),
        (np.zeros(8), ShapeError),
        (np.zeros((0, 8)), ShapeError),
        (np.zeros((8, 8), np.uint8), ImageError),
        (np.full((8, 8), np.nan), ImageError),
        (torch.zeros(2, 3, 8, 8), ShapeError),
        (torch.zeros(4, 8, 8), ShapeError),
        (torch.zeros(3, 8, 8, dtype=torch.uint8), ImageError),
        ([[0.0, 1.0]], ImageError),
    ],
)
def test_bad_images_to_write(tmp_path, image, error):
    with pytest.raises(error) as excinfo:
        write_image(tmp_path / "bad.png", image)
    _assert_one_line_error(excinfo, "bad.png")
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("shape", [(3, 48, 40), (1, 3, 48, 40), (1, 48, 40), (1, 1, 48, 40)])
def test_write_torch_tensors(tmp_path, shape):
    c = shape[-3]
    img = _rgb() if c == 3 else _gray()[:, :, None]
    tensor = torch.from_numpy(img.transpose(2, 0, 1).copy()).float().reshape(shape)
    tensor.requires_grad_(True)
    path = tmp_path / "t.png"
    write_image(path, tensor)
    out = read_image(path)
    assert out.shape == (48, 40, c)
    np.testing.assert_array_equal(np.rint(out * 255), _levels(img, 8))


# ------------------------------------------------------------------------------------------
# tensor conversion
# ------------------------------------------------------------------------------------------


def test_image_tensor_round_trip():
    img = _rgb().astype(np.float32)
    t = image_to_tensor(img)
    assert t.shape == (1, 3, 48, 40) and t.dtype == torch.float32
    np.testing.assert_array_equal(t[0, 1].numpy(), img[..., 1])
    back = tensor_to_image(t)
    assert back.shape == (48, 40, 3) and back.dtype == np.float32
    np.testing.assert_array_equal(back, img)
    np.testing.assert_array_equal(tensor_to_image(t[0]), img)


def test_tensor_conversion_does_not_share_memory():
    img = _gray()[:, :, None].astype(np.float32)
    t = image_to_tensor(img)
    t.zero_()
    assert img.max() > 0
    t = image_to_tensor(img)
    back = tensor_to_image(t)
    back[:] = 0
    assert t.max() > 0


def test_tensor_conversion_details():
    gray2d = _gray()
    t = image_to_tensor(gray2d)  # float64 (H, W) -> float32 (1, 1, H, W)
    assert t.shape == (1, 1, 48, 40) and t.dtype == torch.float32
    grad = torch.rand(1, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    out = tensor_to_image(grad)
    assert out.shape == (5, 6, 3) and out.dtype == np.float32


@pytest.mark.parametrize(
    "bad", [torch.zeros(2, 3, 4, 4), torch.zeros(4, 4), torch.zeros(1, 1, 1, 4, 4)]
)
def test_tensor_to_image_rejects_bad_shapes(bad):
    with pytest.raises(ShapeError) as excinfo:
        tensor_to_image(bad)
    _assert_one_line_error(excinfo, str(tuple(bad.shape)))


def test_image_to_tensor_rejects_bad_input():
    with pytest.raises(ShapeError):
        image_to_tensor(np.zeros((1, 2, 3, 4), np.float32))
    with pytest.raises(ImageError, match="uint8"):
        image_to_tensor(np.zeros((4, 4, 3), np.uint8))
