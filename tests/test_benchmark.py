"""The benchmark runner: rows, summary, resume, grid, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import skimage.data
from skimage.transform import resize

from pnp_rgm.benchmark import read_rows, run_benchmark, summarize
from pnp_rgm.cli import main
from pnp_rgm.errors import TaskError
from pnp_rgm.io import read_image, write_image


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    img = skimage.data.astronaut() / 255.0
    write_image(d / "a.png", resize(img, (40, 36), anti_aliasing=True))
    write_image(d / "b.png", resize(img[100:300, 150:350], (32, 32), anti_aliasing=True))
    return d


def test_rows_summary_grid_and_resume(data, tmp_path):
    out = tmp_path / "out"
    summary = run_benchmark("sr4", data, out, ["pinv", "bicubic", "tv"], progress=False)
    rows = read_rows(out / "results.csv")
    assert {(r["method"], r["image"]) for r in rows} == {(m, i) for m in ("pinv", "bicubic", "tv") for i in ("a.png", "b.png")}
    assert all(float(r["psnr"]) > 10 and 0 < float(r["ssim"]) <= 1 for r in rows)
    assert "| tv |" in summary and "**" in summary and (out / "summary.md").read_text() == summary
    assert read_image(out / "grid.png").shape == (40 + 32, 36 * 5, 3)  # obs | 3 methods | truth
    assert (out / "psnr_vs_nfe.png").is_file() or "matplotlib is not installed" in summary
    # resume: a rerun adds nothing; a new method adds only its rows
    run_benchmark("sr4", data, out, ["pinv", "bicubic", "tv"], progress=False)
    assert len(read_rows(out / "results.csv")) == 6
    (out / "results.csv").write_text("\n".join((out / "results.csv").read_text().splitlines()[:-2]) + "\n")
    run_benchmark("sr4", data, out, ["pinv", "bicubic", "tv"], progress=False)
    assert len(read_rows(out / "results.csv")) == 6


def test_summary_statistics():
    rows = [{"method": "a", "image": str(i), "psnr": str(p), "ssim": "0.5", "lpips": "", "nfe": "0", "seconds": "1"}
            for i, p in enumerate([20.0, 22.0])]
    rows += [{"method": "b", "image": "0", "psnr": "30", "ssim": "0.4", "lpips": "", "nfe": "10", "seconds": "2"}]
    s = summarize(rows)
    assert "| a | 2 | 21.00 ± 1.00 | **0.5000 ± 0.0000** | — |" in s
    assert "| b | 1 | **30.00 ± 0.00** |" in s


def test_colorize_and_inpaint_run(data, tmp_path):
    for task in ("colorize", "inpaint"):
        run_benchmark(task, data, tmp_path / task, ["pinv"], progress=False, limit=1)
        assert len(read_rows(tmp_path / task / "results.csv")) == 1


def test_bad_input(data, tmp_path, capsys):
    with pytest.raises(TaskError, match="unknown method"):
        run_benchmark("sr4", data, tmp_path / "o", ["magic"], progress=False)
    with pytest.raises(TaskError, match="super-resolution"):
        run_benchmark("denoise", data, tmp_path / "o", ["bicubic"], sigma=0.1, progress=False)
    with pytest.raises(TaskError, match="prior"):
        run_benchmark("sr4", data, tmp_path / "o", ["rgm-drs"], progress=False)
    rc = main(["benchmark", "--task", "sr4", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "not a folder" in err


def test_cli_benchmark(data, tmp_path, capsys):
    rc = main(["benchmark", "--task", "sr2", "--data", str(data), "--out", str(tmp_path / "c"), "--methods", "pinv,bicubic"])
    out = capsys.readouterr().out
    assert rc == 0 and "| bicubic |" in out


def test_rgm_drs_method_with_a_tiny_prior(data, tmp_path):
    from tiny import tiny_prior

    from pnp_rgm.priors import save_prior

    ckpt = save_prior(tiny_prior(), tmp_path / "tiny")
    run_benchmark("sr2", data, tmp_path / "r", ["rgm-drs"], prior=str(ckpt), progress=False, limit=1)
    (row,) = read_rows(tmp_path / "r" / "results.csv")
    assert row["method"] == "rgm-drs" and int(row["nfe"]) > 0 and np.isfinite(float(row["psnr"]))


def test_summary_bolds_every_tied_best():
    rows = [{"method": m, "psnr": p, "ssim": "0.5", "lpips": "", "nfe": "0", "seconds": "1"}
            for m, p in (("a", "30.001"), ("b", "29.999"), ("c", "20"))]
    s = summarize(rows)
    assert "**30.00 ± 0.00**" in s.splitlines()[2] and "**30.00 ± 0.00**" in s.splitlines()[3]
    assert "**" not in s.splitlines()[4].split("|")[3]


def test_preset_method_on_colour_and_gray_images(data, tmp_path):
    """The shipped default (bundled prior) runs on RGB images and on gray images in a colour set."""
    d = tmp_path / "mixed"
    d.mkdir()
    write_image(d / "rgb.png", read_image(data / "b.png"))
    write_image(d / "gray.png", read_image(data / "b.png").mean(axis=2, keepdims=True))
    run_benchmark("sr2", d, tmp_path / "out", ["preset", "bicubic"], progress=False)
    rows = {(r["method"], r["image"]): r for r in read_rows(tmp_path / "out" / "results.csv")}
    assert len(rows) == 4
    for img in ("rgb.png", "gray.png"):
        assert float(rows[("preset", img)]["psnr"]) > float(rows[("bicubic", img)]["psnr"])
        assert int(rows[("preset", img)]["nfe"]) > 0


def test_colorize_skips_images_without_colour(data, tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    write_image(d / "rgb.png", read_image(data / "b.png"))
    write_image(d / "gray_as_rgb.png", read_image(data / "b.png").mean(axis=2, keepdims=True).repeat(3, axis=2))
    run_benchmark("colorize", d, tmp_path / "out", ["pinv"], progress=False)
    assert [r["image"] for r in read_rows(tmp_path / "out" / "results.csv")] == ["rgb.png"]


def test_bad_solver_setting_fails_before_writing(data, tmp_path):
    from tiny import tiny_mmse_prior

    with pytest.raises(TaskError, match="unknown setting"):
        run_benchmark("sr2", data, tmp_path / "out", ["rgm-drs"], prior=tiny_mmse_prior(), settings={"foo": 1},
                      progress=False)
    assert not (tmp_path / "out").exists()


def test_rgm_drs_sr_runs_the_bundled_sr_prior_with_the_preset(data, tmp_path):
    """rgm-drs-sr = the SR-process prior under the task preset's solver settings; data-consistent."""
    from pnp_rgm.presets import preset_for

    run_benchmark("sr2", data, tmp_path / "out", ["rgm-drs-sr", "bicubic"], progress=False, limit=1)
    rows = {r["method"]: r for r in read_rows(tmp_path / "out" / "results.csv")}
    assert int(rows["rgm-drs-sr"]["nfe"]) == preset_for("sr2").settings["steps"]
    assert float(rows["rgm-drs-sr"]["psnr"]) > float(rows["bicubic"]["psnr"])
    with pytest.raises(TaskError, match="unknown setting"):
        run_benchmark("sr2", data, tmp_path / "bad", ["rgm-drs-sr"], settings={"foo": 1}, progress=False)
    assert not (tmp_path / "bad").exists()


