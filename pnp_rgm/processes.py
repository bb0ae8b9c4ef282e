"""Forward (degradation) processes of the RGM family.

Every process here is a *linear-Gaussian* chain in the network's [-1, 1] space::

    x_k = r_k * D_k(x_{k-1}) + s_k * U_{m_k}(eps_k),      eps_k ~ N(0, I) at resolution level m_k

where ``D_k`` is either the identity or one more level of 2x2 block averaging (upsampled back by
nearest neighbour, i.e. ``op.pinv(op.forward(x))`` of the ``sr2`` operator), ``m_k`` is the
number of block-averaging levels applied so far, and ``U_m`` draws white noise at 1/2^m
resolution and upsamples it by nearest neighbour (so the state always lies in the range of the
level-m averaging). The marginal is closed form::

    x_k = a_k * A_{m_k} x_0 + sigma_k * U_{m_k}(eps)

A schedule is just the list of steps ``(down, r, s)``: see :class:`NoiseProcess` (RGM-D),
:class:`GeometricNoiseProcess` (RGM-D on the noise levels plug-and-play visits) and
:class:`MultiscaleProcess` (RGM-SR). A new schedule is a subclass overriding ``_steps``.
Step indices are 1..K; k may be an int or a LongTensor of shape (B,) (one step per sample).
Tensors of any rank work for pure-noise processes (e.g. (B, 2) toy points); multiscale needs
(B, C, H, W) with H, W divisible by 2**max_level.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pnp_rgm.errors import ConfigError, ShapeError

__all__ = [
    "Step", "BlockAverage", "ForwardProcess", "NoiseProcess", "GeometricNoiseProcess", "MultiscaleProcess",
    "make_process", "vp_alpha_bars",
]


@dataclass(frozen=True)
class Step:
    down: bool  # apply one more level of 2x2 block averaging before scaling/noising
    r: float  # signal scale of this step
    s: float  # std of the noise added at this step


def vp_alpha_bars(num_steps: int, beta_min: float, beta_max: float) -> list[float]:
    """alpha_bar(t_k) = exp(-(beta_min t + (beta_max - beta_min) t^2 / 2)), t_k = k/K, k=0..K."""
    out = []
    for k in range(num_steps + 1):
        t = k / num_steps
        out.append(math.exp(-(beta_min * t + 0.5 * (beta_max - beta_min) * t * t)))
    return out


def _vp_steps_to(a: Sequence[float]) -> list[tuple[float, float]]:
    """Variance-preserving steps (r, s) whose marginals have the signal scales ``a`` = a_0 = 1, a_1..a_K:
    r_k = a_k / a_{k-1}, s_k = sqrt(1 - r_k^2), so that a_k^2 + sigma_k^2 = 1 at every step."""
    steps = []
    for k in range(1, len(a)):
        r = a[k] / a[k - 1]
        steps.append((r, math.sqrt(max(1.0 - r * r, 0.0))))
    return steps


def _vp_steps(num_steps: int, beta_min: float, beta_max: float) -> list[tuple[float, float]]:
    return _vp_steps_to([math.sqrt(ab) for ab in vp_alpha_bars(num_steps, beta_min, beta_max)])


# --------------------------------------------------------------------------- block averaging
class BlockAverage:
    """A_m: 2^m x 2^m block averaging upsampled back by nearest neighbour (m levels of ``sr2``).

    backend ``torch`` uses ``avg_pool2d`` + nearest ``interpolate``; ``operator`` composes
    ``pnp_rgm.operators.make_operator("sr2", shape)`` (cached by shape): ``pinv(forward(x))``
    per level (the exact operator the solvers use); ``auto`` = ``operator``."""

    def __init__(self, backend: str = "auto") -> None:
        if backend not in ("auto", "torch", "operator"):
            raise ConfigError(f"backend: expected auto, torch or operator, got {backend!r}")
        self.backend = "operator" if backend == "auto" else backend
        self._ops: dict[tuple[int, int, int], object] = {}

    def _op(self, m: int, c: int, h: int, w: int):
        """The ``sr{2^m}`` operator for full-resolution images of shape (c, h, w), cached."""
        key = (m, c, h, w)
        if key not in self._ops:
            from pnp_rgm.operators import make_operator

            self._ops[key] = make_operator(f"sr{2 ** m}", shape=(c, h, w))
        return self._ops[key]

    def down(self, x: torch.Tensor, m: int) -> torch.Tensor:
        """(B,C,H,W) -> (B,C,H/2^m,W/2^m) block means."""
        if m == 0:
            return x
        if self.backend == "torch":
            return F.avg_pool2d(x, 2 ** m)
        return self._op(m, *x.shape[1:]).forward(x)

    def up(self, x: torch.Tensor, m: int) -> torch.Tensor:
        """Nearest-neighbour upsampling by 2^m (the pseudo-inverse of block averaging)."""
        if m == 0:
            return x
        if self.backend == "torch":
            return F.interpolate(x, scale_factor=2 ** m, mode="nearest")
        c, h, w = x.shape[1:]
        return self._op(m, c, h << m, w << m).pinv(x)

    def __call__(self, x: torch.Tensor, m: int) -> torch.Tensor:
        return self.up(self.down(x, m), m) if m else x


# --------------------------------------------------------------------------- processes
def _bc(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, ...) broadcastable against x."""
    return v.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.dim() - 1)))


