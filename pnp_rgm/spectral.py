"""The spectral ("Fourier-space") ambient teacher: a denoiser of clean images learned from blurred
or block-averaged images only, y = A x + σ_n n (``objective.kind: ambient`` with a
``deblur-gauss``, ``deblur-uniform`` or ``srN`` corruption).

Everything happens in the SVD basis of A, A = U diag(s) Vᵀ, which for a shift-invariant blur is
its frequency basis. A data patch gives, for every component the operator passes
(s_i > rcond · max s), c_i = (Uᵀy)_i / s_i = (Vᵀx)_i + τ_i n_i with τ_i = σ_n / s_i: the clean
component plus white noise of a known, component-dependent level. At a diffusion level σ,

    ρ_i = max(σ, κ τ_i)          (κ = ``objective.further_noise`` > 1)
    x_in,i = c_i + √(ρ_i² − τ_i²) ε_i = x_i + ρ_i · noise        (component i at noise ρ_i)
    u_i = (σ / ρ_i) x_in,i = a_i x_i + σ · noise                  (a_i = σ/ρ_i <= 1)

and components A does not pass are zero. So the network sees noise of level σ on top of a
known, σ-dependent filtering a(σ) of the clean image — a component is shown unattenuated where
the data allows (κ τ_i <= σ), attenuated where the data is noisier (Noisier2Noise-style further
noise), with EDM's preconditioning valid on every shown component. For every passed component
Tweedie gives E[c_i | u] = r_i x_in,i + (1 − r_i) E[x_i | u] with r_i = τ_i²/ρ_i² <= 1/κ², so
regressing m_i = r_i x_in,i + (1 − r_i) D_i on c_i is minimized by D = E[x | u]: the clean-image
restorer of that view. The regression is weighted by s_i², i.e. taken in the measurement domain,
‖s ⊙ m − Uᵀy‖² = ‖A m − y‖² on the paired components, where every term has the same noise σ_n².

Components A removes (s_i = 0: detail inside a block, frequencies a blur kills) are never
supervised. They are zero in the input, not noise: noise there goes through the network's skip
connection into its output (a version with noise there lost 2.2 dB at σ = 0.2, CBSD68, one
call). At inference, on x = x_clean + σ ε, the teacher gets the same view
(:meth:`SpectralAmbient.view`: each passed component raised to ρ_i with fresh noise and scaled
by a_i, the rest zeroed), and its output on the removed components is all it has (keeping the
input's there instead cost 1.8 dB at σ = 0.2 and 6.8 dB at σ = 0.5 on eight 64² CBSD68 crops,
with the noise-filled variant at 1000 steps). BENCHMARKS.md (section 4 of "Priors from corrupted
data only") measures what such a teacher is worth as a prior.

Patches: a blurred data patch of size h is, exactly, the *valid* convolution of a clean patch of
size h + 2r (r = kernel radius), so the teacher's operator on a patch is the valid-convolution
matrix (no boundary model); a block-averaged data patch of size h is the block average of an
aligned clean patch of size f·h. Data on disk: blurred images are the clean images' size;
block-averaged ones are 1/f of it.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from pnp_rgm.errors import ConfigError, ShapeError

__all__ = ["SPECTRAL_OPERATORS", "is_spectral", "valid_conv_matrix", "SpectralAmbient"]

#: corruption operators of the spectral ambient objective (srN: any factor N >= 2)
SPECTRAL_OPERATORS = ("deblur-gauss", "deblur-uniform", "srN")


def sr_factor(name: str) -> int:
    """N of ``srN`` (0 for other names)."""
    if name.startswith("sr") and name[2:].isdigit() and int(name[2:]) >= 2:
        return int(name[2:])
    return 0


def is_spectral(name: str) -> bool:
    return name in ("deblur-gauss", "deblur-uniform") or sr_factor(name) > 0


def valid_conv_matrix(kernel: np.ndarray, n_out: int) -> np.ndarray:
    """``n_out × (n_out + len(kernel) − 1)`` matrix of the valid correlation
    ``(A x)[i] = Σ_t kernel[t] · x[i + t]``: every output sees only pixels that exist."""
    kernel = np.asarray(kernel, dtype=np.float64)
    n_in = n_out + len(kernel) - 1
    a = np.zeros((n_out, n_in))
    for t, kv in enumerate(kernel):
        a[np.arange(n_out), np.arange(n_out) + t] = kv
    return a


class SpectralAmbient:
    """The corruption of a spectral ambient teacher (a CorruptionConfig with a spectral operator),
    its operators on data patches and on whole images, and the available-component projection.
    Noise levels and images are in network units ([-1, 1]: σ_n doubles)."""

    def __init__(self, corruption, further_noise: float = 1.5) -> None:
        from pnp_rgm.operators import gaussian_kernel, uniform_kernel

        if not is_spectral(corruption.operator):
            raise ConfigError(f"operator: the spectral ambient objective needs one of {', '.join(SPECTRAL_OPERATORS)}, "
                              f"got {corruption.operator!r}")
        self.name = corruption.operator
        self.factor = sr_factor(self.name)
        self.kernel = None
        if self.name == "deblur-gauss":
            self.kernel = gaussian_kernel(corruption.size, corruption.width)
        elif self.name == "deblur-uniform":
            self.kernel = uniform_kernel(corruption.size)
        self.radius = (len(self.kernel) // 2) if self.kernel is not None else 0
        self.s_n = 2 * float(corruption.sigma_n)
        self.rcond = float(corruption.rcond)
        self.kappa = float(further_noise)
        self._ops: dict[tuple, object] = {}

    # ------------------------------------------------------------- shapes
    def data_size(self, crop: int) -> int:
        """Side of the data patch that a clean (network) patch of side ``crop`` corresponds to."""
        return crop // self.factor if self.factor else crop - 2 * self.radius

    def clean_size(self, n: int) -> int:
        """Side of the clean patch behind a data patch of side ``n``."""
        return n * self.factor if self.factor else n + 2 * self.radius

    def degrade_image(self, img: np.ndarray) -> np.ndarray:
        """A applied to a whole clean (H, W, C) image in [0, 1], for simulated data (``--corrupt``):
        the N×N block average (the image cropped to multiples of N) or the blur, same size, with
        reflected borders (interior training patches are exact valid convolutions either way)."""
        from scipy.ndimage import correlate1d

        img = np.asarray(img, dtype=np.float64)
        if self.factor:
            f = self.factor
            h, w = (img.shape[0] // f) * f, (img.shape[1] // f) * f
            if not h or not w:
                raise ConfigError(f"image of {img.shape[1]}x{img.shape[0]} pixels is smaller than the {self.name} block")
            img = img[:h, :w].reshape(h // f, f, w // f, f, -1).mean(axis=(1, 3))
        else:
            img = correlate1d(correlate1d(img, self.kernel, axis=0, mode="reflect"), self.kernel, axis=1, mode="reflect")
        return img.astype(np.float32)

    # ------------------------------------------------------------- operators
    def operator(self, clean_shape: tuple[int, int, int]):
        """A on a clean image of shape (C, H, W): block average (H, W multiples of the factor) or
        the valid convolution to (H − 2r, W − 2r)."""
        from pnp_rgm.operators import BlockAverage, Separable

        key = tuple(int(v) for v in clean_shape)
        op = self._ops.get(key)
        if op is None:
            c, h, w = key
            if self.factor:
                op = BlockAverage(key, self.factor)
            else:
                op = Separable(key, valid_conv_matrix(self.kernel, h - 2 * self.radius),
                               valid_conv_matrix(self.kernel, w - 2 * self.radius))
            self._ops[key] = op
        return op

    def tau(self, op, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, τ): the k singular values and each component's data noise τ_i = σ_n / s_i (inf where
        the operator does not pass it, s_i <= rcond · max s)."""
        s = op.singulars(like)
        passed = s > self.rcond * s.max()
        tau = torch.where(passed, self.s_n / torch.where(passed, s, torch.ones_like(s)), torch.full_like(s, math.inf))
        return s, tau

    def tau_min(self, crop: int = 64, channels: int = 1) -> float:
        """The lowest data noise of any component (network units)."""
        op = self.operator((channels, crop, crop))
        return float(self.tau(op, torch.zeros((), dtype=torch.float64))[1].min())

    def floor(self) -> float:
        """κ · min τ (network units): below this level no component is shown unattenuated, and
        nothing below it is trained."""
        return self.kappa * self.tau_min()

    @property
    def sigma_floor(self) -> float:
        """:meth:`floor` in [0, 1] image units, the levels ``Prior.denoise`` and ``sample_ode`` take:
        below it, the teacher's inputs look as they do at it."""
        return self.floor() / 2

    def levels(self, op, like: torch.Tensor, sig: torch.Tensor) -> dict:
        """Per-component view at levels ``sig`` (B, 1) (network units): ``s``, ``tau``, ``passed``
        (k,); ``rho`` (B, k), the noise a component is shown at, and ``a`` = σ/ρ (0 where A does not
        pass it), its scale in the network input."""
        s, tau = self.tau(op, like)
        passed = torch.isfinite(tau)  # τ is inf exactly where A does not pass a component
        rho = torch.maximum(sig.to(like.dtype), self.kappa * torch.where(passed, tau, torch.zeros_like(tau))[None])
        a = torch.where(passed[None], sig.to(like.dtype) / rho, torch.zeros_like(rho))
        return dict(s=s, tau=tau, passed=passed, rho=rho, a=a)

    @staticmethod
    def shown(coef: torch.Tensor, noise: torch.Tensor, lv: dict, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Components ``coef`` (B, k) that carry noise of std ``noise`` (broadcast to (B, k)), as the
        teacher is shown them at the levels ``lv`` of :meth:`levels`: (raised, shown), the
        components raised to their noise ρ_i with fresh noise ``z``, and those scaled by a_i = σ/ρ_i,
        zero where A passes nothing. Training (data noise τ_i) and inference (noise σ) share it."""
        raised = coef + (lv["rho"] ** 2 - noise ** 2).clamp_min(0).sqrt() * z
        return raised, torch.where(lv["passed"][None], lv["a"] * raised, torch.zeros_like(raised))

    # ------------------------------------------------------------- inference
    def view(self, x: torch.Tensor, log_sigma: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The teacher's input for x = clean + σ ε ((B, C, H, W), network units, per-sample log σ):
        each passed component raised to its level ρ_i with fresh noise and scaled by a_i = σ/ρ_i,
        the others zeroed (float64 transforms). Sides that
        are not multiples of the block factor are edge-padded for the transform and cropped back."""
        h, w = x.shape[-2:]
        if not self.factor and min(h, w) <= 2 * self.radius:
            raise ShapeError(f"image of {w}x{h} pixels is too small for a {self.name} teacher (kernel {2 * self.radius + 1})")
        ph, pw = ((-h) % self.factor, (-w) % self.factor) if self.factor else (0, 0)
        xd = (torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x).double()
        op = self.operator(tuple(xd.shape[1:]))
        coef = op.Vt(xd)
        sig = torch.exp(log_sigma.to(xd.dtype)).view(-1, 1)
        lv = self.levels(op, xd, sig)
        k = op.rank
        z = torch.randn(coef[:, :k].shape, generator=generator, device=x.device).to(xd.dtype)
        _, head = self.shown(coef[:, :k], sig, lv, z)
        return op.V_head(head)[:, :, :h, :w].to(x.dtype)
