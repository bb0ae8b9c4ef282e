"""Presets: the shipped file loads and every task resolves; bad files are rejected with the key named."""
from __future__ import annotations

import pytest

from pnp_rgm.api import Restorer
from pnp_rgm.errors import ConfigError
from pnp_rgm.presets import load_presets, preset_for
from pnp_rgm.tasks import TASKS


def test_shipped_presets_cover_every_task():
    presets = load_presets()
    for task in TASKS:
        name = task.replace("N", "3")
        p = preset_for(name, presets)
        r = Restorer(name, sigma=0.1 if name == "denoise" else 0.0)  # builds with the preset's prior
        assert r.method in ("none", "tv", "rgm") and isinstance(p.prior, str)


def test_explicit_settings_override_the_preset(tmp_path):
    r = Restorer("sr4", iters=3)
    assert r.settings["iters"] == 3


@pytest.mark.parametrize("text, msg", [
    ("sr4: {prior: tv}\n", "default"),
    ("default: {prior: tv}\nblur: {prior: tv}\n", "unknown task 'blur'"),
    ("default: {prior: tv, alpha: 1}\n", "presets.default.alpha"),
    ("default: [1, 2]\n", "mapping"),
    ("default: {prior: tv}\n  bad: [\n", "cannot read"),
])
def test_bad_presets_files(tmp_path, text, msg):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=msg.replace("[", r"\[")):
        load_presets(f)
