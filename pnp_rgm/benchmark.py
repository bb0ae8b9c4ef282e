"""Benchmarks: every method on the same operator, the same images and the same observations.

``run_benchmark`` writes into ``out``:

* ``results.csv`` — one row per image × method: method, image, psnr, ssim, lpips (empty when
  unavailable), nfe (generator calls), seconds. Rows are appended as they finish; a rerun skips
  (method, image) pairs already present, so an interrupted benchmark resumes.
* ``summary.md`` — mean ± standard error per method, best PSNR/SSIM in bold.
* ``grid.png`` — per image: observation (nearest-upsampled to the output size) | each method | ground
  truth, PSNR written on each tile.
* ``psnr_vs_nfe.png`` — mean PSNR against generator calls per method (needs matplotlib, the ``bench`` extra).
* ``settings.yaml`` — what determines the numbers: task, σ, crop, seed, data folder, operator ``--set``
  values, and, once a method that uses them has run, the prior, the network precision (``auto`` as what
  it means on this machine) and the solver ``--set`` values. A later run into the folder must use the
  same settings (new methods may be added); a mismatch is refused, naming the setting. A folder
  made before this file existed adopts the settings of the next run.

Methods are small functions ``(op, y, ctx) -> (x, nfe)`` registered in :data:`METHODS`.
"""
from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm.auto import tqdm

from pnp_rgm.config import write_text_atomic
from pnp_rgm.errors import ConfigError, OutputExistsError, ShapeError, TaskError
from pnp_rgm.io import IMAGE_EXTENSIONS, image_files, image_to_tensor, read_image, write_image
from pnp_rgm.metrics import _SSIM_MIN_SIDE, lpips_available, psnr, ssim
from pnp_rgm.operators import BLUR_TASKS, SVDOperator
from pnp_rgm.tasks import OPERATOR_KEYS, initial_estimate, known_pixels, restore_baseline, simulate_observation, sr_factor

FIELDS = ["method", "image", "psnr", "ssim", "lpips", "nfe", "seconds"]


@dataclass
class Context:
    """What a method may use besides the operator and the observation."""

    task: str
    sigma: float
    seed: int
    prior: Any = None  #: a loaded Prior, for learned methods
    settings: dict = field(default_factory=dict)  #: solver settings for rgm-drs (``--set``)
    op_params: dict = field(default_factory=dict)  #: operator parameters of the simulated degradation
    precision: str = "auto"  #: every learned method's network precision (``Prior.set_precision``)


Method = Callable[[SVDOperator, torch.Tensor, Context], "tuple[torch.Tensor, int]"]


def _pinv(op, y, ctx):
    return restore_baseline(op, y, "none"), 0


def _tv(op, y, ctx):
    return restore_baseline(op, y, "tv", sigma=ctx.sigma), 0


def _bicubic(op, y, ctx):
    n = sr_factor(ctx.task)
    if n is None:
        raise TaskError(f"method 'bicubic' is for super-resolution tasks only, not {ctx.task!r}")
    return F.interpolate(y, scale_factor=n, mode="bicubic").clamp(0, 1), 0


def _rgm_drs(op, y, ctx):
    if ctx.prior is None:
        raise TaskError("method 'rgm-drs' needs a learned prior (--prior NAME|PATH)")
    return _run_restorer(op, y, ctx, ctx.prior, **ctx.op_params, **ctx.settings)


SR_PRIOR = "mmse-sr"  #: the bundled prior trained on the multiscale (block-averaging) process


@lru_cache(maxsize=4)
def _bundled(name: str):
    """A bundled prior, loaded once per process (load_prior names the bundled ones if it is missing)."""
    from pnp_rgm.priors import load_prior

    return load_prior(name)


def _rgm_drs_sr(op, y, ctx):
    """RGM-DRS with the SR-process prior (``mmse-sr``) and the task preset's solver settings."""
    return _run_restorer(op, y, ctx, _bundled(SR_PRIOR), **ctx.op_params, **ctx.settings)


def _preset_restorer(task: str, settings: dict) -> "tuple[Any, dict]":
    """The prior and solver settings of ``pnp-rgm restore --task TASK [--set ...]``: the task's
    shipped preset, ``settings`` (``--set``) over the preset's own."""
    from pnp_rgm.presets import preset_for
    from pnp_rgm.tasks import BASELINES

    p = preset_for(task)
    if p.prior in BASELINES:
        return None, dict(settings)  # Restorer(task, None) merges the preset's settings itself
    return _bundled(p.prior), {**p.settings, **settings}


