"""Per-task presets: which prior and solver settings ``restore`` uses by default.

Shipped in ``pnp_rgm/presets.yaml``; a user file with the same format can be passed to
:func:`load_presets`. Explicit ``prior=``/settings always win over the preset.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pnp_rgm.errors import ConfigError

PRESETS_FILE = Path(__file__).resolve().parent / "presets.yaml"
_TASK = re.compile(r"default|denoise|colorize|inpaint|deblur-gauss|deblur-uniform|sr[1-9]\d*(-bicubic)?")


@dataclass(frozen=True)
class Preset:
    """The default prior of a task and the solver/operator settings that go with it."""

    prior: str = "tv"
    settings: dict[str, Any] = field(default_factory=dict)


def load_presets(path: str | Path = PRESETS_FILE) -> dict[str, Preset]:
    """Read and validate a presets YAML file (unknown tasks and keys are rejected, named)."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read presets file '{p}': {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict) or "default" not in raw:
        raise ConfigError(f"presets file '{p}' must map task names to entries and include 'default'")
    out = {}
    for task, entry in raw.items():
        if isinstance(task, str) and task.startswith("_"):
            continue  # a YAML anchor shared by several entries (e.g. `_sr: &sr {...}`)
        if not isinstance(task, str) or not _TASK.fullmatch(task):
            raise ConfigError(f"presets: unknown task {task!r}")
        if not isinstance(entry, dict):
            raise ConfigError(f"presets.{task}: expected a mapping with keys prior, settings")
        bad = sorted(set(entry) - {"prior", "settings"})
        if bad:
            raise ConfigError(f"presets.{task}.{bad[0]}: unknown key (valid: prior, settings)")
        prior, settings = entry.get("prior", "tv"), entry.get("settings") or {}
        if not isinstance(prior, str) or not isinstance(settings, dict):
            raise ConfigError(f"presets.{task}: prior must be a string and settings a mapping")
        out[task] = Preset(prior, dict(settings))
    return out


def preset_for(task: str, presets: dict[str, Preset] | None = None) -> Preset:
    """The preset of ``task`` (or the ``default`` entry)."""
    presets = presets if presets is not None else load_presets()
    return presets.get(task, presets["default"])
