"""Learned priors for the solvers: RGM generators and their MMSE twins.

API (all tensors (B, C, H, W), images in [0, 1] unless stated)::

    from pnp_rgm.priors import load_prior, save_prior, Prior

    prior = load_prior("runs/celeba/checkpoint")      # a checkpoint folder, or a bundled name
    prior.kind            # "rgm" (G(x_k, z, k), MAP restorer) or "mmse" (sigma-conditioned twin)
    prior.generator.sigma_conditioned  # True for twins and RGM generators with EDM preconditioning
    prior.num_steps       # K of its forward process
    prior.channels        # 1 or 3
    prior.noise_levels()  # (K,) equivalent Gaussian noise std of each step, in [0, 1] units

    x_k = prior.degrade(x0, k)              # x0 in [0, 1] -> state x_k of the forward process
    x0_hat = prior.restore(x_k, k, z=None)  # state x_k -> restored image in [0, 1]
    x_hat = prior.denoise(x, sigma)         # x = clean + N(0, sigma^2), sigma in [0, 1] units
    imgs = prior.sample(n, size=64, seed=0) # Algorithm 3: n images from pure noise
    prior.one_step        # an RSD generator (objective rsd): sample() is one call G(σ_g z)

* **States** ``x_k`` live in the network's [-1, 1] space: ``x_k = a_k A_k (2 x0 - 1) + sigma_k n``
  (``A_k`` = block averaging for multiscale priors, identity for noise priors). Produce them with
  :meth:`Prior.degrade` or by the same formula with ``prior.process.a`` / ``.sigma``.
  ``k`` is an int in 1..K or a (B,) LongTensor.
* **z**: ``None`` = the zero latent (deterministic, mode seeking), ``"random"`` = a fresh
  N(0, I) per image, or a (B, nz) tensor. MMSE priors ignore z.
* **denoise** maps the noise level onto the process: noise-level conditioned networks (MMSE
  twins, and RGM generators with EDM preconditioning, ``model.precond: edm``) are called directly
  with sigma (and z); a step-conditioned RGM prior uses the first step whose level
  sigma_k / (2 a_k) >= sigma, adds the missing noise (so the input matches that step's
  distribution exactly) and restores. Noise
  above the last step's level is treated as the last step. Only noise-process priors can
  denoise (multiscale ones raise ``PnpRgmError``). RGM-D with the DDGAN schedule (K = 4) has coarse levels
  (its smallest is ~0.48), so for plain denoising at small sigma use an MMSE twin or an RGM prior
  on the ``geometric`` process (levels where PnP works, config ``rgm-kld-d-pnp-cpu``). An ambient
  denoiser (learned from data with noise sigma_n) never saw less noise than sigma_n and learned
  little just above it: below ``prior.sigma_floor`` (``AMBIENT_FLOOR`` x sigma_n), noise is added
  up to the floor (so the input matches what it was trained on) and it denoises there; it knows
  no finer detail than its data had. An ambient-mask teacher never saw a whole image: each call
  shows it a fresh random mask with the known fraction it was trained on (``prior.mask_known``),
  as Ambient Diffusion samples. A blurred- or block-averaged-data (spectral ambient) teacher is
  shown its input as its data had it at that level (``prior.view``: per component of the blur,
  noise raised to what the data allowed and scaled back to σ; :mod:`pnp_rgm.spectral`); its floor
  is κ x its least noisy component's level.
* Any H, W: inputs are padded to the network's multiple and cropped back.
* Gradients flow through ``restore``/``denoise`` (no ``no_grad`` inside); wrap calls in
  ``torch.no_grad()`` when you don't need them. ``prior.to(device)`` moves the network.
"""
from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Optional, Union

import torch

from pnp_rgm.errors import CheckpointError, ConfigError, PnpRgmError, ShapeError, TaskError

__all__ = ["Prior", "load_prior", "save_prior", "available_priors", "prior_title"]

