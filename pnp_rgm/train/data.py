"""Image-folder dataset with random crops and flips, and an infinite per-rank sampler."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from pnp_rgm.errors import ImageError
from pnp_rgm.io import IMAGE_EXTENSIONS, image_files

__all__ = ["IMAGE_EXTENSIONS", "list_images", "ImageFolder", "InfiniteSampler"]


MASK_DIR = "masks"  # masked training data: DATA/masks/<relative path of the image> (white = known)


def list_images(root: str | os.PathLike, skip_masks: bool = False) -> list[Path]:
    """All PNG/JPEG/BMP/TIFF files under ``root`` (recursive, sorted); ``skip_masks`` leaves out
    the ``root/masks`` folder of masked data."""
    root = Path(root)
    if not root.is_dir():
        raise ImageError(f"{root}: data folder not found")
    files = [p for p in image_files(root, recursive=True) if not p.name.startswith(".")
             and not (skip_masks and p.relative_to(root).parts[0] == MASK_DIR)]
    if not files:
        raise ImageError(f"{root}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files


def _header_size(path: Path) -> Optional[tuple[int, int]]:
    """(width, height) from an image file's header, or None if Pillow cannot tell (the full read
    reports the problem then)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return tuple(im.size)
    except Exception:  # Pillow raises many types for unreadable files; read_image explains them later
        return None


def _read(path: Path) -> np.ndarray:
    from pnp_rgm.io import read_image

    return read_image(path)


