"""Small pieces the experiments share: checked options, querying a model without gradients, resizing model inputs.

No Streamlit here: the pages, the CLI and the tests call the same functions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from attacks import Attack, AttackError, Goal, Step
from attacks.runner import Verdict, run_to_end, verify
from models import Classifier, pil_to_tensor, tensor_to_pil


def check_number(name: str, value: Any, low: float, high: float, *, integer: bool = False) -> float:
    """A keyword hyperparameter in [low, high]; anything else is one clear AttackError line (CLI exit 2)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AttackError(f"{name} must be a number, got {value!r}")
    if integer and int(value) != value:
        raise AttackError(f"{name} must be a whole number, got {value}")
    if not low <= value <= high:
        raise AttackError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return int(value) if integer else float(value)


def check_choice(name: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    if value not in choices:
        raise AttackError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
    return value


def query_probabilities(model: nn.Module, x: Tensor, batch_size: int = 32) -> Tensor:
    """(N,3,H,W) -> (N,K) softmax probabilities under torch.no_grad: what a black-box API would return."""
    with torch.no_grad():
        out = [model(x[i : i + batch_size]).softmax(-1) for i in range(0, len(x), batch_size)]
    return torch.cat(out)


def resize_input(image: Image.Image, size: int, model: Classifier | None = None) -> Image.Image:
    """Resize an 8-bit model input to another model's square input size, with that model's interpolation.

    Why not `model.preprocess`: it would resize the shorter side to resize_size and centre-crop, cutting away the
    border of an image that already is a crop. Every evaluation model must see the whole adversarial image.
    """
    if image.size == (size, size):
        return image
    spec = getattr(model, "spec", None)
    method = getattr(spec, "interpolation", Image.Resampling.BICUBIC)
    return image.resize((size, size), method, reducing_gap=None)


def classify(model: Classifier, images: list[Image.Image]) -> Tensor:
    """Probabilities (N,K) of 8-bit images, each resized to the model's input size first."""
    x = torch.cat([pil_to_tensor(resize_input(im, model.input_size, model)) for im in images])  # (N, 3, S, S)
    return model.probabilities(x.to(model.device)).cpu()


@dataclass(frozen=True)
class FullBudgetGoal(Goal):
    """A goal whose check never ends the loop early: the attack spends every step of its budget.

    Why: the engine stops each sample at its first 8-bit success, which gives the smallest perturbation that works
    on the attacked model - exactly the kind that does not transfer. Transfer and robustness need the margin that
    the remaining steps add. Success is decided afterwards, on the saved 8-bit image (attacks.runner.verify).
    """

    def met(self, probs: Tensor) -> Tensor:
        return torch.zeros(probs.shape[0], dtype=torch.bool, device=probs.device)

    def subset(self, idx: Tensor) -> FullBudgetGoal:
        return FullBudgetGoal(self.source[idx], None if self.target is None else self.target[idx], self.confidence)


def exhaust(steps: Iterator[Any]) -> Any:
    """The last item of a generator (the experiments' loops yield progress; the CLI only wants the end)."""
    last = None
    for item in steps:
        last = item
    if last is None:
        raise AttackError("the experiment yielded no step")
    return last


@dataclass
class AttackOutcome:
    """One attack on one image, its 8-bit result verified on the *plain* model (never through a wrapper)."""

    attack: str
    parameters: dict[str, Any]
    source: int
    target: int | None
    verdict: Verdict
    iterations: int
    seconds: float
    original: Image.Image = field(repr=False)
    adversarial: Image.Image = field(repr=False)

    @property
    def success(self) -> bool:
        return self.verdict.success

    def to_json(self, categories: tuple[str, ...]) -> dict[str, Any]:
        v = self.verdict
        return {
            "attack": self.attack,
            "parameters": self.parameters,
            "source": {"index": self.source, "label": categories[self.source]},
            "target": None if self.target is None else {"index": self.target, "label": categories[self.target]},
            "final": {
                "index": v.index,
                "label": v.label,
                "probability": v.probability,
                "target_probability": v.target_probability,
            },
            "success": v.success,
            "iterations": self.iterations,
            "rms_distortion": v.rms_distortion,
            "linf": v.linf,
            "max_change_255": v.max_change_255,
            "seconds": self.seconds,
        }


def attack_image(
    attacked: nn.Module,
    verifier: nn.Module,
    original: Image.Image,
    attack: Attack,
    target: int | None,
    *,
    confidence: float = 0.0,
    full_budget: bool = False,
    seed: int = 0,
    on_step: Callable[[Step], None] | None = None,
) -> AttackOutcome:
    """Attack the 8-bit model input `original` through `attacked` (a classifier, an Ensemble, an EOT wrapper...)
    and verify the saved 8-bit result on `verifier`, the plain model(s), untransformed.

    The source class is the verifier's top class on the original. full_budget: run every step (FullBudgetGoal).
    """
    check_number("confidence", confidence, 0.0, 0.9999)
    attack.check_targeted(target is not None)
    device = verifier.device  # type: ignore[union-attr]
    x0 = pil_to_tensor(original).to(device)  # (1, 3, H, W)
    source = int(verifier.probabilities(x0)[0].argmax())  # type: ignore[operator]
    if target is not None and target == source:
        raise AttackError(f"the target equals the image's current class ({verifier.categories[source]})")
    src = torch.tensor([source], device=device)
    tgt = None if target is None else torch.tensor([int(target)], device=device)
    goal = (FullBudgetGoal if full_budget else Goal)(src, tgt, confidence)
    start = time.perf_counter()
    last, finished_at = run_to_end(attack.run(attacked, x0, goal, seed=seed), on_step)
    seconds = time.perf_counter() - start
    adversarial = tensor_to_pil(last.x_adv[:1])
    verdict = verify(verifier, original, adversarial, source=source, target=target, confidence=confidence)
    return AttackOutcome(
        attack=attack.name,
        parameters={**attack.hparams, "seed": seed, "confidence": confidence, "full_budget": full_budget},
        source=source,
        target=target,
        verdict=verdict,
        iterations=int(finished_at[0]) if not full_budget else last.index,
        seconds=seconds,
        original=original,
        adversarial=adversarial,
    )