#: Lowest level an ambient-noise denoiser is used at, in units of its data's sigma_n. The ambient
#: target weighs level σ by c² = (1 − σ_n²/σ²)², zero at σ_n, so the levels just above σ_n are barely
#: trained (c = 0.31 at 1.2 σ_n). One call on 24 noisy 128² CBSD432 crops (training images, not a
#: test set) with the 3000-step ambient-noise-cpu teacher, floor 1.0 / 1.2 / 1.41 / 1.7 / 2.0 x σ_n:
#: 22.85 / 23.77 / 23.63 / 23.45 / 23.27 dB at test noise 0.1 (examples/denoise_eval.py --floors,
#: see examples/run_rsd_experiments.sh).
AMBIENT_FLOOR = 1.2

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"


def _pretrained_dirs() -> list[Path]:
    dirs = []
    try:
        import pnp_rgm.pretrained as _p

        dirs.append(Path(_p.__file__).resolve().parent)
    except Exception:
        pass
    if PRETRAINED_DIR.is_dir():
        dirs.append(PRETRAINED_DIR)
    return dirs


def available_priors() -> list[str]:
    """Names of the priors bundled in ``pnp_rgm.pretrained``."""
    names = set()
    for d in _pretrained_dirs():
        for sub in d.iterdir():
            if (sub / "model.safetensors").is_file() and (sub / "config.yaml").is_file():
                names.add(sub.name)
    return sorted(names)


def prior_title(name: str) -> str:
    """A bundled prior's one-line description: the title of its model card (after the name)."""
    card = _resolve(name) / "model_card.md"
    first = card.read_text(encoding="utf-8").splitlines()[0] if card.is_file() else ""
    return first.lstrip("# ").split(" — ", 1)[-1].strip() if first else ""


PRECISIONS = ("auto", "fp32", "bf16")


