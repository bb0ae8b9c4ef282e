"""Conditional discriminator D(x_{k-1}, x_k, k) for the RGM prior terms (written for pnp-rgm).

The pair is concatenated along channels and passed through strided residual blocks whose
activations get a learned per-channel bias from the step embedding; global sum pooling gives
a feature vector phi (B, F) (used by the MMD and DSWD priors), and the logit is a linear head
plus a projection term <embed(k), phi>. Inputs in the network's [-1, 1] space, any H, W.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from pnp_rgm.nets.unet import timestep_embedding

__all__ = ["Discriminator"]


class _DBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, down: bool) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.t = nn.Linear(emb, cout)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)
        self.down = down

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.leaky_relu(x, 0.2))
        h = h + self.t(e)[:, :, None, None]
        h = self.c2(F.leaky_relu(h, 0.2))
        s = self.skip(x)
        if self.down:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return (h + s) * (0.5 ** 0.5)


class Discriminator(nn.Module):
    """``forward(x_prev, x_k, k) -> (logit (B,), features (B, F))``; see module docstring."""

    def __init__(self, channels: int, width: int = 32, mult: tuple[int, ...] = (1, 2, 4, 4), emb_dim: int = 128) -> None:
        super().__init__()
        self.emb_dim = emb_dim
        self.t_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.LeakyReLU(0.2), nn.Linear(emb_dim, emb_dim))
        self.inc = nn.Conv2d(2 * channels, width, 3, padding=1)
        blocks = []
        ch = width
        for i, m in enumerate(mult):
            blocks.append(_DBlock(ch, width * m, emb_dim, down=i < len(mult) - 1))
            ch = width * m
        self.blocks = nn.ModuleList(blocks)
        self.feat_dim = ch
        self.head = nn.Linear(ch, 1)
        self.proj = nn.Linear(emb_dim, ch, bias=False)

    def forward(self, x_prev: torch.Tensor, x_k: torch.Tensor, k: torch.Tensor):
        e = self.t_mlp(timestep_embedding(k.reshape(-1).float().expand(x_k.shape[0]), self.emb_dim))
        h = self.inc(torch.cat([x_prev, x_k], dim=1))
        for blk in self.blocks:
            h = blk(h, e)
        phi = F.leaky_relu(h, 0.2).sum(dim=(2, 3)) / (h.shape[2] * h.shape[3]) ** 0.5
        logit = self.head(phi).squeeze(1) + (self.proj(e) * phi).sum(dim=1)
        return logit.float(), phi.float()
