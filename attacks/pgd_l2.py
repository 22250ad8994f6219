"""PGD (L2): Madry et al. (2018), arXiv:1706.06083, in the L2 geometry.

Steps along the L2-normalised gradient, projection onto the L2 ball of radius eps (pixel values in [0,1],
norm over all 3*H*W values), random start uniform in the ball. Only `direction` and `project` differ from L-inf.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attacks.base import GradientAttack, Param


def _per_sample_norm(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)  # (N, 1, 1, 1)


class PGDL2(GradientAttack):
    name = "pgd_l2"
    title = "PGD L2 (Madry et al. 2018)"
    summary = "Normalised gradient steps from a random start, projected onto an L2 ball."
    params = (
        Param("eps", 1.0, 0.001, 500.0, "Radius of the L2 ball (pixel values in [0,1]).", "L2"),
        Param("step_size", 0.2, 0.0001, 100.0, "L2 length of each step.", "L2"),
        Param("steps", 20, 1, 10000, "Number of steps.", integer=True),
        Param(
            "random_start", 1, 0, 1, "1: start at a uniform random point of the ball; 0: at the image.", integer=True
        ),
    )

    def step_size_px(self) -> float:
        return self.hparams["step_size"]

    def start(self, x0: Tensor, generators: list[torch.Generator]) -> Tensor:
        if not self.hparams["random_start"]:
            return x0.clone()
        d = x0[0].numel()
        # Uniform in the ball: Gaussian direction, radius ~ eps * U^(1/d); each sample from its own generator.
        g = torch.stack([torch.randn(x0.shape[1:], generator=gen) for gen in generators])  # (N, 3, H, W)
        u = torch.cat([torch.rand(1, generator=gen) for gen in generators])  # (N,)
        radius = u.pow(1.0 / d).view(-1, 1, 1, 1) * self.hparams["eps"]
        delta = (g / _per_sample_norm(g) * radius).to(x0.device)
        return (x0 + delta).clamp(0.0, 1.0)

    def direction(self, grad: Tensor, state: dict[str, Tensor]) -> Tensor:
        return grad / _per_sample_norm(grad)

    def project(self, x: Tensor, x0: Tensor) -> Tensor:
        delta = x - x0
        factor = (self.hparams["eps"] / _per_sample_norm(delta)).clamp(max=1.0)
        return (x0 + delta * factor).clamp(0.0, 1.0)
