"""PnP-DRS with a learned RGM prior, as the RGM reference runs it.

For each of ``outer`` passes and each noise level ``j`` in ``levels`` the prior step is::

    x̃ = a_j·x + ν·σ_j·ε                  # push x back into the prior's domain (step j of its process)
    u = (1 − α)·x + α·G(x̃, z, j)          # relaxed restoration

and :func:`pnp_rgm.solvers.drs` adds the exact data step ``w = prox_{λf}(2u − x)`` and the
update ``x ← x + (w − u)``. For multiscale (RGM-SR) priors ``a_j·x`` includes the process's
block averaging; for MMSE twins ``G`` is the σ-conditioned denoiser at the level of step ``j``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from pnp_rgm.errors import TaskError
from pnp_rgm.solvers import PriorStep


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

    def __post_init__(self) -> None:
        if self.outer < 1:
            raise TaskError(f"outer must be >= 1, got {self.outer}")
        if not self.levels:
            raise TaskError("levels must name at least one step of the prior's process")
        if not 0.0 < self.alpha <= 1.0:
            raise TaskError(f"alpha must be in (0, 1], got {self.alpha}")
        if not self.lam > 0:
            raise TaskError(f"lam must be > 0, got {self.lam}")
        if not self.nu >= 0:
            raise TaskError(f"nu must be >= 0, got {self.nu}")
        if self.z not in ("random", "zero"):
            raise TaskError(f"z must be 'random' or 'zero', got {self.z!r}")

    @property
    def iters(self) -> int:
        return self.outer * len(self.levels)


def rgm_prior_step(prior, cfg: RGMDRSConfig, generator: torch.Generator | None = None) -> PriorStep:
    """The RGM-DRS prior step ``u = (1 − α)x + α·G(a_j x + ν σ_j ε, z, j)`` for iteration ``it``.

    ``x`` is ``(B, C, H, W)`` in [0, 1], any size (padded by edge replication to the process's multiple)
    and any channel count the prior can serve (gray images through an RGB prior are replicated and
    averaged back; colour images through a gray prior go channel by channel).
    """
    bad = [j for j in cfg.levels if not 1 <= int(j) <= prior.num_steps]
    if bad:
        raise TaskError(f"levels {bad} out of range for this prior; valid steps: 1..{prior.num_steps}")
    process = prior.process
    schedule = [int(j) for _ in range(cfg.outer) for j in cfg.levels]
    mult = process.multiple

    def restore_net(xn: torch.Tensor, j: int) -> torch.Tensor:
        b = xn.shape[0]
        k = torch.full((b,), j, dtype=torch.long)
        noise = process.noise_at(xn, process.level[k], generator=generator)
        x_tilde = process.mean(xn, k) + cfg.nu * float(process.sigma[j]) * noise
        z = None
        if cfg.z == "random" and prior.nz:
            z = torch.randn((b, prior.nz), generator=generator, device=prior.device)
        return prior.restore(x_tilde, j, z)

    def step(x: torch.Tensor, it: int) -> torch.Tensor:
        j = schedule[it % len(schedule)]
        b, c, h, w = x.shape
        xf = x.to(prior.device, torch.float32)
        ph, pw = (-h) % mult, (-w) % mult
        xp = F.pad(xf, (0, pw, 0, ph), mode="replicate") if (ph or pw) else xf
        if c == prior.channels:
            g = restore_net(2 * xp - 1, j)
        elif c == 1 and prior.channels == 3:
            g = restore_net(2 * xp.expand(-1, 3, -1, -1) - 1, j).mean(dim=1, keepdim=True)
        elif prior.channels == 1:
            g = restore_net(2 * xp.reshape(b * c, 1, *xp.shape[-2:]) - 1, j).reshape(b, c, *xp.shape[-2:])
        else:
            raise TaskError(f"a {prior.channels}-channel prior cannot restore {c}-channel images")
        g = g[..., :h, :w].to(x.device, x.dtype)
        return (1.0 - cfg.alpha) * x + cfg.alpha * g

    return step
