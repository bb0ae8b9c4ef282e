"""Helpers shared by the CLI commands."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from pnp_rgm.errors import OutputExistsError, TaskError


def parse_settings(items: Iterable[str]) -> dict[str, Any]:
    """``["iters=30", "lam=inf"]`` -> ``{"iters": 30, "lam": inf}`` (values parsed as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TaskError(f"--set expects key=value, got {item!r}")
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
            raise OutputExistsError(f"output '{p}' exists; pass --overwrite to replace it")
        if p.exists() and p.is_dir():
            raise OutputExistsError(f"output '{p}' is a directory; give a file name")
