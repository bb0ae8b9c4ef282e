"""The Restorer / restore() API with baseline and (tiny, untrained) learned priors."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from skimage.transform import resize

from pnp_rgm.api import Restorer, restore
from pnp_rgm.errors import ShapeError, TaskError
from pnp_rgm.operators import observe
from pnp_rgm.pnp import RGMDRSConfig
from pnp_rgm.tasks import make_task_operator
from tiny import tiny_mmse_prior, tiny_prior

@pytest.fixture(scope="module")
def photo():
    return resize(skimage.data.astronaut(), (48, 40), anti_aliasing=True).astype(np.float32)


def test_restore_array_in_array_out(photo):
    op = make_task_operator("sr4", (3, 12, 10))
    y = observe(op, torch.from_numpy(photo.transpose(2, 0, 1).copy())[None]).numpy()[0].transpose(1, 2, 0)
    out = restore(y, task="sr4", prior="tv", iters=3)
    assert isinstance(out, np.ndarray) and out.shape == (48, 40, 3) and out.dtype == np.float32
    t = restore(torch.from_numpy(y.transpose(2, 0, 1).copy())[None], task="sr4", prior="none")
    assert isinstance(t, torch.Tensor) and t.shape == (1, 3, 48, 40)


@pytest.mark.parametrize("task, obs_shape, process", [
    ("sr4", (3, 12, 10), None),
    ("colorize", (1, 48, 40), None),
    ("inpaint", (3, 48, 40), None),
    ("deblur-gauss", (3, 48, 40), None),
    ("sr2", (1, 24, 20), {"kind": "multiscale", "num_steps": 4}),  # gray image through an RGB multiscale prior
])
def test_rgm_drs_shapes_and_determinism(task, obs_shape, process):
    prior = tiny_prior(process)
    y = torch.rand(1, *obs_shape)
    mask = (np.random.default_rng(0).random(obs_shape[1:]) > 0.5) if task == "inpaint" else None
    kw = {"outer": 1, "levels": [2, 1]}
    r1 = Restorer(task, prior, seed=3, **kw).restore_tensor(y, mask)
    r2 = Restorer(task, prior, seed=3, **kw).restore_tensor(y, mask)
    r3 = Restorer(task, prior, seed=4, **kw).restore_tensor(y, mask)
    n = 4 if task == "sr4" else 2 if task == "sr2" else 1
    c = 3 if task == "colorize" else obs_shape[0]
    assert r1.shape == (1, c, obs_shape[1] * n, obs_shape[2] * n)
    assert torch.isfinite(r1).all() and r1.min() >= 0 and r1.max() <= 1
    assert torch.equal(r1, r2)
    assert not torch.equal(r1, r3)


@pytest.mark.parametrize("task, obs_shape", [("sr4", (3, 12, 10)), ("denoise", (3, 16, 12))])
def test_sigma_conditioned_rgm_prior_runs_the_preset_schedule(task, obs_shape):
    """An explicit RGM prior with EDM preconditioning is noise-level conditioned like a twin: it runs
    the task preset's σ-schedule (steps mode), with a fresh seeded z per call."""
    from pnp_rgm.presets import preset_for

    prior = tiny_prior({"kind": "geometric", "num_steps": 4}, model={"precond": "edm"})
    for p in prior.generator.parameters():  # zero-initialised layers would hide z
        p.data.add_(0.05 * torch.randn_like(p))
    y = torch.rand(1, *obs_shape)
    sigma = 0.1 if task == "denoise" else 0.0
    r = Restorer(task, prior, seed=3, sigma=sigma)
    assert r.config.steps == preset_for(task).settings["steps"] > 0
    r1 = r.restore_tensor(y)
    assert torch.equal(r1, Restorer(task, prior, seed=3, sigma=sigma).restore_tensor(y))
    assert not torch.equal(r1, Restorer(task, prior, seed=4, sigma=sigma).restore_tensor(y))
    assert not torch.equal(r1, Restorer(task, prior, seed=3, sigma=sigma, z="zero").restore_tensor(y))


def test_rgm_drs_tiles_large_images():
    prior = tiny_prior()
    y = torch.rand(1, 3, 40, 36)
    r = Restorer("sr2", prior, max_pixels=64 * 64, tile=16, overlap=4, outer=1, levels=[1]).restore_tensor(y)
    assert r.shape == (1, 3, 80, 72) and torch.isfinite(r).all()


