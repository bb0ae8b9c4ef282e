"""``pnp-rgm restore``: restore observations (files or folders) with a prior-free method or a learned prior."""
from __future__ import annotations

import os
from pathlib import Path

import click
import numpy as np
from tqdm.auto import tqdm

from pnp_rgm.errors import ImageError, PnpRgmError, TaskError
from pnp_rgm.io import IMAGE_EXTENSIONS, check_image_output, image_files, image_to_tensor, read_image, tensor_to_image
from pnp_rgm.metrics import psnr, ssim
from pnp_rgm.operators import mask_from_image
from pnp_rgm.tasks import grayscale_observation, known_pixels, simulate_observation, sr_factor

from ._common import check_outputs, parse_settings, precision_option, write_output

#: the default output of INPUT (without -o) is INPUT_restored.png beside it
RESTORED = "_restored.png"
#: Restorer arguments with their own option: `--set` must not pass them a second time
OWN_OPTIONS = {"task": "--task", "prior": "--prior", "sigma": "--sigma", "device": "--device", "seed": "--seed",
               "precision": "--precision", "mask": "--mask"}


def _expand(inputs: tuple[str, ...], skip_outputs: bool) -> list[Path]:
    """The image files of INPUT...; folders are listed, without earlier *_restored.png outputs if ``skip_outputs``."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = [f for f in image_files(p) if not (skip_outputs and f.name.endswith(RESTORED))]
            if not found:
                skipped = f"; earlier *{RESTORED} outputs are skipped" if skip_outputs else ""
                raise ImageError(f"folder '{p}' contains no images ({', '.join(sorted(IMAGE_EXTENSIONS))}){skipped}")
            files.extend(found)
        elif not p.exists():
            raise ImageError(f"cannot read image '{p}': no such file")
        else:
            files.append(p)
    return files


def _outputs(files: list[Path], output: str | None, suffix: str) -> list[Path]:
    """One output per input (INPUT``suffix`` beside it without -o); two inputs may not share one."""
    out = Path(output) if output is not None else None
    if out is None:
        outs = [f.with_name(f.stem + suffix) for f in files]
    elif len(files) == 1 and out.suffix:
        outs = [out]
    elif (out.exists() and not out.is_dir()) or (not out.exists() and out.suffix.lower() in IMAGE_EXTENSIONS):
        raise TaskError(f"-o '{out}' must be a folder when restoring {len(files)} images")
    else:
        outs = [out / (f.stem + ".png") for f in files]
    seen: dict[Path, Path] = {}
    for src, dst in zip(files, outs):
        first = seen.setdefault(dst.resolve(), src)
        if first is not src:
            raise TaskError(f"inputs '{first}' and '{src}' would both be restored to '{dst}'; "
                            "rename one or restore them separately")
    return outs


def _device(device: str, world: int) -> str:
    """Under torchrun each process uses its own GPU, cuda:LOCAL_RANK, instead of all using GPU 0."""
    if world > 1 and device in ("auto", "cuda") and "LOCAL_RANK" in os.environ:
        import torch

        if device == "cuda" or torch.cuda.is_available():
            return f"cuda:{os.environ['LOCAL_RANK']}"
    return device


@click.command()
@click.argument("inputs", nargs=-1, metavar="INPUT...")
@click.option("--task", required=True, metavar="TASK",
              help="denoise, srN (e.g. sr4), srN-bicubic, colorize, inpaint, deblur-gauss, deblur-uniform.")
@click.option("-o", "--output", default=None, metavar="OUT",
              help="Output file (one input) or folder (several). Default: INPUT_restored.png beside each input "
                   "(a folder's own *_restored.png files, earlier outputs, are then skipped).")
@click.option("--prior", default=None, metavar="PRIOR",
              help="'none' (pseudo-inverse), 'tv' (TV-regularized DRS), 'bm3d' (DRS with BM3D; pip install "
                   "'pnp-rgm[bench]'), a bundled prior name (see `pnp-rgm priors`) "
                   "or a checkpoint folder (RGM-DRS). Default: the task's preset.")
@click.option("--sigma", type=float, default=0.0, show_default=True,
              help="Noise std of the observation, [0, 1] units (a deblur task's 8-bit file at 0: its rounding "
                   "noise, 1/(255*sqrt(12)) = 0.00113).")
@click.option("--mask", metavar="MASK", default=None, help="inpaint: mask image, white = known (required).")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Random seed (noise, simulated mask, latents).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda (under torchrun: each process's GPU).")
@precision_option("A learned prior's network precision")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Solver setting (tv: tv_weight, lam, iters, init_rcond; none: rcond; learned: steps, "
                   "sigma_max, sigma_min, alpha, lam, nu, outer, levels, z, flip, ensemble, samples) or "
                   "operator parameter (width, size, boundary: free, the default, or zero). Repeatable.")
@click.option("--simulate", metavar="CLEAN", default=None,
              help="Degrade the clean image CLEAN with TASK (and --sigma, --seed) first, restore it, print PSNR/SSIM.")
@click.option("--bits", type=click.Choice(["8", "16"]), default="8", show_default=True, help="Bits per sample (PNG/TIFF).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def restore(inputs, task, output, prior, sigma, mask, seed, device, precision, settings, simulate, bits, overwrite):
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

    files = [Path(simulate)] if simulate is not None else _expand(inputs, skip_outputs=output is None)
    outs = _outputs(files, output, f"_{task}{RESTORED}" if simulate is not None else RESTORED)
    check_outputs(outs, overwrite)
    for dst in outs:  # a bad extension or bit depth is refused now, not after the restoration
        check_image_output(dst, int(bits))
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    restorer = Restorer(task, prior, sigma=sigma, device=_device(device, world), seed=seed, precision=precision,
                        **parse_settings(settings, OWN_OPTIONS))
    mask_arr = None
    if mask is not None:
        try:
            mask_arr = mask_from_image(read_image(mask))
        except PnpRgmError as exc:
            msg = str(exc)
            raise type(exc)(msg if str(mask) in msg else f"--mask '{mask}': {msg}") from None
        if not mask_arr.any():
            raise TaskError(f"--mask '{mask}' keeps no pixel (it is all black); white = known pixel")

    def load(src: Path):
        """(reference image, observation tensor, mask) of one input; raises on any bad input."""
        img = read_image(src)
        if simulate is not None:
            return _simulate(img, task, sigma, seed, mask_arr, restorer.op_params)
        if mask_arr is not None and mask_arr.shape != img.shape[:2]:
            raise TaskError(f"mask '{mask}' is {mask_arr.shape[1]}x{mask_arr.shape[0]} "
                            f"but '{src}' is {img.shape[1]}x{img.shape[0]}")
        return img, image_to_tensor(grayscale_observation(img, str(src)) if task == "colorize" else img), mask_arr

    jobs = list(zip(files, outs))[rank::world]
    if len(files) > 1:  # every process checks every input (not only its share) before the first output is
        for src in files:  # written, so a bad file anywhere leaves no output anywhere (arrays dropped)
            load(src)
    bar = tqdm(jobs, desc=f"{task}/{prior or 'preset'}", unit="img", disable=len(jobs) < 2 or None)
    for src, dst in bar:
        img, y, m = load(src)
        result = tensor_to_image(restorer.restore_tensor(y, m))
        note = None  # computed before writing, so that a failing metric leaves no output behind
        if simulate is not None:
            note = f"wrote {dst}: PSNR {psnr(img, result):.2f} dB, SSIM {ssim(img, result):.4f} against {src}"
        elif len(jobs) == 1:
            note = f"wrote {dst} ({result.shape[1]}x{result.shape[0]}, {result.shape[2]} channel(s))"
        write_output(dst, result, int(bits), overwrite)
        if note:
            click.echo(note)
    if len(jobs) > 1:
        click.echo(f"wrote {len(jobs)} images" + (f" (rank {rank} of {world})" if world > 1 else ""))


def _simulate(img: np.ndarray, task: str, sigma: float, seed: int, mask: np.ndarray | None, op_params: dict):
    """Degrade a clean image as `pnp-rgm degrade` does: returns (clean, observation, mask)."""
    n = sr_factor(task) or 1
    if img.shape[0] < n or img.shape[1] < n:
        raise TaskError(f"--simulate: the clean image is {img.shape[1]}x{img.shape[0]}; {task} needs at least {n}x{n}")
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
