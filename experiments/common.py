"""Small pieces the experiments share: checked choices, querying a model without gradients, resizing model inputs.

Running an attack and its result type live in attacks.runner (attack_targets, AttackResult); ranges are checked
with attacks.Param.validate.

No Streamlit here: the pages, the CLI and the tests call the same functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from attacks import AttackError, Param
from models import Classifier, pil_to_tensor


def check_number(name: str, value: Any, low: float, high: float, *, integer: bool = False) -> int | float:
    """An experiment's keyword option in [low, high], checked by the project's one range rule (Param.validate)."""
    return Param(name, low, low, high, integer=integer).validate(value)


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


def exhaust(steps: Iterator[Any]) -> Any:
    """The last item of a generator (the experiments' loops yield progress; the CLI only wants the end)."""
    last = None
    for item in steps:
        last = item
    if last is None:
        raise AttackError("the experiment yielded no step")
    return last