def _preset(op, y, ctx):
    """What ``pnp-rgm restore`` does by default: the task's shipped preset (prior and settings), with
    ``--set`` solver settings over the preset's, as ``restore --set`` applies them.
    The preset's network is loaded once per process, so the seconds column times the restoration
    alone (loading it for every image added about 0.6 s per image)."""
    prior, settings = _preset_restorer(ctx.task, ctx.settings)
    return _run_restorer(op, y, ctx, prior, **settings, **ctx.op_params)


def _run_restorer(op, y, ctx, prior, **settings):
    """Restore ``y`` with the API's Restorer (untiled); returns (estimate, generator calls)."""
    from pnp_rgm.api import Restorer

    r = Restorer(ctx.task, prior, sigma=ctx.sigma, seed=ctx.seed, max_pixels=1 << 40, precision=ctx.precision,
                 **settings)
    return r.restore_tensor(y, known_pixels(op)), r.config.calls if r.method == "rgm" else 0


def trained_sigma_max(prior) -> float:
    """The largest noise level ([0, 1] units, at most 1) the prior was trained to denoise: a sampler
    started above it would feed the network inputs it never saw."""
    obj = prior.config.objective
    if prior.kind == "mmse" and obj.continuous:
        return min(1.0, obj.sigma_max)
    return min(1.0, float(prior.noise_levels().max()))


#: DiffPIR's ζ (the share of fresh noise when stepping down), per task, tuned like our presets on the
#: first 6 CBSD432 images (128² crops, 20 calls). ζ = 0.3 / 0.6 / 1.0: sr4 25.21 / — / 26.36 dB,
#: sr8 22.93 / 23.36 / 24.13, colorize 24.75 / 24.84 / 25.05, inpaint 14.32 / 16.25 / 24.43 (sr4 at
#: ζ = 0: 24.48), deblur-gauss 26.75 / — / 27.81; denoise σ = 25/255 from y, ζ = 0 / 0.3 / 1.0:
#: 29.13 / 28.18 / 27.31. λ = 7 is the paper's. (inpaint was tuned from black holes; from filled
#: ones, centre box: ζ = 0.3 23.73, ζ = 1.0 24.14.)
DIFFPIR_ZETA = {"denoise": 0.0}
DIFFPIR_ZETA_DEFAULT = 1.0


def _peer(name):
    def run(op, y, ctx):
        from pnp_rgm import peers

        if ctx.prior is None:
            raise TaskError(f"method {name!r} needs a σ-conditioned denoiser prior (an MMSE twin: --prior NAME|PATH)")
        fn = {"dpir-hqs": peers.dpir_hqs, "ddrm": peers.ddrm, "diffpir": peers.diffpir}[name]
        kw = {"x0": initial_estimate(op, y)}  # the presets' start: inpaint holes filled, not black
        if name != "dpir-hqs":  # the samplers start at the top of the prior's trained noise range
            kw.update(generator=torch.Generator().manual_seed(ctx.seed), sigma_max=trained_sigma_max(ctx.prior))
        if name == "diffpir":
            kw["zeta"] = DIFFPIR_ZETA.get(ctx.task, DIFFPIR_ZETA_DEFAULT)
            if ctx.task == "denoise":  # y is already the state at level σ_y: start there
                kw["sigma_max"] = max(ctx.sigma, 1 / 255)
        x, nfe = fn(op, y, lambda x, s: ctx.prior.denoise(x.float(), s).to(x.dtype), ctx.sigma, **kw)
        return x.clamp(0, 1), nfe

    return run


def _bm3d(op, y, ctx):
    from pnp_rgm.peers import bm3d_denoiser

    if ctx.task != "denoise":
        raise TaskError(f"method 'bm3d' is plain (C)BM3D denoising; for {ctx.task!r} use 'bm3d-pnp'")
    return bm3d_denoiser()(y, ctx.sigma).clamp(0, 1), 0  # no generator call


