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
    r = Restorer("sr4", steps=3, alpha=0.9)
    assert r.method == "rgm" and r.config.steps == 3 and r.config.alpha == 0.9
    assert r.config.sigma_max == preset_for("sr4").settings["sigma_max"]  # the rest comes from the preset
    assert Restorer("sr4", "tv", iters=3).settings["iters"] == 3


def test_every_task_defaults_to_a_bundled_prior():
    from pnp_rgm.priors import available_priors, load_prior

    presets = load_presets()
    expect = {"sr2": "mmse-sr", "sr4": "mmse-sr", "sr8": "mmse-sr", "sr4-bicubic": "mmse-sr", "colorize": "mmse-gray",
              "denoise": "mmse-color", "inpaint": "mmse-color", "deblur-gauss": "mmse-color",
              "deblur-uniform": "mmse-color", "sr3": "mmse-color"}
    assert {preset_for(task, presets).prior for task in expect} <= set(available_priors())
    assert {task: preset_for(task, presets).prior for task in expect} == expect
    for name in set(expect.values()):  # every bundled prior loads, with its card
        prior = load_prior(name)
        assert prior.kind == "mmse" and prior.channels == 3 and (prior.path / "model_card.md").is_file()


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
