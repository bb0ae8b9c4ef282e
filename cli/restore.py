"""``pnp-rgm restore``: restore observations (files or folders) with a prior-free method or a learned prior."""
from __future__ import annotations

import os
from pathlib import Path

import click
import numpy as np
from tqdm.auto import tqdm

from pnp_rgm.errors import ImageError, TaskError
from pnp_rgm.io import IMAGE_EXTENSIONS, image_files, image_to_tensor, read_image, tensor_to_image, write_image
from pnp_rgm.metrics import psnr, ssim
from pnp_rgm.operators import mask_from_image
from pnp_rgm.tasks import grayscale_observation, known_pixels, simulate_observation, sr_factor

from ._common import check_outputs, parse_settings


def _expand(inputs: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = image_files(p)
            if not found:
                raise ImageError(f"folder '{p}' contains no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            files.extend(found)
        elif not p.exists():
            raise ImageError(f"cannot read image '{p}': no such file")
        else:
            files.append(p)
    return files


def _outputs(files: list[Path], output: str | None) -> list[Path]:
    if output is None:
        return [f.with_name(f.stem + "_restored.png") for f in files]
    out = Path(output)
    if len(files) == 1 and out.suffix:
        return [out]
    if out.exists() and not out.is_dir():
        raise TaskError(f"-o '{out}' must be a folder when restoring {len(files)} images")
    return [out / (f.stem + ".png") for f in files]


@click.command()
@click.argument("inputs", nargs=-1, metavar="INPUT...")
@click.option("--task", required=True, metavar="TASK",
              help="denoise, srN (e.g. sr4), srN-bicubic, colorize, inpaint, deblur-gauss, deblur-uniform.")
@click.option("-o", "--output", default=None, metavar="OUT",
              help="Output file (one input) or folder (several). Default: INPUT_restored.png beside each input.")
@click.option("--prior", default=None, metavar="PRIOR",
              help="'none' (pseudo-inverse), 'tv' (TV-regularized DRS), a bundled prior name (see `pnp-rgm priors`) "
                   "or a checkpoint folder (RGM-DRS). Default: the task's preset.")
@click.option("--sigma", type=float, default=0.0, show_default=True, help="Noise std of the observation, [0, 1] units.")
@click.option("--mask", metavar="MASK", default=None, help="inpaint: mask image, white = known (required).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (noise, latents).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Solver setting (tv: tv_weight, lam, iters; learned: outer, levels, alpha, lam, nu, z) "
                   "or operator parameter (width, size). Repeatable.")
@click.option("--simulate", metavar="CLEAN", default=None,
              help="Degrade the clean image CLEAN with TASK (and --sigma, --seed) first, restore it, print PSNR/SSIM.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True, help="Bits per sample (PNG/TIFF).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def restore(inputs, task, output, prior, sigma, mask, seed, device, settings, simulate, bits, overwrite):
    """Restore each INPUT, an observation of TASK: for sr4 the low-resolution image, for colorize a
    grayscale image, for inpaint the image plus --mask. INPUT may be several files or a folder;
    under torchrun the files are shared out across the processes."""
    from pnp_rgm.api import Restorer

    if simulate is not None and inputs:
        raise TaskError("give either INPUT files or --simulate CLEAN, not both")
    if simulate is None and not inputs:
        raise TaskError("no INPUT given; pass observation files/folders or --simulate CLEAN")
    if mask is not None and task != "inpaint":
        raise TaskError(f"--mask is only used by task 'inpaint', not {task!r}")
    if task == "inpaint" and mask is None and simulate is None:
        raise TaskError("task 'inpaint' needs --mask (an image, white = known pixel)")

    files = [Path(simulate)] if simulate is not None else _expand(inputs)
    outs = _outputs(files, output)
    if simulate is not None and output is None:
        outs = [files[0].with_name(files[0].stem + f"_{task}_restored.png")]
    check_outputs(outs, overwrite)
    restorer = Restorer(task, prior, sigma=sigma, device=device, seed=seed, **parse_settings(settings))
    mask_arr = None
    if mask is not None:
        mask_arr = mask_from_image(read_image(mask))

    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    jobs = list(zip(files, outs))[rank::world]
    bar = tqdm(jobs, desc=f"{task}/{prior or 'preset'}", unit="img", disable=len(jobs) < 2 or None)
    for src, dst in bar:
        img = read_image(src)
        if simulate is not None:
            img, y, mask_arr = _simulate(img, task, sigma, seed, mask_arr, restorer.op_params)
        else:
            if mask_arr is not None and mask_arr.shape != img.shape[:2]:
                raise TaskError(f"mask '{mask}' is {mask_arr.shape[1]}x{mask_arr.shape[0]} "
                                f"but '{src}' is {img.shape[1]}x{img.shape[0]}")
            y = image_to_tensor(grayscale_observation(img, str(src)) if task == "colorize" else img)
        result = tensor_to_image(restorer.restore_tensor(y, mask_arr))
        write_image(dst, result, bits=int(bits), overwrite=overwrite)
        if simulate is not None:
            click.echo(f"wrote {dst}: PSNR {psnr(img, result):.2f} dB, SSIM {ssim(img, result):.4f} against {src}")
        elif len(jobs) == 1:
            click.echo(f"wrote {dst} ({result.shape[1]}x{result.shape[0]}, {result.shape[2]} channel(s))")
    if len(jobs) > 1:
        click.echo(f"wrote {len(jobs)} images" + (f" (rank {rank} of {world})" if world > 1 else ""))


def _simulate(img: np.ndarray, task: str, sigma: float, seed: int, mask: np.ndarray | None, op_params: dict):
    """Degrade a clean image as `pnp-rgm degrade` does: returns (clean, observation, mask)."""
    n = sr_factor(task) or 1
    img = img[: img.shape[0] // n * n, : img.shape[1] // n * n]
    op, y = simulate_observation(task, image_to_tensor(img).double(), sigma, seed, mask, **op_params)
    return img, y.float(), known_pixels(op)


@click.command()
def priors():
    """List the bundled priors (pass a name to `restore --prior`) and the tasks whose preset uses each."""
    from pnp_rgm.presets import load_presets
    from pnp_rgm.priors import available_priors, prior_title

    names = available_priors()
    if not names:
        click.echo("no bundled priors in this installation; train one with `pnp-rgm train` and pass its folder to --prior")
    uses: dict[str, list[str]] = {}
    for task, preset in load_presets().items():
        if task != "default":
            uses.setdefault(preset.prior, []).append(task)
    width = max((len(n) for n in names), default=0)
    for name in names:
        tasks = ", ".join(uses.get(name, [])) or "none"
        click.echo(f"{name:<{width}}  {prior_title(name)}  (preset of: {tasks})")