def _denoiser(op, y, ctx):
    if ctx.task != "denoise":
        raise TaskError(f"method 'denoiser' applies the prior's denoiser once (task 'denoise' only), not {ctx.task!r}")
    if ctx.prior is None:
        raise TaskError("method 'denoiser' needs a σ-conditioned denoiser prior (an MMSE twin: --prior NAME|PATH)")
    return ctx.prior.denoise(y.float(), ctx.sigma).clamp(0, 1), 1


def _bm3d_pnp(op, y, ctx):
    from pnp_rgm.peers import bm3d_denoiser, dpir_hqs

    x, nfe = dpir_hqs(op, y, bm3d_denoiser(), ctx.sigma)
    return x.clamp(0, 1), nfe


METHODS: dict[str, Method] = {"pinv": _pinv, "tv": _tv, "bicubic": _bicubic, "bm3d": _bm3d, "bm3d-pnp": _bm3d_pnp,
                              "denoiser": _denoiser, "preset": _preset,
                              "rgm-drs": _rgm_drs, "rgm-drs-sr": _rgm_drs_sr, "dpir-hqs": _peer("dpir-hqs"), "ddrm": _peer("ddrm"),
                              "diffpir": _peer("diffpir")}
#: methods that need a learned prior
LEARNED = ("rgm-drs", "dpir-hqs", "ddrm", "diffpir", "denoiser")
#: methods that take solver settings (``--set`` keys other than the operator's), each validating them
SOLVER_METHODS = ("rgm-drs", "rgm-drs-sr", "preset")
#: methods that run a network, so ``precision`` changes their numbers
NETWORK_METHODS = LEARNED + ("rgm-drs-sr", "preset")
#: the file in ``out`` that records the settings behind its rows
SETTINGS_FILE = "settings.yaml"
#: files a benchmark writes besides results.csv (a folder holding them without results.csv is not ours)
OUTPUTS = ("summary.md", "grid.png", "psnr_vs_nfe.png")
#: the option that sets each recorded setting (error messages)
SETTING_OPTIONS = {"task": "--task", "data": "--data", "sigma": "--sigma", "crop": "--crop", "seed": "--seed",
                   "operator": "--set (operator)", "solver": "--set (solver)", "prior": "--prior",
                   "precision": "--precision"}


def list_images(data: Path, limit: int = 0) -> list[Path]:
    if not data.is_dir():
        raise TaskError(f"--data '{data}' is not a folder of images")
    files = image_files(data)
    if not files:
        raise TaskError(f"--data '{data}' contains no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    return files[:limit] if limit else files


def center_crop(img: np.ndarray, crop: int, multiple: int) -> np.ndarray:
    """Centre crop to at most ``crop`` (0: no crop), then to a multiple of ``multiple``."""
    h, w = img.shape[:2]
    ch, cw = (min(crop, h), min(crop, w)) if crop else (h, w)
    ch, cw = ch // multiple * multiple, cw // multiple * multiple
    top, left = (h - ch) // 2, (w - cw) // 2
    return img[top:top + ch, left:left + cw]


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def append_row(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in FIELDS})


def summarize(rows: list[dict[str, str]], title: str = "") -> str:
    """Markdown table: mean ± standard error per method; best mean PSNR/SSIM/LPIPS in bold."""
    methods: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        m = methods.setdefault(r["method"], {k: [] for k in ("psnr", "ssim", "lpips", "nfe", "seconds")})
        for k in m:
            if r.get(k, "") not in ("", None):
                m[k].append(float(r[k]))

    def stat(v):
        if not v:
            return None, None
        a = np.asarray(v)
        return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0

    stats = {name: {k: stat(v) for k, v in m.items()} for name, m in methods.items()}
    digits = {"psnr": 2, "ssim": 4, "lpips": 4}
    best: dict[str, set] = {}
    for k, higher in (("psnr", True), ("ssim", True), ("lpips", False)):
        vals = {n: round(s[k][0], digits[k]) for n, s in stats.items() if s[k][0] is not None}
        if vals:
            top = (max if higher else min)(vals.values())
            best[k] = {n for n, v in vals.items() if v == top}  # ties (as printed) are all bold
    fmt = {"psnr": "{:.2f} ± {:.2f}", "ssim": "{:.4f} ± {:.4f}", "lpips": "{:.4f} ± {:.4f}"}
    lines = [f"## {title}\n" if title else "", "| method | images | PSNR (dB) | SSIM | LPIPS | generator calls | s / image |",
             "|---|---|---|---|---|---|---|"]
    for name, s in stats.items():
        cells = []
        for k in ("psnr", "ssim", "lpips"):
            if s[k][0] is None:
                cells.append("—")
                continue
            txt = fmt[k].format(*s[k])
            cells.append(f"**{txt}**" if name in best.get(k, ()) else txt)
        n = len(methods[name]["psnr"])
        nfe = s["nfe"][0]
        sec = s["seconds"][0]
        lines.append(f"| {name} | {n} | {' | '.join(cells)} | {nfe:.0f} | {sec:.2f} |")
    return "\n".join(line for line in lines if line != "") + "\n"


