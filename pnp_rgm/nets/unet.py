"""Fully convolutional U-Net generator with step/noise-level embedding and z -> AdaGN.

``Generator(cfg)(x, cond, z=None)``: x (B, C, H, W) in the network's [-1, 1] space (any H, W:
padded to ``cfg.multiple`` by reflection and cropped back), cond (B,) float (the step k for
``kind: rgm``, log sigma for ``kind: mmse`` and for a noise-level conditioned RGM generator,
``precond: edm``), z (B, nz) latent (``None`` = zeros, the mode-seeking
choice), mask (B, 1, H, W) of known pixels for a model with ``mask_channel`` (``None`` = all known). Returns the predicted clean image x0_hat (B, C, H, W) in [-1, 1] space (unclamped).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Generator", "MappingNetwork", "timestep_embedding", "pad_to_multiple"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of a float tensor (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None] * 100.0
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if (ph < h and pw < w) else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


class MappingNetwork(nn.Module):
    """z (B, nz) -> w (B, w_dim): pixel-norm then an MLP with leaky ReLU (StyleGAN-style)."""

    def __init__(self, nz: int, w_dim: int, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        d = nz
        for _ in range(layers):
            mods += [nn.Linear(d, w_dim), nn.LeakyReLU(0.2)]
            d = w_dim
        self.net = nn.Sequential(*mods)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        return self.net(z)


class AdaGN(nn.Module):
    """GroupNorm without affine, then per-channel (1 + scale) and shift from the condition."""

    def __init__(self, ch: int, cond_dim: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(min(groups, ch), ch, affine=False)
        self.proj = nn.Linear(cond_dim, 2 * ch)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(c)[:, :, None, None].chunk(2, dim=1)
        return self.norm(x) * (1 + scale) + shift


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int, groups: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.n1 = AdaGN(cin, cond_dim, groups)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.n2 = AdaGN(cout, cond_dim, groups)
        self.drop = nn.Dropout(dropout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x, c)))
        h = self.c2(self.drop(F.silu(self.n2(h, c))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over pixels (optional, at chosen levels)."""

    def __init__(self, ch: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(min(groups, ch), ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.out = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        b, ch, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, ch, h * w).unbind(1)
        o = F.scaled_dot_product_attention(q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None],
                                           v.transpose(1, 2)[:, None])[:, 0]
        return x + self.out(o.transpose(1, 2).reshape(b, ch, h, w))


SIGMA_DATA = 0.5  # std of images in [-1, 1] network space (EDM's σ_data)


