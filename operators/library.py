"""Concrete SVD operators. Each class gives only its SVD pieces (see :mod:`.base`)."""
from __future__ import annotations

import math

import numpy as np
import torch

from pnp_rgm.errors import ShapeError, TaskError

from .base import SVDOperator


def _orthonormal_with_first(v: np.ndarray) -> np.ndarray:
    """An orthonormal ``n x n`` matrix whose first column is ``v / ‖v‖`` (positive sign)."""
    v = np.asarray(v, dtype=np.float64).reshape(1, -1)
    _, _, vh = np.linalg.svd(v)  # rows of vh: orthonormal basis, vh[0] = ±v/|v|
    q = vh.T.copy()
    if q[:, 0] @ v[0] < 0:
        q[:, 0] *= -1
    return q


class Identity(SVDOperator):
    """``denoise``: ``y = x`` (U = V = I, s = 1). With noise, ``y = x + σ n``."""

    def __init__(self, shape):
        super().__init__(shape, shape)
        self.register("s", torch.ones(self.in_numel, dtype=torch.float64))

    def Vt(self, x):
        return x.reshape(x.shape[0], -1)

    def V(self, c):
        return c.reshape(c.shape[0], *self.in_shape)

    Ut = Vt
    U = V


class BlockAverage(SVDOperator):
    """``srN``: ``y[c, i, j] = mean of the N×N block x[c, N i:N i+N, N j:N j+N]``.

    Per block the operator is the row vector ``1ᵀ/N²`` with one singular value ``1/N`` and
    right singular vector ``1/N``; an orthonormal ``N²×N²`` basis completes V (as DDRM's
    ``SuperResolution``). U is the identity on the ``(C, H/N, W/N)`` observation.
    Spectral layout: the ``C·H·W/N²`` block means (times N) first, then the detail coefficients.
    """

    def __init__(self, shape, factor: int):
        c, h, w = shape
        self.factor = n = int(factor)
        super().__init__(shape, (c, h // n, w // n))
        self.register("vb", torch.from_numpy(_orthonormal_with_first(np.ones(n * n))))
        self.register("s", torch.full((self.out_numel,), 1.0 / n, dtype=torch.float64))

    def _blocks(self, x):  # (B,C,H,W) -> (B,C,h,w,N²)
        b, c, h, w = x.shape
        n = self.factor
        return x.reshape(b, c, h // n, n, w // n, n).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h // n, w // n, n * n)

    def Vt(self, x):
        z = self._blocks(x) @ self.buf("vb", x)  # (B,C,h,w,N²)
        b = x.shape[0]
        return torch.cat([z[..., 0].reshape(b, -1), z[..., 1:].reshape(b, -1)], dim=1)

    def V(self, c):
        b = c.shape[0]
        ch, h, w = self.out_shape
        n = self.factor
        k = self.out_numel
        z = torch.cat([c[:, :k].reshape(b, ch, h, w, 1), c[:, k:].reshape(b, ch, h, w, n * n - 1)], dim=-1)
        blocks = z @ self.buf("vb", c).T
        return blocks.reshape(b, ch, h, w, n, n).permute(0, 1, 2, 4, 3, 5).reshape(b, *self.in_shape)

    def Ut(self, y):
        return y.reshape(y.shape[0], -1)

    def U(self, c):
        return c.reshape(c.shape[0], *self.out_shape)


class Colorize(SVDOperator):
    """``colorize``: ``y = (R + G + B) / 3`` per pixel.

    Per pixel the operator is ``[1/3, 1/3, 1/3]``: one singular value ``1/√3``, right singular
    vector ``(1, 1, 1)/√3``; V completes it to an orthonormal 3×3 colour transform, U = 1.
    Spectral layout: channel-major after the colour transform (luminance first).
    """

    def __init__(self, shape):
        c, h, w = shape
        super().__init__(shape, (1, h, w))
        self.register("v3", torch.from_numpy(_orthonormal_with_first(np.ones(3))))
        self.register("s", torch.full((h * w,), 1.0 / math.sqrt(3.0), dtype=torch.float64))

    def Vt(self, x):
        return torch.einsum("bchw,cd->bdhw", x, self.buf("v3", x)).reshape(x.shape[0], -1)

    def V(self, c):
        z = c.reshape(c.shape[0], *self.in_shape)
        return torch.einsum("bdhw,cd->bchw", z, self.buf("v3", c))

    def Ut(self, y):
        return y.reshape(y.shape[0], -1)

    def U(self, c):
        return c.reshape(c.shape[0], *self.out_shape)


class Inpaint(SVDOperator):
    """``inpaint``: ``y = m ⊙ x`` for a binary mask ``m`` (1 = known), missing pixels observed as 0.

    ``A = diag(m)`` is its own SVD up to a permutation: V = U = the permutation that lists the
    known entries first; ``s = 1`` on the known entries. The mask is ``(H, W)`` (shared by all
    channels) or ``(C, H, W)``.
    """

    def __init__(self, shape, mask):
        m = torch.as_tensor(np.asarray(mask)).to(torch.bool)
        if m.dim() == 2:
            m = m[None].expand(shape[0], -1, -1)
        if tuple(m.shape) != tuple(shape):
            raise ShapeError(f"inpaint mask has shape {tuple(torch.as_tensor(np.asarray(mask)).shape)}; "
                             f"expected (H, W) = {tuple(shape[1:])} or (C, H, W) = {tuple(shape)}")
        flat = m.reshape(-1)
        known = int(flat.sum())
        if known == 0:
            raise TaskError("inpaint mask keeps no pixel; at least one pixel must be known (mask value 1)")
        super().__init__(shape, shape)
        self.mask = m.clone()
        perm = torch.cat([torch.nonzero(flat).flatten(), torch.nonzero(~flat).flatten()])
        self.register("perm", perm)
        self.register("iperm", torch.argsort(perm))
        self.register("s", torch.ones(known, dtype=torch.float64))

    def Vt(self, x):
        return x.reshape(x.shape[0], -1)[:, self.buf("perm", x)]

    def V(self, c):
        return c[:, self.buf("iperm", c)].reshape(c.shape[0], *self.in_shape)

    Ut = Vt
    U = V


class Separable(SVDOperator):
    """A per-channel separable operator ``Y = A_col X A_rowᵀ`` (Kronecker SVD).

    With ``A_col = U_c S_c V_cᵀ`` (``m1×n1``, acting on rows/height) and
    ``A_row = U_r S_r V_rᵀ`` (``m2×n2``, acting on columns/width), ``A = A_col ⊗ A_row`` has
    ``V = V_c ⊗ V_r``, ``U = U_c ⊗ U_r`` and singular values ``outer(S_c, S_r)``. Used for
    blur (square, zero boundary) and bicubic downsampling (rectangular).
    Spectral layout: for each channel the ``r1×r2`` block of paired coefficients first, then
    the rest, where ``r = min(m, n)``.
    """

    def __init__(self, shape, a_col: np.ndarray, a_row: np.ndarray):
        c, h, w = shape
        a_col = np.asarray(a_col, dtype=np.float64)
        a_row = np.asarray(a_row, dtype=np.float64)
        if a_col.shape[1] != h or a_row.shape[1] != w:
            raise ShapeError(f"separable factors {a_col.shape} and {a_row.shape} do not act on an image of "
                             f"height {h} and width {w}")
        m1, m2 = a_col.shape[0], a_row.shape[0]
        super().__init__(shape, (c, m1, m2))
        uc, sc, vch = np.linalg.svd(a_col)
        ur, sr, vrh = np.linalg.svd(a_row)
        self.register("uc", torch.from_numpy(uc))
        self.register("vc", torch.from_numpy(vch.T.copy()))
        self.register("ur", torch.from_numpy(ur))
        self.register("vr", torch.from_numpy(vrh.T.copy()))
        s2 = np.clip(np.outer(sc, sr), 0.0, None)  # (r1, r2)
        self.register("s", torch.from_numpy(np.tile(s2.reshape(-1), c)))
        r1, r2 = s2.shape
        self.register("perm_in", self._layout(c, h, w, r1, r2))
        self.register("iperm_in", torch.argsort(self._buffers["perm_in"]))
        self.register("perm_out", self._layout(c, m1, m2, r1, r2))
        self.register("iperm_out", torch.argsort(self._buffers["perm_out"]))

    @staticmethod
    def _layout(c, n1, n2, r1, r2) -> torch.Tensor:
        """Flat indices of a ``(c, n1, n2)`` array: every ``[:, :r1, :r2]`` entry first."""
        idx = torch.arange(c * n1 * n2).reshape(c, n1, n2)
        head = torch.zeros(c, n1, n2, dtype=torch.bool)
        head[:, :r1, :r2] = True
        return torch.cat([idx[head], idx[~head]])

    def Vt(self, x):
        z = self.buf("vc", x).T @ x @ self.buf("vr", x)
        return z.reshape(x.shape[0], -1)[:, self.buf("perm_in", x)]

    def V(self, c):
        z = c[:, self.buf("iperm_in", c)].reshape(c.shape[0], *self.in_shape)
        return self.buf("vc", c) @ z @ self.buf("vr", c).T

    def Ut(self, y):
        z = self.buf("uc", y).T @ y @ self.buf("ur", y)
        return z.reshape(y.shape[0], -1)[:, self.buf("perm_out", y)]

    def U(self, c):
        z = c[:, self.buf("iperm_out", c)].reshape(c.shape[0], *self.out_shape)
        return self.buf("uc", c) @ z @ self.buf("ur", c).T


class MatrixOperator(SVDOperator):
    """A dense matrix ``A`` (``M × N``) acting on the flattened image; for small problems and tests.

    ``out_shape`` defaults to ``(1, 1, M)``.
    """

    def __init__(self, shape, matrix, out_shape=None):
        a = np.asarray(matrix, dtype=np.float64)
        n = math.prod(shape)
        if a.ndim != 2 or a.shape[1] != n:
            raise ShapeError(f"matrix has shape {a.shape}; expected (M, {n}) for images of shape {tuple(shape)}")
        out_shape = (1, 1, a.shape[0]) if out_shape is None else tuple(out_shape)
        if math.prod(out_shape) != a.shape[0]:
            raise ShapeError(f"out_shape {out_shape} has {math.prod(out_shape)} entries; the matrix has {a.shape[0]} rows")
        super().__init__(shape, out_shape)
        u, s, vh = np.linalg.svd(a)
        self.register("u", torch.from_numpy(u))
        self.register("vh", torch.from_numpy(vh))
        self.register("s", torch.from_numpy(s))

    def Vt(self, x):
        return x.reshape(x.shape[0], -1) @ self.buf("vh", x).T

    def V(self, c):
        return (c @ self.buf("vh", c)).reshape(c.shape[0], *self.in_shape)

    def Ut(self, y):
        return y.reshape(y.shape[0], -1) @ self.buf("u", y)

    def U(self, c):
        return (c @ self.buf("u", c).T).reshape(c.shape[0], *self.out_shape)


# --------------------------------------------------------------------------- 1-D factors
def conv_matrix(kernel: np.ndarray, n: int, rows: tuple[int, int] | None = None) -> np.ndarray:
    """``n × n`` matrix of the 'same'-size correlation with an odd-length kernel, zero boundary:
    ``(A x)[i] = Σ_t kernel[t] · x[i + t − c]`` with ``c = len(kernel) // 2``.
    ``rows = (start, stop)``: only those rows, ``(stop − start) × n`` (a tile of a large image)."""
    kernel = np.asarray(kernel, dtype=np.float64)
    c = len(kernel) // 2
    r0, r1 = (0, n) if rows is None else rows
    a = np.zeros((r1 - r0, n))
    for t, kv in enumerate(kernel):
        off = t - c
        i = np.arange(max(r0, -off), min(r1, n - off))
        a[i - r0, i + off] += kv
    return a


def gaussian_kernel(size: int, width: float) -> np.ndarray:
    """Normalized 1-D Gaussian ``exp(−t²/(2·width²))``, ``t = −size//2 … size//2``."""
    t = np.arange(size) - size // 2
    k = np.exp(-(t**2) / (2.0 * width**2))
    return k / k.sum()


def uniform_kernel(size: int) -> np.ndarray:
    """Normalized 1-D box kernel of odd length ``size``."""
    return np.full(size, 1.0 / size)


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (a = −0.5, as MATLAB's ``imresize``)."""
    ax = np.abs(x)
    return np.where(
        ax <= 1, (a + 2) * ax**3 - (a + 3) * ax**2 + 1,
        np.where(ax < 2, a * ax**3 - 5 * a * ax**2 + 8 * a * ax - 4 * a, 0.0),
    )


def bicubic_down_matrix(n: int, factor: int, rows: tuple[int, int] | None = None) -> np.ndarray:
    """``(n/factor) × n`` matrix of antialiased bicubic downsampling (MATLAB ``imresize`` rule).

    Output sample ``i`` sits at input coordinate ``(i + ½)·factor − ½``; the cubic kernel is
    stretched by ``factor`` (support ``±2·factor``), taps beyond the border are mirrored
    (symmetric padding) and each row is normalized to sum to 1.
    ``rows = (start, stop)``: only those output samples, ``(stop − start) × n``.
    """
    r0, r1 = (0, n // factor) if rows is None else rows
    a = np.zeros((r1 - r0, n))
    for i in range(r0, r1):
        center = (i + 0.5) * factor - 0.5
        j = np.arange(math.floor(center - 2 * factor), math.ceil(center + 2 * factor) + 1)
        wts = _cubic((j - center) / factor)
        j = np.mod(j, 2 * n)  # symmetric extension has period 2n
        j = np.where(j >= n, 2 * n - 1 - j, j)
        np.add.at(a[i - r0], j, wts)
        a[i - r0] /= a[i - r0].sum()
    return a
