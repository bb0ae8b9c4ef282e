"""``pnp-rgm train``: train an RGM prior (or MMSE twin) on a folder of images."""
from __future__ import annotations

import click

from ._common import parse_settings


@click.command()
@click.argument("config", metavar="CONFIG")
@click.option("--data", "data_dir", default=None, metavar="DIR",
              help="Folder of training images (PNG/JPEG/BMP/TIFF, searched recursively); not read by the data-free "
                   "rsd objective. On --resume it defaults to the run's own (recorded in checkpoint/trainer/state.json).")
@click.option("--out", "out_dir", required=True, metavar="DIR",
              help="Run folder: config.yaml, log.jsonl, samples/, checkpoint/. A new run needs a new or empty folder.")
@click.option("--steps", type=int, default=None,
              help="Total training steps (overrides train.steps; on --resume, extends the run: >= its step).")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its checkpoint, with its saved config and optimizer state.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set data.batch_size=8 --set train.precision=fp32. Repeatable.")
@click.option("--corrupt", is_flag=True,
              help="--data holds clean images: corrupt each once on loading as the config's corruption section says "
                   "(for experiments with priors learned from corrupted data only).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(config, data_dir, out_dir, steps, resume, overrides, corrupt, quiet):
    """Train a prior from CONFIG (a YAML file or a shipped config name such as rgm-kld-d-cpu).

    Writes DIR/config.yaml, log.jsonl, samples/*.png and checkpoint/ (the prior; load it with
    pnp_rgm.priors.load_prior or `pnp-rgm sample`). Everything (config, data, teacher) is checked
    before DIR is written; a new run that fails before its first step removes what it created.

    On --resume the run's saved config is used, steps included: CONFIG and --set must agree with it
    (an error names the keys that differ; the run's own --set and --corrupt are remembered and need
    not be repeated), except --steps (or --set train.steps=N: extend the run) and --set
    train.max_seconds=S (a wall-clock budget for this process), train.device and data.num_workers
    (where it runs). --data may be left out; another folder than the run's is used with a warning.

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
    given = parse_settings(overrides)
    settings = {**_run_settings(out_dir), **given} if resume else given  # a run's own --set need not be repeated
    cfg = load_run_config(config)
    if settings:
        cfg = replace_config(cfg, settings)
    if resume and steps is None and "train.steps" in given:  # on resume the saved steps stay unless asked
        steps = cfg.train.steps
    if data_dir is None and cfg.objective.kind != "rsd" and not resume:
        raise ConfigError("--data: a folder of training images is required (only the rsd objective is data free)")
    if corrupt:
        if cfg.corruption.operator == "none":
            raise ConfigError("--corrupt: the config has no corruption to simulate (set corruption.operator)")
        cfg = replace_config(cfg, {"corruption.simulate": True})
        settings["corruption.simulate"] = True
    summary = run_train(cfg, data_dir, out_dir, steps=steps, resume=resume, progress=not quiet, settings=settings)
    if summary and summary.get("rank", 0) == 0:
        stopped = " (stopped by train.max_seconds; --resume continues)" if summary.get("stopped_early") else ""
        click.echo(f"step {summary['step']}: checkpoint in {summary['checkpoint']} "
                   f"({summary['wall_time_s']:.0f} s){stopped}", err=True)


def _run_settings(out_dir: str) -> dict:
    """The --set overrides (and --corrupt) the run in ``out_dir`` was started with, {} without one
    (the trainer then reports the missing checkpoint); not those of a single call (RESUME_KEYS)."""
    from pathlib import Path

    from pnp_rgm.train.checkpoint import load_trainer_meta
    from pnp_rgm.train.config import RESUME_KEYS

    ckpt = Path(out_dir) / "checkpoint"
    if not (ckpt / "trainer" / "state.json").is_file():
        return {}
    return {k: v for k, v in (load_trainer_meta(ckpt).get("settings") or {}).items() if k not in RESUME_KEYS}
