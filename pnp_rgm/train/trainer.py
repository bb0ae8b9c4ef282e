"""The RGM trainer, in nanoGPT's straight line.

``train(cfg, data_dir, out_dir, steps=None, resume=False)`` trains a prior on a folder of images
and writes ``out_dir/``::

    config.yaml            the resolved RunConfig
    log.jsonl              one JSON line per log interval (losses, images/s, lr)
    samples/step_NNNNNNN.png   Algorithm-3 samples (top) and restorations of a batch at k = 1..K
    checkpoint/            the prior (model.safetensors = EMA generator, config.yaml,
                           model_card.md) + trainer/ (raw G/D, optimizers; for --resume)

Distributed: launch the same command with ``torchrun --nproc_per_node N``; ranks are read from
RANK/LOCAL_RANK/WORLD_SIZE, DDP syncs gradients (NCCL on GPU, gloo on CPU), rank 0 logs and
saves; the batch size in the config is per process. A non-finite loss stops every rank with
:class:`TrainingDivergedError` before the bad update, so the last checkpoint stays good.
"""
from __future__ import annotations

import contextlib
import json
import platform
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

from pnp_rgm.config import save_config
from pnp_rgm.errors import CheckpointError, ConfigError, PnpRgmError, is_out_of_memory
from pnp_rgm.nets import Generator, build_discriminator, count_params
from pnp_rgm.objectives import AmbientSpectralObjective, make_objective
from pnp_rgm.priors import Prior
from pnp_rgm.processes import make_process
from pnp_rgm.rsd import resolve_rsd_config
from pnp_rgm.sampling import from_net, image_grid, restore_step, to_net
from pnp_rgm.spectral import SpectralAmbient, is_spectral
from pnp_rgm.train import dist as D_
from pnp_rgm.train.checkpoint import (flatten_optimizer, load_trainer_meta, load_trainer_state, recover,
                                      save_checkpoint, unflatten_optimizer)
from pnp_rgm.train.config import RunConfig, absolute_teacher, resumed_config
from pnp_rgm.train.ema import EMA

__all__ = ["train", "TrainingDivergedError", "Components", "build_components", "train_step", "resolve_precision"]


class TrainingDivergedError(PnpRgmError):
    """A loss became NaN/inf; training stopped before applying the update."""


def resolve_precision(precision: str, device: torch.device) -> Optional[torch.dtype]:
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@dataclass
class Components:
    cfg: RunConfig
    device: torch.device
    process: object
    objective: object
    G: nn.Module  # raw generator
    D: Optional[nn.Module]
    G_train: nn.Module  # DDP-wrapped when distributed
    D_train: Optional[nn.Module]
    opt_g: torch.optim.Optimizer
    opt_d: Optional[torch.optim.Optimizer]
    ema: EMA
    amp_dtype: Optional[torch.dtype]
    scaler_g: Optional[object] = None
    scaler_d: Optional[object] = None


def _widened(own: torch.Tensor, src: torch.Tensor) -> bool:
    """``own`` is a Linear weight (out, in') taking the inputs of ``src`` (out, in) first, in < in'."""
    return own.dim() == 2 and src.dim() == 2 and own.shape[0] == src.shape[0] and own.shape[1] > src.shape[1]


def _blocks_per_level(sd: dict[str, torch.Tensor]) -> int:
    """Residual blocks per down level of a U-Net state dict (0 when it is not one)."""
    return len({n.split(".")[3] for n in sd if n.startswith("down.0.blocks.")})


