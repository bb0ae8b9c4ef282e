"""Priors from corrupted data only: the ambient-noise objective, the corruption config and --corrupt."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pnp_rgm.errors import ConfigError
from pnp_rgm.io import write_image
from pnp_rgm.objectives import AmbientNoiseObjective
from pnp_rgm.train.config import load_run_config

from tiny import TINY_MODEL  # noqa: E402

SIGMA_N = 0.2  # [0, 1] units


def ambient_cfg(**corruption):
    return load_run_config({
        "model": {**TINY_MODEL, "kind": "mmse", "nz": 0, "precond": "edm"},
        "objective": {"kind": "ambient", "prior": "none", "continuous": True, "sigma_max": 1.0},
        "optim": {"warmup_steps": 0}, "data": {"crop": 16, "batch_size": 4, "num_workers": 0},
        "train": {"steps": 2, "log_every": 1, "sample_every": 100, "ckpt_every": 1, "sample_count": 2,
                  "precision": "fp32", "channels_last": False},
        "corruption": {"operator": "denoise", "sigma_n": SIGMA_N, **corruption}})


class _Shrink(torch.nn.Module):
    """D(x, σ) = a / (a + σ²) · x: the family holding the exact denoiser of N(0, s²) data (a = s²)."""

    def __init__(self) -> None:
        super().__init__()
        self.log_a = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, logs, z):
        a = self.log_a.exp()
        return a / (a + torch.exp(2 * logs)).view(-1, 1, 1, 1) * x


def test_ambient_target_is_unbiased_for_the_clean_denoiser():
    """Gaussian data x ~ N(0, s²), seen only as y = x + σ_n n: fitting the ambient loss recovers the clean
    denoiser's a = s², while regressing D(x_t) on y directly (the naive target) keeps the data's noise."""
    torch.manual_seed(0)
    cfg = ambient_cfg().objective
    obj = AmbientNoiseObjective(cfg, None, "none", SIGMA_N)
    s = 0.5  # network units ([-1, 1]); σ_n is 0.4 there
    s_n = 2 * SIGMA_N

    def fit(loss_fn):
        G = _Shrink()
        opt = torch.optim.Adam(G.parameters(), lr=0.05)
        for _ in range(300):
            y = s * torch.randn(512, 1, 4, 4) + s_n * torch.randn(512, 1, 4, 4)
            loss = loss_fn(G, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return float(G.log_a.detach().exp())

    a_ambient = fit(lambda G, y: obj.g_loss(G, None, y)[0])

    def naive(G, y):
        logs = torch.rand(y.shape[0]) * (obj.hi - obj.lo) + obj.lo
        x_t = obj.inputs(y, logs)
        return 0.5 * (G(x_t, logs, None) - y).pow(2).mean()

    a_naive = fit(naive)
    assert a_ambient == pytest.approx(s * s, rel=0.05)
    assert a_naive > 1.5 * s * s  # E[y | x_t] = (s² + σ_n²)/(s² + σ_t²) x_t: it keeps the data's noise


def test_ambient_inputs_have_the_requested_noise_level():
    obj = AmbientNoiseObjective(ambient_cfg().objective, None, "none", SIGMA_N)
    y = torch.zeros(4, 1, 64, 64)
    logs = torch.log(torch.tensor([0.4, 0.5, 1.0, 2.0]))  # σ_t in network units, all >= 2 σ_n = 0.4
    x_t = obj.inputs(y, logs)
    got = x_t.flatten(1).std(1)
    want = (torch.exp(2 * logs) - 0.4 ** 2).sqrt()  # the rest of σ_t is y's own noise
    assert torch.allclose(got, want, rtol=0.03, atol=1e-3)
    assert obj.lo == pytest.approx(math.log(0.4))  # never below the data's own noise
    c = obj.target_mix(logs)
    assert float(c[0]) == pytest.approx(0.0, abs=1e-6) and float(c[-1]) == pytest.approx(1 - 0.04)


def test_one_ambient_step_is_finite():
    from pnp_rgm.train.dist import DistInfo
    from pnp_rgm.train.trainer import build_components, train_step

    c = build_components(ambient_cfg(), DistInfo())
    y = torch.rand(4, 3, 16, 16) * 2 - 1 + 0.4 * torch.randn(4, 3, 16, 16)
    logs = train_step(c, y, 0)
    assert all(math.isfinite(float(v)) for v in logs.values()) and "mse_y" in logs


@pytest.mark.parametrize("data, text", [
    ({"corruption": {"operator": "none"}}, "corruption.operator"),
    ({"corruption": {"operator": "denoise", "sigma_n": 0.0}}, "sigma_n"),
    ({"corruption": {"operator": "none", "sigma_n": 0.1}}, "operator"),
    ({"corruption": {"operator": "denoise", "sigma_n": 0.5}, "objective": {"sigma_max": 0.4}}, "sigma_max"),
    ({"corruption": {"operator": "blur"}}, "operator"),
])
def test_corruption_config_errors(data, text):
    base = {"model": {"kind": "mmse", "nz": 0}, "objective": {"kind": "ambient", "prior": "none", "continuous": True}}
    for k, v in data.items():
        base[k] = {**base.get(k, {}), **v}
    with pytest.raises(ConfigError, match=text):
        load_run_config(base)


def test_simulated_noise_is_fixed_per_image(tmp_path):
    from pnp_rgm.train.data import ImageFolder

    img = np.full((24, 20, 3), 0.5, np.float32)
    write_image(tmp_path / "a.png", img, overwrite=True)
    write_image(tmp_path / "b.png", img, overwrite=True)
    ds = ImageFolder(tmp_path, 16, noise_sigma=SIGMA_N, noise_seed=3)
    a1, a2, b = ds._image(0), ds._image(0), ds._image(1)
    assert np.array_equal(a1, a2) and not np.array_equal(a1, b)  # fixed per image, differs between images
    assert abs(float((a1 - 0.5).std()) - SIGMA_N) < 0.02 and float(a1.min()) < 0.0  # not clipped
    cached = ImageFolder(tmp_path, 16, cache=True, noise_sigma=SIGMA_N, noise_seed=3)
    assert np.array_equal(cached._image(0), a1) and np.array_equal(cached._image(0), a1)
    assert not np.array_equal(ImageFolder(tmp_path, 16, noise_sigma=SIGMA_N, noise_seed=4)._image(0), a1)


def test_cli_train_corrupt(tmp_path, capsys):
    import yaml
    from skimage.data import astronaut

    from pnp_rgm.cli import main
    from pnp_rgm.config import config_to_dict
    from pnp_rgm.priors import load_prior

    data = tmp_path / "clean"
    data.mkdir()
    write_image(data / "a.png", astronaut()[:48, :48].astype(np.float32) / 255.0, overwrite=True)
    cfg_path = tmp_path / "ambient.yaml"
    cfg_path.write_text(yaml.safe_dump(config_to_dict(ambient_cfg())))
    rc = main(["train", str(cfg_path), "--data", str(data), "--out", str(tmp_path / "run"), "--quiet", "--corrupt"])
    assert rc == 0
    saved = load_run_config(tmp_path / "run" / "config.yaml")
    assert saved.corruption.simulate and saved.corruption.sigma_n == SIGMA_N
    card = (tmp_path / "run" / "checkpoint" / "model_card.md").read_text()
    assert "denoise, sigma_n 0.2: simulated" in card and "no clean image" in card and "corrupted images only" in card
    prior = load_prior(tmp_path / "run" / "checkpoint")
    assert prior.denoise(torch.rand(1, 3, 16, 16), 0.3).shape == (1, 3, 16, 16)
    capsys.readouterr()
    rc = main(["train", "mmse-cpu", "--data", str(data), "--out", str(tmp_path / "x"), "--corrupt"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--corrupt" in err and not (tmp_path / "x").exists()