def test_bad_inputs():
    with pytest.raises(TaskError, match="sigma"):
        Restorer("denoise", "tv")
    with pytest.raises(TaskError, match="unknown setting"):
        Restorer("sr4", "tv", alpha=0.3)
    with pytest.raises(TaskError, match="unknown setting"):
        Restorer("sr4", tiny_prior(), tv_weight=0.3)
    with pytest.raises(TaskError, match="levels"):
        Restorer("sr4", tiny_prior(), levels=[9]).restore_tensor(torch.rand(1, 3, 4, 4))
    with pytest.raises(TaskError, match="alpha"):
        RGMDRSConfig(alpha=0.0)
    with pytest.raises(TaskError, match="device"):
        Restorer("sr4", "tv", device="tpu")
    with pytest.raises(TaskError, match="unknown task"):
        Restorer("sr4x", "tv")
    with pytest.raises(TaskError, match="mask"):
        Restorer("inpaint", "tv").restore_tensor(torch.rand(1, 3, 8, 8))
    bad = np.full((8, 8, 3), 0.5, dtype=np.float32)
    bad[2, 3, 1] = np.nan
    with pytest.raises(ShapeError, match="observation has 1 NaN or infinite value"):
        restore(bad, task="sr2", prior="none")


@pytest.mark.parametrize("task, key, value", [
    *[("sr4", k, v) for k in ("tile", "overlap", "max_pixels") for v in ("abc", [1, 2], 2.5)],
    ("deblur-gauss", "width", "abc"), ("deblur-gauss", "width", [3]),
    ("deblur-uniform", "size", "abc"), ("deblur-uniform", "size", 4.5),
])
def test_settings_of_the_wrong_type_are_one_line_task_errors(task, key, value):
    with pytest.raises(TaskError, match=f"^[^\\n]*{key}[^\\n]* must be an? (integer|number), got"):
        Restorer(task, "none", **{key: value})


@pytest.mark.parametrize("params", [{"missing": "abc"}, {"missing": 0.5, "seed": "x"}, {"missing": 0.5, "seed": 1.5}])
def test_inpaint_mask_parameters_of_the_wrong_type_are_task_errors(params):
    with pytest.raises(TaskError, match="inpaint (missing|seed) must be an? (number|integer)"):
        make_task_operator("inpaint", (3, 8, 8), **params)


def test_rcond_of_the_wrong_type_is_a_task_error():
    with pytest.raises(TaskError, match="rcond must be a number, got 'abc'"):
        Restorer("sr2", "none", rcond="abc").restore_tensor(torch.rand(1, 3, 4, 4))


