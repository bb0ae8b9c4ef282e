"""End-to-end CLI: degrade -> restore round trips and the bad-input matrix (exit 2, one line)."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from skimage.transform import resize

from pnp_rgm.cli import main
from pnp_rgm.errors import TaskError
from pnp_rgm.io import read_image, write_image
from pnp_rgm.metrics import psnr


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    rgb = resize(skimage.data.astronaut(), (64, 48), anti_aliasing=True)
    gray = resize(skimage.data.camera(), (48, 64), anti_aliasing=True)
    write_image(d / "rgb.png", rgb)
    write_image(d / "gray.png", gray)
    return d


def run(capsys, *args):
    rc = main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize(
    "task, extra, clean_name, obs_shape, out_shape",
    [
        ("sr4", [], "rgb.png", (16, 12, 3), (64, 48, 3)),
        ("sr2", [], "rgb.png", (32, 24, 3), (64, 48, 3)),
        ("sr8", [], "rgb.png", (8, 6, 3), (64, 48, 3)),
        ("sr4-bicubic", [], "rgb.png", (16, 12, 3), (64, 48, 3)),
        ("sr2-bicubic", [], "rgb.png", (32, 24, 3), (64, 48, 3)),
        ("colorize", [], "rgb.png", (64, 48, 1), (64, 48, 3)),
        ("denoise", ["--sigma", "0.05"], "gray.png", (48, 64, 1), (48, 64, 1)),
        ("deblur-gauss", ["--set", "width=1.5"], "rgb.png", (64, 48, 3), (64, 48, 3)),
        ("deblur-uniform", ["--set", "size=5"], "gray.png", (48, 64, 1), (48, 64, 1)),
        ("inpaint", ["--set", "missing=0.3"], "rgb.png", (64, 48, 3), (64, 48, 3)),
    ],
)
@pytest.mark.parametrize("prior", ["none", "tv", "preset"])
def test_degrade_restore_round_trip(photos, tmp_path, capsys, task, extra, clean_name, obs_shape, out_shape, prior):
    clean = photos / clean_name
    obs, out = tmp_path / "obs.png", tmp_path / "out.png"
    rc, stdout, err = run(capsys, "degrade", "--task", task, clean, "-o", obs, *extra)
    assert rc == 0, err
    assert read_image(obs).shape == obs_shape
    restore_args = ["restore", "--task", task, obs, "-o", out, "--prior", prior, "--set", "iters=5"]
    if prior == "none":
        restore_args = restore_args[:-2]
    elif prior == "preset":  # the shipped default: the task's preset (a bundled prior)
        restore_args = restore_args[:-4]
    if task == "inpaint":
        restore_args += ["--mask", tmp_path / "obs_mask.png"]
    restore_args += [a for a in extra if a in ("--sigma", "0.05")]
    restore_args += ["--set", extra[1]] if extra[:1] == ["--set"] and "missing" not in extra[1] else []
    rc, stdout, err = run(capsys, *restore_args)
    assert rc == 0, err
    assert "wrote" in stdout
    x, r = read_image(clean), read_image(out)
    assert r.shape == out_shape
    if task == "colorize":  # the restoration must reproduce the observed luminance
        assert np.abs(r.mean(axis=2) - read_image(obs)[..., 0]).mean() < 0.02
    elif prior == "none" and task == "inpaint":  # the pseudo-inverse leaves the holes at 0
        assert np.all(r[read_image(tmp_path / "obs_mask.png")[..., 0] == 0] == 0)
    else:  # far better than the best constant image (pinv of a quantized blur amplifies noise: less margin)
        margin = 2.0 if (prior == "none" and task.startswith("deblur")) or task == "sr8" else 5.0  # sr8: 8x6 pixels seen
        assert psnr(x, r) > psnr(x, np.full_like(x, x.mean())) + margin


def test_inpaint_observation_has_zero_holes_and_mask(photos, tmp_path, capsys):
    obs = tmp_path / "o.png"
    rc, _, err = run(capsys, "degrade", "--task", "inpaint", photos / "rgb.png", "-o", obs, "--set", "box=center")
    assert rc == 0, err
    y, m = read_image(obs), read_image(tmp_path / "o_mask.png")
    assert m.shape == (64, 48, 1) and set(np.unique(m)) == {0.0, 1.0}
    assert np.all(y[m[..., 0] == 0] == 0)


def test_restore_with_box_mask_fills_hole(photos, tmp_path, capsys):
    obs, out = tmp_path / "o.png", tmp_path / "r.png"
    run(capsys, "degrade", "--task", "inpaint", photos / "rgb.png", "-o", obs, "--set", "box=center")
    rc, _, err = run(capsys, "restore", "--task", "inpaint", obs, "--mask", tmp_path / "o_mask.png", "-o", out, "--set", "steps=8")
    assert rc == 0, err
    assert read_image(out)[24:40, 16:32].mean() > 0.05  # the hole is no longer black


@pytest.mark.parametrize(
    "args, text",
    [
        (["degrade", "--task", "sr4", "{d}/missing.png", "-o", "{t}/o.png"], "no such file"),
        (["degrade", "--task", "blur", "{d}/rgb.png", "-o", "{t}/o.png"], "unknown task"),
        (["degrade", "--task", "sr5", "{d}/rgb.png", "-o", "{t}/o.png"], "divisible by 5"),
        (["degrade", "--task", "colorize", "{d}/gray.png", "-o", "{t}/o.png"], "3-channel"),
        (["degrade", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--sigma", "3"], "[0, 1]"),
        (["degrade", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--set", "foo=1"], "unknown --set"),
        (["degrade", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.xyz"], ".xyz"),
        (["degrade", "--task", "sr4", "{d}/rgb.png"], "Missing option"),
        (["degrade", "--task", "sr4", "{d}/rgb.png", "-o", "{d}/rgb.png"], "exists"),
        (["degrade", "--task", "sr4", "{d}/not_an_image.png", "-o", "{t}/o.png"], "not_an_image.png"),
        (["restore", "--task", "colorize", "{d}/rgb.png", "-o", "{t}/o.png"], "grayscale"),
        (["restore", "--task", "inpaint", "{d}/rgb.png", "-o", "{t}/o.png"], "--mask"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--mask", "{d}/gray.png"], "only used"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--prior", "magic"], "prior 'magic' is unknown"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--prior", "{d}/rgb.png"], "is a file, not a checkpoint"),
        (["restore", "--task", "inpaint", "{d}/rgb.png", "-o", "{t}/o.png", "--mask", "{d}/black.png"], "--mask '"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--set", "iters=0"], "iters"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--set", "bogus=1"], "unknown setting"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{d}/gray.png"], "--overwrite"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--set", "novalue"], "key=value"),
        (["restore", "--task", "inpaint", "{d}/rgb.png", "-o", "{t}/o.png", "--mask", "{d}/gray.png"], "mask"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--device", "tpu"], "device"),
        (["restore", "--task", "denoise", "{d}/rgb.png", "-o", "{t}/o.png"], "sigma"),
        (["restore", "--task", "sr4"], "no INPUT"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "--simulate", "{d}/rgb.png"], "not both"),
        (["restore", "--task", "sr4", "{d}/missing_dir/"], "no such file"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--set", "seed=3"], "--set seed=3: use --seed"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--set", "sigma=0.1"], "use --sigma"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--set", "device=cpu"], "use --device"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--set", "prior=none"], "use --prior"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--set", "task=sr2"], "use --task"),
        (["restore", "--task", "sr", "{d}/rgb.png", "-o", "{t}/o.png"], "unknown task 'sr'"),
        (["restore", "--task", "matrix", "{d}/rgb.png", "-o", "{t}/o.png"], "unknown task 'matrix'"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--seed", str(2**70)], "--seed"),
        (["degrade", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--seed", "-1"], "--seed"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "{d}/gray.png", "-o", "{t}/o.png"], "must be a folder"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.gif"], ".gif"),  # refused before restoring
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.jpg", "--bits", "16"], "only 8 bits"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--set", "steps=1.5"], "steps must be an integer"),
        (["restore", "--task", "sr4", "{d}/rgb.png", "-o", "{t}/o.png", "--set", "steps=100000"], "network calls"),
        (["restore", "--task", "sr8", "--simulate", "{d}/tiny.png", "-o", "{t}/o.png"], "needs at least 8x8"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_input_exits_2_with_one_line(photos, tmp_path, capsys, args, text):
    (photos / "not_an_image.png").write_text("hello")
    write_image(photos / "tiny.png", np.full((3, 5, 3), 0.5), overwrite=True)
    write_image(photos / "black.png", np.zeros((64, 48)), overwrite=True)  # a mask that keeps no pixel
    before = {p: p.stat().st_mtime_ns for p in photos.iterdir()}
    rc, out, err = run(capsys, *[a.format(d=photos, t=tmp_path) for a in args])
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and text in lines[0], err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert {p: p.stat().st_mtime_ns for p in photos.iterdir() if p in before} == before  # nothing overwritten


def test_overwrite_flag_replaces(photos, tmp_path, capsys):
    obs = tmp_path / "o.png"
    obs.write_bytes(b"old")
    rc, _, err = run(capsys, "degrade", "--task", "sr2", photos / "rgb.png", "-o", obs, "--overwrite")
    assert rc == 0, err
    assert read_image(obs).shape == (32, 24, 3)


def test_help_for_every_command(capsys):
    for cmd in ([], ["degrade"], ["restore"]):
        rc, out, _ = run(capsys, *cmd, "--help")
        assert rc == 0 and "Usage:" in out


def test_console_script_runs_from_any_directory(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    beside = Path(sys.executable).parent / "pnp-rgm"  # the venv's script, even when the venv is not on PATH
    exe = str(beside) if beside.exists() else shutil.which("pnp-rgm")
    if exe is None:
        pytest.skip("pnp-rgm console script not on PATH (package not installed)")
    res = subprocess.run([exe, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "degrade" in res.stdout
    res = subprocess.run([exe, "restore", "--task", "sr4", "nothing.png"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


def test_simulate_prints_metrics(photos, tmp_path, capsys):
    out = tmp_path / "sim.png"
    rc, stdout, err = run(capsys, "restore", "--task", "sr2", "--simulate", photos / "rgb.png", "-o", out, "--set", "steps=3")
    assert rc == 0, err
    assert "PSNR" in stdout and "SSIM" in stdout and read_image(out).shape == (64, 48, 3)
    rc, stdout, err = run(capsys, "restore", "--task", "inpaint", "--simulate", photos / "rgb.png", "-o", tmp_path / "i.png",
                          "--set", "steps=3")
    assert rc == 0, err


def test_folder_input_writes_one_output_each(photos, tmp_path, capsys):
    src = tmp_path / "in"
    for name in ("a", "b", "c"):
        write_image(src / f"{name}.png", read_image(photos / "gray.png")[:16, :20])
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, "restore", "--task", "sr2", src, "-o", out, "--prior", "none")
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png"]
    assert read_image(out / "a.png").shape == (32, 40, 1)
    rc, _, err = run(capsys, "restore", "--task", "sr2", src, "-o", out, "--prior", "none")
    assert rc == 2 and "exists" in err  # nothing overwritten without --overwrite


def test_restore_with_a_checkpoint_folder(photos, tmp_path, capsys):
    from tiny import tiny_prior

    from pnp_rgm.priors import save_prior

    ckpt = save_prior(tiny_prior(), tmp_path / "tiny")
    obs = tmp_path / "obs.png"
    run(capsys, "degrade", "--task", "sr2", photos / "rgb.png", "-o", obs)
    outs = []
    for name in ("r1.png", "r2.png"):
        rc, _, err = run(capsys, "restore", "--task", "sr2", obs, "--prior", ckpt, "-o", tmp_path / name,
                         "--set", "outer=1", "--set", "levels=[2,1]", "--seed", "5")
        assert rc == 0, err
        outs.append(read_image(tmp_path / name))
    assert outs[0].shape == (64, 48, 3) and np.array_equal(outs[0], outs[1])  # deterministic by seed


def test_priors_command_lists_or_explains(capsys):
    rc, out, _ = run(capsys, "priors")
    assert rc == 0 and out.strip()
    line = next(ln for ln in out.splitlines() if ln.startswith("mmse-color "))
    assert "MMSE twin" in line and "preset of:" in line and "denoise" in line


def _tiny(path, shape=(8, 10, 3), seed=0):
    write_image(path, np.random.default_rng(seed).random(shape).astype(np.float32))


@pytest.mark.parametrize("task, bad", [("sr2", "corrupt"), ("colorize", "colour"), ("inpaint", "mask size")])
def test_batch_checks_every_input_before_writing(tmp_path, capsys, task, bad):
    src, out = tmp_path / "in", tmp_path / "out"
    gray = (8, 10, 1)
    _tiny(src / "a.png", gray)
    _tiny(src / "c.png", gray)
    if bad == "corrupt":
        (src / "b.png").write_text("junk")
    else:
        _tiny(src / "b.png", (8, 10, 3) if bad == "colour" else (6, 10, 1))
    extra = ["--mask", tmp_path / "m.png"] if task == "inpaint" else []
    if extra:
        write_image(tmp_path / "m.png", np.ones((8, 10), np.float32))
    rc, _, err = run(capsys, "restore", "--task", task, src, "--prior", "none", "-o", out, *extra)
    assert rc == 2 and "b.png" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())  # nothing written before the bad input was found


def test_inputs_with_the_same_output_are_refused(tmp_path, capsys):
    for d in ("d1", "d2"):
        _tiny(tmp_path / d / "x.png")
    out = tmp_path / "out"
    rc, _, err = run(capsys, "restore", "--task", "sr2", tmp_path / "d1", tmp_path / "d2", "--prior", "none", "-o", out)
    assert rc == 2 and "d1/x.png" in err and "d2/x.png" in err and err.count("\n") == 1
    assert not out.exists()
    _tiny(tmp_path / "d1" / "x.jpg")  # no -o: x.png and x.jpg would both be x_restored.png
    rc, _, err = run(capsys, "restore", "--task", "sr2", tmp_path / "d1", "--prior", "none", "--overwrite")
    assert rc == 2 and "x.png" in err and "x.jpg" in err
    assert sorted(p.name for p in (tmp_path / "d1").iterdir()) == ["x.jpg", "x.png"]


def test_simulate_metric_error_writes_nothing(tmp_path, capsys):
    _tiny(tmp_path / "small.png", (8, 8, 3))  # smaller than SSIM's 11x11 window
    out = tmp_path / "sim.png"
    rc, _, err = run(capsys, "restore", "--task", "sr2", "--simulate", tmp_path / "small.png", "--prior", "none", "-o", out)
    assert rc == 2 and "11x11" in err and "Traceback" not in err
    assert not out.exists()


def test_folder_rerun_without_output_skips_earlier_outputs(tmp_path, capsys):
    for name in ("p", "q"):
        _tiny(tmp_path / f"{name}.png")
    for _ in range(2):
        rc, _, err = run(capsys, "restore", "--task", "sr2", tmp_path, "--prior", "none", "--overwrite")
        assert rc == 0, err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "p_restored.png", "q.png", "q_restored.png"]
    rc, out, err = run(capsys, "restore", "--task", "sr2", tmp_path / "p_restored.png", "--prior", "none")
    assert rc == 0 and (tmp_path / "p_restored_restored.png").exists()  # a file named explicitly is restored


def test_torchrun_process_uses_its_local_gpu(tmp_path, capsys, monkeypatch):
    import pnp_rgm.api

    seen = {}

    def fake_restorer(task, prior, **kwargs):
        seen.update(kwargs)
        raise TaskError("stop")

    monkeypatch.setattr(pnp_rgm.api, "Restorer", fake_restorer)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    _tiny(tmp_path / "a.png")
    for device, expected in (("auto", "cuda:1"), ("cuda", "cuda:1"), ("cpu", "cpu")):
        rc, _, err = run(capsys, "restore", "--task", "sr2", tmp_path / "a.png", "--prior", "none", "--device", device)
        assert rc == 2 and "stop" in err and seen["device"] == expected
    monkeypatch.setenv("WORLD_SIZE", "1")
    run(capsys, "restore", "--task", "sr2", tmp_path / "a.png", "--prior", "none", "--device", "auto")
    assert seen["device"] == "auto"


def test_output_appearing_late_names_only_the_cli_flag(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setattr(sys.modules["pnp_rgm.cli.restore"], "check_outputs", lambda paths, overwrite: None)
    _tiny(tmp_path / "a.png")
    (tmp_path / "a_restored.png").write_bytes(b"old")  # as if written by another process after the check
    rc, _, err = run(capsys, "restore", "--task", "sr2", tmp_path / "a.png", "--prior", "none")
    assert rc == 2 and "--overwrite" in err and "overwrite=True" not in err
    assert (tmp_path / "a_restored.png").read_bytes() == b"old"


def test_degrade_output_appearing_late_names_only_the_cli_flag(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setattr(sys.modules["pnp_rgm.cli.degrade"], "check_outputs", lambda paths, overwrite: None)
    _tiny(tmp_path / "a.png")
    (tmp_path / "o.png").write_bytes(b"old")
    rc, _, err = run(capsys, "degrade", tmp_path / "a.png", "--task", "sr2", "-o", tmp_path / "o.png")
    assert rc == 2 and "--overwrite" in err and "overwrite=True" not in err
    assert (tmp_path / "o.png").read_bytes() == b"old"


@pytest.mark.parametrize("rank", ["0", "1"])
def test_torchrun_process_checks_the_other_shards_inputs_too(tmp_path, capsys, monkeypatch, rank):
    """a.png, b.png, c.png over 2 processes: rank 0 restores a and c, rank 1 b; a corrupt b.png
    stops both before either writes."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    src, out = tmp_path / "in", tmp_path / "out"
    _tiny(src / "a.png")
    _tiny(src / "c.png")
    (src / "b.png").write_text("junk")
    rc, _, err = run(capsys, "restore", "--task", "sr2", src, "--prior", "none", "-o", out)
    assert rc == 2 and "b.png" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_degrade_blurs_a_photos_scene_unless_boundary_zero(photos, tmp_path, capsys):
    # a blur's default border model in degrade and restore is a photo's (boundary free: the scene
    # beyond the frame, simulated as its mirror image); boundary=zero darkens the border instead
    for b in ("free", "zero"):
        rc, _, err = run(capsys, "degrade", "--task", "deblur-gauss", photos / "rgb.png", "-o", tmp_path / f"{b}.png",
                         "--set", "width=1.5", *(["--set", "boundary=zero"] if b == "zero" else []))
        assert rc == 0, err
    free, zero, clean = (read_image(p) for p in (tmp_path / "free.png", tmp_path / "zero.png", photos / "rgb.png"))
    edge = lambda a: np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]).mean()  # noqa: E731
    assert abs(edge(free) - edge(clean)) < 0.02 < edge(clean) - edge(zero)
    rc, out, err = run(capsys, "restore", "--task", "deblur-gauss", tmp_path / "free.png", "-o", tmp_path / "r.png",
                       "--set", "width=1.5")
    assert rc == 0, err
    assert psnr(clean, read_image(tmp_path / "r.png")) > psnr(clean, free) + 2


def test_a_prior_folder_with_broken_yaml_is_named_once(photos, tmp_path, capsys):
    import shutil
    from pathlib import Path

    import pnp_rgm.pretrained
    shutil.copytree(Path(pnp_rgm.pretrained.__file__).resolve().parent / "mmse-color", tmp_path / "p")
    (tmp_path / "p" / "config.yaml").write_text("model:\n  kind: [unclosed\n")
    rc, _, err = run(capsys, "restore", "--task", "sr4", photos / "rgb.png", "-o", tmp_path / "o.png", "--prior", tmp_path / "p")
    assert rc == 2 and err.count("config.yaml") == 1 and "not valid YAML" in err and not (tmp_path / "o.png").exists()