def test_operator_settings_change_the_simulated_degradation_for_every_method(data, tmp_path, monkeypatch):
    """--set box=center: every method (the preset too) sees the centre-box inpainting operator."""
    from pnp_rgm import benchmark
    from pnp_rgm.operators import box_mask

    seen = []

    def spy(op, y, ctx):
        seen.append((op.mask.all(dim=0).numpy(), dict(ctx.op_params)))
        return op.pinv(y), 0

    monkeypatch.setitem(benchmark.METHODS, "pinv", spy)
    run_benchmark("inpaint", data, tmp_path / "box", ["pinv"], settings={"box": "center"}, progress=False)
    assert len(seen) == 2 and all(p == {"box": "center"} for _, p in seen)
    for known, _ in seen:
        assert np.array_equal(known, box_mask(known.shape))  # same box as `degrade --set box=center`
    with pytest.raises(TaskError, match="seed=3"):
        run_benchmark("inpaint", data, tmp_path / "s", ["pinv"], settings={"seed": 3}, progress=False)
    with pytest.raises(Exception, match="width"):
        run_benchmark("deblur-gauss", data, tmp_path / "w", ["pinv"], settings={"width": -1}, progress=False)
    assert not (tmp_path / "s").exists() and not (tmp_path / "w").exists()
    # an explicit box is checked against the real (first) image, not a stand-in shape
    run_benchmark("inpaint", data, tmp_path / "b2", ["pinv"], settings={"box": [2, 2, 20, 20]}, progress=False)
    assert len(read_rows(tmp_path / "b2" / "results.csv")) == 2
    with pytest.raises(TaskError, match="40x36 image"):
        run_benchmark("inpaint", data, tmp_path / "b3", ["pinv"], settings={"box": [0, 0, 50, 50]}, progress=False)
    assert not (tmp_path / "b3").exists()


