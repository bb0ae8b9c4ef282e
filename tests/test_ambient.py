"""Priors from corrupted data only: the ambient-noise objective, the corruption config and --corrupt."""
from __future__ import annotations

import math
from dataclasses import replace

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
    ({"corruption": {"operator": "mask", "missing": 0.0}}, "missing"),
    ({"corruption": {"operator": "mask", "missing": 0.5, "sigma_n": 0.1}}, "sigma_n"),
    ({"corruption": {"operator": "denoise", "sigma_n": 0.1, "missing": 0.5}}, "missing"),
    ({"corruption": {"operator": "mask", "missing": 0.5}}, "mask_channel"),
    ({"corruption": {"operator": "mask", "missing": 0.5}, "objective": {"further": 0.0}}, "further"),
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
    a1, a2, b = ds.image(0), ds.image(0), ds.image(1)
    assert np.array_equal(a1, a2) and not np.array_equal(a1, b)  # fixed per image, differs between images
    assert abs(float((a1 - 0.5).std()) - SIGMA_N) < 0.02 and float(a1.min()) < 0.0  # not clipped
    cached = ImageFolder(tmp_path, 16, cache=True, noise_sigma=SIGMA_N, noise_seed=3)
    assert np.array_equal(cached.image(0), a1) and np.array_equal(cached.image(0), a1)
    assert not np.array_equal(ImageFolder(tmp_path, 16, noise_sigma=SIGMA_N, noise_seed=4).image(0), a1)


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


# --------------------------------------------------------------------------- ambient-mask
def mask_cfg(**corruption):
    return load_run_config({
        "model": {**TINY_MODEL, "kind": "mmse", "nz": 0, "precond": "edm", "mask_channel": True},
        "objective": {"kind": "ambient", "prior": "none", "continuous": True, "sigma_max": 1.0, "further": 0.2},
        "optim": {"warmup_steps": 0}, "data": {"crop": 16, "batch_size": 4, "num_workers": 0},
        "train": {"steps": 2, "log_every": 1, "sample_every": 100, "ckpt_every": 1, "sample_count": 2,
                  "precision": "fp32", "channels_last": False},
        "corruption": {"operator": "mask", "missing": 0.6, **corruption}})


class _ConstPosterior(torch.nn.Module):
    """Constant images x = u·1, u ~ N(0, s²): E[x | Ã x_t, Ã] = a Σ(Ã x_t) / (σ² + a |Ã|) at every pixel
    with a = s². Shown pixels get that times 1, hidden ones times ``g_hidden`` (1 at the optimum)."""

    def __init__(self) -> None:
        super().__init__()
        self.log_a = torch.nn.Parameter(torch.zeros(()))
        self.g_hidden = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, logs, z, mask):
        a = self.log_a.exp()
        n, tot = mask.flatten(1).sum(1), (mask * x).flatten(1).sum(1)
        u = (a * tot / (torch.exp(2 * logs) + a * n)).view(-1, 1, 1, 1)
        return u * (mask + self.g_hidden * (1 - mask))