def _deepen(G: torch.nn.Module, src: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    """``src`` (n = 1 block per level) renamed for ``G`` (m > 1 blocks per level) so that ``G`` starts
    as the same function. Each down level's new blocks follow the old one: their last conv is zero, so
    they pass it through and their skips repeat its output. Each up level pops m + 1 skips instead of
    2: the old first block takes the first (the repeat of what it took before), the old last block the
    last (the level's input, as before), and the m - 1 new blocks between them ignore theirs: zero last
    conv, and a 1×1 skip conv that keeps the running features and drops the concatenated skip."""
    m = G.cfg.num_res_blocks
    if n != 1 or G.cfg.attention_levels:
        raise CheckpointError(f"init_from: deepening from {n} residual blocks per level to {m} is supported "
                              "from 1 block per level, without attention")
    out = {}
    for name, t in src.items():
        parts = name.split(".")
        if parts[0] == "up" and parts[2] == "blocks" and parts[3] == "1":
            parts[3] = str(m)
        out[".".join(parts)] = t
    for i, stage in enumerate(G.up):
        for j in range(1, m):
            w = stage["blocks"][j].skip.weight  # (cout, cout + skip channels, 1, 1)
            eye = torch.zeros_like(w)
            eye[:, :w.shape[0], 0, 0] = torch.eye(w.shape[0])
            out[f"up.{i}.blocks.{j}.skip.weight"] = eye
            out[f"up.{i}.blocks.{j}.skip.bias"] = torch.zeros(w.shape[0])
    return out


def init_generator(G: torch.nn.Module, path_or_name: str) -> tuple[int, int]:
    """Copy into ``G`` every tensor of a saved prior whose name and shape match (a warm start, e.g.
    an RGM generator from its MMSE twin); returns (copied, total). A linear weight of ``G`` with more
    inputs than the saved one (the condition layers of an RGM generator, whose condition is the
    twin's noise-level embedding followed by the latent's) gets the saved weight in its leading
    columns and zeros in the rest, so with EDM preconditioning the generator starts as the twin's
    function, whatever z. A U-Net with more residual blocks per level than the saved one (1) starts
    as the saved one's function too (``_deepen``). Raises CheckpointError when nothing matches."""
    from pnp_rgm.priors import _resolve
    from pnp_rgm.train.checkpoint import load_state_dict

    src = load_state_dict(_resolve(path_or_name) / "model.safetensors")
    own = G.state_dict()
    blocks = _blocks_per_level(src)
    if blocks and isinstance(G, Generator) and G.cfg.num_res_blocks > blocks:
        src = _deepen(G, src, blocks)
    hits = {n: t for n, t in src.items() if n in own and own[n].shape == t.shape}
    for n, t in src.items():
        if n in own and _widened(own[n], t):
            w = torch.zeros_like(own[n])
            w[:, :t.shape[1]] = t
            hits[n] = w
    if not hits:
        raise CheckpointError(f"init_from {path_or_name}: no tensor matches this model's names and shapes")
    G.load_state_dict(hits, strict=False)
    return len(hits), len(own)


def build_components(cfg: RunConfig, info: D_.DistInfo) -> Components:
    dev = info.device
    cfg = resolve_rsd_config(cfg)
    torch.manual_seed(cfg.train.seed)  # identical init on every rank (DDP also broadcasts)
    process = make_process(cfg.process)
    objective = make_objective(cfg.objective, process, cfg.model.precond, cfg.corruption, cfg.model.channels)
    mf = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    G = Generator(cfg.model)
    init = cfg.objective.teacher if cfg.objective.kind == "rsd" else cfg.train.init_from  # RSD starts G from T
    if init:
        init_generator(G, init)
    G = G.to(dev, memory_format=mf)
    if hasattr(objective, "build_critic"):  # RSD: the fake score, a copy of the teacher
        D = objective.to(dev).build_critic().to(dev, memory_format=mf)
    else:
        D = build_discriminator(cfg.model).to(dev, memory_format=mf) if objective.has_d else None
    o = cfg.optim
    opt_g = torch.optim.Adam(G.parameters(), lr=o.lr_g, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)
    opt_d = torch.optim.Adam(D.parameters(), lr=o.lr_d, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay) if D is not None else None
    ema = EMA(G, o.ema_decay)
    G_train, D_train = G, D
    if info.enabled:
        ids = [dev.index] if dev.type == "cuda" else None
        G_train = DDP(G, device_ids=ids, broadcast_buffers=False)
        if D is not None:
            D_train = DDP(D, device_ids=ids, broadcast_buffers=False)
    amp = resolve_precision(cfg.train.precision, dev)
    sg = sd = None
    if amp == torch.float16:
        sg = torch.amp.GradScaler(dev.type)
        sd = torch.amp.GradScaler(dev.type) if D is not None else None
    if cfg.train.compile:
        G_train = torch.compile(G_train)
    return Components(cfg, dev, process, objective, G, D, G_train, D_train, opt_g, opt_d, ema, amp, sg, sd)


def batch_to_net(x: torch.Tensor, channels: int) -> torch.Tensor:
    """A [0, 1] batch into network space; a mask channel after the image's (masked data) stays 0/1."""
    if x.shape[1] == channels:
        return to_net(x)
    return torch.cat([to_net(x[:, :channels]) * x[:, channels:], x[:, channels:]], dim=1)


def _autocast(c: Components):
    if c.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(c.device.type, dtype=c.amp_dtype)


def _step_opt(loss, opt, params, scaler, clip: float) -> float:
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
    else:
        loss.backward()
    gn = float(torch.nn.utils.clip_grad_norm_(params, clip)) if clip > 0 else 0.0
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    return gn


def train_step(c: Components, x0: torch.Tensor, step: int, info: Optional[D_.DistInfo] = None) -> dict:
    """One D update (if the objective has a discriminator) and one G update on a batch x0 in
    [-1, 1] network space. Raises TrainingDivergedError (on every rank) on a non-finite loss."""
    info = info or D_.DistInfo(device=c.device)
    cfg = c.cfg
    lr_scale = cfg.optim.lr_scale(step, cfg.train.steps)
    pre = cfg.optim.d_pretrain if c.D is not None else 0  # D-only steps first; G's schedule starts after them
    for g in c.opt_g.param_groups:
        g["lr"] = cfg.optim.lr_g * cfg.optim.lr_scale(step - pre, cfg.train.steps - pre) if step >= pre else 0.0
    logs: dict = {}
    if c.D is not None:
        for g in c.opt_d.param_groups:
            g["lr"] = cfg.optim.lr_d * lr_scale
        c.D.requires_grad_(True)
        r1 = step % cfg.objective.r1_every == 0
        for _ in range(cfg.objective.fake_steps if cfg.objective.kind == "rsd" else cfg.optim.d_steps):  # D keeps up
            with _autocast(c):
                ld, ld_logs = c.objective.d_loss(c.G, c.D_train, x0, r1=r1)
            if not D_.all_true(bool(torch.isfinite(ld)), info):
                raise TrainingDivergedError(f"discriminator loss is not finite at step {step}")
            logs.update(ld_logs)
            logs["gn_d"] = _step_opt(ld, c.opt_d, c.D.parameters(), c.scaler_d, cfg.optim.grad_clip)
        c.D.requires_grad_(False)
        if step < pre:
            return {k: float(v) for k, v in logs.items()}
    with _autocast(c):
        lg, lg_logs = c.objective.g_loss(c.G_train, c.D, x0)
    if not D_.all_true(bool(torch.isfinite(lg)), info):
        raise TrainingDivergedError(f"generator loss is not finite at step {step}")
    logs.update(lg_logs)
    logs["gn_g"] = _step_opt(lg, c.opt_g, c.G.parameters(), c.scaler_g, cfg.optim.grad_clip)
    c.ema.update(c.G, step)
    return {k: float(v) for k, v in logs.items()}


# --------------------------------------------------------------------------- state I/O
def _trainer_state(c: Components, step: int, wall: float, extra: dict) -> tuple[dict, dict]:
    tensors = {f"G/{k}": v for k, v in c.G.state_dict().items()}
    tg, mg = flatten_optimizer("opt_g", c.opt_g)
    tensors.update(tg)
    meta = {"format": "pnp-rgm-trainer/1", "step": step, "wall_time_s": wall, "opt_g": mg, **extra}
    if c.D is not None:
        tensors.update({f"D/{k}": v for k, v in c.D.state_dict().items()})
        td, md = flatten_optimizer("opt_d", c.opt_d)
        tensors.update(td)
        meta["opt_d"] = md
    if c.scaler_g is not None:
        meta["scaler_g"] = c.scaler_g.state_dict()
        if c.scaler_d is not None:
            meta["scaler_d"] = c.scaler_d.state_dict()
    return tensors, meta


def _load_trainer_state(c: Components, ckpt: Path) -> dict:
    from pnp_rgm.train.checkpoint import load_state_dict

    tensors, meta = load_trainer_state(ckpt)
    dev = c.device

    def sub(prefix: str) -> dict:
        return {k[len(prefix):]: v.to(dev) for k, v in tensors.items() if k.startswith(prefix)}

    try:
        c.G.load_state_dict(sub("G/"))
        c.opt_g.load_state_dict(unflatten_optimizer("opt_g", tensors, meta["opt_g"]))
        if c.D is not None:
            c.D.load_state_dict(sub("D/"))
            c.opt_d.load_state_dict(unflatten_optimizer("opt_d", tensors, meta["opt_d"]))
        c.ema.model.load_state_dict({k: v.to(dev) for k, v in load_state_dict(ckpt / "model.safetensors").items()})
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{ckpt}: trainer state does not match the config ({' '.join(str(exc).split())[:160]})") from None
    for opt in (c.opt_g, c.opt_d):  # optimizer tensors onto the device
        if opt is None:
            continue
        for st in opt.state.values():
            for k, v in st.items():
                if torch.is_tensor(v) and k != "step":
                    st[k] = v.to(dev)
    if c.scaler_g is not None and "scaler_g" in meta:
        c.scaler_g.load_state_dict(meta["scaler_g"])
        if c.scaler_d is not None and "scaler_d" in meta:
            c.scaler_d.load_state_dict(meta["scaler_d"])
    return meta


def _hardware(info: D_.DistInfo) -> str:
    if info.device.type == "cuda":
        name = torch.cuda.get_device_name(info.device)
    else:
        name = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return f"{info.world} x {name}"


def _what(cfg: RunConfig) -> str:
    if cfg.model.kind == "rgm":
        return "A Restoration-based Generative Model (RGM) generator"
    if cfg.objective.kind == "ambient":
        return "A denoiser of clean images learned from corrupted images only (ambient objective),"
    if cfg.objective.kind == "rsd":
        return "A one-step generator distilled (RSD) from a teacher of corrupted data, without any image,"
    return "An MMSE twin denoiser"


def _corruption_text(c) -> str:
    if c.operator == "none":
        return "none (clean training images)"
    how = f"simulated on loading from clean images (seed {c.seed})" if c.simulate else "the images as given"
    what = f"{c.missing:.0%} of the pixels missing" if c.operator == "mask" else f"sigma_n {c.sigma_n:g}"
    if c.operator.startswith("deblur-"):
        what = (f"width {c.width:g}, " if c.operator == "deblur-gauss" else "") + f"size {c.size}, {what}, rcond {c.rcond:g}"
    return f"{c.operator}, {what}: {how}; no clean image was used"


def _objective_text(o) -> str:
    if o.kind == "map":
        return f"map, prior {o.prior}, sampling {o.sampling}, lambda_fid {o.lambda_fid}"
    if o.kind == "rsd":
        floor = "the teacher's" if o.sigma_floor is None else f"{o.sigma_floor:g}"
        return f"rsd, teacher `{o.teacher}`, sigma_gen {o.sigma_gen}, level floor {floor}, {o.fake_steps} fake steps per step"
    return f"{o.kind}, noise levels {o.sigma_min:g}..{o.sigma_max:g}" + (f", loss {o.loss}" if o.kind == "mmse" else "")


def _data_text(cfg: RunConfig, data_dir: str, n_images: int) -> str:
    size = f"{cfg.data.crop}x{cfg.data.crop}"
    if cfg.objective.kind == "rsd":
        return f"none (data-free distillation; {size} generated samples, channels {cfg.model.channels})"
    return f"`{data_dir}` ({n_images} images, {size} crops, channels {cfg.model.channels})"


def _card(cfg: RunConfig, step: int, wall: float, data_dir: str, n_images: int, hw: str, metrics: dict,
          n_params: int, stopped: bool = False) -> str:
    m = "\n".join(f"| {k} | {v:.4g} |" for k, v in sorted(metrics.items())) or "| (none) | |"
    p = cfg.process
    sched = f"noise levels {p.level_min:g}..{p.level_max:g}" if p.kind == "geometric" else f"beta {p.beta_min}..{p.beta_max}"
    proc = f"{p.kind} (K={p.num_steps}, {sched}" + (f", {p.variant})" if p.kind == "multiscale" else ")")
    steps_of = "" if step >= cfg.train.steps else f" of {cfg.train.steps}" + (
        f", stopped by train.max_seconds = {cfg.train.max_seconds:g}" if stopped else "")
    return f"""# pnp-rgm prior: {cfg.train.name or 'unnamed'}

{_what(cfg)} trained with pnp-rgm.

| | |
|---|---|
| model | {cfg.model.kind}, {n_params:,} parameters, width {cfg.model.base_width}, mult {list(cfg.model.channel_mult)} |
| process | {proc} |
| objective | {_objective_text(cfg.objective)} |
| corruption | {_corruption_text(cfg.corruption)} |
| data | {_data_text(cfg, data_dir, n_images)} |
| steps | {step}{steps_of} (batch {cfg.data.batch_size} per process) |
| hardware | {hw} |
| wall time | {wall / 3600:.2f} h ({wall:.0f} s) |

## Final training metrics (moving averages)

| metric | value |
|---|---|
{m}

## Use

```python
from pnp_rgm.priors import load_prior
prior = load_prior("path/to/this/folder")
imgs = prior.sample(16, size=64, seed=0)
```

`model.safetensors` holds the EMA generator; `config.yaml` the full training config.
The `trainer/` subfolder (optimizer state, raw weights) is only needed to resume training.
"""


def save_grid(path: Path, imgs: torch.Tensor, nrow: int) -> None:
    from pnp_rgm.io import write_image

    write_image(path, image_grid(imgs, nrow), overwrite=True)


@torch.no_grad()
def _sample_figure(c: Components, x0: torch.Tensor, path: Path, seed: int) -> None:
    cfg = c.cfg
    G = c.ema.model
    n = cfg.train.sample_count
    nrow = min(n, 8)
    # the first row: the saved prior's own ``Prior.sample`` (Algorithm 3, an ambient teacher's
    # probability-flow ODE, or an RSD generator's one step), the code path a user's call takes
    gen = Prior(G, cfg).sample(n, cfg.data.crop, seed=seed, batch_size=min(n, 16)).cpu()
    if cfg.objective.kind == "rsd":  # one-step samples only: there is nothing to restore
        save_grid(path, gen, nrow)
        return
    if isinstance(c.objective, AmbientSpectralObjective):  # no clean image to restore: samples, then data
        data = from_net(x0[:min(nrow, x0.shape[0])].float())
        data = torch.nn.functional.interpolate(data, size=(cfg.data.crop, cfg.data.crop), mode="nearest").cpu()
        save_grid(path, torch.cat([gen, data]), nrow)
        return
    rows = [gen]
    m = min(nrow, x0.shape[0])
    clean = x0[:m, :cfg.model.channels].float()  # masked data: the image, without its mask channel
    rows.append(from_net(clean).cpu())
    torch.manual_seed(seed)
    for k in range(1, c.process.K + 1):
        x_k = c.process.degrade(clean, k)
        rows.append(from_net(restore_step(G, c.process, x_k, k, None).float()).cpu())
    pad = [r if r.shape[0] % nrow == 0 else torch.cat([r, torch.ones((nrow - r.shape[0] % nrow,) + r.shape[1:])]) for r in rows]
    save_grid(path, torch.cat(pad), nrow)


# --------------------------------------------------------------------------- main loop
def _check_out(out: Path, resume: bool) -> None:
    """--out must be a folder; a new run needs it absent or empty (nothing overwritten or appended
    to), a resumed one needs a checkpoint in it."""
    if out.exists() and not out.is_dir():
        raise PnpRgmError(f"--out {out} is a file, not a folder")
    ckpt = out / "checkpoint"
    if resume:
        if not (ckpt / "trainer" / "state.json").is_file():
            raise CheckpointError(f"--resume: no checkpoint in {out} (no {ckpt / 'trainer' / 'state.json'}); "
                                  f"start a new run without --resume")
    elif out.is_dir() and any(out.iterdir()):
        what = "holds a checkpoint" if ckpt.exists() else "is not empty"
        raise PnpRgmError(f"--out {out} {what}; pass --resume to continue the run in it, or choose another "
                          f"(new or empty) folder")


def train(cfg: RunConfig, data_dir, out_dir, steps: Optional[int] = None, resume: bool = False,
          progress: bool = True, batch_hook: Optional[Callable[[int, torch.Tensor], torch.Tensor]] = None,
          on_end: Optional[Callable[[Components, D_.DistInfo], None]] = None,
          settings: Optional[dict] = None) -> dict:
    """Train (or resume) a prior; returns a summary dict (rank 0: step, wall time, last losses, paths).

    ``steps`` overrides ``cfg.train.steps`` (the total step count). A new run needs ``out_dir``
    absent or empty. With ``resume`` the run in ``out_dir`` continues from its checkpoint with its
    saved config: ``cfg`` must equal it but for :data:`~pnp_rgm.train.config.RESUME_KEYS`, and its
    train.steps is ignored (the saved one is kept unless ``steps`` is given, which may not be below
    the checkpoint's step). ``data_dir`` None on resume: the run's recorded data folder (the
    checkpoint's trainer/state.json keeps its resolved path; another one is used with a warning).
    Everything is checked before ``out_dir`` is written; a new run that fails before its first
    step removes what it created. ``settings``: the dotted overrides ``cfg`` was made with (the
    CLI's --set and --corrupt), kept in trainer/state.json for a resume to apply again (None on
    resume: the saved ones). ``batch_hook(step, x0)`` may modify each batch (tests use it to
    inject faults); ``on_end(components, dist_info)`` runs on every rank after the last step."""
    from torch.utils.data import DataLoader

    from pnp_rgm.train.config import load_run_config
    from pnp_rgm.train.data import ImageFolder, InfiniteSampler, unwrap_worker_error, worker_init

    out = Path(out_dir)
    ckpt = out / "checkpoint"
    cfg = absolute_teacher(cfg)
    info = D_.setup(cfg.train.device)
    made: Optional[Path] = None  # the folder this call created (removed if it fails before its first step)
    made_files: list[Path] = []  # or what it wrote into an empty --out that was already there
    start = step = 0
    try:
        if info.is_main and resume and out.is_dir():
            recover(ckpt)
        D_.barrier(info)
        _check_out(out, resume)
        data_path = str(Path(data_dir).resolve()) if data_dir is not None else None
        if resume:
            meta0 = load_trainer_meta(ckpt)
            start = step = meta0["step"]
            cfg = resumed_config(cfg, load_run_config(ckpt / "config.yaml"), steps, where=str(ckpt / "config.yaml"))
            if cfg.train.steps < start:
                raise ConfigError(f"--steps {cfg.train.steps}: the run in {out} is already at step {start}; "
                                  f"give --steps >= {start} to continue it")
            if settings is None:
                settings = meta0.get("settings")
            saved_data = meta0.get("data")
            if cfg.objective.kind != "rsd":
                if data_path is None:
                    data_path = saved_data
                elif saved_data and data_path != saved_data and info.is_main:
                    print(f"warning: --data {data_path} is not the run's data folder {saved_data}; "
                          f"training continues on {data_path}", file=sys.stderr)
        elif steps is not None:
            cfg = replace(cfg, train=replace(cfg.train, steps=int(steps)))
        settings = json.loads(json.dumps(settings or {}, default=str))  # as state.json will hold them
        D_.barrier(info)  # every rank has looked at --out before rank 0 writes into it
        total = cfg.train.steps
        cfg = resolve_rsd_config(cfg)
        cor = cfg.corruption
        distill = cfg.objective.kind == "rsd"  # data free: batches only carry a shape
        if not distill and data_path is None:
            raise ConfigError("--data: a folder of training images is required (only the rsd objective is data free)")
        if distill:
            data_path = None
        spectral = SpectralAmbient(cor) if is_spectral(cor.operator) else None  # blurred / block-averaged data
        dataset = None if distill else ImageFolder(
            data_path, spectral.data_size(cfg.data.crop) if spectral else cfg.data.crop, cfg.model.channels,
            cfg.data.hflip, cfg.data.vflip, cfg.data.cache, scale=cfg.data.scale,
            noise_sigma=cor.sigma_n if cor.simulate else 0.0, noise_seed=cor.seed, masked=cor.operator == "mask",
            mask_missing=cor.missing if cor.simulate else 0.0,
            degrade=spectral.degrade_image if spectral and cor.simulate else None)
        if dataset is not None:
            dataset.check()
        c = build_components(cfg, info)
        wall0 = 0.0
        if resume:
            meta = _load_trainer_state(c, ckpt)
            wall0 = float(meta.get("wall_time_s", 0.0))
        if info.is_main:  # the run folder appears only once config, data and networks are good
            if not resume:
                if not out.exists():
                    made = out
                    while not made.parent.exists():
                        made = made.parent
                made_files = [out / "config.yaml", out / "samples", out / "log.jsonl"]
            out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out / "config.yaml")
            (out / "samples").mkdir(exist_ok=True)
        # per-rank, per-resume randomness for data and noise
        seed = cfg.train.seed + 10007 * info.rank + 7919 * start
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        if distill:
            shape = (cfg.data.batch_size, cfg.model.channels, cfg.data.crop, cfg.data.crop)
            batches = iter(lambda: torch.zeros(shape), None)
        else:
            loader = DataLoader(dataset, batch_size=cfg.data.batch_size,
                                sampler=InfiniteSampler(len(dataset), info.rank, info.world, seed),
                                num_workers=cfg.data.num_workers, drop_last=True, worker_init_fn=worker_init,
                                persistent_workers=cfg.data.num_workers > 0, pin_memory=info.device.type == "cuda")
            batches = iter(loader)
        mf = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        hw = _hardware(info)
        n_params = count_params(c.G)
        avg: dict[str, float] = {}
        bar = None
        if progress and info.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)
        last_saved = start if resume else None
        t_start = time.time()
        t_log, n_log = time.time(), 0
        x0 = None
        summary: dict = {}

        def save(step_done: int, stopped: bool = False) -> None:
            wall = wall0 + time.time() - t_start
            extra = {"metrics": avg, "data": data_path, "settings": settings}
            tensors, meta = _trainer_state(c, step_done, wall, extra)
            card = _card(cfg, step_done, wall, str(data_path), len(dataset) if dataset else 0, hw, avg, n_params,
                         stopped)
            save_checkpoint(ckpt, c.ema.model.state_dict(), cfg, card, tensors, meta)

        def kept() -> str:
            return f"the last good checkpoint (step {last_saved}) is kept in {ckpt}" if last_saved is not None \
                else "no checkpoint had been written yet"

        try:
            while step < total:
                try:
                    x0 = next(batches)
                except PnpRgmError as exc:  # a bad image met in a worker: its own one-line message
                    raise unwrap_worker_error(exc) from None
                x0 = x0.to(info.device, non_blocking=True)
                if batch_hook is not None:
                    x0 = batch_hook(step, x0)
                x0 = batch_to_net(x0, cfg.model.channels).contiguous(memory_format=mf)
                logs = train_step(c, x0, step, info)
                step += 1
                n_log += 1
                # out of time on any rank: every rank stops after this step, and it is saved as the last
                stop = cfg.train.max_seconds > 0 and not D_.all_true(
                    time.time() - t_start < cfg.train.max_seconds, info)
                last = step == total or stop
                for k, v in logs.items():
                    avg[k] = v if k not in avg else 0.9 * avg[k] + 0.1 * v
                if info.is_main:
                    if bar is not None:
                        bar.update(1)
                        if step % 10 == 0 or last:
                            bar.set_postfix({k: f"{avg[k]:.3g}" for k in ("loss_d", "loss_g", "fid", "mse", "mse_y", "mse_known", "loss_fake")
                                             if k in avg})
                    if step % cfg.train.log_every == 0 or last:
                        dt = time.time() - t_log
                        rec = {"step": step, "images_per_s": n_log * cfg.data.batch_size * info.world / max(dt, 1e-9),
                               "lr_g": c.opt_g.param_groups[0]["lr"], **logs}
                        with open(out / "log.jsonl", "a") as fh:
                            fh.write(json.dumps(rec) + "\n")
                        t_log, n_log = time.time(), 0
                    if step % cfg.train.sample_every == 0 or last:
                        _sample_figure(c, x0, out / "samples" / f"step_{step:07d}.png", cfg.train.seed)
                    if step % cfg.train.ckpt_every == 0 or last:
                        save(step, stopped=stop)
                        last_saved = step
                if step % cfg.train.ckpt_every == 0 or last:
                    D_.barrier(info)
                if stop:
                    break
        except TrainingDivergedError as exc:
            raise TrainingDivergedError(f"{exc}; training stopped, {kept()}. Try a lower learning rate, "
                                        f"grad clipping or fp32") from None
        except (MemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
                raise
            raise PnpRgmError(f"out of memory at step {step + 1} on {info.device} (data.batch_size "
                              f"{cfg.data.batch_size}, data.crop {cfg.data.crop}); lower them; {kept()}") from None
        finally:
            if bar is not None:
                bar.close()
        if on_end is not None:
            on_end(c, info)
        summary = {"step": step, "stopped_early": step < total, "wall_time_s": wall0 + time.time() - t_start,
                   "checkpoint": str(ckpt),
                   "metrics": dict(avg), "world_size": info.world, "rank": info.rank}
        return summary
    except BaseException:
        if step == start and info.is_main:  # a new run that failed before its first step leaves nothing
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)
            else:
                for p in made_files:
                    if p.is_dir():
                        shutil.rmtree(p, ignore_errors=True)
                    elif p.exists():
                        p.unlink()
        raise
    finally:
        D_.cleanup()
