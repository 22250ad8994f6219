"""FGSM: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples" (ICLR 2015).

arXiv:1412.6572. L-inf, one step: x' = clip(x + eps * sgn(grad_x CE(x, y_source))) untargeted, or
x' = clip(x - eps * sgn(grad_x CE(x, y_target))) targeted. The seed Q&A's linearity explanation in one line.
"""

from __future__ import annotations

from torch import Tensor

from attacks.base import GradientAttack, Param


class FGSM(GradientAttack):
    name = "fgsm"
    title = "FGSM (Goodfellow et al. 2015)"
    summary = "One step of size eps along the sign of the gradient."
    params = (Param("eps", 8.0, 0.01, 255.0, "Change of every pixel value, in 1/255 units.", "1/255"),)

    def total_steps(self) -> int:
        return 1

    def step_size_px(self) -> float:
        return self.hparams["eps"] / 255.0

    def direction(self, grad: Tensor, state: dict[str, Tensor]) -> Tensor:
        return grad.sign()  # Goal.loss is minimised, so descent on it is the FGSM step in either mode
