"""MI-FGSM: Dong et al., "Boosting Adversarial Attacks with Momentum" (CVPR 2018).

arXiv:1710.06081. L-inf. g <- mu * g + grad / ||grad||_1; x <- clip_eps(x - alpha * sgn(g)). The momentum
stabilises the direction, which makes the result transfer better to other models.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attacks.base import Param
from attacks.bim import LinfIterative


class MIFGSM(LinfIterative):
    name = "mifgsm"
    title = "MI-FGSM (Dong et al. 2018)"
    summary = "Sign steps on an accumulated (momentum) gradient, inside an L-inf ball."
    params = (
        Param("eps", 8.0, 0.01, 255.0, "Largest change of any pixel value (L-inf), 1/255 units.", "1/255"),
        Param("step_size", 1.0, 0.01, 64.0, "Change of each pixel value per step, 1/255 units.", "1/255"),
        Param("steps", 20, 1, 10000, "Number of steps.", integer=True),
        Param("decay", 1.0, 0.0, 10.0, "Momentum decay mu (paper: 1.0)."),
    )

    def init_state(self, x0: Tensor) -> dict[str, Tensor]:
        return {"momentum": torch.zeros_like(x0)}

    def direction(self, grad: Tensor, state: dict[str, Tensor]) -> Tensor:
        l1 = grad.abs().flatten(1).mean(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)  # (N, 1, 1, 1)
        state["momentum"] = self.hparams["decay"] * state["momentum"] + grad / l1
        return state["momentum"].sign()
