"""Tiny network sizes shared by the tests (fast on one CPU thread)."""
from __future__ import annotations

TINY_MODEL = dict(base_width=8, channel_mult=(1, 2), emb_dim=16, nz=8, w_dim=16, groups=4, disc_width=8, disc_mult=(1, 2))


def tiny_prior(process=None, channels=3, seed=0, model=None):
    """An untrained Prior with the tiny generator (for shape/determinism tests); ``model`` overrides
    model settings (e.g. ``{"precond": "edm"}``: a noise-level conditioned RGM generator)."""
    import torch

    from pnp_rgm.nets import Generator
    from pnp_rgm.priors import Prior
    from pnp_rgm.train.config import load_run_config

    cfg = load_run_config({"model": {**TINY_MODEL, "channels": channels, **(model or {})}, "process": process or {}})
    torch.manual_seed(seed)
    return Prior(Generator(cfg.model), cfg)


def tiny_mmse_prior(channels=3, seed=0):
    """An untrained MMSE twin (EDM preconditioning) with the tiny generator."""
    import torch

    from pnp_rgm.nets import Generator
    from pnp_rgm.priors import Prior
    from pnp_rgm.train.config import load_run_config

    model = {**TINY_MODEL, "channels": channels, "kind": "mmse", "nz": 0, "precond": "edm"}
    cfg = load_run_config({"model": model, "objective": {"kind": "mmse", "prior": "none", "continuous": True}})
    torch.manual_seed(seed)
    return Prior(Generator(cfg.model), cfg)
