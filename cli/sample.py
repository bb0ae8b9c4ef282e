"""``pnp-rgm sample``: generate images from a prior with RGM's Algorithm 3."""
from __future__ import annotations

import math

import click


@click.command()
@click.argument("checkpoint", metavar="CKPT")
@click.option("-n", "count", type=int, default=64, show_default=True, help="Number of images.")
@click.option("-o", "--output", required=True, metavar="OUT", help="Grid image file (.png, .tif, .bmp, .jpg).")
@click.option("--size", type=int, default=64, show_default=True, help="Side of each generated image (pixels).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--nrow", type=int, default=None, help="Images per grid row (default: ~sqrt(n)).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def sample(checkpoint, count, output, size, seed, nrow, device, overwrite):
    """Generate N images from pure noise in K steps with the prior in CKPT (a checkpoint folder
    or a bundled prior name) and write them as one grid image."""
    from pathlib import Path

    import torch

    from pnp_rgm.errors import OutputExistsError, PnpRgmError
    from pnp_rgm.io import write_image
    from pnp_rgm.priors import load_prior
    from pnp_rgm.sampling import image_grid

    if count < 1:
        raise PnpRgmError(f"-n: must be >= 1, got {count}")
    if size < 1:
        raise PnpRgmError(f"--size: must be >= 1, got {size}")
    if Path(output).exists() and not overwrite:
        raise OutputExistsError(f"{output} exists; pass --overwrite to replace it")
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    if dev not in ("cpu", "cuda") and not dev.startswith("cuda:"):
        raise PnpRgmError(f"--device: expected auto, cpu or cuda, got {device!r}")
    prior = load_prior(checkpoint, device=dev)
    with torch.no_grad():
        imgs = prior.sample(count, size=size, seed=seed, progress=True)
    nrow = nrow or max(1, int(math.ceil(math.sqrt(count))))
    write_image(output, image_grid(imgs, nrow), overwrite=True)
    click.echo(f"wrote {count} samples to {output}", err=True)