@pytest.mark.parametrize("task, n", [("sr8", 8), ("sr4", 4), ("denoise", 1)])
def test_tiles_keep_the_clean_image_within_max_pixels(task, n):
    r = Restorer(task, "none", sigma=0.1, max_pixels=128 * 128, tile=256, overlap=32)
    assert (r.tiles.tile * n) ** 2 <= 128 * 128 and 0 <= r.tiles.overlap < r.tiles.tile // 2
    assert Restorer(task, "none", sigma=0.1).tiles.tile == min(256, 1024 // n)  # the defaults' budget, 1024^2
    y = torch.rand(1, 3, 48 // n, 40 // n) if n > 1 else torch.rand(1, 3, 160, 144)
    assert r.restore_tensor(y).shape[-2:] == (48, 40) if n > 1 else (160, 144)


@pytest.mark.parametrize("prior", ["tv", "tiny"])
def test_callback_traces_and_stops_early(photo, prior):
    x = torch.from_numpy(photo.transpose(2, 0, 1).copy())[None]
    op = make_task_operator("sr2", (3, 24, 20))
    y = observe(op, x)
    trace = []

    def cb(state):
        trace.append(float(((state.w.clamp(0, 1) - x) ** 2).mean()))
        return len(trace) < 2

    kw = {"iters": 10} if prior == "tv" else {"outer": 3, "levels": [2, 1]}
    r = Restorer("sr2", tiny_prior() if prior == "tiny" else "tv", **kw)
    r.restore_tensor(y, callback=cb)
    assert len(trace) == 2 and all(np.isfinite(trace))


def test_psnr_trace_records_every_iterate_and_stops_on_patience(photo):
    from pnp_rgm.metrics import psnr
    from pnp_rgm.solvers import DRSState, PSNRTrace

    x = torch.from_numpy(photo.transpose(2, 0, 1).copy())[None]
    y = observe(make_task_operator("sr2", (3, 24, 20)), x)
    y_arr = y[0].permute(1, 2, 0).numpy()
    trace = PSNRTrace(x)
    out = restore(y_arr, task="sr2", prior="tv", iters=6, callback=trace)
    assert len(trace.psnr) == 6
    assert trace.psnr[-1] == pytest.approx(psnr(out, photo), abs=1e-3)  # the returned image is the last w
    # patience 2: stop after two iterates without a new best (errors 0.1, 0.05, 0.07, 0.06 -> stop at the 4th)
    stop, truth = PSNRTrace(torch.zeros(1, 1, 2, 2), patience=2), torch.ones(1, 1, 2, 2)
    states = [DRSState(x=truth, u=truth, w=e * truth, it=i + 1) for i, e in enumerate([0.1, 0.05, 0.07, 0.06, 0.08])]
    assert [stop(s) for s in states[:4]] == [None, None, None, False]
    assert stop.psnr == pytest.approx([20.0, 26.0206, 23.0980, 24.4370], abs=1e-4)
    with pytest.raises(TaskError, match="patience"):
        PSNRTrace(truth, patience=0)
    with pytest.raises(TaskError, match="callback needs an untiled run"):
        Restorer("sr2", "tv", max_pixels=64 * 64, tile=16, overlap=4).restore_tensor(
            torch.rand(1, 3, 40, 36), callback=PSNRTrace(torch.rand(1, 3, 80, 72)))


def test_sigma_schedule_and_data_weight():
    cfg = RGMDRSConfig(steps=4, sigma_max=0.2, sigma_min=0.025)
    assert np.allclose(cfg.sigmas(), [0.2, 0.1, 0.05, 0.025])
    assert cfg.iters == 8  # outer=2 passes
    assert np.allclose(cfg.sigmas(0.1), [0.2, 0.2 * 0.5 ** (1 / 3), 0.2 * 0.5 ** (2 / 3), 0.1])  # floored at σ_y
    assert RGMDRSConfig(steps=1, sigma_max=0.0, sigma_min=0.0).sigmas(0.07) == [0.07]
    lam_inf = RGMDRSConfig(steps=4, lam=float("inf"), sigma_max=0.2, sigma_min=0.05)
    assert lam_inf.data_weight(0.0) == float("inf")
    assert lam_inf.data_weight(0.05) == pytest.approx(1.0)  # last level = σ_y: w = u
    assert lam_inf.data_weight(0.025) == pytest.approx(4.0)
    with pytest.raises(TaskError, match="sigma_min"):
        RGMDRSConfig(steps=4, sigma_max=0.1, sigma_min=0.2)
    with pytest.raises(TaskError, match="steps"):
        RGMDRSConfig(steps=-1)


def test_denoise_in_steps_mode_is_one_denoiser_call():
    prior = tiny_mmse_prior()
    x = torch.rand(1, 3, 16, 12)
    y = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    r = Restorer("denoise", prior, sigma=0.1, steps=1, outer=1, sigma_max=0.0, sigma_min=0.0, alpha=1.0, nu=0.0,
                 lam=float("inf"), ensemble=1)
    with torch.no_grad():
        assert torch.allclose(r.restore_tensor(y), prior.denoise(y, 0.1).clamp(0, 1), atol=1e-5)


def test_explicit_twin_starts_from_the_preset_solver_settings():
    from pnp_rgm.presets import preset_for

    preset = preset_for("sr4").settings
    r = Restorer("sr4", tiny_mmse_prior(), alpha=1.0)
    assert r.config.steps == preset["steps"] > 0 and r.config.sigma_max == preset["sigma_max"]
    assert r.config.alpha == 1.0  # explicit settings win
    assert Restorer("denoise", tiny_mmse_prior(), sigma=0.1).config.ensemble == preset_for("denoise").settings["ensemble"]
    assert Restorer("sr4", tiny_prior()).config == RGMDRSConfig()  # an RGM generator: the reference's levels


@pytest.mark.parametrize("task, obs_shape", [("sr4", (3, 8, 6)), ("colorize", (1, 24, 20)), ("deblur-uniform", (3, 24, 20))])
def test_steps_mode_is_seeded_and_data_consistent(task, obs_shape):
    prior = tiny_mmse_prior()
    y = torch.rand(1, *obs_shape)
    kw = dict(steps=3, outer=1, sigma_max=0.3, sigma_min=0.02, nu=0.5, flip=True,
              lam=1.0 if task == "deblur-uniform" else float("inf"))
    r1 = Restorer(task, prior, seed=1, **kw).restore_tensor(y)
    assert torch.equal(r1, Restorer(task, prior, seed=1, **kw).restore_tensor(y))
    assert not torch.equal(r1, Restorer(task, prior, seed=2, **kw).restore_tensor(y))
    op = make_task_operator(task, obs_shape)
    if task != "deblur-uniform":  # lam = inf: the output reproduces y wherever the [0, 1] clamp left it alone
        free = op.forward(((r1 > 0) & (r1 < 1)).double()) > 1 - 1e-9  # observed pixels with no clamped input
        assert free.float().mean() > 0.5
        assert torch.allclose(op.forward(r1.double()).float()[free], y[free], atol=1e-4)


def test_steps_mode_tiles_match_untiled():
    torch.manual_seed(0)
    prior = tiny_mmse_prior()
    y = torch.rand(1, 3, 24, 20)
    kw = dict(steps=2, outer=1, sigma_max=0.2, sigma_min=0.05, nu=0.0, lam=float("inf"))
    full = Restorer("sr2", prior, **kw).restore_tensor(y)
    tiled = Restorer("sr2", prior, max_pixels=64 * 64, tile=16, overlap=6, **kw).restore_tensor(y)
    assert (full - tiled).abs().mean() < 0.01 and (full - tiled).abs().max() < 0.2


def test_boolean_setting_is_checked():
    with pytest.raises(TaskError, match="boolean"):
        Restorer("sr4", tiny_mmse_prior(), flip="yes")


def test_self_ensemble_averages_the_eight_orientations():
    prior = tiny_mmse_prior()
    y = torch.rand(1, 3, 12, 16)
    kw = dict(steps=1, outer=1, sigma_max=0.0, sigma_min=0.0, alpha=1.0, nu=0.0, lam=float("inf"))
    out = Restorer("denoise", prior, sigma=0.2, ensemble=8, **kw).restore_tensor(y)
    ref = 0.0
    with torch.no_grad():
        for k in range(4):
            for f in (False, True):
                v = torch.flip(y, (-1,)) if f else y
                d = prior.denoise(torch.rot90(v, k, (-2, -1)), 0.2)
                d = torch.rot90(d, -k, (-2, -1))
                ref = ref + (torch.flip(d, (-1,)) if f else d) / 8
    assert torch.allclose(out, ref.clamp(0, 1), atol=1e-5)
    assert not torch.allclose(out, Restorer("denoise", prior, sigma=0.2, ensemble=1, **kw).restore_tensor(y), atol=1e-4)
    with pytest.raises(TaskError, match="ensemble"):
        RGMDRSConfig(ensemble=3)


def test_samples_average_independent_chains():
    prior = tiny_mmse_prior()
    y = 0.4 + 0.2 * torch.rand(2, 3, 6, 5)  # mid-range: the final [0, 1] clamp stays inactive
    kw = dict(steps=2, outer=1, sigma_max=0.3, sigma_min=0.05, nu=1.0, lam=float("inf"))
    one = Restorer("sr2", prior, seed=0, **kw)
    avg = Restorer("sr2", prior, seed=0, samples=3, **kw)
    a, b = one.restore_tensor(y), avg.restore_tensor(y)
    assert b.shape == a.shape == (2, 3, 12, 10) and not torch.allclose(a, b)
    op = make_task_operator("sr2", (3, 6, 5))
    assert torch.allclose(op.forward(b.double()).float(), y, atol=1e-4)  # the mean stays data-consistent
    assert avg.config.calls == 3 * one.config.calls == 6
    with pytest.raises(TaskError, match="samples"):
        RGMDRSConfig(samples=0)


def test_resolve_device_checks_the_gpu_number(monkeypatch):
    from pnp_rgm.api import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(TaskError, match="'cuda:2': this machine has 2 GPU"):
        resolve_device("cuda:2")


def _fake_bm3d(monkeypatch):
    """A recording stand-in for pnp_rgm.peers.bm3d_denoiser (CI has no bm3d package)."""
    import pnp_rgm.peers

    calls = []

    def factory():
        def denoise(x, sigma):
            calls.append(round(float(sigma), 6))
            return 0.5 * x + 0.25  # any fixed map will do: the test checks the plumbing
        return denoise

    monkeypatch.setattr(pnp_rgm.peers, "bm3d_denoiser", factory)
    return calls


def test_bm3d_prior_denoises_in_one_call_and_runs_the_preset_schedule(monkeypatch):
    from pnp_rgm.pnp import RGMDRSConfig
    from pnp_rgm.presets import preset_for

    calls = _fake_bm3d(monkeypatch)
    y = torch.rand(1, 3, 16, 16)
    out = Restorer("denoise", "bm3d", sigma=0.1).restore_tensor(y)
    assert calls == [0.1]  # w = u = D(y, sigma_y): plain BM3D denoising
    torch.testing.assert_close(out, (0.5 * y + 0.25).clamp(0, 1))
    calls.clear()
    x = torch.rand(1, 3, 16, 16)
    op = make_task_operator("sr4", (3, 4, 4))
    ys = observe(op, x)
    out = Restorer("sr4", "bm3d").restore_tensor(ys)
    keys = ("steps", "sigma_max", "sigma_min")
    expect = RGMDRSConfig(**{k: preset_for("sr4").settings[k] for k in keys}).sigmas()
    assert calls == [round(s, 6) for s in expect] and len(calls) > 1
    torch.testing.assert_close(op.forward(out), ys, atol=1e-5, rtol=0)  # lam = inf: A x = y
    with pytest.raises(TaskError, match="unknown setting.*nu for prior 'bm3d'"):
        Restorer("sr4", "bm3d", nu=1.0)


def test_bm3d_prior_without_the_package_is_a_one_line_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "bm3d", None)  # import bm3d -> ImportError
    with pytest.raises(TaskError, match=r"BM3D needs the optional bm3d package: pip install 'pnp-rgm\[bench\]'"):
        Restorer("denoise", "bm3d", sigma=0.1)


def test_bm3d_prior_is_cbm3d_for_denoising():
    bm3d = pytest.importorskip("bm3d")
    rng = np.random.default_rng(0)
    clean = resize(skimage.data.astronaut(), (32, 32), anti_aliasing=True)
    noisy = np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1).astype(np.float32)
    out = restore(noisy, task="denoise", prior="bm3d", sigma=0.1)
    ref = np.clip(bm3d.bm3d_rgb(noisy.astype(np.float64), 0.1), 0, 1)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_precision_auto_is_bf16_only_where_the_cpu_has_it(monkeypatch):
    import pnp_rgm.priors

    y = torch.rand(1, 3, 16, 16)
    monkeypatch.setattr(pnp_rgm.priors, "native_bf16", lambda device: False)
    r32 = Restorer("sr2", tiny_mmse_prior(), steps=2)
    assert r32.prior.amp_dtype is None
    monkeypatch.setattr(pnp_rgm.priors, "native_bf16", lambda device: True)
    r16 = Restorer("sr2", tiny_mmse_prior(), steps=2)
    assert r16.prior.amp_dtype == torch.bfloat16
    assert Restorer("sr2", tiny_mmse_prior(), steps=2, precision="fp32").prior.amp_dtype is None
    a, b = r32.restore_tensor(y), r16.restore_tensor(y)
    assert b.dtype == torch.float32 and 0 < float((a - b).abs().max()) < 0.05  # bf16 ran, and stayed close
    with pytest.raises(TaskError, match="precision must be one of auto, fp32, bf16, got 'fp8'"):
        Restorer("sr2", "none", precision="fp8")


