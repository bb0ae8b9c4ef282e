"""The RGM run configuration: one frozen dataclass per concern, loaded from YAML.

``RunConfig`` = ``model`` + ``process`` + ``objective`` + ``optim`` + ``data`` + ``train``.
Load with ``load_run_config(path_or_dict)``; every shipped config lives in ``pnp_rgm/configs``.
Units: noise levels are in the network's [-1, 1] image scale unless a field says otherwise.
"""
from __future__ import annotations

import math

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from pnp_rgm.config import load_config
from pnp_rgm.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
MAX_CROP = 4096  # data.crop above this cannot fit a batch in any machine's memory, let alone its activations


def _pos(name: str, v: float | int) -> None:
    if not v > 0:
        raise ConfigError(f"{name}: must be > 0, got {v!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Generator (and discriminator) architecture.

    kind: ``rgm`` = G(x_k, z, k) (step-conditioned, latent z through a mapping network into
    adaptive group norm); ``mmse`` = the MMSE twin D(x, sigma) (noise-level conditioned, no z)."""

    kind: Literal["rgm", "mmse"] = "rgm"
    channels: int = 3
    base_width: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    stem_stride: int = 1  # 2 or 4: pixel-unshuffle stem, the U-Net runs at 1/stem resolution (fast on CPU)
    attention_levels: tuple[int, ...] = ()
    emb_dim: int = 128
    nz: int = 100  # latent size; 0 = no z (the "no z" ablation)
    w_dim: int = 128
    mapping_layers: int = 3
    groups: int = 8
    dropout: float = 0.0
    disc_width: int = 32
    disc_mult: tuple[int, ...] = (1, 2, 4, 4)
    # MMSE twin output: "none" = the network's output is x0_hat; "edm" = Karras et al.'s
    # preconditioning x0_hat = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x) (near-identity at small σ).
    # An RGM generator with "edm" is noise-level conditioned like the twin: it restores the
    # rescaled state x_k / a_k = x0 + (σ_k / a_k) ε, conditioned on log(σ_k / a_k), plus z, so it
    # can start from a twin's weights (train.init_from) as that twin's function
    precond: Literal["none", "edm"] = "none"
    # one more input channel holding a pixel mask (1 = known): the ambient-mask teacher sees
    # which pixels its masked input has; called without a mask, every pixel counts as known
    mask_channel: bool = False

    def __post_init__(self) -> None:
        if self.mask_channel and self.kind != "mmse":
            raise ConfigError("mask_channel: only noise-level-conditioned denoisers (model.kind: mmse) take a mask")
        if self.precond not in ("none", "edm"):
            raise ConfigError(f"precond: must be 'none' or 'edm', got {self.precond!r}")
        if self.channels not in (1, 3):
            raise ConfigError(f"channels: must be 1 or 3, got {self.channels}")
        for n in ("base_width", "emb_dim", "w_dim", "groups", "disc_width"):
            _pos(n, getattr(self, n))
        if not self.channel_mult or any(m <= 0 for m in self.channel_mult):
            raise ConfigError(f"channel_mult: must be a non-empty list of positive ints, got {list(self.channel_mult)}")
        if not self.disc_mult or any(m <= 0 for m in self.disc_mult):
            raise ConfigError(f"disc_mult: must be a non-empty list of positive ints, got {list(self.disc_mult)}")
        if self.stem_stride not in (1, 2, 4):
            raise ConfigError(f"stem_stride: must be 1, 2 or 4, got {self.stem_stride}")
        if self.num_res_blocks < 1:
            raise ConfigError(f"num_res_blocks: must be >= 1, got {self.num_res_blocks}")
        if self.nz < 0 or self.mapping_layers < 1:
            raise ConfigError(f"nz/mapping_layers: nz must be >= 0 and mapping_layers >= 1, got {self.nz}/{self.mapping_layers}")
        for lvl in self.attention_levels:
            if not 0 <= lvl < len(self.channel_mult):
                raise ConfigError(f"attention_levels: level {lvl} outside 0..{len(self.channel_mult) - 1}")
        for w in [self.base_width * m for m in self.channel_mult] + [self.disc_width * m for m in self.disc_mult]:
            if w % self.groups:
                raise ConfigError(f"groups: every width must be divisible by groups={self.groups}; {w} is not")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout: must be in [0, 1), got {self.dropout}")

    @property
    def multiple(self) -> int:
        """Spatial sizes the U-Net needs (inputs are padded to this and cropped back)."""
        return self.stem_stride * 2 ** (len(self.channel_mult) - 1)


@dataclass(frozen=True)
class ProcessConfig:
    """Forward (degradation) process.

    ``noise`` (RGM-D): variance-preserving, K steps, beta linear from beta_min to beta_max.
    ``geometric`` (RGM-D for plug-and-play): variance-preserving, K steps whose [0, 1]-unit noise
    levels sigma_k / (2 a_k) are geometric from level_min (step 1) to level_max (step K).
    ``multiscale`` (RGM-SR): ``alternate`` interleaves 2x2 block averaging (nearest-neighbour
    upsampled back) with VP noising steps; ``naive`` does both at every step."""

    kind: Literal["noise", "geometric", "multiscale"] = "noise"
    num_steps: int = 4
    beta_min: float = 0.1
    beta_max: float = 20.0
    level_min: float = 0.005  # geometric: [0, 1]-unit noise level of step 1
    level_max: float = 0.4  # geometric: of step K
    variant: Literal["alternate", "naive"] = "alternate"
    down_noise: float = 0.02  # std added at the pure block-averaging steps of "alternate"

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ConfigError(f"num_steps: must be >= 1, got {self.num_steps}")
        if self.beta_min < 0 or self.beta_max <= self.beta_min:
            raise ConfigError(f"beta_min/beta_max: need 0 <= beta_min < beta_max, got {self.beta_min}/{self.beta_max}")
        if self.kind == "multiscale" and self.variant == "alternate" and self.num_steps < 2:
            raise ConfigError(f"num_steps: the alternate multiscale process needs >= 2 steps, got {self.num_steps}")
        if self.down_noise <= 0:
            raise ConfigError(f"down_noise: must be > 0, got {self.down_noise}")
        if not 0 < self.level_min < self.level_max:
            raise ConfigError(f"level_min/level_max: need 0 < level_min < level_max, got {self.level_min}/{self.level_max}")


@dataclass(frozen=True)
class ObjectiveConfig:
    """Training objective.

    kind ``map`` (RGM): loss_G = lambda_fid * 1/2 |(x_k - a_k A_k x0_hat)/sigma_k|^2 (mean over
    elements) + lambda_prior * prior(x_{k-1}_hat, x_k). ``sampling``: ``prior`` = Algorithm 2
    (x_{k-1}_hat re-degraded from x0_hat), ``posterior`` = Algorithm 1 (from q(x_{k-1}|x_k, x0_hat),
    noise process only). kind ``mmse``: |G(x) - x0|^2 only; with ``continuous`` the noise level is
    log-uniform in [sigma_min, sigma_max] (in [0, 1] image units), else the process's K steps.

    Degraded inputs (``mmse`` + ``continuous``): the twin of a restoration process other than
    noising, a blind restorer the σ-schedule solver can start from ``A†y``.
    ``block_levels``: each sample is first 2^m x 2^m block-averaged (nearest-upsampled back), m
    drawn uniformly from this list: the multiscale (RGM-SR) process, for SR. ``gray_prob``: that
    fraction of the samples is replaced by its channel mean (decolorization), for colorization.
    Degraded samples draw their noise level from [max(sigma_min, degraded_sigma_min), sigma_max]:
    a degraded input is far from x0 even without noise, and the σ-preconditioned output could not
    reach x0 from it at tiny σ.

    kind ``ambient``: a denoiser trained on corrupted data only (see :class:`CorruptionConfig`);
    ``denoise`` corruption (y = x + σ_n n): inputs x_t = y + √(σ_t² − σ_n²) ε at σ_t log-uniform in
    [max(sigma_min, σ_n), sigma_max], and the loss ½|c D(x_t) + (1 − c) x_t − y|², c = 1 − σ_n²/σ_t²,
    whose minimizer D is the clean-data denoiser E[x | x_t] (Tweedie for x and for y).
    ``mask`` corruption (y = A x, A a per-image pixel mask; Ambient Diffusion, Daras et al. 2023):
    a further fraction ``further`` of the known pixels is hidden (Ã = B A), the network sees
    Ã(y + σ_t ε) and Ã, and is scored on every pixel A knows, so it must predict the pixels it
    was not shown: the minimizer is E[x | Ã x_t, Ã], a restorer of clean images from masked
    noisy ones (the model needs ``mask_channel: true``).
    ``deblur-*`` / ``srN`` corruption (y = A x + σ_n n; the spectral, Fourier-space variant,
    :mod:`pnp_rgm.spectral`): per component of A's SVD with data noise τ_i = σ_n/s_i, the input
    at level σ has it at noise ρ_i = max(σ, ``further_noise``·τ_i), scaled by σ/ρ_i, and the
    Tweedie-mixed target is unbiased for the clean restorer of that input.

    kind ``rsd`` (Restoration Score Distillation, :mod:`pnp_rgm.rsd`): a one-step generator
    distilled from ``teacher`` (a checkpoint folder of an ``ambient`` or ``mmse`` denoiser; its
    model and corruption replace this config's at run time) with a fake-score network trained on
    generated samples passed through the teacher's corruption. ``sigma_gen`` ([0, 1] units,
    default the teacher's sigma_max) is the level of the generator's pure-noise input. Data-free:
    ``--data`` is not read. lr_g is the generator's learning rate, lr_d the fake score's;
    ``fake_steps`` fake-score updates per generator update (DMD2's two time-scale rule: a fake score
    that lags behind the generator pushes it away from where it was, and it drifts).
    ``sigma_floor`` ([0, 1] units): the lowest level at which teacher and fake are compared;
    None = the teacher's own floor as a prior (``AMBIENT_FLOOR`` x sigma_n for an ambient-noise
    teacher, whose levels just above sigma_n are barely trained; 0 otherwise).

    ``loss`` (``mmse`` only): ``mse`` averages the squared error over the batch; ``log`` averages
    the log of each sample's mean squared error, the training counterpart of mean PSNR over images.
    Under ``mse`` a few large errors dominate and a blind colorizer paints every gray sky the
    average blue; under ``log`` a near-gray scene, whose gray image already scores high, costs as
    much per dB as a colourful one, so the twin learns to keep uncertain colours muted."""

    kind: Literal["map", "mmse", "ambient", "rsd"] = "map"
    prior: Literal["kld", "mmd", "dswd", "none"] = "kld"
    sampling: Literal["prior", "posterior"] = "prior"
    lambda_fid: float = 0.05
    lambda_prior: float = 1.0
    fidelity: bool = True
    use_z: bool = True
    feature_space: Literal["disc", "raw"] = "disc"
    r1_gamma: float = 0.05
    r1_every: int = 4
    mmd_bandwidths: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    dswd_projections: int = 64
    dswd_iters: int = 3
    dswd_lr: float = 0.1
    dswd_reg: float = 1.0
    continuous: bool = True
    sigma_min: float = 0.002
    sigma_max: float = 1.0
    block_levels: tuple[int, ...] = (0,)
    gray_prob: float = 0.0
    degraded_sigma_min: float = 0.02
    loss: Literal["mse", "log"] = "mse"
    teacher: Optional[str] = None
    sigma_gen: Optional[float] = None
    further: float = 0.1
    further_noise: float = 1.5
    fake_steps: int = 1
    sigma_floor: Optional[float] = None

    def __post_init__(self) -> None:
        if self.teacher is not None and self.kind != "rsd":
            raise ConfigError(f"teacher: only the rsd objective has a teacher, got kind {self.kind!r}")
        if self.sigma_floor is not None and not 0 <= self.sigma_floor < self.sigma_max:
            raise ConfigError(f"sigma_floor: must be in [0, sigma_max), got {self.sigma_floor}")
        if self.fake_steps < 1:
            raise ConfigError(f"fake_steps: must be >= 1, got {self.fake_steps}")
        if not 0 < self.further < 1:
            raise ConfigError(f"further: the fraction of known pixels hidden again must be in (0, 1), got {self.further}")
        if not (self.further_noise > 1 and math.isfinite(self.further_noise)):
            raise ConfigError(f"further_noise: the factor on a component's data noise must be > 1, got {self.further_noise}")
        if self.sigma_gen is not None and not 0 < self.sigma_gen <= 10:
            raise ConfigError(f"sigma_gen: must be in (0, 10], got {self.sigma_gen}")
        if self.loss == "log" and self.kind != "mmse":
            raise ConfigError("loss: 'log' is for MMSE twins (kind: mmse); RGM objectives use their own terms")
        if not self.block_levels or any(not 0 <= int(m) <= 6 for m in self.block_levels):
            raise ConfigError(f"block_levels: need block-averaging levels in 0..6, got {list(self.block_levels)}")
        if not 0.0 <= self.gray_prob <= 1.0:
            raise ConfigError(f"gray_prob: must be in [0, 1], got {self.gray_prob}")
        if (any(self.block_levels) or self.gray_prob) and not (self.kind == "mmse" and self.continuous):
            raise ConfigError("block_levels/gray_prob: degraded inputs are for continuous MMSE twins "
                              "(kind: mmse, continuous: true)")
        if not 0 < self.degraded_sigma_min < self.sigma_max:
            raise ConfigError(f"degraded_sigma_min: need 0 < degraded_sigma_min < sigma_max, got {self.degraded_sigma_min}")
        for n in ("lambda_fid", "lambda_prior", "r1_gamma", "dswd_reg", "dswd_lr"):
            if getattr(self, n) < 0:
                raise ConfigError(f"{n}: must be >= 0, got {getattr(self, n)}")
        for n in ("r1_every", "dswd_projections"):
            _pos(n, getattr(self, n))
        if self.dswd_iters < 0:
            raise ConfigError(f"dswd_iters: must be >= 0, got {self.dswd_iters}")
        if not self.mmd_bandwidths or any(b <= 0 for b in self.mmd_bandwidths):
            raise ConfigError(f"mmd_bandwidths: must be positive, got {list(self.mmd_bandwidths)}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(f"sigma_min/sigma_max: need 0 < sigma_min < sigma_max, got {self.sigma_min}/{self.sigma_max}")
        if self.kind == "map" and not self.fidelity and self.prior == "none":
            raise ConfigError("fidelity/prior: with fidelity: false a prior other than 'none' is required")


@dataclass(frozen=True)
class OptimConfig:
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.9
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # 0 = off
    ema_decay: float = 0.999
    warmup_steps: int = 0
    decay: Literal["none", "cosine"] = "none"  # cosine: lr falls to decay_to·lr at train.steps
    decay_to: float = 0.0
    # the first d_pretrain steps update only the discriminator: a generator started from a trained
    # restorer (train.init_from) would otherwise follow an uninformed prior term (and the fidelity
    # term, whose minimizer is the identity) away from it; its warm-up and decay start afterwards
    d_pretrain: int = 0
    # discriminator updates per generator step (each on the step's real batch, with fresh fakes):
    # more keeps a discriminator that falls to chance informative
    d_steps: int = 1

    def lr_scale(self, step: int, total: int) -> float:
        """Multiplier of lr_g/lr_d at 0-based ``step`` of ``total``: linear warm-up, then optional cosine."""
        scale = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.decay == "cosine":
            t = min(1.0, max(0.0, (step - self.warmup_steps) / max(1, total - self.warmup_steps)))
            scale *= self.decay_to + (1.0 - self.decay_to) * 0.5 * (1.0 + math.cos(math.pi * t))
        return scale

    def __post_init__(self) -> None:
        if self.decay not in ("none", "cosine"):
            raise ConfigError(f"decay: must be 'none' or 'cosine', got {self.decay!r}")
        if not 0.0 <= self.decay_to <= 1.0:
            raise ConfigError(f"decay_to: must be in [0, 1], got {self.decay_to}")
        for n in ("lr_g", "lr_d"):
            _pos(n, getattr(self, n))
        for n in ("beta1", "beta2", "ema_decay"):
            if not 0 <= getattr(self, n) < 1:
                raise ConfigError(f"{n}: must be in [0, 1), got {getattr(self, n)}")
        if self.grad_clip < 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise ConfigError("grad_clip/weight_decay/warmup_steps: must be >= 0")
        if self.d_pretrain < 0:
            raise ConfigError(f"d_pretrain: must be >= 0 (discriminator-only steps), got {self.d_pretrain}")
        if self.d_steps < 1:
            raise ConfigError(f"d_steps: must be >= 1 (discriminator updates per generator step), got {self.d_steps}")


@dataclass(frozen=True)
class DataConfig:
    crop: int = 64
    batch_size: int = 16  # per process
    hflip: bool = True
    vflip: bool = False
    num_workers: int = 1
    cache: bool = False  # keep decoded images in RAM (uint8)
    # random zoom: each patch is cut from a window of crop/s pixels and resized to crop, s drawn
    # log-uniformly from [scale[0], scale[1]] (> 1 zooms in); [1, 1] = plain crops. Clean data only
    scale: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        _pos("crop", self.crop)
        if self.crop > MAX_CROP:
            raise ConfigError(f"crop: must be <= {MAX_CROP} pixels, got {self.crop}")
        _pos("batch_size", self.batch_size)
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(f"scale: must be [min, max] with 0 < min <= max, got {list(self.scale)}")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers: must be >= 0, got {self.num_workers}")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 10000
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    channels_last: bool = True
    log_every: int = 50
    sample_every: int = 1000
    ckpt_every: int = 1000
    sample_count: int = 16
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False
    name: Optional[str] = None
    init_from: Optional[str] = None  # prior folder or name: start G from its weights (matching tensors; a
    # 1-block-per-level U-Net into a deeper one as the same function, trainer._deepen)
    # wall-clock budget of this process's training in seconds (0 = none): the run stops after the first
    # step past it and saves as at its last step (for a lent machine's fixed time; steps stays the schedule)
    max_seconds: float = 0.0

    def __post_init__(self) -> None:
        for n in ("steps", "log_every", "sample_every", "ckpt_every", "sample_count"):
            _pos(n, getattr(self, n))
        if not self.max_seconds >= 0:
            raise ConfigError(f"max_seconds: must be >= 0 (0 = no time limit), got {self.max_seconds}")


@dataclass(frozen=True)
class CorruptionConfig:
    """How the training images are corrupted, for priors learned without clean data.

    ``operator``: ``none`` (clean data), ``denoise`` (y = x + σ_n·n, white Gaussian noise of std
    ``sigma_n`` in [0, 1] units), ``mask`` (y = A x, a per-image pixel mask; ``missing`` is the
    fraction of pixels removed when simulating), or a blur or block average plus noise,
    y = A x + σ_n·n: ``deblur-gauss`` (kernel std ``width``, odd ``size``), ``deblur-uniform``
    (``size``) or ``srN`` (N×N block average; the images on disk are 1/N of the clean size).
    ``rcond``: components of A with singular value <= rcond · max are taken as not passed
    (the spectral objective, :mod:`pnp_rgm.spectral`). Blurred images on disk are the clean
    size (the blur of their border pixels does not matter: training patches are read as valid
    convolutions). Masked data on disk: each image's mask is the
    file of the same relative path under ``DATA/masks/`` (white = known, as ``restore --mask``). The images under ``--data`` are taken as already corrupted; with
    ``simulate`` (the ``--corrupt`` flag of ``pnp-rgm train``) they are clean and each is corrupted
    once on loading, with noise fixed by ``seed`` and the image's index, so every epoch sees the
    same corrupted set, as a user without clean data would have it. Simulated noise is not clipped
    to [0, 1]; noisy files saved as 8-bit images are (and so no longer have zero-mean noise)."""

    operator: str = "none"
    sigma_n: float = 0.0
    missing: float = 0.0
    width: float = 0.0
    size: int = 0
    rcond: float = 1e-3
    simulate: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        from pnp_rgm.spectral import SPECTRAL_OPERATORS, is_spectral

        valid = ("none", "denoise", "mask") + SPECTRAL_OPERATORS
        if self.operator not in ("none", "denoise", "mask") and not is_spectral(self.operator):
            raise ConfigError(f"operator: must be one of {', '.join(valid)} (srN: N >= 2), got {self.operator!r}")
        if self.operator == "mask":
            if not 0 < self.missing < 1:
                raise ConfigError(f"missing: the mask corruption needs a fraction of missing pixels in (0, 1), got {self.missing}")
            if self.sigma_n:
                raise ConfigError(f"sigma_n: the mask corruption has no noise, got {self.sigma_n}")
        elif self.missing:
            raise ConfigError(f"missing: only the mask corruption removes pixels, got {self.missing} with {self.operator!r}")
        if self.operator == "denoise" and not 0 < self.sigma_n < 1:
            raise ConfigError(f"sigma_n: the denoise corruption needs 0 < sigma_n < 1, got {self.sigma_n}")
        if is_spectral(self.operator) and not 0 <= self.sigma_n < 1:
            raise ConfigError(f"sigma_n: the {self.operator} corruption needs 0 <= sigma_n < 1, got {self.sigma_n}")
        if self.operator.startswith("deblur-"):
            if self.size < 3 or self.size % 2 == 0:
                raise ConfigError(f"size: the {self.operator} corruption needs an odd kernel size >= 3, got {self.size}")
            if self.operator == "deblur-gauss" and not self.width > 0:
                raise ConfigError(f"width: the deblur-gauss corruption needs a kernel std > 0, got {self.width}")
        elif self.size or self.width:
            raise ConfigError(f"size/width: only deblur corruptions have a kernel, got size {self.size}, width {self.width} "
                              f"with {self.operator!r}")
        if not 0 < self.rcond < 1:
            raise ConfigError(f"rcond: must be in (0, 1), got {self.rcond}")
        if self.operator == "none" and (self.sigma_n or self.simulate):
            raise ConfigError("sigma_n/simulate: need a corruption operator (operator: denoise, mask, deblur-* or srN)")


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    process: ProcessConfig = field(default_factory=ProcessConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    corruption: CorruptionConfig = field(default_factory=CorruptionConfig)

    def __post_init__(self) -> None:
        if self.objective.kind in ("mmse", "ambient") and self.model.kind != "mmse":
            raise ConfigError(f"objective.kind: {self.objective.kind!r} needs model.kind: mmse")
        if self.objective.kind == "ambient":
            if self.corruption.operator == "none":
                raise ConfigError("objective.kind: 'ambient' learns from corrupted data: set corruption.operator")
            if not self.objective.continuous:
                raise ConfigError("objective.kind: 'ambient' needs objective.continuous: true")
            if (self.corruption.operator == "mask") != self.model.mask_channel:
                raise ConfigError("model.mask_channel: must be true exactly when the ambient corruption is 'mask'")
            if self.objective.sigma_max <= self.corruption.sigma_n:
                raise ConfigError(f"objective.sigma_max: must exceed corruption.sigma_n ({self.corruption.sigma_n}), "
                                  f"got {self.objective.sigma_max}")
            _check_spectral(self)
        if self.objective.kind == "map" and self.model.kind != "rgm":
            raise ConfigError("model.kind: 'mmse' needs objective.kind: mmse")
        if self.objective.sampling == "posterior" and self.process.kind == "multiscale":
            raise ConfigError("objective.sampling: 'posterior' (Algorithm 1) needs a noise process (noise or geometric)")
        levels = _ms_levels(self.process) if self.process.kind == "multiscale" else 0  # block averaging
        mult = max(self.model.multiple, 2 ** max(levels, *self.objective.block_levels))
        if self.data.crop % mult:
            raise ConfigError(f"data.crop: must be a multiple of {mult} for this model/process, got {self.data.crop}")
        if tuple(self.data.scale) != (1.0, 1.0) and self.corruption.operator != "none":
            raise ConfigError(f"data.scale: resizing would change corrupted ({self.corruption.operator}) data; "
                              f"use [1, 1] with a corruption, got {list(self.data.scale)}")


def _check_spectral(cfg: "RunConfig") -> None:
    """Patch sizes and levels of a spectral (blur / block average) ambient teacher."""
    from pnp_rgm.spectral import SpectralAmbient, is_spectral

    cor = cfg.corruption
    if not is_spectral(cor.operator):
        return
    sp = SpectralAmbient(cor, cfg.objective.further_noise)
    if sp.factor and cfg.data.crop % sp.factor:
        raise ConfigError(f"data.crop: must be a multiple of {sp.factor} for {cor.operator} data, got {cfg.data.crop}")
    if sp.data_size(cfg.data.crop) < 8:
        raise ConfigError(f"data.crop: {cfg.data.crop} leaves data patches of {sp.data_size(cfg.data.crop)} pixels for "
                          f"{cor.operator} (size {cor.size}); need at least 8")
    low = sp.sigma_floor
    if cfg.objective.sigma_max <= low:
        raise ConfigError(f"objective.sigma_max: must exceed further_noise x the data's least component noise, "
                          f"{low:.4g} ({cor.operator}, sigma_n {cor.sigma_n}), got {cfg.objective.sigma_max}")


def _ms_levels(p: ProcessConfig) -> int:
    return p.num_steps // 2 if p.variant == "alternate" else p.num_steps


def shipped_configs() -> list[str]:
    """Names of the configs shipped in ``pnp_rgm/configs`` (without .yaml)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_run_config(source) -> RunConfig:
    """Load a RunConfig from a YAML path, a dict, or the name of a shipped config."""
    if isinstance(source, str) and not source.endswith((".yaml", ".yml")) and "/" not in source:
        cand = CONFIG_DIR / f"{source}.yaml"
        if cand.is_file():
            source = cand
        elif not Path(source).exists():
            raise ConfigError(f"unknown config {source!r}; shipped configs: {', '.join(shipped_configs())}")
    return load_config(RunConfig, source)


#: keys a resumed run takes from the call instead of its saved config: train.steps (only when
#: given: ``--steps``), a wall-clock budget and where it runs; nothing that changes what is trained
RESUME_KEYS = ("train.steps", "train.max_seconds", "train.device", "data.num_workers")


def absolute_teacher(cfg: RunConfig) -> RunConfig:
    """``cfg`` with an ``objective.teacher`` given as a folder made absolute (so the run resumes and
    loads from any working directory); a bundled prior's name stays a name."""
    t = cfg.objective.teacher
    if not t or not Path(t).is_dir() or Path(t).is_absolute():
        return cfg
    from dataclasses import replace

    return replace(cfg, objective=replace(cfg.objective, teacher=str(Path(t).resolve())))


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resumed_config(given: RunConfig, saved: RunConfig, steps: Optional[int] = None,
                   where: str = "the saved run") -> RunConfig:
    """The config of a resumed run: ``saved`` with ``given``'s :data:`RESUME_KEYS` (train.steps only
    as ``steps``, when not None). Any other key of ``given`` that differs from ``saved`` is a
    ConfigError naming them. An rsd run's model, corruption and sigma_gen come from its teacher, so
    they are compared through the teacher's path only."""
    from dataclasses import replace

    from pnp_rgm.config import config_to_dict

    given, saved = absolute_teacher(given), absolute_teacher(saved)
    if given.objective.kind == "rsd" and saved.objective.kind == "rsd":
        obj = given.objective
        if obj.sigma_gen is None:
            obj = replace(obj, sigma_gen=saved.objective.sigma_gen)
        given = replace(given, model=saved.model, corruption=saved.corruption, objective=obj)
    a, b = _flat(config_to_dict(given)), _flat(config_to_dict(saved))
    diff = [k for k in b if k not in RESUME_KEYS and a.get(k) != b[k]]
    if diff:
        shown = ", ".join(f"{k} ({a.get(k)!r}; the run has {b[k]!r})" for k in diff[:4])
        more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
        raise ConfigError(f"--resume: the config differs from {where} in {shown}{more}; a resumed run keeps "
                          f"its config (only --steps, train.max_seconds, train.device and data.num_workers may "
                          f"change); start a new run in another --out to change it")
    train = replace(saved.train, max_seconds=given.train.max_seconds, device=given.train.device,
                    steps=saved.train.steps if steps is None else int(steps))
    return replace(saved, train=train, data=replace(saved.data, num_workers=given.data.num_workers))
