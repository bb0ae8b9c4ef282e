"""``pnp-rgm train``: train an RGM prior (or MMSE twin) on a folder of images."""
from __future__ import annotations

import click

from ._common import parse_settings


@click.command()
@click.argument("config", metavar="CONFIG")
@click.option("--data", "data_dir", default=None, metavar="DIR",
              help="Folder of training images (PNG/JPEG/BMP/TIFF, searched recursively); not read by the data-free rsd objective.")
@click.option("--out", "out_dir", required=True, metavar="DIR", help="Run folder: config.yaml, log.jsonl, samples/, checkpoint/.")
@click.option("--steps", type=int, default=None, help="Total training steps (overrides train.steps).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint (same step count and optimizer state).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set data.batch_size=8 --set train.precision=fp32. Repeatable.")
@click.option("--corrupt", is_flag=True,
              help="--data holds clean images: corrupt each once on loading as the config's corruption section says "
                   "(for experiments with priors learned from corrupted data only).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(config, data_dir, out_dir, steps, resume, overrides, corrupt, quiet):
    """Train a prior from CONFIG (a YAML file or a shipped config name such as rgm-kld-d-cpu).

    Writes DIR/config.yaml, log.jsonl, samples/*.png and checkpoint/ (the prior; load it with
    pnp_rgm.priors.load_prior or `pnp-rgm sample`). On --resume the run's saved config is used
    (only --steps and --set train.max_seconds=S, a wall-clock budget for this process, change it).

    Distillation (objective.kind: rsd) needs no --data: it distills the objective.teacher checkpoint
    into a one-step generator (sample it with `pnp-rgm sample`).

    Multi-GPU / multi-node: run the same command under torchrun (batch_size is per process):
    torchrun --nproc_per_node 4 --no-python pnp-rgm train CONFIG --data DIR --out DIR
    """
    from pnp_rgm.config import replace_config
    from pnp_rgm.errors import ConfigError
    from pnp_rgm.train.config import load_run_config
    from pnp_rgm.train.trainer import train as run_train

    if steps is not None and steps < 1:
        raise ConfigError(f"--steps: must be >= 1, got {steps}")
    cfg = load_run_config(config)
    if overrides:
        cfg = replace_config(cfg, parse_settings(overrides))
    if data_dir is None and cfg.objective.kind != "rsd":
        raise ConfigError("--data: a folder of training images is required (only the rsd objective is data free)")
    if corrupt:
        if cfg.corruption.operator == "none":
            raise ConfigError("--corrupt: the config has no corruption to simulate (set corruption.operator)")
        cfg = replace_config(cfg, {"corruption.simulate": True})
    summary = run_train(cfg, data_dir, out_dir, steps=steps, resume=resume, progress=not quiet)
    if summary and summary.get("rank", 0) == 0:
        stopped = " (stopped by train.max_seconds; --resume continues)" if summary.get("stopped_early") else ""
        click.echo(f"step {summary['step']}: checkpoint in {summary['checkpoint']} "
                   f"({summary['wall_time_s']:.0f} s){stopped}", err=True)
