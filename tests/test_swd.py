"""LP-SWD (the offline distribution distance of the RSD experiments) and the ODE sampler of
noise-level-conditioned denoisers."""
from __future__ import annotations

import math

import pytest
import torch

from pnp_rgm.errors import ShapeError
from pnp_rgm.swd import laplacian_pyramid, laplacian_swd, patch_descriptors


def _crops(n, seed, size=32, image="astronaut"):
    import skimage.data

    img = torch.tensor(getattr(skimage.data, image)() / 255.0, dtype=torch.float32).permute(2, 0, 1)
    g = torch.Generator().manual_seed(seed)
    ys = torch.randint(0, img.shape[1] - size, (n,), generator=g)
    xs = torch.randint(0, img.shape[2] - size, (n,), generator=g)
    return torch.stack([img[:, y:y + size, x:x + size] for y, x in zip(ys.tolist(), xs.tolist())])


def test_pyramid_levels_and_exact_reconstruction():
    x = torch.rand(2, 3, 64, 64)
    lv = laplacian_pyramid(x, min_size=16)
    assert [t.shape[-1] for t in lv] == [64, 32, 16]
    # collapse: each band plus the upsampled coarser level gives the finer one back
    from pnp_rgm.swd import _blur

    rec = lv[-1]
    for band in reversed(lv[:-1]):
        up = torch.zeros_like(band)
        up[..., ::2, ::2] = rec
        rec = band + 4 * _blur(up)
    assert torch.allclose(rec, x, atol=1e-5)


def test_descriptors_are_normalised_per_channel():
    d = patch_descriptors(torch.rand(4, 3, 20, 20) * 5 + 2, per_image=16)
    assert d.shape == (64, 3 * 49)
    per_c = d.reshape(64, 49, 3)
    assert torch.allclose(per_c.mean(dim=(0, 1)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(per_c.std(dim=(0, 1)), torch.ones(3), atol=1e-4)


def test_swd_ranks_same_distribution_closest():
    a, b = _crops(48, 0), _crops(48, 1)
    same = laplacian_swd(a, b, patches_per_image=32, min_size=8, n_dirs=128)
    noisy = laplacian_swd(a, (b + 0.2 * torch.randn_like(b)).clamp(0, 1), patches_per_image=32, min_size=8, n_dirs=128)
    cat = laplacian_swd(a, _crops(48, 2, image="chelsea"), patches_per_image=32, min_size=8, n_dirs=128)
    assert set(same["levels"]) == {32, 16, 8}
    assert same["avg"] < 0.5 * noisy["avg"] and same["avg"] < 0.7 * cat["avg"]
    assert noisy["levels"][32] > 2 * same["levels"][32]  # noise shows in the finest band
    assert laplacian_swd(a, b, patches_per_image=32, min_size=8, n_dirs=128) == same  # seeded


def test_swd_shape_errors():
    with pytest.raises(ShapeError, match="same C, H, W"):
        laplacian_swd(torch.rand(2, 3, 16, 16), torch.rand(2, 1, 16, 16))
    with pytest.raises(ShapeError, match=">= 7"):
        laplacian_swd(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16), min_size=4)


class _Shrink(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a
        self.p = torch.nn.Parameter(torch.zeros(()))  # sample_ode reads the device from parameters

    def forward(self, x, logs, z):
        return self.a / (self.a + torch.exp(2 * logs)).view(-1, 1, 1, 1) * x


def test_ode_sampler_with_the_exact_gaussian_denoiser():
    """Data N(0, s²) (network units): the exact probability-flow ODE ends at N(0, s² + σ_min²) and
    the final denoiser call scales by s²/(s² + σ_min²)."""
    from pnp_rgm.sampling import sample_ode

    s, s_min = 0.3, 0.2  # network units; sample_ode takes [0, 1] units
    out = sample_ode(_Shrink(s * s), 64, 16, 1, sigma_max=2.0, sigma_min=s_min / 2, steps=24, seed=0)
    got = float((2 * out - 1).std())
    want = s * s / math.sqrt(s * s + s_min * s_min)
    assert got == pytest.approx(want, rel=0.03)
    assert torch.equal(out, sample_ode(_Shrink(s * s), 64, 16, 1, sigma_max=2.0, sigma_min=s_min / 2, steps=24, seed=0))


class _RecordMasks(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(()))
        self.masks = []

    def forward(self, x, logs, z, mask=None):
        self.masks.append(mask.clone())
        assert torch.equal(x * mask, x)  # the hidden pixels are not shown
        return 0.5 * x


@pytest.mark.parametrize("fixed", [True, False])
def test_ode_sampler_masks_for_masked_data_teachers(fixed):
    from pnp_rgm.sampling import sample_ode

    G = _RecordMasks()
    sample_ode(G, 4, 16, 3, sigma_max=1.0, sigma_min=0.01, steps=5, seed=0, mask_known=0.3, fixed_mask=fixed)
    assert len(G.masks) == 2 * 5 - 1  # two per Heun step, one last call
    kept = torch.stack(G.masks).mean()
    assert 0.2 < float(kept) < 0.4
    same = all(torch.equal(m, G.masks[0]) for m in G.masks)
    assert same == fixed  # one mask per trajectory (Ambient Diffusion's sampler) or a fresh one each call
