"""Restoration Score Distillation (RSD): a one-step generator distilled from a teacher that was
trained on corrupted data only (Denoising Score Distillation, Chen et al. 2025, and its
generalization to other corruptions).

Three networks, all denoisers ``D(v, log σ)`` except the generator:

* the **teacher** T, frozen: trained on corrupted data y = A x + σ_n n. It is valid only at noise
  levels σ in [lo, hi] of the corrupted domain (an ambient denoiser: σ ≥ σ_n).
* the **generator** G(z): one network call maps pure noise to a *clean* image x_g.
* the **fake score** F: trained, like the teacher and with the teacher's own loss, on the
  generated data passed through the known corruption, y_g = A x_g + σ_n n (for a masked-data
  teacher, A is a fresh random mask with the data's fraction of missing pixels, and both
  denoisers see A(x_g + σ ε) and A, so the score gap is taken on the pixels A keeps).

Per training step (network space)::

    fake:       x_g = G(z) (no grad);  y_g = corrupt(x_g);  F <- teacher's loss on y_g
    generator:  x_g = G(z);  y_g = corrupt(x_g);  y_t = level(y_g, σ)        # σ ~ log-U[lo, hi]
                g = (F(y_t) - T(y_t)) / mean|ref - T(y_t)|                  # DMD normalisation
                loss = ½ mean(‖y_g - sg(y_g - g)‖²)       # so ∂loss/∂y_g ∝ g, back through A into G

(F − T)/σ² = ∇log p_G,σ − ∇log p_T,σ: the gradient of KL(p_G,σ ‖ p_T,σ) between the two
*corrupted-domain* distributions, so no clean image and no teacher score below its valid
levels is ever needed; because the corruption is known and identifiable in distribution,
matching corrupted distributions matches the clean ones. ``ref`` is what the denoisers
predict for a noiseless input (x_g for an ambient teacher, which predicts clean images; y_g for
a teacher of the corrupted data itself). Module functions are shape-agnostic ((B, ...)
tensors), so the same code runs the linear-Gaussian check (vectors) and image priors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from pnp_rgm.priors import random_known

__all__ = ["CorruptedDomain", "distillation_loss", "one_step", "RSDObjective", "resolve_rsd_config"]


def _bshape(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.view((-1,) + (1,) * (like.dim() - 1))


@dataclass(frozen=True)
class CorruptedDomain:
    """The teacher's corruption and its valid noise levels, in network units.

    ``s_n``: std of the corruption's noise; ``lo``/``hi``: log σ range where the teacher was trained
    (σ is the *total* noise std of a level-σ input: an ambient teacher sees x + σ·noise);
    ``op``: the corruption's linear part A (None = identity); ``total``: levels count the
    corruption's own noise (ambient teachers) rather than noise added on top of y (teachers of
    the corrupted data itself)."""

    s_n: float
    lo: float
    hi: float
    op: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    total: bool = True

    def corrupt(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """y = A x + σ_n n (differentiable in x)."""
        y = self.op(x) if self.op is not None else x
        if self.s_n > 0:
            y = y + self.s_n * torch.randn(y.shape, device=y.device, dtype=y.dtype, generator=generator)
        return y

    def levels(self, b: int, device) -> torch.Tensor:
        """(b,) log σ drawn log-uniformly from [lo, hi]."""
        return torch.rand(b, device=device) * (self.hi - self.lo) + self.lo

    def noised(self, y: torch.Tensor, logs_: torch.Tensor) -> torch.Tensor:
        """The level-σ input from y: y + √(σ² − σ_n²) ε (``total``) or y + σ ε."""
        s2 = torch.exp(2 * logs_)
        extra = (s2 - self.s_n ** 2).clamp_min(0).sqrt() if self.total else s2.sqrt()
        return y + _bshape(extra, y) * torch.randn_like(y)


def distillation_loss(y: torch.Tensor, d_teacher: torch.Tensor, d_fake: torch.Tensor,
                      ref: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Surrogate loss whose gradient with respect to ``y`` (the corrupted generated sample, still
    attached to the generator) is the normalised score difference (F − T)/w / y.numel(), with
    w = per-sample mean |ref − T| (DMD's normalisation; ``ref`` defaults to ``y``)."""
    ref = y if ref is None else ref
    dims = tuple(range(1, y.dim()))
    w = (ref.detach() - d_teacher).abs().mean(dim=dims, keepdim=True).clamp_min(1e-6)
    g = ((d_fake - d_teacher) / w).detach()
    return 0.5 * (y - (y - g).detach()).pow(2).mean()


