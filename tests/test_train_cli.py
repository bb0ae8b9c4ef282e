"""``pnp-rgm train`` / ``pnp-rgm sample`` on bad input: --resume semantics, the --out folder, data
checked before anything is written, out-of-memory and device errors as one line (exit 2)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from pnp_rgm.cli import main
from pnp_rgm.config import config_to_dict
from pnp_rgm.errors import PnpRgmError
from pnp_rgm.io import write_image
from pnp_rgm.train.config import load_run_config

from test_train import tiny  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from skimage.data import astronaut

    d = tmp_path_factory.mktemp("imgs")
    img = astronaut().astype(np.float32) / 255.0
    for i in range(3):
        write_image(d / f"{i}.png", img[96 * i:96 * i + 32, :32], overwrite=True)
    return d


@pytest.fixture(scope="module")
def cfg_file(tmp_path_factory):
    """A tiny RGM config of 4 steps (the steps a buggy resume would train toward)."""
    p = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    p.write_text(yaml.safe_dump(config_to_dict(tiny(steps=4, ckpt_every=1, sample_every=100))))
    return p


@pytest.fixture(scope="module")
def run(tmp_path_factory, cfg_file, data):
    """A finished 2-step run (``--steps 2``); tests copy it before changing it."""
    out = tmp_path_factory.mktemp("runs") / "r"
    assert main(["train", str(cfg_file), "--data", str(data), "--out", str(out), "--steps", "2", "--quiet"]) == 0
    return out


def _err(capsys, rc, want_rc=2):
    err = capsys.readouterr().err
    assert rc == want_rc and err.count("\n") == 1 and err.startswith("Error: ") and "Traceback" not in err, err
    return err


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _saved_steps(folder):
    return load_run_config(folder / "config.yaml").train.steps


def test_resume_keeps_the_runs_steps_unless_steps_is_given(tmp_path, run, cfg_file, capsys):
    out = tmp_path / "r"
    shutil.copytree(run, out)
    # CONFIG says 4 steps, the run was started with --steps 2: a plain resume has nothing left to do
    assert main(["train", str(cfg_file), "--out", str(out), "--resume", "--quiet"]) == 0
    assert "step 2:" in capsys.readouterr().err
    assert _saved_steps(out) == 2 and _saved_steps(out / "checkpoint") == 2
    assert main(["train", str(cfg_file), "--out", str(out), "--resume", "--steps", "3", "--quiet"]) == 0
    assert _saved_steps(out) == 3 and json.loads((out / "checkpoint/trainer/state.json").read_text())["step"] == 3
    # --set train.steps=N on resume is --steps N
    assert main(["train", str(cfg_file), "--out", str(out), "--resume", "--set", "train.steps=4", "--quiet"]) == 0
    assert _saved_steps(out / "checkpoint") == 4
    log = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert log == [1, 2, 3, 4]


def test_resume_remembers_the_runs_own_settings(tmp_path, cfg_file, data, capsys):
    """The audit's repro: a run started with --steps 2 --set ..., resumed with neither."""
    out = tmp_path / "r"
    assert main(["train", str(cfg_file), "--data", str(data), "--out", str(out), "--steps", "2", "--quiet",
                 "--set", "data.batch_size=2", "--set", "train.max_seconds=1000"]) == 0
    assert main(["train", str(cfg_file), "--data", str(data), "--out", str(out), "--resume", "--quiet"]) == 0
    saved = load_run_config(out / "config.yaml")
    assert saved.train.steps == 2 and saved.data.batch_size == 2 and saved.train.max_seconds == 0  # a call's budget
    assert main(["train", str(cfg_file), "--out", str(out), "--resume", "--steps", "3", "--quiet"]) == 0
    assert json.loads((out / "checkpoint/trainer/state.json").read_text())["settings"]["data.batch_size"] == 2
    capsys.readouterr()
    rc = main(["train", str(cfg_file), "--out", str(out), "--resume", "--steps", "4", "--set", "data.batch_size=4"])
    assert "data.batch_size (4; the run has 2)" in _err(capsys, rc)