# ------------------------------------------------------------------ what an API audit found
def test_uint8_is_scaled_and_values_far_outside_unit_range_are_refused(photo):
    y = (photo[::4, ::4] * 255).round().astype(np.uint8)
    a = restore(y, task="sr4", prior="none")
    assert np.allclose(a, restore(y.astype(np.float32) / 255, task="sr4", prior="none"), atol=1e-6)
    with pytest.raises(ShapeError, match=r"must be in \[0, 1\].*divide by 255"):
        restore(y.astype(np.float32), task="sr4", prior="none")  # 0-255 floats
    with pytest.raises(ShapeError, match="floating point"):
        restore(torch.from_numpy(y.transpose(2, 0, 1).copy())[None], task="sr4", prior="none")
    noisy = photo + np.random.default_rng(0).normal(0, 0.2, photo.shape).astype(np.float32)
    assert restore(noisy, task="denoise", prior="none", sigma=0.2).shape == photo.shape  # noise strays outside


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 2.5}, "steps must be an integer, got 2.5"), ({"steps": True}, "steps must be an integer"),
    ({"samples": 2.7}, "samples must be an integer"), ({"levels": [1.5]}, "levels must be an integer"),
    ({"nu": float("inf")}, "nu must be a finite number"), ({"steps": 100000}, "network calls per image"),
    ({"seed": 1.5}, "seed must be an integer"), ({"seed": 2**70}, r"seed must be an integer in \[0, 2\*\*63\)"),
    ({"sigma": "abc"}, "sigma must be a number"), ({"task": None}, "task must be a task name"),
    ({"task": "sr04"}, "unknown task 'sr04'"), ({"prior": 5}, "prior must be a name"),
])
def test_bad_arguments_are_one_line_typed_errors(kwargs, match):
    args = {"task": "sr2", "prior": tiny_mmse_prior(), **kwargs}
    with pytest.raises(TaskError, match=match):
        restore(np.full((4, 4, 3), 0.5, np.float32), device="cpu", **args)


