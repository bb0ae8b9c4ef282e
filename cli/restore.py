"""``pnp-rgm restore``: restore an observation."""
from __future__ import annotations

from pathlib import Path

import click
import torch
from tqdm.auto import tqdm

from pnp_rgm.errors import TaskError
from pnp_rgm.io import image_to_tensor, read_image, tensor_to_image, write_image
from pnp_rgm.operators import mask_from_image
from pnp_rgm.tasks import BASELINES, OPERATOR_KEYS, grayscale_observation, make_task_operator, restore_baseline

from ._common import check_outputs, parse_settings


@click.command()
@click.argument("observation", metavar="INPUT")
@click.option("--task", required=True, metavar="TASK",
              help="denoise, srN (e.g. sr4), srN-bicubic, colorize, inpaint, deblur-gauss, deblur-uniform.")
@click.option("-o", "--output", default=None, metavar="OUT", help="Output file. Default: INPUT_restored.png beside INPUT.")
@click.option("--prior", default="tv", show_default=True, metavar="PRIOR",
              help="Prior-free methods: 'none' (pseudo-inverse A+y) or 'tv' (TV-regularized Douglas-Rachford).")
@click.option("--sigma", type=float, default=0.0, show_default=True, help="Noise std of the observation, [0, 1] units.")
@click.option("--mask", metavar="MASK", default=None, help="inpaint: mask image, white = known (required).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Solver setting (tv: tv_weight, lam, iters) or operator parameter (width, size). Repeatable.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True, help="Bits per sample (PNG/TIFF).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def restore(observation, task, output, prior, sigma, mask, seed, settings, bits, overwrite):
    """Restore INPUT, an observation of TASK (for sr4 the low-resolution image, for colorize a
    grayscale image, for inpaint the image plus --mask), and write the result."""
    if prior not in BASELINES:
        raise TaskError(f"unknown prior {prior!r}; valid: {', '.join(BASELINES)}")
    if not 0.0 <= sigma <= 1.0:
        raise TaskError(f"--sigma must be in [0, 1] (image units; 25/255 = 0.098), got {sigma}")
    if task == "inpaint" and mask is None:
        raise TaskError("task 'inpaint' needs --mask (an image, white = known pixel)")
    if mask is not None and task != "inpaint":
        raise TaskError(f"--mask is only used by task 'inpaint', not {task!r}")
    src = Path(observation)
    out = Path(output) if output else src.with_name(src.stem + "_restored.png")
    check_outputs([out], overwrite)

    settings = parse_settings(settings)
    op_params = {k: settings.pop(k) for k in list(settings) if k in OPERATOR_KEYS}
    img = read_image(src)
    if task == "colorize":
        img = grayscale_observation(img, str(src))
    m = None
    if mask is not None:
        mimg = read_image(mask)
        if mimg.shape[:2] != img.shape[:2]:
            raise TaskError(f"mask '{mask}' is {mimg.shape[1]}x{mimg.shape[0]} but the image is {img.shape[1]}x{img.shape[0]}")
        m = mask_from_image(mimg)
    y = image_to_tensor(img)
    torch.manual_seed(seed)
    op = make_task_operator(task, tuple(y.shape[1:]), mask=m, **op_params)

    bar = tqdm(total=None, desc=f"{task}/{prior}", unit="it", leave=False, disable=None)
    x = restore_baseline(op, y, prior, sigma=sigma, callback=lambda s: bar.update(1), **settings)
    bar.close()
    write_image(out, tensor_to_image(x), bits=int(bits), overwrite=overwrite)
    click.echo(f"wrote {out} ({x.shape[-1]}x{x.shape[-2]}, {x.shape[1]} channel(s))")
