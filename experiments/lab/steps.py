"""The Attack Lab's tensor work, kept out of the Streamlit glue: building a run's Step generator, reducing each Step
to the few numbers the page records, the amplified difference image and Grad-CAM overlays.

No Streamlit here. Images cross this boundary as PIL images or (H, W, 3) uint8 arrays, never as tensors.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from attacks import Attack, Step
from attacks.metrics import amplified_difference
from attacks.runner import sample_seed
from models import Classifier, pil_to_tensor, tensor_to_pil
from models.gradcam import grad_cam, overlay
from serving.scheduler import RunRequest, Scheduler, Ticket, Waiting

LEAST_LIKELY, RANDOM, UNTARGETED = "least-likely", "random", "untargeted"


def resolve_target(choice: int | str, probs: np.ndarray, seed: int) -> int | None:
    """A page's target choice as a class index: a class, the least likely one, a random other one, or None."""
    source = int(probs.argmax())
    if choice == UNTARGETED:
        return None
    if choice == LEAST_LIKELY:
        return int(probs.argmin())
    if choice == RANDOM:
        return random.Random(seed).choice([c for c in range(len(probs)) if c != source])
    return int(choice)


#: The attack seed of every page run, as `cli.py attack`'s default: the same settings give the same run, so a page run
#: and the CLI agree, and a class running the teacher's story shares one run (serving.scheduler).
RUN_SEED = 0


def run_request(
    model_name: str,
    original: Image.Image,
    attack: Attack,
    *,
    source: int,
    target: int | None,
    confidence: float,
    seed: int = RUN_SEED,
) -> RunRequest:
    """The scheduler's request for one 8-bit model input, with the CLI's per-sample seed (sample_seed(seed,
    target)) and its success rule (Goal with `confidence`, targeted or not)."""
    x0 = pil_to_tensor(original)  # (1, 3, H, W)
    return RunRequest.of(
        model_name,
        x0,
        attack.name,
        {**attack.hparams, "early_stop": attack.early_stop},
        source=source,
        target=target,
        confidence=confidence,
        seed=sample_seed(seed, target),
    )


def scheduled_steps(scheduler: Scheduler, ticket: Ticket) -> Iterator[Step | Waiting]:
    """A ticket's Steps as one-sample Steps (x_adv the 8-bit iterate), with `Waiting` while it is queued; leaving
    the ticket when the stream ends or is dropped (Stop, a closed tab's session collected)."""
    try:
        for item in scheduler.follow(ticket):
            yield item if isinstance(item, Waiting) else item.as_step()
    finally:
        scheduler.leave(ticket)


@dataclass(frozen=True)
class StepNumbers:
    """What the live view records of one Step of a one-image run (numpy and floats only)."""

    index: int
    probs: np.ndarray  # (K,) float32
    top_ids: np.ndarray  # (top_k,) int16, strongest first
    top_probs: np.ndarray  # (top_k,) float32
    rms: float
    loss: float
    image: np.ndarray  # (H, W, 3) uint8 of the iterate as saved
    queries: int | None = None  # black-box attacks: images asked about so far (None: a white-box attack)


def step_numbers(step: Step, top_k: int) -> StepNumbers:
    probs = step.probs[0].detach().float().cpu()  # (K,)
    values, ids = probs.topk(top_k)
    image = (step.x_adv[0] * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()  # (H, W, 3)
    return StepNumbers(
        index=step.index,
        probs=probs.numpy(),
        top_ids=ids.to(torch.int16).numpy(),
        top_probs=values.numpy(),
        rms=float(step.distortion[0]),
        loss=float(step.loss[0]),
        image=image,
        queries=None if step.queries is None else int(step.queries[0]),
    )


def difference_image(original: np.ndarray, adversarial: np.ndarray, gain: float) -> Image.Image:
    """(adversarial - original) x gain around mid-grey, from two (H, W, 3) uint8 images."""
    x0 = torch.tensor(original).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
    xa = torch.tensor(adversarial).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
    return tensor_to_pil(amplified_difference(xa, x0, gain))


def cam_images(model: Classifier, image: Image.Image, classes: tuple[int, ...]) -> list[Image.Image]:
    """Grad-CAM heatmaps of each class on one image, blended over it (one batched pass for all classes)."""
    x = pil_to_tensor(image).to(model.device)  # (1, 3, H, W)
    maps = grad_cam(model, x.expand(len(classes), -1, -1, -1), torch.tensor(classes))  # (C, H, W)
    return [tensor_to_pil(overlay(x[0], m)) for m in maps]