def test_bad_observations_and_callbacks_are_typed_errors():
    with pytest.raises(ShapeError, match="path"):
        restore("foo.png", task="sr2", prior="none")
    with pytest.raises(ShapeError, match="empty"):
        restore(torch.zeros(0, 3, 8, 8), task="sr2", prior="none")
    with pytest.raises(TaskError, match="callback must be callable"):
        restore(np.full((4, 4, 3), 0.5, np.float32), task="sr2", prior="tv", callback=5)
    with pytest.raises(TaskError, match=r"rcond must be in \[0, 1\)"):
        restore(np.full((4, 4, 3), 0.5, np.float32), task="sr2", prior="none", rcond=5)


def test_mask_values_are_checked_and_thresholded_like_the_cli():
    rng = np.random.default_rng(0)
    y, m = rng.random((8, 8, 3)).astype(np.float32), rng.random((8, 8)) > 0.5
    ref = restore(y * m[..., None], task="inpaint", prior="none", mask=m)
    assert np.array_equal(ref, restore(y * m[..., None], task="inpaint", prior="none", mask=np.where(m, 0.7, 0.3)))
    for bad in (np.where(m, 1.0, -1.0), np.where(m, np.nan, 0.0)):
        with pytest.raises(ShapeError, match=r"mask values must be in \[0, 1\]"):
            restore(y, task="inpaint", prior="none", mask=bad)


