"""PGD (L-inf): Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks" (ICLR 2018).

arXiv:1706.06083. BIM from a uniformly random start inside the L-inf ball of radius eps.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attacks.base import Param
from attacks.bim import LinfIterative


class PGD(LinfIterative):
    name = "pgd"
    title = "PGD L-inf (Madry et al. 2018)"
    summary = "Sign steps from a random start in the L-inf ball, projected back after each step."
    params = (
        Param("eps", 4.0, 0.01, 255.0, "Largest change of any pixel value (L-inf), 1/255 units.", "1/255"),
        Param("step_size", 1.0, 0.01, 64.0, "Change of each pixel value per step, 1/255 units.", "1/255"),
        Param("steps", 20, 1, 10000, "Number of steps.", integer=True),
        Param(
            "random_start", 1, 0, 1, "1: start at a uniform random point of the ball; 0: at the image.", integer=True
        ),
    )

    def start(self, x0: Tensor, generators: list[torch.Generator]) -> Tensor:
        if not self.hparams["random_start"]:
            return x0.clone()
        eps = self.hparams["eps"] / 255.0
        shape = x0.shape[1:]
        noise = torch.stack([torch.empty(shape).uniform_(-eps, eps, generator=g) for g in generators])  # (N, 3, H, W)
        noise = noise.to(x0.device)
        return (x0 + noise).clamp(0.0, 1.0)  # (N, 3, H, W)