def test_ambient_mask_target_learns_the_hidden_pixels():
    """Trained on masked constant images only, the ambient-mask loss recovers the clean posterior mean,
    hidden pixels included (g_hidden -> 1); scoring only the pixels the network was shown (no further
    masking) leaves the hidden-pixel gain untrained."""
    from pnp_rgm.objectives import AmbientMaskObjective

    torch.manual_seed(0)
    s = 0.5
    cfg = mask_cfg().objective

    def batch(b=256):
        u = s * torch.randn(b, 1, 1, 1)
        known = (torch.rand(b, 1, 4, 4) >= 0.6).float()
        return torch.cat([u * known * torch.ones(b, 1, 4, 4), known], dim=1)

    def fit(further):
        obj = AmbientMaskObjective(replace(cfg, further=further), None, "none", channels=1)
        G = _ConstPosterior()
        opt = torch.optim.Adam(G.parameters(), lr=0.05)
        for _ in range(300):
            loss = obj.g_loss(G, None, batch())[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
        return float(G.log_a.detach().exp()), float(G.g_hidden.detach())

    a, g = fit(0.2)
    assert a == pytest.approx(s * s, rel=0.1) and g == pytest.approx(1.0, abs=0.1)
    _, g_naive = fit(1e-9)  # nothing hidden again: the hidden pixels are never scored
    assert abs(g_naive) < 0.05


def test_masked_dataset_simulated_and_from_files(tmp_path):
    from pnp_rgm.errors import ImageError
    from pnp_rgm.train.data import ImageFolder

    img = np.full((24, 20, 3), 0.5, np.float32)
    write_image(tmp_path / "a.png", img, overwrite=True)
    ds = ImageFolder(tmp_path, 16, masked=True, mask_missing=0.6, noise_seed=1)
    x = ds.image(0)
    m = x[:, :, 3]
    assert x.shape == (24, 20, 4) and abs(1 - m.mean() - 0.6) < 0.01 and np.array_equal(x, ds.image(0))
    assert np.all(x[:, :, :3][m == 0] == 0) and np.allclose(x[:, :, :3][m == 1], 0.5, atol=0.01)
    assert ds[0].shape == (4, 16, 16)
    (tmp_path / "masks").mkdir()
    known = np.zeros((24, 20), np.float32)
    known[:, :10] = 1
    write_image(tmp_path / "masks" / "a.png", known, overwrite=True)
    ds = ImageFolder(tmp_path, 16, masked=True)
    assert len(ds) == 1 and np.array_equal(ds.image(0)[:, :, 3], known)  # masks/ is not an image of the set
    write_image(tmp_path / "b.png", img, overwrite=True)
    with pytest.raises(ImageError, match="1 of 2 images have no mask"):  # found before training starts
        ImageFolder(tmp_path, 16, masked=True)
    cached = ImageFolder(tmp_path, 16, masked=True, mask_missing=0.6, cache=True)
    cached.image(0)
    assert cached.cache[0].dtype == np.uint8  # an 8-bit image and a 0/1 mask are exact in uint8
    assert np.array_equal(cached.image(0), ImageFolder(tmp_path, 16, masked=True, mask_missing=0.6).image(0))


def test_worker_errors_keep_their_one_line_message():
    from pnp_rgm.errors import ImageError
    from pnp_rgm.train.data import unwrap_worker_error

    wrapped = ImageError("Caught ImageError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                         "last):\n  File \"x.py\", line 1\npnp_rgm.errors.ImageError: a.png: mask is 4x4, its image 8x8\n")
    got = unwrap_worker_error(wrapped)
    assert isinstance(got, ImageError) and str(got) == "a.png: mask is 4x4, its image 8x8"
    plain = ImageError("a.png: unreadable")
    assert unwrap_worker_error(plain) is plain


def test_cli_masked_data_without_masks_writes_nothing(tmp_path, capsys):
    from pnp_rgm.cli import main

    (tmp_path / "data").mkdir()
    write_image(tmp_path / "data" / "a.png", np.full((40, 40, 3), 0.5, np.float32), overwrite=True)
    rc = main(["train", "ambient-mask-cpu", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "no mask" in err and not (tmp_path / "run").exists()
    (tmp_path / "data" / "masks").mkdir()  # a mask of the wrong size is found before anything is written too
    write_image(tmp_path / "data" / "masks" / "a.png", np.ones((40, 32, 1), np.float32), overwrite=True)
    rc = main(["train", "ambient-mask-cpu", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "mask is 32x40, its image 40x40" in err and not (tmp_path / "run").exists()


def test_ambient_mask_trains_and_denoises(tmp_path):
    from skimage.data import astronaut

    from pnp_rgm.priors import load_prior
    from pnp_rgm.train.trainer import train

    (tmp_path / "clean").mkdir()
    write_image(tmp_path / "clean" / "a.png", astronaut()[:48, :48].astype(np.float32) / 255.0, overwrite=True)
    summary = train(mask_cfg(simulate=True), tmp_path / "clean", tmp_path / "run", progress=False)
    assert summary["step"] == 2 and math.isfinite(summary["metrics"]["mse_known"])
    prior = load_prior(tmp_path / "run" / "checkpoint")
    x = torch.rand(1, 3, 16, 16)
    assert prior.denoise(x, 0.1).shape == (1, 3, 16, 16)
    assert prior.sigma_floor == 0.0  # masked data has no noise: every level was trained
    assert prior.mask_known == pytest.approx(0.4 * 0.8)  # it is shown what it saw in training: 40 % kept, then 80 %
    g = torch.Generator().manual_seed(0)
    assert not torch.equal(prior.denoise(x, 0.1, generator=g), prior.denoise(x, 0.1, generator=g))  # a fresh mask a call