def test_batch_items_do_not_depend_on_the_rest_of_the_batch():
    prior = tiny_mmse_prior()
    r = Restorer("colorize", prior, device="cpu", steps=2, nu=1.0)  # stochastic: noise in every call
    t = torch.rand(2, 1, 16, 16)
    both = r.restore_tensor(t)
    assert torch.equal(both[0], r.restore_tensor(t[:1])[0]) and torch.equal(both[1], r.restore_tensor(t[1:])[0])
    # a gray image stored as RGB is accepted as a tensor too, as it is as an array
    assert torch.equal(both[:1], r.restore_tensor(t[:1].expand(-1, 3, -1, -1)))


def test_outputs_keep_the_inputs_kind(photo):
    gray = photo[::4, ::4].mean(-1)
    out = restore(gray, task="sr4", prior="none")
    assert out.shape == (48, 40) and out.flags.c_contiguous and out.dtype == np.float32
    t = torch.from_numpy(photo[::4, ::4].transpose(2, 0, 1).copy())[None].double()
    assert restore(t, task="sr4", prior="none").dtype == torch.float64


def test_a_shrunk_tile_of_any_side_keeps_a_valid_overlap():
    for budget in (22500, 22501, 4096, 5000):
        r = Restorer("sr4", "none", max_pixels=budget)
        assert 0 <= r.tiles.overlap < r.tiles.tile // 2


