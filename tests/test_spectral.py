"""The spectral (Fourier-space) ambient teacher: priors from blurred or block-averaged data only."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pnp_rgm.errors import ConfigError
from pnp_rgm.io import write_image
from pnp_rgm.objectives import AmbientSpectralObjective
from pnp_rgm.spectral import SpectralAmbient, valid_conv_matrix
from pnp_rgm.train.config import CorruptionConfig, load_run_config

from tiny import TINY_MODEL  # noqa: E402

BLUR = {"operator": "deblur-gauss", "width": 1.0, "size": 5, "sigma_n": 0.05}
SR2 = {"operator": "sr2", "sigma_n": 0.05}


def spectral_cfg(crop=16, **corruption):
    return load_run_config({
        "model": {**TINY_MODEL, "kind": "mmse", "nz": 0, "precond": "edm"},
        "objective": {"kind": "ambient", "prior": "none", "continuous": True, "sigma_max": 1.0},
        "optim": {"warmup_steps": 0}, "data": {"crop": crop, "batch_size": 4, "num_workers": 0},
        "train": {"steps": 2, "log_every": 1, "sample_every": 2, "ckpt_every": 1, "sample_count": 2,
                  "precision": "fp32", "channels_last": False},
        "corruption": {**BLUR, **corruption}})


def test_valid_conv_matrix_is_the_valid_correlation():
    from scipy.signal import correlate

    rng = np.random.default_rng(0)
    k, x = rng.random(5), rng.random(12)
    a = valid_conv_matrix(k, 8)
    assert a.shape == (8, 12)
    np.testing.assert_allclose(a @ x, correlate(x, k, mode="valid"), rtol=1e-12)


@pytest.mark.parametrize("cor", [BLUR, SR2, {"operator": "deblur-uniform", "size": 3}], ids=["gauss", "sr2", "uniform"])
def test_data_patches_are_exactly_the_operator_on_clean_patches(cor):
    """A patch of a corrupted image (away from its border) is the patch operator applied to the clean
    patch behind it: no boundary model enters training."""
    from skimage.data import astronaut

    sp = SpectralAmbient(CorruptionConfig(**{**cor, "sigma_n": 0.0}))
    clean = astronaut()[100:164, 200:264].astype(np.float64) / 255.0
    data = sp.degrade_image(clean)
    n = 8
    i0 = 12 // sp.factor if sp.factor else 12  # a data patch away from the image border
    patch = data[i0:i0 + n, i0:i0 + n]
    m = sp.clean_size(n)
    c0 = i0 * sp.factor if sp.factor else i0 - sp.radius
    behind = clean[c0:c0 + m, c0:c0 + m]
    op = sp.operator((3, m, m))
    got = op.forward(torch.from_numpy(behind.transpose(2, 0, 1).copy())[None])[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(got, patch, rtol=0, atol=1e-6)  # float32 data
    assert sp.data_size(m) == n


def test_spectral_target_is_unbiased_for_the_clean_denoiser():
    """Gaussian clean patches x ~ N(0, Σ), Σ of rank 4, seen only blurred and noisy. At one level σ the
    teacher's input is u = a ⊙ x + σ ε on the passed components (a_i = σ/ρ_i, ρ_i = max(σ, κ τ_i)) and
    noise elsewhere, so the exact clean restorer is linear, E[x | u] = Σ_:P A (A Σ_PP A + σ² I)⁻¹ u_P
    (spectral coordinates, P the passed components), and the spectral ambient loss of a linear
    network is quadratic: its gradient at the exact restorer is zero up to sampling noise, on every
    passed component, and clearly not zero 20 % away from it. Regressing on the data coefficients
    without the Tweedie mix is biased: its gradient at the exact restorer is as large as that 20 % error's."""
    torch.manual_seed(0)
    cfg = spectral_cfg(crop=10, operator="deblur-gauss", width=0.8, size=3, sigma_n=0.1)
    obj = AmbientSpectralObjective(cfg.objective, None, "none", cfg.corruption)
    sp = obj.spectral
    op = sp.operator((1, 10, 10))
    n, k = op.in_numel, op.rank
    sigma = 0.5  # network units
    lv = sp.levels(op, torch.zeros((), dtype=torch.float64), torch.tensor([[sigma]], dtype=torch.float64))
    passed, a_ = lv["passed"], lv["a"][0]
    assert bool((a_[passed] == 1).any()) and bool((a_[passed] < 0.5).any())  # some shown as they are, some attenuated
    g = torch.Generator().manual_seed(1)
    basis = torch.randn(n, 4, generator=g, dtype=torch.float64) * 0.3  # clean covariance B Bᵀ (image domain)
    Vt = op.Vt(torch.eye(n, dtype=torch.float64).reshape(n, 1, 10, 10))  # row j: the coefficients of pixel e_j
    cov = Vt.T @ (basis @ basis.T) @ Vt  # Σ in the spectral basis
    P = torch.cat([passed, torch.zeros(n - k, dtype=torch.bool)]).nonzero().flatten()
    A = torch.diag(a_[passed])
    exact = torch.zeros(n, n, dtype=torch.float64)
    exact[:, P] = cov[:, P] @ A @ torch.linalg.inv(A @ cov[P][:, P] @ A + sigma ** 2 * torch.eye(len(P), dtype=torch.float64))
    b = 40000
    x = (basis @ torch.randn(4, b, generator=g, dtype=torch.float64)).T.reshape(b, 1, 10, 10)
    ys = (op.forward(x) + sp.s_n * torch.randn(b, 1, 8, 8, generator=g, dtype=torch.float64)).float()
    logs = torch.full((b,), math.log(sigma))

    def grad_norm(M0, mix: bool) -> float:
        M = M0.float().clone().requires_grad_(True)

        def G(v, logs_, z):  # a linear map of the input's spectral coefficients
            return op.V(op.Vt(v) @ M.T)

        torch.manual_seed(3)  # the same x_t draws for every evaluation
        loss = obj.loss_at(G, ys, logs)[0].mean() if mix else _naive_loss(obj, G, ys, logs)
        loss.backward()
        return float(M.grad[:k].norm())  # rows of passed components (the others are never learned)

    at_exact, off = grad_norm(exact, True), grad_norm(0.8 * exact, True)
    print(f"|grad|: at the exact denoiser {at_exact:.2e}, 20 % off {off:.2e}, naive at exact {grad_norm(exact, False):.2e}")
    assert at_exact < 0.1 * off
    assert grad_norm(1.2 * exact, True) > 10 * at_exact
    assert grad_norm(exact, False) > 0.5 * off