def _label(img: torch.Tensor, text: str) -> torch.Tensor:
    """Write ``text`` in the top-left corner of a (1, C, H, W) image (Pillow's default font)."""
    from PIL import Image, ImageDraw

    arr = (img[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    pil = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    draw = ImageDraw.Draw(pil)
    lines: list[str] = []  # words wrapped to the image's width (a small crop would clip one long line)
    for word in text.split():
        if lines and draw.textbbox((0, 0), f"{lines[-1]} {word}")[2] + 4 <= pil.width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    text = "\n".join(lines)
    box = draw.multiline_textbbox((2, 1), text)
    draw.rectangle((0, 0, box[2] + 2, box[3] + 2), fill=0)
    draw.multiline_text((2, 1), text, fill=255 if arr.shape[2] == 1 else (255, 255, 255))
    out = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255.0)
    out = out[None] if out.dim() == 2 else out.permute(2, 0, 1)
    return out[None].to(img.dtype)


def plot_psnr_vs_nfe(rows: list[dict[str, str]], path: Path) -> bool:
    """Mean PSNR against generator calls per method (matplotlib, optional). Returns whether drawn."""
    from pnp_rgm.plotting import pyplot

    plt = pyplot()
    if plt is None:
        return False
    by: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        by.setdefault(r["method"], []).append((float(r["nfe"] or 0), float(r["psnr"])))
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    for name, vals in by.items():
        a = np.asarray(vals)
        ax.scatter(a[:, 0].mean(), a[:, 1].mean(), label=name)
        ax.annotate(name, (a[:, 0].mean(), a[:, 1].mean()), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("generator calls per image")
    ax.set_ylabel("mean PSNR (dB)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return True


def min_crop(task: str) -> int:
    """The smallest ``crop`` (other than 0 = none) that ``task`` can be scored on: SSIM's 11x11 window,
    rounded up to a multiple of an SR task's factor (crops are cut to such a multiple)."""
    n = sr_factor(task) or 1
    return -(-_SSIM_MIN_SIDE // n) * n


def _plain(v: Any) -> Any:
    """``v`` with only YAML-safe types (tuples as lists, numpy scalars as numbers, paths as strings)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def prior_id(prior: Any) -> str | None:
    """How ``settings.yaml`` names a prior: a bundled prior by its name, a checkpoint folder by its
    absolute path, a loaded Prior by the folder it came from (else its repr)."""
    if prior is None:
        return None
    from pnp_rgm.priors import _resolve, available_priors

    bundled = available_priors()
    if isinstance(prior, (str, os.PathLike)):
        if not Path(prior).is_dir() and str(prior) in bundled:
            return str(prior)
        path = Path(prior).resolve()
    elif getattr(prior, "path", None) is not None:
        path = Path(prior.path).resolve()
    else:
        return repr(prior)
    for name in bundled:
        try:
            if _resolve(name).resolve() == path:
                return name
        except ValueError:
            pass
    return str(path)


def run_settings(task: str, data: Path, methods: list[str], sigma: float, crop: int, seed: int, op_params: dict,
                 solver: dict, prior: Any, precision: str) -> dict[str, Any]:
    """What determines a run's numbers, as recorded in ``settings.yaml``. ``prior``, ``precision`` and
    the solver settings are ``None`` when none of ``methods`` uses them."""
    return {"task": task, "data": str(Path(data).resolve()), "sigma": float(sigma), "crop": int(crop),
            "seed": int(seed), "operator": _plain(op_params),
            "solver": _plain(solver) if any(m in SOLVER_METHODS for m in methods) else None,
            "prior": prior_id(prior) if any(m in LEARNED for m in methods) else None,
            "precision": resolved_precision(precision) if any(m in NETWORK_METHODS for m in methods) else None}


def resolved_precision(precision: str) -> str:
    """``fp32`` or ``bf16``: what ``precision`` means on this machine (``auto``: bf16 where the device
    the Restorer picks computes it natively), so that ``auto`` and ``fp32`` agree where they compute alike."""
    if precision != "auto":
        return precision
    from pnp_rgm.api import resolve_device
    from pnp_rgm.priors import native_bf16

    return "bf16" if native_bf16(resolve_device("auto")) else "fp32"


def _show(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}={_show(x)}" for k, x in v.items()) or "none"
    if isinstance(v, float):
        return f"{v:g}"
    return "none" if v is None else str(v)


def read_settings(out: Path) -> dict[str, Any] | None:
    """The settings recorded in ``out`` (``None``: none recorded); a one-line ConfigError if unreadable."""
    path = out / SETTINGS_FILE
    if not path.exists():
        return None
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read '{path}': {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"'{path}' must map setting names ({', '.join(SETTING_OPTIONS)}) to values")
    return raw


def reconcile_settings(out: Path, recorded: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, Any]:
    """``recorded`` with what ``current`` adds (a setting no earlier run used); a one-line
    OutputExistsError naming every setting where they differ."""
    merged = {**{k: None for k in current}, **(recorded or {})}
    diffs = []
    for k, v in current.items():
        if v is None:  # none of this run's methods uses it
            continue
        if merged[k] is None:
            merged[k] = v
        elif merged[k] != v:
            diffs.append(f"{SETTING_OPTIONS.get(k, k)} {_show(merged[k])} (this run: {_show(v)})")
    if diffs:
        raise OutputExistsError(f"--out {out} holds results of other settings: {'; '.join(diffs)}. Rerun with "
                                f"those settings to resume or add methods, or use another --out "
                                f"(settings in {out / SETTINGS_FILE})")
    return merged


def write_settings(out: Path, settings: dict[str, Any]) -> None:
    head = ("# pnp-rgm benchmark: the settings behind results.csv. Every run into this folder must use them\n"
            "# (rows are reused by method and image); null = not used by any method run so far.\n")
    write_text_atomic(out / SETTINGS_FILE, head + yaml.safe_dump(settings, sort_keys=False, allow_unicode=True))


def _check_out(out: Path) -> None:
    """``out`` must be a folder (or not exist yet) that holds nothing a benchmark would overwrite unasked."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out} is a file, not a folder")
    if out.is_dir() and not (out / SETTINGS_FILE).exists() and not (out / "results.csv").exists():
        ours = [name for name in OUTPUTS if (out / name).exists()]
        if ours:
            raise OutputExistsError(f"--out {out} holds {', '.join(ours)} but no results.csv (not a benchmark "
                                    "folder); use another --out or remove them")


def run_benchmark(task: str, data: Path, out: Path, methods: list[str], sigma: float = 0.0, limit: int = 0,
                  crop: int = 256, seed: int = 0, prior: Any = None, progress: bool = True,
                  settings: dict | None = None, precision: str = "auto") -> str:
    """Run ``methods`` on the images of ``data``; returns the summary Markdown (also written).

    Gray images in a colour set are restored as RGB images with equal channels (colorize skips
    them, and RGB files whose channels are all equal). ``settings``: operator keys (``width``/``size``
    of a blur, ``boundary`` — ``zero`` unless set, unlike ``restore`` —, ``missing``/``box`` of inpaint)
    set the simulated degradation for every method; the
    rest are solver settings for ``rgm-drs``, ``rgm-drs-sr`` and ``preset`` (over the preset's), each of
    which rejects keys it does not know; a key no requested method uses is an error. ``precision`` (auto,
    fp32, bf16) is every learned method's network precision, the peers' included, whatever order the
    methods run in. A method named twice runs once.

    Everything is checked before ``out`` is created (every image is read first); ``out`` must hold
    results of the same settings (``settings.yaml``, see the module docstring), or none."""
    from pnp_rgm.priors import check_precision

    check_precision(precision)
    data, out = Path(data), Path(out)
    methods = list(dict.fromkeys(methods))  # a method named twice runs once
    settings = dict(settings or {})
    op_params = {k: settings.pop(k) for k in list(settings) if k in OPERATOR_KEYS}
    if task in BLUR_TASKS:  # DDRM's and DPIR's model, every table's; restore's is free
        op_params.setdefault("boundary", "zero")
    if "seed" in op_params:
        raise TaskError(f"seed={op_params['seed']}: the benchmark draws masks and noise from --seed (image i uses seed + i)")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise TaskError(f"unknown method(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(METHODS)}")
    for m in ("bm3d", "denoiser"):
        if m in methods and task != "denoise":
            raise TaskError(f"method {m!r} is plain denoising (task 'denoise' only), not {task!r}")
    if "bicubic" in methods and sr_factor(task) is None:
        raise TaskError(f"method 'bicubic' is for super-resolution tasks only, not {task!r}")
    needs = [m for m in methods if m in LEARNED]
    if needs and prior is None:
        raise TaskError(f"method(s) {', '.join(needs)} need a learned prior (--prior NAME|PATH)")
    if settings and not any(m in SOLVER_METHODS for m in methods):
        raise TaskError(f"--set {', '.join(sorted(settings))}: not used by method(s) {', '.join(methods)}; "
                        f"operator settings ({', '.join(k for k in OPERATOR_KEYS if k != 'seed')}) apply to every "
                        f"method, solver settings only to {', '.join(SOLVER_METHODS)}")
    if limit < 0:
        raise TaskError(f"--limit must be >= 0 (0 = all images), got {limit}")
    n = sr_factor(task) or 1
    side = min_crop(task)  # the task name and factor, on the smallest image the benchmark takes
    simulate_observation(task, torch.zeros(1, 3, side, side, dtype=torch.float64), 0.0, seed)
    if crop < 0 or 0 < crop < min_crop(task):
        raise TaskError(f"--crop {crop} is too small for task {task!r}: use 0 (whole images) or at least "
                        f"{min_crop(task)} (SSIM needs {_SSIM_MIN_SIDE}x{_SSIM_MIN_SIDE} pixels"
                        + (f"; crops are cut to a multiple of {n})" if n > 1 else ")"))
    _check_out(out)
    files = list_images(data, limit)
    recorded = read_settings(out)
    current = run_settings(task, data, methods, sigma, crop, seed, op_params, settings, prior, precision)
    images = []  # each image read and cropped once; a corrupt or too small one fails before anything is written
    for f in files:
        img = read_image(f)
        images.append(center_crop(img, crop, n))
        if min(images[-1].shape[:2]) < _SSIM_MIN_SIDE:
            cut = f", {images[-1].shape[0]}x{images[-1].shape[1]} once cut to a multiple of {n}" if n > 1 else ""
            raise ShapeError(f"image '{f}' is {img.shape[0]}x{img.shape[1]} pixels{cut}; task {task!r} needs at "
                             f"least {side}x{side} (--crop, --data)")
    if op_params and images:  # a bad operator parameter fails on the first image
        simulate_observation(task, image_to_tensor(images[0]), 0.0, seed, **op_params)
    if prior is not None and not hasattr(prior, "restore"):
        from pnp_rgm.priors import load_prior

        prior = load_prior(prior)
    if prior is not None:
        prior.set_precision(precision)  # the peers call it directly; Restorer sets the same for rgm-drs
    for m in SOLVER_METHODS:  # reject bad --set values before anything is written
        if m in methods:
            from pnp_rgm.api import Restorer

            p, s = (prior, settings) if m == "rgm-drs" else (_bundled(SR_PRIOR), settings) if m == "rgm-drs-sr" \
                else _preset_restorer(task, settings)
            try:
                Restorer(task, p, sigma=sigma, precision=precision, **op_params, **s)
            except TaskError as exc:
                raise TaskError(f"method {m!r}: {exc}") from None
    merged = reconcile_settings(out, recorded, current)  # after the checks: a bad value is named as such

    created = [d for d in (out, *out.parents) if not d.exists()]  # removed again if nothing is written
    csv_path = out / "results.csv"
    settings_before = (out / SETTINGS_FILE).read_text() if (out / SETTINGS_FILE).exists() else None
    rows_before = csv_path.stat().st_size if csv_path.exists() else None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputExistsError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    try:
        if merged != recorded:
            write_settings(out, merged)
        summary = _run(task, data, out, files, images, methods, sigma, crop, seed, prior, settings, op_params, precision,
                       merged, progress)
    except BaseException:
        rows_now = csv_path.stat().st_size if csv_path.exists() else None
        if rows_now == rows_before:  # nothing written: leave the folder as it was
            if settings_before is None:
                (out / SETTINGS_FILE).unlink(missing_ok=True)
            elif (out / SETTINGS_FILE).read_text() != settings_before:
                write_text_atomic(out / SETTINGS_FILE, settings_before)
            for d in created:
                if d.is_dir() and not any(d.iterdir()):
                    d.rmdir()
        raise
    return summary


def _run(task, data, out, files, images, methods, sigma, crop, seed, prior, settings, op_params, precision, recorded,
         progress) -> str:
    csv_path = out / "results.csv"
    done = {(r["method"], r["image"]) for r in read_rows(csv_path)}
    use_lpips, why = lpips_available()
    tiles = []
    bar = tqdm(total=len(files) * len(methods), desc=f"benchmark {task}", unit="run", disable=not progress or None)
    for i, (f, img) in enumerate(zip(files, images)):
        if task == "colorize" and (img.shape[2] != 3 or np.ptp(img, axis=2).max() < 1e-6):  # no colour to restore
            bar.update(len(methods))
            continue
        if img.shape[2] == 1 and (getattr(prior, "channels", 1) == 3 or "preset" in methods):
            img = np.repeat(img, 3, axis=2)
        x = image_to_tensor(img)
        op, y = simulate_observation(task, x.double(), sigma, seed + i, **op_params)
        y = y.float()
        ctx = Context(task, sigma, seed + i, prior, settings, op_params, precision)
        row_tiles = [F.interpolate(y, size=x.shape[-2:], mode="nearest").expand(-1, x.shape[1], -1, -1)
                     if y.shape[1] <= x.shape[1] else y]
        for m in methods:
            if (m, f.name) in done:
                bar.update(1)
                continue
            t0 = time.perf_counter()
            with torch.no_grad():
                est, nfe = METHODS[m](op, y, ctx)
            sec = time.perf_counter() - t0
            if op.crop is not None and est.shape[-2:] != x.shape[-2:]:  # a free-boundary blur's margin
                est = est[..., op.crop[0], op.crop[1]]
            est = est.float().clamp(0, 1)
            row = {"method": m, "image": f.name, "psnr": f"{psnr(x[0], est[0]):.4f}", "ssim": f"{ssim(x[0], est[0]):.5f}",
                   "nfe": nfe, "seconds": f"{sec:.4f}"}
            if use_lpips:
                from pnp_rgm.metrics import lpips

                row["lpips"] = f"{lpips(x[0], est[0]):.5f}"
            append_row(csv_path, row)
            row_tiles.append(_label(est, f"{m} {float(row['psnr']):.2f} dB"))
            bar.update(1)
        if len(row_tiles) == len(methods) + 1 and len(tiles) < 6:
            row_tiles[0] = _label(row_tiles[0], "observation")
            tiles.append(torch.cat(row_tiles + [_label(x, "ground truth")], dim=-1))
    bar.close()
    if tiles:
        width = max(t.shape[-1] for t in tiles)
        grid = torch.cat([F.pad(t, (0, width - t.shape[-1])) for t in tiles], dim=-2)
        write_image(out / "grid.png", grid[0], overwrite=True)
    rows = read_rows(csv_path)
    plotted = plot_psnr_vs_nfe(rows, out / "psnr_vs_nfe.png")
    title = f"{task}, σ = {sigma:g}, {data.name}" + (f", centre crops ≤ {crop}px" if crop else "") + \
        f", precision {recorded.get('precision') or precision}"
    summary = summarize(rows, title)
    if not use_lpips:
        summary += f"\nLPIPS not computed: {why}\n"
    if not plotted:
        summary += "\nPSNR-vs-generator-calls plot not drawn: matplotlib is not installed (pip install 'pnp-rgm[bench]').\n"
    write_text_atomic(out / "summary.md", summary)
    return summary


__all__ = ["METHODS", "Context", "run_benchmark", "summarize", "read_rows", "append_row", "center_crop", "list_images",
           "read_settings", "run_settings", "min_crop", "SETTINGS_FILE"]