class ImageFolder(Dataset):
    """Random ``crop`` x ``crop`` patches (C, crop, crop) in [0, 1] of the images under ``root``.

    Gray images are repeated to 3 channels for colour models and colour images are converted to
    luma for gray models; images smaller than the crop are reflect-padded. ``cache`` keeps decoded
    images in RAM as uint8.

    ``degrade`` (a function of a whole (H, W, C) image) simulates a blurred or block-averaged
    dataset, before any noise. ``noise_sigma > 0`` simulates a noisy dataset from clean images: image ``i`` gets Gaussian noise of
    that std drawn from ``(noise_seed, i)``, the same at every load (not clipped; cached as float32).

    Masked data (``masked``): patches get one more channel, the mask (1 = known), and the image is
    zero where it is 0. The mask of image ``i`` is ``root/masks/<its relative path>`` or, with
    ``mask_missing > 0``, simulated: that fraction of its pixels removed at random, fixed by
    ``(noise_seed, i)``.

    ``scale = (lo, hi)``: a random zoom for clean data; each patch is cut from a window of
    ``crop / s`` pixels (at most the image's shorter side) and resized to ``crop`` (bilinear,
    antialiased when shrinking), ``s`` log-uniform in [lo, hi]."""

    def __init__(self, root, crop: int, channels: int = 3, hflip: bool = True, vflip: bool = False,
                 cache: bool = False, noise_sigma: float = 0.0, noise_seed: int = 0, masked: bool = False,
                 mask_missing: float = 0.0, degrade=None, scale: tuple[float, float] = (1.0, 1.0)) -> None:
        self.root = Path(root)
        self.files = list_images(root, skip_masks=masked)
        self.crop, self.channels, self.hflip, self.vflip = crop, channels, hflip, vflip
        self.noise_sigma, self.noise_seed = float(noise_sigma), int(noise_seed)
        self.masked, self.mask_missing = bool(masked), float(mask_missing)
        self.degrade = degrade
        self.scale = (float(scale[0]), float(scale[1]))
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale: need 0 < lo <= hi, got {scale}")
        if self.scale != (1.0, 1.0) and (self.masked or degrade is not None or self.noise_sigma > 0):
            raise ValueError("scale: a random zoom is for clean data (not masked, degraded or noised)")
        if self.masked and not self.mask_missing:  # before a run writes anything, not in a worker mid-epoch
            lost = [f for f in self.files if not self._mask_path(f).is_file()]
            if lost:
                raise ImageError(f"{self.root}: {len(lost)} of {len(self.files)} images have no mask, e.g. "
                                 f"{self._mask_path(lost[0])} (masked data needs one per image in {MASK_DIR}/, white = known)")
            for f in self.files:  # sizes from the file headers: cheap, and before anything is written
                a, b = _header_size(f), _header_size(self._mask_path(f))
                if a and b and a != b:
                    raise ImageError(f"{self._mask_path(f)}: mask is {b[0]}x{b[1]}, its image {a[0]}x{a[1]}")
        self.cache: Optional[dict[int, np.ndarray]] = {} if cache else None

    def __len__(self) -> int:
        return len(self.files)

    def check(self) -> None:
        """Raise the ImageError of the first file that is not an image: each header is read (cheap),
        and a file whose header Pillow cannot parse is read whole (formats only pnp_rgm.io decodes
        pass; a bad file fails with its one-line message), so before a run writes anything."""
        for f in self.files:
            if _header_size(f) is None:
                _read(f)

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` whole, (H, W, C) float32, as training sees it: channels converted, then
        degraded, noised and masked as configured (patches are crops of it)."""
        if self.cache is not None and i in self.cache:
            img = self.cache[i]
            return img if img.dtype == np.float32 else img.astype(np.float32) / 255.0
        img = _read(self.files[i])
        if img.ndim == 2:
            img = img[:, :, None]
        if self.channels == 3 and img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        elif self.channels == 1 and img.shape[2] == 3:
            img = (img @ np.array([0.299, 0.587, 0.114], np.float32))[:, :, None]
        if self.degrade is not None:
            img = self.degrade(img)
        if self.noise_sigma > 0:
            rng = np.random.default_rng([self.noise_seed, i])
            img = (img + self.noise_sigma * rng.standard_normal(img.shape)).astype(np.float32)
        if self.masked:
            m = self._mask(i, img.shape[:2]).astype(np.float32)[:, :, None]
            img = np.concatenate([img * m, m], axis=2)
        if self.cache is not None:  # a 0/1 mask channel and a masked 8-bit image stay exact in uint8
            exact8 = self.noise_sigma == 0 and self.degrade is None
            self.cache[i] = np.round(img * 255).astype(np.uint8) if exact8 else img
        return img

    def _mask_path(self, image: Path) -> Path:
        return self.root / MASK_DIR / image.relative_to(self.root)

    def _mask(self, i: int, shape: tuple[int, int]) -> np.ndarray:
        from pnp_rgm.operators.masks import mask_from_image, random_mask

        if self.mask_missing > 0:
            return random_mask(shape, self.mask_missing, seed=[self.noise_seed, i])
        path = self._mask_path(self.files[i])
        m = mask_from_image(_read(path))
        if m.shape != tuple(shape):
            raise ImageError(f"{path}: mask is {m.shape[1]}x{m.shape[0]}, its image {shape[1]}x{shape[0]}")
        return m

    def __getitem__(self, i: int) -> torch.Tensor:
        img = self.image(i)
        h, w = img.shape[:2]
        c = self.crop
        if self.scale != (1.0, 1.0):
            lo, hi = np.log(self.scale)
            c = min(max(1, int(round(self.crop / np.exp(np.random.uniform(lo, hi))))), h, w)
        if h < c or w < c:
            ph, pw = max(0, c - h), max(0, c - w)
            mode = "reflect" if ph < h and pw < w else "edge"
            img = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode=mode)
            h, w = img.shape[:2]
        y = np.random.randint(0, h - c + 1)
        x = np.random.randint(0, w - c + 1)
        patch = img[y:y + c, x:x + c]
        if c != self.crop:  # the zoom's window, resized to the crop
            t = torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1)))[None]
            t = torch.nn.functional.interpolate(t, size=(self.crop, self.crop), mode="bilinear",
                                                align_corners=False, antialias=c > self.crop)
            patch = t[0].numpy().transpose(1, 2, 0)
        if self.hflip and np.random.rand() < 0.5:
            patch = patch[:, ::-1]
        if self.vflip and np.random.rand() < 0.5:
            patch = patch[::-1]
        return torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1)))


class InfiniteSampler(Sampler):
    """Endless shuffled indices; rank r of w takes every w-th index of a shared permutation."""

    def __init__(self, n: int, rank: int = 0, world: int = 1, seed: int = 0) -> None:
        self.n, self.rank, self.world, self.seed = n, rank, world, seed

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        epoch = 0
        while True:
            g.manual_seed(self.seed * 1000003 + epoch)
            perm = torch.randperm(self.n, generator=g).tolist()
            if len(perm) < self.world:
                perm = perm * (self.world // len(perm) + 1)
            yield from perm[self.rank::self.world]
            epoch += 1


def unwrap_worker_error(exc: Exception) -> Exception:
    """The same error with its own message: a DataLoader worker re-raises it in the main process
    with "Caught X in DataLoader worker ..." and the worker's traceback prepended."""
    msg = str(exc)
    if "Original Traceback" not in msg:
        return exc
    last = msg.rstrip().splitlines()[-1]
    prefix = f"{type(exc).__module__}.{type(exc).__qualname__}: "
    return type(exc)(last[len(prefix):] if last.startswith(prefix) else last)


def worker_init(worker_id: int) -> None:
    np.random.seed(torch.initial_seed() % 2**32)
