"""Distortion metrics and the 8-bit rounding every success claim is checked on.

All images are float tensors in [0, 1] with shape (N, 3, H, W); every metric returns one value per
sample, shape (N,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def quantize(x: Tensor) -> Tensor:
    """Round to the 8-bit grid exactly as a PNG save does: clamp to [0,1], x*255, round half to even."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0  # (N, 3, H, W)


def quantize_ste(x: Tensor) -> Tensor:
    """8-bit rounding in the forward pass, identity in the backward pass (straight-through estimator).

    Why: evaluating the model at the rounded image makes the logits of each gradient pass the logits of the
    image as it would be saved, so the success check costs no extra forward pass.
    """
    return x + (quantize(x) - x).detach()


def rms(x_adv: Tensor, x: Tensor) -> Tensor:
    """Robinson & Graham eq. 3: sqrt(sum_i (x'_i - x_i)^2 / n), pixel values in [0, 1].

    n counts every channel value (3*H*W), not just pixel positions, so the number is the root-mean-square change
    of one stored 8-bit value, divided by 255. The paper's cap of 0.01 is about 2.5 grey levels RMS.
    """
    d = (x_adv - x).flatten(1)  # (N, 3*H*W)
    return d.pow(2).mean(dim=1).sqrt()


def linf(x_adv: Tensor, x: Tensor) -> Tensor:
    """Largest absolute change of any channel value, in [0, 1] units."""
    return (x_adv - x).flatten(1).abs().amax(dim=1)


def l2(x_adv: Tensor, x: Tensor) -> Tensor:
    """Euclidean norm of the change over all channel values, in [0, 1] units."""
    return (x_adv - x).flatten(1).norm(dim=1)


def psnr(x_adv: Tensor, x: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB for peak 1.0; +inf for identical images."""
    mse = (x_adv - x).flatten(1).pow(2).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse)


def ssim(x_adv: Tensor, x: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean structural similarity (Wang et al. 2004) with a Gaussian window, per channel, then averaged.

    Matches scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5, data_range=1,
    use_sample_covariance=False)` to ~1e-5 (tests/test_metrics.py); scikit-image's default sample covariance
    differs by ~3e-4 on chelsea.
    """
    c1, c2 = 0.01**2, 0.03**2
    coords = torch.arange(window, dtype=x.dtype, device=x.device) - (window - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(x.shape[1], 1, window, window)  # (3, 1, w, w)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel, groups=x.shape[1])

    mu_x, mu_y = blur(x), blur(x_adv)
    sxx = blur(x * x) - mu_x**2
    syy = blur(x_adv * x_adv) - mu_y**2
    sxy = blur(x * x_adv) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    # Population (biased) variances and covariance: Gaussian-weighted means with no N/(N-1) correction.
    return (num / den).flatten(1).mean(dim=1)


def amplified_difference(x_adv: Tensor, x: Tensor, gain: float = 10.0) -> Tensor:
    """Figure 1 of the paper: (x' - x) * gain around mid-grey, clamped to [0, 1]. Shape (N, 3, H, W)."""
    return (0.5 + gain * (x_adv - x)).clamp(0.0, 1.0)