def edm_coefficients(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in) of Karras et al. (2022) for noise std ``sigma`` (B,) in [-1, 1] units,
    shaped (B, 1, 1, 1)."""
    s = sigma.float().view(-1, 1, 1, 1)
    r = torch.rsqrt(s ** 2 + SIGMA_DATA ** 2)
    return SIGMA_DATA ** 2 * r ** 2, s * SIGMA_DATA * r, r


class Generator(nn.Module):
    """U-Net generator / MMSE twin (see module docstring). Built from a ModelConfig."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.cfg = cfg
        self.kind = cfg.kind
        self.nz = cfg.nz if cfg.kind == "rgm" else 0
        # cond is log σ (twins; RGM generators with EDM preconditioning), not a step index
        self.sigma_conditioned = cfg.kind == "mmse" or cfg.precond == "edm"
        E = cfg.emb_dim
        cond_dim = E + (cfg.w_dim if self.nz else 0)
        self.t_mlp = nn.Sequential(nn.Linear(E, E), nn.SiLU(), nn.Linear(E, E))
        self.mapping = MappingNetwork(self.nz, cfg.w_dim, cfg.mapping_layers) if self.nz else None
        C, W, G = cfg.channels, cfg.base_width, cfg.groups
        widths = [W * m for m in cfg.channel_mult]
        self.stem = cfg.stem_stride  # pixel-unshuffle stem: the U-Net runs at 1/stem resolution
        self.multiple = cfg.multiple
        self.mask_channel = bool(getattr(cfg, "mask_channel", False))
        self.inc = nn.Conv2d((C + self.mask_channel) * self.stem ** 2, W, 3, padding=1)
        self.down = nn.ModuleList()
        skips = [W]
        ch = W
        for lvl, w in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(ch, w, cond_dim, G, cfg.dropout))
                ch = w
                if lvl in cfg.attention_levels:
                    blocks.append(Attention(ch, G))
                skips.append(ch)
            ds = nn.Conv2d(ch, ch, 3, stride=2, padding=1) if lvl < len(widths) - 1 else None
            if ds is not None:
                skips.append(ch)
            self.down.append(nn.ModuleDict({"blocks": blocks, **({"ds": ds} if ds is not None else {})}))
        self.mid = nn.ModuleList([ResBlock(ch, ch, cond_dim, G, cfg.dropout), ResBlock(ch, ch, cond_dim, G, cfg.dropout)])
        self.up = nn.ModuleList()
        for lvl in reversed(range(len(widths))):
            w = widths[lvl]
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResBlock(ch + skips.pop(), w, cond_dim, G, cfg.dropout))
                ch = w
                if lvl in cfg.attention_levels:
                    blocks.append(Attention(ch, G))
            us = nn.Conv2d(ch, ch, 3, padding=1) if lvl > 0 else None
            self.up.append(nn.ModuleDict({"blocks": blocks, **({"us": us} if us is not None else {})}))
        self.out_norm = nn.GroupNorm(min(G, ch), ch)
        self.outc = nn.Conv2d(ch, C * self.stem ** 2, 3, padding=1)

    def _cond(self, cond: torch.Tensor, z: torch.Tensor | None, b: int, device) -> torch.Tensor:
        cond = cond.to(device=device, dtype=torch.float32).reshape(-1)
        if cond.numel() == 1 and b > 1:
            cond = cond.expand(b)
        c = self.t_mlp(timestep_embedding(cond, self.cfg.emb_dim))
        if self.mapping is not None:
            if z is None:
                z = torch.zeros(b, self.nz, device=device)
            c = torch.cat([c, self.mapping(z.to(device=device, dtype=torch.float32))], dim=1)
        return c

    def forward(self, x: torch.Tensor, cond: torch.Tensor, z: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        b = x.shape[0]
        x, (h0, w0) = pad_to_multiple(x, self.multiple)
        if self.mask_channel:  # (B, 1, H, W), 1 = known; None = all known
            mask = torch.ones_like(x[:, :1]) if mask is None else pad_to_multiple(mask.to(x.dtype), self.multiple)[0]
        c = self._cond(cond, z, b, x.device)
        skip = None
        if self.sigma_conditioned:  # input scaling so noisy inputs keep ~unit variance
            sig = torch.exp(cond.to(x.device, torch.float32).reshape(-1)).expand(b)
            if self.cfg.precond == "edm":
                c_skip, c_out, c_in = edm_coefficients(sig)
                skip = (c_skip.to(x.dtype) * x, c_out.to(x.dtype))
                x = x * c_in.to(x.dtype)
            else:
                x = x * torch.rsqrt(1.0 + sig ** 2).to(x.dtype)[:, None, None, None]
        if self.mask_channel:
            x = torch.cat([x, mask], dim=1)
        if self.stem > 1:
            x = F.pixel_unshuffle(x, self.stem)
        h = self.inc(x)
        hs = [h]
        for stage in self.down:
            for blk in stage["blocks"]:
                h = blk(h, c)
                if isinstance(blk, ResBlock):
                    hs.append(h)
            if "ds" in stage:
                h = stage["ds"](h)
                hs.append(h)
        for blk in self.mid:
            h = blk(h, c)
        for stage in self.up:
            for blk in stage["blocks"]:
                if isinstance(blk, ResBlock):
                    h = blk(torch.cat([h, hs.pop()], dim=1), c)
                else:
                    h = blk(h, c)
            if "us" in stage:
                h = stage["us"](F.interpolate(h, scale_factor=2, mode="nearest"))
        out = self.outc(F.silu(self.out_norm(h)))
        if self.stem > 1:
            out = F.pixel_shuffle(out, self.stem)
        if skip is not None:
            out = skip[0] + skip[1] * out
        return out[..., :h0, :w0]