def check_precision(precision: str) -> None:
    """A one-line TaskError unless ``precision`` is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise TaskError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a CPU with AVX-512 BF16 or AMX (where bf16
    autocast ran the twin 2.3x faster than fp32); False elsewhere, including CUDA, where it has not
    been measured (ask for ``bf16`` explicitly there)."""
    if torch.device(device).type != "cpu":
        return False
    return any(getattr(torch.cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


class Prior:
    """A trained generator plus its forward process; see the module docstring for the API."""

    #: the generator's compute type: None = fp32, torch.bfloat16 = bf16 autocast (see set_precision)
    amp_dtype: Optional[torch.dtype] = None

    def __init__(self, generator: torch.nn.Module, run_config, path: Optional[Path] = None) -> None:
        from pnp_rgm.processes import make_process

        self.generator = generator.eval()
        self.config = run_config
        self.process = make_process(run_config.process)
        self.path = path
        self.kind = run_config.model.kind
        self.channels = run_config.model.channels
        self.nz = generator.nz
        obj = run_config.objective
        # an RSD generator: x = G(σ_g z, log σ_g) in one call; it samples but restores nothing
        self.one_step = obj.kind == "rsd"
        self.log_sigma_gen = math.log(2 * (obj.sigma_gen or 1.0)) if self.one_step else None
        # a masked-data (ambient-mask) teacher only ever saw inputs with this fraction of known pixels
        self.mask_known = None
        if obj.kind == "ambient" and run_config.corruption.operator == "mask":
            self.mask_known = (1 - run_config.corruption.missing) * (1 - obj.further)
        # a blurred / block-averaged-data (spectral ambient) teacher sees its input's available components
        from pnp_rgm.spectral import SpectralAmbient, is_spectral

        self.spectral = None
        self.sigma_floor = 0.0
        if obj.kind == "ambient" and is_spectral(run_config.corruption.operator):
            self.spectral = SpectralAmbient(run_config.corruption, obj.further_noise)
            self.sigma_floor = self.spectral.sigma_floor
        elif obj.kind == "ambient":  # never saw noise below its data's, and barely learned at it (AMBIENT_FLOOR)
            self.sigma_floor = AMBIENT_FLOOR * float(run_config.corruption.sigma_n)

    # ---- basics
    @property
    def num_steps(self) -> int:
        return self.process.K

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def to(self, device) -> "Prior":
        self.generator.to(device)
        return self

    def set_precision(self, precision: str = "auto") -> "Prior":
        """The generator's compute precision: ``fp32``, ``bf16`` (autocast, channels-last weights;
        inputs and outputs stay fp32), or ``auto`` = bf16 where the device has it natively
        (:func:`native_bf16`), else fp32. Call after :meth:`to`."""
        check_precision(precision)
        bf16 = precision == "bf16" or (precision == "auto" and native_bf16(self.device))
        self.amp_dtype = torch.bfloat16 if bf16 else None
        self.generator.to(memory_format=torch.channels_last if bf16 else torch.contiguous_format)
        return self

    def _compute(self):
        """The context the generator runs in: bf16 autocast when set, else plain fp32."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _run(self, call):
        """``call()`` in the compute precision. bf16 CPU kernels have returned NaN on some thin
        shapes (a 1- or 2-pixel-wide feature map in GroupNorm, seen on a 600×8 input under the
        ensemble's rotations), so a non-finite bf16 result is computed again in fp32."""
        with self._compute():
            out = call()
        if self.amp_dtype is not None and not bool(torch.isfinite(out).all()):
            out = call()
        return out

    def noise_levels(self) -> torch.Tensor:
        """(K,) sigma_k / (2 a_k): the [0, 1]-unit Gaussian noise level equivalent to each step."""
        return (self.process.noise_to_signal()[1:] / 2).float()

    def __repr__(self) -> str:
        src = f" from {self.path}" if self.path else ""
        return f"Prior(kind={self.kind}, K={self.num_steps}, channels={self.channels}{src})"

    def _check(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if not torch.is_tensor(x) or x.dim() != 4:
            raise ShapeError(f"{name}: expected a (B, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}")
        if x.shape[1] != self.channels:
            raise ShapeError(f"{name}: this prior has {self.channels} channel(s), got {x.shape[1]}")
        return x.to(self.device, torch.float32)

    def _k(self, k, b: int) -> torch.Tensor:
        if isinstance(k, int):
            if not 1 <= k <= self.num_steps:
                raise PnpRgmError(f"k: step must be in 1..{self.num_steps}, got {k}")
            return torch.full((b,), k, dtype=torch.long)
        kk = torch.as_tensor(k).to("cpu", torch.long).reshape(-1)
        if kk.numel() == 1:
            kk = kk.expand(b)
        if kk.numel() != b or int(kk.min()) < 1 or int(kk.max()) > self.num_steps:
            raise PnpRgmError(f"k: expected an int or {b} steps in 1..{self.num_steps}, got {kk.tolist()}")
        return kk

    def _z(self, z, b: int) -> Optional[torch.Tensor]:
        if self.nz == 0 or z is None:
            return None
        if isinstance(z, str):
            if z != "random":
                raise PnpRgmError(f"z: expected None, 'random' or a (B, {self.nz}) tensor, got {z!r}")
            return torch.randn(b, self.nz, device=self.device)
        if z.shape != (b, self.nz):
            raise ShapeError(f"z: expected shape ({b}, {self.nz}), got {tuple(z.shape)}")
        return z.to(self.device, torch.float32)

    def _restorer(self, what: str) -> None:
        if self.one_step:
            raise PnpRgmError(f"this prior is a one-step RSD generator, which samples but does not restore (asked to "
                              f"{what}); use its teacher ({self.config.objective.teacher}) as a restoration prior")

    # ---- API
    def degrade(self, x0: torch.Tensor, k, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Sample the step-k state x_k (network space) of clean images x0 in [0, 1]."""
        from pnp_rgm.sampling import to_net

        x0 = self._check(x0, "x0")
        if self.process.max_level and (x0.shape[-1] % self.process.multiple or x0.shape[-2] % self.process.multiple):
            raise ShapeError(f"x0: this multiscale prior needs H, W divisible by {self.process.multiple}, got {tuple(x0.shape[-2:])}")
        return self.process.degrade(to_net(x0), self._k(k, x0.shape[0]), generator=generator)

    def restore(self, x_k: torch.Tensor, k, z=None) -> torch.Tensor:
        """x0_hat in [0, 1] from a step-k state (network space). See module docstring for z."""
        from pnp_rgm.sampling import from_net, restore_step

        self._restorer("restore")
        x_k = self._check(x_k, "x_k")
        kk = self._k(k, x_k.shape[0])
        zz = self._z(z, x_k.shape[0])
        out = self._run(lambda: restore_step(self.generator, self.process, x_k, kk, zz))
        return from_net(out.float())

    def denoise(self, x: torch.Tensor, sigma, z=None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Denoise x = clean + N(0, sigma^2) (x and result in [0, 1] scale; sigma float or (B,))."""
        from pnp_rgm.sampling import from_net

        self._restorer("denoise")
        x = self._check(x, "x")
        b = x.shape[0]
        sig = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1).to(self.device)
        if sig.numel() == 1:
            sig = sig.expand(b)
        if sig.numel() != b or bool((sig < 0).any()):
            raise PnpRgmError(f"sigma: expected a non-negative float or {b} values, got {sigma}")
        xn = x * 2 - 1
        s2 = (2 * sig).clamp_min(1e-4)  # [-1, 1] units
        if self.sigma_floor > 0:  # below the data's noise: top the input up to it, then denoise there
            floor = torch.full_like(s2, 2 * self.sigma_floor)
            extra = (floor ** 2 - s2 ** 2).clamp_min(0).sqrt().view(-1, 1, 1, 1)
            xn = xn + extra * torch.randn(x.shape, device=self.device, generator=generator)
            s2 = torch.maximum(s2, floor)
        if self.generator.sigma_conditioned:  # a twin, or an RGM generator with EDM preconditioning: at σ itself
            known = None
            if self.mask_known is not None:  # a masked-data teacher: shown what it was trained on
                known = random_known(xn, self.mask_known, generator)
                xn = xn * known
            if self.spectral is not None:  # a blurred-data teacher: the input as its data showed it
                xn = self.view(xn, torch.log(s2), generator)
            zz = self._z(z, b)
            out = self._run(lambda: self.generator(xn, torch.log(s2), zz, mask=known))
            return from_net(out.float())
        if self.process.max_level:
            raise PnpRgmError(f"denoise: a multiscale prior ({self.process.name}) cannot denoise; use a noise-process or MMSE prior")
        levels = self.process.noise_to_signal()[1:].float().to(self.device)  # (K,)
        idx = torch.searchsorted(levels, s2).clamp_max(self.num_steps - 1)
        lvl = levels[idx]
        extra = (lvl ** 2 - s2 ** 2).clamp_min(0).sqrt().view(-1, 1, 1, 1)
        noise = torch.randn(x.shape, device=self.device, generator=generator)
        kk = (idx + 1).cpu()
        a = self.process.a[kk].float().to(self.device).view(-1, 1, 1, 1)
        x_k = a * (xn + extra * noise)
        return self.restore(x_k, kk, z)

    def view(self, x: torch.Tensor, log_sigma: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """A spectral ambient teacher's input for x = clean + σ ε (network units, per-sample log σ):
        x as its blurred data showed it at that level (:meth:`SpectralAmbient.view`); x itself for
        other priors."""
        return x if self.spectral is None else self.spectral.view(x, log_sigma, generator)

    def sample(self, n: int, size: Union[int, tuple[int, int]] = 64, seed: Optional[int] = None,
               batch_size: int = 16, progress: bool = False) -> torch.Tensor:
        """Algorithm 3: ``n`` images (n, C, H, W) in [0, 1] generated from pure noise (an ambient
        teacher: 18 Heun steps of the probability-flow ODE, :func:`pnp_rgm.sampling.sample_ode`)."""
        from pnp_rgm.sampling import sample

        if n < 1:
            raise PnpRgmError(f"n: must be >= 1, got {n}")
        if self.one_step:
            from pnp_rgm.sampling import sample_one_step

            return sample_one_step(self.generator, self.log_sigma_gen, n, size, self.channels, seed=seed,
                                   batch_size=batch_size, device=self.device, progress=progress)
        obj = self.config.objective
        if obj.kind == "ambient":  # a teacher of corrupted data: the probability-flow ODE down to its floor
            from pnp_rgm.sampling import sample_ode

            return sample_ode(self.generator, n, size, self.channels, sigma_max=obj.sigma_max,
                              sigma_min=max(obj.sigma_min, self.sigma_floor), seed=seed, batch_size=batch_size,
                              device=self.device, progress=progress, mask_known=self.mask_known,
                              view=None if self.spectral is None else self.view)
        posterior = self.config.objective.sampling == "posterior" or (self.kind == "mmse" and not self.process.max_level)
        return sample(self.generator, self.process, n, size, self.channels, seed=seed, batch_size=batch_size,
                      device=self.device, progress=progress, posterior=posterior)


def random_known(x: torch.Tensor, fraction: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A (B, 1, H, W) 0/1 mask keeping each pixel of ``x`` with probability ``fraction``."""
    u = torch.rand((x.shape[0], 1) + tuple(x.shape[-2:]), device=x.device, generator=generator)
    return (u < fraction).to(x.dtype)


def _resolve(path_or_name: Union[str, os.PathLike]) -> Path:
    p = Path(path_or_name)
    if p.is_dir():
        return p
    if isinstance(path_or_name, str) and "/" not in path_or_name and os.sep not in path_or_name:
        for d in _pretrained_dirs():
            if (d / path_or_name).is_dir():
                return d / path_or_name
    avail = available_priors()
    raise CheckpointError(f"{path_or_name}: no such checkpoint folder or bundled prior"
                          f" (bundled: {', '.join(avail) if avail else 'none'})")


def load_prior(path_or_name: Union[str, os.PathLike], device: Union[str, torch.device, None] = None) -> Prior:
    """Load a checkpoint folder (``model.safetensors`` + ``config.yaml``) or a bundled prior by
    name. Never unpickles anything. Raises CheckpointError on missing/inconsistent files."""
    from pnp_rgm.nets import Generator
    from pnp_rgm.train.checkpoint import load_state_dict
    from pnp_rgm.train.config import load_run_config

    folder = _resolve(path_or_name)
    cfg_p = folder / "config.yaml"
    if not cfg_p.is_file():
        raise CheckpointError(f"{folder}: missing config.yaml (a checkpoint folder needs model.safetensors and config.yaml)")
    try:
        cfg = load_run_config(cfg_p)
    except ConfigError as exc:
        msg = str(exc).removeprefix(f"{cfg_p}: ")  # the YAML reader names the file already
        raise CheckpointError(f"{cfg_p}: invalid config ({msg})") from None
    sd = load_state_dict(folder / "model.safetensors")
    G = Generator(cfg.model)
    missing, unexpected = set(G.state_dict()) - set(sd), set(sd) - set(G.state_dict())
    if missing or unexpected:
        some = sorted(missing)[:2] + sorted(unexpected)[:2]
        raise CheckpointError(f"{folder}/model.safetensors does not match config.yaml "
                              f"({len(missing)} missing, {len(unexpected)} unexpected tensors, e.g. {', '.join(some)})")
    try:
        G.load_state_dict(sd)
    except RuntimeError as exc:
        raise CheckpointError(f"{folder}/model.safetensors does not match config.yaml ({str(exc).splitlines()[-1].strip()[:160]})") from None
    G.requires_grad_(False)
    prior = Prior(G, cfg, folder)
    if device is not None:
        prior.to(device)
    return prior


def save_prior(prior_or_generator, path: Union[str, os.PathLike], run_config=None, card: Optional[str] = None,
               dtype: Optional[torch.dtype] = None) -> Path:
    """Write a checkpoint folder for a Prior (or a Generator plus its RunConfig), atomically.
    ``dtype`` (e.g. ``torch.float16``, to halve a bundled prior's size) casts the floating-point
    tensors on disk; loading casts them back to the model's float32."""
    from pnp_rgm.train.checkpoint import save_checkpoint

    if isinstance(prior_or_generator, Prior):
        G, run_config = prior_or_generator.generator, prior_or_generator.config
    else:
        G = prior_or_generator
        if run_config is None:
            raise PnpRgmError("save_prior: run_config is required when saving a bare generator")
    card = card or f"# pnp-rgm prior\n\nkind: {run_config.model.kind}\n\nLoad with `pnp_rgm.priors.load_prior(path)`.\n"
    sd = G.state_dict()
    if dtype is not None:
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    return save_checkpoint(path, sd, run_config, card)