def _naive_loss(obj, G, y, logs_):
    """The spectral loss with the Tweedie mix left out: regress D(u) on c where the blur passes."""
    v = obj.level_input(y, logs_)
    d_c = v["op"].Vt(G(v["inp"], logs_, None))[:, :v["op"].rank]
    res = torch.where(v["passed"], v["s"] * d_c - v["uty"], torch.zeros_like(d_c))
    return 0.5 * res.pow(2).sum(1).mean() / y[0].numel()


def test_view_shows_each_component_at_the_noise_the_data_allows():
    """The teacher's view of x = 0 at level σ: passed components a_i √(ρ_i² − σ²) noise (ρ_i the level the
    data allows), the rest zero: a block-averaged teacher's view is block-constant."""
    sp = SpectralAmbient(CorruptionConfig(**SR2), further_noise=1.5)
    x = torch.zeros(4000, 1, 4, 6)
    op = sp.operator((1, 4, 6))
    tau = float(sp.tau(op, x)[1].min())  # block components: τ = 2 σ_n · 2 (network units)
    assert tau == pytest.approx(2 * 0.05 * 2)
    for sigma in (0.05, 1.0):  # below κ τ the block means are raised to κ τ and scaled by σ/(κ τ)
        rho = max(sigma, 1.5 * tau)
        v = sp.view(x, torch.full((4000,), math.log(sigma)), torch.Generator().manual_seed(0))
        std = op.Vt(v.double()).std(0)
        want_head = sigma / rho * math.sqrt(rho ** 2 - sigma ** 2)
        torch.testing.assert_close(std[:op.rank], torch.full_like(std[:op.rank], want_head), rtol=0.06, atol=1e-6)
        torch.testing.assert_close(std[op.rank:], torch.zeros_like(std[op.rank:]), rtol=0, atol=1e-6)
    y = torch.randn(2, 3, 9, 14)  # odd sides: edge-padded for the transform, cropped back
    ls = torch.log(torch.tensor([0.3, 3.0]))
    assert sp.view(y, ls).shape == y.shape
    blur = SpectralAmbient(CorruptionConfig(**BLUR), further_noise=1.5)
    assert blur.floor() == pytest.approx(1.5 * blur.tau_min())


