"""Distortion metrics against hand computations and scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attacks.metrics import amplified_difference, l2, linf, psnr, quantize, quantize_ste, rms, ssim


def test_rms_counts_every_channel_value() -> None:
    x = torch.zeros(1, 3, 4, 4)
    x_adv = x.clone()
    x_adv[0, 0, 0, 0] = 0.48  # one of 48 values changes
    assert rms(x_adv, x)[0].item() == pytest.approx(math.sqrt(0.48**2 / 48))
    assert linf(x_adv, x)[0].item() == pytest.approx(0.48)
    assert l2(x_adv, x)[0].item() == pytest.approx(0.48)


def test_rms_of_uniform_one_level_change_is_one_over_255() -> None:
    x = torch.full((2, 3, 8, 8), 100 / 255)
    assert torch.allclose(rms(x + 1 / 255, x), torch.full((2,), 1 / 255))


def test_psnr_matches_formula() -> None:
    x = torch.rand(1, 3, 8, 8)
    y = (x + 0.01).clamp(0, 1)
    mse = ((y - x) ** 2).mean()
    assert psnr(y, x)[0].item() == pytest.approx(float(10 * torch.log10(1 / mse)), rel=1e-5)


def test_ssim_matches_scikit_image() -> None:
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 48, 48, generator=g, dtype=torch.float64)
    y = (x + 0.05 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    ours = ssim(y, x)[0].item()
    ref = structural_similarity(
        x[0].permute(1, 2, 0).numpy(),
        y[0].permute(1, 2, 0).numpy(),
        channel_axis=2,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert ours == pytest.approx(ref, abs=1e-4)  # population covariance, as attacks/metrics.py says
    assert ssim(x, x)[0].item() == pytest.approx(1.0)


def test_quantize_is_png_rounding_and_ste_passes_gradient() -> None:
    x = torch.tensor([0.0, 0.5 / 255 + 1e-4, 1.2, -0.1, 128.4 / 255]).view(1, 1, 1, 5)
    q = quantize(x)
    assert torch.equal(q * 255, torch.tensor([0.0, 1.0, 255.0, 0.0, 128.0]).view(1, 1, 1, 5))
    xr = torch.rand(1, 3, 4, 4, requires_grad=True)
    (g,) = torch.autograd.grad(quantize_ste(xr).sum(), xr)
    assert torch.equal(g, torch.ones_like(xr))
    assert np.allclose(quantize_ste(xr).detach().numpy(), quantize(xr).detach().numpy())


def test_amplified_difference_is_mid_grey_when_equal() -> None:
    x = torch.rand(1, 3, 4, 4)
    assert torch.allclose(amplified_difference(x, x), torch.full_like(x, 0.5))
    assert amplified_difference(x + 0.01, x).mean().item() == pytest.approx(0.6, abs=1e-5)