def test_resume_without_a_checkpoint_is_an_error(tmp_path, cfg_file, data, capsys):
    for out in (tmp_path / "none", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        rc = main(["train", str(cfg_file), "--data", str(data), "--out", str(out), "--resume", "--quiet"])
        assert f"--resume: no checkpoint in {out}" in _err(capsys, rc)
    assert not (tmp_path / "none").exists() and not any((tmp_path / "empty").iterdir())


@pytest.mark.parametrize("args, keys", [
    (["--set", "optim.lr_g=0.1"], ["optim.lr_g (0.1; the run has 0.0002)"]),
    (["--set", "data.batch_size=2", "--set", "train.seed=5"], ["data.batch_size", "train.seed"]),
    ("mmse", ["model.kind", "objective.kind"]),
])
def test_resume_refuses_a_changed_config(tmp_path, run, cfg_file, capsys, args, keys):
    out = tmp_path / "r"
    shutil.copytree(run, out)
    before = _snapshot(out)
    if args == "mmse":
        other = tmp_path / "mmse.yaml"
        other.write_text(yaml.safe_dump(config_to_dict(tiny({"kind": "mmse", "prior": "none"}, None, {"kind": "mmse"}))))
        cmd = ["train", str(other), "--out", str(out), "--resume", "--quiet"]
    else:
        cmd = ["train", str(cfg_file), "--out", str(out), "--resume", "--quiet", *args]
    err = _err(capsys, main(cmd))
    assert "--resume: the config differs" in err and all(k in err for k in keys)
    assert _snapshot(out) == before


def test_resume_takes_the_budget_device_and_workers_of_the_call(tmp_path, run, cfg_file):
    out = tmp_path / "r"
    shutil.copytree(run, out)
    assert main(["train", str(cfg_file), "--out", str(out), "--resume", "--steps", "3", "--quiet",
                 "--set", "train.max_seconds=1000", "--set", "train.device=cpu", "--set", "data.num_workers=0"]) == 0
    saved = load_run_config(out / "config.yaml")
    assert saved.train.steps == 3 and saved.train.max_seconds == 1000 and saved.train.device == "cpu"


def test_resume_steps_below_the_checkpoint_is_an_error(tmp_path, run, cfg_file, capsys):
    out = tmp_path / "r"
    shutil.copytree(run, out)
    before = _snapshot(out)
    rc = main(["train", str(cfg_file), "--out", str(out), "--resume", "--steps", "1", "--quiet"])
    assert "--steps 1: the run in" in _err(capsys, rc) and _snapshot(out) == before


def test_new_run_refuses_a_non_empty_out(tmp_path, cfg_file, data, capsys):
    out = tmp_path / "killed"  # a run killed before its first checkpoint
    out.mkdir()
    (out / "config.yaml").write_text("old")
    (out / "log.jsonl").write_text('{"step": 1}\n')
    rc = main(["train", str(cfg_file), "--data", str(data), "--out", str(out), "--steps", "1", "--quiet"])
    assert f"--out {out} is not empty; pass --resume" in _err(capsys, rc)
    assert (out / "config.yaml").read_text() == "old" and (out / "log.jsonl").read_text() == '{"step": 1}\n'
    empty = tmp_path / "empty"  # an empty folder is fine
    empty.mkdir()
    assert main(["train", str(cfg_file), "--data", str(data), "--out", str(empty), "--steps", "1", "--quiet"]) == 0
    assert (empty / "checkpoint" / "model.safetensors").is_file()


def test_bad_image_fails_before_anything_is_written(tmp_path, cfg_file, data, capsys):
    bad = tmp_path / "data"
    shutil.copytree(data, bad)
    (bad / "bad.png").write_text("not an image")
    rc = main(["train", str(cfg_file), "--data", str(bad), "--out", str(tmp_path / "a" / "b"), "--quiet"])
    assert "bad.png" in _err(capsys, rc)
    assert not (tmp_path / "a").exists()  # the parent this call would have created too
    (tmp_path / "empty").mkdir()
    assert main(["train", str(cfg_file), "--data", str(bad), "--out", str(tmp_path / "empty"), "--quiet"]) == 2
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())


def test_failure_before_the_first_step_removes_the_new_run(tmp_path, data):
    from pnp_rgm.train.trainer import train

    def oom(step, x):
        raise MemoryError()

    with pytest.raises(PnpRgmError, match=r"out of memory at step 1 .*data.batch_size 4, data.crop 16.*no checkpoint"):
        train(tiny(steps=2), data, tmp_path / "run", progress=False, batch_hook=oom)
    assert not (tmp_path / "run").exists()

    def oom_at_2(step, x):
        if step == 1:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return x

    with pytest.raises(PnpRgmError, match=r"out of memory at step 2 .*last good checkpoint \(step 1\)"):
        train(tiny(steps=2, ckpt_every=1), data, tmp_path / "run", progress=False, batch_hook=oom_at_2)
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").is_file()  # past the first step: kept


def test_out_that_is_a_file(tmp_path, cfg_file, data, capsys):
    f = tmp_path / "f"
    f.write_text("x")
    for extra in ([], ["--resume"]):
        rc = main(["train", str(cfg_file), "--data", str(data), "--out", str(f), "--quiet", *extra])
        assert f"--out {f} is a file, not a folder" in _err(capsys, rc)


