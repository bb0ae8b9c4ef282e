"""``pnp-rgm sample``: generate images from a prior with RGM's Algorithm 3."""
from __future__ import annotations

import math

import click

from ._common import write_output

MAX_SIZE = 4096  # --size: a larger image's sampling cannot fit in any machine's memory


@click.command()
@click.argument("checkpoint", metavar="CKPT")
@click.option("-n", "count", type=int, default=64, show_default=True, help="Number of images.")
@click.option("-o", "--output", required=True, metavar="OUT", help="Grid image file (.png, .tif, .bmp, .jpg).")
@click.option("--size", type=int, default=64, show_default=True,
              help=f"Side of each generated image (pixels, at most {MAX_SIZE}).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--nrow", type=int, default=None, help="Images per grid row (default: ~sqrt(n)).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def sample(checkpoint, count, output, size, seed, nrow, device, overwrite):
    """Generate N images from pure noise in K steps with the prior in CKPT (a checkpoint folder
    or a bundled prior name) and write them as one grid image."""
    from pathlib import Path

    import torch

    from pnp_rgm.api import resolve_device
    from pnp_rgm.errors import OutputExistsError, PnpRgmError, is_out_of_memory
    from pnp_rgm.io import WRITE_EXTENSIONS, check_image_output
    from pnp_rgm.priors import load_prior
    from pnp_rgm.sampling import image_grid

    if count < 1:
        raise PnpRgmError(f"-n: must be >= 1, got {count}")
    if not 1 <= size <= MAX_SIZE:
        raise PnpRgmError(f"--size: must be in 1..{MAX_SIZE}, got {size}")
    if nrow is not None and nrow < 1:
        raise PnpRgmError(f"--nrow: must be >= 1, got {nrow}")
    out = Path(output)  # checked before sampling, which can take long
    if out.is_dir():
        raise PnpRgmError(f"-o {output}: is a folder; give an image file name ({', '.join(WRITE_EXTENSIONS)})")
    check_image_output(out)  # the extension, before sampling
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{output} exists; pass --overwrite to replace it")
    dev = resolve_device(device)
    prior = load_prior(checkpoint, device=dev)
    nrow = nrow or max(1, int(math.ceil(math.sqrt(count))))
    try:
        with torch.no_grad():
            imgs = prior.sample(count, size=size, seed=seed, progress=True)
        grid = image_grid(imgs, nrow)
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise PnpRgmError(f"out of memory sampling {count} images of {size}x{size} on {dev}; "
                          f"lower -n or --size") from None
    write_output(out, grid, 8, overwrite)  # never a file that appeared meanwhile, unless --overwrite
    click.echo(f"wrote {count} samples to {output}", err=True)
