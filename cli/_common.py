"""Helpers shared by the CLI commands."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import click
import numpy as np
import yaml

from pnp_rgm.errors import OutputExistsError, TaskError
from pnp_rgm.io import write_image
from pnp_rgm.priors import PRECISIONS


def precision_option(what: str):
    """The ``--precision`` option of the commands that run a learned prior's network (``what`` starts
    its help), with the choices :data:`pnp_rgm.priors.PRECISIONS` that the API checks."""
    return click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
                        help=f"{what}; auto = bf16 on a CPU with native bf16 (AVX-512 BF16 or AMX), else fp32.")


def parse_settings(items: Iterable[str], options: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``["iters=30", "lam=inf"]`` -> ``{"iters": 30, "lam": inf}`` (values parsed as YAML scalars).
    ``options`` maps keys that have their own option (``{"seed": "--seed"}``) to it: they are refused."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TaskError(f"--set expects key=value, got {item!r}")
        if options and key in options:
            raise TaskError(f"--set {item}: use {options[key]}")
        raw = raw.strip()
        if raw.lower() in ("inf", "+inf", "infinity"):
            out[key] = float("inf")
            continue
        try:
            out[key] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            out[key] = raw
    return out


def check_outputs(paths: Iterable[Path], overwrite: bool) -> None:
    """Refuse to clobber existing files unless ``overwrite``; checked before any work is done."""
    for p in paths:
        if p.exists() and not overwrite:
            raise OutputExistsError(_exists(p))
        if p.exists() and p.is_dir():
            raise OutputExistsError(f"output '{p}' is a directory; give a file name")


def write_output(path: Path, image: np.ndarray, bits: int, overwrite: bool) -> None:
    """:func:`~pnp_rgm.io.write_image`, naming ``--overwrite`` if ``path`` appeared after :func:`check_outputs`."""
    try:
        write_image(path, image, bits=bits, overwrite=overwrite)
    except OutputExistsError:
        raise OutputExistsError(_exists(path)) from None


def _exists(path: Path) -> str:
    return f"output '{path}' exists; pass --overwrite to replace it"