def test_peers_get_the_presets_start(monkeypatch):
    """Every peer starts where the presets start: inpaint holes filled from their surroundings."""
    from pnp_rgm.operators import make_operator
    from tiny import tiny_mmse_prior

    from pnp_rgm import benchmark, peers
    from pnp_rgm.tasks import initial_estimate

    seen = {}
    for name in ("ddrm", "dpir_hqs", "diffpir"):
        monkeypatch.setattr(peers, name, lambda op, y, d, s, _n=name, **kw: (seen.update({_n: kw}), (op.pinv(y), 1))[1])
    ctx = type("Ctx", (), {"prior": tiny_mmse_prior(), "seed": 0, "sigma": 0.0, "task": "inpaint"})()
    op = make_operator("inpaint", (3, 8, 8), missing=0.5, seed=0)
    y = op.forward(torch.rand(1, 3, 8, 8))
    for m in ("ddrm", "dpir-hqs", "diffpir"):
        benchmark._peer(m)(op, y, ctx)
    for kw in seen.values():
        assert torch.equal(kw["x0"], initial_estimate(op, y))


def test_preset_loads_its_network_once(monkeypatch):
    """The preset method's seconds time the restoration, not a network load per image, and its output
    is what the API's default Restorer gives."""
    import pnp_rgm.priors as priors
    from pnp_rgm import benchmark
    from pnp_rgm.api import Restorer
    from pnp_rgm.tasks import simulate_observation

    loads = []
    real = priors.load_prior
    monkeypatch.setattr(priors, "load_prior", lambda *a, **k: (loads.append(a), real(*a, **k))[1])
    benchmark._bundled.cache_clear()
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    op, y = simulate_observation("sr4", x, 0.0, 0)
    ctx = benchmark.Context("sr4", 0.0, 0, None, {}, {})
    a, n = benchmark._preset(op, y.float(), ctx)
    b, _ = benchmark._preset(op, y.float(), ctx)
    assert len(loads) == 1 and torch.equal(a, b)
    monkeypatch.setattr(priors, "load_prior", real)
    r = Restorer("sr4", max_pixels=1 << 40)
    assert n == r.config.calls == 32  # the preset's calls: 8 levels x 4 orientations
    assert torch.equal(a, r.restore_tensor(y.float()))
    benchmark._bundled.cache_clear()


