"""``pnp-rgm degrade``: make an observation exactly as the task's operator defines it."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from pnp_rgm.errors import TaskError
from pnp_rgm.io import image_to_tensor, read_image, tensor_to_image
from pnp_rgm.operators import mask_from_image
from pnp_rgm.tasks import OPERATOR_KEYS, known_pixels, simulate_observation, with_default_boundary

from ._common import check_outputs, parse_settings, write_output


@click.command()
@click.argument("clean", metavar="CLEAN")
@click.option("--task", required=True, metavar="TASK",
              help="denoise, srN (e.g. sr4), srN-bicubic, colorize, inpaint, deblur-gauss, deblur-uniform.")
@click.option("-o", "--output", required=True, metavar="OUT", help="Observation file (.png, .tif, .bmp, .jpg).")
@click.option("--sigma", type=float, default=0.0, show_default=True,
              help="Gaussian noise std in [0, 1] image units (25/255 = 0.098).")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Seed of the noise and of a random mask.")
@click.option("--mask", metavar="MASK", default=None,
              help="inpaint: mask image, white = known. Default: 50% random pixels (--set missing=0.5, or --set box=center).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Operator parameter: width/size/boundary (deblur; boundary free, the default: the scene "
                   "beyond the image is its mirror image; zero: black), missing/box (inpaint). Repeatable.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True, help="Bits per sample (PNG/TIFF).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def degrade(clean, task, output, sigma, seed, mask, settings, bits, overwrite):
    """Degrade CLEAN with TASK's operator (y = A x + sigma n) and write the observation to OUT.

    srN writes an N-times smaller image, colorize a 1-channel image, inpaint an image whose
    missing pixels are 0 plus its mask beside it (OUT_mask.png, white = known).
    """
    params = parse_settings(settings)
    bad = sorted(set(params) - set(OPERATOR_KEYS))
    if bad:
        raise TaskError(f"unknown --set key(s) {', '.join(bad)} for degrade; valid: {', '.join(OPERATOR_KEYS)}")
    out = Path(output)
    outputs = [out]
    mask_out = out.with_name(out.stem + "_mask.png")
    if task == "inpaint":
        outputs.append(mask_out)
    elif mask is not None:
        raise TaskError(f"--mask is only used by task 'inpaint', not {task!r}")
    check_outputs(outputs, overwrite)

    img = read_image(clean)
    x = image_to_tensor(img).double()
    m = None
    if mask is not None:
        m = read_image(mask)
        if m.shape[:2] != img.shape[:2]:
            raise TaskError(f"mask '{mask}' is {m.shape[1]}x{m.shape[0]} but the image is {img.shape[1]}x{img.shape[0]}")
        m = mask_from_image(m)
    op, y = simulate_observation(task, x, sigma, seed, m, **with_default_boundary(task, params))

    write_output(out, tensor_to_image(y.float()), int(bits), overwrite)
    if task == "inpaint":
        try:
            write_output(mask_out, known_pixels(op).astype(np.float32), 8, overwrite)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        click.echo(f"wrote {out} ({y.shape[-1]}x{y.shape[-2]}) and mask {mask_out}")
    else:
        click.echo(f"wrote {out} ({y.shape[-1]}x{y.shape[-2]}, {y.shape[1]} channel(s))")