def one_step(G, z: torch.Tensor, log_sigma_gen: float) -> torch.Tensor:
    """x_g = G(σ_g z, log σ_g): the generator is a denoiser (the teacher's architecture, started
    from its weights) applied once to pure noise at its top level σ_g."""
    ls = torch.full((z.shape[0],), float(log_sigma_gen), device=z.device)
    return G(math.exp(log_sigma_gen) * z, ls, None)


def resolve_rsd_config(cfg):
    """An ``rsd`` RunConfig with the teacher's model and corruption filled in (the generator and
    the fake score are the teacher's architecture) and ``sigma_gen`` resolved; other kinds are
    returned unchanged."""
    if cfg.objective.kind != "rsd":
        return cfg
    from dataclasses import replace

    from pnp_rgm.errors import ConfigError
    from pnp_rgm.priors import _resolve
    from pnp_rgm.train.config import load_run_config

    if not cfg.objective.teacher:
        raise ConfigError("objective.teacher: the rsd objective distills a teacher; set it to the teacher's checkpoint "
                          "folder (--set objective.teacher=PATH)")
    tcfg = load_run_config(_resolve(cfg.objective.teacher) / "config.yaml")
    if tcfg.model.kind != "mmse" or tcfg.objective.kind not in ("mmse", "ambient") or not tcfg.objective.continuous:
        raise ConfigError(f"objective.teacher: needs a noise-level-conditioned denoiser (an MMSE twin or an ambient "
                          f"teacher), got model {tcfg.model.kind!r} with objective {tcfg.objective.kind!r}")
    if any(tcfg.objective.block_levels) or tcfg.objective.gray_prob:
        raise ConfigError("objective.teacher: a twin trained on degraded inputs is not a score model of its data")
    obj = replace(cfg.objective, sigma_gen=cfg.objective.sigma_gen or tcfg.objective.sigma_max)
    return replace(cfg, model=tcfg.model, corruption=tcfg.corruption, objective=obj)


