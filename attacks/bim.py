"""BIM / I-FGSM: Kurakin, Goodfellow & Bengio, "Adversarial examples in the physical world" (2016).

arXiv:1607.02533. L-inf: repeated FGSM steps of size alpha, each followed by clipping into the eps-ball around
the original and into [0,1]. Starts at the original image (PGD is the same with a random start).
"""

from __future__ import annotations

from torch import Tensor

from attacks.base import GradientAttack, Param


class LinfIterative(GradientAttack):
    """Shared L-inf machinery: sign direction and projection onto the eps-ball."""

    def direction(self, grad: Tensor, state: dict[str, Tensor]) -> Tensor:
        return grad.sign()

    def project(self, x: Tensor, x0: Tensor) -> Tensor:
        eps = self.hparams["eps"] / 255.0
        return (x0 + (x - x0).clamp(-eps, eps)).clamp(0.0, 1.0)  # (N, 3, H, W)


class BIM(LinfIterative):
    name = "bim"
    title = "BIM / I-FGSM (Kurakin et al. 2016)"
    summary = "Iterated small sign steps, clipped to an L-inf ball of radius eps."
    params = (
        Param("eps", 4.0, 0.01, 255.0, "Largest change of any pixel value (L-inf), 1/255 units.", "1/255"),
        Param("step_size", 1.0, 0.01, 64.0, "Change of each pixel value per step, 1/255 units.", "1/255"),
        Param("steps", 20, 1, 10000, "Number of steps.", integer=True),
    )