def test_train_crop_too_large(tmp_path, data, capsys):
    rc = main(["train", "rgm-kld-d-cpu", "--data", str(data), "--out", str(tmp_path / "o"), "--set", "data.crop=65536"])
    assert "crop: must be <= 4096" in _err(capsys, rc) and not (tmp_path / "o").exists()


def test_data_folder_is_recorded_and_used_on_resume(tmp_path, run, cfg_file, data, capsys):
    out = tmp_path / "r"
    shutil.copytree(run, out)
    meta = json.loads((out / "checkpoint/trainer/state.json").read_text())
    assert meta["data"] == str(data.resolve())
    assert str(data.resolve()) in (out / "checkpoint/model_card.md").read_text()
    other = tmp_path / "other"
    shutil.copytree(data, other)
    assert main(["train", str(cfg_file), "--data", str(other), "--out", str(out), "--resume", "--steps", "3",
                 "--quiet"]) == 0
    assert f"warning: --data {other.resolve()} is not the run's data folder {data.resolve()}" in capsys.readouterr().err
    assert json.loads((out / "checkpoint/trainer/state.json").read_text())["data"] == str(other.resolve())


def test_rsd_teacher_folder_is_saved_absolute(tmp_path, monkeypatch):
    from pnp_rgm.priors import save_prior
    from pnp_rgm.train.trainer import train
    from tiny import tiny_mmse_prior

    save_prior(tiny_mmse_prior(), tmp_path / "teacher")
    monkeypatch.chdir(tmp_path)
    cfg = load_run_config({"objective": {"kind": "rsd", "prior": "none", "teacher": "teacher"},
                           "data": {"crop": 16, "batch_size": 2, "num_workers": 0},
                           "train": {"steps": 1, "sample_every": 100, "sample_count": 2, "precision": "fp32",
                                     "channels_last": False}})
    train(cfg, None, "student", progress=False)
    teacher = str((tmp_path / "teacher").resolve())
    assert load_run_config(tmp_path / "student" / "config.yaml").objective.teacher == teacher
    assert load_run_config(tmp_path / "student" / "checkpoint" / "config.yaml").objective.teacher == teacher
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the relative name no longer resolves here
    saved = load_run_config(tmp_path / "student" / "config.yaml")
    assert train(saved, None, tmp_path / "student", steps=2, resume=True, progress=False)["step"] == 2


# --------------------------------------------------------------------------- sample
@pytest.fixture(scope="module")
def ckpt(run):
    return str(run / "checkpoint")


@pytest.mark.parametrize("args, text", [
    (["--nrow", "0"], "--nrow: must be >= 1, got 0"),
    (["--nrow", "-1"], "--nrow: must be >= 1, got -1"),
    (["--size", "100000"], "--size: must be in 1..4096, got 100000"),
    (["-o", "{tmp}/grid.xyz"], "unknown extension '.xyz'"),
    (["-o", "{tmp}"], "is a folder"),
])
def test_sample_bad_options_fail_before_sampling(tmp_path, ckpt, capsys, monkeypatch, args, text):
    from pnp_rgm.priors import Prior

    monkeypatch.setattr(Prior, "sample", lambda *a, **k: pytest.fail("sampled before checking the options"))
    args = [a.format(tmp=tmp_path) for a in args]
    cmd = ["sample", ckpt, "-n", "2", "--size", "16", *(["-o", str(tmp_path / "g.png")] if "-o" not in args else []), *args]
    assert text in _err(capsys, main(cmd))
    assert not (tmp_path / "g.png").exists()


def test_sample_cuda_without_a_gpu(tmp_path, ckpt, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = main(["sample", ckpt, "-n", "1", "--device", "cuda", "-o", str(tmp_path / "g.png")])
    assert "device 'cuda' requested but no CUDA GPU is available" in _err(capsys, rc)
    assert "unknown device 'tpu'" in _err(capsys, main(["sample", ckpt, "--device", "tpu", "-o", str(tmp_path / "g.png")]))


def test_sample_out_of_memory_is_one_line(tmp_path, ckpt, capsys, monkeypatch):
    from pnp_rgm.priors import Prior

    def oom(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 120000000000 bytes")

    monkeypatch.setattr(Prior, "sample", oom)
    rc = main(["sample", ckpt, "-n", "1", "--size", "4096", "-o", str(tmp_path / "g.png")])
    assert "out of memory sampling 1 images of 4096x4096" in _err(capsys, rc) and not (tmp_path / "g.png").exists()
