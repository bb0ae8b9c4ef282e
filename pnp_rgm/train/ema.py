"""Exponential moving average of a model's parameters (buffers copied)."""
from __future__ import annotations

import copy

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int | None = None) -> None:
        d = self.decay
        if step is not None:  # warm start: shorter memory early on
            d = min(d, (1 + step) / (10 + step))
        for pe, pm in zip(self.model.parameters(), model.parameters()):
            pe.lerp_(pm.detach(), 1 - d)
        for be, bm in zip(self.model.buffers(), model.buffers()):
            be.copy_(bm)
