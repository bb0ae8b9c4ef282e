"""The SVD operator base class.

Every degradation is a linear map ``A: R^N -> R^M`` between image tensors, given by its
singular value decomposition ``A = U diag(s) V^T`` (as in DDRM's ``H_functions`` and
deepinv's ``DecomposablePhysics``). A subclass supplies only the four orthogonal transforms
and the singular values:

* ``Vt(x)``: image ``(B, *in_shape)``  -> spectral coefficients ``(B, N)``
* ``V(c)``:  spectral ``(B, N)``       -> image ``(B, *in_shape)``
* ``Ut(y)``: observation ``(B, *out_shape)`` -> spectral ``(B, M)``
* ``U(c)``:  spectral ``(B, M)``       -> observation ``(B, *out_shape)``
* ``singulars(like)``: the ``k <= min(M, N)`` singular values (zeros allowed), which pair with
  the *first* ``k`` coefficients of both spectral vectors; the remaining ``N - k`` input
  coefficients span the null space and the remaining ``M - k`` output coefficients are
  never reached by ``A`` (only inpainting has any: the missing pixels, observed as 0).

Everything else — ``forward``, ``adjoint``, ``pinv``, ``prox_l2`` — is written once here, exactly,
in the spectral domain. Buffers are stored in float64 and cast lazily to the dtype and device
of the tensor they are applied to, so one operator serves float32 and float64, CPU and GPU.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Union

import torch

from pnp_rgm.errors import ShapeError, TaskError

GammaLike = Union[float, torch.Tensor]


class SVDOperator(ABC):
    """A linear operator ``y = A x`` known through its SVD ``A = U diag(s) V^T``.

    Parameters
    ----------
    in_shape:
        ``(C, H, W)`` of the clean image ``x``.
    out_shape:
        ``(C', H', W')`` of the observation ``y``.
    """

    #: task name, set by :func:`pnp_rgm.operators.make_operator`
    name: str = "operator"
    #: an operator of a window of a larger image (``make_operator(..., window=...)``): the slices
    #: ``(rows, cols)`` of its input that are the window's own clean pixels; ``None``: all of it
    crop = None

    def __init__(self, in_shape: tuple[int, int, int], out_shape: tuple[int, int, int]):
        self.in_shape = tuple(int(v) for v in in_shape)
        self.out_shape = tuple(int(v) for v in out_shape)
        self._buffers: dict[str, torch.Tensor] = {}
        self._cache: dict[tuple, torch.Tensor] = {}

    # ------------------------------------------------------------------ buffers
    def register(self, name: str, value: torch.Tensor) -> None:
        """Store a constant (float buffers in float64, index buffers as int64) on the CPU."""
        value = torch.as_tensor(value)
        if value.is_floating_point():
            value = value.to(torch.float64)
        self._buffers[name] = value.detach().cpu()

    def buf(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """Buffer ``name`` on ``like``'s device (and in its dtype, for float buffers)."""
        base = self._buffers[name]
        dtype = like.dtype if base.is_floating_point() else base.dtype
        key = (name, dtype, like.device)
        out = self._cache.get(key)
        if out is None:
            out = base.to(device=like.device, dtype=dtype)
            self._cache[key] = out
        return out

    # ------------------------------------------------------------ SVD pieces
    @abstractmethod
    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        """Image ``(B, *in_shape)`` -> spectral coefficients ``(B, N)``."""

    @abstractmethod
    def V(self, c: torch.Tensor) -> torch.Tensor:
        """Spectral coefficients ``(B, N)`` -> image ``(B, *in_shape)``."""

    @abstractmethod
    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        """Observation ``(B, *out_shape)`` -> spectral coefficients ``(B, M)``."""

    @abstractmethod
    def U(self, c: torch.Tensor) -> torch.Tensor:
        """Spectral coefficients ``(B, M)`` -> observation ``(B, *out_shape)``."""

    def singulars(self, like: torch.Tensor | None = None) -> torch.Tensor:
        """The ``k`` singular values (``>= 0``), paired with the first ``k`` coefficients."""
        return self.buf("s", like if like is not None else self._buffers["s"])

    # ------------------------------------------------------------- sizes
    @property
    def in_numel(self) -> int:
        """``N``, the number of unknowns."""
        return math.prod(self.in_shape)

    @property
    def out_numel(self) -> int:
        """``M``, the number of measurements."""
        return math.prod(self.out_shape)

    @property
    def rank(self) -> int:
        """``k``, the number of singular values (some may be zero)."""
        return int(self._buffers["s"].numel())

    # ------------------------------------------------------------- checks
    def _check(self, t: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
        if not isinstance(t, torch.Tensor):
            raise ShapeError(f"{what} must be a torch.Tensor of shape (B, {', '.join(map(str, shape))}), "
                             f"got {type(t).__name__}")
        if t.dim() != 4 or tuple(t.shape[1:]) != shape:
            raise ShapeError(f"{what} has shape {tuple(t.shape)}; operator '{self.name}' expects "
                             f"(B, {', '.join(map(str, shape))})")
        if not t.is_floating_point():
            raise ShapeError(f"{what} has dtype {t.dtype}; expected a floating-point tensor")

    def V_head(self, c: torch.Tensor) -> torch.Tensor:
        """``V`` of leading spectral coefficients ``(B, j)``, ``j <= N``, the rest taken as zero: the
        image spanned by the first ``j`` right singular vectors (``j = k``: the row space)."""
        return self.V(torch.nn.functional.pad(c, (0, self.in_numel - c.shape[1])))

    def U_head(self, c: torch.Tensor) -> torch.Tensor:
        """``U`` of leading coefficients ``(B, j)``, ``j <= M``, the rest taken as zero."""
        return self.U(torch.nn.functional.pad(c, (0, self.out_numel - c.shape[1])))

    def _gamma(self, gamma: GammaLike, like: torch.Tensor) -> torch.Tensor:
        g = torch.as_tensor(gamma, dtype=like.dtype, device=like.device)
        if g.dim() == 0:
            g = g.expand(like.shape[0])
        if g.dim() != 1 or g.shape[0] != like.shape[0]:
            raise ShapeError(f"gamma must be a scalar or have shape ({like.shape[0]},), got {tuple(g.shape)}")
        if not bool(torch.all(g > 0)) or bool(torch.any(torch.isnan(g))):
            raise TaskError(f"gamma must be > 0 (inf allowed), got {g.tolist()}")
        return g[:, None]

    # ------------------------------------------------------------- derived maps
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y = A x = U diag(s) V^T x``."""
        self._check(x, self.in_shape, "x")
        s = self.singulars(x)
        return self.U_head(self.Vt(x)[:, : self.rank] * s)

    __call__ = forward

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^T y = V diag(s) U^T y``."""
        self._check(y, self.out_shape, "y")
        s = self.singulars(y)
        return self.V_head(self.Ut(y)[:, : self.rank] * s)

    def default_rcond(self, dtype: torch.dtype) -> float:
        """``max(M, N) * eps(dtype)``, the default of ``torch.linalg.pinv`` / NumPy's ``matrix_rank``."""
        return max(self.in_numel, self.out_numel) * torch.finfo(dtype).eps

    def resolved(self, s: torch.Tensor, rcond: float | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Mask of the singular values treated as non-zero: ``s > rcond * max(s)`` (``rcond=None``:
        :meth:`default_rcond` of the data's ``dtype``, by default ``s``'s)."""
        rcond = self.default_rcond(dtype or s.dtype) if rcond is None else float(rcond)
        if not 0 <= rcond < 1:  # rcond >= 1 would drop every singular value
            raise TaskError(f"rcond must be in [0, 1), got {rcond}")
        return s > rcond * s.max()

    def pinv(self, y: torch.Tensor, rcond: float | None = None) -> torch.Tensor:
        """Moore–Penrose pseudo-inverse ``A^+ y = V diag(1/s) U^T y``.

        Singular values ``s_i <= rcond * max(s)`` are treated as zero (their coefficients are
        dropped). ``rcond=None`` uses :meth:`default_rcond`; pass a larger value (e.g. ``1e-3``)
        for a regularized inverse of ill-conditioned blurs.
        """
        self._check(y, self.out_shape, "y")
        s = self.singulars(y)
        keep = self.resolved(s, rcond, y.dtype)
        inv = torch.where(keep, 1.0 / torch.where(keep, s, torch.ones_like(s)), torch.zeros_like(s))
        return self.V_head(self.Ut(y)[:, : self.rank] * inv)

    def prox_l2(self, v: torch.Tensor, y: torch.Tensor, gamma: GammaLike, rcond: float | None = None) -> torch.Tensor:
        """Exact proximal map of the data term ``f(x) = ½‖Ax − y‖²``.

        Returns ``argmin_x ½‖Ax − y‖² + ‖x − v‖² / (2·gamma)``
        ``= V diag(1 / (1 + gamma s²)) V^T (v + gamma A^T y)``, computed coefficient-wise in the
        spectral domain. ``gamma`` is a positive scalar or one value per batch item;
        ``gamma = inf`` gives the projection of ``v`` onto ``{x : A x = A A^+ y}`` with the
        same ``rcond`` as :meth:`pinv`: coefficients with ``s <= rcond * max(s)`` are kept from
        ``v`` (dividing by a singular value at rounding level, e.g. a Gaussian blur's 1e-18, would
        turn rounding error into the whole image).
        """
        self._check(v, self.in_shape, "v")
        self._check(y, self.out_shape, "y")
        g = self._gamma(gamma, v)
        s = self.singulars(v)
        k = self.rank
        cv = self.Vt(v)
        cy = self.Ut(y)[:, :k]
        head = cv[:, :k]
        finite = torch.isfinite(g)
        g_fin = torch.where(finite, g, torch.zeros_like(g))
        prox = (head + g_fin * s * cy) / (1.0 + g_fin * s * s)
        # gamma = inf: exact data consistency where s is resolvable, keep v's coefficient elsewhere
        pos = self.resolved(s, rcond, v.dtype)
        proj = torch.where(pos, cy / torch.where(pos, s, torch.ones_like(s)), head)
        head = torch.where(finite, prox, proj)
        return self.V(torch.cat([head, cv[:, k:]], dim=1))

    # ------------------------------------------------------------- misc
    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, in_shape={self.in_shape}, out_shape={self.out_shape})"