@pytest.mark.parametrize("data, text", [
    ({"operator": "deblur-gauss", "size": 5, "width": 0.0}, "width"),
    ({"operator": "deblur-gauss", "size": 4, "width": 1.0}, "size"),
    ({"operator": "deblur-uniform", "size": 0}, "size"),
    ({"operator": "sr2", "size": 5}, "size/width"),
    ({"operator": "sr1"}, "operator"),
    ({"operator": "sr2", "sigma_n": -0.1}, "sigma_n"),
    ({"operator": "sr2", "rcond": 0.0}, "rcond"),
])
def test_spectral_corruption_errors(data, text):
    with pytest.raises(ConfigError, match=text):
        CorruptionConfig(**data)


@pytest.mark.parametrize("crop, cor, text", [
    (18, {"operator": "sr4", "width": 0.0, "size": 0}, "multiple of 4"),
    (16, {"size": 11}, "at least 8"),
])
def test_spectral_run_config_errors(crop, cor, text):
    with pytest.raises(ConfigError, match=text):
        spectral_cfg(crop=crop, **cor)


@pytest.mark.parametrize("cor", [BLUR, {**SR2, "width": 0.0, "size": 0}], ids=["gauss", "sr2"])
def test_spectral_teacher_trains_saves_and_denoises(tmp_path, cor):
    from skimage.data import astronaut

    from pnp_rgm.priors import load_prior
    from pnp_rgm.train.trainer import train

    (tmp_path / "clean").mkdir()
    write_image(tmp_path / "clean" / "a.png", astronaut()[:48, :48].astype(np.float32) / 255.0, overwrite=True)
    summary = train(spectral_cfg(**cor, simulate=True), tmp_path / "clean", tmp_path / "run", progress=False)
    assert summary["step"] == 2 and math.isfinite(summary["metrics"]["mse_y"])
    assert (tmp_path / "run" / "samples").glob("*.png")
    prior = load_prior(tmp_path / "run" / "checkpoint")
    assert prior.spectral is not None and prior.config.corruption.operator == cor["operator"]
    assert prior.sigma_floor == pytest.approx(1.5 * prior.spectral.tau_min() / 2)
    x = torch.rand(1, 3, 21, 26)  # any size
    with torch.no_grad():
        assert prior.denoise(x, 0.1).shape == x.shape
        assert prior.sample(1, 16).shape == (1, 3, 16, 16)
    card = (tmp_path / "run" / "checkpoint" / "model_card.md").read_text()
    assert f"{cor['operator']}" in card and "no clean image" in card


def test_rsd_distills_a_spectral_teacher(tmp_path):
    """RSD from a blurred-data teacher: generated samples are blurred and noised, the fake score learns
    them with the teacher's loss, and the generator's gradient is finite and reaches its weights."""
    from pnp_rgm.nets import Generator
    from pnp_rgm.priors import save_prior
    from pnp_rgm.rsd import RSDObjective, resolve_rsd_config

    cfg = spectral_cfg()
    torch.manual_seed(0)
    save_prior(Generator(cfg.model), tmp_path / "t", run_config=cfg)
    rsd = resolve_rsd_config(load_run_config({"model": {"kind": "mmse", "nz": 0}, "data": {"crop": 16},
                                              "objective": {"kind": "rsd", "prior": "none", "continuous": True,
                                                            "teacher": str(tmp_path / "t")}}))
    assert rsd.corruption.operator == "deblur-gauss"
    obj = RSDObjective(rsd.objective, None, rsd.model.precond, rsd.corruption)
    G, F = obj.build_critic(), obj.build_critic()
    with torch.no_grad():  # a fake score that has moved away from the teacher
        for p in F.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x0 = torch.zeros(2, 3, 16, 16)
    loss_f, _ = obj.d_loss(G, F, x0)
    loss_g, logs = obj.g_loss(G, F, x0)
    loss_g.backward()
    assert all(math.isfinite(float(v.detach())) for v in (loss_f, loss_g, logs["score_gap"]))
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in G.parameters())
    assert math.exp(obj.domain.lo) >= obj.spectral.floor() * 0.999  # never below the teacher's floor