class RSDObjective:
    """The ``rsd`` objective of the trainer (``cfg`` its ObjectiveConfig): the generator is G, the fake score is the trainer's
    second network (its "discriminator" slot, built by :meth:`build_critic`); the teacher is
    loaded frozen from ``objective.teacher``. Batches of data are not used (distillation is
    data free); only their shape and device are."""

    has_d = True

    def __init__(self, cfg, process, precond: str = "none", corruption=None) -> None:
        from pnp_rgm.objectives import make_objective
        from pnp_rgm.priors import load_prior

        self.cfg = cfg
        teacher = load_prior(cfg.teacher)
        self.teacher = teacher.generator
        tcfg = teacher.config
        self.teacher_objective = make_objective(tcfg.objective, process, tcfg.model.precond, tcfg.corruption,
                                                tcfg.model.channels)
        o = tcfg.objective
        # masked teachers: generated samples lose a random fraction `missing` of their pixels, and
        # both denoisers see A(x_g + σ ε) with A
        self.missing = tcfg.corruption.missing if tcfg.corruption.operator == "mask" else 0.0
        self.shown = teacher.mask_known  # the teacher's inputs kept this fraction (data mask, then further)
        s_n = 2 * tcfg.corruption.sigma_n if o.kind == "ambient" else 0.0
        floor = 2 * (teacher.sigma_floor if cfg.sigma_floor is None else cfg.sigma_floor)  # network units
        # blurred / block-averaged-data teachers: A is the data-patch operator, and both denoisers see
        # A x_g + σ_n n as the teacher saw its data (AmbientSpectralObjective.level_input)
        self.spectral = teacher.spectral
        op = None
        if self.spectral is not None:
            sp = self.spectral
            op = lambda x: sp.operator(tuple(x.shape[1:])).forward(x)  # noqa: E731
        self.domain = CorruptedDomain(s_n=s_n, lo=math.log(max(2 * o.sigma_min, s_n, floor)), hi=math.log(2 * o.sigma_max),
                                      op=op)
        self.log_sigma_gen = math.log(2 * (cfg.sigma_gen or o.sigma_max))

    def to(self, device) -> "RSDObjective":
        self.teacher.to(device)
        return self

    def build_critic(self) -> torch.nn.Module:
        """The fake-score network, started as a copy of the teacher."""
        import copy

        fake = copy.deepcopy(self.teacher).train()
        fake.requires_grad_(True)
        return fake

    def generate(self, G, like: torch.Tensor) -> torch.Tensor:
        z = torch.randn_like(like, dtype=torch.float32)
        return one_step(G, z, self.log_sigma_gen).float()

    def d_loss(self, G, F, x0: torch.Tensor, r1: bool = False) -> tuple[torch.Tensor, dict]:
        """Fake-score update: the teacher's own training loss on corrupted generated samples."""
        with torch.no_grad():
            y_g = self.domain.corrupt(self.generate(G, x0))
            if self.missing:
                known = random_known(y_g, 1 - self.missing)
                y_g = torch.cat([y_g * known, known], dim=1)  # the layout of masked training data
        loss, logs = self.teacher_objective.g_loss(F, None, y_g)
        return loss, {"loss_fake": logs["loss_g"]}

    def g_loss(self, G, F, x0: torch.Tensor) -> tuple[torch.Tensor, dict]:
        x_g = self.generate(G, x0)
        y_g = self.domain.corrupt(x_g)
        logs_ = self.domain.levels(x0.shape[0], x0.device)
        if self.spectral is not None:  # the score gap in the teacher's view u = a ⊙ x + σ noise
            v = self.teacher_objective.level_input(y_g, logs_)
            op, k, a = v["op"], v["op"].rank, v["a"]

            def scaled(img):  # image -> the view's clean part a ⊙ Vᵀ(img) (0 where A passes nothing)
                c = a * op.Vt(img.float())[:, :k]
                return op.V_head(c)

            with torch.no_grad():  # ∇_u log p(u) = (a ⊙ D(u) − u)/σ², so the gap is a ⊙ (D_F − D_T)
                d_t, d_f = scaled(self.teacher(v["inp"], logs_, None)), scaled(F(v["inp"], logs_, None))
                ref = scaled(x_g.detach())
            loss = distillation_loss(v["inp"], d_t, d_f, ref=ref)
            return loss, {"loss_g": loss.detach(), "score_gap": (d_f - d_t).pow(2).mean().detach()}
        y_t = self.domain.noised(y_g, logs_)
        known, ref = None, x_g
        if self.missing:  # only the shown pixels of A(x_g + σ ε) carry a score; as many as the teacher saw
            known = random_known(y_g, self.shown)
            y_t, y_g, ref = known * y_t, known * y_g, known * x_g
        with torch.no_grad():
            d_t = self.teacher(y_t, logs_, None, mask=known).float()
            d_f = F(y_t, logs_, None, mask=known).float()
        if known is not None:
            d_t, d_f = known * d_t, known * d_f
        loss = distillation_loss(y_g, d_t, d_f, ref=ref)
        return loss, {"loss_g": loss.detach(), "score_gap": (d_f - d_t).pow(2).mean().detach()}
