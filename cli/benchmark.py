"""``pnp-rgm benchmark``: methods side by side on a folder of clean images."""
from __future__ import annotations

from pathlib import Path

import click

from ._common import parse_settings, precision_option


@click.command()
@click.option("--task", required=True, metavar="TASK", help="Task to simulate (e.g. sr4, colorize, denoise, inpaint).")
@click.option("--data", required=True, metavar="DIR", help="Folder of clean images.")
@click.option("--out", required=True, metavar="DIR", help="Output folder (results.csv, summary.md, grid.png, settings.yaml). A rerun into it must use the same settings; it skips finished rows and may add methods.")
@click.option("--methods", default="pinv,tv", show_default=True, help="Comma-separated: pinv, tv, bicubic (SR), preset (what restore does by default), bm3d and denoiser (denoise only), bm3d-pnp, rgm-drs-sr (the bundled SR-process prior), rgm-drs, dpir-hqs, ddrm, diffpir (denoiser and the last four need --prior; bm3d* need the bench extra).")
@click.option("--prior", default=None, metavar="PRIOR", help="Bundled prior name or checkpoint folder (rgm-drs, denoiser and the peers). A noise-level conditioned prior (an MMSE twin, or an RGM generator with EDM preconditioning) runs rgm-drs with the task preset's solver settings.")
@click.option("--sigma", type=float, default=0.0, show_default=True, help="Observation noise std, [0, 1] units.")
@click.option("--limit", type=int, default=0, show_default=True, help="Use the first N images (0 = all).")
@click.option("--crop", type=int, default=256, show_default=True, help="Centre crop size in pixels (0 = none).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the observation noise and masks.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Operator parameter of the simulated degradation, for every method (inpaint: missing=0.5 or box=center; deblur: width, size), or a solver setting for rgm-drs, rgm-drs-sr and preset over the preset's (a key no requested method uses is an error). Repeatable.")
@precision_option("Every learned method's network precision")
def benchmark(task, data, out, methods, prior, sigma, limit, crop, seed, settings, precision):
    """Run METHODS on simulated observations of the images in DIR; resumable (finished rows are skipped)."""
    from pnp_rgm.benchmark import run_benchmark
    from pnp_rgm.errors import TaskError

    _check_task(task)
    if not 0.0 <= sigma <= 1.0:
        raise TaskError(f"--sigma must be in [0, 1], got {sigma}")
    if limit < 0 or crop < 0:
        raise TaskError(f"--limit and --crop must be >= 0, got {limit} and {crop}")
    names = list(dict.fromkeys(m.strip() for m in methods.split(",") if m.strip()))  # each method once
    summary = run_benchmark(task, Path(data), Path(out), names, sigma=sigma, limit=limit, crop=crop, seed=seed,
                            prior=prior, settings=parse_settings(settings), precision=precision)
    click.echo(summary)
    click.echo(f"results in {Path(out) / 'results.csv'}")


def _check_task(task: str) -> None:
    """A task the command line can simulate (:func:`pnp_rgm.tasks.check_task`); ``matrix``, an operator
    of the Python API, needs a matrix only that API can pass."""
    from pnp_rgm.errors import TaskError
    from pnp_rgm.tasks import TASKS, check_task

    if task == "matrix":
        raise TaskError(f"--task matrix needs an explicit matrix (Python API only); valid here: {', '.join(TASKS)}")
    check_task(task)
