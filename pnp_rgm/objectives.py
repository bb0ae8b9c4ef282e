"""RGM training objectives (MAP restoration with a learned prior term) and the MMSE twin.

Network space is [-1, 1]. For a batch of clean images x0 and per-sample steps k in 1..K:

* ``map`` (Algorithms 1/2 of RGM): x0_hat = G(x_k, z, k) (see :meth:`RGMObjective.real_pair`);
  loss_G = lambda_fid * 1/2 mean(((x_k - a_k A_k x0_hat) / sigma_k)^2)
           + lambda_prior * prior((x_{k-1}_hat, x_k) vs (x_{k-1}, x_k))
  where x_{k-1}_hat is re-degraded from x0_hat (Algorithm 2, "prior" sampling) or drawn from
  q(x_{k-1} | x_k, x0_hat) (Algorithm 1, "posterior"). The mean is over elements, so
  lambda_fid here equals the per-sample MAP weight divided by the number of elements.
* prior terms: ``kld`` (non-saturating GAN with conditional D; D gets lazy R1), ``mmd``
  (mixture-of-RBF MMD^2 on D features or raw pairs), ``dswd`` (distributional sliced
  Wasserstein on the same features), ``none``.
* ``mmse``: 1/2 mean((G(x) - x0)^2) over a continuous log-uniform noise range, or the process's
  K steps (the paper's MMSE ablation).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from pnp_rgm.nets.unet import SIGMA_DATA, edm_coefficients
from pnp_rgm.processes import BlockAverage
from pnp_rgm.sampling import net_attr, restore_step
from pnp_rgm.spectral import is_spectral

__all__ = ["RGMObjective", "MMSEObjective", "AmbientNoiseObjective", "AmbientMaskObjective", "AmbientSpectralObjective", "make_objective", "mmd2", "dswd", "needs_discriminator"]


def needs_discriminator(cfg) -> bool:
    return cfg.kind == "map" and (cfg.prior == "kld" or (cfg.prior in ("mmd", "dswd") and cfg.feature_space == "disc"))


def _pairwise_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1)[None] - 2 * a @ b.t()).clamp_min(0)


def mmd2(real: torch.Tensor, fake: torch.Tensor, bandwidths=(0.25, 0.5, 1.0, 2.0, 4.0)) -> torch.Tensor:
    """Biased MMD^2 with a mixture of RBF kernels; bandwidths are relative to the mean squared
    distance among the real features (so the loss is scale free)."""
    real, fake = real.float(), fake.float()
    drr, dff, drf = _pairwise_sq(real, real), _pairwise_sq(fake, fake), _pairwise_sq(real, fake)
    scale = drr.detach().mean().clamp_min(1e-8)
    out = real.new_zeros(())
    for bw in bandwidths:
        g = 1.0 / (bw * scale)
        out = out + torch.exp(-g * drr).mean() + torch.exp(-g * dff).mean() - 2 * torch.exp(-g * drf).mean()
    return out


def _sliced_w2(real: torch.Tensor, fake: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    pr = torch.sort(real @ theta.t(), dim=0).values
    pf = torch.sort(fake @ theta.t(), dim=0).values
    return (pr - pf).pow(2).mean(0)  # (L,)


def dswd(real: torch.Tensor, fake: torch.Tensor, n_proj: int = 64, iters: int = 3, lr: float = 0.1,
         reg: float = 1.0, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Distributional sliced Wasserstein-2 (squared): directions are pushed towards the most
    discriminative slices by a few ascent steps on mean W2 - reg * mean |cos| between directions,
    then W2 along them is returned (differentiable in ``fake``). Features are scaled by the real
    features' std."""
    real, fake = real.float(), fake.float()
    if real.shape[0] != fake.shape[0]:
        n = min(real.shape[0], fake.shape[0])
        real, fake = real[:n], fake[:n]
    scale = real.detach().std().clamp_min(1e-8)
    real, fake = real / scale, fake / scale
    d = real.shape[1]
    theta = torch.randn(n_proj, d, device=real.device, generator=generator)
    theta = F.normalize(theta, dim=1)
    if iters:
        rd, fd = real.detach(), fake.detach()
        with torch.enable_grad():
            for _ in range(iters):
                th = theta.detach().requires_grad_(True)
                thn = F.normalize(th, dim=1)
                cos = (thn @ thn.t()).abs()
                obj = _sliced_w2(rd, fd, thn).mean() - reg * (cos.sum() - n_proj) / max(n_proj * (n_proj - 1), 1)
                (g,) = torch.autograd.grad(obj, th)
                theta = F.normalize(th.detach() + lr * g / (g.norm(dim=1, keepdim=True) + 1e-12) * 1.0, dim=1)
    return _sliced_w2(real, fake, theta.detach()).mean()


