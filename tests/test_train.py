"""Objectives, trainer, checkpoints, resume, NaN handling, dataset and the train/sample CLI."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch


from pnp_rgm.errors import CheckpointError, PnpRgmError
from pnp_rgm.io import write_image
from pnp_rgm.train.config import load_run_config

from tiny import TINY_MODEL  # noqa: E402


def tiny(objective=None, process=None, model=None, **train):
    t = {"steps": 4, "log_every": 1, "sample_every": 100, "ckpt_every": 2, "sample_count": 2, "precision": "fp32",
         "channels_last": False, "seed": 0, **train}
    return load_run_config({"model": {**TINY_MODEL, **(model or {})}, "process": process or {},
                            "objective": objective or {}, "optim": {"warmup_steps": 0},
                            "data": {"crop": 16, "batch_size": 4, "num_workers": 0}, "train": t})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from skimage.data import astronaut

    d = tmp_path_factory.mktemp("imgs")
    img = astronaut().astype(np.float32) / 255.0
    write_image(d / "a.png", img[:40, :48], overwrite=True)
    write_image(d / "b.jpg", img[100:136, 200:240], overwrite=True)
    write_image(d / "c.bmp", img[300:332, 300:340], overwrite=True)
    (d / "sub").mkdir()
    write_image(d / "sub" / "d.tif", img[200:224, 50:90, :1], overwrite=True)  # gray
    write_image(d / "sub" / "e.png", img[:10, :12], overwrite=True)  # smaller than the crop
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.mark.parametrize("objective, process, model", [
    ({"prior": "kld"}, {}, {}),
    ({"prior": "mmd"}, {}, {}),
    ({"prior": "dswd"}, {}, {}),
    ({"prior": "mmd", "feature_space": "raw"}, {}, {}),
    ({"prior": "none"}, {}, {}),
    ({"prior": "kld", "sampling": "posterior", "use_z": False}, {}, {}),
    ({"prior": "kld", "fidelity": False}, {}, {}),
    ({"prior": "kld"}, {"kind": "multiscale", "num_steps": 4}, {}),
    ({"prior": "kld"}, {"kind": "geometric", "num_steps": 4}, {"precond": "edm"}),
    ({"kind": "mmse", "prior": "none"}, {}, {"kind": "mmse"}),
    ({"kind": "mmse", "prior": "none", "continuous": False}, {}, {"kind": "mmse"}),
    ({"kind": "mmse", "prior": "none", "block_levels": [0, 1, 2], "gray_prob": 0.5}, {}, {"kind": "mmse", "precond": "edm"}),
])
def test_one_step_per_objective(objective, process, model):
    from pnp_rgm.train.dist import DistInfo
    from pnp_rgm.train.trainer import build_components, train_step

    cfg = tiny(objective, process, model)
    c = build_components(cfg, DistInfo())
    before = [p.detach().clone() for p in c.G.parameters()]
    x0 = torch.rand(4, 3, 16, 16) * 2 - 1
    logs = {}
    for step in range(2):
        logs = train_step(c, x0, step)
    assert all(np.isfinite(v) for v in logs.values()), logs
    assert logs["loss_g"] < 1e3
    assert any(not torch.equal(a, b) for a, b in zip(before, c.G.parameters()))
    if c.D is not None:
        assert "loss_d" in logs and logs["loss_d"] < 1e3


def test_bf16_autocast_step():
    from pnp_rgm.train.dist import DistInfo
    from pnp_rgm.train.trainer import build_components, train_step

    c = build_components(tiny(precision="bf16"), DistInfo())
    assert c.amp_dtype == torch.bfloat16
    logs = train_step(c, torch.rand(2, 3, 16, 16) * 2 - 1, 0)
    assert all(np.isfinite(v) for v in logs.values())
    assert all(p.dtype == torch.float32 for p in c.G.parameters())


def test_dataset_reads_all_formats(data_dir):
    from pnp_rgm.train.data import ImageFolder, list_images

    files = list_images(data_dir)
    assert sorted(f.suffix for f in files) == [".bmp", ".jpg", ".png", ".png", ".tif"]
    ds = ImageFolder(data_dir, crop=16, channels=3)
    for i in range(len(ds)):
        x = ds[i]
        assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert ImageFolder(data_dir, crop=16, channels=1)[0].shape == (1, 16, 16)
    with pytest.raises(PnpRgmError, match="not found"):
        ImageFolder(data_dir / "missing", 16)
    (data_dir.parent / "empty").mkdir(exist_ok=True)
    with pytest.raises(PnpRgmError, match="no images"):
        list_images(data_dir.parent / "empty")


def test_dataset_random_zoom(tmp_path):
    """data.scale: a zoom by s shows a window of crop/s pixels resized to the crop, so on a linear
    ramp s = 2 (zoom in) halves the slope per pixel and s = 1/2 doubles it; [1, 1] is the plain crop."""
    from pnp_rgm.io import write_image
    from pnp_rgm.train.data import ImageFolder

    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32)[None, :, None], (64, 1, 3))
    write_image(tmp_path / "ramp.png", ramp)
    slope = lambda x: float(np.median(np.diff(x[0].numpy(), axis=1)))  # rise per pixel, [0, 1] units
    plain = ImageFolder(tmp_path, 16, hflip=False)
    assert plain[0].shape == (3, 16, 16) and slope(plain[0]) == pytest.approx(1 / 63, abs=0.003)
    assert slope(ImageFolder(tmp_path, 16, hflip=False, scale=(2, 2))[0]) == pytest.approx(0.5 / 63, abs=0.003)
    assert slope(ImageFolder(tmp_path, 16, hflip=False, scale=(0.5, 0.5))[0]) == pytest.approx(2 / 63, abs=0.003)
    wide = ImageFolder(tmp_path, 32, hflip=False, scale=(0.25, 0.25))[0]  # the window stops at the image
    assert wide.shape == (3, 32, 32) and slope(wide) == pytest.approx(2 / 63, abs=0.003)
    with pytest.raises(ValueError, match="clean data"):
        ImageFolder(tmp_path, 16, scale=(1, 2), noise_sigma=0.1)


def test_train_checkpoint_round_trip(tmp_path, data_dir):
    from safetensors.torch import load_file

    from pnp_rgm.priors import load_prior, save_prior
    from pnp_rgm.train.trainer import train

    cfg = tiny(sample_every=4)
    summary = train(cfg, data_dir, tmp_path / "run", progress=False)
    ck = tmp_path / "run" / "checkpoint"
    assert summary["step"] == 4
    for f in ("model.safetensors", "config.yaml", "model_card.md", "trainer/state.safetensors", "trainer/state.json"):
        assert (ck / f).is_file(), f
    assert (tmp_path / "run" / "config.yaml").is_file() and (tmp_path / "run" / "samples" / "step_0000004.png").is_file()
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 4
    assert "4" in (ck / "model_card.md").read_text()
    prior = load_prior(ck)
    assert load_run_config(ck / "config.yaml") == cfg == prior.config
    sd = load_file(str(ck / "model.safetensors"))
    assert all(torch.equal(sd[k], v) for k, v in prior.generator.state_dict().items())
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        y = prior.restore(prior.degrade(x, 1), 1)
    save_prior(prior, tmp_path / "copy")
    again = load_prior(tmp_path / "copy")
    with torch.no_grad():
        torch.manual_seed(0)
        a = prior.restore(prior.degrade(x, 1), 1)
        torch.manual_seed(0)
        b = again.restore(again.degrade(x, 1), 1)
    assert torch.equal(a, b) and y.shape == x.shape
    # a second run into the same folder without --resume is refused
    with pytest.raises(PnpRgmError, match="--resume"):
        train(cfg, data_dir, tmp_path / "run", progress=False)


def test_load_prior_errors(tmp_path):
    from pnp_rgm.priors import load_prior, save_prior
    from pnp_rgm.nets import Generator

    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_prior(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_prior("no-such-bundled-prior")
    cfg = tiny()
    save_prior(Generator(cfg.model), tmp_path / "p", run_config=cfg)
    (tmp_path / "p" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_prior(tmp_path / "p")
    save_prior(Generator(cfg.model), tmp_path / "q", run_config=cfg)
    (tmp_path / "q" / "config.yaml").write_text((tmp_path / "q" / "config.yaml").read_text().replace("base_width: 8", "base_width: 16"))
    with pytest.raises(CheckpointError, match="does not match"):
        load_prior(tmp_path / "q")


def test_resume_after_interrupt(tmp_path, data_dir):
    from safetensors.torch import load_file

    from pnp_rgm.train.trainer import train

    cfg = tiny(steps=6, ckpt_every=2)

    def kill_at_5(step, x):
        if step == 4:  # the 5th step: checkpoint of step 4 is on disk
            raise KeyboardInterrupt
        return x

    with pytest.raises(KeyboardInterrupt):
        train(cfg, data_dir, tmp_path / "run", progress=False, batch_hook=kill_at_5)
    ck = tmp_path / "run" / "checkpoint"
    meta = json.loads((ck / "trainer" / "state.json").read_text())
    assert meta["step"] == 4
    st = load_file(str(ck / "trainer" / "state.safetensors"))
    assert float(st["opt_g/state/0/step"]) == 4 and float(st["opt_d/state/0/step"]) == 4
    summary = train(cfg, data_dir, tmp_path / "run", resume=True, progress=False)
    assert summary["step"] == 6
    st = load_file(str(ck / "trainer" / "state.safetensors"))
    assert float(st["opt_g/state/0/step"]) == 6
    log = [json.loads(line)["step"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log == [1, 2, 3, 4, 5, 6]
    # --resume on a folder without a checkpoint is an error, and creates nothing
    with pytest.raises(CheckpointError, match="--resume: no checkpoint in"):
        train(tiny(steps=1), data_dir, tmp_path / "fresh", resume=True, progress=False)
    assert not (tmp_path / "fresh").exists()


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path, data_dir):
    from pnp_rgm.priors import load_prior
    from pnp_rgm.train.trainer import TrainingDivergedError, train

    def nan_at_3(step, x):
        return x * float("nan") if step == 2 else x

    with pytest.raises(TrainingDivergedError, match=r"not finite at step 2.*last good checkpoint \(step 2\)"):
        train(tiny(steps=4, ckpt_every=2), data_dir, tmp_path / "run", progress=False, batch_hook=nan_at_3)
    ck = tmp_path / "run" / "checkpoint"
    assert json.loads((ck / "trainer" / "state.json").read_text())["step"] == 2
    prior = load_prior(ck)
    assert all(torch.isfinite(p).all() for p in prior.generator.parameters())


def test_cli_train_and_sample(tmp_path, data_dir):
    import yaml

    from pnp_rgm.cli import main

    cfg_path = tmp_path / "tiny.yaml"
    from pnp_rgm.config import config_to_dict

    cfg_path.write_text(yaml.safe_dump(config_to_dict(tiny(steps=2))))
    rc = main(["train", str(cfg_path), "--data", str(data_dir), "--out", str(tmp_path / "run"), "--quiet",
               "--set", "train.ckpt_every=1"])
    assert rc == 0
    out = tmp_path / "grid.png"
    rc = main(["sample", str(tmp_path / "run" / "checkpoint"), "-n", "5", "-o", str(out), "--size", "16", "--seed", "3"])
    assert rc == 0
    from pnp_rgm.io import read_image

    assert read_image(out).shape == (2 + 2 * 18, 2 + 3 * 18, 3)
    assert main(["sample", str(tmp_path / "run" / "checkpoint"), "-n", "2", "-o", str(out)]) == 2  # exists
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  widht: 3\n")
    assert main(["train", str(bad), "--data", str(data_dir), "--out", str(tmp_path / "x")]) == 2
    assert main(["train", str(cfg_path), "--data", str(tmp_path / "none"), "--out", str(tmp_path / "y")]) == 2
    assert main(["sample", str(tmp_path / "missing"), "-o", str(tmp_path / "g.png")]) == 2


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    import pnp_rgm.train.checkpoint as ck
    from pnp_rgm.nets import Generator
    from pnp_rgm.priors import load_prior

    cfg = tiny()
    G = Generator(cfg.model)
    ck.save_checkpoint(tmp_path / "c", G.state_dict(), cfg, "card v1", {"x": torch.ones(2)}, {"step": 1})
    real_save = ck.save_file

    def failing(tensors, path, metadata=None):
        if "trainer" in str(path):
            raise OSError("disk full")
        return real_save(tensors, path, metadata=metadata)

    monkeypatch.setattr(ck, "save_file", failing)
    with pytest.raises(OSError):
        ck.save_checkpoint(tmp_path / "c", G.state_dict(), cfg, "card v2", {"x": torch.zeros(2)}, {"step": 2})
    monkeypatch.setattr(ck, "save_file", real_save)
    assert (tmp_path / "c" / "model_card.md").read_text() == "card v1"
    assert json.loads((tmp_path / "c" / "trainer" / "state.json").read_text())["step"] == 1
    load_prior(tmp_path / "c")
    # a kill between the two renames leaves only the old copy: recover() puts it back
    (tmp_path / "c").rename(tmp_path / ".c.old")
    ck.recover(tmp_path / "c")
    assert (tmp_path / "c" / "model.safetensors").is_file()
    ck.save_checkpoint(tmp_path / "c", G.state_dict(), cfg, "card v3", {"x": torch.zeros(2)}, {"step": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


@pytest.mark.parametrize("setting, text", [("model.nz=[", "model.nz"), ("novalue", "key=value")])
def test_cli_train_bad_set_is_one_line(tmp_path, data_dir, capsys, setting, text):
    from pnp_rgm.cli import main

    rc = main(["train", "rgm-kld-d-cpu", "--data", str(data_dir), "--out", str(tmp_path / "o"), "--set", setting])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and text in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cosine_lr_schedule():
    from pnp_rgm.train.config import OptimConfig

    o = OptimConfig(warmup_steps=10, decay="cosine", decay_to=0.1)
    assert o.lr_scale(0, 110) == pytest.approx(0.1)  # warm-up
    assert o.lr_scale(9, 110) == pytest.approx(1.0)
    assert o.lr_scale(60, 110) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the cosine
    assert o.lr_scale(110, 110) == pytest.approx(0.1)
    assert OptimConfig().lr_scale(5000, 10) == 1.0
    with pytest.raises(Exception, match="decay"):
        OptimConfig(decay="linear")


def test_edm_preconditioned_twin_is_identity_at_small_sigma_and_weighted():
    from pnp_rgm.nets import Generator
    from pnp_rgm.objectives import make_objective
    from pnp_rgm.processes import make_process

    cfg = tiny({"kind": "mmse", "prior": "none", "continuous": True}, model={"kind": "mmse", "nz": 0, "precond": "edm"})
    G = Generator(cfg.model)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        out = G(x, torch.log(torch.tensor([1e-4, 1e-4])))
        big = G(x, torch.log(torch.tensor([2.0, 2.0])))
    assert torch.allclose(out, x, atol=1e-3)
    assert not torch.allclose(big, x, atol=0.1)
    obj = make_objective(cfg.objective, make_process(cfg.process), "edm")
    loss, logs = obj.g_loss(G, None, x)
    assert torch.isfinite(loss) and loss > logs["mse"]  # 1/c_out² weights exceed 1 for σ < ~0.5


def test_init_from_copies_matching_tensors(tmp_path):
    from pnp_rgm.nets import Generator
    from pnp_rgm.priors import save_prior
    from pnp_rgm.train.trainer import init_generator

    src_cfg = tiny({"kind": "mmse", "prior": "none", "continuous": True}, model={"kind": "mmse", "nz": 0})
    torch.manual_seed(1)
    src = Generator(src_cfg.model)
    save_prior(src, tmp_path / "twin", src_cfg)
    torch.manual_seed(2)
    G = Generator(tiny().model)  # RGM generator: same U-Net plus the z mapping
    copied, total = init_generator(G, str(tmp_path / "twin"))
    assert 0 < copied < total
    assert torch.equal(G.inc.weight, src.inc.weight) and torch.equal(G.outc.weight, src.outc.weight)
    with pytest.raises(CheckpointError, match="no tensor"):
        init_generator(torch.nn.Linear(2, 2), str(tmp_path / "twin"))


@pytest.mark.parametrize("blocks", [2, 3])
def test_init_from_a_shallower_unet_starts_as_its_function(tmp_path, blocks):
    """A U-Net with 2 or 3 residual blocks per level started from one with 1 (every weight
    perturbed, so zero-initialised layers hide nothing) computes the same function; its new blocks
    then train (their last conv is zero, not frozen)."""
    from pnp_rgm.nets import Generator
    from pnp_rgm.priors import save_prior
    from pnp_rgm.train.trainer import init_generator

    src_cfg = tiny({"kind": "mmse", "prior": "none", "continuous": True}, model={"kind": "mmse", "nz": 0, "precond": "edm"})
    torch.manual_seed(1)
    src = Generator(src_cfg.model).eval()
    for p in src.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    save_prior(src, tmp_path / "twin", src_cfg)
    cfg = tiny({"kind": "mmse", "prior": "none", "continuous": True},
               model={"kind": "mmse", "nz": 0, "precond": "edm", "num_res_blocks": blocks})
    torch.manual_seed(2)
    G = Generator(cfg.model).eval()
    init_generator(G, str(tmp_path / "twin"))
    x = torch.rand(2, 3, 16, 24) * 2 - 1
    s = torch.log(torch.tensor([0.05, 0.5]))
    with torch.no_grad():
        assert torch.allclose(G(x, s), src(x, s), atol=1e-5)
    G.train()
    ((G(x, s) - x) ** 2).mean().backward()
    assert G.down[0]["blocks"][1].c2.weight.grad.abs().sum() > 0


def test_sigma_conditioned_rgm_generator_starts_as_its_twin(tmp_path):
    """An RGM generator with EDM preconditioning started from a twin (its condition layers widened
    for z with zero columns) restores every state of its process exactly as the twin does, whatever
    z; the widened layers hold the twin's weights first."""
    from pnp_rgm.nets import Generator
    from pnp_rgm.priors import Prior, save_prior
    from pnp_rgm.processes import make_process
    from pnp_rgm.sampling import restore_step
    from pnp_rgm.train.trainer import init_generator

    src_cfg = tiny({"kind": "mmse", "prior": "none", "continuous": True}, model={"kind": "mmse", "nz": 0, "precond": "edm"})
    torch.manual_seed(1)
    twin = Generator(src_cfg.model).eval()
    for p in twin.parameters():  # zero-initialised output layers would hide a mismatch
        p.data.add_(0.05 * torch.randn_like(p))
    save_prior(twin, tmp_path / "twin", src_cfg)
    cfg = tiny({"prior": "kld"}, {"kind": "geometric", "num_steps": 4}, {"precond": "edm"})
    torch.manual_seed(2)
    G = Generator(cfg.model).eval()
    assert G.sigma_conditioned and G.nz == 8
    init_generator(G, str(tmp_path / "twin"))
    proj = G.down[0]["blocks"][0].n1.proj.weight  # (2 ch, emb + w_dim)
    src = twin.down[0]["blocks"][0].n1.proj.weight  # (2 ch, emb)
    assert torch.equal(proj[:, :src.shape[1]], src) and not proj[:, src.shape[1]:].any()
    process = make_process(cfg.process)
    x0 = torch.rand(3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        for k in range(1, process.K + 1):
            xk = process.degrade(x0, k)
            want = restore_step(twin, process, xk, k)
            assert torch.allclose(restore_step(G, process, xk, k, torch.randn(3, 8)), want, atol=1e-5)
            assert torch.allclose(restore_step(G, process, xk, k, None), want, atol=1e-5)
    y = torch.rand(2, 3, 16, 16)
    pt, pg = Prior(twin, src_cfg), Prior(G, cfg)
    with torch.no_grad():
        for s in (0.013, 0.05, 0.3):  # at and between the process's levels: no noise topped up
            assert torch.allclose(pg.denoise(y, s, z="random"), pt.denoise(y, s), atol=1e-5)


def test_model_card_names_the_process_schedule():
    from pnp_rgm.train.trainer import _card

    card = _card(tiny(process={"kind": "geometric", "num_steps": 8}), 1, 1.0, "d", 1, "cpu", {}, 10)
    assert "| process | geometric (K=8, noise levels 0.005..0.4) |" in card
    assert "| process | noise (K=4, beta 0.1..20.0) |" in _card(tiny(), 1, 1.0, "d", 1, "cpu", {}, 10)


def test_d_pretrain_updates_only_the_discriminator_first():
    from pnp_rgm.train.dist import DistInfo
    from pnp_rgm.train.trainer import build_components, train_step

    cfg = tiny({"prior": "kld"})
    cfg = replace(cfg, optim=replace(cfg.optim, d_pretrain=2))
    c = build_components(cfg, DistInfo())
    g0 = [p.detach().clone() for p in c.G.parameters()]
    d0 = [p.detach().clone() for p in c.D.parameters()]
    x0 = torch.rand(4, 3, 16, 16) * 2 - 1
    for step in range(2):
        logs = train_step(c, x0, step)
        assert "loss_d" in logs and "loss_g" not in logs
    assert all(torch.equal(a, b) for a, b in zip(g0, c.G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, c.D.parameters()))
    assert c.opt_g.param_groups[0]["lr"] == 0.0
    logs = train_step(c, x0, 2)
    assert "loss_g" in logs and c.opt_g.param_groups[0]["lr"] == cfg.optim.lr_g
    assert any(not torch.equal(a, b) for a, b in zip(g0, c.G.parameters()))
    with pytest.raises(Exception, match="d_pretrain"):
        replace(cfg.optim, d_pretrain=-1)


def test_d_steps_updates_the_discriminator_that_many_times_per_generator_step(monkeypatch):
    from pnp_rgm.train import trainer
    from pnp_rgm.train.dist import DistInfo

    cfg = tiny({"prior": "kld"})
    cfg = replace(cfg, optim=replace(cfg.optim, d_steps=3))
    c = trainer.build_components(cfg, DistInfo())
    calls = {"d": 0, "g": 0}
    d_loss, g_loss = c.objective.d_loss, c.objective.g_loss
    monkeypatch.setattr(c.objective, "d_loss", lambda *a, **k: (calls.__setitem__("d", calls["d"] + 1), d_loss(*a, **k))[1])
    monkeypatch.setattr(c.objective, "g_loss", lambda *a, **k: (calls.__setitem__("g", calls["g"] + 1), g_loss(*a, **k))[1])
    x0 = torch.rand(4, 3, 16, 16) * 2 - 1
    for step in range(2):
        trainer.train_step(c, x0, step)
    assert calls == {"d": 6, "g": 2}
    with pytest.raises(Exception, match="d_steps: must be >= 1.*got 0"):
        replace(cfg.optim, d_steps=0)


def test_max_seconds_stops_and_saves_as_the_last_step(tmp_path, data_dir, monkeypatch):
    from types import SimpleNamespace

    from pnp_rgm.priors import load_prior
    from pnp_rgm.train import trainer

    clock = {"t": 1000.0}  # each call of time.time() advances 1 s: ~3 calls a step, so 10 s is a few steps

    def tick():
        clock["t"] += 1.0
        return clock["t"]

    monkeypatch.setattr(trainer, "time", SimpleNamespace(time=tick))  # the trainer's clock only
    cfg = tiny(steps=1000, ckpt_every=500, sample_every=500, max_seconds=10)
    summary = trainer.train(cfg, data_dir, tmp_path / "run", progress=False)
    n = summary["step"]
    assert 1 <= n < 1000 and summary["stopped_early"]
    ck = tmp_path / "run" / "checkpoint"
    assert json.loads((ck / "trainer" / "state.json").read_text())["step"] == n
    assert (tmp_path / "run" / "samples" / f"step_{n:07d}.png").is_file()
    card = (ck / "model_card.md").read_text()
    assert f"| steps | {n} of 1000, stopped by train.max_seconds = 10 (batch 4" in card
    assert load_prior(ck).config.train.max_seconds == 10
    # a resumed run takes this call's budget (none here), not the saved one
    more = trainer.train(replace(cfg, train=replace(cfg.train, max_seconds=0.0)), data_dir, tmp_path / "run",
                         steps=n + 2, resume=True, progress=False)
    assert more["step"] == n + 2 and not more["stopped_early"]
    # without a limit the same config runs to its steps
    done = trainer.train(replace(cfg, train=replace(cfg.train, max_seconds=0.0, steps=3)), data_dir,
                         tmp_path / "run2", progress=False)
    assert done["step"] == 3 and not done["stopped_early"]
    with pytest.raises(Exception, match="max_seconds: must be >= 0.*got -1"):
        replace(cfg.train, max_seconds=-1)


def test_half_precision_bundle_round_trip(tmp_path):
    from safetensors.torch import load_file

    from pnp_rgm.priors import load_prior, save_prior
    from tiny import tiny_mmse_prior

    prior = tiny_mmse_prior()
    save_prior(prior, tmp_path / "p16", dtype=torch.float16)
    assert {t.dtype for t in load_file(str(tmp_path / "p16" / "model.safetensors")).values()} == {torch.float16}
    back = load_prior(tmp_path / "p16")
    assert next(back.generator.parameters()).dtype == torch.float32
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(back.denoise(x, 0.1), prior.denoise(x, 0.1), atol=2e-3)


def test_degraded_inputs_are_block_averages_or_gray():
    from pnp_rgm.objectives import degrade_inputs
    from pnp_rgm.operators import make_operator

    x0 = torch.rand(64, 3, 16, 16, dtype=torch.float64)
    assert degrade_inputs(x0) == (x0, None)  # plain denoising: nothing to change
    torch.manual_seed(0)
    x, degraded = degrade_inputs(x0, (0, 1, 2), gray_prob=0.25)
    ops = {m: make_operator(f"sr{2 ** m}", (3, 16, 16)) for m in (1, 2)}
    seen = set()
    for i in range(64):
        gray = bool(torch.allclose(x[i], x[i].mean(0, keepdim=True).expand(3, -1, -1)))
        cands = {0: x0[i:i + 1], **{m: op.pinv(op.forward(x0[i:i + 1])) for m, op in ops.items()}}
        match = [m for m, c in cands.items()
                 if torch.allclose(x[i:i + 1], c.mean(1, keepdim=True).expand(-1, 3, -1, -1) if gray else c)]
        assert len(match) == 1, i  # exactly the sr2^m operator's A†A x0 (then maybe decolorized)
        assert bool(degraded[i]) == (match[0] > 0 or gray)
        seen.add((match[0], gray))
    assert {m for m, _ in seen} == {0, 1, 2} and {g for _, g in seen} == {False, True}


def test_degraded_inputs_config_errors():
    base = {"model": {"kind": "mmse"}, "objective": {"kind": "mmse", "prior": "none"}}
    cfg = load_run_config({**base, "objective": {**base["objective"], "block_levels": [0, 3]}})
    assert cfg.objective.block_levels == (0, 3)
    with pytest.raises(Exception, match="data.crop: must be a multiple of 16"):
        load_run_config({**base, "objective": {**base["objective"], "block_levels": [4]}, "data": {"crop": 72}})
    with pytest.raises(Exception, match="block_levels"):
        load_run_config({**base, "objective": {**base["objective"], "block_levels": [7]}})
    with pytest.raises(Exception, match="gray_prob"):
        load_run_config({**base, "objective": {**base["objective"], "gray_prob": 1.5}})
    with pytest.raises(Exception, match="continuous MMSE"):
        load_run_config({"objective": {"block_levels": [0, 1]}})  # an RGM objective
    with pytest.raises(Exception, match="degraded_sigma_min"):
        load_run_config({**base, "objective": {**base["objective"], "degraded_sigma_min": 2.0}})


def test_log_loss_is_mean_log_of_sample_errors():
    """loss: log averages log(per-sample MSE) (mean PSNR's counterpart); mse the plain mean."""
    from pnp_rgm.objectives import make_objective
    from pnp_rgm.processes import make_process

    base = {"model": {"kind": "mmse"}, "objective": {"kind": "mmse", "prior": "none", "sigma_max": 0.4}}
    x0 = torch.rand(4, 3, 8, 8) * 2 - 1
    hat = x0 + torch.tensor([1e-3, 1e-2, 1e-1, 1.0]).view(4, 1, 1, 1)  # a fixed error per sample

    def loss(kind):
        cfg = load_run_config({**base, "objective": {**base["objective"], "loss": kind}})
        obj = make_objective(cfg.objective, make_process(cfg.process), "none")
        return obj.g_loss(lambda x, s, z: hat, None, x0)[0]

    assert torch.allclose(loss("mse"), 0.5 * torch.tensor([1e-6, 1e-4, 1e-2, 1.0]).mean(), rtol=1e-5)
    assert torch.allclose(loss("log"), 0.5 * torch.log(torch.tensor([1e-6, 1e-4, 1e-2, 1.0]) + 1e-8).mean(), rtol=1e-5)
    with pytest.raises(Exception, match="objective.loss: expected one of 'mse', 'log'"):
        load_run_config({**base, "objective": {**base["objective"], "loss": "l1"}})
    with pytest.raises(Exception, match="loss: 'log' is for MMSE twins"):
        load_run_config({"objective": {"loss": "log"}})



def _grid_cfg(kind):
    from test_ambient import ambient_cfg, mask_cfg
    from test_spectral import spectral_cfg

    cfg = {"rgm": lambda: tiny(),
           "mmse": lambda: tiny({"kind": "mmse", "prior": "none"}, None, {"kind": "mmse"}),
           "ambient-noise": lambda: ambient_cfg(simulate=True),
           "ambient-mask": lambda: mask_cfg(simulate=True),
           "ambient-spectral": lambda: spectral_cfg(simulate=True)}[kind]()
    return replace(cfg, train=replace(cfg.train, steps=1, sample_every=1, ckpt_every=1, sample_count=2, seed=3))


@pytest.mark.parametrize("kind", ["rgm", "mmse", "ambient-noise", "ambient-mask", "ambient-spectral"])
def test_sample_grid_starts_with_the_saved_priors_own_samples(tmp_path, data_dir, kind):
    """The grid's first row is what ``load_prior(checkpoint).sample`` gives a user (same seed)."""
    from pnp_rgm.io import read_image
    from pnp_rgm.priors import load_prior
    from pnp_rgm.train.trainer import train

    cfg = _grid_cfg(kind)
    assert cfg.data.crop == 16
    train(cfg, data_dir, tmp_path / "run", progress=False)
    grid = read_image(tmp_path / "run" / "samples" / "step_0000001.png")
    row = np.stack([grid[2:18, 2 + 18 * i:18 + 18 * i] for i in range(2)])  # 2-pixel borders
    want = load_prior(tmp_path / "run" / "checkpoint").sample(2, 16, seed=3, batch_size=2)
    assert np.abs(row - want.permute(0, 2, 3, 1).numpy()).max() <= 0.6 / 255
