"""Training of RGM priors: config, dataset, trainer (DDP), EMA, checkpoints.

Heavy modules are imported lazily: ``from pnp_rgm.train import train`` works, and
``pnp_rgm.train.config`` can be imported without pulling in the trainer."""
from __future__ import annotations

__all__ = ["train", "RunConfig", "load_run_config"]


def __getattr__(name):
    if name == "train":
        from pnp_rgm.train.trainer import train

        return train
    if name in ("RunConfig", "load_run_config"):
        from pnp_rgm.train import config

        return getattr(config, name)
    raise AttributeError(name)
