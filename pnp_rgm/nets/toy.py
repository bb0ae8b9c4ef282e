"""Small MLPs for the 2-D toy problem (8-Gaussian mixture): generator and conditional critic."""
from __future__ import annotations

import torch
import torch.nn as nn

from pnp_rgm.nets.unet import timestep_embedding

__all__ = ["ToyGenerator", "ToyDiscriminator"]


class ToyGenerator(nn.Module):
    """G(x_k, cond, z) for points (B, dim): predicts x0. nz = 0 gives the MMSE / no-z variant."""

    def __init__(self, dim: int = 2, nz: int = 2, hidden: int = 128, emb: int = 32, layers: int = 3) -> None:
        super().__init__()
        self.nz, self.emb = nz, emb
        mods: list[nn.Module] = []
        d = dim + nz + emb
        for _ in range(layers):
            mods += [nn.Linear(d, hidden), nn.SiLU()]
            d = hidden
        mods.append(nn.Linear(d, dim))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        e = timestep_embedding(cond.reshape(-1).float().expand(x.shape[0]), self.emb)
        parts = [x, e]
        if self.nz:
            parts.append(z if z is not None else torch.zeros(x.shape[0], self.nz, device=x.device))
        return self.net(torch.cat(parts, dim=1))


class ToyDiscriminator(nn.Module):
    """D(x_prev, x_k, k) -> (logit (B,), features (B, hidden))."""

    def __init__(self, dim: int = 2, hidden: int = 128, emb: int = 32) -> None:
        super().__init__()
        self.emb = emb
        self.body = nn.Sequential(nn.Linear(2 * dim + emb, hidden), nn.LeakyReLU(0.2),
                                  nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                                  nn.Linear(hidden, hidden), nn.LeakyReLU(0.2))
        self.head = nn.Linear(hidden, 1)
        self.feat_dim = hidden

    def forward(self, x_prev: torch.Tensor, x_k: torch.Tensor, k: torch.Tensor):
        e = timestep_embedding(k.reshape(-1).float().expand(x_k.shape[0]), self.emb)
        phi = self.body(torch.cat([x_prev, x_k, e], dim=1))
        return self.head(phi).squeeze(1), phi