def test_a_non_finite_bf16_result_is_computed_again_in_fp32(monkeypatch):
    # bf16 CPU kernels returned NaN on thin feature maps (a 600x8 input, GroupNorm on 75x1)
    prior = tiny_mmse_prior()
    prior.amp_dtype = torch.bfloat16
    forward, calls = prior.generator.forward, []

    def flaky(*args, **kwargs):
        out = forward(*args, **kwargs)
        calls.append(torch.is_autocast_enabled("cpu"))
        return out * float("nan") if len(calls) == 1 else out

    monkeypatch.setattr(prior.generator, "forward", flaky)
    out = prior.denoise(torch.rand(1, 3, 8, 8), 0.1)
    assert torch.isfinite(out).all() and calls == [True, False]


def test_a_photos_blur_is_restored_with_a_free_boundary():
    # a camera's blur of a scene that goes on beyond the frame: the zero-boundary model (the
    # benchmarks') explains the frame's edge with dark pixels that ring through the image
    x = torch.from_numpy(resize(skimage.data.astronaut(), (80, 72), anti_aliasing=True).transpose(2, 0, 1).copy())[None]
    op = make_task_operator("deblur-gauss", (3, 80, 72), width=1.5)
    c = 5  # size 11: the blur reaches 5 pixels
    y = op.forward(x)[..., c:-c, c:-c].float()  # the valid part: what a camera records of the middle
    truth = x[..., c:-c, c:-c].float()
    free = restore(y, task="deblur-gauss", width=1.5, device="cpu")  # restore's default: boundary free
    zero = restore(y, task="deblur-gauss", width=1.5, boundary="zero", device="cpu")
    from pnp_rgm.metrics import psnr
    assert free.shape == y.shape and psnr(truth[0], free[0]) > psnr(truth[0], zero[0]) + 5
    assert psnr(truth[0], free[0]) > psnr(truth[0], y[0]) + 6  # 28.4 dB against the blurred 20.3 (zero: 11.7)


def test_free_boundary_simulation_blurs_the_mirrored_scene():
    from pnp_rgm.tasks import simulate_observation
    x = torch.rand(1, 3, 20, 16, dtype=torch.float64)
    op, y = simulate_observation("deblur-uniform", x, size=5, boundary="free")
    zero = make_task_operator("deblur-uniform", (3, 24, 20), size=5)
    ext = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    assert op.in_shape == (3, 24, 20) and y.shape == x.shape
    assert torch.allclose(y, zero.forward(ext)[..., 2:-2, 2:-2])


def test_a_blurs_8_bit_observation_carries_its_rounding_noise():
    y = torch.rand(1, 3, 16, 16)
    q = (y * 255).round() / 255
    r = Restorer("deblur-gauss", "tv", device="cpu")
    assert r.data_sigma(q) == pytest.approx(1 / (255 * 12 ** 0.5)) and r.data_sigma(y) == 0.0
    assert Restorer("deblur-gauss", "tv", sigma=0.05).data_sigma(q) == 0.05  # a given sigma stands
    assert Restorer("sr4", "tv").data_sigma(q) == 0.0  # well-conditioned tasks keep lam as set


def test_batches_take_one_mask_per_image_and_count_tiles_over_the_batch():
    rng = np.random.default_rng(0)
    x = torch.rand(3, 3, 24, 20)
    masks = rng.random((3, 1, 24, 20)) > 0.5
    y = x * torch.from_numpy(masks)
    r = Restorer("inpaint", "tv", device="cpu", iters=3)
    both = r.restore_tensor(y, masks)
    for i in range(3):
        assert torch.equal(both[i], r.restore_tensor(y[i:i + 1], masks[i, 0])[0])
    with pytest.raises(ShapeError, match="one mask per image: 3 masks for 2"):
        r.restore_tensor(y[:2], masks)
    calls = []
    Restorer("sr2", "none", max_pixels=64 * 64, tile=16, overlap=4).restore_tensor(
        torch.rand(2, 3, 40, 40), progress=lambda d, n: calls.append((d, n)))
    assert [d for d, _ in calls] == list(range(1, len(calls) + 1)) and calls[-1][1] == len(calls)


def test_a_low_precision_blur_observation_is_not_taken_as_exact():
    r = Restorer("deblur-gauss", "tv", device="cpu")
    q = (torch.rand(1, 3, 8, 8) * 255).round() / 255
    assert r.data_sigma(q.bfloat16()) == r.data_sigma(q) == pytest.approx(1 / (255 * 12 ** 0.5))