def test_precision_is_every_learned_methods_whatever_their_order(data, tmp_path, monkeypatch):
    """--precision reaches the peers too, alone or after rgm-drs (a Restorer, whose own default would
    switch the shared prior to auto); a bad value fails before anything is written."""
    from tiny import tiny_mmse_prior

    import pnp_rgm.peers as peers

    seen, current = [], []
    ddrm = peers.ddrm

    def spy(*args, **kwargs):  # the prior's precision at the time ddrm runs, after rgm-drs
        seen.append(current[-1].amp_dtype)
        return ddrm(*args, **kwargs)

    monkeypatch.setattr(peers, "ddrm", spy)
    for precision, want, methods in (("fp32", None, ["rgm-drs", "ddrm"]), ("bf16", torch.bfloat16, ["ddrm"])):
        prior = tiny_mmse_prior()
        current.append(prior)
        summary = run_benchmark("sr2", data, tmp_path / precision, methods, prior=prior, progress=False, limit=1,
                                precision=precision)
        assert seen[-1] is want and prior.amp_dtype is want and f"precision {precision}" in summary
    assert len(seen) == 2
    with pytest.raises(TaskError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        run_benchmark("sr2", data, tmp_path / "bad", ["rgm-drs"], prior=tiny_mmse_prior(), progress=False,
                      precision="fp16")
    assert not (tmp_path / "bad").exists()


# ----------------------------------------------------------------- settings of an out folder (audit #2)
def test_rerun_with_other_settings_is_refused_and_new_methods_still_add(data, tmp_path, capsys):
    """Rows are keyed by method and image only, so a rerun with other settings would mix numbers (or
    skip every row and retitle the old ones): refused, naming each differing setting; nothing changes."""
    from pnp_rgm.benchmark import SETTINGS_FILE
    from pnp_rgm.errors import OutputExistsError

    out = tmp_path / "sr4"
    run_benchmark("sr4", data, out, ["pinv"], crop=32, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert (out / SETTINGS_FILE).is_file()
    with pytest.raises(OutputExistsError, match=r"--task sr4 \(this run: sr8\).*--sigma 0 \(this run: 0.1\)"
                                                r".*--crop 32 \(this run: 16\)"):
        run_benchmark("sr8", data, out, ["pinv"], sigma=0.1, crop=16, progress=False)
    for kw, name in (({"seed": 1}, "--seed"), ({"settings": {"missing": 0.3}}, "--set")):
        with pytest.raises(OutputExistsError, match=name):
            run_benchmark("sr4", data, out, ["pinv"], crop=32, progress=False, **kw) if name == "--seed" else \
                run_benchmark("inpaint", data, out, ["pinv"], crop=32, progress=False, **kw)
    other = tmp_path / "other_data"
    other.mkdir()
    write_image(other / "a.png", read_image(data / "a.png"))
    with pytest.raises(OutputExistsError, match="--data"):
        run_benchmark("sr4", other, out, ["pinv"], crop=32, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # the CLI: one line, exit 2
    rc = main(["benchmark", "--task", "sr8", "--sigma", "0.1", "--crop", "16", "--data", str(data), "--out", str(out),
               "--methods", "pinv"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--task sr4 (this run: sr8)" in err
    # same settings: a new method adds its rows (how run_benchmarks.sh extends a folder)
    summary = run_benchmark("sr4", data, out, ["pinv", "bicubic"], crop=32, progress=False)
    assert len(read_rows(out / "results.csv")) == 4 and "| bicubic | 2 |" in summary


def test_a_folder_from_before_settings_were_recorded_adopts_the_runs_settings(data, tmp_path):
    from pnp_rgm.benchmark import SETTINGS_FILE, read_settings
    from pnp_rgm.errors import OutputExistsError

    out = tmp_path / "old"
    run_benchmark("sr4", data, out, ["pinv"], crop=32, progress=False)
    (out / SETTINGS_FILE).unlink()  # as a folder written before this file existed
    run_benchmark("sr4", data, out, ["pinv", "bicubic"], crop=32, progress=False)
    assert read_settings(out)["crop"] == 32 and len(read_rows(out / "results.csv")) == 4
    with pytest.raises(OutputExistsError, match="--crop"):
        run_benchmark("sr4", data, out, ["pinv"], crop=16, progress=False)
    # a folder holding a benchmark's other outputs but no results.csv is not overwritten
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "summary.md").write_text("mine")
    with pytest.raises(OutputExistsError, match="summary.md"):
        run_benchmark("sr4", data, stray, ["pinv"], progress=False)
    assert (stray / "summary.md").read_text() == "mine"


def test_prior_precision_and_solver_settings_are_recorded_once_a_method_uses_them(data, tmp_path, monkeypatch):
    """A prior-free folder can take a learned method later; from then on its prior, precision and
    solver settings are fixed for the methods that use them."""
    from tiny import tiny_mmse_prior

    from pnp_rgm.benchmark import read_settings
    from pnp_rgm.errors import OutputExistsError

    out = tmp_path / "o"
    run_benchmark("sr2", data, out, ["pinv"], limit=1, progress=False)
    assert read_settings(out)["prior"] is None and read_settings(out)["precision"] is None
    prior = tiny_mmse_prior()
    run_benchmark("sr2", data, out, ["rgm-drs"], prior=prior, limit=1, precision="fp32",
                  settings={"steps": 2}, progress=False)
    s = read_settings(out)
    assert s["precision"] == "fp32" and s["solver"] == {"steps": 2} and s["prior"]
    with pytest.raises(OutputExistsError, match=r"--precision fp32 \(this run: bf16\)"):
        run_benchmark("sr2", data, out, ["rgm-drs"], prior=prior, limit=1, precision="bf16",
                      settings={"steps": 2}, progress=False)
    with pytest.raises(OutputExistsError, match=r"--set \(solver\) steps=2 \(this run: steps=3\)"):
        run_benchmark("sr2", data, out, ["rgm-drs"], prior=prior, limit=1, precision="fp32",
                      settings={"steps": 3}, progress=False)
    # auto is recorded as what it means here: where it computes in fp32, it is fp32
    import pnp_rgm.priors as priors

    monkeypatch.setattr(priors, "native_bf16", lambda device: False)
    run_benchmark("sr2", data, out, ["rgm-drs"], prior=prior, limit=1, precision="auto", settings={"steps": 2},
                  progress=False)
    # prior-free methods do not depend on them
    run_benchmark("sr2", data, out, ["bicubic"], limit=1, precision="bf16", progress=False)
    assert len(read_rows(out / "results.csv")) == 3


# ----------------------------------------------------------------- bad input (audit #8, #11-#14, matrix)
def test_out_naming_a_file_is_a_one_line_error(data, tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("keep")
    rc = main(["benchmark", "--task", "sr4", "--data", str(data), "--out", str(f), "--methods", "pinv"])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"Error: --out {f} is a file, not a folder\n" and f.read_text() == "keep"


@pytest.mark.parametrize("methods, settings, match", [
    ("pinv", "foo=1", "--set foo: not used by method.s. pinv"),
    ("tv", "foo=1", "--set foo: not used by method.s. tv"),
    ("pinv,tv", "steps=4", "--set steps: not used"),
    ("preset", "steps=abc", "method 'preset': steps must be an integer, got 'abc'"),
    ("preset", "foo=1", "method 'preset': unknown setting.s. foo.*valid: "),
    ("pinv,rgm-drs-sr", "foo=1", "method 'rgm-drs-sr': unknown setting.s. foo"),
])
def test_every_set_key_is_used_and_validated(data, tmp_path, capsys, methods, settings, match):
    import re

    out = tmp_path / "o"
    rc = main(["benchmark", "--task", "sr4", "--data", str(data), "--out", str(out), "--methods", methods,
               "--set", settings, "--crop", "16", "--limit", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and re.search(match, err), err
    assert not out.exists()


def test_preset_takes_solver_settings_like_restore(monkeypatch):
    """--set steps=N reaches the preset method over the preset's settings, as `restore --set` does."""
    from pnp_rgm import benchmark

    seen = {}
    monkeypatch.setattr(benchmark, "_run_restorer", lambda op, y, ctx, prior, **kw: (seen.update(kw), (y, 0))[1])
    benchmark._preset(None, torch.zeros(1), benchmark.Context("sr4", 0.0, 0, None, {"steps": 3}, {}))
    assert seen["steps"] == 3 and "alpha" in seen


@pytest.mark.parametrize("args, match", [
    (["--task", "foo"], "unknown task 'foo'; valid: denoise, sr2"),
    (["--task", "matrix"], "--task matrix needs an explicit matrix"),
    (["--task", "sr4", "--crop", "3"], r"--crop 3 is too small for task 'sr4': use 0 \(whole images\) or at least 12"),
    (["--task", "sr8", "--crop", "12"], "--crop 12 is too small for task 'sr8'.* at least 16"),
    (["--task", "sr4", "--data", "CORRUPT"], "zz.png"),
    (["--task", "sr4", "--crop", "0", "--data", "TINY"], "tiny.png' is 8x8 pixels.*at least 12x12"),
])
def test_bad_input_leaves_no_out_folder(data, tmp_path, capsys, args, match):
    import re

    bad = tmp_path / "bad"
    bad.mkdir()
    write_image(bad / "a.png", read_image(data / "a.png"))
    (bad / "zz.png").write_bytes(b"not an image")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    write_image(tiny / "a.png", read_image(data / "a.png"))
    write_image(tiny / "tiny.png", read_image(data / "b.png")[:8, :8])
    args = [{"CORRUPT": str(bad), "TINY": str(tiny)}.get(a, a) for a in args]
    out = tmp_path / "new" / "o"
    argv = ["benchmark", "--data", str(data), "--out", str(out), "--methods", "pinv", "--limit", "0"] + args
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and re.search(match, err), err
    assert "matrix" not in err or args[1] == "matrix"
    assert not (tmp_path / "new").exists()


def test_a_failure_before_any_row_removes_the_folder_it_created(data, tmp_path, monkeypatch):
    from pnp_rgm import benchmark
    from pnp_rgm.benchmark import SETTINGS_FILE

    def boom(op, y, ctx):
        raise RuntimeError("boom")

    monkeypatch.setitem(benchmark.METHODS, "tv", boom)
    with pytest.raises(RuntimeError):
        run_benchmark("sr4", data, tmp_path / "new" / "o", ["tv"], progress=False)
    assert not (tmp_path / "new").exists()
    run_benchmark("sr4", data, tmp_path / "kept", ["pinv"], progress=False)
    with pytest.raises(RuntimeError):  # an existing folder keeps its rows and settings
        run_benchmark("sr4", data, tmp_path / "kept", ["pinv", "tv"], progress=False)
    assert len(read_rows(tmp_path / "kept" / "results.csv")) == 2 and (tmp_path / "kept" / SETTINGS_FILE).is_file()


def test_a_method_named_twice_runs_once(data, tmp_path, capsys):
    summary = run_benchmark("sr4", data, tmp_path / "o", ["pinv", "bicubic", "pinv"], progress=False)
    assert [r["method"] for r in read_rows(tmp_path / "o" / "results.csv")] == ["pinv", "bicubic"] * 2
    assert "| pinv | 2 |" in summary
    rc = main(["benchmark", "--task", "sr4", "--data", str(data), "--out", str(tmp_path / "c"), "--methods",
               "pinv,pinv"])
    assert rc == 0 and "| pinv | 2 |" in capsys.readouterr().out


def test_grid_label_wraps_to_a_small_crop():
    """A label wider than its tile is wrapped onto more lines, not clipped at the tile's edge."""
    from pnp_rgm.benchmark import _label

    black = torch.zeros(1, 3, 48, 48)
    short, long = _label(black, "pinv"), _label(black, "rgm-drs 28.56 dB")
    assert short[..., 14:, :].max() == 0  # one line
    assert long[..., 14:30, :].max() > 0.5  # the PSNR went onto a second line
