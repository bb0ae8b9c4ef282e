"""PnP-DRS with a learned RGM prior, as the RGM reference runs it.

For each of ``outer`` passes and each noise level ``j`` in ``levels`` the prior step is::

    x̃ = a_j·x + ν·σ_j·ε                  # push x back into the prior's domain (step j of its process)
    u = (1 − α)·x + α·G(x̃, z, j)          # relaxed restoration

and :func:`pnp_rgm.solvers.drs` adds the exact data step ``w = prox_{λf}(2u − x)`` and the
update ``x ← x + (w − u)``. For multiscale (RGM-SR) priors ``a_j·x`` includes the process's
block averaging; for MMSE twins ``G`` is the σ-conditioned denoiser at the level of step ``j``.

With ``steps > 0`` the levels are instead ``steps`` noise levels σ_j in [0, 1] image units,
geometric from ``sigma_max`` down to ``sigma_min`` (both floored at the observation noise σ_y),
and the prior step is ``u = (1 − α)·x + α·D(x + ν·σ_j·ε, σ_j)`` with ``D`` the prior's
``denoise`` (the MMSE twin's native mode; an RGM-D prior denoises from the step matching σ_j).
``flip`` applies a random one of the 8 flips/rotations around every prior call (seeded), which
averages out the network's orientation bias over the iterations; ``ensemble`` = 2, 4 or 8
averages that many orientations in every prior call (self-ensemble; that many network calls).
``samples`` > 1 runs that many independent (differently seeded, batched) DRS chains and averages
their outputs: with ν > 0 each chain is a posterior sample, and their mean approaches the
posterior mean (higher PSNR); a mean of data-consistent outputs is still data-consistent.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from pnp_rgm.errors import TaskError
from pnp_rgm.solvers import PriorStep


#: network calls per image a solver configuration may ask for (the presets use 8 to 32)
MAX_CALLS = 10_000


@dataclass(frozen=True)
class RGMDRSConfig:
    """Parameters of RGM-DRS (see module docstring). ``levels`` are 1-based steps of the prior's
    process, visited in order in every outer pass; ``z`` is ``"random"`` (a fresh latent per
    call, reproducible by seed) or ``"zero"``."""

    outer: int = 2
    levels: tuple[int, ...] = (3, 2, 1)
    alpha: float = 0.5
    lam: float = 1.0
    nu: float = 1.0
    z: Literal["random", "zero"] = "random"
    steps: int = 0
    sigma_max: float = 0.2
    sigma_min: float = 0.01
    flip: bool = False
    ensemble: int = 1
    samples: int = 1

    def __post_init__(self) -> None:
        if self.outer < 1:
            raise TaskError(f"outer must be >= 1, got {self.outer}")
        if not self.levels:
            raise TaskError("levels must name at least one step of the prior's process")
        if not 0.0 < self.alpha <= 1.0:
            raise TaskError(f"alpha must be in (0, 1], got {self.alpha}")
        if not self.lam > 0:
            raise TaskError(f"lam must be > 0, got {self.lam}")
        if not 0 <= self.nu < float("inf"):
            raise TaskError(f"nu must be a finite number >= 0, got {self.nu}")
        if self.z not in ("random", "zero"):
            raise TaskError(f"z must be 'random' or 'zero', got {self.z!r}")
        if self.samples < 1:
            raise TaskError(f"samples must be >= 1 (independent DRS runs averaged), got {self.samples}")
        if self.ensemble not in (1, 2, 4, 8):
            raise TaskError(f"ensemble must be 1, 2, 4 or 8 (orientations averaged per prior call), got {self.ensemble}")
        if self.steps < 0:
            raise TaskError(f"steps must be >= 0 (0 = the prior's own levels), got {self.steps}")
        if self.calls > MAX_CALLS:
            raise TaskError(f"outer x steps x ensemble x samples = {self.calls} network calls per image; "
                            f"at most {MAX_CALLS}")
        if not 0.0 <= self.sigma_min <= self.sigma_max <= 1.0:
            raise TaskError(f"need 0 <= sigma_min <= sigma_max <= 1, got sigma_min={self.sigma_min}, "
                            f"sigma_max={self.sigma_max}")

    @property
    def iters(self) -> int:
        return self.outer * (self.steps or len(self.levels))

    @property
    def calls(self) -> int:
        """Generator calls per image (iterations × self-ensemble size × samples)."""
        return self.iters * self.ensemble * self.samples

    def sigmas(self, sigma_y: float = 0.0) -> list[float]:
        """The σ_j of one pass in ``steps`` mode: geometric, ``sigma_max`` → ``sigma_min``, floored at σ_y."""
        hi, lo = max(self.sigma_max, sigma_y), max(self.sigma_min, sigma_y)
        if self.steps == 1:
            return [lo]
        return [hi * (lo / hi) ** (i / (self.steps - 1)) if hi > 0 else 0.0 for i in range(self.steps)]

    def data_weight(self, sigma_y: float) -> float:
        """λ for observation noise σ_y: the configured ``lam``, capped in ``steps`` mode at
        (σ_last/σ_y)² so the data step trusts y no more than the last prior level allows
        (σ_last = σ_y, as in plain denoising, gives λ = 1 and w = u)."""
        if self.steps and sigma_y > 0:
            return min(self.lam, (self.sigmas(sigma_y)[-1] / sigma_y) ** 2)
        return self.lam


_DIHEDRAL = [(k, f) for f in (False, True) for k in range(4)]


def _orient(x: torch.Tensor, t: int, inverse: bool = False) -> torch.Tensor:
    k, f = _DIHEDRAL[t]
    if inverse:
        x = torch.rot90(x, -k, (-2, -1))
        return torch.flip(x, (-1,)) if f else x
    x = torch.flip(x, (-1,)) if f else x
    return torch.rot90(x, k, (-2, -1))


def rgm_prior_step(prior, cfg: RGMDRSConfig, generator: torch.Generator | None = None,
                   sigma_y: float = 0.0) -> PriorStep:
    """The RGM-DRS prior step ``u = (1 − α)x + α·G(a_j x + ν σ_j ε, z, j)`` for iteration ``it``.

    ``x`` is ``(B, C, H, W)`` in [0, 1], any size (padded by edge replication to the process's multiple)
    and any channel count the prior can serve (gray images through an RGB prior are replicated and
    averaged back; colour images through a gray prior go channel by channel). ``sigma_y`` (the
    observation noise) floors the σ_j of ``steps`` mode.
    """
    bad = [j for j in cfg.levels if not 1 <= int(j) <= prior.num_steps] if not cfg.steps else []
    if bad:
        raise TaskError(f"levels {bad} out of range for this prior; valid steps: 1..{prior.num_steps}")
    process = prior.process
    levels = cfg.sigmas(sigma_y) if cfg.steps else [int(j) for j in cfg.levels]
    schedule = [j for _ in range(cfg.outer) for j in levels]
    mult = process.multiple
    orient = torch.Generator()  # the flips' own stream, seeded from ``generator``
    if cfg.flip and generator is not None:
        orient.manual_seed(int(torch.randint(2**31, (1,), generator=generator, device=generator.device)))

    def latent(b: int) -> torch.Tensor | None:
        """A fresh z per call (seeded) for a prior with a latent and ``z: random``; else the zero latent."""
        if cfg.z == "random" and prior.nz:
            return torch.randn((b, prior.nz), generator=generator, device=prior.device)
        return None

    def restore_net(x01: torch.Tensor, j) -> torch.Tensor:
        """The prior's restoration of an image ``x01`` in [0, 1] at level ``j`` (a σ_j or a step)."""
        if cfg.steps:  # σ_j mode: D(x + ν σ_j ε, σ_j) in [0, 1] units
            noise = torch.randn(x01.shape, generator=generator, device=prior.device)
            return prior.denoise(x01 + cfg.nu * j * noise, j, z=latent(x01.shape[0]), generator=generator)
        xn = 2 * x01 - 1  # the process lives in the network's [-1, 1] space
        b = xn.shape[0]
        k = torch.full((b,), j, dtype=torch.long)
        noise = process.noise_at(xn, process.level[k], generator=generator)
        x_tilde = process.mean(xn, k) + cfg.nu * float(process.sigma[j]) * noise
        return prior.restore(x_tilde, j, latent(b))

    def step(x: torch.Tensor, it: int) -> torch.Tensor:
        j = schedule[it % len(schedule)]
        h, w = x.shape[-2:]
        xf = x.to(prior.device, torch.float32)
        ph, pw = (-h) % mult, (-w) % mult
        xp = F.pad(xf, (0, pw, 0, ph), mode="replicate") if (ph or pw) else xf
        t0 = int(torch.randint(0, 8, (1,), generator=orient)) if cfg.flip else 0
        g = 0.0
        for e in range(cfg.ensemble):
            t = (t0 + e * (8 // cfg.ensemble)) % 8
            g = g + _orient(net_any_channels(_orient(xp, t), j), t, inverse=True) / cfg.ensemble
        g = g[..., :h, :w].to(x.device, x.dtype)
        return (1.0 - cfg.alpha) * x + cfg.alpha * g

    def net_any_channels(xp: torch.Tensor, j) -> torch.Tensor:
        b, c = xp.shape[:2]
        if c == prior.channels:
            return restore_net(xp, j)
        if c == 1 and prior.channels == 3:
            return restore_net(xp.expand(-1, 3, -1, -1), j).mean(dim=1, keepdim=True)
        if prior.channels == 1:
            return restore_net(xp.reshape(b * c, 1, *xp.shape[-2:]), j).reshape(b, c, *xp.shape[-2:])
        raise TaskError(f"a {prior.channels}-channel prior cannot restore {c}-channel images")

    return step