class ForwardProcess:
    """Base class: a K-step linear-Gaussian chain given by ``_steps()`` (see module docs)."""

    name = "base"

    def __init__(self, steps: Sequence[Step], blockavg: Optional[BlockAverage] = None) -> None:
        self.steps = list(steps)
        self.K = len(self.steps)
        a, var, lvl = [1.0], [0.0], [0]
        for st in self.steps:
            m = lvl[-1] + (1 if st.down else 0)
            v = var[-1] / (4.0 if st.down else 1.0)
            a.append(a[-1] * st.r)
            var.append(st.r ** 2 * v + st.s ** 2)
            lvl.append(m)
        self.a = torch.tensor(a, dtype=torch.float64)
        self.sigma = torch.tensor(var, dtype=torch.float64).sqrt()
        self.level = torch.tensor(lvl, dtype=torch.long)
        self.r = torch.tensor([1.0] + [s.r for s in self.steps], dtype=torch.float64)
        self.s = torch.tensor([0.0] + [s.s for s in self.steps], dtype=torch.float64)
        self.down_at = torch.tensor([False] + [s.down for s in self.steps])
        self.max_level = int(self.level[-1])
        self.A = blockavg or BlockAverage("auto")

    # ---- helpers
    @property
    def multiple(self) -> int:
        return 2 ** self.max_level

    def _k(self, k, x: torch.Tensor) -> torch.Tensor:
        if isinstance(k, int):
            if not 0 <= k <= self.K:
                raise ConfigError(f"k: step must be in 0..{self.K}, got {k}")
            return torch.full((x.shape[0],), k, dtype=torch.long)
        return k.detach().to("cpu", torch.long).reshape(-1)

    def _check(self, x: torch.Tensor) -> None:
        if self.max_level:
            if x.dim() != 4 or x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
                raise ShapeError(
                    f"{self.name} process needs (B,C,H,W) with H, W divisible by {self.multiple}, got {tuple(x.shape)}")

    def _per_level(self, fn: Callable[[int], torch.Tensor], lv: torch.Tensor) -> torch.Tensor:
        """Evaluate fn(level) once per distinct level and assemble per sample."""
        levels = lv.unique().tolist()
        if len(levels) == 1:
            return fn(levels[0])
        out = None
        for m in levels:
            val = fn(m)
            mask = _bc((lv == m).float(), val)
            out = val * mask if out is None else out + val * mask
        return out

    def noise_at(self, like: torch.Tensor, lv: torch.Tensor, generator=None) -> torch.Tensor:
        """U_m(eps): white noise at level m, nearest-upsampled to full resolution."""
        def fn(m: int) -> torch.Tensor:
            if m == 0:
                return torch.randn(like.shape, device=like.device, dtype=like.dtype, generator=generator)
            b, c, h, w = like.shape
            e = torch.randn((b, c, h >> m, w >> m), device=like.device, dtype=like.dtype, generator=generator)
            return self.A.up(e, m)
        return self._per_level(fn, lv)

    def blockavg(self, x: torch.Tensor, lv: torch.Tensor) -> torch.Tensor:
        return self._per_level(lambda m: self.A(x, m), lv)

    # ---- public API
    def coeffs(self, k) -> tuple[torch.Tensor, torch.Tensor]:
        """(a_k, sigma_k) as float64 tensors of shape (B,) (or scalars for int k)."""
        return self.a[k], self.sigma[k]

    def mean(self, x0: torch.Tensor, k) -> torch.Tensor:
        """a_k A_{m_k} x0: the noiseless part of x_k (used by the fidelity term)."""
        self._check(x0)
        kk = self._k(k, x0)
        return _bc(self.a[kk], x0) * self.blockavg(x0, self.level[kk])

    def degrade(self, x0: torch.Tensor, k, generator=None) -> torch.Tensor:
        """Sample x_k ~ q(x_k | x_0) (marginal, closed form). k = 0 returns x0."""
        kk = self._k(k, x0)
        return self.mean(x0, kk) + _bc(self.sigma[kk], x0) * self.noise_at(x0, self.level[kk], generator)

    def transition(self, x_prev: torch.Tensor, k) -> torch.Tensor:
        """Sample x_k ~ q(x_k | x_{k-1}) (one step), k >= 1."""
        kk = self._k(k, x_prev)
        down = self.down_at[kk]
        lv = self.level[kk]
        d = self._per_level(lambda m: self.A(x_prev, m), torch.where(down, lv, torch.zeros_like(lv)))
        return _bc(self.r[kk], x_prev) * d + _bc(self.s[kk], x_prev) * self.noise_at(x_prev, lv)

    def pair(self, x0: torch.Tensor, k) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint sample (x_{k-1}, x_k) of the real chain, k >= 1."""
        kk = self._k(k, x0)
        x_prev = self.degrade(x0, kk - 1)
        return x_prev, self.transition(x_prev, kk)

    def posterior(self, x_k: torch.Tensor, x0: torch.Tensor, k, generator=None) -> torch.Tensor:
        """Sample x_{k-1} ~ q(x_{k-1} | x_k, x_0) (Gaussian; only for steps without averaging)."""
        kk = self._k(k, x0)
        if bool(self.down_at[kk].any()):
            raise ConfigError(f"posterior sampling is only defined for noise steps; {self.name} step has averaging")
        r, s = self.r[kk], self.s[kk]
        ap, sp, sk = self.a[kk - 1], self.sigma[kk - 1], self.sigma[kk]
        w0 = ap * s ** 2 / sk ** 2
        wk = r * sp ** 2 / sk ** 2
        std = (s * sp / sk)
        mean = _bc(w0, x0) * self.blockavg(x0, self.level[kk - 1]) + _bc(wk, x_k) * x_k
        return mean + _bc(std, x0) * self.noise_at(x0, self.level[kk - 1], generator)

    def step_back(self, x_k: torch.Tensor, x0_hat: torch.Tensor, k, posterior: bool = False,
                  generator=None) -> torch.Tensor:
        """x_{k-1} given a restoration x0_hat: Algorithm 1 (``posterior``) or re-degradation."""
        if posterior:
            return self.posterior(x_k, x0_hat, k, generator)
        return self.degrade(x0_hat, self._k(k, x0_hat) - 1, generator)

    def prior_sample(self, shape, device=None, generator=None, dtype=torch.float32) -> torch.Tensor:
        """x_K for Algorithm 3: sigma_K * U_{m_K}(eps) (assumes a_K ~ 0)."""
        like = torch.empty(shape, device=device, dtype=dtype)
        if self.max_level:
            self._check(like)
        lv = torch.full((shape[0],), self.max_level, dtype=torch.long)
        return float(self.sigma[-1]) * self.noise_at(like, lv, generator)

    def noise_to_signal(self) -> torch.Tensor:
        """sigma_k / a_k, k = 0..K (the equivalent additive-noise level of x_k / a_k)."""
        return self.sigma / self.a

    def describe(self) -> str:
        rows = [f"k={k}: level={int(self.level[k])} a={float(self.a[k]):.4f} sigma={float(self.sigma[k]):.4f}"
                for k in range(1, self.K + 1)]
        return f"{self.name} (K={self.K}): " + "; ".join(rows)


class NoiseProcess(ForwardProcess):
    """RGM-D: variance-preserving noising, K steps, linear beta(t) from beta_min to beta_max."""

    name = "noise"

    def __init__(self, num_steps: int = 4, beta_min: float = 0.1, beta_max: float = 20.0, **kw) -> None:
        super().__init__([Step(False, r, s) for r, s in _vp_steps(num_steps, beta_min, beta_max)], **kw)


class GeometricNoiseProcess(ForwardProcess):
    """RGM-D on chosen noise levels: variance-preserving noising whose K steps have the equivalent
    [0, 1]-unit noise levels sigma_k / (2 a_k) geometric from ``level_min`` (step 1) to ``level_max``
    (step K). The DDGAN schedule of :class:`NoiseProcess` starts at ~0.48 for K = 4; a prior for
    plug-and-play needs its steps where the solver visits (~0.005 to 0.4)."""

    name = "geometric"

    def __init__(self, num_steps: int = 8, level_min: float = 0.005, level_max: float = 0.4, **kw) -> None:
        levels = np.geomspace(level_min, level_max, num_steps).tolist()
        # sigma_k / a_k = 2 level_k in network units, and a_k^2 + sigma_k^2 = 1: a_k = 1 / sqrt(1 + (2 level_k)^2)
        a = [1.0] + [1.0 / math.sqrt(1.0 + (2.0 * lv) ** 2) for lv in levels]
        super().__init__([Step(False, r, s) for r, s in _vp_steps_to(a)], **kw)


class MultiscaleProcess(ForwardProcess):
    """RGM-SR: block averaging (2x2 per level) interleaved with VP noising.

    ``alternate``: steps go average, noise, average, noise, ... (K//2 levels, VP over the
    K - K//2 noise steps; the averaging steps add ``down_noise``). ``naive``: every step
    averages one more level and noises (K levels, VP over all K steps)."""

    name = "multiscale"

    def __init__(self, num_steps: int = 4, beta_min: float = 0.1, beta_max: float = 20.0,
                 variant: str = "alternate", down_noise: float = 0.02, **kw) -> None:
        if variant == "naive":
            steps = [Step(True, r, s) for r, s in _vp_steps(num_steps, beta_min, beta_max)]
        elif variant == "alternate":
            n_down = num_steps // 2
            vp = iter(_vp_steps(num_steps - n_down, beta_min, beta_max))
            steps = []
            for i in range(num_steps):
                if i % 2 == 0 and i // 2 < n_down:
                    steps.append(Step(True, 1.0, down_noise))
                else:
                    r, s = next(vp)
                    steps.append(Step(False, r, s))
        else:
            raise ConfigError(f"variant: expected alternate or naive, got {variant!r}")
        super().__init__(steps, **kw)
        self.name = f"multiscale-{variant}"


def make_process(cfg, blockavg: Optional[BlockAverage] = None) -> ForwardProcess:
    """Build the process of a :class:`~pnp_rgm.train.config.ProcessConfig`."""
    if cfg.kind == "noise":
        return NoiseProcess(cfg.num_steps, cfg.beta_min, cfg.beta_max, blockavg=blockavg)
    if cfg.kind == "geometric":
        return GeometricNoiseProcess(cfg.num_steps, cfg.level_min, cfg.level_max, blockavg=blockavg)
    if cfg.kind == "multiscale":
        return MultiscaleProcess(cfg.num_steps, cfg.beta_min, cfg.beta_max, cfg.variant, cfg.down_noise,
                                 blockavg=blockavg)
    raise ConfigError(f"process.kind: expected noise, geometric or multiscale, got {cfg.kind!r}")