class RGMObjective:
    """MAP objective; see module docstring. ``process`` is a ForwardProcess."""

    def __init__(self, cfg, process) -> None:
        self.cfg = cfg
        self.process = process
        self.has_d = needs_discriminator(cfg)

    # --- helpers
    def real_pair(self, x0: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The real pair, built the same way as the fake one: Algorithm 1 (posterior) compares with
        the joint chain (x_{k-1}, x_k); Algorithm 2 (prior) re-degrades x0_hat to step k-1 with fresh
        noise, so the real x_{k-1} is drawn from q(x_{k-1} | x0) independently of x_k as well."""
        if self.cfg.sampling == "posterior":
            return self.process.pair(x0, k)
        return self.process.degrade(x0, k - 1), self.process.degrade(x0, k)

    def sample_k(self, b: int) -> torch.Tensor:
        return torch.randint(1, self.process.K + 1, (b,))

    def _z(self, G, b: int, device) -> Optional[torch.Tensor]:
        nz = net_attr(G, "nz", 0)
        if not nz or not self.cfg.use_z:
            return None
        return torch.randn(b, nz, device=device)

    def _fake(self, G, x0, x_prev, x_k, k):
        z = self._z(G, x0.shape[0], x0.device)
        x0_hat = restore_step(G, self.process, x_k, k, z).float()
        x_prev_hat = None
        if self.cfg.prior != "none":
            x_prev_hat = self.process.step_back(x_k, x0_hat, k, posterior=self.cfg.sampling == "posterior")
        return x0_hat, x_prev_hat

    def _features(self, D, x_prev, x_k, k):
        if self.cfg.feature_space == "raw":
            return torch.cat([x_prev.flatten(1), x_k.flatten(1)], dim=1).float()
        return D(x_prev, x_k, k.to(x_k.device).float())[1]

    # --- losses
    def d_loss(self, G, D, x0: torch.Tensor, r1: bool = False) -> tuple[torch.Tensor, dict]:
        """Discriminator loss (non-saturating GAN, one D forward on [real; fake]) + lazy R1."""
        b = x0.shape[0]
        k = self.sample_k(b)
        x_prev, x_k = self.real_pair(x0, k)
        with torch.no_grad():
            _, x_prev_hat = self._fake(G, x0, x_prev, x_k, k)
        if x_prev_hat is None:  # prior "none" but a D exists (not used); keep D trained on re-degradation
            x_prev_hat = self.process.degrade(x0, k - 1)
        x_prev = x_prev.detach().requires_grad_(r1)
        kk = torch.cat([k, k]).to(x0.device).float()
        logits, _ = D(torch.cat([x_prev, x_prev_hat.detach()]), torch.cat([x_k, x_k]), kk)
        lr_, lf = logits[:b], logits[b:]
        loss = F.softplus(-lr_).mean() + F.softplus(lf).mean()
        logs = {"d_real": lr_.detach().mean(), "d_fake": lf.detach().mean()}
        if r1 and self.cfg.r1_gamma > 0:
            (g,) = torch.autograd.grad(lr_.sum(), x_prev, create_graph=True)
            pen = g.float().pow(2).flatten(1).sum(1).mean()
            loss = loss + 0.5 * self.cfg.r1_gamma * self.cfg.r1_every * pen
            logs["r1"] = pen.detach()
        logs["loss_d"] = loss.detach()
        return loss, logs

    def g_loss(self, G, D, x0: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Generator loss. ``D`` should be the unwrapped discriminator with frozen parameters."""
        cfg = self.cfg
        b = x0.shape[0]
        if cfg.prior in ("mmd", "dswd"):  # set-level distances compare pairs of one step: one k per batch
            k = torch.full((b,), int(torch.randint(1, self.process.K + 1, (1,))), dtype=torch.long)
        else:
            k = self.sample_k(b)
        x_prev, x_k = self.real_pair(x0, k)
        x0_hat, x_prev_hat = self._fake(G, x0, x_prev, x_k, k)
        loss = x0.new_zeros(())
        logs: dict = {}
        if cfg.fidelity and cfg.lambda_fid > 0:
            sig = self.process.sigma[k].to(x0.device, torch.float32).view(-1, *([1] * (x0.dim() - 1)))
            fid = 0.5 * ((x_k - self.process.mean(x0_hat, k)) / sig).pow(2).mean()
            loss = loss + cfg.lambda_fid * fid
            logs["fid"] = fid.detach()
        if cfg.prior != "none":
            if cfg.prior == "kld":
                logit, _ = D(x_prev_hat, x_k, k.to(x0.device).float())
                pr = F.softplus(-logit).mean()
            else:
                with torch.no_grad():
                    fr = self._features(D, x_prev, x_k, k)
                ff = self._features(D, x_prev_hat, x_k, k)
                if cfg.prior == "mmd":
                    pr = mmd2(fr, ff, cfg.mmd_bandwidths)
                else:
                    pr = dswd(fr, ff, cfg.dswd_projections, cfg.dswd_iters, cfg.dswd_lr, cfg.dswd_reg)
            loss = loss + cfg.lambda_prior * pr
            logs[cfg.prior] = pr.detach()
        with torch.no_grad():
            logs["mse"] = (x0_hat - x0).pow(2).mean()
        logs["loss_g"] = loss.detach()
        return loss, logs


_BLOCK_AVERAGE = BlockAverage("torch")


def degrade_inputs(x0: torch.Tensor, levels=(0,), gray_prob: float = 0.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(A x0, degraded) for the degraded-input MMSE twins: each (B, C, H, W) sample is 2^m x 2^m
    block-averaged and nearest-upsampled back (m drawn uniformly from ``levels``, 0 = unchanged),
    and with probability ``gray_prob`` replaced by its channel mean. ``degraded`` (B,) bool marks
    the samples changed; it is None when nothing can be (plain denoising)."""
    if not any(levels) and not gray_prob:
        return x0, None
    b = x0.shape[0]
    lv = torch.as_tensor(list(levels), dtype=torch.long)
    m = lv[torch.randint(len(lv), (b,))]
    gray = torch.rand(b) < gray_prob
    out = x0.clone()
    for level in m.unique().tolist():
        if level:
            sel = (m == level).nonzero().flatten().to(x0.device)
            out[sel] = _BLOCK_AVERAGE(x0[sel], level)
    if bool(gray.any()):
        sel = gray.nonzero().flatten().to(x0.device)
        out[sel] = out[sel].mean(dim=1, keepdim=True).expand_as(out[sel])
    return out, (m > 0) | gray


_LOG_EPS = 1e-8  # keeps log finite for an exact sample; far below any reachable error


class MMSEObjective:
    """MSE-only objective for the MMSE twin (``model.kind: mmse``)."""

    has_d = False

    def __init__(self, cfg, process, precond: str = "none") -> None:
        self.cfg = cfg
        self.process = process
        self.precond = precond

    def g_loss(self, G, D, x0: torch.Tensor) -> tuple[torch.Tensor, dict]:
        b = x0.shape[0]
        shape = (b,) + (1,) * (x0.dim() - 1)
        weight = None
        if self.cfg.continuous:
            lo, hi = math.log(2 * self.cfg.sigma_min), math.log(2 * self.cfg.sigma_max)  # [-1,1] units
            u = torch.rand(b, device=x0.device)
            logs_ = u * (hi - lo) + lo
            x, degraded = degrade_inputs(x0, self.cfg.block_levels, self.cfg.gray_prob)
            if degraded is not None:  # A x0 + σ n with σ >= degraded_sigma_min
                lo_d = math.log(2 * max(self.cfg.sigma_min, self.cfg.degraded_sigma_min))
                logs_ = torch.where(degraded.to(x0.device), u * (hi - lo_d) + lo_d, logs_)
            x = x + torch.exp(logs_).view(shape) * torch.randn_like(x0)
            x0_hat = G(x, logs_, None).float()
            if self.precond == "edm":  # EDM weighting 1/c_out²: every noise level counts alike
                weight = edm_coefficients(torch.exp(logs_))[1].pow(-2)
        else:
            k = torch.randint(1, self.process.K + 1, (b,))
            x_k = self.process.degrade(x0, k)
            x0_hat = restore_step(G, self.process, x_k, k, None).float()
        err = (x0_hat - x0).pow(2)
        mse = err.mean().detach()
        if weight is not None:
            err = err * weight
        if self.cfg.loss == "log":  # mean over samples of log(sample MSE): what mean PSNR rewards
            loss = 0.5 * torch.log(err.flatten(1).mean(1) + _LOG_EPS).mean()
        else:
            loss = 0.5 * err.mean()
        return loss, {"mse": mse, "loss_g": loss.detach()}


class AmbientNoiseObjective:
    """A clean-data denoiser learned from noisy data only (``objective.kind: ambient`` with the
    ``denoise`` corruption). The batch is y = x + σ_n n; x itself is never seen.

    With x_t = y + √(σ_t² − σ_n²) ε (so x_t = x + σ_t·noise) Tweedie's formula holds for x and for y:
    E[x|x_t] = x_t + σ_t² ∇log p_t(x_t) and E[y|x_t] = x_t + (σ_t² − σ_n²) ∇log p_t(x_t), hence
    E[y|x_t] = c E[x|x_t] + (1 − c) x_t with c = 1 − σ_n²/σ_t². Regressing c D(x_t) + (1 − c) x_t on
    y is therefore minimized by D = E[x|x_t], the denoiser of clean data, at every σ_t > σ_n (the
    Ambient-Tweedie target; Daras et al. 2024). Below σ_n there is nothing to learn from: such inputs
    are noisier than the data. EDM weighting 1/c_out² as the MMSE twin; the factor c is left in, so
    levels near σ_n, where the target is mostly noise, count less."""

    has_d = False

    def __init__(self, cfg, process, precond: str = "none", sigma_n: float = 0.0) -> None:
        if not sigma_n > 0:
            raise ValueError(f"sigma_n: the ambient noise objective needs the data's noise level > 0, got {sigma_n}")
        self.cfg, self.process, self.precond = cfg, process, precond
        self.s_n = 2 * float(sigma_n)  # [-1, 1] units
        self.lo = math.log(max(2 * cfg.sigma_min, self.s_n))
        self.hi = math.log(2 * cfg.sigma_max)

    def inputs(self, y: torch.Tensor, logs_: torch.Tensor) -> torch.Tensor:
        """x_t = y + √(σ_t² − σ_n²) ε for per-sample log σ_t (network units)."""
        extra = (torch.exp(2 * logs_) - self.s_n ** 2).clamp_min(0).sqrt()
        return y + extra.view((-1,) + (1,) * (y.dim() - 1)) * torch.randn_like(y)

    def target_mix(self, logs_: torch.Tensor) -> torch.Tensor:
        """c = 1 − σ_n²/σ_t² per sample."""
        return 1 - self.s_n ** 2 / torch.exp(2 * logs_)

    def g_loss(self, G, D, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        b = y.shape[0]
        shape = (b,) + (1,) * (y.dim() - 1)
        logs_ = torch.rand(b, device=y.device) * (self.hi - self.lo) + self.lo
        x_t = self.inputs(y, logs_)
        d = G(x_t, logs_, None).float()
        c = self.target_mix(logs_).view(shape)
        err = (c * d + (1 - c) * x_t - y).pow(2)
        mse_y = err.mean().detach()
        if self.precond == "edm":
            err = err * edm_coefficients(torch.exp(logs_))[1].pow(-2).view(shape)
        loss = 0.5 * err.mean()
        return loss, {"mse_y": mse_y, "loss_g": loss.detach()}


class AmbientMaskObjective:
    """A restorer of clean images learned from masked images only (``objective.kind: ambient`` with
    the ``mask`` corruption; Ambient Diffusion, Daras et al. 2023). The batch is (y, A): masked
    images and their masks (1 = known), as a (B, C + 1, H, W) tensor.

    A further fraction ``further`` of the known pixels is hidden, Ã = B A; the network sees
    Ã(y + σ_t ε) and Ã and is scored on all pixels of A: ½ |A (D(Ã x_t, Ã) − y)|² / |A|. Since the
    pixels in A but not in Ã are chosen at random and unseen, the minimizer predicts every pixel,
    D = E[x | Ã x_t, Ã]; at inference a full mask gives a denoiser of clean images. Noise levels
    log-uniform in [sigma_min, sigma_max] (the data has no noise). EDM weighting 1/c_out² on the
    shown pixels, whose error shrinks with σ; the hidden ones, whose error does not, get its
    large-σ limit 1/σ_data²."""

    has_d = False

    def __init__(self, cfg, process, precond: str = "none", channels: int = 3) -> None:
        self.cfg, self.process, self.precond, self.channels = cfg, process, precond, channels
        self.lo, self.hi = math.log(2 * cfg.sigma_min), math.log(2 * cfg.sigma_max)

    def g_loss(self, G, D, batch: torch.Tensor) -> tuple[torch.Tensor, dict]:
        c = self.channels
        y, known = batch[:, :c], batch[:, c:c + 1]
        b = y.shape[0]
        shape = (b,) + (1,) * (y.dim() - 1)
        logs_ = torch.rand(b, device=y.device) * (self.hi - self.lo) + self.lo
        shown = known * (torch.rand_like(known) >= self.cfg.further).to(known.dtype)
        x_t = shown * (y + torch.exp(logs_).view(shape) * torch.randn_like(y))
        d = G(x_t, logs_, None, mask=shown).float()
        err = (d - y).pow(2)
        count = (known.flatten(1).sum(1) * c).clamp_min(1)
        mse_known = ((known * err).flatten(1).sum(1) / count).mean().detach()
        w = known
        if self.precond == "edm":  # shown pixels: EDM's 1/c_out²; hidden ones, whose error stays O(1) as σ → 0,
            w_show = edm_coefficients(torch.exp(logs_))[1].pow(-2).view(shape)  # its large-σ limit 1/σ_data²
            w = shown * w_show + (known - shown) / SIGMA_DATA ** 2
        loss = 0.5 * ((w * err).flatten(1).sum(1) / count).mean()
        return loss, {"mse_known": mse_known, "loss_g": loss.detach()}


class AmbientSpectralObjective:
    """A denoiser of clean images learned from blurred or block-averaged images only
    (``objective.kind: ambient`` with a ``deblur-*`` or ``srN`` corruption; the Fourier-space
    variant): the input and the target are built per component of the operator's SVD, which for
    a blur is its frequency basis; see :mod:`pnp_rgm.spectral`. The batch is data patches y
    (B, C, h, w); the network works on the clean patches behind them (B, C, h + 2r, w + 2r) or
    (B, C, f·h, f·w). Levels log-uniform in [max(sigma_min, κ min τ), sigma_max]. EDM weighting
    per component, 1/c_out(ρ_i)² at the noise ρ_i it is seen with."""

    has_d = False

    def __init__(self, cfg, process, precond: str = "none", corruption=None) -> None:
        from pnp_rgm.spectral import SpectralAmbient

        self.cfg, self.process, self.precond = cfg, process, precond
        self.spectral = SpectralAmbient(corruption, cfg.further_noise)
        self.lo = math.log(max(2 * cfg.sigma_min, self.spectral.floor()))
        self.hi = math.log(2 * cfg.sigma_max)

    def level_input(self, y: torch.Tensor, logs_: torch.Tensor) -> dict:
        """The network input at per-sample levels log σ built from data patches y (differentiable in
        y): ``inp`` = V(u), with the pieces the loss needs (``op``, ``s``, ``passed``, ``rho``, ``a``,
        ``r``, ``uty``, ``x_in``) in the spectral basis."""
        sp = self.spectral
        _, c, h, w = y.shape
        op = sp.operator((c, sp.clean_size(h), sp.clean_size(w)))
        k = op.rank
        with torch.autocast(y.device.type, enabled=False):  # the SVD transforms stay in fp32
            yf = y.float()
            sig = torch.exp(logs_.float())[:, None]
            lv = sp.levels(op, yf, sig)
            s, tau, passed, rho, a = lv["s"], lv["tau"], lv["passed"], lv["rho"], lv["a"]
            uty = op.Ut(yf)[:, :k]
            coef = torch.where(passed, uty / torch.where(passed, s, torch.ones_like(s)), torch.zeros_like(uty))  # c_i
            tau0 = torch.where(passed, tau, torch.zeros_like(tau))[None]
            x_in, u = sp.shown(coef, tau0, lv, torch.randn_like(coef))  # x_i + ρ_i noise; a_i x_i + σ noise
            inp = op.V_head(u)
            r = torch.where(passed[None], tau0 ** 2 / rho ** 2, torch.zeros_like(rho))
        return dict(op=op, s=s, passed=passed, rho=rho, a=a, r=r, uty=uty, x_in=x_in, inp=inp)

    def loss_at(self, G, y: torch.Tensor, logs_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-sample loss, per-sample measurement-domain MSE) at per-sample levels log σ."""
        v = self.level_input(y, logs_)
        op, s, passed, rho, r, uty = (v[n] for n in ("op", "s", "passed", "rho", "r", "uty"))
        d = G(v["inp"], logs_, None).float()
        with torch.autocast(y.device.type, enabled=False):
            d_c = op.Vt(d)[:, :op.rank]
            m = r * v["x_in"] + (1 - r) * d_c  # E[c | input], written with the prediction
            err = torch.where(passed, s * m - uty, torch.zeros_like(uty)).pow(2)  # (A m − y)² in U's basis
            mse = err.sum(1) / y[0].numel()
            per = mse
            if self.precond == "edm":  # EDM's 1/c_out² at the noise ρ_i each component is seen with
                per = (err * (rho ** 2 + SIGMA_DATA ** 2) / (rho * SIGMA_DATA) ** 2).sum(1) / y[0].numel()
        return 0.5 * per, mse

    def g_loss(self, G, D, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        logs_ = torch.rand(y.shape[0], device=y.device) * (self.hi - self.lo) + self.lo
        per, mse = self.loss_at(G, y, logs_)
        loss = per.mean()
        return loss, {"mse_y": mse.mean().detach(), "loss_g": loss.detach()}


def make_objective(cfg, process, precond: str = "none", corruption=None, channels: int = 3):
    """The trainer's objective; ``precond`` is the model's output parameterization (MMSE twins);
    ``corruption`` (a CorruptionConfig) describes the data of an ``ambient`` objective."""
    if cfg.kind == "rsd":
        from pnp_rgm.rsd import RSDObjective

        return RSDObjective(cfg, process, precond, corruption)
    if cfg.kind == "ambient" and corruption is not None and corruption.operator == "mask":
        return AmbientMaskObjective(cfg, process, precond, channels)
    if cfg.kind == "ambient" and corruption is not None and is_spectral(corruption.operator):
        return AmbientSpectralObjective(cfg, process, precond, corruption)
    if cfg.kind == "ambient":
        return AmbientNoiseObjective(cfg, process, precond, corruption.sigma_n if corruption is not None else 0.0)
    return MMSEObjective(cfg, process, precond) if cfg.kind == "mmse" else RGMObjective(cfg, process)
