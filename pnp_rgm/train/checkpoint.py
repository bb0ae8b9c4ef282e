"""Checkpoint folders (diffusers-style ``save_pretrained``/``from_pretrained``, no pickle).

A checkpoint is a folder::

    model.safetensors    EMA generator weights (what a prior needs)
    config.yaml          the resolved RunConfig (model, process, objective, optim, data, train)
    model_card.md        data, steps, hardware, wall time, metrics, how to load
    trainer/state.safetensors, trainer/state.json   (optional) raw G/D weights, optimizer
                         tensors, and the scalar structure (step, param groups, ...) as JSON

Writes are atomic: the folder is assembled as ``.NAME.tmp`` next to the target and swapped in
with renames, so a kill never leaves a half-written checkpoint; :func:`recover` restores the
previous folder if a kill hit between the two renames. Nothing is ever unpickled.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors.torch import load_file, save_file

from pnp_rgm.config import save_config
from pnp_rgm.errors import CheckpointError

__all__ = ["save_checkpoint", "load_state_dict", "flatten_optimizer", "unflatten_optimizer",
           "load_trainer_state", "load_trainer_meta", "recover", "REQUIRED_FILES"]

REQUIRED_FILES = ("model.safetensors", "config.yaml")


def _contig(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}


def flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """optimizer.state_dict() -> (tensors keyed ``prefix/state/<param idx>/<name>``, JSON structure)."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}/state/{idx}/{name}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unflatten_optimizer(prefix: str, tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}/state/"
    for key, v in tensors.items():
        if key.startswith(head):
            idx, name = key[len(head):].split("/", 1)
            state.setdefault(int(idx), {})[name] = v
    for idx, d in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(d)
    return {"state": state, "param_groups": meta["param_groups"]}


def recover(path: str | os.PathLike) -> None:
    """If a kill hit between the two renames of a save, put the previous checkpoint back."""
    path = Path(path)
    old = path.parent / f".{path.name}.old"
    if not path.exists() and old.exists():
        old.rename(path)


def save_checkpoint(path: str | os.PathLike, model_state: dict[str, torch.Tensor], run_config,
                    card: str, trainer_tensors: Optional[dict[str, torch.Tensor]] = None,
                    trainer_meta: Optional[dict] = None) -> Path:
    """Atomically write a checkpoint folder (see module docstring). Returns its path."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp"
    old = path.parent / f".{path.name}.old"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(_contig(model_state), str(tmp / "model.safetensors"), metadata={"format": "pnp-rgm-prior/1"})
    save_config(run_config, tmp / "config.yaml")
    (tmp / "model_card.md").write_text(card)
    if trainer_tensors is not None:
        (tmp / "trainer").mkdir()
        save_file(_contig(trainer_tensors), str(tmp / "trainer" / "state.safetensors"))
        (tmp / "trainer" / "state.json").write_text(json.dumps(trainer_meta or {}, indent=1))
    if old.exists():
        shutil.rmtree(old)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    if old.exists():
        shutil.rmtree(old)
    return path


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file (never pickle); a missing/corrupt file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (a checkpoint folder needs {', '.join(REQUIRED_FILES)})")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable safetensors file ({' '.join(str(exc).split())[:120]})") from None


def load_trainer_meta(ckpt: str | os.PathLike) -> dict:
    """The JSON half of a checkpoint's trainer state (step, wall time, data folder, optimizer structure)."""
    ckpt = Path(ckpt)
    meta_p = ckpt / "trainer" / "state.json"
    if not meta_p.is_file():
        raise CheckpointError(f"{ckpt}: no trainer state (trainer/state.json); cannot resume from it")
    try:
        meta = json.loads(meta_p.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{meta_p}: not valid JSON ({exc.msg})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
        raise CheckpointError(f"{meta_p}: no step count; cannot resume from it")
    return meta


def load_trainer_state(ckpt: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    ckpt = Path(ckpt)
    meta = load_trainer_meta(ckpt)
    return load_state_dict(ckpt / "trainer" / "state.safetensors"), meta
