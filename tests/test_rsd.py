"""Restoration Score Distillation: the distillation gradient, recovery of a known answer, and the
``rsd`` objective end to end (data-free training, checkpoint round trip, sampling, errors)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pnp_rgm.errors import ConfigError, PnpRgmError
from pnp_rgm.objectives import AmbientNoiseObjective
from pnp_rgm.rsd import CorruptedDomain, distillation_loss
from pnp_rgm.train.config import load_run_config

from test_ambient import SIGMA_N, _Shrink, ambient_cfg  # noqa: E402

TRAIN = {"steps": 2, "log_every": 1, "sample_every": 2, "ckpt_every": 1, "sample_count": 2,
         "precision": "fp32", "channels_last": False}


def test_distillation_gradient_is_the_normalised_score_gap():
    torch.manual_seed(0)
    y = torch.randn(3, 2, 4, 4, requires_grad=True)
    ref, t, f = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    distillation_loss(y, t, f, ref=ref).backward()
    w = (ref - t).abs().mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(y.grad, (f - t) / w / y.numel(), rtol=1e-5, atol=1e-8)


def test_rsd_recovers_the_clean_scale_from_noisy_data_scores():
    """Clean data N(0, s²) seen only through y = x + σ_n n; the exact ambient teacher D = a/(a + σ²) x_t
    (a = s²) is only queried at σ >= σ_n. A generator x = β z distilled against it, with the fake score
    fitted by the teacher's own loss on β z + σ_n n, reaches β² = s² (not s² + σ_n², the noisy data's)."""
    torch.manual_seed(0)
    s, s_n = 0.5, 2 * SIGMA_N  # network units
    teacher = _Shrink()
    teacher.log_a.data.fill_(math.log(s * s))
    teacher.requires_grad_(False)
    fake = _Shrink()
    fake.log_a.data.fill_(math.log(s * s))
    obj = AmbientNoiseObjective(ambient_cfg().objective, None, "none", SIGMA_N)
    dom = CorruptedDomain(s_n=s_n, lo=obj.lo, hi=obj.hi)
    log_beta = torch.nn.Parameter(torch.tensor(math.log(1.2)))
    opt_g = torch.optim.Adam([log_beta], lr=0.02)
    opt_f = torch.optim.Adam(fake.parameters(), lr=0.05)
    for _ in range(600):
        with torch.no_grad():
            y_g = dom.corrupt(log_beta.exp() * torch.randn(256, 1, 4, 4))
        for _ in range(2):
            lf = obj.g_loss(fake, None, y_g)[0]
            opt_f.zero_grad()
            lf.backward()
            opt_f.step()
        x_g = log_beta.exp() * torch.randn(256, 1, 4, 4)
        y_g = dom.corrupt(x_g)
        logs = dom.levels(256, "cpu")
        y_t = dom.noised(y_g, logs)
        with torch.no_grad():
            d_t, d_f = teacher(y_t, logs, None), fake(y_t, logs, None)
        lg = distillation_loss(y_g, d_t, d_f, ref=x_g)
        opt_g.zero_grad()
        lg.backward()
        opt_g.step()
    beta2 = float(log_beta.detach().exp()) ** 2
    assert beta2 == pytest.approx(s * s, rel=0.1), beta2
    assert abs(beta2 - s * s) < 0.25 * s_n ** 2  # far from the noisy data's variance s² + σ_n²


def test_noised_levels_count_the_corruption_noise():
    dom = CorruptedDomain(s_n=0.4, lo=math.log(0.4), hi=math.log(2.0))
    y = torch.zeros(3, 1, 64, 64)
    logs = torch.log(torch.tensor([0.4, 1.0, 2.0]))
    got = dom.noised(y, logs).flatten(1).std(1)
    assert torch.allclose(got, (torch.exp(2 * logs) - 0.16).sqrt(), rtol=0.03, atol=1e-3)
    plain = CorruptedDomain(s_n=0.4, lo=0.0, hi=1.0, total=False)
    assert torch.allclose(plain.noised(y, logs).flatten(1).std(1), torch.exp(logs), rtol=0.03)
    lv = dom.levels(1000, "cpu")
    assert float(lv.min()) >= dom.lo and float(lv.max()) <= dom.hi


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    from pnp_rgm.io import write_image
    from pnp_rgm.train.trainer import train

    root = tmp_path_factory.mktemp("rsd")
    (root / "data").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        write_image(root / "data" / f"{i}.png", rng.random((20, 20, 3)).astype(np.float32), overwrite=True)
    cfg = ambient_cfg(simulate=True)
    train(cfg, root / "data", root / "teacher", progress=False)
    return root / "teacher" / "checkpoint"


def rsd_cfg(teacher, **objective):
    return load_run_config({"objective": {"kind": "rsd", "prior": "none", "teacher": str(teacher), **objective},
                            "optim": {"warmup_steps": 0}, "data": {"crop": 16, "batch_size": 4, "num_workers": 0},
                            "train": TRAIN})


def test_rsd_trains_without_data_and_round_trips(teacher_dir, tmp_path):
    from pnp_rgm.priors import load_prior
    from pnp_rgm.train.trainer import train

    summary = train(rsd_cfg(teacher_dir), None, tmp_path / "student", progress=False)
    assert summary["step"] == 2 and all(math.isfinite(v) for v in summary["metrics"].values())
    assert {"loss_fake", "loss_g", "score_gap"} <= set(summary["metrics"])
    ckpt = tmp_path / "student" / "checkpoint"
    saved = load_run_config(ckpt / "config.yaml")
    teacher = load_run_config(teacher_dir / "config.yaml")
    assert saved.model == teacher.model and saved.corruption == teacher.corruption
    assert saved.objective.sigma_gen == teacher.objective.sigma_max
    assert "distilled (RSD)" in (ckpt / "model_card.md").read_text()
    assert (tmp_path / "student" / "samples" / "step_0000002.png").is_file()
    prior = load_prior(ckpt)
    assert prior.one_step
    from pnp_rgm.io import read_image  # the sample grid is what Prior.sample gives a user (the run's seed)

    grid = read_image(tmp_path / "student" / "samples" / "step_0000002.png")
    want = prior.sample(2, size=16, seed=saved.train.seed).permute(0, 2, 3, 1).numpy()
    assert np.abs(np.stack([grid[2:18, 2 + 18 * i:18 + 18 * i] for i in range(2)]) - want).max() <= 0.6 / 255
    a, b = prior.sample(3, size=16, seed=1), prior.sample(3, size=16, seed=1)
    assert a.shape == (3, 3, 16, 16) and torch.equal(a, b) and 0 <= float(a.min()) <= float(a.max()) <= 1
    assert not torch.equal(a, prior.sample(3, size=16, seed=2))
    with pytest.raises(PnpRgmError, match="one-step RSD generator"):
        prior.denoise(torch.rand(1, 3, 16, 16), 0.1)
    # resume continues from the saved generator and fake score
    summary = train(rsd_cfg(teacher_dir), None, tmp_path / "student", steps=3, resume=True, progress=False)
    assert summary["step"] == 3


def test_ambient_prior_tops_noise_up_to_its_data_noise(teacher_dir):
    from pnp_rgm.priors import load_prior

    from pnp_rgm.priors import AMBIENT_FLOOR

    p = load_prior(teacher_dir)
    floor = AMBIENT_FLOOR * SIGMA_N
    assert p.sigma_floor == pytest.approx(floor) and not p.one_step
    x = torch.rand(1, 3, 16, 16)
    got = p.denoise(x, 0.05, generator=torch.Generator().manual_seed(0))
    e = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))  # the noise denoise() adds
    topped = x + math.sqrt(floor ** 2 - 0.05 ** 2) * e
    assert torch.allclose(got, p.denoise(topped, floor), atol=1e-5)
    assert torch.equal(p.denoise(x, 0.3, generator=torch.Generator().manual_seed(0)), p.denoise(x, 0.3))  # no noise added


def test_rsd_from_a_masked_data_teacher(tmp_path):
    from skimage.data import astronaut

    from pnp_rgm.io import write_image
    from pnp_rgm.priors import load_prior
    from pnp_rgm.train.trainer import train
    from test_ambient import mask_cfg

    (tmp_path / "clean").mkdir()
    write_image(tmp_path / "clean" / "a.png", astronaut()[:48, :48].astype(np.float32) / 255.0, overwrite=True)
    train(mask_cfg(simulate=True), tmp_path / "clean", tmp_path / "teacher", progress=False)
    summary = train(rsd_cfg(tmp_path / "teacher" / "checkpoint"), None, tmp_path / "student", progress=False)
    assert all(math.isfinite(v) for v in summary["metrics"].values())
    prior = load_prior(tmp_path / "student" / "checkpoint")
    assert prior.one_step and prior.generator.mask_channel
    assert prior.sample(2, size=16, seed=0).shape == (2, 3, 16, 16)


def test_rsd_generator_starts_as_the_teacher(teacher_dir):
    from pnp_rgm.priors import load_prior
    from pnp_rgm.train.dist import DistInfo
    from pnp_rgm.train.trainer import build_components

    c = build_components(rsd_cfg(teacher_dir), DistInfo())
    t = load_prior(teacher_dir).generator.state_dict()
    for name, v in c.G.state_dict().items():
        assert torch.equal(v, t[name])
    for name, v in c.D.state_dict().items():  # the fake score too
        assert torch.equal(v, t[name])
    assert all(p.requires_grad for p in c.D.parameters())
    from pnp_rgm.priors import AMBIENT_FLOOR

    assert c.objective.domain.lo == pytest.approx(math.log(2 * AMBIENT_FLOOR * SIGMA_N))  # the teacher's floor
    low = build_components(rsd_cfg(teacher_dir, sigma_floor=0.0), DistInfo())
    assert low.objective.domain.lo == pytest.approx(math.log(2 * SIGMA_N))  # never below the data's noise
    assert not any(p.requires_grad for p in c.objective.teacher.parameters())


def test_cli_sample_and_train_without_data(teacher_dir, tmp_path, capsys):
    import yaml

    from pnp_rgm.cli import main
    from pnp_rgm.config import config_to_dict
    from pnp_rgm.io import read_image

    cfg_path = tmp_path / "rsd.yaml"
    cfg_path.write_text(yaml.safe_dump(config_to_dict(rsd_cfg(teacher_dir))))
    assert main(["train", str(cfg_path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    out = tmp_path / "grid.png"
    assert main(["sample", str(tmp_path / "run" / "checkpoint"), "-n", "4", "--size", "16", "-o", str(out)]) == 0
    assert read_image(out).shape == (2 + 2 * 18, 2 + 2 * 18, 3)
    capsys.readouterr()
    rc = main(["train", "mmse-cpu", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--data" in err and not (tmp_path / "x").exists()


@pytest.mark.parametrize("objective, text", [
    ({"kind": "mmse", "teacher": "x"}, "only the rsd objective"),
    ({"kind": "rsd", "teacher": "x", "sigma_gen": 0.0}, "sigma_gen"),
])
def test_rsd_config_errors(objective, text):
    with pytest.raises(ConfigError, match=text):
        load_run_config({"model": {"kind": "mmse", "nz": 0}, "objective": {"prior": "none", **objective}})


def test_rsd_teacher_must_be_a_denoiser(tmp_path):
    from pnp_rgm.priors import save_prior
    from pnp_rgm.rsd import resolve_rsd_config

    from tiny import tiny_prior

    save_prior(tiny_prior(), tmp_path / "rgm")
    with pytest.raises(ConfigError, match="noise-level-conditioned denoiser"):
        resolve_rsd_config(rsd_cfg(tmp_path / "rgm"))
    with pytest.raises(ConfigError, match="objective.teacher"):
        resolve_rsd_config(load_run_config("rsd-cpu"))  # the shipped config leaves the teacher to --set
