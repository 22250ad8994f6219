"""Relabelling: Robinson & Graham, "Confusing Deep Convolution Networks by Relabelling" (2015).

arXiv:1505.03820. X_{i+1} = X_i - alpha * sgn(dL/dX_i) / 255 toward a chosen target label (eq. 1-2), with L the
softmax cross-entropy of the target. No norm ball: the run stops when the 8-bit image is classified as the
target, or when the next step would push the RMS distortion (eq. 3) past `max_rms` (the paper's cap: 0.01).
"""

from __future__ import annotations

from torch import Tensor

from attacks.base import GradientAttack, Param
from attacks.metrics import quantize, rms


class Relabel(GradientAttack):
    name = "relabel"
    title = "Relabel (Robinson & Graham 2015)"
    summary = "Sign-gradient descent toward any target label, stopped at the first 8-bit success or the RMS cap."
    supports_untargeted = False
    params = (
        Param("step_size", 0.25, 0.01, 16.0, "Change of each pixel value per step (1/255 units).", "1/255"),
        Param("steps", 200, 1, 10000, "Maximum number of steps.", integer=True),
        Param(
            "max_rms",
            0.01,
            0.0001,
            1.0,
            "How big the change may get: the RMS distortion, the root-mean-square of every pixel's change on a 0-1 "
            "scale (0.01 is about 2.5 grey levels of 255 on average). The attack stops before passing it; "
            "the paper's limit is 0.01.",
            "rms",
        ),
    )

    def direction(self, grad: Tensor, state: dict[str, Tensor]) -> Tensor:
        return grad.sign()  # eq. 2: f(g) = sgn(g) (the /255 is in step_size_px)

    def over_budget(self, x_next: Tensor, x0: Tensor) -> Tensor:
        return rms(quantize(x_next), x0) > self.hparams["max_rms"]
