"""Config loading: strict frozen dataclasses from YAML."""
from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, field
from typing import Literal, Optional

import pytest

from pnp_rgm.config import config_to_dict, load_config, replace_config, save_config
from pnp_rgm.errors import ConfigError
from pnp_rgm.train.config import RunConfig, load_run_config, shipped_configs


@dataclass(frozen=True)
class Inner:
    n: int = 1
    x: float = 0.5


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[int, float] = (1, 2.0)
    mode: Literal["a", "b"] = "a"
    opt: Optional[int] = None
    flag: bool = False


def test_generic_loader_nested_and_types():
    o = load_config(Outer, {"name": "z", "inner": {"n": 3}, "sizes": [4, 5, 6], "pair": [2, 3], "mode": "b",
                            "opt": 7, "flag": True})
    assert o == Outer("z", Inner(3, 0.5), (4, 5, 6), (2, 3.0), "b", 7, True)
    assert load_config(Outer, {"name": "z", "opt": None}).opt is None
    assert load_config(Outer, config_to_dict(o)) == o
    with pytest.raises(FrozenInstanceError):
        o.name = "q"


@pytest.mark.parametrize("data, key", [
    ({"name": "z", "bogus": 1}, "bogus"),
    ({"name": "z", "inner": {"m": 1}}, "inner.m"),
    ({"name": "z", "inner": {"n": "three"}}, "inner.n"),
    ({"name": "z", "inner": {"n": 1.5}}, "inner.n"),
    ({"name": "z", "flag": 1}, "flag"),
    ({"name": "z", "mode": "c"}, "mode"),
    ({"name": "z", "sizes": [1, "x"]}, "sizes[1]"),
    ({"name": "z", "pair": [1]}, "pair"),
    ({"name": "z", "opt": "x"}, "opt"),
    ({"inner": {}}, "name"),
    ({"name": 3}, "name"),
])
def test_generic_loader_rejects_with_key(data, key):
    with pytest.raises(ConfigError) as ei:
        load_config(Outer, data)
    assert str(ei.value).startswith(key), str(ei.value)


def test_shipped_configs_load_and_round_trip(tmp_path):
    names = shipped_configs()
    for prefix in ("rgm-kld-d", "rgm-mmd-d", "rgm-dswd-d", "rgm-kld-sr", "mmse"):
        for size in ("cpu", "gpu"):
            assert f"{prefix}-{size}" in names
    for n in names:
        cfg = load_run_config(n)
        save_config(cfg, tmp_path / "c.yaml")
        assert load_run_config(tmp_path / "c.yaml") == cfg


def test_run_config_errors(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  base_width: wide\n")
    with pytest.raises(ConfigError, match=r"^model\.base_width: expected int"):
        load_run_config(p)
    p.write_text("optim:\n  lr_g: -1\n")
    with pytest.raises(ConfigError, match=r"optim\.lr_g"):
        load_run_config(p)
    p.write_text("trian:\n  steps: 3\n")
    with pytest.raises(ConfigError, match=r"^trian: unknown key"):
        load_run_config(p)
    p.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_run_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_run_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown config"):
        load_run_config("no-such-config")
    with pytest.raises(ConfigError, match="data.crop"):
        load_run_config({"data": {"crop": 30}})
    with pytest.raises(ConfigError, match="model.kind"):
        load_run_config({"model": {"kind": "mmse"}})
    with pytest.raises(ConfigError, match="sampling"):
        load_run_config({"process": {"kind": "multiscale"}, "objective": {"sampling": "posterior"}})
    for bad in ([1.5, 1.0], [0, 2], [1.0]):
        with pytest.raises(ConfigError, match=r"data\.scale"):
            load_run_config({"data": {"scale": bad}})
    with pytest.raises(ConfigError, match=r"data\.scale: resizing would change corrupted \(denoise\)"):
        load_run_config({"model": {"kind": "mmse"}, "objective": {"kind": "ambient", "continuous": True},
                         "corruption": {"operator": "denoise", "sigma_n": 0.05}, "data": {"scale": [1, 2]}})
    # YAML 1.1 reads 1e-4 as a string; floats accept it
    assert load_run_config({"optim": {"lr_g": "1e-4"}}).optim.lr_g == 1e-4


def test_replace_config():
    cfg = RunConfig()
    new = replace_config(cfg, {"train.steps": 5, "data.batch_size": 2})
    assert new.train.steps == 5 and new.data.batch_size == 2 and cfg.train.steps != 5
    with pytest.raises(ConfigError, match="train.stepz"):
        replace_config(cfg, {"train.stepz": 1})
    with pytest.raises(ConfigError, match="train.steps"):
        replace_config(cfg, {"train.steps": "many"})
