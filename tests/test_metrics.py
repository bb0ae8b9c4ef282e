"""Tests for pnp_rgm.metrics (PSNR, SSIM, optional LPIPS)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from skimage.metrics import structural_similarity

from pnp_rgm import metrics
from pnp_rgm.errors import PnpRgmError, ShapeError
from pnp_rgm.metrics import MetricUnavailable, lpips, lpips_available, psnr, ssim

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return skimage.data.astronaut()[:96, :80].astype(np.float64) / 255.0


@pytest.fixture(scope="module")
def gray() -> np.ndarray:
    return skimage.data.camera()[:96, :80].astype(np.float64) / 255.0


def _noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return np.clip(img + np.random.default_rng(seed).normal(0, sigma, img.shape), 0, 1)


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


# ------------------------------------------------------------------------------------------
# PSNR
# ------------------------------------------------------------------------------------------


def test_psnr_constant_offset_is_20_db(rgb, gray):
    assert psnr(rgb, rgb + 0.1) == pytest.approx(20.0, abs=1e-9)
    assert psnr(gray, gray - 0.1) == pytest.approx(20.0, abs=1e-9)
    assert psnr(rgb, rgb + 0.01) == pytest.approx(40.0, abs=1e-9)
    assert psnr(rgb * 255, (rgb + 0.1) * 255, data_range=255) == pytest.approx(20.0, abs=1e-9)


def test_psnr_identical_is_inf(rgb):
    value = psnr(rgb, rgb.copy())
    assert isinstance(value, float) and math.isinf(value) and value > 0


def test_psnr_matches_formula(gray):
    noisy = _noisy(gray, 0.05)
    mse = np.mean((gray - noisy) ** 2)
    assert psnr(gray, noisy) == pytest.approx(10 * np.log10(1.0 / mse), rel=1e-12)


def test_psnr_numpy_and_torch_agree(rgb):
    noisy = _noisy(rgb, 0.03)
    expected = psnr(rgb, noisy)
    assert psnr(_chw(rgb), _chw(noisy)) == pytest.approx(expected, rel=1e-12)
    assert psnr(_chw(rgb).float(), _chw(noisy).float()) == pytest.approx(expected, rel=1e-5)
    assert psnr(rgb, _chw(noisy)) == pytest.approx(expected, rel=1e-12)  # mixed inputs
    grad = _chw(rgb).clone().requires_grad_(True)
    assert psnr(grad, _chw(noisy)) == pytest.approx(expected, rel=1e-12)


def test_psnr_gray_layouts_agree(gray):
    noisy = _noisy(gray, 0.05)
    a = psnr(gray, noisy)
    assert psnr(gray[:, :, None], noisy[:, :, None]) == pytest.approx(a)
    assert psnr(torch.from_numpy(gray)[None], torch.from_numpy(noisy)[None]) == pytest.approx(a)


def test_psnr_batch(rgb):
    x = torch.stack([_chw(rgb), _chw(rgb), _chw(rgb)])
    y = torch.stack([_chw(rgb + 0.1), _chw(_noisy(rgb, 0.05)), _chw(rgb)])
    values = psnr(x, y)
    assert isinstance(values, np.ndarray) and values.shape == (3,)
    assert values[0] == pytest.approx(20.0, abs=1e-9)
    assert values[1] == pytest.approx(psnr(rgb, _noisy(rgb, 0.05)))
    assert math.isinf(values[2])
    single = psnr(x[:1], y[:1])
    assert isinstance(single, np.ndarray) and single.shape == (1,)


def test_psnr_border(rgb):
    damaged = rgb.copy()
    damaged[:3] = 0.0
    damaged[:, -2:] = 1.0
    assert math.isfinite(psnr(rgb, damaged))
    assert math.isfinite(psnr(rgb, damaged, border=2))
    assert math.isinf(psnr(rgb, damaged, border=3))
    inner = psnr(rgb[4:-4, 4:-4], _noisy(rgb, 0.05)[4:-4, 4:-4])
    assert psnr(rgb, _noisy(rgb, 0.05), border=4) == pytest.approx(inner)


# ------------------------------------------------------------------------------------------
# SSIM
# ------------------------------------------------------------------------------------------


def test_ssim_identical_is_one(rgb, gray):
    assert ssim(rgb, rgb) == pytest.approx(1.0, abs=1e-12)
    assert ssim(gray, gray) == pytest.approx(1.0, abs=1e-12)
    assert isinstance(ssim(gray, gray), float)


def test_ssim_uses_wang_settings(rgb, gray):
    noisy = _noisy(gray, 0.1)
    expected = structural_similarity(
        gray, noisy, data_range=1.0, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False,
    )
    assert ssim(gray, noisy) == pytest.approx(expected, rel=1e-12)
    assert 0.0 < ssim(gray, noisy) < 0.9
    noisy_rgb = _noisy(rgb, 0.1)
    expected_rgb = np.mean([
        structural_similarity(rgb[..., c], noisy_rgb[..., c], data_range=1.0,
                              gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        for c in range(3)
    ])
    assert ssim(rgb, noisy_rgb) == pytest.approx(expected_rgb, rel=1e-9)


def test_ssim_symmetric_and_torch(rgb):
    noisy = _noisy(rgb, 0.05)
    assert ssim(rgb, noisy) == pytest.approx(ssim(noisy, rgb), rel=1e-12)
    assert ssim(_chw(rgb), _chw(noisy)) == pytest.approx(ssim(rgb, noisy), rel=1e-12)


def test_ssim_batch_and_border(rgb):
    noisy = _noisy(rgb, 0.05)
    x = torch.stack([_chw(rgb), _chw(rgb)])
    y = torch.stack([_chw(rgb), _chw(noisy)])
    values = ssim(x, y, border=4)
    assert isinstance(values, np.ndarray) and values.shape == (2,)
    assert values[0] == pytest.approx(1.0)
    assert values[1] == pytest.approx(ssim(rgb[4:-4, 4:-4], noisy[4:-4, 4:-4]), rel=1e-12)


def test_ssim_too_small_is_a_shape_error(gray):
    with pytest.raises(ShapeError, match="11x11"):
        ssim(gray[:10, :10], gray[:10, :10])
    with pytest.raises(ShapeError, match="11x11"):
        ssim(gray[:20, :20], gray[:20, :20], border=5)


# ------------------------------------------------------------------------------------------
# input errors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_shape_mismatch_names_both_shapes(metric, rgb):
    with pytest.raises(ShapeError) as excinfo:
        metric(rgb, rgb[:50])
    msg = str(excinfo.value)
    assert "(96, 80, 3)" in msg and "(50, 80, 3)" in msg and "\n" not in msg
    with pytest.raises(ShapeError):
        metric(rgb, rgb[..., 0])
    with pytest.raises(ShapeError):  # batched vs single
        metric(_chw(rgb)[None], _chw(rgb))


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_bad_arguments(metric, rgb):
    with pytest.raises(ShapeError, match="border"):
        metric(rgb, rgb, border=-1)
    with pytest.raises(ShapeError, match="border"):
        metric(rgb, rgb, border=1.5)
    with pytest.raises(ShapeError, match="border=40"):
        metric(rgb, rgb, border=40)
    with pytest.raises(PnpRgmError, match="data_range"):
        metric(rgb, rgb, data_range=0)
    with pytest.raises(ShapeError):
        metric(np.zeros((2, 16, 16, 3)), np.zeros((2, 16, 16, 3)))  # 4-D numpy is ambiguous
    with pytest.raises(ShapeError):
        metric([[0.0]], [[0.0]])


# ------------------------------------------------------------------------------------------
# LPIPS
# ------------------------------------------------------------------------------------------


def test_lpips_available_returns_a_tuple():
    result = lpips_available()
    assert isinstance(result, tuple) and len(result) == 2
    ok, reason = result
    assert isinstance(ok, bool) and isinstance(reason, str) and reason
    assert "\n" not in reason
    bad = lpips_available(net="resnet")
    assert bad[0] is False and "alex" in bad[1]


def test_metric_unavailable_is_a_runtime_error():
    assert issubclass(MetricUnavailable, RuntimeError)


def test_lpips_raises_metric_unavailable_without_package(monkeypatch, rgb):
    monkeypatch.setitem(sys.modules, "lpips", None)  # makes `import lpips` raise ImportError
    monkeypatch.setattr(metrics, "_models", {})
    with pytest.raises(MetricUnavailable) as excinfo:
        lpips(rgb, rgb)
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert "pip install 'pnp-rgm[lpips]'" in msg
    assert "AlexNet" in msg and "lpips" in msg
    ok, reason = lpips_available()
    assert ok is False and "pip install 'pnp-rgm[lpips]'" in reason


def test_lpips_download_failure_is_metric_unavailable(monkeypatch, rgb):
    class FakeLpips:
        @staticmethod
        def LPIPS(**kwargs):  # noqa: N802 - mimics the package
            raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(metrics, "_import_lpips", lambda: FakeLpips)
    monkeypatch.setattr(metrics, "_models", {})
    with pytest.raises(MetricUnavailable) as excinfo:
        lpips(rgb, rgb)
    msg = str(excinfo.value)
    assert "\n" not in msg and "AlexNet" in msg and "Name or service not known" in msg
    assert "checkpoints" in msg


def test_lpips_input_handling_with_a_stub_model(monkeypatch, rgb, gray):
    """Scaling to [-1, 1], gray -> 3 channels and batching, with a stand-in network."""
    seen = {}

    class Stub(torch.nn.Module):
        def forward(self, a, b):
            seen["a"], seen["b"] = a, b
            return ((a - b) ** 2).mean(dim=(1, 2, 3), keepdim=True)

    monkeypatch.setattr(metrics, "_models", {("alex", "cpu"): Stub()})
    value = lpips(rgb, rgb)
    assert value == 0.0 and isinstance(value, float)
    assert seen["a"].shape == (1, 3, 96, 80) and seen["a"].dtype == torch.float32
    assert seen["a"].min() >= -1.0 and seen["a"].max() <= 1.0 and seen["a"].min() < -0.5
    lpips(gray, gray)
    assert seen["a"].shape == (1, 3, 96, 80)
    x = torch.stack([_chw(rgb), _chw(rgb)])
    values = lpips(x, torch.stack([_chw(rgb), _chw(1 - rgb)]))
    assert isinstance(values, np.ndarray) and values.shape == (2,) and values[1] > 0
    with pytest.raises(ShapeError):
        lpips(rgb, rgb[:10])
    with pytest.raises(PnpRgmError, match="net"):
        lpips(rgb, rgb, net="resnet")


def test_lpips_real_values(rgb):
    ok, reason = lpips_available()
    if not ok:
        pytest.skip(f"LPIPS not available here: {reason}")
    assert lpips(rgb, rgb) == pytest.approx(0.0, abs=1e-6)
    assert lpips(rgb, _noisy(rgb, 0.2)) > lpips(rgb, _noisy(rgb, 0.02)) > 0.0


def test_import_is_lazy_and_torchvision_shim_defines_schemas():
    """In a fresh interpreter: importing the module imports neither lpips nor torchvision, and
    the shim defines torchvision::nms/qnms schemas (idempotently) so that torchvision's
    import-time fake-kernel registration would succeed."""
    code = textwrap.dedent(
        """
        import importlib.util, sys
        import torch
        import pnp_rgm.metrics as m
        assert "lpips" not in sys.modules and "torchvision" not in sys.modules
        if importlib.util.find_spec("torchvision") is None:
            first = m._define_missing_torchvision_ops()
            assert first == ["nms", "qnms"], first
            assert m._define_missing_torchvision_ops() == []
            torch.library.register_fake("torchvision::nms")(lambda d, s, t: d.new_empty(0))
        print("ok")
        """
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("ok")
